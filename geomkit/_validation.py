"""Input checks shared by every geomkit estimator and function.

Everything that accepts data goes through :func:`as_float_array`, so the same
input gets the same clear error everywhere: the parameter's name, what was
received and what is accepted.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_labels",
    "check_int",
    "check_float",
    "check_option",
    "to_numpy",
]


def to_numpy(x: Any, name: str = "X") -> np.ndarray:
    """Return ``x`` as a numpy array without copying where possible.

    Accepts numpy arrays, torch tensors on any device (detached, moved to the
    CPU; bfloat16, float16 and narrower floats become float32, which holds
    them exactly), xarray DataArrays, pandas objects and nested sequences. An
    :class:`xarray.Dataset` raises a ``TypeError`` (``name`` is used in the
    message): it holds several arrays, one must be picked.

    A DataArray is read by its dimension names where they are geomkit's:
    dims that are all among ``"repeat"``, ``"stimulus"``, ``"unit"`` (or
    ``"<layer>__unit"``) are put in that order, so ``("unit", "stimulus")``
    is transposed; those names out of order next to other dims raise a
    ``ValueError``; other dims are read by position. Complex data raise a
    ``TypeError``; a masked array with masked entries raises a ``ValueError``
    (masks are not honoured, so they are never silently ignored).
    """
    if isinstance(x, np.ma.MaskedArray):
        return _check_real(_unmasked(x, name), name)
    if isinstance(x, np.ndarray):
        return _check_real(x, name)
    return _check_real(_convert(x, name), name)


def _convert(x: Any, name: str) -> np.ndarray:
    module = type(x).__module__
    if module.startswith("torch"):
        import torch

        t = x.detach().cpu()
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # numpy has no bfloat16; float32 holds every half value exactly
        return t.numpy()
    if module.startswith("xarray") and type(x).__name__ == "Dataset":
        raise TypeError(
            f"{name} is an xarray.Dataset with variables {list(x.data_vars)}; pick one "
            "variable (ds['name'], or geomkit.probe.layer_activations(ds, 'name') for an "
            "extract() Dataset). Accepted: numpy arrays, torch tensors, xarray DataArrays."
        )
    if module.startswith("xarray") and hasattr(x, "values"):
        return np.asarray(_by_dim_names(x, name).values)
    if module.startswith("pandas") and hasattr(x, "to_numpy"):
        return x.to_numpy()
    return np.asarray(x)


# geomkit's layout of activations, by dimension name (DESIGN: "repeat" first, then
# "stimulus", then "unit"; extract() names a layer's unit dim "<layer>__unit").
_CANONICAL_DIMS = ("repeat", "stimulus", "unit")


def _role(dim: Any) -> str | None:
    name = str(dim)
    if name.endswith("__unit"):
        return "unit"
    return name if name in _CANONICAL_DIMS else None


def _by_dim_names(da: Any, name: str) -> Any:
    """Order a DataArray's axes by their names: ("repeat", "stimulus", "unit").

    A DataArray whose dims are all known names is transposed to that order,
    so ("unit", "stimulus") is read as stimuli x units. Known names in the
    wrong order next to other dims are ambiguous and raise; DataArrays with
    none or one known name (tuning maps ("unit", "y", "x")) are read by
    position, as numpy arrays are.
    """
    dims = tuple(da.dims)
    roles = [_role(d) for d in dims]
    known = [r for r in roles if r is not None]
    if len(set(known)) != len(known):
        raise ValueError(
            f"{name} is a DataArray with dims {dims}: two dims name the same axis role; "
            f"rename them so that each of {_CANONICAL_DIMS} appears at most once."
        )
    in_order = known == sorted(known, key=_CANONICAL_DIMS.index)
    if in_order:
        return da
    if all(r is not None for r in roles):
        return da.transpose(*sorted(dims, key=lambda d: _CANONICAL_DIMS.index(_role(d))))
    raise ValueError(
        f"{name} is a DataArray with dims {dims}, whose named axes are out of geomkit's order "
        f"{_CANONICAL_DIMS} and whose other dims cannot be placed by name. Transpose it "
        f"({name}.transpose(...)) so that the named dims come in that order."
    )


def _unmasked(x: np.ma.MaskedArray, name: str) -> np.ndarray:
    """The data of a masked array with nothing masked; masked entries raise."""
    n_masked = int(np.ma.count_masked(x))
    if n_masked:
        raise ValueError(
            f"{name} is a masked array with {n_masked} masked entr{'y' if n_masked == 1 else 'ies'} "
            f"of {x.size}; geomkit does not honour masks (a masked entry would be used as if "
            f"valid). Drop them ({name}.compressed(), or the rows / units that hold them) or "
            f"fill them ({name}.filled(value)) first."
        )
    return np.asarray(x.data)


def _check_real(arr: np.ndarray, name: str) -> np.ndarray:
    if np.iscomplexobj(arr):
        raise TypeError(
            f"{name} must be real-valued; got complex dtype {arr.dtype}. Take .real or "
            "np.abs explicitly if that is what you mean."
        )
    return arr


def host_array(x: Any) -> Any:
    """Torch tensors (any device, with or without grad) and DataArrays as numpy arrays.

    For estimators that hand their input on to scikit-learn's ``validate_data``,
    whose ``np.asarray`` fails on CUDA tensors and on tensors that require grad;
    everything else (numpy, pandas, which keeps its column names, lists) is
    returned unchanged.
    """
    if type(x).__module__.startswith(("torch", "xarray")) or isinstance(x, np.ma.MaskedArray):
        return to_numpy(x)
    return x


def as_float_array(
    X: Any,
    name: str = "X",
    *,
    ndim: int | Sequence[int] | None = None,
    min_samples: int = 1,
    min_features: int = 1,
    dtype: type = np.float64,
    allow_nan: bool = False,
    copy: bool = False,
) -> np.ndarray:
    """Validate ``X`` and return it as a floating numpy array.

    Parameters
    ----------
    X : array-like, torch.Tensor or xarray.DataArray
        The data.
    name : str, default="X"
        The parameter's name, used in error messages.
    ndim : int or sequence of int, optional
        Accepted numbers of dimensions.
    min_samples : int, default=1
        Minimum length of the second-to-last axis (the samples axis of a
        2-D array) — for a 1-D array, of its only axis.
    min_features : int, default=1
        Minimum length of the last axis for arrays with ``ndim >= 2``.
    dtype : numpy dtype, default=np.float64
        Output dtype (a floating type).
    allow_nan : bool, default=False
        If False, NaN and inf raise ``ValueError``.
    copy : bool, default=False
        Force a copy, so that the caller may modify the result.

    Returns
    -------
    ndarray
        ``X`` as an array of ``dtype``.

    Raises
    ------
    TypeError
        For complex, object, string or boolean-free non-numeric data.
    ValueError
        For empty input, wrong ``ndim``, too few samples / features, NaN or inf.
    """
    arr = to_numpy(X, name)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be numeric; got an array of dtype object that cannot be "
                "converted to float. Accepted: numpy arrays, torch tensors, xarray "
                "DataArrays of real numbers."
            ) from None
    if np.iscomplexobj(arr):
        raise TypeError(
            f"{name} must be real-valued; got complex dtype {arr.dtype}. Take .real or "
            "np.abs explicitly if that is what you mean."
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(
            f"{name} must be numeric; got dtype {arr.dtype}. Accepted: real integer or "
            "floating arrays."
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, numbers.Integral) else tuple(ndim)
        if arr.ndim not in allowed:
            expected = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have {expected} dimension(s); got shape {arr.shape} "
                f"({arr.ndim} dimension(s))."
            )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one value is needed.")
    if arr.ndim >= 1:
        n_samples = arr.shape[-2] if arr.ndim >= 2 else arr.shape[0]
        if n_samples < min_samples:
            raise ValueError(
                f"{name} has {n_samples} sample(s) (shape {arr.shape}); at least "
                f"{min_samples} are required."
            )
    if arr.ndim >= 2 and arr.shape[-1] < min_features:
        raise ValueError(
            f"{name} has {arr.shape[-1]} feature(s) (shape {arr.shape}); at least "
            f"{min_features} are required."
        )
    out = np.array(arr, dtype=dtype, copy=True) if copy else np.asarray(arr, dtype=dtype)
    if not allow_nan and not np.isfinite(out).all():
        n_nan = int(np.isnan(out).sum())
        n_inf = int(np.isinf(out).sum())
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s); geomkit does "
            "not impute: remove or replace them first."
        )
    return out


def check_labels(y: Any, n_samples: int, name: str = "y", *, min_classes: int = 1) -> np.ndarray:
    """Validate a 1-D label vector of length ``n_samples``.

    Returns the labels as a numpy array (original dtype kept for strings,
    integers for numbers that are whole).
    """
    arr = to_numpy(y, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of length {n_samples}; got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} label(s) but the data has {n_samples} sample(s); "
            "they must match."
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf.")
        if np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
    n_classes = np.unique(arr).size
    if n_classes < min_classes:
        raise ValueError(
            f"{name} has {n_classes} distinct class(es); at least {min_classes} are required."
        )
    return arr


def check_int(
    value: Any, name: str, *, low: int | None = None, high: int | None = None
) -> int:
    """Return ``value`` as an int, checking ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}.")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value}.")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float, checking its bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} of type {type(value).__name__}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}.")
    if low is not None:
        if low_inclusive and value < low:
            raise ValueError(f"{name} must be >= {low}; got {value}.")
        if not low_inclusive and value <= low:
            raise ValueError(f"{name} must be > {low}; got {value}.")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}; got {value}.")
    return value


def check_option(value: Any, name: str, options: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``options``."""
    options = tuple(options)
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}.")
    return value
