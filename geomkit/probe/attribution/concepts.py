"""Concept attribution (TCAV, Kim et al. 2018) and an attack on it.

A *concept activation vector* (CAV) is the normal of a linear classifier that
separates a layer's activations to examples of a concept ("stripes", "bright
top half") from its activations to random examples, pointing towards the
concept. The *concept sensitivity* of an input is the directional derivative
of a class logit along the CAV, ``S(x) = grad_h z_t(h(x)) . v``; the *TCAV
score* is the fraction of inputs with positive sensitivity. A concept that a
class does not use scores about 0.5 on average over random CAVs (Kim et al.
test a concept against many random ones).

:func:`tcav_attack` perturbs the inputs, inside an L-inf ball and without
changing any predicted label, so that their sensitivity to the concept falls
(or rises): the explanation changes while the predictions do not (Brown &
Kvinge 2021, "Making corgis important for honeycomb classification").
As in :mod:`~geomkit.probe.attribution.fragility`, the attack's gradient (a
second derivative) is taken through softplus-smoothed ReLUs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from ..._params import Real, validate_params
from ..._validation import as_float_array
from .fragility import ATTACK_CONSTRAINTS, bounded_input, label_preserving_ascent
from .methods import evaluating, prepared_input, resolve_target

__all__ = ["concept_activation_vector", "concept_sensitivity", "tcav_score", "tcav_attack"]


def concept_activation_vector(concept: Any, random: Any, *, C: float = 1.0) -> np.ndarray:
    """The unit normal of a logistic regression separating concept from random activations.

    Parameters
    ----------
    concept : array-like of shape (n_concept, ...)
        A layer's activations to examples of the concept (flattened per row).
    random : array-like of shape (n_random, ...)
        The same layer's activations to random (non-concept) examples.
    C : float, default=1.0
        Inverse L2 regularization of the logistic regression.

    Returns
    -------
    numpy.ndarray of shape (n_units,)
        The CAV, of unit norm, pointing towards the concept.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> random = rng.normal(size=(50, 3))
    >>> concept = rng.normal(size=(50, 3)) + [0.0, 3.0, 0.0]
    >>> cav = concept_activation_vector(concept, random)
    >>> int(np.argmax(np.abs(cav))), bool(cav[1] > 0.9)
    (1, True)
    """
    from sklearn.linear_model import LogisticRegression

    validate_params({"C": C}, {"C": [Real(0, None, closed="neither")]}, caller="concept_activation_vector")
    a = as_float_array(concept, "concept", ndim=None)
    b = as_float_array(random, "random", ndim=None)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"concept and random must have shape (n_examples, ...); got {a.shape} and {b.shape}.")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"concept and random must come from the same layer; got {a.shape[1]} and {b.shape[1]} units.")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"concept and random need at least 2 examples each; got {len(a)} and {len(b)}.")
    clf = LogisticRegression(C=float(C), max_iter=1000).fit(np.r_[a, b], np.r_[np.ones(len(a)), np.zeros(len(b))])
    w = clf.coef_[0]
    norm = np.linalg.norm(w)
    if norm == 0:
        raise ValueError("concept and random activations are not separable at all (the classifier's weights are 0).")
    return w / norm


@contextlib.contextmanager
def _layer_output(model: Any, layer: str, store: dict):
    """A forward hook that keeps the output of ``model.<layer>`` in ``store["h"]``."""
    from ..recorder import resolve_layers

    name = resolve_layers(model, layer)[0]
    module = dict(model.named_modules())[name]
    handle = module.register_forward_hook(lambda mod, inp, out: store.__setitem__("h", out))
    try:
        yield
    finally:
        handle.remove()


def _sensitivity(model: Any, x: Any, layer: str, cav: Any, target: Any, create_graph: bool = False):
    """Directional derivatives (n,) of the target logits along ``cav`` at ``layer``."""
    import torch

    store: dict = {}
    x = x if x.requires_grad else x.detach().clone().requires_grad_(True)
    with _layer_output(model, layer, store):
        z = model(x)
    h = store.get("h")
    if not isinstance(h, torch.Tensor):
        raise ValueError(f"layer {layer!r} did not return a tensor in the forward pass.")
    if h[0].numel() != cav.numel():
        raise ValueError(f"cav has {cav.numel()} entries but layer {layer!r} has {h[0].numel()} units.")
    g = torch.autograd.grad(z.gather(1, target.view(-1, 1)).sum(), h, create_graph=create_graph)[0]
    return g.flatten(1) @ cav


def _cav_tensor(cav: Any, like: Any):
    import torch

    v = as_float_array(cav, "cav", ndim=None).ravel()
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def concept_sensitivity(model: Any, X: Any, layer: str, cav: Any, target: Any = None) -> np.ndarray:
    """Directional derivative of a class logit along a CAV, per input.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left as it was.
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs.
    layer : str
        The module whose output the CAV lives in (a name of
        ``model.named_modules()``).
    cav : array-like of shape (n_units,)
        The concept activation vector (:func:`concept_activation_vector`).
    target : None, int or array-like of int of shape (n,), default=None
        The class logit; ``None``: each input's predicted class.

    Returns
    -------
    numpy.ndarray of shape (n,)
        ``grad_h z_t . cav``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
    >>> concept_sensitivity(net, torch.rand(3, 2), "0", [0.0, 1.0], target=0)  # W[0] . cav
    array([2., 2., 2.])
    """
    with evaluating(model):
        x = prepared_input(model, X)
        t = resolve_target(model, x, target)
        s = _sensitivity(model, x, layer, _cav_tensor(cav, x), t)
    return s.detach().cpu().numpy().astype(np.float64)


def tcav_score(model: Any, X: Any, layer: str, cav: Any, target: Any = None) -> float:
    """TCAV score: the fraction of inputs whose class logit rises along the CAV (Kim et al. 2018).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left as it was.
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs (usually of one class).
    layer : str
        The module whose output the CAV lives in.
    cav : array-like of shape (n_units,)
        The concept activation vector.
    target : None, int or array-like of int of shape (n,), default=None
        The class logit; ``None``: each input's predicted class.

    Returns
    -------
    float
        In [0, 1]: ``mean(concept_sensitivity > 0)``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
    >>> tcav_score(net, torch.rand(3, 2), "0", [0.0, 1.0], target=0), tcav_score(net, torch.rand(3, 2), "0", [0.0, 1.0], target=1)
    (1.0, 0.0)
    """
    return float(np.mean(concept_sensitivity(model, X, layer, cav, target) > 0))


def tcav_attack(
    model: Any,
    X: Any,
    layer: str,
    cav: Any,
    eps: float,
    *,
    target: Any = None,
    increase: bool = False,
    steps: int = 20,
    step_size: float | None = None,
    beta: float = 10.0,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    progress: bool = False,
):
    """Lower (or raise) each input's concept sensitivity without changing its predicted label.

    Sign-gradient steps on the sensitivity (:func:`concept_sensitivity`,
    differentiated through softplus-smoothed ReLUs, :func:`smoothed_relu`),
    projected onto the L-inf ball of radius ``eps`` and ``bounds``; a step that
    changes the label is not taken and halves that input's step size. Per
    input, the iterate of lowest (highest) real sensitivity is returned.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left as it was.
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs, inside ``bounds``.
    layer : str
        The module whose output the CAV lives in.
    cav : array-like of shape (n_units,)
        The concept activation vector.
    eps : float
        Radius of the L-inf ball (>= 0).
    target : None, int or array-like of int of shape (n,), default=None
        The class logit whose sensitivity is moved; ``None``: each input's
        predicted class.
    increase : bool, default=False
        Raise the sensitivity instead of lowering it.
    steps : int, default=20
        Sign-gradient steps.
    step_size : float or None, default=None
        ``None``: ``2.5 * eps / steps``.
    beta : float, default=10.0
        Softplus sharpness of the smoothed ReLUs.
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid input range.
    progress : bool, default=False
        A bar over the steps.

    Returns
    -------
    torch.Tensor of shape (n, ...)
        The perturbed inputs, with the original predicted labels, on the
        model's device.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> X, cav = torch.rand(5, 8), torch.randn(16)
    >>> X_adv = tcav_attack(net, X, "0", cav, eps=0.1, steps=10)
    >>> bool((concept_sensitivity(net, X_adv, "0", cav) <= concept_sensitivity(net, X, "0", cav) + 1e-6).all())
    True
    """
    from ..attacks._checks import _check_bounds

    validate_params(dict(eps=eps, steps=steps, step_size=step_size, beta=beta),
                    {name: ATTACK_CONSTRAINTS[name] for name in ("eps", "steps", "step_size", "beta")},
                    caller="tcav_attack")
    bounds = _check_bounds(bounds)
    sign = 1.0 if increase else -1.0  # the attack maximizes sign * sensitivity
    with evaluating(model):
        x0 = bounded_input(model, X, bounds)
        label = resolve_target(model, x0, None)
        t = label if target is None else resolve_target(model, x0, target)
        v = _cav_tensor(cav, x0)
        return label_preserving_ascent(
            model, x0, label, eps,
            objective=lambda x: sign * _sensitivity(model, x, layer, v, t, create_graph=True),
            score=lambda x: sign * _sensitivity(model, x, layer, v, t).detach(),
            steps=steps, step_size=step_size, beta=beta, bounds=bounds, progress=progress, desc="TCAV attack")
