"""progress=False and the TQDM_DISABLE variable silence every progress bar of the package."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from geomkit import NetClassifier, PowerLawSpectrum, weight_spectra
from geomkit._progress import progress_enabled
from geomkit.probe import extract
from geomkit.probe.jacobian import jacobian_norm
from geomkit.train import HebbianClassifier, MLP


def _every_bar(progress: bool) -> None:
    """Run each code path that draws a tqdm bar, with ``progress``."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 6)).astype(np.float32)
    y = np.arange(40) % 2
    net = MLP((6, 5, 2), activation="tanh")
    extract(net, X, ["act1"], batch_size=10, progress=progress)
    jacobian_norm(net, X[:4], layer="act1", progress=progress)
    weight_spectra(net, progress=progress)
    PowerLawSpectrum(fit_range=(1, 4), n_bootstraps=3, random_state=0, progress=progress).fit(
        rng.standard_normal((50, 8)))
    NetClassifier(hidden_sizes=(4,), epochs=1, random_state=0, progress=progress).fit(X, y)
    HebbianClassifier(n_hidden=8, layer_params={"k": 2}, unsup_epochs=1, epochs=1, random_state=0, progress=progress).fit(X, y)


def _bars(err: str) -> int:
    return len(re.findall(r"\d+%\|", err))


def test_progress_true_draws_bars(capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    _every_bar(True)
    assert _bars(capsys.readouterr().err) >= 6  # one bar (at least) per call: the check below can fail


@pytest.mark.parametrize("value", ["1", "True", "yes"])
def test_tqdm_disable_silences_every_bar(capsys, monkeypatch, value):
    monkeypatch.setenv("TQDM_DISABLE", value)
    _every_bar(True)
    assert capsys.readouterr().err == ""


def test_progress_false_silences_every_bar(capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    _every_bar(False)
    assert capsys.readouterr().err == ""


def test_tqdm_disable_values(monkeypatch):
    for value, enabled in (("", True), ("0", True), ("false", True), ("1", False), ("TRUE", False)):
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert progress_enabled(True) is enabled, value
    assert progress_enabled(False) is False


def test_every_bar_goes_through_the_helper():
    pending: set[str] = set()
    root = Path(__file__).resolve().parents[1] / "geomkit"
    direct = [str(p.relative_to(root)) for p in root.rglob("*.py")
              if p.name != "_progress.py" and re.search(r"\btqdm\(", p.read_text())]
    assert sorted(set(direct) - pending) == []
