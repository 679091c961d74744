import numpy as np
import pytest
import torch
import xarray as xr

from geomkit._validation import as_float_array, check_float, check_int, check_labels, check_option


def test_converts_numpy_torch_xarray_to_the_same_values(rng):
    X = rng.normal(size=(5, 3)).astype(np.float32)
    expected = X.astype(np.float64)
    for given in (X, torch.from_numpy(X), xr.DataArray(X, dims=("stimulus", "unit")), X.tolist()):
        out = as_float_array(given)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, expected)


def test_requires_grad_tensor_is_accepted():
    t = torch.ones(3, 2, requires_grad=True)
    np.testing.assert_array_equal(as_float_array(t), np.ones((3, 2)))


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.array([[1.0, np.nan]]), ValueError, "1 NaN"),
        (np.array([[1.0, np.inf]]), ValueError, "1 infinite"),
        (np.zeros((0, 3)), ValueError, "empty"),
        (np.ones((2, 2)) + 1j, TypeError, "complex"),
        (np.array([["a", "b"]]), TypeError, "numeric"),
        (np.array([[object(), 1]], dtype=object), TypeError, "numeric"),
    ],
)
def test_bad_input_names_the_parameter(bad, exc, words):
    with pytest.raises(exc, match="activations") as info:
        as_float_array(bad, "activations")
    assert words in str(info.value)


def test_ndim_and_sample_counts():
    with pytest.raises(ValueError, match=r"X must have 2 dimension\(s\); got shape \(3,\)"):
        as_float_array(np.ones(3), ndim=2)
    with pytest.raises(ValueError, match="1 sample"):
        as_float_array(np.ones((1, 4)), min_samples=2)
    with pytest.raises(ValueError, match="2 feature"):
        as_float_array(np.ones((4, 2)), min_features=3)
    assert as_float_array(np.ones((2, 3, 4)), ndim=(2, 3)).shape == (2, 3, 4)


def test_nan_allowed_when_asked():
    out = as_float_array(np.array([1.0, np.nan]), allow_nan=True)
    assert np.isnan(out[1])


def test_copy_is_independent(rng):
    X = rng.normal(size=(3, 3))
    out = as_float_array(X, copy=True)
    out[0, 0] = 99.0
    assert X[0, 0] != 99.0


def test_labels():
    np.testing.assert_array_equal(check_labels(np.array([0.0, 1.0, 2.0]), 3), [0, 1, 2])
    assert check_labels(np.array([0.0, 1.0]), 2).dtype == np.int64
    with pytest.raises(ValueError, match="2 label.*3 sample"):
        check_labels([0, 1], 3)
    with pytest.raises(ValueError, match="1 distinct class"):
        check_labels([1, 1, 1], 3, min_classes=2)


def test_scalar_checks():
    assert check_int(np.int32(3), "n", low=1) == 3
    with pytest.raises(TypeError, match="n must be an integer"):
        check_int(2.5, "n")
    with pytest.raises(TypeError):
        check_int(True, "n")
    with pytest.raises(ValueError, match="n must be >= 1; got 0"):
        check_int(0, "n", low=1)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        check_float(0.0, "alpha", low=0.0, low_inclusive=False)
    with pytest.raises(ValueError, match="finite"):
        check_float(float("nan"), "alpha")
    with pytest.raises(ValueError, match="method must be one of 'a', 'b'; got 'c'"):
        check_option("c", "method", ("a", "b"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_tensors_convert_exactly(dtype):
    # Values exactly representable in both half formats, so the ground truth is exact.
    values = np.array([[0.5, -2.0, 3.0], [1.25, 0.0, -96.0]])
    t = torch.tensor(values, dtype=dtype)
    out = as_float_array(t)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, values)
    # Values that are not exact survive as the tensor holds them (float32 is a superset).
    rough = torch.tensor([0.1, 1 / 3], dtype=dtype)
    np.testing.assert_array_equal(as_float_array(rough), rough.float().numpy().astype(np.float64))


def test_xarray_dataset_asks_to_pick_a_variable():
    ds = xr.Dataset({"fc1": (("stimulus", "u"), np.ones((3, 2))), "relu": (("stimulus", "v"), np.ones((3, 4)))})
    with pytest.raises(TypeError, match=r"activations is an xarray.Dataset with variables \['fc1', 'relu'\]; pick one"):
        as_float_array(ds, "activations")
    np.testing.assert_array_equal(as_float_array(ds["relu"]), np.ones((3, 4)))
