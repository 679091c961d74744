import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from geomkit.moments import MomentAccumulator, Moments, moments_from_array


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 60),
    d=st.integers(1, 6),
    cuts=st.lists(st.integers(1, 59), max_size=5),
    shift=st.floats(-1e4, 1e4),
)
def test_streaming_equals_batch_covariance(n, d, cuts, shift):
    X = np.random.default_rng(n * 7 + d).normal(size=(n, d)) + shift
    acc = MomentAccumulator()
    for part in np.split(X, sorted({c for c in cuts if c < n})):
        acc.update(part)
    m = acc.finalize()
    np.testing.assert_allclose(m.mean, X.mean(axis=0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(m.covariance, np.atleast_2d(np.cov(X, rowvar=False)), rtol=1e-8, atol=1e-8)


def test_gram_route_has_the_same_nonzero_spectrum(rng):
    X = rng.normal(size=(10, 40))
    g = moments_from_array(X)
    assert g.kind == "gram" and g.gram.shape == (10, 10)
    c = moments_from_array(X, method="covariance")
    np.testing.assert_allclose(g.eigenvalues()[:9], c.eigenvalues()[:9], rtol=1e-9)


def test_torch_batches_and_xarray_round_trip(tmp_path, rng):
    X = rng.normal(size=(30, 4))
    acc = MomentAccumulator()
    acc.update(torch.from_numpy(X[:10]).float())
    acc.update(X[10:])
    m = acc.finalize(layer="fc")
    np.testing.assert_allclose(m.covariance, np.cov(X, rowvar=False), rtol=1e-6, atol=1e-7)
    path = tmp_path / "m.nc"
    m.to_xarray().to_netcdf(path)
    with xr.open_dataset(path) as ds:
        back = Moments.from_xarray(ds.load())
    assert back.layer == "fc" and back.n_samples == 30
    np.testing.assert_array_equal(back.covariance, m.covariance)


def test_errors():
    acc = MomentAccumulator()
    acc.update(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2 stimuli"):
        acc.finalize()
    with pytest.raises(ValueError, match="batch has 2 units but earlier batches had 3"):
        acc.update(np.ones((2, 2)))
    with pytest.raises(ValueError, match="method must be one of"):
        MomentAccumulator(method="svd")
