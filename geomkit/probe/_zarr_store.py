"""extract(..., store=...): activations appended to a zarr store batch by batch, resumable.

Layout: the Dataset :func:`~geomkit.probe.extract` would return, written with
xarray's zarr backend; one zarr chunk per batch along ``stimulus``. The first
batch creates the store (variables, unit coordinates, attributes); every
later batch is appended along ``stimulus`` (``to_zarr(append_dim=...)``).
Only the current batch is in memory.

Completeness. After a batch has been appended to every variable, the root
group's attributes ``geomkit_rows_complete`` and ``geomkit_batches_complete``
are updated; they are written last, so they count only whole batches. A
re-run with the same store reads them, cuts every array back to
``geomkit_rows_complete`` rows (a run interrupted during an append may have
written part of a batch), skips that many batches of the inputs without
running the model, and appends the rest. ``geomkit_finished`` is set when the
inputs are exhausted; a finished store is opened as it is. The inputs and
``batch_size`` must be the same on a re-run (checked: layers, batch size,
number of inputs where known).
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import numpy as np

__all__ = ["extract_to_store", "store_progress"]

_ROWS, _BATCHES, _FINISHED, _BATCH_SIZE = (
    "geomkit_rows_complete",
    "geomkit_batches_complete",
    "geomkit_finished",
    "geomkit_batch_size",
)


def _zarr_group(store: Any, mode: str):
    import zarr

    return zarr.open_group(store, mode=mode)


def store_progress(store: Any) -> dict:
    """Completeness record of a store written by ``extract(..., store=...)``.

    Parameters
    ----------
    store : str or os.PathLike
        The zarr store.

    Returns
    -------
    dict
        ``rows`` and ``batches`` complete, ``finished`` (bool) and the
        ``batch_size`` it was written with; zeros / False for a store that
        does not exist yet.

    Examples
    --------
    >>> import tempfile, torch
    >>> from geomkit.probe import extract, store_progress
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    >>> path = tempfile.mkdtemp() + "/acts.zarr"
    >>> ds = extract(net, torch.randn(10, 4), batch_size=4, progress=False, store=path)
    >>> store_progress(path)
    {'rows': 10, 'batches': 3, 'finished': True, 'batch_size': 4}
    """
    if isinstance(store, (str, os.PathLike)) and not os.path.exists(store):
        return {"rows": 0, "batches": 0, "finished": False, "batch_size": None}
    attrs = dict(_zarr_group(store, "r").attrs)
    return {
        "rows": int(attrs.get(_ROWS, 0)),
        "batches": int(attrs.get(_BATCHES, 0)),
        "finished": bool(attrs.get(_FINISHED, False)),
        "batch_size": attrs.get(_BATCH_SIZE),
    }


def _truncate(store: Any, rows: int) -> None:
    """Cut every array along ``stimulus`` back to ``rows`` (drops a partly appended batch)."""
    group = _zarr_group(store, "a")
    for _, array in group.arrays():
        dims = array.attrs.get("_ARRAY_DIMENSIONS") or getattr(array.metadata, "dimension_names", None)
        if dims and dims[0] == "stimulus" and array.shape[0] > rows:
            array.resize((rows, *array.shape[1:]))


def _skip(inputs: Any, batch_size: int, rows: int, batches: int):
    """The inputs after the first ``batches`` batches (``rows`` rows), without running anything."""
    import torch

    from .extract import iter_batches

    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return inputs[rows:]
    return itertools.islice(iter_batches(inputs, batch_size), batches, None)


def extract_to_store(
    run: Any,
    model: Any,
    inputs: Any,
    *,
    store: Any,
    labels: Any,
    batch_size: int,
    dtype: Any,
    n_known: int | None,
    unit_coords: Any,
    unit_dim: Any,
):
    """Run ``run(inputs, on_batch)`` writing each batch to ``store``; return ``xr.open_zarr(store)``."""
    import torch
    import xarray as xr

    from .._validation import check_labels

    progress = store_progress(store)
    if progress["batches"] and progress["batch_size"] != batch_size:
        raise ValueError(
            f"store {store!s} was written with batch_size={progress['batch_size']}; resume it "
            f"with the same batch_size (got {batch_size}), or delete it to start over."
        )
    if progress["finished"]:
        if n_known is not None and n_known != progress["rows"]:
            raise ValueError(
                f"store {store!s} is finished with {progress['rows']} stimuli, but {n_known} "
                "inputs were given; delete it (or pass another store) to extract again."
            )
        return _open(store)
    if labels is not None:
        labels = check_labels(labels, len(labels) if n_known is None else n_known, "labels")
    rows, batches = progress["rows"], progress["batches"]
    if batches:
        _truncate(store, rows)
        inputs = _skip(inputs, batch_size, rows, batches)
    state = {"rows": rows, "batches": batches, "shapes": {}}

    def on_batch(records: dict, y: Any) -> None:
        start = state["rows"]
        data_vars, sizes = {}, set()
        for key, t in records.items():
            shape = tuple(t.shape[1:])
            known = state["shapes"].setdefault(key, shape)
            if known != shape:
                raise ValueError(
                    f"layer output {key!r} changed shape between batches: {known} then {shape}."
                )
            values = t.reshape(t.shape[0], -1).cpu().numpy().astype(dtype, copy=False)
            sizes.add(values.shape[0])
            data_vars[key] = ((("stimulus", unit_dim(key))), values)
        if len(sizes) > 1:
            raise ValueError(
                "layers recorded different numbers of stimuli in one batch (a module that runs "
                f"a varying number of times per forward pass?): {sorted(sizes)}."
            )
        m = sizes.pop()
        coords: dict[str, Any] = {"stimulus": np.arange(start, start + m)}
        if labels is not None:
            coords["label"] = ("stimulus", np.asarray(labels)[start : start + m])
        elif y is not None:
            y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
            coords["label"] = ("stimulus", check_labels(y, m, "y (batch labels)"))
        # Every write carries the root attributes: an append rewrites them.
        attrs = {"model": type(model).__name__, "layers": ",".join(data_vars),
                 _BATCH_SIZE: batch_size, _ROWS: start, _BATCHES: state["batches"]}
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        if state["batches"] == 0:
            for key, (_, values) in data_vars.items():
                ds = ds.assign_coords(unit_coords(key, state["shapes"][key]))
                ds[key].attrs.update(
                    layer=key,
                    module=re.split(r"[#\[]", key, maxsplit=1)[0],
                    model=type(model).__name__,
                    feature_shape=",".join(str(d) for d in state["shapes"][key]),
                )
            encoding = {key: {"chunks": (batch_size, values.shape[1])}
                        for key, (_, values) in data_vars.items()}
            ds.to_zarr(store, mode="w-", encoding=encoding, consolidated=False)
        else:
            ds.to_zarr(store, append_dim="stimulus", consolidated=False)
        state["rows"] += m
        state["batches"] += 1
        # Written after the data: the count names only batches that are complete.
        _zarr_group(store, "a").attrs.update({_ROWS: state["rows"], _BATCHES: state["batches"]})

    run(inputs, on_batch)
    if state["batches"] == 0:
        raise ValueError("inputs held no batch; nothing was written to the store.")
    if labels is not None and len(labels) != state["rows"]:
        raise ValueError(
            f"labels has {len(labels)} entries but {state['rows']} stimuli were extracted; "
            "they must match."
        )
    _zarr_group(store, "a").attrs[_FINISHED] = True
    return _open(store)


def _open(store: Any):
    """The store as a dask-backed Dataset, without the completeness record in its attrs."""
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=False)
    ds.attrs = {k: v for k, v in ds.attrs.items() if not k.startswith("geomkit_")}
    return ds
