"""Checkpoints: a damaged, tampered or unsafe one is refused with a ValueError naming the file (never a
traceback from deep inside torch or an allocation of terabytes), saves are atomic, and the study retrains
over a bad checkpoint with a warning."""

import json
import logging
import os
import pickle

import numpy as np
import pytest
import torch

from geomkit import study
from geomkit.train import HebbianClassifier, NetClassifier


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((60, 12)).astype(np.float32)
    y = np.arange(60) % 3
    return X, y


@pytest.fixture()
def saved(tmp_path, data):
    X, y = data
    clf = NetClassifier(hidden_sizes=(8,), epochs=1, random_state=0, progress=False).fit(X, y)
    return clf, clf.save(tmp_path / "net")


def _truncate(file, fraction=0.5):
    b = file.read_bytes()
    file.write_bytes(b[: int(len(b) * fraction)])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo unsafe",))


def _edit_config(path, edit):
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("damage, message", [
    (lambda p: _truncate(p / "state_dict.pt"), r"state_dict.pt' is damaged or truncated \(PytorchStreamReader"),
    (lambda p: (p / "state_dict.pt").write_bytes(b""), r"state_dict.pt' is damaged or truncated \(the file ended early\)"),
    (lambda p: _truncate(p / "config.json"), r"config.json' is not valid JSON"),
    (lambda p: (p / "config.json").write_text("[1, 2]"), r"config.json' holds a JSON list, not a checkpoint config"),
    (lambda p: _edit_config(p, lambda c: c.pop("params")), r"config.json' is malformed \(KeyError: 'params'\)"),
    (lambda p: _edit_config(p, lambda c: c["params"].update(nonsense=1)), r"config.json' is malformed \(TypeError"),
    (lambda p: _edit_config(p, lambda c: c.update(module_config=7)), r"config must be a dict with a 'kind' entry"),
    (lambda p: torch.save({"x": torch.zeros(2)}, p / "state_dict.pt"),
     r"config.json and state_dict.pt in .* disagree: the config builds 4 tensors, the weights file holds 1"),
    (lambda p: torch.save({"w": _Evil()}, p / "state_dict.pt"),
     r"refused to load .*state_dict.pt': it refers to code \(posix.system\), which weights_only loading does not run"),
    (lambda p: torch.save([1, 2], p / "state_dict.pt"), r"holds a list, not a dict of named tensors"),
])
def test_damaged_checkpoint_is_a_value_error_naming_the_file(saved, damage, message):
    _, path = saved
    damage(path)
    with pytest.raises(ValueError, match=message):
        NetClassifier.load(path)


def test_missing_file_is_file_not_found(saved):
    _, path = saved
    (path / "state_dict.pt").unlink()
    with pytest.raises(FileNotFoundError, match="state_dict.pt"):
        NetClassifier.load(path)


@pytest.mark.parametrize("kind", ["mlp", "hebbian"])
def test_crafted_sizes_are_refused_before_any_allocation(tmp_path, data, kind, monkeypatch):
    # sizes that would need 4e12 floats (16 TB): refused by comparing the shapes with the weights on disk,
    # on the meta device; a real allocation would fail (or swap) long before the message
    X, y = data
    if kind == "mlp":
        clf = NetClassifier(hidden_sizes=(8,), epochs=1, random_state=0, progress=False).fit(X, y)
        path = clf.save(tmp_path / "m")
        _edit_config(path, lambda c: c["module_config"].update(sizes=[2_000_000, 2_000_000, 3]))
        cls = NetClassifier
    else:
        clf = HebbianClassifier(n_hidden=8, layer_params={"k": 2}, unsup_epochs=1, epochs=1, random_state=0,
                                progress=False).fit(X, y)
        path = clf.save(tmp_path / "h")
        _edit_config(path, lambda c: c["module_config"]["layer"].update(n_hidden=2_000_000, n_features=2_000_000))
        cls = HebbianClassifier
    allocated = []
    real_empty = torch.empty

    def watch(*shape, **kw):  # fail loudly if anything real of the crafted size is made
        numel = int(np.prod(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape))
        if numel > 10**9 and str(kw.get("device") or torch.get_default_device()) != "meta":
            allocated.append(numel)
            raise MemoryError("crafted size allocated")
        return real_empty(*shape, **kw)

    monkeypatch.setattr(torch, "empty", watch)
    with pytest.raises(ValueError, match=r"config.json and state_dict.pt in .* disagree.*2000000"):
        cls.load(path)
    assert allocated == []


def test_loaded_checkpoint_equals_the_saved_one(saved, data):
    clf, path = saved
    X, _ = data
    again = NetClassifier.load(path)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_save_is_atomic(saved, monkeypatch):
    # a save interrupted while writing the weights leaves the old files, loadable, and no temporary file
    clf, path = saved
    before = {f.name: f.read_bytes() for f in path.iterdir()}

    def interrupted(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        clf.save(path)
    assert {f.name: f.read_bytes() for f in path.iterdir()} == before
    monkeypatch.undo()
    NetClassifier.load(path)


def _tiny(models_dir, X, y, caplog):
    import dataclasses

    cfg = dataclasses.replace(study.StudyConfig.make(quick=True), n_hidden=8, epochs=1)
    notes = []
    with caplog.at_level(logging.INFO, logger="geomkit"):
        clf, reused = study._train_or_load(
            "mlp", study._zoo()["mlp"], cfg, X, y, models_dir, 0, "cpu", False, False,
            lambda m, level=logging.INFO: (notes.append(m), logging.getLogger("geomkit.study").log(level, m)),
            study._data_hash(X, y))
    return clf, reused, notes


@pytest.mark.parametrize("damage, reason", [
    (lambda p: _truncate(p / "state_dict.pt"), "damaged or truncated"),
    (lambda p: _edit_config(p, lambda c: c["params"].update(nonsense=1)), "is malformed (TypeError"),
    (lambda p: torch.save({"w": _Evil()}, p / "state_dict.pt"), "refers to code (posix.system)"),
    (lambda p: _edit_config(p, lambda c: c.pop("history")), "is malformed (KeyError: 'history')"),
])
def test_study_retrains_over_a_bad_checkpoint_with_a_warning(tmp_path, data, caplog, damage, reason):
    X, y = data
    first, reused, _ = _tiny(tmp_path, X, y, caplog)
    assert not reused
    damage(tmp_path / "mlp")
    caplog.clear()
    again, reused, notes = _tiny(tmp_path, X, y, caplog)
    assert not reused
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.name == "geomkit.study"
    assert "mlp: the checkpoint in" in warning.message and reason in warning.message
    assert warning.message.endswith("; retraining")
    # the retrained checkpoint replaced the bad one: loadable, reused by the next run, the same weights
    loaded, reused, _ = _tiny(tmp_path, X, y, caplog)
    assert reused
    np.testing.assert_array_equal(loaded.predict_proba(X), again.predict_proba(X))


def test_stamp_is_removed_before_a_save_and_written_after(tmp_path, data, caplog, monkeypatch):
    # an interrupted save leaves no stamp: the next run retrains instead of trusting half-written files
    X, y = data
    _tiny(tmp_path, X, y, caplog)
    stamp = tmp_path / "mlp.study.json"
    assert stamp.is_file()
    monkeypatch.setattr(NetClassifier, "save", lambda self, p: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        study._save_checkpoint(NetClassifier(), tmp_path / "mlp", stamp, {"x": 1})
    assert not stamp.exists()


def test_stamp_of_a_dotted_name_keeps_its_name(tmp_path):
    # Path.with_suffix read "spectral_a2.5" as "spectral_a2" + ".5"
    assert study._stamp_path(tmp_path, "spectral_a2.5").name == "spectral_a2.5.study.json"
