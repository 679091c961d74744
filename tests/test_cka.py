"""CKA against closed forms, the n x n HSIC formulas written out, and synthetic data with known noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.base import clone

from geomkit.measures import CKA, cka
from geomkit.measures.cka import _prepare, _split_self_hsic


def _gram_hsic(K, L):
    """tr(K H L H) / (n - 1)^2 with the centring matrix H, as the HSIC papers write it."""
    n = len(K)
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def _song_hsic(K, L):
    """Song et al. (2012), eq. 5, written out on n x n matrices."""
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


def _u_statistic(K, L):
    """The HSIC U-statistic as a sum over distinct quadruples (tiny n only)."""
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(len(K)), 4):
        total += K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2.0 * K[i, j] * L[i, q]
        count += 1
    return total / count


def _brute_cka(X, Y, hsic=_gram_hsic):
    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _orthogonal(p, rng):
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    return Q


@pytest.mark.parametrize("shape", [(60, 8), (15, 40)])  # feature route, Gram route
@pytest.mark.parametrize("kwargs", [{}, {"debiased": True}, {"kernel": "rbf"},
                                    {"kernel": "rbf", "debiased": True}])
def test_invariant_to_orthogonal_transform_isotropic_scale_and_offset(shape, kwargs):
    rng = np.random.default_rng(0)
    X = rng.normal(size=shape)
    Y = X @ _orthogonal(shape[1], rng) * 3.7 + rng.normal(size=shape[1])
    assert cka(X, Y, **kwargs) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("n,p,q", [(80, 6, 9), (12, 30, 25), (40, 10, 50)])
def test_linear_cka_equals_the_gram_hsic_formula(n, p, q):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, p))
    Y = X[:, :1] @ rng.normal(size=(1, q)) + rng.normal(size=(n, q))
    assert cka(X, Y) == pytest.approx(_brute_cka(X, Y), abs=1e-10)
    assert cka(X, Y, debiased=True) == pytest.approx(_brute_cka(X, Y, _song_hsic), abs=1e-10)


def test_feature_and_gram_routes_agree():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 7))
    for debiased in (False, True):
        feat = _prepare(X, kernel="linear", debiased=debiased, sigma=1.0, name="X", gram=False)
        gram = _prepare(X, kernel="linear", debiased=debiased, sigma=1.0, name="X", gram=True)
        assert feat.K is None and gram.X is None
        assert feat.self_hsic == pytest.approx(gram.self_hsic, rel=1e-12)


def test_song_formula_is_the_u_statistic_and_shift_invariant():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    Xc = X - X.mean(axis=0)
    assert _song_hsic(Xc @ Xc.T, Y @ Y.T) == pytest.approx(_u_statistic(X @ X.T, Y @ Y.T), abs=1e-12)


def test_rbf_cka_equals_the_gram_formula_with_median_bandwidth():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 6))

    def rbf(A, sigma):
        D = np.sqrt(((A[:, None] - A[None]) ** 2).sum(-1))
        width = sigma * np.median(D[np.triu_indices(len(A), k=1)])
        return np.exp(-D**2 / (2 * width**2))

    for sigma in (0.5, 1.0, 2.0):
        K, L = rbf(X, sigma), rbf(Y, sigma)
        expected = _gram_hsic(K, L) / np.sqrt(_gram_hsic(K, K) * _gram_hsic(L, L))
        assert cka(X, Y, kernel="rbf", sigma=sigma) == pytest.approx(expected, abs=1e-10)


def test_debiased_cka_of_independent_representations_is_near_zero_the_biased_is_not():
    """n=500, 100 units each: the biased CKA sits near 0.17 by chance alone."""
    biased, debiased = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        X, Y = rng.normal(size=(500, 100)), rng.normal(size=(500, 100))
        biased.append(cka(X, Y))
        debiased.append(cka(X, Y, debiased=True))
    assert np.mean(np.abs(debiased)) < 0.01
    assert np.mean(biased) > 0.15


def test_split_self_hsic_is_the_u_statistic_of_the_cross_repeat_kernel():
    rng = np.random.default_rng(4)
    for n, p in ((8, 3), (7, 12)):  # both routes
        X1, X2 = rng.normal(size=(n, p)), rng.normal(size=(n, p))
        K = (X1 - X1.mean(0)) @ (X2 - X2.mean(0)).T
        assert _split_self_hsic(X1, X2) == pytest.approx(_u_statistic(K, K.T), abs=1e-10)


def test_noise_correction_recovers_the_noise_free_cka():
    """x_ri = s_i + e_ri with e ~ N(0, 3^2 I) independent across repeats and stimuli.

    The noise-free value is the debiased CKA of the signal itself. Averaging the
    4 repeats leaves noise variance 9/4 per unit in X's self term and deflates
    CKA; the repeat-split estimate is centred on the noise-free value.
    """
    rng = np.random.default_rng(5)
    n, p = 200, 30
    S = rng.normal(size=(n, 5)) @ rng.normal(size=(5, p))
    Y = S @ rng.normal(size=(p, 10))
    truth = cka(S, Y, debiased=True)
    corrected, naive = [], []
    for _ in range(40):
        X = S + 3.0 * rng.normal(size=(4, n, p))
        corrected.append(cka(X, Y, noise_correction="split"))
        naive.append(cka(X, Y, noise_correction="none", debiased=True))
    se = np.std(corrected) / np.sqrt(len(corrected))
    assert abs(np.mean(corrected) - truth) < 4 * se + 1e-3
    assert truth - np.mean(naive) > 0.04  # the averaged repeats lose ~0.06 here


def test_noise_correction_on_both_sides_with_shared_trial_noise():
    """Both sides recorded in the same trials with noise correlated between them."""
    rng = np.random.default_rng(6)
    n, p = 150, 20
    S = rng.normal(size=(n, p))
    T = S @ rng.normal(size=(p, p)) / np.sqrt(p)
    truth = cka(S, T, debiased=True)
    corrected, naive = [], []
    for _ in range(30):
        shared = 2.0 * rng.normal(size=(4, n, p))
        X = S + shared + rng.normal(size=(4, n, p))
        Y = T + shared + rng.normal(size=(4, n, p))
        corrected.append(cka(X, Y, noise_correction="split"))
        naive.append(cka(X, Y, debiased=True, noise_correction="none"))
    se = np.std(corrected) / np.sqrt(len(corrected))
    assert abs(np.mean(corrected) - truth) < 4 * se + 1e-3
    assert abs(np.mean(naive) - truth) > 0.1  # averaged repeats: 0.38 against 0.69


def test_estimator_matches_function_and_resamples():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(120, 6))
    Y = X @ rng.normal(size=(6, 4)) + rng.normal(size=(120, 4))
    est = CKA(debiased=True, n_bootstraps=100, n_permutations=49, random_state=0).fit(X, Y)
    assert est.value_ == pytest.approx(cka(X, Y, debiased=True), abs=1e-15)
    assert est.ci_[0] <= est.value_corrected_ <= est.ci_[1]
    assert est.p_value_ == pytest.approx(1 / 50)
    assert est.bootstrap_.shape == (100,) and est.null_.shape == (49,)
    assert est.score(X, Y) == pytest.approx(est.value_)
    plain = cka(X, Y, debiased=True, n_bootstraps=100, n_permutations=49, random_state=0)
    assert (plain.value, plain.ci, plain.p_value) == (est.value_, est.ci_, est.p_value_)
    again = clone(est).fit(X, Y)
    assert again.ci_ == est.ci_  # same seed, same interval
    # unrelated data: not significant
    assert CKA(n_permutations=49, random_state=0).fit(X, rng.normal(size=(120, 4))).p_value_ > 0.05


def _noise(*shape):
    return np.random.default_rng(0).normal(size=shape)


@pytest.mark.parametrize("call,error,match", [
    (lambda: cka(_noise(5, 3), _noise(6, 3)), ValueError, "same stimuli"),
    (lambda: cka(np.ones((2, 3)), np.ones((2, 3))), ValueError, "at least 3"),
    (lambda: cka(np.full((5, 3), np.inf), np.ones((5, 3))), ValueError, "infinite"),
    (lambda: cka(np.ones((5, 3)), np.random.default_rng(0).normal(size=(5, 3))), ValueError,
     "X has zero variance"),
    (lambda: cka(np.random.default_rng(0).normal(size=(5, 3)), np.full((5, 9), 2.0)), ValueError,
     "Y has zero variance"),
    (lambda: cka([np.ones((5, 3)), np.ones((4, 3))], np.ones((5, 3))), ValueError, "unequal shape"),
    (lambda: cka(np.random.default_rng(0).normal(size=(1, 5, 3)), np.eye(5), noise_correction="split"),
     ValueError, "needs repeats on at least one side"),
    (lambda: cka(np.random.default_rng(0).normal(size=(2, 9, 3)), np.eye(9), debiased=False,
                 noise_correction="split"),
     ValueError, "needs the debiased"),
    (lambda: cka(np.random.default_rng(0).normal(size=(2, 9, 3)), np.eye(9), kernel="rbf",
                 noise_correction="split"),
     ValueError, "kernel='linear' only"),
    (lambda: cka(np.eye(3), np.eye(3), debiased=True), ValueError, "at least 4 stimuli"),
    (lambda: cka(np.eye(5), np.eye(5), kernel="poly"), ValueError, "kernel must be one of"),
    (lambda: cka(np.eye(5), np.eye(5), sigma=0.0), ValueError, "sigma must be"),
    (lambda: CKA(n_bootstraps=-1).fit(np.eye(5), np.eye(5)), ValueError, "n_bootstraps"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.slow
def test_bootstrap_interval_covers_the_population_cka():
    """X ~ N(0, I_5), Y = X + N(0, I_5): population linear CKA = 1 / (1 + 1) = 0.5 exactly.

    (Sigma_xy = I, Sigma_yy = 2 I: ||I||^2 / (||I|| ||2 I||) = 1/2.)
    """
    hits = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(300, 5))
        Y = X + rng.normal(size=(300, 5))
        est = CKA(debiased=True, n_bootstraps=300, random_state=seed).fit(X, Y)
        hits += est.ci_[0] <= 0.5 <= est.ci_[1]
    assert 0.90 <= hits / 50 <= 0.98


@pytest.mark.parametrize("debiased", [False, True])
def test_feature_route_never_forms_an_n_by_n_matrix(debiased):
    import tracemalloc

    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(3000, 20)), rng.normal(size=(3000, 30))
    tracemalloc.start()
    try:
        cka(X, Y, debiased=debiased)
        cka(np.stack([X, X + 0.1]), Y, noise_correction="split")  # the repeat-split route too
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 3000 * 3000 / 4  # a quarter of one n x n float64 matrix (72 MB)
