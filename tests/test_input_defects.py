"""Input defects of issue 15: each input gets the right number or a clear error, never a silent one."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

from geomkit._validation import to_numpy
from geomkit.datasets import load_digits, make_powerlaw_data
from geomkit.measures.categorization import (
    CategorizationIndex,
    categoricality_index,
    category_selectivity,
    sample_category_pairs,
)
from geomkit.measures.kurtosis import excess_kurtosis, weight_kurtosis
from geomkit.measures.spectrum import (
    PowerLawSpectrum,
    SpectrumWarning,
    cvpca_spectrum,
    eigenspectrum,
    power_law_exponent,
)
from geomkit.measures.weight_spectra import weight_spectra
from geomkit.moments import MomentAccumulator, moments_from_array
from geomkit.probe import extract, layer_moments
from geomkit.probe.jacobian import jacobian_norm
from geomkit.probe.morph import categorization_by_layer
from geomkit.train import JacobianRegularizer, KrotovHopfield, MLP, train_module

# ---------------------------------------------------------------------------------------
# 1. ascending eigenvalues
# ---------------------------------------------------------------------------------------


def test_ascending_eigenvalues_are_reversed_with_a_warning():
    # np.linalg.eigvalsh returns ascending values; the true exponent is 1.
    lam = np.linalg.eigvalsh(np.diag(np.arange(1, 1001, dtype=np.float64) ** -1.0))
    assert lam[0] < lam[-1]
    with pytest.warns(SpectrumWarning, match=re.escape(
            "eigenvalues are in ascending order (as np.linalg.eigvalsh returns them); they "
            "were reversed so that rank 1 is the largest.")):
        fit = power_law_exponent(lam)
    assert fit.alpha == pytest.approx(1.0, abs=1e-12)  # was -0.34 (fitted as given)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)


def test_descending_and_unsorted_cv_spectra_are_fitted_as_given_silently():
    lam = np.arange(1, 1001, dtype=np.float64) ** -1.2
    noisy = lam * (1 + 0.01 * np.random.default_rng(0).standard_normal(lam.size))  # not monotone
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert power_law_exponent(lam).alpha == pytest.approx(1.2, abs=1e-12)
        # a cvPCA-like spectrum: position n is rank n, not re-sorted
        expected = -np.polyfit(np.log(np.arange(11, 501)), np.log(noisy[10:500]), 1,
                               w=np.sqrt(1 / np.arange(11, 501)))[0]
        assert power_law_exponent(noisy).alpha == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------
# 2. xarray dimension names
# ---------------------------------------------------------------------------------------


def test_dataarray_is_read_by_its_dimension_names():
    X, _ = make_powerlaw_data(600, 40, alpha=1.0, random_state=0)
    flipped = xr.DataArray(X.T, dims=("unit", "stimulus"))
    ref = PowerLawSpectrum(fit_range=(2, 20)).fit(X)
    est = PowerLawSpectrum(fit_range=(2, 20)).fit(flipped)
    assert est.n_features_in_ == 40 and est.n_stimuli_ == 600  # was 600 units x 40 stimuli
    assert est.alpha_ == ref.alpha_
    np.testing.assert_array_equal(eigenspectrum(flipped), eigenspectrum(X))
    # with repeats: any order of ("repeat", "stimulus", "unit") is the same data
    R, _ = make_powerlaw_data(300, 20, alpha=1.0, noise=0.3, n_repeats=2, random_state=1)
    shuffled = xr.DataArray(R.transpose(2, 0, 1), dims=("unit", "repeat", "stimulus"))
    np.testing.assert_array_equal(cvpca_spectrum(shuffled, random_state=0)[0],
                                  cvpca_spectrum(R, random_state=0)[0])
    # extract()'s "<layer>__unit" counts as "unit"; other dims are read by position
    np.testing.assert_array_equal(to_numpy(xr.DataArray(X.T, dims=("fc__unit", "stimulus"))), X)
    tuning = xr.DataArray(np.arange(24.0).reshape(2, 3, 4), dims=("unit", "y", "x"))
    np.testing.assert_array_equal(to_numpy(tuning), tuning.values)


def test_selectivity_of_a_transposed_dataarray_keeps_unit_labels():
    X = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    da = xr.DataArray(X.T, dims=("unit", "stimulus"), coords={"unit": ["a", "b"]})
    d = category_selectivity(da, [0, 0, 1, 1])
    assert d["unit"].values.tolist() == ["a", "b"]
    assert d.values.round(3).tolist() == [[2.0, -2.0], [-3.0, 3.0]]


def test_named_dims_out_of_order_next_to_unknown_dims_raise():
    da = xr.DataArray(np.zeros((3, 4, 5)), dims=("unit", "stimulus", "time"))
    with pytest.raises(ValueError, match=re.escape(
            "X is a DataArray with dims ('unit', 'stimulus', 'time'), whose named axes are out of "
            "geomkit's order ('repeat', 'stimulus', 'unit') and whose other dims cannot be "
            "placed by name. Transpose it (X.transpose(...)) so that the named dims come in "
            "that order.")):
        to_numpy(da)


# ---------------------------------------------------------------------------------------
# 4. random_state
# ---------------------------------------------------------------------------------------

_RS_MESSAGE = ("random_state must be None, an integer in [0, 2**63 - 1], a numpy.random.Generator "
               "or RandomState; got {!r}.")


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 6)), np.repeat([0, 1], 20)


def _calls():
    X, y = _data()
    net = torch.nn.Sequential(torch.nn.Linear(6, 3))
    return {
        "PowerLawSpectrum": lambda rs: PowerLawSpectrum(random_state=rs).fit(X),
        "cvpca_spectrum": lambda rs: cvpca_spectrum(X, X + 1, random_state=rs),
        "CategorizationIndex": lambda rs: CategorizationIndex(random_state=rs).fit(X, y),
        "categoricality_index": lambda rs: categoricality_index(X, y, random_state=rs),
        "sample_category_pairs": lambda rs: sample_category_pairs(y, 10, random_state=rs),
        "categorization_by_layer": lambda rs: categorization_by_layer(
            net, X.astype(np.float32), y, random_state=rs, progress=False),
        "make_powerlaw_data": lambda rs: make_powerlaw_data(10, 5, 1.0, random_state=rs),
        "load_digits": lambda rs: load_digits(test_size=0.5, random_state=rs),
        "jacobian_norm": lambda rs: jacobian_norm(net, torch.randn(4, 6), n_projections=2,
                                                  random_state=rs),
        "KrotovHopfield": lambda rs: KrotovHopfield(6, n_hidden=3, random_state=rs),
        "train_module": lambda rs: train_module(MLP((6, 2)), torch.randn(8, 6),
                                                torch.arange(8) % 2, epochs=1, random_state=rs),
    }


@pytest.mark.parametrize("name", sorted(_calls()))
@pytest.mark.parametrize(("value", "error"), [("x", TypeError), (-1, ValueError), (1.5, TypeError)])
def test_bad_random_state_is_named_everywhere(name, value, error):
    with pytest.raises(error, match=re.escape(_RS_MESSAGE.format(value))):
        _calls()[name](value)


# ---------------------------------------------------------------------------------------
# 5. moments
# ---------------------------------------------------------------------------------------


def test_moments_refuse_nan_1d_complex_and_masked():
    X = np.random.default_rng(0).normal(size=(20, 4))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape(
            "batch contains 1 NaN or infinite value(s) (batch #0 fed to the accumulator, "
            "counting from 0); geomkit does not impute")):
        moments_from_array(bad)
    acc = MomentAccumulator()
    acc.update(X[:10])
    with pytest.raises(ValueError, match=re.escape("(batch #1 fed to the accumulator")):
        acc.update(bad[:10])
    with pytest.raises(ValueError, match=re.escape(
            "batch must have shape (batch, n_units) or (batch, ...); got shape (20,). For one "
            "stimulus pass batch[None, :], for one unit batch[:, None].")):
        MomentAccumulator().update(X[:, 0])  # was read as 20 stimuli x 1 unit
    with pytest.raises(ValueError, match=re.escape("X must be 2-D (n_samples, n_units); got shape (20,).")):
        moments_from_array(X[:, 0])
    with pytest.raises(TypeError, match=re.escape("X must be real-valued; got complex dtype complex128.")):
        moments_from_array(X + 1j)  # was made real
    with pytest.raises(TypeError, match=re.escape("batch must be real-valued; got complex dtype torch.complex128.")):
        MomentAccumulator().update(torch.from_numpy(X + 1j))
    with pytest.raises(ValueError, match=re.escape("batch is a masked array with 1 masked entry of 80")):
        MomentAccumulator().update(np.ma.masked_array(X, mask=np.isnan(bad)))
    # valid input keeps giving the exact covariance
    np.testing.assert_allclose(moments_from_array(X).covariance, np.cov(X, rowvar=False), rtol=1e-12)


def test_covariance_larger_than_the_memory_limit_is_refused_before_allocation():
    acc = MomentAccumulator(max_bytes=10**6)
    with pytest.raises(MemoryError, match=re.escape(
            "MomentAccumulator(method='covariance'): 1000 units need a (1000, 1000) float64 "
            "covariance and an update of the same size, 16.0 MB, more than the 1.0 MB of "
            "max_bytes. Use method='gram'")):
        acc.update(np.zeros((2, 1000)))
    assert acc._m2 is None  # nothing allocated
    # the automatic limit is the machine's free memory: 10**6 units (16 TB) never fit
    with pytest.raises(MemoryError, match="of available memory"):
        MomentAccumulator().update(np.zeros((2, 10**6), dtype=np.float32))
    # the Gram route has no such limit and gives the same spectrum
    X = np.random.default_rng(1).normal(size=(5, 1000))
    gram = MomentAccumulator(method="gram", max_bytes=10**6)
    gram.update(X)
    np.testing.assert_allclose(np.sort(gram.finalize().eigenvalues())[-4:],
                               np.sort(eigenspectrum(X))[-4:], rtol=1e-10)


# ---------------------------------------------------------------------------------------
# 6. extract: layers that skip batches, empty inputs
# ---------------------------------------------------------------------------------------


class _FirstBatchOnly(torch.nn.Module):
    """Runs ``a`` on the first forward pass and ``b`` afterwards."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.calls = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4), 0

    def forward(self, x):
        self.calls += 1
        return self.a(x) if self.calls == 1 else self.b(x)


def test_layer_that_runs_only_on_the_first_batch_is_refused():
    message = re.escape(
        "layer(s) ['a'] of _FirstBatchOnly ran on earlier batches but not on batch #1 (counting "
        "from 0, after 5 stimuli), so they would hold fewer stimuli than the inputs")
    with pytest.raises(ValueError, match=message):  # was a Dataset of 5 stimuli for 20 inputs
        extract(_FirstBatchOnly(), torch.randn(20, 3), ["a"], batch_size=5, progress=False)
    with pytest.raises(ValueError, match=message):
        layer_moments(_FirstBatchOnly(), torch.randn(20, 3), ["a"], batch_size=5, progress=False)


@pytest.mark.parametrize("inputs", [torch.randn(0, 3), np.zeros((0, 3), np.float32), []])
def test_empty_inputs_are_refused(inputs):
    with pytest.raises(ValueError, match=re.escape(
            "inputs are empty: they gave no batch to run (an array with 0 rows, or an empty "
            "DataLoader / iterable), so there is nothing to record.")):
        extract(torch.nn.Sequential(torch.nn.Linear(3, 2)), inputs, progress=False)  # was empty


# ---------------------------------------------------------------------------------------
# 7. complex and masked inputs
# ---------------------------------------------------------------------------------------


def test_complex_weights_and_responses_are_refused():
    W = np.random.default_rng(0).normal(size=(8, 5))
    text = "model['w'] must be real-valued; got complex dtype complex128."
    with pytest.raises(TypeError, match=re.escape(text)):
        weight_kurtosis({"w": W + 1j})
    with pytest.raises(TypeError, match=re.escape(text)):
        weight_spectra({"w": W + 1j})
    with pytest.raises(TypeError, match=re.escape("X must be real-valued; got complex dtype complex128.")):
        category_selectivity(W + 1j, [0, 0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(TypeError, match=re.escape("weights must be real-valued")):
        excess_kurtosis(torch.from_numpy(W + 1j))


def test_masked_entries_are_refused_not_ignored():
    w = np.r_[np.random.default_rng(0).normal(size=999), 1e6]
    masked = np.ma.masked_array(w, mask=np.arange(1000) == 999)
    assert excess_kurtosis(w) == pytest.approx(995.0, abs=0.1)  # what the mask hid
    with pytest.raises(ValueError, match=re.escape(
            "weights is a masked array with 1 masked entry of 1000; geomkit does not honour "
            "masks")):
        excess_kurtosis(masked)
    with pytest.raises(ValueError, match="X is a masked array with 1 masked entry"):
        CategorizationIndex(n_bootstraps=0).fit(masked.reshape(100, 10), np.repeat([0, 1], 50))
    # nothing masked: the data are used as they are
    plain = np.ma.masked_array(w[:999], mask=False)
    assert excess_kurtosis(plain) == excess_kurtosis(w[:999])


# ---------------------------------------------------------------------------------------
# 10. degenerate settings
# ---------------------------------------------------------------------------------------


def test_degenerate_categorization_settings_are_refused():
    X, y = _data()
    with pytest.raises(ValueError, match=re.escape(
            "CategorizationIndex: n_pairs must be an integer >= 50; got 1.")):
        CategorizationIndex(n_pairs=1).fit(X, y)  # was 1.0 with interval (1, 1)
    with pytest.raises(ValueError, match=re.escape(
            "CategorizationIndex: n_bootstraps must be one of 0 or an integer >= 2; got 1.")):
        CategorizationIndex(n_bootstraps=1).fit(X, y)
    for level in (1.0, 0.0):
        with pytest.raises(ValueError, match=re.escape(
                f"CategorizationIndex: confidence_level must be a finite real number in (0, 1); "
                f"got {level}.")):
            CategorizationIndex(confidence_level=level).fit(X, y)
    with pytest.raises(ValueError, match=re.escape(
            "PowerLawSpectrum: confidence_level must be a finite real number in (0, 1); got 1.0.")):
        PowerLawSpectrum(confidence_level=1.0, n_bootstraps=5).fit(X)  # was (-inf, inf)
    # fifty pairs is the documented minimum and gives a KS statistic on a 1/50 grid
    index = CategorizationIndex(n_pairs=50, n_bootstraps=0, random_state=0).fit(X, y).index_
    assert index * 50 == pytest.approx(round(index * 50))


def test_metric_returning_nan_is_refused():
    X, y = _data()

    def half_nan(u, v):
        return np.nan if u[0] > 0 else float(np.abs(u - v).sum())

    with pytest.raises(ValueError, match=r"^metric 'half_nan' returned NaN for \d+ of 1000 pairs "
                       r"\(first: items \(\d+, \d+\)\); the index needs a distance for every pair"):
        CategorizationIndex(metric=half_nan, n_bootstraps=0).fit(X, y)


# ---------------------------------------------------------------------------------------
# vocabulary: old names keep working for one release
# ---------------------------------------------------------------------------------------


def test_old_parameter_names_warn_and_give_the_same_numbers():
    X, y = _data()
    new = CategorizationIndex(n_bootstraps=50, confidence_level=0.9, random_state=0).fit(X, y)
    with pytest.warns(DeprecationWarning) as record:
        old = CategorizationIndex(n_bootstrap=50, confidence=0.9, random_state=0).fit(X, y)
    assert sorted(str(w.message) for w in record) == [
        "CategorizationIndex: confidence= is deprecated and will be removed in the next release; "
        "use confidence_level= instead.",
        "CategorizationIndex: n_bootstrap= is deprecated and will be removed in the next release; "
        "use n_bootstraps= instead."]
    assert all(w.filename == __file__ for w in record)  # points at the caller's line
    assert old.ci_ == new.ci_ and old.index_ == new.index_
    with pytest.raises(TypeError, match="got both n_bootstrap= and n_bootstraps="):
        CategorizationIndex(n_bootstrap=50, n_bootstraps=20).fit(X, y)
    net = torch.nn.Sequential(torch.nn.Linear(6, 3))
    Xf = X.astype(np.float32)
    with pytest.warns(DeprecationWarning) as record:
        t_old = categorization_by_layer(net, Xf, y, n_bootstrap=20, confidence=0.8, progress=False)
    assert len(record) == 2 and all(w.filename == __file__ for w in record)
    t_new = categorization_by_layer(net, Xf, y, n_bootstraps=20, confidence_level=0.8, progress=False)
    assert t_old.equals(t_new)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    torch.manual_seed(0)
    m_old = MLP((6, 2)).double()
    torch.manual_seed(0)
    m_new = MLP((6, 2)).double()
    with pytest.warns(DeprecationWarning, match="seed= is deprecated"):
        h_old = train_module(m_old, Xt, yt, epochs=2, batch_size=8, seed=3)
    h_new = train_module(m_new, Xt, yt, epochs=2, batch_size=8, random_state=3)
    assert h_old["loss"].tolist() == h_new["loss"].tolist()  # same init, same shuffling
    reg = JacobianRegularizer(n_proj=7)
    with pytest.warns(DeprecationWarning, match="n_proj= is deprecated"):
        assert reg._resolve_projections() == 7
    assert JacobianRegularizer(n_projections=7)._resolve_projections() == 7
