"""Co-training with recordings: the differentiable similarities against geomkit.measures, a teacher
network whose representation is known, the V1 model's spectrum, bad input and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomkit.datasets import GaborV1, load_digits
from geomkit.measures import cca_similarity, cka, rsa
from geomkit.probe.extract import extract, layer_activations
from geomkit.train import (
    NetClassifier,
    NeuralPredictionHead,
    RepresentationalSimilarity,
    differentiable_similarity,
)
from geomkit.train.regularizers import BatchContext

# ---------------------------------------------------------------------------
# the differentiable similarities equal geomkit.measures on the same arrays
# ---------------------------------------------------------------------------


def _pair(n, p, q, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    Y = np.tanh(X[:, : min(p, q)] @ rng.normal(size=(min(p, q), q))) + 0.5 * rng.normal(size=(n, q))
    return X, Y


@pytest.mark.parametrize("n, p, q", [(40, 60, 30), (200, 20, 15)])  # Gram and feature-space branches
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_equals_measures_cka(n, p, q, debiased):
    X, Y = _pair(n, p, q)
    got = float(differentiable_similarity(torch.from_numpy(X), torch.from_numpy(Y), "cka", debiased=debiased))
    assert got == pytest.approx(cka(X, Y, debiased=debiased), abs=1e-6)


def test_rsa_equals_measures_rsa_pearson():
    X, Y = _pair(30, 12, 9, seed=1)
    got = float(differentiable_similarity(torch.from_numpy(X), torch.from_numpy(Y), "rsa"))
    assert got == pytest.approx(rsa(X, Y, metric="correlation", method="pearson"), abs=1e-6)


def test_cca_without_ridge_equals_measures_mean_cca():
    X, Y = _pair(300, 8, 6, seed=2)
    got = float(differentiable_similarity(torch.from_numpy(X), torch.from_numpy(Y), "cca", ridge=0.0))
    assert got == pytest.approx(cca_similarity(X, Y, method="mean"), abs=1e-6)
    # the leading canonical correlation alone: the largest singular value of the whitened cross-covariance
    top = float(differentiable_similarity(torch.from_numpy(X), torch.from_numpy(Y), "cca", ridge=0.0,
                                          n_components=1))
    from geomkit.measures import canonical_correlations

    assert top == pytest.approx(canonical_correlations(X, Y)[0], abs=1e-6)


@pytest.mark.parametrize("similarity", ["cka", "rsa", "cca"])
def test_gradients_match_finite_differences(similarity):
    X, Y = _pair(12, 5, 4, seed=3)
    Xt = torch.from_numpy(X).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda A: differentiable_similarity(A, torch.from_numpy(Y), similarity, ridge=0.1), (Xt,))


# ---------------------------------------------------------------------------
# a teacher with a known representation
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_data():
    """Digits, and the teacher's representation of them: a fixed random tanh layer (40 units) + noise."""
    X_train, X_test, y_train, y_test = load_digits(test_size=0.4, random_state=0)
    rng = np.random.default_rng(1)
    W = rng.normal(size=(64, 40)) / 8.0
    rep = lambda X: np.tanh((X - 0.5) @ W * 3.0)  # noqa: E731
    recording = rep(X_train) + 0.1 * rng.normal(size=(len(X_train), 40))
    return X_train, X_test, y_train, y_test, recording, rep(X_test)


def _student(regularizers=None):
    return NetClassifier(hidden_sizes=(64,), regularizers=regularizers, epochs=15, lr=3e-3, batch_size=64,
                         random_state=0, progress=False)


def _held_out_similarity(clf, X_test, truth, measure):
    acts = layer_activations(extract(clf.module_, X_test, layers=["act1"], progress=False), "act1").values
    return measure(acts, truth)


@pytest.fixture(scope="module")
def baseline(teacher_data):
    X_train, X_test, y_train, y_test, _, _ = teacher_data
    return _student().fit(X_train, y_train)


# measured (seed 0): CKA 0.75 -> 0.93, RSA 0.70 -> 0.91, mean canonical correlation 0.69 -> 0.78
@pytest.mark.parametrize("similarity, margin", [("cka", 0.1), ("rsa", 0.1), ("cca", 0.05)])
def test_cotraining_raises_held_out_similarity_to_the_teacher(teacher_data, baseline, similarity, margin):
    """Held-out stimuli, the teacher's noise-free representation, each similarity by geomkit.measures."""
    X_train, X_test, y_train, y_test, recording, truth = teacher_data
    reg = RepresentationalSimilarity(recording, similarity=similarity, strength=2.0)
    clf = _student(reg).fit(X_train, y_train)
    measure = {"cka": cka, "rsa": lambda a, b: rsa(a, b, metric="correlation", method="pearson"),
               "cca": lambda a, b: cca_similarity(a, b, method="mean")}[similarity]
    before = _held_out_similarity(baseline, X_test, truth, measure)
    after = _held_out_similarity(clf, X_test, truth, measure)
    assert after > before + margin, (similarity, before, after)
    assert clf.score(X_test, y_test) > 0.85  # the task is still learned
    if similarity != "cca":  # a batch of 64 against 64 + 40 units: the batch CCA is near 1 from the start
        assert clf.history_["reg_similarity"].iloc[-1] < clf.history_["reg_similarity"].iloc[0]


def test_prediction_head_learns_the_teachers_rates(teacher_data, baseline):
    """Poisson counts from the teacher's softplus rates: the head predicts held-out rates, and the
    co-trained layer is more like the teacher's than the unregularized one."""
    X_train, X_test, y_train, y_test, _, truth = teacher_data
    rng = np.random.default_rng(2)
    rates = lambda R: np.log1p(np.exp(2.0 * R))  # noqa: E731
    counts = rng.poisson(rates(np.tanh((X_train - 0.5) @ (np.random.default_rng(1).normal(size=(64, 40)) / 8.0)
                                       * 3.0)))
    head = NeuralPredictionHead(counts, loss="poisson", strength=1.0)
    clf = _student(head).fit(X_train, y_train)
    fitted = clf.regularizers_[0]
    acts = layer_activations(extract(clf.module_, X_test, layers=["act1"], progress=False), "act1").values
    acts = torch.from_numpy(acts)
    with torch.no_grad():
        pred = fitted.predict(acts).numpy()
    r = [np.corrcoef(pred[:, j], rates(truth)[:, j])[0, 1] for j in range(pred.shape[1])]
    assert np.median(r) > 0.7  # measured 0.78
    assert _held_out_similarity(clf, X_test, truth, cka) > _held_out_similarity(baseline, X_test, truth, cka)
    assert clf.score(X_test, y_test) > 0.85


def test_mse_head_trains_its_readout():
    """Targets linear in the inputs: the MSE head's readout learns them (loss far below the variance)."""
    X, _, y, _ = load_digits(test_size=0.5, random_state=0)
    target = (X - X.mean(0)) @ np.random.default_rng(0).normal(size=(64, 5)) / 8.0
    clf = NetClassifier(hidden_sizes=(64,), regularizers=NeuralPredictionHead(target, loss="mse"),
                        epochs=20, lr=3e-3, batch_size=64, random_state=0, progress=False).fit(X, y)
    assert clf.history_["reg_neural_prediction"].iloc[-1] < 0.1 * target.var()


# ---------------------------------------------------------------------------
# the V1 model
# ---------------------------------------------------------------------------


def test_gabor_v1_spectrum_is_the_power_law():
    X, _, _, _ = load_digits(test_size=0.5, random_state=0)
    v1 = GaborV1(n_neurons=80, alpha=1.5, random_state=0).fit(X)
    R = v1.transform(X).astype(np.float64)
    lam = np.linalg.eigvalsh(np.cov(R.T))[::-1][: len(v1.eigenvalues_)]
    k = np.arange(1, len(lam) + 1)
    expected = 80 / np.sum(k**-1.5) * k**-1.5
    np.testing.assert_allclose(lam, expected, rtol=1e-3)
    assert R.var(0, ddof=1).mean() == pytest.approx(1.0, rel=1e-3)


def test_gabor_v1_neurons_prefer_their_grating():
    """A grating at a neuron's frequency and orientation drives its energy more than the orthogonal one."""
    v1 = GaborV1(n_neurons=50, alpha=None, random_state=0).fit(np.random.default_rng(0).random((20, 784)))
    yy, xx = np.mgrid[0:28, 0:28]
    wins = 0
    for j in range(50):
        f, th = v1.frequency_[j], v1.orientation_[j]
        energy = []
        for angle in (th, th + np.pi / 2):
            img = np.cos(2 * np.pi * f * (xx * np.cos(angle) + yy * np.sin(angle))).ravel()[None]
            energy.append(v1._energy(img)[0, j])
        wins += energy[0] > energy[1]
    assert wins == 50


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


def test_recording_with_other_stimulus_count_is_refused():
    X, _, y, _ = load_digits(test_size=0.5, random_state=0)
    reg = RepresentationalSimilarity(np.zeros((len(X) - 3, 10)))
    with pytest.raises(ValueError, match=r"recording .*has %d stimuli but X has %d" % (len(X) - 3, len(X))):
        _student(reg).fit(X, y)
    with pytest.raises(ValueError, match="recording"):
        _student(NeuralPredictionHead(np.ones((len(X) + 1, 4)))).fit(X, y)


def test_unknown_similarity_and_loss_are_named():
    X, _, y, _ = load_digits(test_size=0.5, random_state=0)
    with pytest.raises(ValueError, match="similarity.*'cka'"):
        _student(RepresentationalSimilarity(np.ones((len(X), 4)), similarity="procrustes")).fit(X, y)
    with pytest.raises(ValueError, match="similarity"):
        differentiable_similarity(torch.ones(5, 2), torch.ones(5, 2), "cosine")
    with pytest.raises(ValueError, match="loss"):
        _student(NeuralPredictionHead(np.ones((len(X), 4)), loss="huber")).fit(X, y)
    with pytest.raises(ValueError, match="loss='poisson' needs non-negative"):
        _student(NeuralPredictionHead(-np.ones((len(X), 4)))).fit(X, y)
    with pytest.raises(ValueError, match="recording is None"):
        _student(RepresentationalSimilarity()).fit(X, y)


def test_term_without_batch_indices_is_refused():
    X = torch.randn(10, 3)
    reg = RepresentationalSimilarity(np.ones((10, 2)), layer="0")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4))
    reg.setup(model, X, batch_size=10, n_epochs=1)
    with pytest.raises(ValueError, match="BatchContext.index"):
        reg.term(BatchContext(model, X, model(X), {"0": model(X)}))


# ---------------------------------------------------------------------------
# a model of the recording, and checkpoints
# ---------------------------------------------------------------------------


def test_transformer_recording_is_fitted_on_the_training_inputs_and_saved(tmp_path):
    X, _, y, _ = load_digits(test_size=0.5, random_state=0)
    v1 = GaborV1(n_neurons=30, random_state=0)
    clf = _student(RepresentationalSimilarity(v1, strength=1.0)).fit(X, y)
    expected = GaborV1(n_neurons=30, random_state=0).fit(X).transform(X)
    np.testing.assert_allclose(clf.regularizers_[0].recording_.numpy(), expected, rtol=1e-6)
    assert not hasattr(v1, "projection_")  # the object passed is not fitted in place
    loaded = NetClassifier.load(clf.save(tmp_path / "m"))
    assert loaded.regularizers[0].recording.get_params() == v1.get_params()
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_array_recording_is_not_saved_but_the_weights_are(tmp_path):
    X, _, y, _ = load_digits(test_size=0.5, random_state=0)
    clf = _student(RepresentationalSimilarity(np.random.default_rng(0).normal(size=(len(X), 5)))).fit(X, y)
    with pytest.warns(UserWarning, match="not saved in a checkpoint"):
        loaded = NetClassifier.load(clf.save(tmp_path / "m"))
    assert loaded.regularizers[0].recording is None
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
