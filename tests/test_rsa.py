"""RDMs and their comparison against rsatoolbox 0.3 (the peer) and against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from geomkit.measures import RSA, compare_rdms, rdm, rsa

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.rdm import calc_rdm, compare  # noqa: E402

TOL = 1e-8
# rsatoolbox fills integer descriptors with NaN internally (its own warning).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")


def _toolbox_rdm(X, metric):
    """rsatoolbox's RDM of X (n_stimuli, n_units) or (n_repeats, n_stimuli, n_units), square."""
    if X.ndim == 2:
        X = X[None]
    R, n, _ = X.shape
    ds = Dataset(X.reshape(R * n, -1),
                 obs_descriptors={"stim": np.tile(np.arange(n), R), "run": np.repeat(np.arange(R), n)})
    kw = {"cv_descriptor": "run"} if metric == "crossnobis" else {}
    return calc_rdm(ds, method=metric, descriptor="stim", **kw).get_matrices()[0]


def _as_rdms(D):
    from rsatoolbox.rdm import RDMs

    return RDMs(D[None])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(25, 12))
    return signal + 0.7 * rng.normal(size=(4, 25, 12))


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "crossnobis"])
def test_rdm_equals_rsatoolbox(data, metric):
    ours = rdm(data, metric=metric)
    np.testing.assert_allclose(ours, _toolbox_rdm(data, metric), rtol=0, atol=TOL)
    np.testing.assert_array_equal(ours, ours.T)
    assert ours.shape == (25, 25)


def test_two_dimensional_input_with_stacked_repeats(data):
    stacked = data.reshape(-1, data.shape[-1])
    np.testing.assert_allclose(rdm(stacked, metric="crossnobis", repeats=4),
                               rdm(data, metric="crossnobis"), rtol=0, atol=1e-12)
    np.testing.assert_allclose(rdm(data[0], metric="euclidean"),
                               _toolbox_rdm(data[0], "euclidean"), rtol=0, atol=TOL)


def test_crossnobis_with_a_noise_precision_equals_rsatoolbox(data):
    from rsatoolbox.data import Dataset

    rng = np.random.default_rng(1)
    A = rng.normal(size=(12, 12))
    P = A @ A.T / 12 + np.eye(12)
    R, n, p = data.shape
    ds = Dataset(data.reshape(R * n, p),
                 obs_descriptors={"stim": np.tile(np.arange(n), R), "run": np.repeat(np.arange(R), n)})
    peer = calc_rdm(ds, method="crossnobis", descriptor="stim", cv_descriptor="run",
                    noise=P).get_matrices()[0]
    np.testing.assert_allclose(rdm(data, metric="crossnobis", noise=P), peer, rtol=0, atol=TOL)


@pytest.mark.parametrize("method,peer", [("spearman", "spearman"), ("kendall_tau_a", "tau-a"),
                                         ("cosine", "cosine"), ("whitened_cosine", "cosine_cov"),
                                         ("pearson", "corr")])
def test_compare_rdms_equals_rsatoolbox(data, method, peer):
    A = rdm(data, metric="crossnobis")
    B = rdm(data[0] ** 2 + data[1], metric="euclidean")
    expected = float(compare(_as_rdms(A), _as_rdms(B), method=peer)[0, 0])
    assert compare_rdms(A, B, method=method) == pytest.approx(expected, abs=TOL)
    # condensed input gives the same
    iu = np.triu_indices(25, k=1)
    assert compare_rdms(A[iu], B[iu], method=method) == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_a_with_ties_equals_rsatoolbox_and_brute_force():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, size=45).astype(float)  # a model predicting many tied distances
    b = rng.normal(size=45)
    expected = float(compare(_as_rdms(_square(a)), _as_rdms(_square(b)), method="tau-a")[0, 0])
    i, j = np.triu_indices(45, k=1)
    brute = np.sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])) / (45 * 44 / 2)
    assert compare_rdms(a, b, method="kendall_tau_a") == pytest.approx(expected, abs=TOL)
    assert compare_rdms(a, b, method="kendall_tau_a") == pytest.approx(brute, abs=1e-12)


def _square(v):
    from scipy.spatial.distance import squareform

    return squareform(v)


def test_crossnobis_is_unbiased_where_the_mean_distance_is_inflated():
    """x_ri = s_i + e_ri, e ~ N(0, 1): the distance of repeat means gains 2 sigma^2 / R per unit."""
    rng = np.random.default_rng(2)
    n, p, R, sigma = 10, 50, 3, 1.0
    S = rng.normal(size=(n, p))
    true = rdm(S, metric="euclidean")
    draws = 300
    cross, naive = np.empty((draws, n, n)), np.empty((draws, n, n))
    for k in range(draws):
        X = S + sigma * rng.normal(size=(R, n, p))
        cross[k] = rdm(X, metric="crossnobis")
        naive[k] = rdm(X, metric="euclidean")
    off = ~np.eye(n, dtype=bool)
    se = cross.std(axis=0)[off] / np.sqrt(draws)
    z = (cross.mean(axis=0) - true)[off] / se
    assert np.max(np.abs(z)) < 5  # every distance unbiased (90 entries, 5 Monte-Carlo s.e.)
    assert abs(z.mean()) * np.sqrt(z.size) < 5
    bias = (naive.mean(axis=0) - true)[off]
    assert bias.mean() == pytest.approx(2 * sigma**2 / R, abs=0.02)  # 0.667, far from 0


def test_rsa_function_and_estimator_agree_and_score(data):
    X, Y = data, data[:, :, ::-1] * 2.0
    value = rsa(X, Y, metric="crossnobis", method="whitened_cosine")
    assert value == pytest.approx(1.0, abs=1e-12)  # unit order and scale do not matter
    est = RSA(metric="crossnobis", method="whitened_cosine").fit(X, Y)
    assert est.value_ == pytest.approx(value, abs=1e-15)
    assert est.score(X, Y) == pytest.approx(value, abs=1e-15)
    np.testing.assert_allclose(est.rdm_x_, rdm(X, metric="crossnobis"))


def test_bootstrap_leaves_out_pairs_of_a_stimulus_with_its_copy():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 5))
    Y = X + 0.3 * rng.normal(size=(30, 5))
    idx = np.r_[np.arange(30), 0, 0, 1]  # stimuli 0 and 1 drawn again
    est = RSA(method="spearman")
    value = est._statistic(X[idx], Y[idx])
    iu = np.triu_indices(33, k=1)
    A, B = rdm(X[idx]), rdm(Y[idx])
    same = idx[iu[0]] == idx[iu[1]]
    from scipy.stats import spearmanr

    assert value == pytest.approx(spearmanr(A[iu][~same], B[iu][~same]).statistic, abs=1e-12)
    est = RSA(n_bootstraps=50, n_permutations=19, random_state=0).fit(X, Y)
    assert est.ci_[0] <= est.value_corrected_ <= est.ci_[1]
    assert est.p_value_ == pytest.approx(0.05)
    plain = rsa(X, Y, n_bootstraps=50, n_permutations=19, random_state=0)
    assert (plain.value, plain.ci, plain.p_value) == (est.value_, est.ci_, est.p_value_)


def _noise(*shape):
    return np.random.default_rng(0).normal(size=shape)


@pytest.mark.parametrize("call,match", [
    (lambda: rdm(np.ones((2, 4))), "at least 3"),
    (lambda: rdm(np.full((5, 3), np.nan)), "NaN"),
    (lambda: rdm(np.r_[np.eye(3), np.ones((2, 3))], metric="correlation"),
     "correlation distance is undefined"),
    (lambda: rdm(_noise(5, 3), metric="crossnobis"), "needs repeats"),
    (lambda: rdm(np.ones((7, 3)), metric="crossnobis", repeats=2), "not a multiple"),
    (lambda: rdm(np.ones((5, 3)), metric="cosine"), "metric must be one of"),
    (lambda: compare_rdms(np.ones(10), np.ones(6)), "same stimuli"),
    (lambda: compare_rdms(np.ones(7), np.ones(7)), "not n \\(n - 1\\) / 2"),
    (lambda: compare_rdms(np.ones(10), np.arange(10.0), method="cosine_cov"), "did you mean"),
    (lambda: rsa(_noise(5, 3), _noise(6, 3)), "same stimuli"),
    (lambda: rsa(_noise(2, 5, 3), _noise(5, 3), metric="crossnobis"), "needs repeats: Y of shape"),
    (lambda: rsa([np.ones((5, 3)), np.ones((5, 4))], np.ones((5, 3))), "unequal shape"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_average_ranks_equal_scipy_rankdata_with_ties():
    from scipy.stats import rankdata

    from geomkit.measures.rsa import _average_ranks

    v = np.random.default_rng(5).integers(0, 50, size=2000).astype(float)
    np.testing.assert_array_equal(_average_ranks(v), rankdata(v))
