"""CCA similarities against QR/SVD brute force, scikit-learn's CCA and known noise."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cross_decomposition import CCA

from geomkit.measures import canonical_correlations, cca_similarity
from geomkit.measures._resampling import ResamplingResult


def _qr_cca(X, Y):
    """Canonical correlations and X's canonical variates from orthonormal bases (Bjorck & Golub 1973)."""
    qx, _ = np.linalg.qr(X - X.mean(axis=0))
    qy, _ = np.linalg.qr(Y - Y.mean(axis=0))
    U, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return rho, qx @ U


def _pair(seed, n=300, p=5, q=4, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    Y = X @ rng.normal(size=(p, q)) + noise * rng.normal(size=(n, q))
    return X, Y


@pytest.mark.parametrize("seed", range(3))
def test_mean_cca_equals_qr_svd_brute_force(seed):
    X, Y = _pair(seed)
    rho, _ = _qr_cca(X, Y)
    np.testing.assert_allclose(canonical_correlations(X, Y), rho, atol=1e-10)
    assert cca_similarity(X, Y) == pytest.approx(rho.mean(), abs=1e-10)


def test_first_canonical_correlation_equals_sklearn_cca():
    X, Y = _pair(0, n=400, p=3, q=3, noise=2.0)
    u, v = CCA(n_components=1, max_iter=5000, tol=1e-12).fit(X, Y).transform(X, Y)
    first = abs(np.corrcoef(u[:, 0], v[:, 0])[0, 1])
    assert canonical_correlations(X, Y)[0] == pytest.approx(first, abs=1e-6)


def test_svcca_keeps_99_percent_of_the_variance_then_cca():
    rng = np.random.default_rng(1)
    scale = np.array([10.0, 5.0, 2.0, 0.05, 0.01])
    X = rng.normal(size=(300, 5)) * scale
    Y = X[:, :3] @ rng.normal(size=(3, 3)) + rng.normal(size=(300, 3)) + X[:, 3:4] * 20

    def reduce(A):
        A = A - A.mean(axis=0)
        U, s, _ = np.linalg.svd(A, full_matrices=False)
        k = np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.99) + 1
        return U[:, :k] * s[:k]

    expected = _qr_cca(reduce(X), reduce(Y))[0].mean()
    assert cca_similarity(X, Y, method="svcca") == pytest.approx(expected, abs=1e-10)
    assert cca_similarity(X, Y, method="svcca") != pytest.approx(cca_similarity(X, Y), abs=1e-3)


def test_pwcca_weights_by_projection_on_canonical_variates():
    X, Y = _pair(2, p=4, q=4, noise=2.0)
    rho, H = _qr_cca(X, Y)
    alpha = np.abs(H.T @ (X - X.mean(axis=0))).sum(axis=1)
    expected = np.sum(alpha / alpha.sum() * rho)
    assert cca_similarity(X, Y, method="pwcca") == pytest.approx(expected, abs=1e-10)


def test_invariant_to_invertible_linear_maps():
    X, Y = _pair(3)
    A = np.random.default_rng(0).normal(size=(5, 5))
    assert cca_similarity(X @ A + 3, Y) == pytest.approx(cca_similarity(X, Y), abs=1e-9)
    # PWCCA's weights come from X's units: invariant to maps of Y only
    B = np.random.default_rng(1).normal(size=(4, 4))
    assert cca_similarity(X, Y @ B - 1, method="pwcca") == pytest.approx(
        cca_similarity(X, Y, method="pwcca"), abs=1e-9)
    assert cca_similarity(X @ A, Y, method="pwcca") != pytest.approx(
        cca_similarity(X, Y, method="pwcca"), abs=1e-4)


def test_split_noise_correction_removes_attenuation():
    rng = np.random.default_rng(0)
    n, p = 3000, 4
    S = rng.normal(size=(n, p))
    T = S @ rng.normal(size=(p, p)) + 0.5 * rng.normal(size=(n, p))  # true correlations < 1
    truth = canonical_correlations(S, T)
    Xr = S + 1.5 * rng.normal(size=(4, n, p))
    Yr = T + 1.5 * rng.normal(size=(4, n, p))
    assert cca_similarity(Xr, Yr) < truth.mean() - 0.15  # attenuated by trial noise
    np.testing.assert_allclose(canonical_correlations(Xr, Yr, noise_correction="split"), truth,
                               atol=0.04)
    for method in ("mean", "svcca", "pwcca"):
        assert cca_similarity(Xr, Yr, method=method, noise_correction="split") == pytest.approx(
            cca_similarity(S, T, method=method), abs=0.03)
    # noise correlated between X and Y within a trial does not bias the cross-half products
    shared = 1.5 * rng.normal(size=(4, n, p))
    naive = cca_similarity(S + shared, T + shared)
    split = cca_similarity(S + shared, T + shared, noise_correction="split")
    assert abs(split - truth.mean()) < 0.03 < abs(naive - truth.mean())


def test_intervals_and_p_values():
    X, Y = _pair(4, n=150, p=2, q=2, noise=2.0)
    r = cca_similarity(X, Y, n_bootstraps=200, n_permutations=99, random_state=0)
    assert isinstance(r, ResamplingResult)
    assert r.ci[0] <= r.value_corrected <= r.ci[1] and r.p_value == pytest.approx(0.01)
    rng = np.random.default_rng(0)
    null = cca_similarity(X, rng.normal(size=(150, 2)), n_permutations=99, random_state=0)
    assert null.p_value > 0.05


@pytest.mark.slow
def test_bootstrap_interval_covers_the_population_mean_canonical_correlation():
    # X, Y with population canonical correlations 0.6 and 0.3: mean 0.45.
    rho = np.array([0.6, 0.3])
    covered = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        Z, E = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
        X, Y = Z, rho * Z + np.sqrt(1 - rho**2) * E
        lo, hi = cca_similarity(X, Y, n_bootstraps=1000, random_state=seed).ci
        covered += lo <= rho.mean() <= hi
    assert 45 <= covered <= 49  # 90-98 % of 50


def test_bad_input_names_the_argument():
    X, Y = _pair(5, n=30)
    with pytest.raises(ValueError, match="same stimuli"):
        cca_similarity(X, Y[:29])
    with pytest.raises(ValueError, match="X has 2 sample"):
        cca_similarity(X[:2], Y[:2])
    bad = Y.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="Y contains 0 NaN and 1 infinite"):
        cca_similarity(X, bad)
    with pytest.raises(ValueError, match="Y has zero variance"):
        cca_similarity(X, np.zeros((30, 2)))
    with pytest.raises(ValueError, match=r"unequal shape: X\[0\] has shape \(30, 5\) and X\[1\]"):
        cca_similarity([X, X[:20]], Y)
    with pytest.raises(ValueError, match="method must be one of"):
        cca_similarity(X, Y, method="svd")
    with pytest.raises(ValueError, match="variance_kept must be"):
        cca_similarity(X, Y, method="svcca", variance_kept=0.0)
    with pytest.raises(ValueError, match="needs repeats"):
        canonical_correlations(X, Y, noise_correction="split")
