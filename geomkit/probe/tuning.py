"""2-D tuning maps: a unit's response over a plane of inputs.

The plane is ``origin + a * direction_1 + b * direction_2`` for ``a`` and
``b`` on a grid. Directions can be the differences to two other stimuli
(:func:`stimulus_directions`: the plane then passes through all three) or
the top principal components of a data set (:func:`pca_directions`). The maps
feed :class:`geomkit.measures.topology.LevelSetTopology` (Wang & Ponce 2022,
"Tuning landscapes of the ventral stream", Cell Reports).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._validation import as_float_array, check_int
from .extract import _run

__all__ = ["tuning_map", "stimulus_directions", "pca_directions"]


def stimulus_directions(origin: Any, stimulus_1: Any, stimulus_2: Any) -> tuple[np.ndarray, np.ndarray]:
    """Directions from ``origin`` to two other stimuli (coefficient 1 reaches each of them).

    Parameters
    ----------
    origin : array-like
        The stimulus at the centre of the plane (any shape, e.g. (1, 28, 28)).
    stimulus_1, stimulus_2 : array-like
        Two more stimuli, of the shape of ``origin``.

    Returns
    -------
    (ndarray, ndarray)
        ``stimulus_1 - origin`` and ``stimulus_2 - origin``, in the inputs' shape.

    Examples
    --------
    >>> d1, d2 = stimulus_directions([0.0, 1.0], [1.0, 1.0], [0.0, 3.0])
    >>> d1.tolist(), d2.tolist()
    ([1.0, 0.0], [0.0, 2.0])
    """
    o = as_float_array(origin, "origin")
    d1 = as_float_array(stimulus_1, "stimulus_1") - o
    d2 = as_float_array(stimulus_2, "stimulus_2") - o
    if d1.shape != o.shape or d2.shape != o.shape:
        raise ValueError(
            f"origin {o.shape}, stimulus_1 {d1.shape} and stimulus_2 {d2.shape} must have one shape."
        )
    return d1, d2


def pca_directions(X: Any, n_components: int = 2) -> np.ndarray:
    """Top principal axes of a set of inputs, as unit vectors in the inputs' shape.

    Parameters
    ----------
    X : array-like of shape (n_items, ...)
    n_components : int, default=2

    Returns
    -------
    ndarray of shape (n_components, ...)
        Orthonormal, by decreasing explained variance; the sign makes the
        largest-magnitude entry positive (deterministic).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 3)) * [5.0, 0.1, 1.0]
    >>> np.abs(pca_directions(X)).round(1).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    arr = as_float_array(X, "X")
    if arr.ndim < 2:
        raise ValueError(f"X must be (n_items, ...) with at least 2 dims; got shape {arr.shape}.")
    n_components = check_int(n_components, "n_components", low=1, high=min(arr.shape[0], arr[0].size))
    flat = arr.reshape(arr.shape[0], -1)
    centred = flat - flat.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:n_components]
    signs = np.sign(comps[np.arange(n_components), np.abs(comps).argmax(axis=1)])
    return (comps * signs[:, None]).reshape(n_components, *arr.shape[1:])


def _coefficients(extent: Any, resolution: int) -> np.ndarray:
    if isinstance(extent, numbers.Real) and not isinstance(extent, bool):
        if extent <= 0:
            raise ValueError(f"extent must be positive; got {extent}.")
        return np.linspace(-float(extent), float(extent), resolution)
    lo_hi = np.asarray(extent, dtype=np.float64).ravel()
    if lo_hi.size != 2 or not lo_hi[0] < lo_hi[1]:
        raise ValueError(
            f"extent must be a positive number e (grid -e..e) or a pair (low, high) with "
            f"low < high; got {extent!r}."
        )
    return np.linspace(lo_hi[0], lo_hi[1], resolution)


class _PlaneBatches:
    """The grid's inputs, made batch by batch (the whole grid may not fit in memory)."""

    def __init__(self, origin, d1, d2, coef, batch_size):
        self.origin, self.d1, self.d2 = origin, d1, d2
        self.coef = coef
        self.batch_size = batch_size
        self.n = coef.size**2

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        r = self.coef.size
        shape = (-1,) + (1,) * self.origin.ndim
        for first in range(0, self.n, self.batch_size):
            idx = np.arange(first, min(first + self.batch_size, self.n))
            iy, ix = np.divmod(idx, r)  # row-major: y (direction_2) is the slow axis
            a = self.coef[ix].reshape(shape)
            b = self.coef[iy].reshape(shape)
            yield (self.origin + a * self.d1 + b * self.d2).astype(np.float32)


def _unit_indices(unit: Any, feature_shape: tuple[int, ...], n_units: int) -> tuple[np.ndarray, bool]:
    """Flat unit indices and whether a single unit was asked for."""
    def one(u):
        if isinstance(u, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in u):
            if len(u) != len(feature_shape):
                raise ValueError(
                    f"unit {tuple(u)} must index the layer's feature shape {feature_shape}."
                )
            return int(np.ravel_multi_index(tuple(int(v) for v in u), feature_shape))
        if isinstance(u, numbers.Integral) and not isinstance(u, bool):
            if not -n_units <= u < n_units:
                raise ValueError(f"unit {u} is out of range for a layer of {n_units} units.")
            return int(u) % n_units
        raise TypeError(
            "unit must be an int (flat index), a tuple indexing the feature map (e.g. "
            f"(channel, y, x)) or a list of those; got {u!r}."
        )

    if isinstance(unit, list) or (isinstance(unit, np.ndarray) and unit.ndim == 1):
        return np.array([one(u) for u in unit], dtype=np.int64), False
    return np.array([one(unit)], dtype=np.int64), True


def tuning_map(
    model: Any,
    layer: str,
    unit: Any,
    origin: Any,
    direction_1: Any,
    direction_2: Any,
    extent: Any = 1.0,
    resolution: int = 32,
    *,
    batch_size: int = 256,
    device: Any = None,
    progress: bool = False,
):
    """Response of one or several units of ``layer`` over a plane in input space.

    Parameters
    ----------
    model : torch.nn.Module
        Left exactly as found (run in eval mode, as :func:`geomkit.probe.extract`
        runs it). Only the requested units are kept from each batch, so memory
        holds one batch of the layer, never the layer over the whole plane.
    layer : str
        Module name whose output holds the unit.
    unit : int, tuple or list
        Flat index into the layer's output, a tuple indexing its feature map
        (``(channel, y, x)`` for a conv layer), or a list of those for several
        maps from one pass.
    origin : array-like
        One input, without batch axis (e.g. (1, 28, 28) or (784,)).
    direction_1, direction_2 : array-like
        Directions in the origin's shape (see :func:`stimulus_directions`,
        :func:`pca_directions`); used as given, not normalized.
    extent : float or (float, float), default=1.0
        Coefficients span ``-extent..extent`` (or ``low..high``) on both axes.
    resolution : int, default=32
        Grid points per axis.
    batch_size, device, progress
        As in :func:`geomkit.probe.extract`; the ``resolution**2`` inputs are
        made batch by batch.

    Returns
    -------
    xarray.DataArray of shape (resolution, resolution), or (n_units, resolution, resolution)
        Dims ``("y", "x")`` (``"unit"`` first for a list of units); ``x`` holds
        the coefficients of ``direction_1`` and ``y`` those of ``direction_2``,
        so ``map[i, j]`` is the response at ``origin + x[j] * d1 + y[i] * d2``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.eye(4, 3)); _ = net[0].bias.zero_()
    >>> m = tuning_map(net, "0", 0, [0.0, 0, 0], [1.0, 0, 0], [0.0, 1, 0], extent=2, resolution=5)
    >>> m.sel(y=0.0).values.tolist()          # unit 0 reads the first input coordinate
    [-2.0, -1.0, 0.0, 1.0, 2.0]
    """
    import torch
    import xarray as xr

    resolution = check_int(resolution, "resolution", low=2)
    check_int(batch_size, "batch_size", low=1)
    if not isinstance(layer, str):
        raise TypeError(f"layer must be one module name (a string); got {layer!r}.")
    origin = as_float_array(origin, "origin")
    d1 = as_float_array(direction_1, "direction_1")
    d2 = as_float_array(direction_2, "direction_2")
    if d1.shape != origin.shape or d2.shape != origin.shape:
        raise ValueError(
            f"direction_1 {d1.shape} and direction_2 {d2.shape} must have the origin's shape "
            f"{origin.shape}."
        )
    coef = _coefficients(extent, resolution)
    batches = _PlaneBatches(origin, d1, d2, coef, batch_size)
    # Only the requested units of each batch are kept: the whole layer over resolution**2
    # inputs (e.g. a large conv layer at resolution 64) may not fit in memory.
    picked: list[np.ndarray] = []
    found: dict[str, Any] = {}

    def on_batch(records, y):
        if layer not in records:
            raise ValueError(
                f"layer {layer!r} gave no single tensor output to map; it recorded "
                f"{list(records)}. Name a module that returns one tensor."
            )
        t = records[layer]
        shape = tuple(int(s) for s in t.shape[1:])
        if not found:
            n_units = int(np.prod(shape)) if shape else 1
            found["shape"] = shape
            found["idx"], found["single"] = _unit_indices(unit, shape, n_units)
            found["sel"] = torch.as_tensor(found["idx"], device=t.device)
        elif shape != found["shape"]:
            raise ValueError(
                f"layer {layer!r} changed output shape between batches: {found['shape']} "
                f"then {shape}."
            )
        # float32 storage as in extract, so the maps equal extract's activations exactly.
        chosen = t.reshape(t.shape[0], -1)[:, found["sel"]]
        picked.append(chosen.cpu().numpy().astype(np.float32, copy=False))

    _run(model, batches, [layer], batch_size, device, progress, True, on_batch, "tuning map")
    idx, single = found["idx"], found["single"]
    maps = np.concatenate(picked).T.reshape(idx.size, resolution, resolution).astype(np.float64)
    da = xr.DataArray(
        maps,
        dims=("unit", "y", "x"),
        coords={"unit": idx, "y": coef, "x": coef},
        name="response",
        attrs={"layer": layer, "model": type(model).__name__},
    )
    return da.isel(unit=0) if single else da
