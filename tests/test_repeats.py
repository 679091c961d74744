"""split_half: two disjoint halves of the repeats, averaged, for cross-validated spectra."""

import numpy as np
import pytest
import xarray as xr

from geomkit.datasets import make_powerlaw_data
from geomkit.measures import PowerLawSpectrum, split_half


def test_halves_are_means_of_disjoint_repeats():
    X = np.random.default_rng(0).normal(size=(6, 10, 4))
    halves = split_half(X, random_state=3)
    order = np.random.default_rng(3).permutation(6)
    np.testing.assert_allclose(halves[0], X[np.sort(order[:3])].mean(0), rtol=1e-15)
    np.testing.assert_allclose(halves[1], X[np.sort(order[3:])].mean(0), rtol=1e-15)
    np.testing.assert_array_equal(split_half(X, random_state=3), halves)


def test_odd_repeat_counts_leave_one_out_with_a_warning():
    X = np.arange(5)[:, None, None] * np.ones((5, 3, 2))
    with pytest.warns(UserWarning, match="5 repeats is odd; repeat \\d is left out"):
        halves = split_half(X, random_state=0)
    used = {halves[0, 0, 0] * 2, halves[1, 0, 0] * 2}  # sums of two repeat indices each
    assert sum(used) == 10 - np.random.default_rng(0).permutation(5)[-1]


def test_noise_per_half_shrinks_with_the_repeats_and_cvpca_recovers_alpha():
    # 8 repeats of noise sd 0.3: each half's noise has variance 0.09 / 4, independent across
    # halves, so their difference has variance 2 * 0.09 / 4 (the signal cancels).
    X, _ = make_powerlaw_data(3000, 200, alpha=1.0, noise=0.3, n_repeats=8, random_state=0)
    halves = split_half(X, random_state=1)
    assert np.var(halves[0] - halves[1]) == pytest.approx(2 * 0.09 / 4, rel=0.02)
    est = PowerLawSpectrum(method="cvpca", fit_range=(5, 100), random_state=0).fit(halves)
    assert abs(est.alpha_ - 1.0) < 0.06


def test_dataarray_dims_are_read_by_name_and_bad_input_is_named():
    X = np.random.default_rng(0).normal(size=(4, 5, 3))
    da = xr.DataArray(X, dims=("repeat", "stimulus", "unit")).transpose("unit", "repeat", "stimulus")
    np.testing.assert_array_equal(split_half(da, random_state=0), split_half(X, random_state=0))
    with pytest.raises(ValueError, match="missing \\['repeat'\\]"):
        split_half(xr.DataArray(X, dims=("trial", "stimulus", "unit")))
    with pytest.raises(ValueError, match="at least 2 repeats; got 1"):
        split_half(X[:1])
    with pytest.raises(ValueError, match=r"\(n_repeats, n_stimuli, n_units\); got shape \(5, 3\)"):
        split_half(X[0])
    with pytest.raises(ValueError, match="NaN"):
        split_half(np.where(X > 1, np.nan, X))
    with pytest.raises(TypeError, match="responses must be real-valued"):
        split_half(X + 1j)
    with pytest.raises(TypeError, match="real numbers; got dtype <U1"):
        split_half(np.full((2, 3, 2), "a"))
    with pytest.raises(ValueError, match="random_state"):
        split_half(X, random_state=-1)
