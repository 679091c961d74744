"""Every interval geomkit reports contains the estimate it reports with it (issue 13).

The rule: an interval-bearing result names one estimate to report with its
interval (``value_corrected`` / ``alpha_corrected_`` / ``index_corrected_``)
and that estimate lies inside the interval. The sweep below covers every
public function and estimator that takes ``n_bootstraps``; a test keeps the
list complete. Then the skewed case where the old percentile interval
excluded its own estimate, and coverage of known answers.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import geomkit
from geomkit import probe
from geomkit.measures import (
    CKA,
    RSA,
    CategorizationIndex,
    PowerLawSpectrum,
    cca_similarity,
    cka,
    compare_layers,
    encoding_similarity,
    rsa,
    shape_distance,
)
from geomkit.measures._resampling import basic_interval, paired_bootstrap

B = 60  # bootstrap resamples: enough for the quantiles to be defined, fast


def _pair(seed=0, n=50, p=6, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, X @ rng.normal(size=(p, p + 2)) + noise * rng.normal(size=(n, p + 2))


def _inside(lo, est, hi):
    lo, est, hi = (np.asarray(v, dtype=float) for v in (lo, est, hi))
    assert np.all(np.isfinite(lo) & np.isfinite(est) & np.isfinite(hi)), (lo, est, hi)
    assert np.all((lo <= est) & (est <= hi)), (lo, est, hi)


def _result(r):
    """(low, reported estimate, high) of a ResamplingResult."""
    return r.ci[0], r.value_corrected, r.ci[1]


def _estimator(est):
    return est.ci_[0], est.value_corrected_, est.ci_[1]


def _layers_table(ds):
    return ds["ci_low"].values, ds["value_corrected"].values, ds["ci_high"].values


def _categorization_by_layer():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = torch.randn(90, 6), torch.arange(90) % 3
    x[:, :3] += 2 * torch.nn.functional.one_hot(y, 3)
    t = probe.categorization_by_layer(net, x, y, n_pairs=200, n_bootstraps=B, progress=False)
    return t["ci_low"].values, t["index_corrected"].values, t["ci_high"].values


def _spectrum(method, streamed=False):
    from geomkit.datasets import make_powerlaw_data

    if method == "pca":
        X, _ = make_powerlaw_data(300, 40, alpha=1.0, random_state=0)
    else:
        X, _ = make_powerlaw_data(300, 40, alpha=1.0, noise=0.1, n_repeats=2, random_state=0)
    if streamed:
        X = pytest.importorskip("dask.array").from_array(X, chunks=(100, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = PowerLawSpectrum(method=method, fit_range=(3, 20), n_shuffles=2, n_bootstraps=20,
                               random_state=1, progress=False).fit(X)
    return est.alpha_ci_[0], est.alpha_corrected_, est.alpha_ci_[1]


def _categorization():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    X = rng.normal(size=(120, 10))
    X[:, :3] += 1.5 * np.eye(3)[y]
    est = CategorizationIndex(n_pairs=200, n_bootstraps=B, random_state=0).fit(X, y)
    return est.ci_[0], est.index_corrected_, est.ci_[1]


def _encoding():
    from geomkit.datasets import make_recording

    X = np.random.default_rng(0).normal(size=(150, 5))
    rec = make_recording(X, n_units=5, n_repeats=4, noise=0.5, random_state=0)
    return _result(encoding_similarity(X, rec, n_bootstraps=30, random_state=0))


# name -> a call returning (low, reported estimate, high); every public callable with n_bootstraps
SWEEP = {
    "cka": lambda: _result(cka(*_pair(), n_bootstraps=B, random_state=0)),
    "cka(debiased)": lambda: _result(cka(*_pair(), debiased=True, n_bootstraps=B, random_state=0)),
    "CKA": lambda: _estimator(CKA(n_bootstraps=B, random_state=0).fit(*_pair())),
    "rsa": lambda: _result(rsa(*_pair(), n_bootstraps=B, random_state=0)),
    "RSA": lambda: _estimator(RSA(n_bootstraps=B, random_state=0).fit(*_pair())),
    "shape_distance": lambda: _result(shape_distance(*_pair(), n_bootstraps=B, random_state=0)),
    "cca_similarity": lambda: _result(cca_similarity(*_pair(), n_bootstraps=B, random_state=0)),
    "encoding_similarity": _encoding,
    "compare_layers": lambda: _layers_table(compare_layers(
        dict(zip("abc", (*_pair(), _pair(1)[0]))), n_bootstraps=B, random_state=0, progress=False)),
    "compare_layers(rsa)": lambda: _layers_table(compare_layers(
        dict(zip("ab", _pair())), metric="rsa", n_bootstraps=B, random_state=0, progress=False)),
    "PowerLawSpectrum": lambda: _spectrum("pca"),
    "PowerLawSpectrum(cvpca)": lambda: _spectrum("cvpca"),
    "PowerLawSpectrum(dask)": lambda: _spectrum("pca", streamed=True),
    "CategorizationIndex": _categorization,
    "categorization_by_layer": _categorization_by_layer,
}


@pytest.mark.parametrize("name", list(SWEEP))
def test_every_interval_contains_its_reported_estimate(name):
    _inside(*SWEEP[name]())


def test_the_sweep_covers_every_public_callable_with_bootstraps():
    # A new public function or estimator with n_bootstraps must join SWEEP.
    import importlib
    import pkgutil

    found = set()
    for info in pkgutil.walk_packages(geomkit.__path__, "geomkit."):
        if any(part.startswith("_") for part in info.name.split(".")) or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for public in getattr(module, "__all__", []):
            try:
                params = inspect.signature(getattr(module, public)).parameters
            except (TypeError, ValueError):  # not a callable with a signature
                continue
            if "n_bootstraps" in params:
                found.add(public)
    covered = {name.split("(")[0] for name in SWEEP}
    # the study's intervals are checked over a whole quick run in tests/test_study.py
    assert found - covered - {"StudyConfig"} == set()
    assert {"cka", "CKA", "PowerLawSpectrum", "categorization_by_layer"} <= found


# ----------------------------------------------------------------------------- the skewed case
def test_skewed_bootstrap_percentile_interval_excluded_the_estimate_the_basic_one_does_not():
    # Biased linear CKA of 30 stimuli x 60 units of independent data: far above its population
    # value 0, and resamples (with duplicated stimuli) higher still, so every replicate
    # exceeds the estimate: the percentile interval lies above it, the basic one mirrors it.
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 60)), rng.normal(size=(30, 60))
    r = cka(X, Y, n_bootstraps=200, random_state=0)
    assert r.ci_percentile[0] > r.value  # the old interval excluded its own estimate
    assert r.value_corrected < r.value  # the correction moves towards the truth, 0
    _inside(*_result(r))
    assert 0.0 <= r.ci[0] and r.ci[1] <= 1.0  # clipped to CKA's range


def test_basic_interval_is_the_reflection_of_the_quantiles():
    # Independent computation: quantiles by sorting (linear interpolation, numpy's default).
    reps = np.random.default_rng(0).gamma(2.0, size=1001)  # skewed replicates
    s = np.sort(reps)
    q = lambda p: s[int(round(p * (len(s) - 1)))]  # noqa: E731  (grid points: no interpolation)
    lo, mid, hi = basic_interval(reps, 1.0, 0.9)
    assert (lo, mid, hi) == pytest.approx((2 - q(0.95), 2 - q(0.5), 2 - q(0.05)))
    # with a reference (the empirical distribution's value) the pivot is reps - reference
    lo, mid, hi = basic_interval(reps, 1.0, 0.9, reference=3.0)
    assert (lo, mid, hi) == pytest.approx((4 - q(0.95), 4 - q(0.5), 4 - q(0.05)))
    lo, mid, hi = basic_interval(reps, 1.0, 0.9, bounds=(0.0, 1.5))
    assert lo == 0.0 and hi <= 1.5 and lo <= mid <= hi
    # too many undefined replicates: NaN rather than a biased interval
    reps[:200] = np.nan
    assert np.isnan(basic_interval(reps, 1.0, 0.9)).all()


def test_paired_bootstrap_returns_the_basic_interval_of_its_replicates():
    X, Y = _pair(3)
    stat = lambda a, b: float(np.corrcoef(a[:, 0], b[:, 0])[0, 1])  # noqa: E731
    (lo, hi), reps = paired_bootstrap(stat, X, Y, n_bootstraps=100, random_state=0)
    est = stat(X, Y)
    assert (lo, hi) == pytest.approx((2 * est - np.quantile(reps, 0.975),
                                      2 * est - np.quantile(reps, 0.025)))


# ----------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_an_orthogonal_transform_is_one_with_a_degenerate_interval(debiased):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    r = cka(X, 2.0 * X @ Q, debiased=debiased, n_bootstraps=50, random_state=0)
    assert r.value_corrected == pytest.approx(1.0, abs=1e-12)
    assert r.ci == pytest.approx((1.0, 1.0), abs=1e-12)


@pytest.mark.parametrize("shape", [(60, 8), (30, 60)])
def test_debiased_cka_of_independent_data_is_covered_at_zero(shape):
    # Population CKA of independent X and Y is 0, and the debiased estimator is centred on
    # it. Its resamples (duplicated stimuli) scatter around the *biased* CKA of the data, the
    # empirical distribution's value: reflected about the debiased estimate itself, the
    # interval covered 0 in 6 of 40 (60 x 8) and 0 of 40 (30 x 60) data sets; about the
    # biased CKA (the reference), in 40 of 40 each (measured, 200 resamples).
    hits, corrected = 0, []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        X, Y = rng.normal(size=shape), rng.normal(size=shape)
        r = cka(X, Y, debiased=True, n_bootstraps=100, random_state=seed)
        hits += r.ci[0] <= 0.0 <= r.ci[1]
        corrected.append(r.value_corrected)
    assert hits / 20 >= 0.85
    assert abs(np.mean(corrected)) < 0.03


def test_split_noise_corrected_cka_of_independent_data_is_covered_at_zero():
    # Independent signals seen through two noisy repeats each: population CKA 0. The split
    # estimator's resamples scatter around its plug-in (V-statistic) form; reflected about
    # the estimate itself the interval covered 0 in 2 of 20 data sets, now in 20 of 20.
    hits = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        sx, sy = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
        X, Y = sx + 0.5 * rng.normal(size=(2, 60, 8)), sy + 0.5 * rng.normal(size=(2, 60, 8))
        r = cka(X, Y, noise_correction="split", n_bootstraps=60, random_state=seed)
        _inside(*_result(r))
        hits += r.ci[0] <= 0.0 <= r.ci[1]
    assert hits >= 9
