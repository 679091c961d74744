"""Per-input Jacobians of a model's logits, or of a hidden layer's output, w.r.t. its input.

The fast path differentiates a single-input function with :mod:`torch.func`
and maps it over a chunk of inputs: reverse mode (what ``jacrev`` computes: a
``vjp`` pulled back over the identity basis of the output space, one
vector-Jacobian product per output, all batched into one backward pass) when
the output is smaller than the input, ``vmap(jacfwd(f))`` when it is larger
(one Jacobian-vector product per input dimension). Inputs are processed in chunks,
so memory stays bounded however many there are. A model that
:mod:`torch.func` cannot trace (``.item()`` or data-dependent control flow in
``forward``, custom autograd functions without vmap support, ...) falls back
to plain :func:`torch.autograd.grad`, one backward pass per output; the switch
is announced with a :class:`JacobianFallbackWarning` that names the path and
the reason, which path ran is returned with ``return_info=True`` and stored
by the estimators. Running out of memory and geomkit's own errors (a layer
that did not run, an output that is not a tensor) are raised, not fallen back
from: the slow path would not cure them.

The model is evaluated through :func:`torch.func.functional_call` with
detached copies of its parameters (cast to ``dtype`` when one is given) and
cloned buffers, so it is never modified: no parameter, buffer, ``requires_grad``
flag or train/eval flag changes, also when the forward pass raises.

:func:`jacobian_norm` returns the squared Frobenius norm per input, exact or
estimated with the random projections of Hoffman, Roberts & Yaida (2019),
"Robust learning with Jacobian regularization", arXiv:1908.02729.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._backend import resolve_device
from .._params import check_random_state
from .._progress import progress_bar
from .._validation import check_int, check_option, to_numpy
from .recorder import ModelState, resolve_layers

__all__ = [
    "jacobian",
    "jacobian_norm",
    "JacobianInfo",
    "SaturationWarning",
    "JacobianFallbackWarning",
    "OUTPUT",
]

logger = logging.getLogger(__name__)

#: Name under which the model's own output (the logits) is reported.
OUTPUT = "output"

# Memory allowed for one chunk's Jacobian and its intermediates (bytes).
_CHUNK_BUDGET = 256 * 2**20

_METHODS = ("auto", "jacrev", "jacfwd", "autograd")


class SaturationWarning(RuntimeWarning):
    """Gradients that vanish in float32 (saturated units or a saturated softmax)."""


class JacobianFallbackWarning(UserWarning):
    """Warned when torch.func cannot differentiate a model and plain autograd runs instead."""


@dataclass
class JacobianInfo:  # numpydoc ignore=PR01
    """How a Jacobian was computed (a record, documented by its attributes).

    Attributes
    ----------
    path : str
        ``"torch.func"``, ``"autograd"`` or ``"torch.func+autograd"`` (a later
        chunk fell back).
    method : str
        ``"jacrev"`` or ``"jacfwd"`` (the torch.func transform tried);
        ``"vjp"`` for the random projections of :func:`jacobian_norm`.
    chunk_size : int
        Inputs per chunk.
    n_chunks : int
    fallback_reason : str or None
        Why torch.func was abandoned, if it was.
    independent_samples : bool or None
        For the autograd path: whether the model's output for an input was
        found not to depend on the other inputs of its batch (then a whole
        chunk is differentiated at once; otherwise one input at a time).
    in_shape, out_shape : tuple of int
        One input's shape and the shape of its (layer) output.

    Examples
    --------
    >>> import torch
    >>> from geomkit.probe import jacobian
    >>> _, info = jacobian(torch.nn.Linear(3, 2), torch.randn(5, 3), progress=False, return_info=True)
    >>> info.path, info.in_shape, info.out_shape
    ('torch.func', (3,), (2,))
    """

    path: str = ""
    method: str = ""
    chunk_size: int = 0
    n_chunks: int = 0
    fallback_reason: str | None = None
    independent_samples: bool | None = None
    in_shape: tuple = ()
    out_shape: tuple = ()
    _paths: set = field(default_factory=set, repr=False)


class _StopForward(Exception):
    """Raised by the layer tap to end the forward pass once the layer has run."""


# ----------------------------------------------------------------------------- inputs


def _own(err: Exception) -> Exception:
    """Mark an error as geomkit's own, so that it is not re-worded as a rejected input."""
    err._geomkit = True
    return err


def _check_model(model: Any):
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module; got {type(model).__name__}. Wrap plain "
            "functions in a Module whose forward calls them."
        )
    return model


def _resolve_dtype(dtype: Any, model: Any):
    """``None`` -> the model's floating dtype; strings / numpy dtypes -> torch dtypes."""
    import torch

    if dtype is None:
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()
    if isinstance(dtype, torch.dtype):
        out = dtype
    else:
        try:
            out = getattr(torch, np.dtype(dtype).name)
        except (TypeError, AttributeError):
            out = None
    if out is None or not out.is_floating_point:
        raise ValueError(
            f"dtype must be None or a floating dtype such as torch.float64 or 'float64'; "
            f"got {dtype!r}."
        )
    return out


def as_input_tensor(X: Any, name: str = "X", *, device: Any = None, dtype: Any = None):
    """Validate a batch of model inputs and return it as a floating tensor.

    Parameters
    ----------
    X : ndarray, torch.Tensor, xarray.DataArray or nested sequence
        Shape (n_inputs, ...): a batch axis first, then the model's input shape.

    Returns
    -------
    torch.Tensor on ``device`` with ``dtype``.
    """
    import torch

    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        arr = to_numpy(X)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(
                f"{name} must be a numeric array or tensor of shape (n_inputs, ...); got "
                f"dtype {arr.dtype}."
            )
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued; got complex dtype {t.dtype}.")
    if t.ndim < 2:
        raise ValueError(
            f"{name} must have a batch axis first and the model's input shape after it, "
            f"i.e. at least 2 dimensions; got shape {tuple(t.shape)}. For one input x use "
            "x[None]."
        )
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}).")
    t = t.to(device=device, dtype=dtype)
    if not torch.isfinite(t).all():
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s); remove them first.")
    return t


def _expected_input(model: Any) -> str:
    """A human description of the input shape the model's first layer expects."""
    import torch.nn as nn

    for module in model.modules():
        if isinstance(module, nn.Linear):
            return f"(n_inputs, ..., {module.in_features}) (first layer {module})"
        if isinstance(module, nn.modules.conv._ConvNd):
            dims = ", ".join(["H", "W", "D"][: len(module.kernel_size)])
            return f"(n_inputs, {module.in_channels}, {dims}) (first layer {module})"
    return "the shape its forward method accepts"


# ----------------------------------------------------------------------------- forward


class _Forward:
    """The model (or a layer of it) as a function of a batch, evaluated functionally.

    Parameters are detached (and cast) copies and buffers clones, so nothing
    the forward pass does can reach the model's own tensors. Used as a context
    manager: on entry the model goes to eval mode (if asked) and the layer tap
    is registered; on exit both are undone, also after an error.
    """

    def __init__(self, model, layer: str | None, device, dtype, *, eval_mode: bool = True,
                 post: Callable | None = None):
        import torch

        self.model = model
        self.layer = layer
        self.post = post
        self.eval_mode = eval_mode
        self.tensors = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            p = p.detach()
            self.tensors[name] = p.to(device=device, dtype=dtype if p.is_floating_point() else None)
        for name, b in model.named_buffers(remove_duplicate=False):
            b = b.detach().to(device=device, dtype=dtype if b.is_floating_point() else None)
            self.tensors[name] = b.clone()
        self._handle = None
        self._state = None
        self._out = None
        self._torch = torch

    def __enter__(self):
        self._state = ModelState(self.model)
        try:
            if self.eval_mode:
                self.model.eval()
            if self.layer is not None:
                module = dict(self.model.named_modules())[self.layer]
                self._handle = module.register_forward_hook(self._hook)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._state is not None:
            self._state.restore()
            self._state = None

    def _hook(self, module, inputs, output):
        if not isinstance(output, self._torch.Tensor):
            raise _own(TypeError(
                f"layer {self.layer!r} returned {type(output).__name__}; a Jacobian needs a "
                "layer whose output is one tensor."
            ))
        self._out = output
        raise _StopForward  # the rest of the network is not needed

    def __call__(self, x):
        from torch.func import functional_call

        self._out = None
        try:
            out = functional_call(self.model, self.tensors, (x,))
        except _StopForward:
            out = self._out
        else:
            if self.layer is not None:
                raise _own(ValueError(
                    f"layer {self.layer!r} did not run during the forward pass of "
                    f"{type(self.model).__name__}; pick a layer on the input-output path."
                ))
        self._out = None
        if not isinstance(out, self._torch.Tensor):
            raise _own(ValueError(
                f"the model returned {type(out).__name__}; a Jacobian needs a forward pass "
                "that returns one tensor of shape (batch, ...)."
            ))
        if self.post is not None:
            out = self.post(out)
        return out


def _probe_forward(fwd: _Forward, X, model):
    """One no-grad forward on the first inputs: clear errors, and their output."""
    import torch

    m = min(2, X.shape[0])
    try:
        with torch.no_grad():
            out = fwd(X[:m])
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        if getattr(err, "_geomkit", False) or _is_out_of_memory(err):
            raise
        raise type(err)(
            f"{type(model).__name__} rejected inputs of shape {tuple(X.shape)} "
            f"(per input {tuple(X.shape[1:])}); it expects {_expected_input(model)}. "
            f"Original error: {err}"
        ) from err
    if out.ndim < 1 or out.shape[0] != m:
        raise ValueError(
            f"the output of {type(model).__name__} has shape {tuple(out.shape)} for a batch of "
            f"{m}; expected a batch axis first, of length {m}."
        )
    if not torch.isfinite(out).all():
        raise ValueError(
            f"{type(model).__name__} produced NaN or infinite outputs for the first inputs; "
            "a Jacobian of non-finite outputs is meaningless. Check the model and the inputs."
        )
    return out


def _independent(fwd: _Forward, X) -> bool:
    """Whether the output for input 0 is the same alone as within a batch (no batch coupling)."""
    import torch

    if X.shape[0] < 2:
        return True
    with torch.no_grad():
        alone = fwd(X[:1])
        batch = fwd(X[:2])[:1]
    return bool(torch.allclose(alone, batch, rtol=1e-4, atol=1e-6 * float(batch.abs().max()) + 1e-12))


# ----------------------------------------------------------------------------- the two paths


def _func_chunk(fwd: _Forward, x, method: str):
    """Per-input Jacobians of a chunk with torch.func: (J, values).

    Reverse mode is one ``vjp`` per input with the identity basis of the
    output space pulled back through ``vmap`` — the same as ``jacrev`` but
    without its output splitting and re-stacking, which costs about 25 % on
    an MLP; forward mode is ``jacfwd``. Both are mapped over the chunk.
    """
    import torch
    from torch.func import jacfwd, vjp, vmap

    def single(xi):
        out = fwd(xi.unsqueeze(0)).squeeze(0)
        return out, out

    if method == "jacfwd":
        with warnings.catch_warnings():
            # torch's first forward-mode call in a process loads its decompositions by
            # torch.jit.script-ing them, whose deprecation warning concerns torch's internals
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated",
                                    category=DeprecationWarning)
            return vmap(jacfwd(single, has_aux=True))(x)

    def reverse(xi):
        out, pull, _ = vjp(single, xi, has_aux=True)
        basis = torch.eye(out.numel(), dtype=out.dtype, device=out.device).reshape(-1, *out.shape)
        (J,) = vmap(pull)(basis)
        return J.reshape(*out.shape, *xi.shape), out

    return vmap(reverse)(x)


def _autograd_chunk(fwd: _Forward, x, independent: bool):
    """Plain autograd: one backward pass per output (per input when inputs interact)."""
    import torch

    if not independent and x.shape[0] > 1:
        parts = [_autograd_chunk(fwd, x[i : i + 1], True) for i in range(x.shape[0])]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        out = fwd(xg)
        flat = out.reshape(out.shape[0], -1)
        n_out = flat.shape[1]
        rows = []
        for k in range(n_out):
            # Inputs are independent, so d(sum_i out_ik)/dx_i is row k of input i's Jacobian.
            (g,) = torch.autograd.grad(
                flat[:, k].sum(), xg, retain_graph=k < n_out - 1, allow_unused=True
            )
            rows.append(torch.zeros_like(x) if g is None else g)
    J = torch.stack(rows, dim=1).reshape(x.shape[0], *out.shape[1:], *x.shape[1:])
    return J, out.detach()


def _is_out_of_memory(err: BaseException) -> bool:
    """CUDA / MPS / CPU allocation failures: a smaller ``chunk_size`` helps, the slow path not."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(err, (oom, MemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "out of memory" in text.lower() or "can't allocate memory" in text
    )


def _fall_back(err: Exception, model, info: JacobianInfo, *, what: str, stacklevel: int = 4) -> None:
    """Record and announce the switch from torch.func to plain autograd, or re-raise ``err``.

    Called from an ``except`` block. Out-of-memory errors and geomkit's own
    errors are raised again (the autograd path would not cure them); anything
    else (a tracing failure) is stored in ``info.fallback_reason`` and
    announced with a :class:`JacobianFallbackWarning`.
    """
    if getattr(err, "_geomkit", False):
        raise err
    if _is_out_of_memory(err):
        raise type(err)(
            f"{err}\n(geomkit: out of memory while differentiating {type(model).__name__} "
            f"with torch.func, {info.chunk_size} input(s) per chunk; pass a smaller chunk_size.)"
        ) from err
    info.fallback_reason = f"{type(err).__name__}: {err}"
    message = (
        f"torch.func could not differentiate {type(model).__name__} ({info.fallback_reason}); "
        f"{what} now runs on the plain-autograd path (one backward pass per output or "
        "projection, slower; results are the same). return_info=True reports the path."
    )
    logger.info(message)
    warnings.warn(message, JacobianFallbackWarning, stacklevel=stacklevel)


def _check_finite(values, start: int, model) -> None:
    """Raise if any input of a chunk (rows from ``start``) has a NaN or infinite output."""
    import torch

    bad = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
    if bad.any():
        first = start + int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{type(model).__name__} produced NaN or infinite outputs for {int(bad.sum())} "
            f"input(s) (first: index {first}); their Jacobians are meaningless."
        )


def _auto_chunk_size(n: int, n_out: int, n_in: int, itemsize: int) -> int:
    per_input = max(1, n_out * n_in * itemsize * 4)  # J plus the transform's intermediates
    return int(min(n, max(1, _CHUNK_BUDGET // per_input)))


def _progress(iterable, total: int, progress: bool, desc: str):
    return progress_bar(iterable, progress=progress, total=total, desc=desc, unit="chunk", leave=False)


def _chunks(
    fwd: _Forward,
    model,
    X,
    info: JacobianInfo,
    *,
    func_step: Callable,
    autograd_step: Callable,
    draw: Callable = lambda x: (),
    use_func: bool,
    what: str,
    progress: bool,
    desc: str,
    stacklevel: int,
) -> Iterator[tuple[int, Any, Any]]:
    """Yield ``(start, x, result, values)`` per chunk of X: torch.func first, autograd after.

    ``draw(x)`` gives a chunk's extra arguments (drawn once, so that a fall
    back mid-chunk reuses them); ``func_step(x, *extra)`` and
    ``autograd_step(x, *extra, independent)`` return ``(result, values)``. A
    tracing failure switches to autograd for this and every later chunk
    (announced once, :func:`_fall_back`); the outputs of every chunk are
    checked for NaN. ``info`` records the paths that ran.
    """
    n, chunk = X.shape[0], info.chunk_size
    for start in _progress(range(0, n, chunk), info.n_chunks, progress, desc):
        x = X[start : start + chunk]
        extra = draw(x)
        result = None
        with fwd:
            if use_func:
                try:
                    result, values = func_step(x, *extra)
                    info._paths.add("torch.func")
                except Exception as err:  # noqa: BLE001 - a tracing failure -> autograd
                    use_func = False
                    _fall_back(err, model, info, what=what, stacklevel=stacklevel)
            if result is None:
                if info.independent_samples is None:
                    info.independent_samples = _independent(fwd, X)
                result, values = autograd_step(x, *extra, info.independent_samples)
                info._paths.add("autograd")
        info.path = "+".join(p for p in ("torch.func", "autograd") if p in info._paths)
        _check_finite(values, start, model)
        yield start, x, result, values


def _resolve_layer(model, layer) -> str | None:
    if layer is None or layer in (OUTPUT, ""):
        return None
    if not isinstance(layer, str):
        raise TypeError(f"layer must be None, {OUTPUT!r} or a module name; got {layer!r}.")
    return resolve_layers(model, [layer])[0]


def _prepare(model, X, layer, *, method, device, dtype, eval_mode, post=None, check_output=None):
    """Validate everything once; return the functional forward, the input tensor, the output shape.

    ``check_output(out)`` may inspect the raw output of the first inputs
    (before ``post``) and raise.
    """
    _check_model(model)
    check_option(method, "method", _METHODS)
    dev = resolve_device(device, model)
    dt = _resolve_dtype(dtype, model)
    X = as_input_tensor(X, "X", device=dev, dtype=dt)
    fwd = _Forward(model, _resolve_layer(model, layer), dev, dt, eval_mode=eval_mode)
    with fwd:
        out = _probe_forward(fwd, X, model)
    if check_output is not None:
        check_output(out)
    fwd.post = post
    return fwd, X, tuple(post(out).shape[1:]) if post is not None else tuple(out.shape[1:])


def iter_jacobians(
    model: Any,
    X: Any,
    layer: str | None = None,
    *,
    method: str = "auto",
    chunk_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    eval_mode: bool = True,
    post: Callable | None = None,
    check_output: Callable | None = None,
    progress: bool = False,
    info: JacobianInfo | None = None,
    desc: str = "jacobian",
) -> Iterator[tuple[slice, Any, Any]]:
    """Yield ``(rows, J, values)`` chunk by chunk; the engine behind every Jacobian in geomkit.

    ``J`` has shape (chunk, n_out, n_in) (outputs and inputs flattened),
    ``values`` (chunk, n_out) are the outputs themselves (after ``post``, a
    function applied to the batched output, e.g. ``log_softmax``). The model
    is in eval mode (if ``eval_mode``) only while a chunk is computed, so a
    caller may stop early; it is restored in every case. ``info`` (a
    :class:`JacobianInfo`) is filled in as the chunks go. ``check_output``
    inspects the raw output of the first inputs and may raise.
    """
    fwd, X, out_shape = _prepare(
        model, X, layer, method=method, device=device, dtype=dtype, eval_mode=eval_mode,
        post=post, check_output=check_output,
    )
    info = info if info is not None else JacobianInfo()
    n, in_shape = X.shape[0], tuple(X.shape[1:])
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    if chunk_size is None:
        chunk = _auto_chunk_size(n, n_out, n_in, X.element_size())
    else:
        chunk = check_int(chunk_size, "chunk_size", low=1)
    transform = method if method in ("jacrev", "jacfwd") else ("jacfwd" if n_out > n_in else "jacrev")
    use_func = method != "autograd"
    if not use_func:
        info.fallback_reason = "method='autograd' was requested"
    info.method, info.chunk_size, info.n_chunks = transform, chunk, -(-n // chunk)
    info.in_shape, info.out_shape = in_shape, out_shape
    chunks = _chunks(
        fwd, model, X, info, func_step=lambda x: _func_chunk(fwd, x, transform),
        autograd_step=lambda x, independent: _autograd_chunk(fwd, x, independent),
        use_func=use_func, what="the Jacobian", progress=progress, desc=desc, stacklevel=5,
    )
    for start, x, J, values in chunks:
        rows = slice(start, start + x.shape[0])
        yield rows, J.reshape(x.shape[0], n_out, n_in), values.reshape(x.shape[0], n_out)
    logger.info(
        "Jacobian of %s (%s): path=%s, method=%s, %d chunk(s) of %d input(s).",
        type(model).__name__, fwd.layer or OUTPUT, info.path, info.method, info.n_chunks, chunk,
    )


def warn_saturation(n_zero: int, n: int, dtype, *, what: str = "Jacobian", n_saturated: int = 0,
                    stacklevel: int = 3) -> None:
    """Warn (:class:`SaturationWarning`) when float32 gradients may have vanished.

    ``n_zero`` inputs had an exactly zero ``what``; ``n_saturated`` a softmax
    whose largest probability rounded to exactly 1. Silent in float64.
    """
    import torch

    if dtype == torch.float64 or not (n_zero or n_saturated):
        return
    parts = [f"the {what} is exactly zero for {n_zero}"] if n_zero else []
    if n_saturated:
        parts.append(f"the softmax is saturated (p_max == 1 in {dtype}) for {n_saturated}")
    warnings.warn(
        f"{' and '.join(parts)} of {n} input(s): {dtype} gradients may vanish numerically in "
        "saturated units or a saturated softmax. Recompute with dtype=torch.float64 to tell "
        "flatness from underflow.",
        SaturationWarning,
        stacklevel=stacklevel,
    )


# ----------------------------------------------------------------------------- public


def jacobian(
    model: Any,
    X: Any,
    layer: str | None = None,
    *,
    method: str = "auto",
    chunk_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    eval_mode: bool = True,
    flatten: bool = False,
    progress: bool = True,
    return_info: bool = False,
):
    """Per-input Jacobians of a model's output (or of a layer's output) w.r.t. its input.

    Parameters
    ----------
    model : torch.nn.Module
        Left exactly as found.
    X : array-like or torch.Tensor of shape ``(n_inputs, *input_shape)``
        A batch axis first, then one input's shape.
    layer : None, "output" or str, default=None
        ``None`` / ``"output"``: the model's output (the logits). A module
        name (as in :func:`geomkit.probe.extract`): that module's output. The
        forward pass stops once the layer has run; a module called several
        times is differentiated at its first call.
    method : {"auto", "jacrev", "jacfwd", "autograd"}, default="auto"
        ``"auto"`` uses ``vmap(jacrev)`` when the output has at most as many
        entries as the input, else ``vmap(jacfwd)``, and falls back to plain
        autograd when torch.func cannot trace the model. ``"autograd"``
        forces the fallback (one backward pass per output entry).
    chunk_size : int, optional
        Inputs per vectorized call. Default: as many as fit in about 256 MiB.
    device : None, str or torch.device
        Where to compute; ``None`` is where the model is (see :ref:`devices`).
        The model is not moved.
    dtype : None or floating dtype, optional
        Compute dtype (e.g. ``torch.float64`` for saturated nets); the model's
        parameters are cast in a copy. ``None``: the model's own dtype.
    eval_mode : bool, default=True
        Differentiate the model in eval mode; its mode is restored afterwards.
    flatten : bool, default=False
        Return shape (n_inputs, n_outputs, n_features) instead of
        ``(n_inputs, *output_shape, *input_shape)``.
    progress : bool, default=True
        Show a tqdm bar over chunks.
    return_info : bool, default=False
        Also return a :class:`JacobianInfo` saying which path ran.

    Returns
    -------
    J : torch.Tensor of shape ``(n_inputs, *output_shape, *input_shape)``
        ``J[i, o..., d...] = d out(x_i)[o...] / d x_i[d...]``, on ``device``.
    info : JacobianInfo
        Only with ``return_info=True``.

    Warns
    -----
    SaturationWarning
        When the Jacobian of some input is exactly zero in float32.

    Examples
    --------
    >>> import torch
    >>> from geomkit.probe import jacobian
    >>> net = torch.nn.Linear(3, 2)
    >>> J = jacobian(net, torch.randn(5, 3), progress=False)
    >>> J.shape, torch.allclose(J[0], net.weight)
    (torch.Size([5, 2, 3]), True)
    """
    import torch

    info = JacobianInfo()
    chunks = []
    # A loop, not a list comprehension: the comprehension's own frame (Python < 3.12)
    # would make the fall-back warning point into this file instead of at the caller.
    for _, J, _ in iter_jacobians(
        model, X, layer, method=method, chunk_size=chunk_size, device=device, dtype=dtype,
        eval_mode=eval_mode, progress=progress, info=info,
    ):
        chunks.append(J)
    J = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    n_zero = int((J.reshape(J.shape[0], -1) == 0).all(dim=1).sum())
    warn_saturation(n_zero, J.shape[0], J.dtype)
    if not flatten:
        J = J.reshape(J.shape[0], *info.out_shape, *info.in_shape)
    return (J, info) if return_info else J


def jacobian_norm(
    model: Any,
    X: Any,
    layer: str | None = None,
    n_projections: int | None = None,
    *,
    random_state: Any = None,
    method: str = "auto",
    chunk_size: int | None = None,
    device: Any = None,
    dtype: Any = None,
    eval_mode: bool = True,
    progress: bool = True,
    return_info: bool = False,
):
    """Squared Frobenius norm ||J(x)||_F^2 of each input's Jacobian, exact or estimated.

    With ``n_projections`` set, the estimate of Hoffman, Roberts & Yaida
    (2019, "Robust learning with Jacobian regularization", arXiv:1908.02729):
    for random unit vectors v uniform on the sphere of the output space
    (dimension C), ``E[C ||v^T J||^2] = ||J||_F^2``, so
    ``||J||_F^2 ~ (C / n_proj) sum_v ||v^T J||^2`` — one backward pass per
    projection (batched over inputs) instead of C.

    Parameters
    ----------
    model, X, layer, method, chunk_size, device, dtype, eval_mode, progress
        As in :func:`jacobian`.
    n_projections : int, optional
        ``None``: exact (C batched backward passes). Otherwise the number of
        random projections per input (>= 1), drawn independently per input.
    random_state : None, int or numpy.random.Generator
        Seeds the projections.
    return_info : bool, default=False
        Also return a :class:`JacobianInfo` saying which path ran (``method``
        is ``"vjp"`` for the projection estimate).

    Returns
    -------
    norms : ndarray of shape (n_inputs,), float64
        The squared Frobenius norm of each input's Jacobian (or its estimate).
    info : JacobianInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        When the model's output is NaN or infinite for some input (checked
        for every chunk, on both paths).

    Warns
    -----
    SaturationWarning
        When the norm of some input is exactly zero in float32.
    JacobianFallbackWarning
        When torch.func cannot trace the model and plain autograd runs instead.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> exact = jacobian_norm(net, torch.randn(4, 3), progress=False)
    >>> bool(np.allclose(exact, (net.weight ** 2).sum().item()))
    True
    """
    import torch

    info = JacobianInfo()
    if n_projections is None:
        dt = None
        out = []
        for _, J, _ in iter_jacobians(
            model, X, layer, method=method, chunk_size=chunk_size, device=device, dtype=dtype,
            eval_mode=eval_mode, progress=progress, info=info, desc="jacobian_norm",
        ):
            dt = J.dtype
            out.append((J.to(torch.float64) ** 2).sum(dim=(1, 2)).cpu().numpy())
        norms = np.concatenate(out)
        warn_saturation(int((norms == 0).sum()), norms.size, dt)
        return (norms, info) if return_info else norms
    n_proj = check_int(n_projections, "n_projections", low=1)
    fwd, X, out_shape = _prepare(
        model, X, layer, method=method, device=device, dtype=dtype, eval_mode=eval_mode
    )
    n, in_shape = X.shape[0], tuple(X.shape[1:])
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    if n_proj > 1 and n_proj >= n_out:
        logger.info("n_projections=%d >= output size %d: the exact norm is cheaper.", n_proj, n_out)
    rng = check_random_state(random_state)
    chunk = _auto_chunk_size(n, n_proj, n_in, X.element_size()) if chunk_size is None else check_int(chunk_size, "chunk_size", low=1)
    info.method, info.chunk_size, info.n_chunks = "vjp", chunk, -(-n // chunk)
    info.in_shape, info.out_shape = in_shape, out_shape
    use_func = method != "autograd"
    if not use_func:
        info.fallback_reason = "method='autograd' was requested"
    def draw(x):
        V = rng.standard_normal((x.shape[0], n_proj, n_out))
        V /= np.linalg.norm(V, axis=2, keepdims=True)
        return (torch.as_tensor(V, device=X.device, dtype=X.dtype),)

    result = np.empty(n)
    chunks = _chunks(
        fwd, model, X, info, func_step=lambda x, V: _func_vjps(fwd, x, V),
        autograd_step=lambda x, V, independent: _autograd_vjps(fwd, x, V, independent),
        draw=draw, use_func=use_func, what="jacobian_norm", progress=progress,
        desc="jacobian_norm", stacklevel=4,
    )
    # The first inputs were checked by _prepare, the later ones by _chunks.
    for start, x, g, _ in chunks:
        sq = (g.to(torch.float64).reshape(x.shape[0], n_proj, -1) ** 2).sum(dim=2)
        result[start : start + x.shape[0]] = (n_out * sq.mean(dim=1)).cpu().numpy()
    warn_saturation(int((result == 0).sum()), n, X.dtype)
    logger.info(
        "jacobian_norm of %s (%s), %d projection(s): path=%s, %d chunk(s) of %d input(s).",
        type(model).__name__, fwd.layer or OUTPUT, n_proj, info.path, info.n_chunks, chunk,
    )
    return (result, info) if return_info else result


def _func_vjps(fwd, x, V):
    """v^T J for every input and every projection v (rows of V[i]), and the outputs.

    A nested vmap over ``vjp``: shapes (chunk, n_proj, *input_shape) and
    (chunk, n_out).
    """
    from torch.func import vjp, vmap

    def one(xi, vi):
        out, pull = vjp(lambda z: fwd(z.unsqueeze(0)).reshape(-1), xi)
        return vmap(lambda v: pull(v)[0])(vi), out

    return vmap(one)(x, V)


def _autograd_vjps(fwd, x, V, independent: bool):
    """v^T J for every projection v (rows of V[i]) with plain autograd, and the outputs."""
    import torch

    if not independent and x.shape[0] > 1:
        parts = [_autograd_vjps(fwd, x[i : i + 1], V[i : i + 1], True) for i in range(x.shape[0])]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        flat = fwd(xg).reshape(x.shape[0], -1)
        out = []
        for j in range(V.shape[1]):
            (g,) = torch.autograd.grad(
                (flat * V[:, j]).sum(), xg, retain_graph=j < V.shape[1] - 1, allow_unused=True
            )
            # An output that does not depend on the input has a zero Jacobian.
            out.append(torch.zeros_like(x) if g is None else g)
    return torch.stack(out, dim=1), flat.detach()
