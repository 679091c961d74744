"""NetClassifier / HebbianClassifier: accuracy, scikit-learn API, reproducibility, saving, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from geomkit.datasets import load_digits
from geomkit.train import MLP, HebbianClassifier, JacobianRegularizer, NetClassifier, TrainingDiverged
from geomkit.train.regularizers import Regularizer


@pytest.fixture(scope="module")
def digits():
    return load_digits(test_size=0.3, random_state=0)


def small_net(**kw):
    params = dict(hidden_sizes=(64,), epochs=15, lr=3e-3, batch_size=64, random_state=0, progress=False)
    params.update(kw)
    return NetClassifier(**params)


# ---------------------------------------------------------------------------
# scikit-learn conformance
# ---------------------------------------------------------------------------


@parametrize_with_checks(
    [
        NetClassifier(hidden_sizes=(16,), epochs=15, lr=3e-2, batch_size=64, random_state=0, progress=False),
        HebbianClassifier(n_hidden=16, layer_params={"k": 2}, unsup_epochs=2, readout_power=1.0,
                          epochs=15, lr=3e-2, batch_size=64, random_state=0, progress=False),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_net_classifier_accuracy_and_methods(digits):
    X_train, X_test, y_train, y_test = digits
    clf = small_net().fit(X_train, y_train)
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[proba.argmax(1)])
    assert clf.score(X_test, y_test) == accuracy_score(y_test, clf.predict(X_test))
    assert clf.score(X_test, y_test) >= 0.95
    hist = clf.history_
    assert list(hist["epoch"]) == list(range(15))
    np.testing.assert_allclose(hist["loss"], hist["task_loss"])  # no regularizer: loss is the task loss
    assert hist["accuracy"].iloc[-1] > hist["accuracy"].iloc[0]
    assert [n for n, _ in clf.module_.named_children()] == ["flatten", "hidden1", "act1", "out"]


def test_random_state_reproducible_bit_for_bit(digits):
    X_train, _, y_train, _ = digits
    a = small_net(epochs=3).fit(X_train, y_train)
    b = small_net(epochs=3).fit(X_train, y_train)
    c = small_net(epochs=3, random_state=1).fit(X_train, y_train)
    for (k, va), vb in zip(a.module_.state_dict().items(), b.module_.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.module_.hidden1.weight, c.module_.hidden1.weight)
    assert a.history_.drop(columns="seconds").equals(b.history_.drop(columns="seconds"))


def test_hebbian_random_state_reproducible_bit_for_bit(digits):
    X_train, _, y_train, _ = digits
    runs = [HebbianClassifier(layer="krotov_hopfield", n_hidden=40, layer_params={"k": 2}, unsup_epochs=2,
                              epochs=2, random_state=seed, progress=False).fit(X_train, y_train)
            for seed in [3, 3, 4]]
    for k, v in runs[0].module_.state_dict().items():
        assert torch.equal(v, runs[1].module_.state_dict()[k]), k
    assert not torch.equal(runs[0].module_.hidden1.weight, runs[2].module_.hidden1.weight)


def test_given_module_is_not_modified(digits):
    X_train, _, y_train, _ = digits
    torch.manual_seed(0)
    net = MLP((64, 32, 10))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    clf = small_net(module=net, epochs=2).fit(X_train, y_train)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert clf.module_ is not net


def test_grid_search_equals_manual_cross_validation(digits):
    X_train, _, y_train, _ = digits
    X, y = X_train[:400], y_train[:400]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(small_net(epochs=3), {"lr": [1e-3, 1e-2]}, cv=cv).fit(X, y)
    for i, lr in enumerate([1e-3, 1e-2]):
        scores = [clone(small_net(epochs=3)).set_params(lr=lr).fit(X[tr], y[tr]).score(X[te], y[te])
                  for tr, te in cv.split(X, y)]
        assert grid.cv_results_["mean_test_score"][i] == pytest.approx(np.mean(scores), abs=1e-12)


def test_string_labels(digits):
    X_train, X_test, y_train, _ = digits
    names = np.array(list("abcdefghij"))
    clf = small_net(epochs=2).fit(X_train, names[y_train])
    assert set(clf.predict(X_test)) <= set(names)
    np.testing.assert_array_equal(clf.classes_, names)


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------


def test_save_load_round_trip(digits, tmp_path, monkeypatch):
    X_train, X_test, y_train, _ = digits
    clf = small_net(epochs=2).fit(X_train, y_train)
    clf.save(tmp_path / "net")
    config = json.loads((tmp_path / "net" / "config.json").read_text())
    assert config["module_config"] == {"kind": "MLP", "sizes": [64, 64, 10], "activation": "relu", "bias": True}
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    loaded = NetClassifier.load(tmp_path / "net")
    assert calls and all(k.get("weights_only") is True for k in calls)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_allclose(loaded.history_["loss"], clf.history_["loss"])
    pd.testing.assert_frame_equal(loaded.history_, clf.history_, check_exact=True)  # full float precision in the JSON


def test_save_load_custom_module_needs_module(digits, tmp_path):
    X_train, X_test, y_train, _ = digits
    net = torch.nn.Sequential(torch.nn.Linear(64, 10))
    clf = small_net(module=net, epochs=1).fit(X_train, y_train)
    clf.save(tmp_path / "custom")
    with pytest.raises(ValueError, match="pass module="):
        NetClassifier.load(tmp_path / "custom")
    loaded = NetClassifier.load(tmp_path / "custom", module=torch.nn.Sequential(torch.nn.Linear(64, 10)))
    np.testing.assert_array_equal(loaded.predict(X_test), clf.predict(X_test))


def test_hebbian_save_load(digits, tmp_path):
    X_train, X_test, y_train, _ = digits
    clf = HebbianClassifier(n_hidden=50, layer_params={"k": 2}, unsup_epochs=2, epochs=3, random_state=0,
                            progress=False).fit(X_train, y_train)
    loaded = HebbianClassifier.load(clf.save(tmp_path / "hebb"))
    np.testing.assert_allclose(loaded.predict_proba(X_test), clf.predict_proba(X_test), rtol=1e-6)
    # both histories come back bit for bit, with their dtypes (JSON beside the state dict, no pickle)
    assert list(clf.unsup_history_["epoch"]) == [0, 1]
    pd.testing.assert_frame_equal(loaded.unsup_history_, clf.unsup_history_, check_exact=True)
    pd.testing.assert_frame_equal(loaded.history_, clf.history_, check_exact=True)
    config = json.loads((tmp_path / "hebb" / "config.json").read_text())
    assert config["unsup_history"][1]["frac_ever_won"] == clf.unsup_history_["frac_ever_won"].iloc[1]
    assert sorted(p.name for p in (tmp_path / "hebb").iterdir()) == ["config.json", "state_dict.pt"]


def test_hebbian_load_without_unsup_history_warns(digits, tmp_path):
    X_train, _, y_train, _ = digits
    clf = HebbianClassifier(n_hidden=20, layer_params={"k": 2}, unsup_epochs=1, epochs=1, random_state=0,
                            progress=False).fit(X_train, y_train)
    path = clf.save(tmp_path / "old")
    config = json.loads((path / "config.json").read_text())
    del config["unsup_history"]  # as written before the unsupervised history was saved
    (path / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="no unsupervised history"):
        loaded = HebbianClassifier.load(path)
    assert not hasattr(loaded, "unsup_history_")
    np.testing.assert_array_equal(loaded.predict(X_train), clf.predict(X_train))


# ---------------------------------------------------------------------------
# Hebbian classifiers (small; the MNIST-5k sizes are in the slow tests)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("layer,params", [("krotov_hopfield", {"k": 3}), ("softhebb", {})])
def test_hebbian_classifier_digits(digits, layer, params):
    X_train, X_test, y_train, y_test = digits
    clf = HebbianClassifier(layer=layer, n_hidden=300, layer_params=params, unsup_epochs=10, epochs=40,
                            random_state=0, progress=False).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.93
    assert list(clf.unsup_history_["epoch"]) == list(range(10))
    names = [n for n, _ in clf.module_.named_children()]
    assert names == ["flatten", "hidden1", "act1", "scale1", "out"]
    # the readout sees features scaled by one global factor: their training-set standard deviation
    with torch.no_grad():
        feats = clf.module_.act1(clf.module_.hidden1(torch.from_numpy(X_train.astype(np.float32))))
    assert float(clf.module_.scale1.factor) == pytest.approx(1 / float(feats.std()), rel=1e-5)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_labels_outside_module_outputs(digits):
    X_train, _, y_train, _ = digits
    net = torch.nn.Sequential(torch.nn.Linear(64, 5))
    with pytest.raises(ValueError, match=r"outside 0..4.*5 outputs"):
        small_net(module=net, epochs=1).fit(X_train, y_train)
    with pytest.raises(ValueError, match=r"label\(s\) \[-1\] outside"):
        small_net(module=net, epochs=1).fit(X_train[:20], np.r_[-1, np.zeros(19, int)])


class _NaNAtEpoch(Regularizer):
    name = "exploding"

    def __init__(self, epoch=2):
        self.epoch = epoch
        self.strength = 1.0

    def term(self, ctx):
        return torch.tensor(float("nan") if ctx.epoch == self.epoch else 0.0)


def test_nan_loss_stops_and_keeps_last_good_weights(digits):
    X_train, _, y_train, _ = digits
    clf = small_net(regularizers=[_NaNAtEpoch(2)], epochs=5)
    with pytest.raises(TrainingDiverged, match=r"epoch 2 .*'exploding'"):
        clf.fit(X_train, y_train)
    reference = small_net(epochs=2).fit(X_train, y_train)  # same seed, stopped after epochs 0 and 1
    for k, v in reference.module_.state_dict().items():
        assert torch.equal(clf.module_.state_dict()[k], v), k
    assert len(clf.history_) == 2
    assert "reg_exploding" in clf.history_  # the same columns as a finished run's history
    np.testing.assert_array_equal(clf.history_["reg_exploding"], [0.0, 0.0])


def test_overflowing_logits_name_the_task_loss(digits):
    X_train, _, y_train, _ = digits
    clf = small_net(epochs=3)
    with pytest.raises(TrainingDiverged, match="epoch 0 .*'task_loss'"):
        clf.fit(X_train * 1e38, y_train)  # finite inputs, logits overflow float32
    assert clf.history_.empty
    # diverged in the first epoch: the kept weights are the initial ones, bit for bit, i.e. those
    # of the default MLP built under the same seed (and not those of another seed)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = MLP((64, 64, 10)).state_dict()
        torch.manual_seed(1)
        other = MLP((64, 64, 10)).state_dict()
    kept = clf.module_.state_dict()
    assert list(kept) == list(initial)
    for k, v in initial.items():
        assert torch.equal(kept[k], v), k
    assert not torch.equal(kept["hidden1.weight"], other["hidden1.weight"])


def test_hebbian_readout_divergence_keeps_last_good_weights(digits):
    """Adam with lr=1e37 makes the first step ~1e38 and the logits overflow in the first epoch:
    fit raises, and module_ holds the learned hidden layer with the initial readout."""
    X_train, _, y_train, _ = digits
    params = dict(n_hidden=40, layer_params={"k": 2}, unsup_epochs=2, epochs=3, random_state=0, progress=False)
    clf = HebbianClassifier(lr=1e37, **params)
    with pytest.raises(TrainingDiverged, match="epoch 0 .*'task_loss'"):
        clf.fit(X_train, y_train)
    assert clf.history_.empty and list(clf.unsup_history_["epoch"]) == [0, 1]
    # the reference: a step of 1e-30 leaves float32 weights of size >~ 1e-20 bitwise unchanged, so
    # this fit ends with the initial readout of the same seed (and the same hidden layer)
    reference = HebbianClassifier(lr=1e-30, **params).fit(X_train, y_train)
    assert float(reference.module_.out.weight.detach().abs().min()) > 1e-20
    kept = clf.module_.state_dict()
    for k, v in reference.module_.state_dict().items():
        assert torch.equal(kept[k], v), k
    np.testing.assert_array_equal(clf.predict(X_train), reference.predict(X_train))


def test_softhebb_random_state_reproducible_bit_for_bit(digits):
    X_train, _, y_train, _ = digits
    runs = [HebbianClassifier(layer="softhebb", n_hidden=40, unsup_epochs=2, epochs=2, random_state=seed,
                              progress=False).fit(X_train, y_train) for seed in [3, 3, 4]]
    for k, v in runs[0].module_.state_dict().items():
        assert torch.equal(v, runs[1].module_.state_dict()[k]), k
    assert not torch.equal(runs[0].module_.hidden1.weight, runs[2].module_.hidden1.weight)
    assert not torch.equal(runs[0].module_.out.weight, runs[2].module_.out.weight)
    pd.testing.assert_frame_equal(runs[0].unsup_history_.drop(columns="seconds"),
                                  runs[1].unsup_history_.drop(columns="seconds"))
    pd.testing.assert_frame_equal(runs[0].history_.drop(columns="seconds"),
                                  runs[1].history_.drop(columns="seconds"))


def test_jacobian_regularized_net_reproducible_bit_for_bit(digits):
    """The random projections are drawn from the seeded generator: same seed, same weights."""
    X_train, _, y_train, _ = digits
    runs = [small_net(epochs=2, random_state=seed, regularizers=JacobianRegularizer(0.05)).fit(X_train, y_train)
            for seed in [5, 5, 6]]
    for k, v in runs[0].module_.state_dict().items():
        assert torch.equal(v, runs[1].module_.state_dict()[k]), k
    assert not torch.equal(runs[0].module_.hidden1.weight, runs[2].module_.hidden1.weight)
    hist = [r.history_.drop(columns="seconds") for r in runs]
    pd.testing.assert_frame_equal(hist[0], hist[1])
    assert (hist[0]["reg_jacobian"] > 0).all()


@pytest.mark.parametrize("param,value,error", [("epochs", 0, ValueError), ("lr", -1.0, ValueError),
                                               ("batch_size", 2.5, TypeError), ("module", "mlp", TypeError)])
def test_bad_parameters(digits, param, value, error):
    X_train, _, y_train, _ = digits
    with pytest.raises(error, match=param):
        small_net(**{param: value}).fit(X_train, y_train)


def test_hebbian_bad_layer(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="layer must be one of 'krotov_hopfield', 'softhebb'"):
        HebbianClassifier(layer="oja", progress=False).fit(X_train, y_train)


# ---------------------------------------------------------------------------
# Full size (MNIST-5k, stratified 80/20): the accuracy targets
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    from geomkit.datasets import load_mnist5k

    return load_mnist5k(test_size=0.2, random_state=0)


@pytest.mark.slow
def test_mlp_mnist5k(mnist, record_property):
    X_train, X_test, y_train, y_test = mnist
    clf = NetClassifier(hidden_sizes=(1000,), epochs=20, batch_size=100, random_state=0, progress=False)
    accuracy = clf.fit(X_train, y_train).score(X_test, y_test)
    record_property("test_accuracy", accuracy)  # in the --junitxml report
    assert accuracy >= 0.93


@pytest.mark.slow
@pytest.mark.parametrize("layer,params,epochs", [("krotov_hopfield", {"p": 3.0, "k": 7, "delta": 0.4}, 50),
                                                 ("softhebb", {}, 20)])
def test_hebbian_mnist5k(mnist, layer, params, epochs, record_property):
    X_train, X_test, y_train, y_test = mnist
    clf = HebbianClassifier(layer=layer, n_hidden=2000, layer_params=params, unsup_epochs=epochs, random_state=0,
                            progress=False)
    accuracy = clf.fit(X_train, y_train).score(X_test, y_test)
    record_property("test_accuracy", accuracy)
    record_property("frac_ever_won", clf.unsup_history_["frac_ever_won"].iloc[-1])
    assert accuracy >= 0.88
    assert clf.unsup_history_["frac_ever_won"].iloc[-1] > 0.1  # the layer learned, not only its random init


@pytest.mark.slow
def test_krotov_hopfield_feature_scaling_mnist5k(mnist, record_property):
    """One global std scale beats dividing by the maximum (0.942 vs 0.704 measured)."""
    X_train, X_test, y_train, y_test = mnist
    scores = {}
    for scale in ["std", "max"]:
        clf = HebbianClassifier(n_hidden=2000, unsup_epochs=50, feature_scale=scale, random_state=0, progress=False)
        scores[scale] = clf.fit(X_train, y_train).score(X_test, y_test)
        record_property(f"test_accuracy_{scale}", scores[scale])
    assert scores["std"] >= scores["max"] + 0.05
