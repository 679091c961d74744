"""Run a model over inputs and collect layer activations (xarray) or their moments.

:func:`extract` returns an :class:`xarray.Dataset` with one variable per
recorded layer. Layers have different widths, so each variable has its own
unit dimension, named ``"<layer>__unit"``; conv maps carry flat
``"<layer>__channel"``, ``"<layer>__y"``, ``"<layer>__x"`` coordinates on it,
so that ``to_netcdf`` round-trips without loss. :func:`layer_activations`
returns one layer as a DataArray with the plain dims ``("stimulus", "unit")``.

:func:`layer_moments` streams: it keeps per layer only the running mean and
covariance (float64), so memory does not grow with the number of stimuli.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .._backend import resolve_device
from .._progress import progress_bar
from ..moments import MomentAccumulator, Moments
from ._zarr_store import store_progress
from .recorder import ModelState, Recorder

__all__ = [
    "extract",
    "layer_moments",
    "layer_activations",
    "unstack_units",
    "iter_batches",
    "unit_dim",
    "store_progress",
]

UNIT_SEP = "__"
_LABEL_KEYS = ("y", "label", "labels")


def unit_dim(layer: str) -> str:
    """Name of the unit dimension of ``layer`` in an :func:`extract` Dataset.

    Parameters
    ----------
    layer : str
        A layer name, as a variable name of the Dataset.

    Returns
    -------
    str
        ``"<layer>__unit"``.

    Examples
    --------
    >>> unit_dim("fc1")
    'fc1__unit'
    """
    return f"{layer}{UNIT_SEP}unit"


def _n_items(inputs: Any) -> int | None:
    import torch

    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return int(inputs.shape[0])
    try:
        return len(inputs.dataset)  # DataLoader
    except (AttributeError, TypeError):
        return None


def iter_batches(inputs: Any, batch_size: int = 256) -> Iterator[tuple[Any, Any]]:
    """Yield ``(x, y)`` batches from an array, a tensor, a DataLoader or an iterable.

    Arrays and tensors are cut into ``batch_size`` rows (``y`` is None). Items
    of an iterable are used as they come: a tensor / array is ``x``; a tuple
    or list is ``(x, y, ...)``; a dict uses its ``"x"`` / ``"input"`` and
    ``"y"`` / ``"label"`` / ``"labels"`` entries, and a dict without ``"x"`` /
    ``"input"`` (a tokenizer's output: ``input_ids``, ``attention_mask``, ...)
    is itself ``x``, the keyword arguments of the forward pass, less its labels.

    Parameters
    ----------
    inputs : ndarray, torch.Tensor, torch.utils.data.DataLoader or iterable
        Arrays and tensors have the batch axis first.
    batch_size : int, default=256
        Rows per batch of an array or tensor; ignored for iterables, whose
        items are batches already.

    Yields
    ------
    x : ndarray, torch.Tensor or dict
        One batch of inputs (a dict: keyword inputs of the model).
    y : ndarray, torch.Tensor or None
        Its labels, where the item carried them.

    Examples
    --------
    >>> import numpy as np
    >>> [(x.shape, y) for x, y in iter_batches(np.zeros((5, 3)), batch_size=2)]
    [((2, 3), None), ((2, 3), None), ((1, 3), None)]
    """
    import torch

    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        if inputs.ndim == 0:
            raise ValueError("inputs must have a batch axis; got a scalar.")
        for start in range(0, inputs.shape[0], batch_size):
            yield inputs[start : start + batch_size], None
        return
    if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__iter__"):
        raise TypeError(
            "inputs must be a numpy array, a torch tensor, a DataLoader or an iterable of "
            f"batches; got {type(inputs).__name__}."
        )
    for item in inputs:
        if isinstance(item, (tuple, list)):
            yield item[0], (item[1] if len(item) > 1 else None)
        elif isinstance(item, Mapping):
            x = item.get("x", item.get("input"))
            if x is None:
                # Keyword inputs (a tokenizer's input_ids, attention_mask, ...): the model is
                # called as model(**x); labels are recorded, not passed to the forward.
                x = {k: v for k, v in item.items() if k not in _LABEL_KEYS}
                if not x:
                    raise ValueError(
                        f"a dict batch needs model inputs besides its labels; got keys {list(item)}."
                    )
            label = next((item[k] for k in _LABEL_KEYS if k in item), None)
            yield x, label
        else:
            yield item, None


def _to_model_input(x: Any, device, dtype):
    import torch

    if isinstance(x, Mapping):
        return {k: _to_model_input(v, device, dtype) if _is_array_like(v) else v for k, v in x.items()}
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    if t.is_floating_point() or t.dtype == torch.float64:
        t = t.to(device=device, dtype=dtype)
    else:
        t = t.to(device=device)
    return t


def _is_array_like(v: Any) -> bool:
    import torch

    return isinstance(v, (np.ndarray, torch.Tensor, list))


def _batch_shape(x: Any) -> tuple[int, ...]:
    """Shape of a batch; of a keyword batch, its first array's (for messages and token axes)."""
    if isinstance(x, Mapping):
        x = x.get("input_ids", next((v for v in x.values() if _is_array_like(v)), None))
    return tuple(np.shape(x)) if x is not None else ()


def _token_length(x: Any) -> int | None:
    """Sequence length of a batch of token ids ((batch, tokens) integers), else None."""
    if isinstance(x, Mapping):
        x = x.get("input_ids")
    if x is None or not hasattr(x, "dtype") or len(np.shape(x)) != 2:
        return None
    kind = str(x.dtype)
    return int(np.shape(x)[1]) if ("int" in kind and "uint8" not in kind) else None


def _model_float_dtype(model: Any):
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _progress(iterable, total, progress: bool, desc: str):
    return progress_bar(iterable, progress=progress, total=total, desc=desc, unit="batch", leave=False)


# Words of torch's messages for inputs of the wrong shape ("mat1 and mat2 shapes cannot be
# multiplied", "expected input[...] to have 3 channels", "must match the size of tensor b",
# "Expected 4D input"); device / dtype / memory errors contain none of them.
_SHAPE_ERROR = re.compile(
    r"\bshapes?\b|\bsizes?\b|\bdimensions?\b|\bdims?\b|\bchannels\b|\b\d+D\b|non-singleton",
    re.IGNORECASE,
)


def _is_shape_error(err: BaseException) -> bool:
    # Exactly RuntimeError: its subclasses (out-of-memory, not-implemented) are never shape errors.
    if type(err) is not RuntimeError:
        return False
    return bool(_SHAPE_ERROR.search(str(err)))


def _move_model(model: Any, device: Any):
    """Move ``model`` to ``device`` for a run; return a function that puts it back exactly.

    The put-back reinstates the original parameter storage and gradients, each
    on its original device (bitwise as before, mixed-device models included).
    Buffers are left to ``ModelState(model, buffers=True)``, which restores their
    original objects and values. Without anything to move it is a no-op.
    """
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device == device for t in tensors):
        return lambda: None
    params = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            grad = p.grad
            params.append((module, name, p, p.data, grad, None if grad is None else grad.data))

    def put_back() -> None:
        for module, name, p, data, grad, grad_data in params:
            if getattr(module, name, None) is not p:
                setattr(module, name, p)
            p.data = data
            if grad is not None:
                grad.data = grad_data  # Module.to moves a gradient in place
            p.grad = grad

    try:
        model.to(device)
    except BaseException:
        put_back()  # a move that failed half-way
        raise
    return put_back


def _run(model, inputs, layers, batch_size, device, progress, eval_mode, on_batch, desc, context=None):
    """Shared loop: forward every batch under a Recorder and hand its records to ``on_batch``.

    ``context``, a dict, receives what the first batch tells: ``token_length`` (the
    sequence length of token-id inputs, else None).
    """
    import torch

    dev = resolve_device(device, model)
    dtype = _model_float_dtype(model)
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        total = -(-int(inputs.shape[0]) // batch_size)
    else:
        total = len(inputs) if hasattr(inputs, "__len__") else None
    # Buffers too: in train mode batch norm updates its running statistics in place.
    state = ModelState(model, buffers=True)
    put_back = lambda: None  # noqa: E731
    try:
        if device is not None:  # None: leave the model where it is (also a multi-device one)
            put_back = _move_model(model, dev)
        if eval_mode:
            model.eval()
        with Recorder(model, layers, to_cpu=False) as rec, torch.no_grad():
            first = True
            n_batches = n_rows = 0
            for x, y in _progress(iter_batches(inputs, batch_size), total, progress, desc):
                rec.clear()
                xin = _to_model_input(x, dev, dtype)
                if first and context is not None:
                    context["token_length"] = _token_length(x)
                try:
                    model(**xin) if isinstance(xin, Mapping) else model(xin)
                except RuntimeError as err:
                    if not _is_shape_error(err):
                        raise
                    shape = _batch_shape(x)
                    raise RuntimeError(
                        f"{type(model).__name__} rejected an input batch of shape {shape}; "
                        f"check the input shape it expects: {err}"
                    ) from err
                silent = [name for name in rec.layers if name not in rec.called]
                if silent and first:
                    raise ValueError(
                        f"layer(s) {silent} of {type(model).__name__} did not run during the "
                        "forward pass of the first batch, so they recorded nothing; record "
                        "modules that the model's forward actually calls."
                    )
                if silent:
                    # Their activations would cover only some stimuli: refuse, never misalign.
                    raise ValueError(
                        f"layer(s) {silent} of {type(model).__name__} ran on earlier batches but "
                        f"not on batch #{n_batches} (counting from 0, after {n_rows} stimuli), so "
                        "they would hold fewer stimuli than the inputs; record only modules "
                        "that run on every forward pass."
                    )
                first = False
                records = {k: v[0] for k, v in rec.records.items()}
                n_batches += 1
                n_rows += next((int(t.shape[0]) for t in records.values()), 0)
                on_batch(records, y)
            if first:
                raise ValueError(
                    "inputs are empty: they gave no batch to run (an array with 0 rows, or an "
                    "empty DataLoader / iterable), so there is nothing to record."
                )
    finally:
        put_back()
        state.restore()
    return rec.layers


def _declared_dims(model: Any, key: str) -> tuple[str, ...] | None:
    """The axis names a recorded module declares for its output (``feature_dims``), or None.

    A spiking layer's (batch, time, neuron) output says so itself
    (:class:`geomkit.train.spiking.LIF`): no shape could tell time steps from channels.
    """
    module = dict(model.named_modules()).get(re.split(r"[#\[]", key, maxsplit=1)[0])
    names = getattr(module, "feature_dims", None)
    return tuple(names) if names else None


def _unit_coords(layer: str, feature_shape: tuple[int, ...], token_length: int | None = None,
                 names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Flat per-dimension coordinates on the unit dim for a feature map of ``feature_shape``.

    ``names``, when it has one name per axis, names the axes (a module's ``feature_dims``:
    ``time`` / ``neuron`` for spikes); else a (tokens, features) output of a model fed token
    ids (``token_length`` tokens) gets ``token`` / ``feature``; conv maps get ``channel`` /
    (``z``,) (``y``,) ``x``.
    """
    dim = unit_dim(layer)
    n_units = int(np.prod(feature_shape)) if feature_shape else 1
    coords: dict[str, Any] = {dim: np.arange(n_units)}
    if len(feature_shape) <= 1:
        return coords
    if names is not None and len(names) == len(feature_shape):
        pass  # the module named its axes
    elif len(feature_shape) == 2 and token_length is not None and feature_shape[0] == token_length:
        names = ("token", "feature")
    else:
        names = {2: ("channel", "x"), 3: ("channel", "y", "x"), 4: ("channel", "z", "y", "x")}.get(
            len(feature_shape), tuple(f"dim{i}" for i in range(len(feature_shape)))
        )
    grids = np.unravel_index(np.arange(n_units), feature_shape)
    for name, grid in zip(names, grids):
        coords[f"{layer}{UNIT_SEP}{name}"] = (dim, grid.astype(np.int64))
    return coords


def extract(
    model: Any,
    inputs: Any,
    layers: Any = None,
    *,
    labels: Any = None,
    batch_size: int = 256,
    device: Any = None,
    dtype: Any = np.float32,
    eval_mode: bool = True,
    progress: bool = True,
    store: Any = None,
):
    """Record the activations of ``layers`` for every input.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; it is left exactly as found (hooks removed, train/eval mode,
        ``requires_grad``, device and buffers restored), also when the forward
        pass raises.
    inputs : ndarray, torch.Tensor, DataLoader or iterable of batches
        Arrays / tensors of shape (n_stimuli, ...) are cut into batches; a
        DataLoader or iterable yields ``x`` or ``(x, y)`` batches (the ``y``
        become the ``label`` coordinate).
    layers : None, str, list of str, module type or callable
        Which modules to record (see :func:`geomkit.probe.resolve_layers`).
        ``None``: every Linear / Conv layer and activation.
    labels : array-like of shape (n_stimuli,), optional
        Stored as the ``label`` coordinate on ``stimulus``.
    batch_size : int, default=256
        Rows per forward pass for array / tensor inputs.
    device : None, str or torch.device
        Where to run; ``None`` is where the model is. Inputs are moved there,
        and so is the model, for the run only: afterwards its parameters,
        gradients and buffers are back where they were, bitwise (see
        :ref:`devices`).
    dtype : numpy dtype, default=np.float32
        Storage dtype of the activations.
    eval_mode : bool, default=True
        Run in eval mode (dropout off, batch-norm statistics frozen); the
        original mode is restored afterwards. With ``False`` the model runs in
        the mode it is in (batch norm normalizes with batch statistics and
        updates its running statistics); every buffer is restored afterwards.
    progress : bool, default=True
        Show a tqdm progress bar.
    store : str or os.PathLike, optional
        A zarr store (e.g. ``"acts.zarr"``): each batch is appended to it as it
        comes, so memory holds one batch, and the result is opened from it
        lazily (dask-backed, ``xr.open_zarr``). Resumable: a re-run with the
        same store, inputs and ``batch_size`` continues after the last
        complete batch (recorded in the store's attributes, see
        :func:`geomkit.probe.store_progress`). Needs zarr and dask
        (``pip install 'geomkit[large]'``).

    Returns
    -------
    xarray.Dataset
        One variable per recorded output, dims ``("stimulus", "<layer>__unit")``;
        attrs ``layer``, ``model`` and ``feature_shape`` on each variable.
        With ``store``: the same Dataset, dask-backed, read from the store.

    Raises
    ------
    ValueError
        For a requested layer that does not run during the forward pass (it
        would record nothing), or for the whole model (``""``, recorded as
        ``"output"``) together with a submodule named ``"output"``.
    RuntimeError
        The model's own error; one about shapes names the input batch's shape.

    Examples
    --------
    >>> import torch
    >>> from geomkit.probe import extract
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> ds = extract(net, torch.randn(10, 4), progress=False)
    >>> list(ds.data_vars), ds["1"].shape
    (['0', '1', '2'], (10, 8))
    """
    import torch
    import xarray as xr

    from .._validation import check_int

    check_int(batch_size, "batch_size", low=1)
    if store is not None:  # streamed to zarr, one batch in memory
        from ._zarr_store import extract_to_store

        seen: dict[str, Any] = {}  # filled by the first batch, before its records are written

        def run(batches, on_batch):
            _run(model, batches, layers, batch_size, device, progress, eval_mode, on_batch,
                 "extract", seen)

        def coords(key, shape):
            return _unit_coords(key, shape, seen.get("token_length"), _declared_dims(model, key))

        return extract_to_store(run, model, inputs, store=store, labels=labels,
                                batch_size=batch_size, dtype=dtype, n_known=_n_items(inputs),
                                unit_coords=coords, unit_dim=unit_dim)
    chunks: dict[str, list[np.ndarray]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    batch_labels: list[Any] = []

    def on_batch(records, y):
        for key, t in records.items():
            shape = tuple(t.shape[1:])
            if key in shapes and shapes[key] != shape:
                raise ValueError(
                    f"layer output {key!r} changed shape between batches: {shapes[key]} then {shape}."
                )
            shapes[key] = shape
            chunks.setdefault(key, []).append(t.reshape(t.shape[0], -1).cpu().numpy().astype(dtype, copy=False))
        if y is not None:
            batch_labels.append(np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y))

    context: dict[str, Any] = {}
    _run(model, inputs, layers, batch_size, device, progress, eval_mode, on_batch, "extract", context)
    lengths = {k: sum(len(c) for c in v) for k, v in chunks.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            "layers recorded different numbers of stimuli (a module that runs a varying number "
            f"of times per forward pass?): {lengths}."
        )
    n_stimuli = next(iter(lengths.values()), 0)
    coords: dict[str, Any] = {"stimulus": np.arange(n_stimuli)}
    if labels is None and batch_labels:
        labels = np.concatenate(batch_labels)
    if labels is not None:
        from .._validation import check_labels

        coords["label"] = ("stimulus", check_labels(labels, n_stimuli, "labels"))
    data_vars = {}
    for key, pieces in chunks.items():
        layer = key
        var_coords = _unit_coords(key, shapes[key], context.get("token_length"), _declared_dims(model, key))
        data_vars[key] = xr.DataArray(
            np.concatenate(pieces),
            dims=("stimulus", unit_dim(key)),
            coords=var_coords,
            attrs={
                "layer": layer,
                "module": re.split(r"[#\[]", key, maxsplit=1)[0],
                "model": type(model).__name__,
                # A string: netCDF turns one-element arrays into scalars.
                "feature_shape": ",".join(str(d) for d in shapes[key]),
            },
        )
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs["model"] = type(model).__name__
    ds.attrs["layers"] = ",".join(data_vars)
    return ds


def layer_activations(ds: Any, layer: str):
    """One layer of an :func:`extract` Dataset as a DataArray with dims ``("stimulus", "unit")``.

    Conv coordinates ``channel`` / ``y`` / ``x`` and the ``label`` coordinate
    are carried over under their plain names.

    Parameters
    ----------
    ds : xarray.Dataset
        As returned by :func:`extract`.
    layer : str
        One of its variables; an unknown name raises a ValueError listing the
        layers it holds.

    Returns
    -------
    xarray.DataArray of shape (n_stimuli, n_units)
        Dims ``("stimulus", "unit")``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    >>> ds = extract(net, torch.randn(10, 4), layers=["1"], progress=False)
    >>> layer_activations(ds, "1").dims
    ('stimulus', 'unit')
    """
    if layer not in ds.data_vars:
        import difflib

        close = difflib.get_close_matches(layer, list(ds.data_vars), n=3, cutoff=0.4)
        raise ValueError(
            f"layer {layer!r} is not in the Dataset; it holds {list(ds.data_vars)} "
            f"(closest: {close or 'none'})."
        )
    da = ds[layer]
    dim = unit_dim(layer)
    prefix = f"{layer}{UNIT_SEP}"
    renames = {c: c[len(prefix):] for c in da.coords if c.startswith(prefix)}
    return da.rename(renames).rename({dim[len(prefix):]: "unit"} if dim in da.dims else {})


_UNIT_AXES = ("time", "token", "feature", "neuron", "channel", "z", "y", "x")


def unstack_units(da: Any):
    """Unflatten the ``unit`` dim of one layer into its feature axes.

    A conv map becomes ``(stimulus, channel, y, x)`` (or ``channel, x`` /
    ``channel, z, y, x``), a transformer's output ``(stimulus, token,
    feature)``, a spiking layer's ``(stimulus, time, neuron)``: the coordinates that :func:`extract` keeps on ``unit`` become
    dimensions. A layer without such coordinates (a dense layer) is returned as
    it is.

    Parameters
    ----------
    da : xarray.DataArray
        One layer with dims ``(..., "unit")``, as :func:`layer_activations`
        returns it.

    Returns
    -------
    xarray.DataArray
        Same values, with ``unit`` replaced by the feature axes in the
        layer's order.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU())
    >>> ds = extract(net, torch.randn(5, 1, 6, 6), layers=["1"], progress=False)
    >>> unstack_units(layer_activations(ds, "1")).dims
    ('stimulus', 'channel', 'y', 'x')
    """
    import xarray as xr

    if not isinstance(da, xr.DataArray) or "unit" not in da.dims:
        raise TypeError(
            "da must be an xarray.DataArray with a 'unit' dim (layer_activations(ds, layer)); got "
            f"{type(da).__name__}{' with dims ' + str(da.dims) if hasattr(da, 'dims') else ''}."
        )
    axes = [c for c in da.coords if c in _UNIT_AXES and da[c].dims == ("unit",)]
    if not axes:
        return da
    # The layer's axis order (_UNIT_AXES lists it), not the coordinates' order.
    axes.sort(key=_UNIT_AXES.index)
    out = da.set_index(unit=axes).unstack("unit")
    return out.transpose(*[d for d in da.dims if d != "unit"], *axes)


def layer_moments(
    model: Any,
    inputs: Any,
    layers: Any = None,
    *,
    method: str = "auto",
    batch_size: int = 256,
    device: Any = None,
    eval_mode: bool = True,
    progress: bool = True,
) -> dict[str, Moments]:
    """Stream per-layer mean and covariance (float64) without keeping activations.

    Parameters
    ----------
    model, inputs, layers, batch_size, device, eval_mode, progress
        As in :func:`extract`.
    method : {"auto", "covariance", "gram"}, default="auto"
        ``"covariance"`` keeps an (n_units, n_units) float64 matrix per layer:
        memory independent of the number of stimuli. ``"gram"`` forms the
        (n_stimuli, n_stimuli) stimulus Gram matrix instead (cheaper when units
        far outnumber stimuli; it keeps the rows until the end). ``"auto"``
        picks ``"gram"`` for a layer whose width exceeds the number of stimuli
        when that number is known in advance, else ``"covariance"``.

    Returns
    -------
    dict of str to :class:`geomkit.moments.Moments`
        Keyed by recorded output; accumulated on ``device`` in float64.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    >>> moments = layer_moments(net, torch.randn(100, 4), ["1"], progress=False)
    >>> moments["1"].covariance.shape
    (8, 8)
    """
    from .._validation import check_int, check_option

    check_int(batch_size, "batch_size", low=1)
    check_option(method, "method", ("auto", "covariance", "gram"))
    n_known = _n_items(inputs)
    accumulators: dict[str, MomentAccumulator] = {}

    def on_batch(records, y):
        for key, t in records.items():
            if key not in accumulators:
                width = int(np.prod(t.shape[1:]))
                chosen = method
                if method == "auto":
                    chosen = "gram" if (n_known is not None and width > n_known) else "covariance"
                accumulators[key] = MomentAccumulator(method=chosen)
            accumulators[key].update(t.reshape(t.shape[0], -1))

    _run(model, inputs, layers, batch_size, device, progress, eval_mode, on_batch, "moments")
    return {key: acc.finalize(layer=key) for key, acc in accumulators.items()}
