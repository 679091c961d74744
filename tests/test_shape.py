"""Generalized shape metrics against scipy's Procrustes, brute-force whitening and known noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import fractional_matrix_power, orthogonal_procrustes
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from geomkit.measures import ShapeMetric, shape_distance
from geomkit.measures._resampling import ResamplingResult


def _unit(A):
    A = A - A.mean(axis=0)
    return A / np.linalg.norm(A)


def _procrustes_angle(X, Y):
    """Angular Procrustes distance via scipy: align Y to X, then the angle."""
    Xn, Yn = _unit(X), _unit(Y)
    R, _ = orthogonal_procrustes(Yn, Xn)
    return np.arccos(np.clip(np.sum(Xn * (Yn @ R)), -1, 1))


def _pair(rng, n=80, p=6, q=None, mix=1.0):
    X = rng.normal(size=(n, p))
    Y = X[:, : (q or p)] @ rng.normal(size=((q or p), q or p)) * mix + rng.normal(size=(n, q or p))
    return X, Y


@pytest.mark.parametrize("seed", range(5))
def test_procrustes_equals_scipy_orthogonal_procrustes(seed):
    X, Y = _pair(np.random.default_rng(seed))
    assert shape_distance(X, Y) == pytest.approx(_procrustes_angle(X, Y), abs=1e-10)
    chord = np.linalg.norm(_unit(X) - _unit(Y) @ orthogonal_procrustes(_unit(Y), _unit(X))[0])
    assert shape_distance(X, Y, metric="euclidean") == pytest.approx(chord, abs=1e-10)


def test_zero_padding_equals_scipy_on_padded_data():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(60, 7)), rng.normal(size=(60, 4))
    Y = Y + X[:, :4]
    padded = np.hstack([Y, np.zeros((60, 3))])
    assert shape_distance(X, Y) == pytest.approx(_procrustes_angle(X, padded), abs=1e-10)


def test_pca_mode_reduces_the_larger_side_to_its_leading_components():
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(60, 7)) * np.arange(7, 0, -1), rng.normal(size=(60, 3))
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    expected = _procrustes_angle(Xc @ Vt[:3].T, Y)
    assert shape_distance(X, Y, dim_mismatch="pca") == pytest.approx(expected, abs=1e-10)


def test_invariant_to_rotation_scale_and_offset():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 5))
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    for alpha in (0.0, 0.3, 1.0):
        assert shape_distance(X, 2.5 * X @ Q - 4.0, alpha=alpha) == pytest.approx(0.0, abs=1e-7)


def test_cca_end_is_arccos_of_mean_canonical_correlation():
    rng = np.random.default_rng(5)
    X, Y = _pair(rng, n=200, p=5)
    qx, _ = np.linalg.qr(X - X.mean(axis=0))
    qy, _ = np.linalg.qr(Y - Y.mean(axis=0))
    rho = np.linalg.svd(qx.T @ qy, compute_uv=False)
    assert shape_distance(X, Y, alpha=0.0) == pytest.approx(np.arccos(rho.mean()), abs=1e-10)
    # and alpha = 0 ignores any invertible linear map
    A = rng.normal(size=(5, 5))
    assert shape_distance(X @ A, Y, alpha=0.0) == pytest.approx(np.arccos(rho.mean()), abs=1e-9)


@pytest.mark.parametrize("alpha", [0.25, 0.7])
def test_partial_whitening_equals_a_direct_matrix_power(alpha):
    rng = np.random.default_rng(6)
    X, Y = _pair(rng, n=120, p=4)

    def phi(A):
        A = A - A.mean(axis=0)
        C = A.T @ A / len(A)
        C = C / np.trace(C) * C.shape[0]
        return A @ np.real(fractional_matrix_power((1 - alpha) * C + alpha * np.eye(len(C)), -0.5))

    assert shape_distance(X, Y, alpha=alpha) == pytest.approx(
        _procrustes_angle(phi(X), phi(Y)), abs=1e-10)


@pytest.mark.parametrize("alpha,metric", [(1.0, "angular"), (1.0, "euclidean"), (0.5, "angular")])
def test_triangle_inequality_on_random_triples(alpha, metric):
    rng = np.random.default_rng(7)
    for _ in range(40):
        base = rng.normal(size=(30, 4))
        X, Y, Z = (base + s * rng.normal(size=(30, 4)) for s in rng.uniform(0.2, 2.0, size=3))
        d = lambda a, b: shape_distance(a, b, alpha=alpha, metric=metric)  # noqa: E731
        assert d(X, Z) <= d(X, Y) + d(Y, Z) + 1e-12
        assert d(X, Y) == pytest.approx(d(Y, X), abs=1e-12)


def test_estimator_fits_on_train_and_scores_on_test_like_a_direct_computation():
    rng = np.random.default_rng(8)
    X, Y = _pair(rng, n=200, p=5)
    tr, te = slice(0, 120), slice(120, 200)
    m = ShapeMetric().fit(X[tr], Y[tr])
    assert m.distance_ == pytest.approx(shape_distance(X[tr], Y[tr]), abs=1e-12)
    mx, my = X[tr].mean(axis=0), Y[tr].mean(axis=0)
    R, _ = orthogonal_procrustes(Y[tr] - my, X[tr] - mx)
    A, B = X[te] - mx, (Y[te] - my) @ R
    cos = np.sum(A * B) / np.linalg.norm(A) / np.linalg.norm(B)
    assert m.score(X[te], Y[te]) == pytest.approx(cos, abs=1e-10)
    assert m.distance(X[te], Y[te]) == pytest.approx(np.arccos(cos), abs=1e-7)
    Xa, Ya = m.transform(X[te], Y[te])
    np.testing.assert_allclose(Ya / np.linalg.norm(Ya), B / np.linalg.norm(B), atol=1e-12)
    # held-out alignment: the test distance exceeds the in-sample one here (noise is not fitted)
    assert m.distance(X[te], Y[te]) > shape_distance(X[te], Y[te])
    scores = cross_val_score(ShapeMetric(), X, Y, cv=4)
    assert scores.shape == (4,) and np.all(scores < 1)
    assert clone(m).get_params() == m.get_params()


def test_split_noise_correction_recovers_the_noise_free_distance():
    rng = np.random.default_rng(0)
    n, p = 2000, 8
    scale = np.arange(1, p + 1) ** -0.5
    S = rng.normal(size=(n, p)) * scale
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    T = 0.8 * S @ Q + 0.6 * rng.normal(size=(n, p)) * scale
    Xr = S + 0.7 * rng.normal(size=(4, n, p))
    Yr = T + 0.7 * rng.normal(size=(4, n, p))
    for alpha in (1.0, 0.0):
        truth = shape_distance(S, T, alpha=alpha)
        naive = shape_distance(Xr, Yr, alpha=alpha)
        assert naive - truth > 0.2  # trial noise makes the shapes look far apart
        assert shape_distance(Xr, Yr, alpha=alpha, noise_correction="split") == pytest.approx(
            truth, abs=0.05)
        assert shape_distance(Xr, T, alpha=alpha, noise_correction="split") == pytest.approx(
            truth, abs=0.05)
    # the estimator applies the same cross-half products to held-out repeats
    m = ShapeMetric(noise_correction="split").fit(Xr[:, :1000], Yr[:, :1000])
    assert m.distance(Xr[:, 1000:], Yr[:, 1000:]) == pytest.approx(
        shape_distance(S, T), abs=0.05)


def test_intervals_and_permutation_p_value():
    rng = np.random.default_rng(9)
    X, Y = _pair(rng, n=100, p=3, mix=2.0)
    r = shape_distance(X, Y, n_bootstraps=200, n_permutations=99, random_state=0)
    assert isinstance(r, ResamplingResult)
    assert r.value == pytest.approx(shape_distance(X, Y))
    assert r.ci[0] <= r.value_corrected <= r.ci[1]
    assert r.p_value == pytest.approx(0.01)  # no shuffle aligns as well as the true pairing
    assert np.all(r.null > r.value)
    unrelated = shape_distance(X, rng.normal(size=(100, 3)), n_permutations=99, random_state=0)
    assert unrelated.p_value > 0.05
    again = shape_distance(X, Y, n_bootstraps=200, n_permutations=99, random_state=0)
    assert again.ci == r.ci


def test_bad_input_names_the_argument():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="same stimuli.*X has 20.*Y has 19"):
        shape_distance(X, X[:19])
    with pytest.raises(ValueError, match="X has 2 sample"):
        shape_distance(X[:2], X[:2])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Y contains 1 NaN"):
        shape_distance(X, bad)
    with pytest.raises(ValueError, match=r"unequal shape: Y\[0\].*Y\[1\]"):
        shape_distance(X, [X, X[:, :2]])
    with pytest.raises(ValueError, match="X has zero variance"):
        shape_distance(np.ones((20, 3)), X)
    with pytest.raises(ValueError, match="alpha must be"):
        shape_distance(X, X, alpha=1.5)
    with pytest.raises(ValueError, match="metric must be one of.*did you mean 'angular'"):
        shape_distance(X, X, metric="angula")
    with pytest.raises(ValueError, match="needs repeats"):
        shape_distance(X, X, noise_correction="split")
    m = ShapeMetric().fit(X, X)
    with pytest.raises(ValueError, match="Y has 2 units but the metric was fitted on 3"):
        m.score(X, X[:, :2])
