"""PowerLawSpectrum and the spectrum functions, against ground truth.

Ground truth: ``make_powerlaw_data`` (population eigenvalues n ** -alpha),
exact spectra, numpy's ``eigvalsh`` of the covariance, a brute-force cvPCA,
and the ``powerlaw`` package for the MLE.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from geomkit.datasets import make_powerlaw_data
from geomkit.measures.spectrum import (
    PowerLawSpectrum,
    SpectrumWarning,
    cvpca_spectrum,
    eigenspectrum,
    power_law_exponent,
    smoothness_threshold,
)
from geomkit.measures._powerlaw import clauset_fit, usable_count
from geomkit.moments import MomentAccumulator


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    # This machine is shared: oversubscribed BLAS threads make small products 100x slower
    # (measured), so the suite runs single-threaded; results do not depend on it.
    with threadpool_limits(1):
        yield


def quiet(est, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpectrumWarning)
        return est.fit(*args)


def quiet_call(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpectrumWarning)
        return fn()


# ----------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_alpha_recovered_5000_stimuli_1000_units(alpha):
    X, _ = make_powerlaw_data(5000, 1000, alpha=alpha, random_state=0)
    est = PowerLawSpectrum().fit(X)
    assert est.fit_range_ == (11, 500)
    assert abs(est.alpha_ - alpha) <= 0.05
    assert est.r2_ > 0.99


def _noisy_case():
    # Noise variance 0.1**2 = 0.01 dwarfs the signal eigenvalues beyond rank ~100 (1/n).
    return make_powerlaw_data(3000, 400, alpha=1.0, noise=0.1, n_repeats=2, random_state=1)


def test_cvpca_recovers_alpha_where_pca_is_flattened_by_noise():
    X, _ = _noisy_case()
    pca = quiet(PowerLawSpectrum(), X[0])
    cv = quiet(PowerLawSpectrum(method="cvpca", n_shuffles=5, random_state=0), X)
    assert pca.alpha_ < 1.0 - 0.15  # plain PCA is off by more than 0.15
    assert abs(cv.alpha_ - 1.0) <= 0.07
    # half the usable ranks (200), cut where the axes of one repeat stop resolving the signal:
    # squared overlap < 0.5 beyond rank ~170 (signal 1/170 vs noise variance 0.01 per unit)
    assert cv.fit_range_[0] == 11 and 150 <= cv.fit_range_[1] < 200


def test_cvpca_noise_spectrum_is_the_trial_noise():
    X, _ = _noisy_case()
    _, noise = cvpca_spectrum(X, n_shuffles=1, random_state=0)
    # Isotropic noise of variance 0.01 per unit: the eigenvalues average to 0.01 and
    # spread as Marchenko-Pastur with ratio 400 / 3000.
    ratio = 400 / 3000
    assert noise.mean() == pytest.approx(0.01, rel=0.02)
    assert noise[0] == pytest.approx(0.01 * (1 + np.sqrt(ratio)) ** 2, rel=0.05)


def _brute_cvpca(A, B, n_shuffles, seed):
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    total = 0.0
    for _ in range(n_shuffles):
        s = np.ones(n)
        s[rng.permutation(n)[: n // 2]] = -1
        swap = s < 0
        a, b = A.copy(), B.copy()
        a[swap], b[swap] = B[swap], A[swap]
        a, b = a - a.mean(0), b - b.mean(0)
        # Stringer et al.: axes of repeat 1 (unit space), projections of both repeats.
        _, _, vt = np.linalg.svd(a, full_matrices=False)
        total = total + ((a @ vt.T) * (b @ vt.T)).sum(0)
    return total / n_shuffles / (n - 1)


@pytest.mark.parametrize("shape", [(120, 30), (30, 120)], ids=["covariance", "gram"])
def test_cvpca_equals_brute_force(shape):
    X, _ = make_powerlaw_data(*shape, alpha=1.0, noise=0.3, n_repeats=2, random_state=2)
    X[1] += 0.5  # an offset between repeats must not leak into the signal
    signal, noise = cvpca_spectrum(X, n_shuffles=3, random_state=7)
    ref = _brute_cvpca(X[0], X[1], 3, 7)
    k = min(shape) - 1  # the last Gram axis is the centring null direction
    np.testing.assert_allclose(signal[:k], ref[:k], rtol=0, atol=1e-10 * np.abs(ref).max())
    ref_noise = np.linalg.eigvalsh(np.cov((X[0] - X[1]) / np.sqrt(2), rowvar=False))[::-1]
    np.testing.assert_allclose(noise, ref_noise[: noise.size], atol=1e-10 * ref_noise[0])


@pytest.mark.parametrize("shape", [(120, 30), (30, 120)], ids=["covariance", "gram"])
def test_cvpca_fit_with_y_equals_fit_on_stacked_repeats(shape):
    X, _ = make_powerlaw_data(*shape, alpha=1.0, noise=0.3, n_repeats=2, random_state=3)
    kw = dict(method="cvpca", fit_range=(2, 10), n_shuffles=3, n_bootstraps=4, random_state=5)
    a = quiet(PowerLawSpectrum(**kw), X[0], X[1])
    b = quiet(PowerLawSpectrum(**kw), np.stack([X[0], X[1]]))
    np.testing.assert_array_equal(a.eigenvalues_, b.eigenvalues_)
    np.testing.assert_array_equal(a.noise_eigenvalues_, b.noise_eigenvalues_)
    np.testing.assert_array_equal(a.alpha_bootstrap_, b.alpha_bootstrap_)
    assert (a.alpha_, a.alpha_ci_, a.fit_range_) == (b.alpha_, b.alpha_ci_, b.fit_range_)
    # Both equal the brute-force published algorithm (same shuffles, drawn first).
    ref = _brute_cvpca(X[0], X[1], 3, 5)
    k = min(shape) - 1
    np.testing.assert_allclose(a.eigenvalues_[:k], ref[:k], rtol=0, atol=1e-10 * np.abs(ref).max())
    assert a.score(X[0], X[1]) == b.score(np.stack([X[0], X[1]]))


@pytest.mark.parametrize("shape", [(120, 30), (30, 120)], ids=["covariance", "gram"])
def test_cvpca_torch_cpu_path_equals_numpy_path(shape):
    torch = pytest.importorskip("torch")
    X, _ = make_powerlaw_data(*shape, alpha=1.0, noise=0.3, n_repeats=2, random_state=4)
    sig_t, noise_t = cvpca_spectrum(X, n_shuffles=3, random_state=1, device="cpu")
    sig_n, noise_n = cvpca_spectrum(X, n_shuffles=3, random_state=1)
    k = min(shape) - 1  # the last Gram axis is the centring null direction
    np.testing.assert_allclose(sig_t[:k], sig_n[:k], rtol=0, atol=1e-10 * np.abs(sig_n).max())
    np.testing.assert_allclose(noise_t, noise_n, rtol=0, atol=1e-10 * noise_n[0])
    kw = dict(method="cvpca", fit_range=(2, 10), n_shuffles=2, n_bootstraps=3, random_state=2)
    a = quiet(PowerLawSpectrum(device="cpu", **kw), torch.from_numpy(X))
    b = quiet(PowerLawSpectrum(**kw), X)
    assert a.alpha_ == pytest.approx(b.alpha_, abs=1e-10)
    np.testing.assert_allclose(a.alpha_bootstrap_, b.alpha_bootstrap_, rtol=0, atol=1e-9)
    assert a.score(X) == pytest.approx(b.score(X), abs=1e-9)


_RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "X, match",
    [
        (_RNG.normal(size=(2, 2, 10)), "at least 3"),
        (_RNG.normal(size=(2, 30, 2)), "at least 3 stimuli and 3 units"),
        (np.where(_RNG.random((2, 30, 10)) < 0.01, np.nan, _RNG.normal(size=(2, 30, 10))), "NaN"),
        (np.where(_RNG.random((2, 30, 10)) < 0.01, np.inf, _RNG.normal(size=(2, 30, 10))), "infinity"),
        (np.full((2, 30, 10), 4.0), "each repeat has zero variance"),
        # Constant within each repeat, offset between them: the swaps alone would fake variance.
        (np.stack([np.full((30, 10), 1.0), np.full((30, 10), 2.0)]), "each repeat has zero variance"),
        (np.stack([np.full((10, 30), 1.0), np.full((10, 30), 2.0)]), "each repeat has zero variance"),
    ],
    ids=["2 stimuli", "2 units", "nan", "inf", "constant", "constant repeats, offset", "gram, offset"],
)
def test_cvpca_bad_input_raises(X, match):
    est = PowerLawSpectrum(method="cvpca", fit_range=(1, 3), n_shuffles=2)
    with pytest.raises(ValueError, match=match):
        est.fit(X)
    with pytest.raises(ValueError, match=match):
        est.fit(X[0], X[1])


def test_pca_eigenvalues_equal_numpy_eigvalsh():
    X, _ = make_powerlaw_data(400, 60, alpha=1.0, random_state=3)
    X = X + 5.0  # a mean far from zero: the centring must be exact
    ref = np.linalg.eigvalsh(np.cov(X, rowvar=False))[::-1]
    est = quiet(PowerLawSpectrum(fit_range=(2, 20)), X)
    np.testing.assert_allclose(est.eigenvalues_, ref, rtol=1e-10, atol=1e-13 * ref[0])
    np.testing.assert_allclose(eigenspectrum(X), ref, rtol=1e-10, atol=1e-13 * ref[0])


def test_gram_route_equals_covariance_route():
    X, _ = make_powerlaw_data(50, 300, alpha=1.0, random_state=4)
    gram = eigenspectrum(X)  # 50 < 300: the Gram route
    cov = np.linalg.eigvalsh(np.cov(X, rowvar=False))[::-1][:50]
    assert gram.shape == (50,)
    np.testing.assert_allclose(gram, cov, rtol=1e-9, atol=1e-12 * cov[0])


def test_float32_input_is_accumulated_in_float64():
    X, _ = make_powerlaw_data(500, 80, alpha=2.0, random_state=5)
    X32 = X.astype(np.float32)
    ref = np.linalg.eigvalsh(np.cov(X32.astype(np.float64), rowvar=False))[::-1]
    np.testing.assert_allclose(eigenspectrum(X32), ref, rtol=1e-9, atol=1e-13 * ref[0])


@pytest.mark.parametrize("route", ["covariance", "gram"])
@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("shift", ["default", "first row"])
def test_one_pass_product_equals_two_pass_centring(monkeypatch, route, offset, shift):
    # Small blocks and cache pieces: several of each are summed (blocks of 100 rows of
    # 1000, or of 64 units of 150; pieces of 30 rows); a mean 1000 standard deviations
    # from zero tests that the shifted-data formula does not cancel, and a steep
    # spectrum (alpha 3, lambda_37 = 2e-5 lambda_1) that float32 rows accumulate in
    # float64.
    from geomkit.measures import _spectral_moments as sm

    shape = (1000, 37) if route == "covariance" else (60, 150)
    monkeypatch.setattr(sm, "_BLOCK_ELEMENTS", 100 * 37)
    monkeypatch.setattr(sm, "_CACHE_ELEMENTS", 30 * shape[1] if route == "gram" else 30 * 37)
    X, _ = make_powerlaw_data(*shape, alpha=3.0, random_state=2)
    X32 = (X + offset).astype(np.float32)
    X64 = X32.astype(np.float64)
    mean = X64.mean(axis=0)
    Xc = X64 - mean
    ref = Xc.T @ Xc if route == "covariance" else Xc @ Xc.T
    product, got_mean = sm.shifted_product(X32, route, None if shift == "default" else X64[0])
    assert np.array_equal(product, product.T)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-13, atol=1e-13 * (offset + X.std()))
    np.testing.assert_allclose(product, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    k = min(shape) - 1  # the centred Gram matrix has rank n - 1
    top = np.linalg.eigvalsh(product)[::-1][:k]
    np.testing.assert_allclose(top, np.linalg.eigvalsh(Xc.T @ Xc)[::-1][:k], rtol=1e-7)


def test_mirrored_triangle_is_exactly_symmetric():
    from geomkit.measures._spectral_moments import _mirror_upper

    A = np.random.default_rng(0).standard_normal((300, 300))  # 300: panels of 128 do not divide it
    got = _mirror_upper(np.asfortranarray(np.triu(A)))
    np.testing.assert_array_equal(got, np.triu(A) + np.triu(A, 1).T)


@pytest.mark.parametrize("symmetric", [False, True])
def test_backend_eigvalsh_leaves_its_input_alone(symmetric):
    from geomkit._backend import eigvalsh

    B = np.random.default_rng(1).standard_normal((40, 40))
    C = B @ B.T
    before = C.copy()
    np.testing.assert_allclose(eigvalsh(C, symmetric=symmetric), np.linalg.eigvalsh(C)[::-1],
                               rtol=1e-12, atol=1e-12 * before.max())
    np.testing.assert_array_equal(C, before)


def test_torch_device_path_equals_numpy_path():
    torch = pytest.importorskip("torch")
    X, _ = make_powerlaw_data(300, 40, alpha=1.0, random_state=6)
    np.testing.assert_allclose(eigenspectrum(X, device="cpu"), eigenspectrum(X), rtol=1e-10)
    a = quiet(PowerLawSpectrum(fit_range=(2, 15), device="cpu"), torch.from_numpy(X))
    b = quiet(PowerLawSpectrum(fit_range=(2, 15)), X)
    assert a.alpha_ == pytest.approx(b.alpha_, abs=1e-10)


def test_xarray_input_equals_numpy():
    import xarray as xr

    X, _ = make_powerlaw_data(300, 40, alpha=1.0, random_state=6)
    da = xr.DataArray(X, dims=("stimulus", "unit"))
    np.testing.assert_allclose(eigenspectrum(da), eigenspectrum(X), rtol=1e-12)


# ----------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("weighting", ["1/n", "uniform"])
def test_ols_exact_on_an_exact_power_law(weighting):
    lam = 3.0 * np.arange(1, 2001, dtype=float) ** -1.3
    fit = power_law_exponent(lam, weighting=weighting)
    assert fit.alpha == pytest.approx(1.3, abs=1e-12)
    assert fit.intercept == pytest.approx(np.log(3.0), abs=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.fit_range == (11, 500)


def test_weighting_changes_the_fit_as_weighted_least_squares_says():
    rng = np.random.default_rng(0)
    ranks = np.arange(1, 1001)
    lam = ranks ** -1.0 * np.exp(rng.normal(0, 0.2, ranks.size))
    n = np.arange(11, 501)
    x, y = np.log(n), np.log(lam[10:500])
    for weighting, w in (("1/n", 1.0 / n), ("uniform", np.ones(n.size))):
        slope = np.polyfit(x, y, 1, w=np.sqrt(w))[0]
        assert power_law_exponent(lam, weighting=weighting).alpha == pytest.approx(-slope, abs=1e-10)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0, 2.0, 3.0])
def test_mle_rank_exponent_on_an_exact_power_law(alpha):
    lam = np.arange(1, 2001, dtype=float) ** -alpha
    fit = power_law_exponent(lam, fit_range=(11, 1000), fitter="mle")
    assert abs(fit.alpha - alpha) <= 0.03 * max(alpha, 1.0)
    assert fit.alpha_density == pytest.approx(1 + 1 / fit.alpha)
    assert 11 <= fit.fit_range[1] <= 1000 and fit.xmin == lam[fit.fit_range[1] - 1]
    assert 0 < fit.ks_distance < 0.05


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0])
def test_mle_estimator_recovers_alpha_from_sampled_data(alpha):
    X, lam_true = make_powerlaw_data(2000, 200, alpha=alpha, random_state=0)
    est = PowerLawSpectrum(fitter="mle", fit_range=(5, 100)).fit(X)
    lo, k = est.fit_range_
    # The tail is ranks 1..k (the eigenvalues >= x_min), x_min starting inside fit_range.
    assert lo == 1 and 5 <= k <= 100
    assert est.xmin_ == est.eigenvalues_[k - 1]
    tail = est.eigenvalues_[:k]
    # Brute force at the chosen x_min: a = 1 + k / sum log(x / x_min), alpha = 1 / (a - 1).
    a = 1 + k / np.log(tail / est.xmin_).sum()
    assert est.alpha_density_ == pytest.approx(a, rel=1e-12)
    assert est.alpha_ == pytest.approx(1 / (a - 1), rel=1e-12)
    # KS distance: max |F_emp - F_fit| over the sorted tail, F_emp = (0..k-1) / k.
    x = np.sort(tail)
    ks = np.max(np.abs(np.arange(k) / k - (1 - (x / est.xmin_) ** (1 - a))))
    assert est.ks_distance_ == pytest.approx(ks, rel=1e-10)
    assert est.ks_distance_ < 0.05  # measured: at most 0.033 over 40 seeds x 3 exponents
    # Ground truth. The density MLE over k discrete ranks is biased low even on the exact
    # law: with lambda_i = i ** -alpha it gives alpha * (k log k - log k!) / k, about
    # alpha * (1 - log(2 pi k) / (2 k)), -3.5 % at k = 100. Measured over 40 seeds x
    # 3 exponents (2000 x 200, ranks 5..100): alpha_ minus that value has mean +0.002
    # and sd 0.014, at most 0.038; alpha_ minus alpha at most 0.086 alpha.
    law = 1 + k / np.log(lam_true[:k] / lam_true[k - 1]).sum()
    assert abs(est.alpha_ - 1 / (law - 1)) <= 0.05
    assert abs(est.alpha_ - alpha) <= 0.1 * alpha


@pytest.mark.parametrize("seed, a", [(0, 2.0), (1, 2.5), (2, 1.8)])
def test_clauset_fit_equals_the_powerlaw_package(seed, a):
    powerlaw = pytest.importorskip("powerlaw")
    rng = np.random.default_rng(seed)
    x = np.concatenate([(1 - rng.random(400)) ** (-1 / (a - 1)), rng.lognormal(-1, 0.5, 200)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(x, verbose=0).power_law
        ref_alpha, ref_xmin, ref_d = ref.alpha, ref.xmin, ref.D
    got_a, got_xmin, got_d, _ = clauset_fit(x)
    assert got_a == pytest.approx(ref_alpha, rel=1e-10)
    assert got_xmin == ref_xmin
    assert got_d == pytest.approx(ref_d, rel=1e-10)


def test_usable_threshold_ignores_rounding_noise():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 40)) @ rng.normal(size=(40, 100))  # rank 40 in 100 units
    lam = eigenspectrum(X)
    assert usable_count(lam, 100) == 40
    with pytest.warns(SpectrumWarning, match=r"clipped to \(2, 20\)"):
        est = PowerLawSpectrum(fit_range=(2, 50)).fit(X)
    assert est.fit_range_ == (2, 20) and est.n_usable_ == 40


def test_default_fit_range_is_clipped_to_half_the_usable_eigenvalues_with_a_warning():
    X, _ = make_powerlaw_data(2000, 300, alpha=1.0, random_state=0)
    with pytest.warns(SpectrumWarning, match=r"\(11, 500\) clipped to \(11, 150\).*300 usable"):
        est = PowerLawSpectrum().fit(X)
    assert est.fit_range_ == (11, 150)


def test_non_positive_eigenvalues_in_the_fit_range_are_clipped_counted_and_warned():
    lam = np.arange(1, 101, dtype=float) ** -1.0
    lam[[20, 30, 40]] = [-1e-3, 0.0, -2e-3]
    with pytest.warns(SpectrumWarning, match="3 non-positive"):
        fit = power_law_exponent(lam, fit_range=(2, 50))
    assert fit.n_clipped == 3
    assert fit.alpha == pytest.approx(1.0, abs=1e-12)


def test_smoothness_threshold_closed_form():
    assert smoothness_threshold(1) == 3.0
    assert smoothness_threshold(4) == 1.5
    assert smoothness_threshold(1e9) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- invariances
@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
    alpha=st.floats(0.6, 2.5),
)
def test_alpha_invariant_to_scaling_rotation_and_permutations(seed, scale, alpha):
    rng = np.random.default_rng(seed)
    X, _ = make_powerlaw_data(200, 40, alpha=alpha, random_state=seed)
    est = PowerLawSpectrum(fit_range=(2, 15))
    base = quiet(est, X).alpha_
    Q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    variants = {
        "scale": X * scale,
        "rotate units": X @ Q,
        "permute units": X[:, rng.permutation(40)],
        "permute stimuli": X[rng.permutation(200)],
    }
    for name, Xv in variants.items():
        assert quiet(est, Xv).alpha_ == pytest.approx(base, abs=1e-7), name


# ----------------------------------------------------------------------------- bootstrap
def _coverage(n_reps, shape, fit_range, alpha, n_bootstraps):
    """Coverage of alpha_ci_ over seeded datasets, and the mean real and estimated bias."""
    # Ground truth: the population exponent of make_powerlaw_data.
    hits, errors, biases = 0, [], []
    for rep in range(n_reps):
        X, _ = make_powerlaw_data(*shape, alpha=alpha, random_state=1000 + rep)
        est = quiet(PowerLawSpectrum(fit_range=fit_range, n_bootstraps=n_bootstraps,
                                     random_state=rep), X)
        lo, hi = est.alpha_ci_
        hits += lo <= alpha <= hi
        errors.append(est.alpha_ - alpha)
        biases.append(est.alpha_bias_)
    return hits / n_reps, float(np.mean(errors)), float(np.mean(biases))


def test_bootstrap_interval_covers_the_true_alpha_small():
    coverage, _, _ = _coverage(50, (400, 40), (3, 20), 1.0, 100)
    print(f"coverage (400 x 40, ranks 3..20, alpha 1): {coverage:.0%}")
    assert coverage >= 0.90


def test_bootstrap_interval_covers_the_true_alpha_medium():
    coverage, real_bias, estimated_bias = _coverage(50, (2000, 200), (11, 100), 1.5, 20)
    print(f"coverage (2000 x 200, ranks 11..100, alpha 1.5): {coverage:.0%}; bias real "
          f"{real_bias:+.4f}, simulated {estimated_bias:+.4f}")
    assert coverage >= 0.90
    # The simulated bias matches the estimator's real bias (measured +0.006 here).
    assert abs(estimated_bias - real_bias) < 0.002


@pytest.mark.slow
def test_bootstrap_interval_covers_the_true_alpha_full_size():
    # Here the bias (-0.006) is 4 standard errors: an interval without it covers 4 %.
    coverage, real_bias, estimated_bias = _coverage(50, (5000, 1000), (11, 500), 1.0, 20)
    print(f"coverage (5000 x 1000, ranks 11..500, alpha 1): {coverage:.0%}; bias real "
          f"{real_bias:+.4f}, simulated {estimated_bias:+.4f}")
    assert coverage >= 0.90


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    X, _ = make_powerlaw_data(400, 40, alpha=1.0, random_state=0)
    a = quiet(PowerLawSpectrum(fit_range=(3, 20), n_bootstraps=30, random_state=3), X)
    b = quiet(PowerLawSpectrum(fit_range=(3, 20), n_bootstraps=30, random_state=3), X)
    assert a.alpha_ci_ == b.alpha_ci_
    assert a.alpha_ci_[0] < a.alpha_ < a.alpha_ci_[1]
    assert a.alpha_bootstrap_.shape == (30,)


def test_cvpca_bootstrap_interval_covers_the_true_alpha():
    hits = 0
    for rep in range(50):
        X, _ = make_powerlaw_data(600, 40, alpha=1.0, noise=0.1, n_repeats=2,
                                  random_state=2000 + rep)
        est = quiet(PowerLawSpectrum(method="cvpca", fit_range=(3, 20), n_shuffles=2,
                                     n_bootstraps=50, random_state=rep), X)
        hits += est.alpha_ci_[0] <= 1.0 <= est.alpha_ci_[1]
    print(f"cvPCA coverage (2 x 600 x 40, noise 0.1, ranks 3..20): {hits / 50:.0%}")
    # Measured 96 % (48 of 50) with these seeds; 94 %, 94 % and 92 % with three other
    # seed sets (3000+, 4000+, 5000+): the seeded data leave a margin of 3 misses.
    assert hits / 50 >= 0.90


# ----------------------------------------------------------------------------- moments
@pytest.mark.parametrize("method, shape", [("covariance", (600, 50)), ("gram", (60, 200))])
def test_fit_from_moments_equals_fit_from_activations(method, shape):
    X, _ = make_powerlaw_data(*shape, alpha=1.2, random_state=0)
    acc = MomentAccumulator(method=method)
    for batch in np.array_split(X, 7):
        acc.update(batch)
    est_m = quiet(PowerLawSpectrum(fit_range=(2, 20)), acc.finalize())
    est_x = quiet(PowerLawSpectrum(fit_range=(2, 20)), X)
    k = min(shape) - 1
    np.testing.assert_allclose(est_m.eigenvalues_[:k], est_x.eigenvalues_[:k], rtol=1e-9)
    assert est_m.alpha_ == pytest.approx(est_x.alpha_, abs=1e-9)
    assert est_m.n_features_in_ == shape[1]


def test_score_from_covariance_moments_equals_score_from_activations():
    X, _ = make_powerlaw_data(1200, 50, alpha=1.0, random_state=0)
    acc = MomentAccumulator()
    acc.update(X[:600])
    est_m = quiet(PowerLawSpectrum(fit_range=(2, 20)), acc.finalize())
    est_x = quiet(PowerLawSpectrum(fit_range=(2, 20)), X[:600])
    assert est_m.score(X[600:]) == pytest.approx(est_x.score(X[600:]), abs=1e-8)


# ----------------------------------------------------------------------------- score
@pytest.mark.parametrize("shape", [(800, 100), (80, 200)], ids=["covariance", "gram"])
def test_held_out_alpha_on_the_training_data_is_alpha(shape):
    X, _ = make_powerlaw_data(*shape, alpha=1.0, random_state=0)
    est = quiet(PowerLawSpectrum(fit_range=(2, 30)), X)
    # Variance along its own principal axes is the eigenvalue spectrum.
    assert est.held_out_alpha(X) == pytest.approx(est.alpha_, abs=1e-8)


def test_held_out_alphas_of_cross_validation_are_near_the_truth():
    from sklearn.model_selection import KFold

    X, _ = make_powerlaw_data(3000, 200, alpha=1.5, random_state=0)
    for train, test in KFold(3).split(X):
        est = quiet(PowerLawSpectrum(fit_range=(5, 50)), X[train])
        assert abs(est.held_out_alpha(X[test]) - 1.5) < 0.1


def test_cvpca_held_out_alpha_on_noisy_stimuli_is_near_the_truth():
    X, _ = _noisy_case()
    est = quiet(PowerLawSpectrum(method="cvpca", n_shuffles=2, random_state=0,
                                 fit_range=(5, 100)), X[0][:2000], X[1][:2000])
    held_out = est.held_out_alpha(X[0][2000:], X[1][2000:])
    assert abs(held_out - 1.0) < 0.12


@pytest.mark.parametrize("weighting", ["1/n", "uniform"])
def test_score_is_the_held_out_relative_deviation_from_the_fitted_law(weighting):
    X, _ = make_powerlaw_data(1500, 60, alpha=1.2, random_state=3)
    train, test = X[:1000], X[1000:]
    est = quiet(PowerLawSpectrum(fit_range=(3, 25), weighting=weighting), train)
    # Brute force: numpy's eigenvectors of the training covariance, variance of the
    # test stimuli (centred on their own mean) along them, relative squared error.
    _, vectors = np.linalg.eigh(np.cov(train, rowvar=False))
    U = vectors[:, ::-1][:, :25]
    lam = np.var((test - test.mean(0)) @ U, axis=0, ddof=1)[2:25]
    n = np.arange(3, 26)
    gamma = np.exp(est.intercept_) * n ** -est.alpha_
    w = 1 / n if weighting == "1/n" else np.ones(n.size)
    expected = -np.sum(w * (lam / gamma - 1) ** 2) / np.sum(w)
    assert est.score(test) == pytest.approx(expected, rel=1e-9)
    assert -0.2 < est.score(test) < 0


def test_grid_search_selects_the_range_where_the_law_holds_not_the_largest_exponent():
    from sklearn.model_selection import GridSearchCV

    # alpha = 1 for ranks 1..40, then a steeper n^-3 tail: one law does not hold across the kink.
    rng = np.random.default_rng(0)
    n = np.arange(1, 201, dtype=float)
    lam = np.where(n <= 40, n ** -1.0, 40.0 ** -1.0 * (n / 40) ** -3.0)
    Q, _ = np.linalg.qr(rng.normal(size=(200, 200)))
    X = (rng.normal(size=(6000, 200)) * np.sqrt(lam)) @ Q.T
    grid = {"fit_range": [(2, 30), (2, 150)]}
    search = quiet_call(lambda: GridSearchCV(PowerLawSpectrum(), grid, cv=3).fit(X))
    assert search.best_params_ == {"fit_range": (2, 30)}
    assert abs(search.best_estimator_.alpha_ - 1.0) < 0.05
    # The exponent itself would have picked the range across the kink (it is steeper).
    alphas = [quiet(PowerLawSpectrum(fit_range=r), X).alpha_ for r in grid["fit_range"]]
    assert alphas[1] > alphas[0] + 0.2


@pytest.mark.parametrize("method", ["pca", "cvpca"])
@pytest.mark.parametrize("shape", [(300, 40), (40, 300)], ids=["covariance", "gram"])
def test_pickle_keeps_the_axes_not_the_training_data(method, shape):
    import pickle

    X, _ = make_powerlaw_data(*shape, alpha=1.0, noise=0.2, n_repeats=2, random_state=0)
    data = X[0] if method == "pca" else X
    est = quiet(PowerLawSpectrum(method=method, fit_range=(2, 10), n_shuffles=2, random_state=0), data)
    blob = pickle.dumps(est)
    assert len(blob) < 0.5 * X[0].nbytes
    twin = pickle.loads(blob)
    held = data if method == "pca" else (X[0], X[1])
    args = (held,) if method == "pca" else held
    assert twin.score(*args) == pytest.approx(est.score(*args), rel=1e-12, abs=1e-15)
    assert twin.held_out_alpha(*args) == pytest.approx(est.held_out_alpha(*args), rel=1e-12)
    # Refitting on other data replaces the axes of the first fit.
    other = make_powerlaw_data(*shape, alpha=2.0, noise=0.2, n_repeats=2, random_state=1)[0]
    fresh = quiet(PowerLawSpectrum(method=method, fit_range=(2, 10), n_shuffles=2, random_state=0),
                  other[0] if method == "pca" else other)
    twin.fit(other[0] if method == "pca" else other)
    assert twin.score(*args) == pytest.approx(fresh.score(*args), rel=1e-12, abs=1e-15)


# ----------------------------------------------------------------------------- results
def test_to_xarray_round_trips_through_netcdf(tmp_path):
    import xarray as xr

    X, _ = make_powerlaw_data(300, 60, alpha=1.0, noise=0.1, n_repeats=2, random_state=0)
    est = quiet(PowerLawSpectrum(method="cvpca", fit_range=(2, 20), n_shuffles=2,
                                 n_bootstraps=5, random_state=0), X)
    ds = est.to_xarray()
    assert ds["eigenvalue"].dims == ("rank",) and int(ds["rank"][0]) == 1
    np.testing.assert_array_equal(ds["eigenvalue"].values, est.eigenvalues_)
    np.testing.assert_array_equal(ds["noise_eigenvalue"].values, est.noise_eigenvalues_)
    lo, hi = est.fit_range_
    fitted = ds["fitted"].values[lo - 1 : hi]
    np.testing.assert_allclose(np.log(fitted), est.intercept_ - est.alpha_ * np.log(np.arange(lo, hi + 1)))
    ds.to_netcdf(tmp_path / "s.nc")
    back = xr.load_dataset(tmp_path / "s.nc")
    xr.testing.assert_identical(back, ds)


def test_plot_spectrum_draws_the_fitted_numbers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geomkit.plotting import plot_spectrum

    # Strong noise: the tail of the cvPCA signal spectrum has negative values (9 here).
    X, _ = make_powerlaw_data(300, 60, alpha=1.0, noise=1.0, n_repeats=2, random_state=0)
    est = quiet(PowerLawSpectrum(method="cvpca", fit_range=(2, 20), n_shuffles=2,
                                 n_bootstraps=5, random_state=0), X)
    ax = plot_spectrum(est, label="L")
    eig, fit, noise = ax.get_lines()
    rank = np.arange(1, est.eigenvalues_.size + 1)
    pos = est.eigenvalues_ > 0
    assert 0 < np.count_nonzero(~pos) < pos.size
    np.testing.assert_array_equal(eig.get_xdata(), rank[pos])
    np.testing.assert_array_equal(eig.get_ydata(), est.eigenvalues_[pos])
    lo, hi = est.fit_range_
    n = np.arange(lo, hi + 1)
    np.testing.assert_array_equal(fit.get_xdata(), n)
    np.testing.assert_allclose(fit.get_ydata(), np.exp(est.intercept_) * n ** -est.alpha_, rtol=1e-12)
    (span,) = ax.patches
    assert (span.get_x(), span.get_x() + span.get_width()) == (lo, hi)
    npos = est.noise_eigenvalues_ > 0
    np.testing.assert_array_equal(noise.get_ydata(), est.noise_eigenvalues_[npos])
    ci = est.alpha_ci_
    assert f"α = {est.alpha_:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] (95 % CI)" in fit.get_label()
    assert ax.texts[0].get_text() == f"{np.count_nonzero(~pos)} non-positive values not shown"
    # The Dataset draws the same lines; the MLE fit shades ranks 1 .. rank of x_min.
    Xp, _ = make_powerlaw_data(2000, 200, alpha=1.5, random_state=0)
    mle = quiet(PowerLawSpectrum(fitter="mle", fit_range=(5, 100)), Xp)
    ax = plot_spectrum(mle.to_xarray(), shade=True)
    (span,) = ax.patches
    assert (span.get_x(), span.get_x() + span.get_width()) == mle.fit_range_ == (1, mle.fit_range_[1])
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), mle.eigenvalues_)
    with pytest.raises(TypeError, match="fitted PowerLawSpectrum"):
        plot_spectrum(np.ones(5))
    plt.close("all")


def test_plot_spectrum_colours_floor_and_kwargs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    from geomkit.plotting import plot_spectrum

    # Rank 8 in 30 units: ranks 9..30 are rounding residue near 1e-16 lambda_1.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)) @ (rng.normal(size=(8, 30)) * np.arange(1, 31) ** -0.5)
    deficient = PowerLawSpectrum(fit_range=(1, 4)).fit(X)
    assert deficient.eigenvalues_[deficient.eigenvalues_ > 0].min() < 1e-13 * deficient.eigenvalues_[0]
    Xb, _ = make_powerlaw_data(500, 50, alpha=2.0, random_state=1)
    steep = PowerLawSpectrum(fit_range=(2, 20)).fit(Xb)
    ax = plot_spectrum(deficient, label="a", color="tab:blue", alpha=0.7, linestyle="-.")
    plot_spectrum(steep, label="b", color="tab:red", ax=ax)
    eig_a, fit_a, eig_b, fit_b = ax.get_lines()
    # Each fit line has its series' hue (darker), never one shared black.
    assert fit_a.get_color() != fit_b.get_color()
    np.testing.assert_allclose(fit_a.get_color(), 0.6 * np.array(to_rgb("tab:blue")))
    np.testing.assert_allclose(fit_b.get_color(), 0.6 * np.array(to_rgb("tab:red")))
    # kwargs reach the eigenvalue line only.
    assert eig_a.get_alpha() == 0.7 and eig_a.get_linestyle() == "-." and eig_b.get_alpha() is None
    # The axis stops at 1e-12 lambda_1 of the rank-deficient spectrum (the lower of the two floors), halved.
    bottom = min(1e-12 * deficient.eigenvalues_[0],
                 max(steep.eigenvalues_.min(), 1e-12 * steep.eigenvalues_[0])) / 2
    assert ax.get_ylim()[0] == pytest.approx(bottom, rel=1e-12)
    ax = plot_spectrum(deficient, floor=0)
    positive = deficient.eigenvalues_[deficient.eigenvalues_ > 0]
    assert ax.get_ylim()[0] <= positive.min()
    plt.close("all")


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "X, match",
    [
        (np.random.default_rng(0).normal(size=(2, 10)), "3 is required|at least 3"),
        (np.random.default_rng(0).normal(size=(10, 2)), "2 feature"),
        (np.full((30, 10), 4.0), "zero variance"),
        (np.where(np.eye(30, 10) > 0, np.nan, 1.0), "NaN"),
        (np.where(np.eye(30, 10) > 0, np.inf, 1.0), "infinity|inf"),
    ],
    ids=["2 stimuli", "2 units", "constant", "nan", "inf"],
)
def test_bad_input_raises(X, match):
    with pytest.raises(ValueError, match=match):
        PowerLawSpectrum(fit_range=(1, 3)).fit(X)


def test_fit_range_beyond_the_spectrum_raises():
    X, _ = make_powerlaw_data(100, 12, alpha=1.0, random_state=0)
    with pytest.raises(ValueError, match="beyond the spectrum.*12 usable"):
        PowerLawSpectrum().fit(X)  # first rank 11 of 12
    with pytest.raises(ValueError, match="beyond the spectrum"):
        power_law_exponent(np.arange(1, 6) ** -1.0, fit_range=(11, 500))


@pytest.mark.parametrize("fit_range", [(0, 10), (5, 6), (10, 5), (1.5, 10), "11:500"])
def test_bad_fit_range_raises(fit_range):
    X, _ = make_powerlaw_data(100, 30, alpha=1.0, random_state=0)
    with pytest.raises((ValueError, TypeError), match="fit_range"):
        PowerLawSpectrum(fit_range=fit_range).fit(X)


def test_repeats_with_mismatched_shapes_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="same shape"):
        PowerLawSpectrum(method="cvpca").fit(rng.normal(size=(50, 10)), rng.normal(size=(40, 10)))
    with pytest.raises(ValueError, match=r"\(2, n_stimuli, n_units\)"):
        PowerLawSpectrum(method="cvpca").fit(rng.normal(size=(3, 50, 10)))


@pytest.mark.parametrize(
    "params, match",
    [({"method": "svd"}, "method"), ({"weighting": "1/n^2"}, "weighting"),
     ({"fitter": "lsq"}, "fitter"), ({"n_shuffles": 0}, "n_shuffles"),
     ({"confidence_level": 1.5}, "confidence_level")],
)
def test_bad_parameters_raise(params, match):
    X, _ = make_powerlaw_data(100, 30, alpha=1.0, random_state=0)
    with pytest.raises(ValueError, match=match):
        PowerLawSpectrum(**params).fit(X)


def test_bad_device_raises_before_any_work():
    torch = pytest.importorskip("torch")
    X, _ = make_powerlaw_data(100, 30, alpha=1.0, random_state=0)
    with pytest.raises(ValueError, match=r"device must be None.*'gpu0'"):
        PowerLawSpectrum(device="gpu0").fit(X)
    with pytest.raises(TypeError, match=r"device must be None.*got list \['cpu'\]"):
        PowerLawSpectrum(device=["cpu"]).fit(X)
    with pytest.raises(ValueError, match="device must be None"):
        eigenspectrum(X, device="gpu0")
    with pytest.raises(ValueError, match="device must be None"):
        cvpca_spectrum(np.stack([X, X]), device="gpu0")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"device='cuda:{n}', but this machine has {n} usable CUDA"):
        PowerLawSpectrum(device=f"cuda:{n}").fit(X)
    # A valid device string and a torch.device both work, and give the numpy result.
    ref = quiet(PowerLawSpectrum(fit_range=(2, 10)), X).alpha_
    for device in ("cpu", torch.device("cpu")):
        assert quiet(PowerLawSpectrum(fit_range=(2, 10), device=device), X).alpha_ == pytest.approx(ref, abs=1e-10)


def test_cvpca_from_moments_raises():
    acc = MomentAccumulator()
    acc.update(np.random.default_rng(0).normal(size=(50, 10)))
    with pytest.raises(ValueError, match="two repeats"):
        PowerLawSpectrum(method="cvpca").fit(acc.finalize())


# ----------------------------------------------------------------------------- sklearn
@pytest.mark.parametrize("method", ["pca", "cvpca"])
def test_sklearn_contract_on_ten_units(method, tmp_path):
    # The six checks of SKLEARN_EXPECTED_FAILED_CHECKS, by hand, on data with 10 units
    # (scikit-learn's own use 2, which a spectrum rejects).
    from joblib import hash as joblib_hash
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    X, _ = make_powerlaw_data(200, 10, alpha=1.0, noise=0.1, n_repeats=2, random_state=0)
    args = (X[0],) if method == "pca" else (X[0], X[1])
    est = PowerLawSpectrum(method=method, fit_range=(2, 5), n_shuffles=2, random_state=0)
    # check_fit_check_is_fitted: not fitted before fit, fitted after.
    for call in (lambda: est.score(*args), est.to_xarray):
        with pytest.raises(NotFittedError):
            call()
    # check_estimators_overwrite_params: fit leaves the parameters as they were.
    params = est.get_params()
    before = joblib_hash(params)
    # check_estimators_fit_returns_self.
    assert est.fit(*args) is est
    assert joblib_hash(est.get_params()) == before and est.get_params() == params
    # check_n_features_in, and a unit count that does not match at score time.
    assert est.n_features_in_ == 10 and est.n_stimuli_ == 200
    bad = (X[0][:, :9],) if method == "pca" else (X[0][:, :9], X[1][:, :9])
    with pytest.raises(ValueError, match=r"9 (units|features).*(fitted with|expecting) 10"):
        est.score(*bad)
    # Ground truth of the fit on 10 units.
    if method == "pca":
        ref = np.linalg.eigvalsh(np.cov(X[0], rowvar=False))[::-1]
    else:
        ref = _brute_cvpca(X[0], X[1], 2, 0)
    np.testing.assert_allclose(est.eigenvalues_, ref, rtol=1e-9, atol=1e-12 * abs(ref[0]))
    first = (est.eigenvalues_.copy(), est.alpha_, est.fit_range_)
    # check_fit_idempotent: fitting again (after a fit on other data) gives the same result.
    other = make_powerlaw_data(150, 10, alpha=2.0, noise=0.1, n_repeats=2, random_state=1)[0]
    est.fit(*((other[0],) if method == "pca" else (other[0], other[1])))
    est.fit(*args)
    np.testing.assert_array_equal(est.eigenvalues_, first[0])
    assert (est.alpha_, est.fit_range_) == first[1:]
    # check_readonly_memmap_input: read-only memory-mapped data fit like arrays.
    maps = []
    for i, a in enumerate(args):
        path = tmp_path / f"x{i}.npy"
        np.save(path, a)
        maps.append(np.load(path, mmap_mode="r"))
    assert not maps[0].flags.writeable
    twin = clone(est).fit(*maps)
    np.testing.assert_array_equal(twin.eigenvalues_, first[0])
    assert twin.alpha_ == first[1]
    assert twin.score(*maps) == pytest.approx(est.score(*args), abs=1e-12)


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from geomkit.measures.spectrum import SKLEARN_EXPECTED_FAILED_CHECKS  # noqa: E402


# The default fit range (ranks 11..500) needs at least 13 usable eigenvalues, more than
# the 3-10 features of scikit-learn's check data; a range inside 3 units runs them all.
@parametrize_with_checks(
    [PowerLawSpectrum(fit_range=(1, 3))],
    expected_failed_checks=lambda est: SKLEARN_EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpectrumWarning)
        check(estimator)


# At its defaults (ranks 11..500, Stringer et al. 2019) a fit needs at least 22 usable
# eigenvalues (the last fitted rank stays at or below half of them), so units >= 22;
# scikit-learn's check data have 2-10 features. These checks raise the documented
# ValueError there; each property they test is checked by hand at the defaults on
# 60-unit data in test_sklearn_contract_at_the_defaults_on_60_units.
_SHORT = ("default fit_range (11, 500) needs >= 22 usable eigenvalues; scikit-learn's check data "
          "have 2-10 features, so fit raises the documented ValueError; checked by hand at the "
          "defaults on 60 units")
DEFAULTS_EXPECTED_FAILED_CHECKS = {name: _SHORT for name in (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_dtype_object",
    "check_pipeline_consistency", "check_estimators_nan_inf", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_dict_unchanged", "check_fit_idempotent",
    "check_fit_check_is_fitted", "check_n_features_in", "check_fit2d_predict1d",
)}


@parametrize_with_checks([PowerLawSpectrum()], expected_failed_checks=lambda est: DEFAULTS_EXPECTED_FAILED_CHECKS)
def test_sklearn_checks_at_the_defaults(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpectrumWarning)
        check(estimator)


def test_sklearn_contract_at_the_defaults_on_60_units(tmp_path):
    import pickle

    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, _ = make_powerlaw_data(400, 60, alpha=1.0, random_state=0)
    est = PowerLawSpectrum()
    params = est.get_params()
    with pytest.raises(NotFittedError):
        est.score(X)
    with pytest.warns(SpectrumWarning, match=r"clipped to \(11, 30\)"):
        assert est.fit(X, np.zeros(400)) is est  # y is accepted and ignored
    assert est.get_params() == params and est.fit_range_ == (11, 30) and est.n_features_in_ == 60
    ref = np.linalg.eigvalsh(np.cov(X, rowvar=False))[::-1]
    np.testing.assert_allclose(est.eigenvalues_, ref, rtol=1e-9, atol=1e-13 * ref[0])
    first = (est.alpha_, est.score(X))
    # Order of stimuli, Fortran order, float32, read-only memmaps, a pipeline, clone, pickle.
    perm = np.random.default_rng(1).permutation(400)
    path = tmp_path / "x.npy"
    np.save(path, X)
    for variant in (X[perm], np.asfortranarray(X), np.load(path, mmap_mode="r")):
        twin = quiet(clone(est), variant)
        assert twin.alpha_ == pytest.approx(first[0], abs=1e-9)
    assert quiet(clone(est), X.astype(np.float32)).alpha_ == pytest.approx(first[0], abs=1e-5)
    pipe = quiet(make_pipeline(FunctionTransformer(), PowerLawSpectrum()), X)
    assert pipe.score(X) == pytest.approx(first[1], rel=1e-9)
    back = pickle.loads(pickle.dumps(est))
    assert back.score(X) == pytest.approx(first[1], rel=1e-12)
    # Idempotent after a fit on other data; bad input names what is wrong.
    quiet(est, make_powerlaw_data(300, 60, alpha=2.0, random_state=2)[0])
    assert quiet(est, X).alpha_ == first[0]
    with pytest.raises(ValueError, match="59 (units|features)"):
        est.score(X[:, :59])
    with pytest.raises(ValueError, match="NaN|infinity"):
        est.fit(np.where(np.eye(400, 60) > 0, np.nan, X))
    with pytest.raises(ValueError, match=r"fit_range \(11, 500\) lies beyond the spectrum"):
        est.fit(X[:, :10])


# ----------------------------------------------------------------------------- wide data
def _diag_powerlaw(n, p, alpha, seed):
    """Gaussian data with population eigenvalues n ** -alpha (no rotation: the sample
    spectrum's law is rotation invariant, and a 5000 x 5000 QR would dominate the test)."""
    pop = np.arange(1, p + 1.0) ** -alpha
    return np.random.default_rng(seed).standard_normal((n, p)) * np.sqrt(pop), pop


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_distortion_rule_stops_where_the_sample_spectrum_departs_from_the_population(alpha):
    # Ground truth: the population eigenvalues. The predicted inflation of the sample
    # eigenvalues (from the data alone) stays within 0.1 of the real one up to the rank
    # where the rule stops, and the real inflation there is close to the 0.25 limit.
    from geomkit.measures._powerlaw import distortion_limit, sample_distortion

    X, pop = _diag_powerlaw(1000, 5000, alpha, seed=0)
    lam = eigenspectrum(X)
    (lo, hi), _, supported = distortion_limit((11, 500), lam, 1000, lam.sum())
    real = lam / pop[: lam.size] - 1
    predicted = sample_distortion(lam, 1000, lam.sum())
    assert supported and lo == 11
    assert np.all(predicted[: hi] <= 0.25)
    assert np.all(real[10:hi] <= 0.25 + 0.1)
    if alpha == 1.0:
        # rank << n_stimuli: the rule stops near rank 60 of 1000 (the half-usable cap is 499)
        assert 40 <= hi <= 120
        assert np.max(np.abs(predicted[10:hi] - real[10:hi])) < 0.1
        assert real[3 * hi] > 0.25  # beyond, the real inflation does exceed the limit


def test_wide_data_corrected_alpha_is_near_the_truth_and_inside_its_interval():
    # The case, 1000 x 5000 with alpha 1: alpha_ = 0.87 and the bias-corrected
    # interval (1.009, 1.046) missed the truth. Now the range stops near rank 60 and the
    # iterated correction lands within 0.05 (measured 0.995, 1.001, 1.004, 1.006 on 4 seeds).
    X, _ = _diag_powerlaw(1000, 5000, 1.0, seed=3)
    with pytest.warns(SpectrumWarning, match="inflates the sample eigenvalues"):
        est = PowerLawSpectrum(n_bootstraps=12, random_state=0).fit(X)
    assert est.alpha_ < 0.93  # the plug-in is biased
    assert abs(est.alpha_corrected_ - 1.0) <= 0.05
    lo, hi = est.alpha_ci_
    assert lo <= est.alpha_corrected_ <= hi
    assert lo <= 1.0 <= hi
    assert est.alpha_bias_ == pytest.approx(est.alpha_ - est.alpha_corrected_)


def test_wide_data_that_cannot_support_the_fit_get_a_warning():
    # alpha 0.5 at 300 x 1500: the weaker components inflate even the 4th sample
    # eigenvalue by ~60 % (real, measured); the estimator must say so.
    X, _ = _diag_powerlaw(300, 1500, 0.5, seed=0)
    with pytest.warns(SpectrumWarning, match="cannot support a power-law fit"):
        PowerLawSpectrum(fit_range=(4, 500)).fit(X)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_wide_data_coverage_at_1000_by_5000(alpha):
    # The target: |alpha_corrected_ - alpha| <= 0.05 and coverage >= 85 %, or a
    # warning that the data cannot support the fit (alpha 0.5).
    hits, errors = 0, []
    for rep in range(20):
        X, _ = _diag_powerlaw(1000, 5000, alpha, seed=100 + rep)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = PowerLawSpectrum(n_bootstraps=20, random_state=rep).fit(X)
        if any("cannot support" in str(w.message) for w in caught):
            assert alpha == 0.5
            continue
        hits += est.alpha_ci_[0] <= alpha <= est.alpha_ci_[1]
        errors.append(abs(est.alpha_corrected_ - alpha))
    if errors:
        assert np.mean(errors) <= 0.05 and hits / len(errors) >= 0.85


def test_every_interval_contains_its_reported_estimate():
    for method, X in (("pca", make_powerlaw_data(400, 40, alpha=1.0, random_state=0)[0]),
                      ("cvpca", make_powerlaw_data(400, 40, alpha=1.0, noise=0.1, n_repeats=2,
                                                   random_state=0)[0])):
        est = quiet(PowerLawSpectrum(method=method, fit_range=(3, 20), n_shuffles=2,
                                     n_bootstraps=20, random_state=1), X)
        lo, hi = est.alpha_ci_
        assert lo <= est.alpha_corrected_ <= hi, method
        ds = est.to_xarray()
        assert ds.attrs["alpha_ci"][0] <= ds.attrs["alpha_corrected"] <= ds.attrs["alpha_ci"][1]


# ----------------------------------------------------------------------------- cvPCA at low SNR
def test_axis_overlap_matches_a_simulated_spike_in_noise():
    # Ground truth: one signal direction of variance 0.1 in isotropic noise of variance
    # 0.04, 1000 stimuli x 500 units; the top sample axis's squared overlap with it.
    from geomkit.measures._powerlaw import axis_overlap

    rng = np.random.default_rng(0)
    n, p, lam, s2 = 1000, 500, 0.1, 0.04
    overlaps = []
    for _ in range(5):
        X = rng.standard_normal((n, p)) * np.sqrt(s2)
        X[:, 0] += rng.standard_normal(n) * np.sqrt(lam)
        _, vecs = np.linalg.eigh(X.T @ X / n)
        overlaps.append(vecs[0, -1] ** 2)
    predicted = float(axis_overlap(np.array([lam]), s2, p / n)[0])
    assert predicted == pytest.approx(np.mean(overlaps), abs=0.05)
    assert axis_overlap(np.array([0.01]), s2, p / n)[0] == 0.0  # below sqrt(aspect) s2: none


def _cvpca_fits(alpha, noise, seeds):
    """(corrected errors, interval hits, 'cannot support' warnings) of cvPCA on 2 x 400 x 100 data."""
    errors, hits, warned = [], 0, 0
    for seed in seeds:
        X, _ = make_powerlaw_data(400, 100, alpha=alpha, noise=noise, n_repeats=2,
                                  random_state=1000 + seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = PowerLawSpectrum(method="cvpca", n_shuffles=2, n_bootstraps=20,
                                   random_state=seed).fit(X)
        warned += any("cannot support" in str(w.message) for w in caught)
        errors.append(est.alpha_corrected_ - alpha)
        hits += est.alpha_ci_[0] <= alpha <= est.alpha_ci_[1]
    return np.array(errors), hits, warned


@pytest.mark.parametrize("alpha, noise", [(1.0, 0.1), (1.5, 0.05)])
def test_cvpca_corrected_alpha_over_seeds_where_the_data_support_the_fit(alpha, noise):
    # Synthetic repeats with a known spectrum n ** -alpha. Measured over 12 data sets each
    # (these 6 and 6 more): mean error -0.014 and -0.008, sd 0.031 and 0.040, largest 0.10,
    # coverage 11 of 12 each; the plug-in was +0.036 and +0.043 off on average.
    errors, hits, warned = _cvpca_fits(alpha, noise, range(6))
    assert warned == 0
    assert abs(errors.mean()) <= 0.04 and np.abs(errors).max() <= 0.12
    assert hits >= 5


def test_cvpca_where_the_data_cannot_support_the_fit_warns_and_the_interval_widens():
    # alpha 2 at noise 0.1: beyond rank ~15 the axes of one repeat no longer resolve the
    # signal; the range is cut to 11..33 with a warning, and the corrected exponent scatters
    # (sd 0.33 over 12 data sets, largest error 0.74), which its interval reflects: it
    # still covered the truth in 11 of 12.
    errors, hits, warned = _cvpca_fits(2.0, 0.1, range(4))
    assert warned == 4
    assert hits >= 3


def test_cvpca_at_low_signal_to_noise_warns_and_shortens_the_range():
    # The case: noise sd 0.2 per unit on a signal spectrum n ** -1 (top variance 1)
    # gave alpha 0.75, r2 0.94 and no warning. Beyond rank ~19 the axes of one repeat are
    # mostly noise (squared overlap < 0.5), so the default range cannot be supported.
    X, _ = make_powerlaw_data(1000, 500, alpha=1.0, noise=0.2, n_repeats=2, random_state=0)
    with pytest.warns(SpectrumWarning, match="cannot support a cvPCA power-law fit"):
        est = PowerLawSpectrum(method="cvpca", n_shuffles=2, random_state=0).fit(X)
    assert est.fit_range_ == (11, 33)
