"""Recorded responses: a synthetic brain with known ground truth, and file readers.

Both return the layout of :func:`geomkit.probe.extract` with a repeat axis:
an :class:`xarray.DataArray` with dims ``("repeat", "stimulus", "unit")``.
Re-exported by :mod:`geomkit.datasets`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._params import RANDOM_STATE, Boolean, InstanceOf, Integer, Real, check_random_state, validate_params
from ._validation import as_float_array, to_numpy

__all__ = ["make_recording", "load_recording"]

DIMS = ("repeat", "stimulus", "unit")


def _orthonormal(rng: np.random.Generator, n: int, k: int, against: np.ndarray | None = None):
    """(n, k) orthonormal columns, Haar-random, orthogonal to ``against``'s columns."""
    G = rng.standard_normal((n, k))
    if against is not None:
        G -= against @ (against.T @ G)
    Q, R = np.linalg.qr(G)
    return Q * np.sign(np.diag(R))


def make_recording(
    representation: Any = None,
    *,
    n_stimuli: int = 500,
    n_units: int = 50,
    n_repeats: int = 4,
    alpha: float = 1.0,
    noise: float = 1.0,
    explained: float = 1.0,
    random_state: Any = None,
    return_weights: bool = False,
):
    """A synthetic recording whose signal, noise and relation to a representation are known.

    The signal (stimulus-driven response, the same on every repeat) is

    .. math::

       S = \\sqrt{n}\\,\\big(\\sqrt{e}\\,U + \\sqrt{1-e}\\,U_\\perp\\big)\\,
       \\Lambda^{1/2} R^\\top,
       \\qquad \\Lambda = \\mathrm{diag}(c\\, i^{-\\alpha}),

    with :math:`U` an orthonormal basis of the centred representation's
    column space, :math:`U_\\perp` orthonormal columns orthogonal to it (and to
    the constant), :math:`R` a random orthonormal (n_units, k) matrix,
    ``k = min(rank, n_units)`` and ``c`` such that the mean signal variance per
    unit is 1. So the signal covariance has eigenvalues exactly
    :math:`c\\, i^{-\\alpha}`; a share ``e = explained`` of every unit's signal
    variance is a linear function of the representation, ``(F - F.mean(0)) @ W``,
    and the rest is orthogonal to it. Each repeat adds independent Gaussian
    noise of standard deviation ``noise``.

    Parameters
    ----------
    representation : array-like of shape (n_stimuli, n_features), optional
        The representation (e.g. a network layer) the recording is linearly
        related to. None draws a standard Gaussian one of ``n_stimuli x n_units``.
    n_stimuli : int, default=500
        Number of stimuli when ``representation`` is None.
    n_units : int, default=50
        Number of recorded units.
    n_repeats : int, default=4
        Repeats of every stimulus.
    alpha : float, default=1.0
        Power-law exponent of the signal spectrum.
    noise : float, default=1.0
        Standard deviation of the trial noise (the mean signal variance per unit is 1).
    explained : float, default=1.0
        Share in [0, 1] of each unit's signal variance that is linear in the representation.
    random_state : None, int or numpy.random.Generator, default=None
        Seed.
    return_weights : bool, default=False
        Also return the map ``W`` of shape (n_features, n_units).

    Returns
    -------
    recording : xarray.DataArray of shape (n_repeats, n_stimuli, n_units)
        Dims ``("repeat", "stimulus", "unit")``. Coordinates carry the truth:
        ``signal`` (stimulus, unit), the noise-free responses; on ``unit``:
        ``signal_variance``, ``true_ceiling`` (the reliability of the
        ``n_repeats``-trial mean, :math:`v/(v + \\sigma^2/R)`, what the
        Spearman-Brown split-half ceiling estimates) and ``true_predictivity``
        (the correlation of the linear prediction ``(F - F.mean(0)) W`` with the
        trial mean, :math:`\\sqrt{e v}/\\sqrt{v + \\sigma^2/R}`). Attributes:
        ``alpha``, ``noise``, ``explained``, ``eigenvalues``.
    weights : ndarray of shape (n_features, n_units)
        Only if ``return_weights``.

    Examples
    --------
    >>> from geomkit.datasets import make_recording
    >>> rec = make_recording(n_stimuli=300, n_units=20, n_repeats=4, noise=1.0, random_state=0)
    >>> rec.dims, rec.shape
    (('repeat', 'stimulus', 'unit'), (4, 300, 20))
    >>> round(float(rec["signal_variance"].mean()), 10)
    1.0
    """
    validate_params(
        dict(n_stimuli=n_stimuli, n_units=n_units, n_repeats=n_repeats, alpha=alpha,
             noise=noise, explained=explained, random_state=random_state,
             return_weights=return_weights),
        {"n_stimuli": [Integer(3, None)], "n_units": [Integer(1, None)],
         "n_repeats": [Integer(1, None)], "alpha": [Real(0, None)], "noise": [Real(0, None)],
         "explained": [Real(0, 1)], "random_state": [RANDOM_STATE],
         "return_weights": [Boolean()]},
        caller="make_recording",
    )
    rng = check_random_state(random_state)
    stimulus_coord = None
    if representation is None:
        F = rng.standard_normal((n_stimuli, n_units))
    else:
        if type(representation).__module__.startswith("xarray") and "stimulus" in getattr(
                representation, "coords", {}):
            stimulus_coord = to_numpy(representation["stimulus"])
        F = as_float_array(representation, "representation", ndim=2, min_samples=3)
    n = F.shape[0]
    Fc = F - F.mean(axis=0)
    U, s, Vt = np.linalg.svd(Fc, full_matrices=False)
    rank = int(np.sum(s > 1e-10 * s[0])) if s[0] > 0 else 0
    if rank == 0:
        raise ValueError("representation has zero variance across stimuli; it can explain nothing.")
    k = min(rank, n_units)
    if explained < 1 and n - 1 - rank < k:
        raise ValueError(
            f"explained={explained} needs a signal part orthogonal to the representation: "
            f"n_stimuli - 1 - rank = {n - 1 - rank} must be >= {k}; use more stimuli."
        )
    lam = np.arange(1, k + 1, dtype=np.float64) ** -float(alpha)
    lam *= n_units / lam.sum()
    R = _orthonormal(rng, n_units, k)
    basis = np.sqrt(explained) * U[:, :k]
    if explained < 1:
        against = np.hstack([np.full((n, 1), 1 / np.sqrt(n)), U[:, :rank]])
        basis = basis + np.sqrt(1 - explained) * _orthonormal(rng, n, k, against)
    scale = np.sqrt(n) * np.sqrt(lam) * R  # (n_units, k): column i times sqrt(n lam_i)
    signal = basis @ scale.T
    W = (Vt[:k].T / s[:k]) @ (np.sqrt(explained) * scale.T)  # Fc @ W = explained part
    responses = signal + noise * rng.standard_normal((n_repeats, n, n_units))
    v = (R**2) @ lam  # per-unit signal variance
    noise_var = noise**2 / n_repeats
    coords = {
        "repeat": np.arange(n_repeats),
        "stimulus": stimulus_coord if stimulus_coord is not None else np.arange(n),
        "unit": np.arange(n_units),
        "signal": (("stimulus", "unit"), signal),
        "signal_variance": ("unit", v),
        "true_ceiling": ("unit", v / (v + noise_var)),
        "true_predictivity": ("unit", np.sqrt(explained * v) / np.sqrt(v + noise_var)),
    }
    attrs = {"alpha": float(alpha), "noise": float(noise), "explained": float(explained),
             "eigenvalues": lam, "source": "geomkit.datasets.make_recording"}
    rec = xr.DataArray(responses, dims=DIMS, coords=coords, attrs=attrs, name="responses")
    return (rec, W) if return_weights else rec


# ----------------------------------------------------------------------------------------- files


def _canonical(data: Any, dims: tuple[str, ...] | None, coords: dict, source: str) -> xr.DataArray:
    """Array + named dims -> DataArray with dims (repeat, stimulus, unit)."""
    data = np.asarray(data)
    if dims is None:
        defaults = {3: DIMS, 2: ("stimulus", "unit")}
        if data.ndim not in defaults:
            raise ValueError(
                f"{source}: the response array has shape {data.shape}; expected 2 dims "
                "(stimulus, unit) or 3 (repeat, stimulus, unit), or pass dims=."
            )
        dims = defaults[data.ndim]
    dims = tuple(str(d) for d in dims)
    if len(dims) != data.ndim or len(set(dims)) != len(dims) or not {"stimulus", "unit"} <= set(
            dims) or not set(dims) <= set(DIMS):
        raise ValueError(
            f"{source}: dims must name each axis of the {data.ndim}-D response array (shape "
            f"{data.shape}) once, from {DIMS}, with 'stimulus' and 'unit'; got {dims}."
        )
    if not np.issubdtype(data.dtype, np.number):
        raise TypeError(f"{source}: the response array must be numeric; got dtype {data.dtype}.")
    da = xr.DataArray(data, dims=dims)
    if "repeat" not in dims:
        da = da.expand_dims("repeat")
    da = da.transpose(*DIMS)
    for name in DIMS:
        values = coords.get(name)
        if values is not None and np.ndim(values) == 1 and len(values) == da.sizes[name]:
            da = da.assign_coords({name: np.asarray(values)})
        else:
            da = da.assign_coords({name: np.arange(da.sizes[name])})
    da.attrs["source"] = source
    da.name = "responses"
    return da


def _pick(names: list[str], variable: str | None, source: str) -> str:
    if variable is not None:
        if variable not in names:
            raise KeyError(f"{source} has no array {variable!r}; it holds {sorted(names)}.")
        return variable
    if "responses" in names:
        return "responses"
    candidates = [n for n in names if n not in DIMS and n != "dims"]
    if len(candidates) != 1:
        raise ValueError(
            f"{source} holds arrays {sorted(names)}; name the response array with variable= "
            "(the default is 'responses')."
        )
    return candidates[0]


def _dims_attr(attrs: Any) -> tuple[str, ...] | None:
    for key in ("dims", "_ARRAY_DIMENSIONS"):
        if key in attrs:
            value = attrs[key]
            if isinstance(value, str):
                value = value.replace(",", " ").split()
            return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(value))
    return None


def _require(module: str, extra: str = "recordings"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"reading this file needs {module}, which is not installed; install it with "
            f"`pip install {module}` or `pip install geomkit[{extra}]`."
        ) from None


def _load_npz(path, variable, dims, source):
    with np.load(path, allow_pickle=False) as f:
        name = _pick(list(f.files), variable, source)
        data = f[name]
        if dims is None and "dims" in f.files:
            dims = tuple(str(d) for d in f["dims"])
        coords = {d: f[d] for d in DIMS if d in f.files}
    return _canonical(data, dims, coords, source)


def _load_hdf5(path, variable, dims, source):
    h5py = _require("h5py")
    with h5py.File(path, "r") as f:
        names = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
        name = _pick(names, variable, source)
        ds = f[name]
        dims = dims or _dims_attr(ds.attrs)
        return _canonical(ds[()], dims, {d: f[d][()] for d in DIMS if d in names}, source)


def _load_zarr(path, variable, dims, source):
    zarr = _require("zarr")
    group = zarr.open_group(str(path), mode="r")
    names = [k for k, _ in group.arrays()]
    name = _pick(names, variable, source)
    arr = group[name]
    # zarr v3 keeps dimension names in the metadata (xarray writes them there), v2 in attrs
    named = getattr(getattr(arr, "metadata", None), "dimension_names", None)
    dims = dims or _dims_attr(arr.attrs) or (tuple(named) if named else None)
    return _canonical(arr[...], dims, {d: group[d][...] for d in DIMS if d in names}, source)


def _load_netcdf(path, variable, dims, source):
    with xr.open_dataset(path) as ds:
        name = _pick(list(ds.data_vars), variable, source)
        da = ds[name].load()
    coords = {d: da[d].values for d in DIMS if d in da.coords}
    return _canonical(da.values, dims or da.dims, coords, source)


def _nwb_arrays(nwbfile) -> dict[str, Any]:
    """Every named object with a ``data`` array: acquisition, scratch, processing modules."""
    found = {}
    for name, obj in {**nwbfile.acquisition, **nwbfile.scratch}.items():
        found[name] = obj
    for module in nwbfile.processing.values():
        for name, obj in module.data_interfaces.items():
            found.setdefault(name, obj)
    return {k: v for k, v in found.items() if getattr(v, "data", None) is not None}


def _nwb_counts(nwbfile, stimulus_column: str, source: str) -> xr.DataArray:
    """Spike counts of every unit in every trial, trials grouped by stimulus into repeats."""
    trials = nwbfile.trials
    if trials is None or stimulus_column not in trials.colnames:
        have = "no trials table" if trials is None else f"trial columns {list(trials.colnames)}"
        raise ValueError(
            f"{source}: counting spikes needs a trials table with start_time, stop_time and a "
            f"{stimulus_column!r} column (stimulus_column=); the file has {have}."
        )
    start = np.asarray(trials["start_time"][:], dtype=float)
    stop = np.asarray(trials["stop_time"][:], dtype=float)
    stimuli = np.asarray(trials[stimulus_column][:])
    labels, inverse, counts = np.unique(stimuli, return_inverse=True, return_counts=True)
    if counts.min() != counts.max():
        few = labels[np.argmin(counts)].item()
        raise ValueError(
            f"{source}: repeats of unequal shape: stimulus {few!r} has {counts.min()} trial(s) "
            f"while another has {counts.max()}; every stimulus needs the same number of trials."
        )
    units = nwbfile.units
    n_units, n_rep = len(units), int(counts[0])
    out = np.zeros((n_rep, labels.size, n_units))
    slot = np.zeros(labels.size, dtype=int)
    order = np.argsort(start, kind="stable")
    rep_of = np.empty(len(start), dtype=int)
    for t in order:  # repeats numbered in time order
        rep_of[t] = slot[inverse[t]]
        slot[inverse[t]] += 1
    for u in range(n_units):
        times = np.sort(np.asarray(units["spike_times"][u], dtype=float))
        n_spikes = np.searchsorted(times, stop, side="left") - np.searchsorted(times, start, "left")
        out[rep_of, inverse, u] = n_spikes
    unit_ids = np.asarray(units.id[:])
    da = _canonical(out, DIMS, {"stimulus": labels, "unit": unit_ids}, source)
    da.attrs["quantity"] = "spike counts in [start_time, stop_time) of each trial"
    return da


def _load_nwb(path, variable, dims, stimulus_column, source):
    pynwb = _require("pynwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        arrays = _nwb_arrays(nwbfile)
        has_units = nwbfile.units is not None and "spike_times" in nwbfile.units.colnames
        if variable is None and has_units:
            return _nwb_counts(nwbfile, stimulus_column, source)
        name = variable or "responses"
        if name not in arrays:
            raise ValueError(
                f"{source}: no units table with spike_times and no trial-aligned response "
                f"array named {name!r} (acquisition, scratch or processing); the file holds "
                f"arrays {sorted(arrays)}. Pass variable= to name the array."
            )
        obj = arrays[name]
        if dims is None:
            dims = _dims_attr({"dims": obj.description}) if str(getattr(
                obj, "description", "")).startswith(("repeat", "stimulus", "unit")) else None
        return _canonical(np.asarray(obj.data[()]), dims, {}, source)


def load_recording(
    path: str | os.PathLike,
    *,
    variable: str | None = None,
    dims: tuple[str, ...] | None = None,
    stimulus_column: str = "stimulus",
) -> xr.DataArray:
    """Load recorded responses as a DataArray with dims ``("repeat", "stimulus", "unit")``.

    Formats, chosen by the file name:

    * ``.nwb`` (pynwb): either a **units table** with spike times plus a
      **trials table** with ``start_time``, ``stop_time`` and a stimulus
      column — the spikes of each unit are counted in every trial, and the
      trials of each stimulus become its repeats (in time order; every
      stimulus needs the same number) — or a trial-aligned response array
      (``variable``, default ``"responses"``) in the acquisition, scratch or
      a processing module. Its dims come from ``dims``, else its description
      when that lists them (``"repeat stimulus unit"``), else the default order.
    * ``.npy``; ``.npz`` (the array ``variable``, dims from an array ``dims``,
      coordinates from arrays named ``repeat`` / ``stimulus`` / ``unit``);
    * HDF5 ``.h5`` / ``.hdf5`` (h5py) and ``.zarr`` stores: the dataset
      ``variable`` with a ``dims`` attribute (or xarray's ``_ARRAY_DIMENSIONS``),
      coordinates from datasets named after the dims;
    * netCDF ``.nc`` (as written by ``DataArray.to_netcdf``).

    Without named dims a 3-D array is read as (repeat, stimulus, unit) and a
    2-D one as (stimulus, unit) with a single repeat.

    Parameters
    ----------
    path : str or os.PathLike
        The file (a ``.zarr`` store is a folder).
    variable : str, optional
        Name of the response array; default ``"responses"``, or the file's only array.
    dims : tuple of str, optional
        The array's axis names, a permutation of ``("repeat", "stimulus", "unit")``
        (``"repeat"`` may be absent); overrides what the file says.
    stimulus_column : str, default="stimulus"
        The NWB trials-table column identifying each trial's stimulus.

    Returns
    -------
    xarray.DataArray of shape (n_repeats, n_stimuli, n_units)
        With ``repeat``, ``stimulus`` and ``unit`` coordinates and the file in ``attrs["source"]``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        For an unknown suffix, dims that do not name the axes, an NWB file with
        neither table nor array, or stimuli with unequal trial counts.
    ImportError
        When the format's reader (pynwb, h5py, zarr) is not installed.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from geomkit.datasets import load_recording
    >>> path = os.path.join(tempfile.mkdtemp(), "rec.npz")
    >>> np.savez(path, responses=np.zeros((20, 3, 2)), dims=["stimulus", "unit", "repeat"])
    >>> load_recording(path).sizes
    Frozen({'repeat': 2, 'stimulus': 20, 'unit': 3})
    """
    validate_params(
        {"variable": variable, "stimulus_column": stimulus_column, "dims": dims},
        {"variable": [None, InstanceOf(str)], "stimulus_column": [InstanceOf(str)],
         "dims": [None, InstanceOf(tuple, list, description="a tuple of dim names")]},
        caller="load_recording",
    )
    p = Path(os.fspath(path))
    source = str(p)
    if not p.exists():
        raise FileNotFoundError(f"path {source!r} does not exist.")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return _canonical(np.load(p, allow_pickle=False), dims, {}, source)
    if suffix == ".npz":
        return _load_npz(p, variable, dims, source)
    if suffix in (".h5", ".hdf5", ".hdf"):
        return _load_hdf5(p, variable, dims, source)
    if suffix == ".zarr":
        return _load_zarr(p, variable, dims, source)
    if suffix in (".nc", ".netcdf"):
        return _load_netcdf(p, variable, dims, source)
    if suffix == ".nwb":
        return _load_nwb(p, variable, dims, stimulus_column, source)
    raise ValueError(
        f"path {source!r} has suffix {suffix!r}; accepted: .nwb, .npy, .npz, .h5/.hdf5, "
        ".zarr, .nc."
    )
