"""Shared input checks and the model wrapper of the attacks (private)."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..._backend import model_device  # noqa: F401  (re-exported for the attack modules)
from ..._validation import as_float_array, check_float, check_int, check_labels, check_option
from ..recorder import ModelState

NORMS = ("linf", "l2")
_PROBE_ROWS = 64


def _check_norm(norm: Any, options: tuple = NORMS, attack: str | None = None) -> str:
    if isinstance(norm, numbers.Real) and not isinstance(norm, bool):
        norm = {float("inf"): "linf", 2.0: "l2"}.get(float(norm), norm)
    if isinstance(norm, str):
        norm = {"inf": "linf", "l_inf": "linf", "linf": "linf", "2": "l2", "l2": "l2"}.get(
            norm.lower(), norm
        )
    if attack is not None and norm in NORMS and norm not in options:
        raise ValueError(f"norm={norm!r} is not supported by the {attack} attack; it supports "
                         f"{', '.join(map(repr, options))}.")
    return check_option(norm, "norm", options)


def _check_bounds(bounds: Any) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise TypeError(
            f"bounds must be None (unbounded inputs) or a pair (low, high); got {bounds!r}."
        ) from None
    lo = check_float(lo, "bounds[0]")
    hi = check_float(hi, "bounds[1]")
    if not lo < hi:
        raise ValueError(f"bounds must satisfy low < high; got ({lo}, {hi}).")
    return lo, hi


def _model_dtype(model: Any):
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _resolve_dtype(dtype: Any, model: Any):
    import torch

    if dtype is None:
        return _model_dtype(model)
    names = {"float32": torch.float32, "float64": torch.float64, "double": torch.float64}
    if isinstance(dtype, str) and dtype in names:
        return names[dtype]
    if dtype in (torch.float32, torch.float64):
        return dtype
    if dtype in (np.float32, np.float64) or (isinstance(dtype, np.dtype) and dtype.kind == "f"):
        return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    raise ValueError(
        f"dtype must be None (the model's dtype), 'float32', 'float64' or a torch float dtype; "
        f"got {dtype!r}."
    )


def _as_input(X: Any, name: str, device, dtype, bounds: tuple[float, float] | None):
    """``X`` as a tensor of ``dtype`` on ``device`` (a view when it already is one: never
    modified in place), with a batch axis, finite and inside ``bounds``."""
    import torch

    if isinstance(X, torch.Tensor):
        if X.is_complex() or X.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor; got dtype {X.dtype}.")
        x = X.detach().to(device=device, dtype=dtype)
    else:
        x = torch.as_tensor(as_float_array(X, name), dtype=dtype, device=device)
    if x.ndim < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(
            f"{name} must have shape (n_inputs, ...) with at least one input and one "
            f"feature; got shape {tuple(x.shape)}."
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if bounds is not None:
        xmin, xmax = (float(v) for v in torch.aminmax(x))
        if xmin < bounds[0] or xmax > bounds[1]:
            raise ValueError(
                f"{name} has values in [{xmin:.6g}, {xmax:.6g}], outside bounds=({bounds[0]:g}, "
                f"{bounds[1]:g}); rescale the inputs, declare the bounds they live in, or pass "
                "bounds=None for unbounded inputs."
            )
    return x


def _as_labels(y: Any, n: int, device):
    import torch

    arr = check_labels(y, n, "y")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"y must hold integer class indices 0..n_classes-1 (the model's logit columns); "
            f"got dtype {arr.dtype}."
        )
    if arr.min() < 0:
        raise ValueError(f"y must hold class indices >= 0; got minimum {arr.min()}.")
    return torch.as_tensor(arr, dtype=torch.long, device=device)


def _as_eps(eps: Any, n: int, name: str, device, dtype):
    """``eps`` (a number or one value per input, >= 0) as a tensor of shape (n,)."""
    import torch

    if isinstance(eps, numbers.Real) and not isinstance(eps, bool):
        return torch.full((n,), check_float(eps, name, low=0.0), dtype=dtype, device=device)
    arr = as_float_array(eps, name, ndim=(0, 1))
    if arr.ndim == 0:
        return _as_eps(float(arr), n, name, device, dtype)
    if arr.shape[0] != n:
        raise ValueError(
            f"{name} must be a number or hold one value per input ({n}); got {arr.shape[0]}."
        )
    if arr.min() < 0:
        raise ValueError(f"{name} must be >= 0; got minimum {arr.min()}.")
    return torch.as_tensor(arr, dtype=dtype, device=device)


def _seed(random_state: Any) -> int:
    """An integer torch seed: ``random_state`` itself if it is one, else drawn from it."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**62))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**62))
    raise TypeError(
        "random_state must be None, an int, a numpy RandomState or Generator; "
        f"got {random_state!r}."
    )


def _generator(seed: int, device):
    import torch

    return torch.Generator(device=device).manual_seed(seed)


def _slices(n: int, batch_size: int | None) -> Iterator[slice]:
    if batch_size is None:
        yield slice(0, n)
        return
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _check_batch_size(batch_size: Any) -> int | None:
    return None if batch_size is None else check_int(batch_size, "batch_size", low=1)


# ----------------------------------------------------------------------------- the model
class _Target:
    """A model prepared for attacks: eval mode, parameter gradients off, optional dtype.

    A context manager; on exit the model's train / eval and ``requires_grad``
    flags are restored. Another dtype than the model's is evaluated through
    :func:`torch.func.functional_call` with converted copies of the parameters
    and buffers, so the model itself is never cast.
    """

    def __init__(self, model: Any, dtype: Any = None):
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
        self.model = model
        self.device = model_device(model)
        self.dtype = _resolve_dtype(dtype, model)
        self._tensors: dict | None = None
        self._state: ModelState | None = None

    def __enter__(self) -> "_Target":
        self._state = ModelState(self.model)
        try:
            self.model.eval()
            for p in self.model.parameters():
                p.requires_grad_(False)
            if self.dtype != _model_dtype(self.model):
                named = list(self.model.named_parameters()) + list(self.model.named_buffers())
                self._tensors = {
                    k: (v.detach().to(self.dtype) if v.is_floating_point() else v) for k, v in named
                }
        except BaseException:
            self._state.restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._tensors = None
        self._state.restore()

    def __call__(self, x):
        if self._tensors is None:
            return self.model(x)
        from torch.func import functional_call

        return functional_call(self.model, self._tensors, (x,))

    def check(self, x, y=None, targeted: bool = False) -> int:
        """Forward a few inputs: check the output is (n, n_classes) logits; return n_classes."""
        import torch

        with torch.no_grad():
            z = self(x[:_PROBE_ROWS])
        if targeted and isinstance(z, torch.Tensor) and z.ndim == 2 and z.shape[1] < 2:
            raise ValueError(
                f"targeted=True needs a model with at least 2 classes (a target other than the "
                f"true one); the model returns {z.shape[1]} logit."
            )
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] < 2:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                "the model must return logits of shape (n_inputs, n_classes) with n_classes >= 2; "
                f"it returned {got}."
            )
        n_classes = z.shape[1]
        if y is not None and int(y.max()) >= n_classes:
            raise ValueError(
                f"y holds class index {int(y.max())} but the model returns {n_classes} logits."
            )
        if bool((z >= 0).all()) and float((z.sum(1) - 1).abs().max()) < 1e-3:
            warnings.warn(
                "the model's outputs are non-negative and sum to 1 along the classes: it seems to "
                "return probabilities, but attacks need logits — gradients through a softmax "
                "saturate and mask the attack. Remove the final softmax (log-probabilities are "
                "fine).",
                UserWarning,
                stacklevel=3,
            )
        return n_classes


