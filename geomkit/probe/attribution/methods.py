"""Input attributions through captum: saliency, integrated gradients, DeepLIFT.

:func:`attribute` is one entry point for the three methods the fragility
literature attacks (Ghorbani, Abid & Zou 2019):

* ``"saliency"`` — the gradient of the target logit with respect to the input
  (Simonyan, Vedaldi & Zisserman 2014), signed (captum's ``abs=False``);
* ``"integrated_gradients"`` — ``(x - x') * mean over a in (0, 1] of the
  gradient at x' + a (x - x')`` (Sundararajan, Taly & Yan 2017), baseline x'
  zero by default;
* ``"deeplift"`` — DeepLIFT with the Rescale rule (Shrikumar, Greenside &
  Kundaje 2017), baseline zero by default.

For a linear model ``z = W x + b`` all three have a closed form: saliency is
``W[t]``, integrated gradients and DeepLIFT are ``(x - x') * W[t]``.

captum is an optional dependency (``pip install geomkit[attribution]``),
imported on first use.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from typing import Any

import numpy as np

__all__ = ["attribute", "METHODS"]

#: Attribution methods of :func:`attribute`, mapped to captum's class names.
METHODS: dict[str, str] = {
    "saliency": "Saliency",
    "integrated_gradients": "IntegratedGradients",
    "deeplift": "DeepLift",
}


def _captum_attr():
    """``captum.attr``, or an ImportError that says which extra installs it."""
    try:
        import captum.attr as attr
    except ImportError as err:  # pragma: no cover - captum is in the test extra
        raise ImportError(
            "geomkit.probe.attribution needs captum; install it with "
            "`pip install geomkit[attribution]` (or `pip install captum`)."
        ) from err
    return attr


def check_method(method: Any, name: str = "method") -> str:
    """``method`` if it is one of :data:`METHODS`, else a ValueError listing them."""
    from ..._params import Options, validate_params

    validate_params({name: method}, {name: [Options(*METHODS)]}, caller="attribute")
    return method


def prepared_input(model: Any, X: Any, name: str = "X"):
    """``X`` as a float tensor of the model's dtype on its device, with a batch axis (n, ...)."""
    from ..attacks._checks import _as_input, _model_dtype, model_device

    return _as_input(X, name, model_device(model), _model_dtype(model), None)


def resolve_target(model: Any, x: Any, target: Any):
    """Per-input target classes (n,) as a long tensor: the predictions when ``target`` is None."""
    import torch

    from ..attacks._checks import _as_labels

    n = x.shape[0]
    with torch.no_grad():  # a given target is checked against one input's logits (a cheap forward)
        logits = model(x if target is None else x[:1])
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits of shape (n_inputs, n_classes); it returned {got}.")
    if target is None:
        return logits.argmax(1)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = np.full(n, int(target))
    t = _as_labels(target, n, x.device)
    if int(t.max()) >= logits.shape[1]:
        raise ValueError(f"target holds class index {int(t.max())} but the model returns "
                         f"{logits.shape[1]} logits.")
    return t


@contextlib.contextmanager
def evaluating(model: Any):
    """``model`` in eval mode without parameter gradients; flags restored on exit."""
    import torch

    from ..recorder import ModelState

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    state = ModelState(model)
    try:
        model.eval()
        model.requires_grad_(False)
        yield
    finally:
        state.restore()


def _wrap_like(values: np.ndarray, X: Any):
    """``values`` as a DataArray with X's dims and coordinates when X is a DataArray."""
    if type(X).__module__.startswith("xarray") and hasattr(X, "dims"):
        import xarray as xr

        return xr.DataArray(values.reshape(X.shape), dims=X.dims, coords=X.coords, name="attribution")
    return values


def attribute(
    model: Any,
    X: Any,
    target: Any = None,
    method: str = "integrated_gradients",
    **kwargs: Any,
):
    """Attribution of each input feature to a class logit (captum).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left as it was: evaluated in
        eval mode, train / eval and ``requires_grad`` flags restored.
    X : array-like, torch.Tensor or xarray.DataArray of shape (n, ...)
        Inputs.
    target : None, int or array-like of int of shape (n,), default=None
        The logit to explain: ``None`` is each input's predicted class.
    method : {"saliency", "integrated_gradients", "deeplift"}, default="integrated_gradients"
        The attribution method (:data:`METHODS`). Saliency is the signed
        gradient (pass ``abs=True`` for captum's absolute value).
    **kwargs
        Passed to the captum method's ``attribute`` (``baselines``,
        ``n_steps``, ``method``, ``internal_batch_size``, ``abs``, ...).

    Returns
    -------
    numpy.ndarray or xarray.DataArray of the shape of X
        The attributions, float; a DataArray (named ``"attribution"``, with
        X's dims and coordinates) when X is one.

    Raises
    ------
    ValueError
        For a method not in :data:`METHODS` (the message lists them), or a
        target outside the model's classes.
    TypeError
        For a keyword the captum method does not take.
    ImportError
        When captum is not installed (``pip install geomkit[attribution]``).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2).double()
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]]))
    >>> attribute(net, [[1.0, 1.0, 2.0]], target=0, method="saliency")
    array([[ 1. , -2. ,  0.5]])
    >>> attribute(net, [[1.0, 1.0, 2.0]], target=0)  # (x - 0) * w
    array([[ 1., -2.,  1.]])
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    method = check_method(method)
    attr = _captum_attr()
    explainer = getattr(attr, METHODS[method])(model)
    accepted = [p for p in inspect.signature(explainer.attribute).parameters if p not in ("self", "inputs", "target")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"attribute: method={method!r} takes no keyword(s) {unknown}; it accepts "
                        f"{accepted}.")
    if method == "saliency":
        kwargs.setdefault("abs", False)
    with evaluating(model):
        x = prepared_input(model, X)
        t = resolve_target(model, x, target)
        with warnings.catch_warnings():
            # DeepLIFT announces the hooks it puts on the activations (and removes afterwards)
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)
            values = explainer.attribute(x.clone().requires_grad_(True), target=t, **kwargs)
    if isinstance(values, tuple):  # return_convergence_delta=True: keep the attributions
        values = values[0]
    values = values.detach().cpu().numpy()
    shape = np.shape(X) if not isinstance(X, torch.Tensor) else tuple(X.shape)
    return _wrap_like(values.reshape(shape), X)
