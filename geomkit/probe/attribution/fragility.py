"""The fragility attack on attributions (Ghorbani, Abid & Zou 2019).

"Interpretation of neural networks is fragile": a perturbation too small to
change a network's prediction can move its explanation far. The attack keeps
the predicted label and moves the attribution map, by sign-gradient steps
inside an L-inf ball of radius eps:

* ``objective="topk"`` lowers the share of the attribution mass held by the k
  features that were most important at the original input;
* ``objective="center_of_mass"`` pushes the map's centre of mass away from
  where it was.

A step that changes the predicted label is rejected (and that input's step
size halved); per input, the iterate with the most dissimilar attribution of
the real model is returned. The baseline is random sign noise of the same
eps: an attribution is fragile when the attack moves it much more than noise.

Smoothing. The attack needs the gradient of an attribution with respect to
the input, i.e. second derivatives of the network. Those vanish almost
everywhere for ReLU networks (the saliency map is piecewise constant), so, as
Ghorbani et al. do, the attack's gradient is taken through a copy of the
forward pass in which every :class:`torch.nn.ReLU` module computes
``softplus(beta * h) / beta`` instead (``beta=10`` by default); the label
check and the choice of the best iterate use the real network. ReLUs applied
as functions inside a module's ``forward`` (``torch.relu``) are not smoothed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._params import RANDOM_STATE, Integer, Options, Real, validate_params
from ..._progress import progress_bar
from .methods import attribute, check_method, evaluating, prepared_input, resolve_target
from .metrics import center_of_mass_shift, rank_correlation, resolve_k, topk_intersection

__all__ = ["fragility_attack", "attribution_fragility", "smoothed_relu", "DIFFERENTIABLE_METHODS", "OBJECTIVES"]

#: Attributions the attack differentiates (its own implementations, checked against captum).
DIFFERENTIABLE_METHODS = ("saliency", "input_x_gradient", "integrated_gradients")
#: What the attack moves.
OBJECTIVES = ("topk", "center_of_mass")
_STEP_FACTOR = 2.5  # as PGD: a step of 2.5 eps / steps reaches the ball's border and moves along it


@contextlib.contextmanager
def smoothed_relu(model: Any, beta: float = 10.0):
    """Within the block, every ``torch.nn.ReLU`` of ``model`` computes ``softplus(beta h) / beta``.

    Forward hooks replace the modules' outputs (in-place ReLUs are made
    out-of-place for the duration); hooks and flags are restored on exit.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    beta : float, default=10.0
        Sharpness of the softplus: larger is closer to the ReLU (and its
        second derivative is more peaked).

    Yields
    ------
    int
        The number of ReLU modules smoothed.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.ReLU())
    >>> with smoothed_relu(net, beta=1.0) as n:
    ...     round(float(net(torch.zeros(1))), 4)  # softplus(0) = log 2
    0.6931
    >>> float(net(torch.zeros(1)))
    0.0
    """
    import torch
    import torch.nn.functional as F

    beta = float(beta)
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    inplace = [m.inplace for m in relus]
    handles = []
    try:
        for m in relus:
            m.inplace = False
            handles.append(m.register_forward_hook(lambda mod, inp, out: F.softplus(inp[0], beta=beta)))
        yield len(relus)
    finally:
        for h in handles:
            h.remove()
        for m, flag in zip(relus, inplace):
            m.inplace = flag


def differentiable_attribution(model: Any, x: Any, target: Any, method: str, *, n_steps: int = 16,
                               create_graph: bool = False):
    """Attribution of ``x`` (n, ...) to the logits ``target`` (n,), differentiable when ``create_graph``.

    ``"saliency"``: the gradient; ``"input_x_gradient"``: ``x * gradient``;
    ``"integrated_gradients"``: zero baseline, ``n_steps`` midpoint Riemann
    steps (captum's ``method="riemann_middle"``).
    """
    import torch

    def grad_at(points):
        if not points.requires_grad:  # a leaf of its own: the caller's tensor is left as it was
            points = points.detach().requires_grad_(True)
        z = model(points)
        picked = z.gather(1, target.view(-1, 1)).sum()
        return torch.autograd.grad(picked, points, create_graph=create_graph)[0]

    if method == "saliency":
        return grad_at(x)
    if method == "input_x_gradient":
        return x * grad_at(x)
    total = torch.zeros_like(x)
    for i in range(n_steps):
        total = total + grad_at(x * ((i + 0.5) / n_steps))
    return x * total / n_steps


def _objective(values: Any, top: Any, centre0: Any, grid: Any):
    """Per-input quantity the attack maximizes: minus the top-k share, or the centre-of-mass shift."""
    imp = values.flatten(1).abs()
    mass = imp.sum(1).clamp_min(1e-30)
    if top is not None:
        return -(imp * top).sum(1) / mass
    centre = imp @ grid.T / mass[:, None]
    return (centre - centre0).pow(2).sum(1).add(1e-12).sqrt()


def _score(values: Any, top: Any, k: int, centre0: Any, grid: Any):
    """How far the real attribution moved, per input (higher is farther): for ``"topk"`` minus the
    top-k intersection, its ties broken by the top-k share; else the centre-of-mass shift."""
    share = _objective(values, top, centre0, grid)
    if top is None:
        return share
    imp = values.flatten(1).abs()
    now = imp.topk(k, dim=1).indices
    inter = top.gather(1, now).sum(1) / k
    return -inter + 1e-3 * share


def _grid(shape: tuple[int, ...], like: Any):
    import torch

    return torch.as_tensor(np.indices(shape).reshape(len(shape), -1), dtype=like.dtype, device=like.device)


def _check_shape(shape: Any, feature_shape: tuple[int, ...]) -> tuple[int, ...]:
    grid = tuple(feature_shape) if shape is None else tuple(int(s) for s in shape)
    if int(np.prod(grid)) != int(np.prod(feature_shape)) or min(grid) < 1:
        raise ValueError(f"shape {grid} does not hold the inputs' {int(np.prod(feature_shape))} features.")
    return grid


def bounded_input(model: Any, X: Any, bounds: tuple[float, float] | None):
    """``X`` as the model's input tensor (:func:`prepared_input`), refused when outside ``bounds``."""
    x0 = prepared_input(model, X)
    if bounds is not None and (float(x0.min()) < bounds[0] or float(x0.max()) > bounds[1]):
        raise ValueError(f"X has values in [{float(x0.min()):.6g}, {float(x0.max()):.6g}], outside "
                         f"bounds={bounds}; rescale the inputs or pass bounds=None.")
    return x0


def label_preserving_ascent(model: Any, x0: Any, label: Any, eps: float, *, objective: Any, score: Any,
                            steps: int, step_size: float | None, beta: float,
                            bounds: tuple[float, float] | None, progress: bool, desc: str):
    """The engine of the attacks on explanations: sign-gradient ascent that never changes a label.

    ``objective(x)`` (per input, shape (n,)) is differentiated through
    softplus-smoothed ReLUs (:func:`smoothed_relu`); each step of size
    ``step_size`` (``2.5 eps / steps`` by default) is projected onto the L-inf
    ball and ``bounds``; a step that changes ``label`` is not taken and halves
    that input's step. ``score(x)`` (real network, higher is farther) picks,
    per input, the best iterate, starting from ``x0`` itself.
    """
    import torch

    from ..attacks.base import project

    n = x0.shape[0]
    eps_t = torch.full((n,), float(eps), dtype=x0.dtype, device=x0.device)
    step = torch.full_like(eps_t, _STEP_FACTOR * float(eps) / steps if step_size is None else float(step_size))
    view = (-1,) + (1,) * (x0.ndim - 1)
    x, best = x0.clone(), x0.clone()
    best_score = score(x0)
    for _ in progress_bar(range(steps), progress=progress, desc=desc):
        with smoothed_relu(model, beta):
            xr = x.detach().clone().requires_grad_(True)
            grad = torch.autograd.grad(objective(xr).sum(), xr)[0]
        with torch.no_grad():
            cand = project(x + step.view(view) * grad.sign(), x0, eps_t, "linf", bounds)
            kept = model(cand).argmax(1) == label
            x = torch.where(kept.view(view), cand, x)
            step = torch.where(kept, step, step / 2)
        current = score(x)
        better = kept & (current > best_score)
        best = torch.where(better.view(view), x, best)
        best_score = torch.where(better, current, best_score)
    return best.detach()


ATTACK_CONSTRAINTS = {
    "eps": [Real(0, None)],
    "method": [Options(*DIFFERENTIABLE_METHODS)],
    "objective": [Options(*OBJECTIVES)],
    "k": [Integer(1, None), None],
    "steps": [Integer(1, None)],
    "step_size": [Real(0, None, closed="neither"), None],
    "beta": [Real(0, None, closed="neither")],
    "n_steps": [Integer(1, None)],
}


def fragility_attack(
    model: Any,
    X: Any,
    eps: float,
    *,
    method: str = "saliency",
    objective: str = "topk",
    k: int | None = None,
    shape: Sequence[int] | None = None,
    steps: int = 20,
    step_size: float | None = None,
    beta: float = 10.0,
    n_steps: int = 16,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    progress: bool = False,
):
    """Move each input's attribution map without changing its predicted label (Ghorbani et al. 2019).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left as it was.
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs, inside ``bounds``.
    eps : float
        Radius of the L-inf ball (>= 0).
    method : {"saliency", "input_x_gradient", "integrated_gradients"}, default="saliency"
        The attribution attacked (of the predicted class's logit).
    objective : {"topk", "center_of_mass"}, default="topk"
        Lower the attribution share of the original top-k features, or push
        the attribution's centre of mass away.
    k : int or None, default=None
        Top features of ``objective="topk"``; ``None``: a tenth of them.
    shape : sequence of int, optional
        Image grid of one input for ``objective="center_of_mass"`` (``(28, 28)``
        for flattened MNIST); ``None``: the inputs' own shape.
    steps : int, default=20
        Sign-gradient steps.
    step_size : float or None, default=None
        ``None``: ``2.5 * eps / steps``. Halved for an input whenever its step
        would change the label (the step is then not taken).
    beta : float, default=10.0
        Softplus sharpness of the smoothed ReLUs the attack differentiates
        (:func:`smoothed_relu`).
    n_steps : int, default=16
        Riemann steps of integrated gradients.
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid input range.
    progress : bool, default=False
        A bar over the steps.

    Returns
    -------
    torch.Tensor of shape (n, ...)
        Per input, the iterate whose real attribution is farthest from the
        original (lowest top-k intersection, or largest centre-of-mass
        shift) among those with the original predicted label; the input
        itself if no step kept the label. On the model's device.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    >>> X = torch.rand(4, 16)
    >>> X_adv = fragility_attack(net, X, eps=0.05, k=4, steps=10)
    >>> bool((X_adv - X).abs().max() <= 0.05 + 1e-6)
    True
    >>> bool((net(X_adv).argmax(1) == net(X).argmax(1)).all())
    True
    """
    import torch

    from ..attacks._checks import _check_bounds

    validate_params(dict(eps=eps, method=method, objective=objective, k=k, steps=steps, step_size=step_size,
                         beta=beta, n_steps=n_steps), ATTACK_CONSTRAINTS, caller="fragility_attack")
    bounds = _check_bounds(bounds)
    with evaluating(model):
        x0 = bounded_input(model, X, bounds)
        label = resolve_target(model, x0, None)
        kw = dict(n_steps=n_steps)
        imp0 = differentiable_attribution(model, x0, label, method, **kw).detach().flatten(1).abs()
        top = grid = centre0 = None
        if objective == "topk":
            k = resolve_k(k, imp0.shape[1])
            top = torch.zeros_like(imp0).scatter_(1, imp0.topk(k, dim=1).indices, 1.0)
        else:
            grid = _grid(_check_shape(shape, tuple(x0.shape[1:])), x0)
            centre0 = imp0 @ grid.T / imp0.sum(1, keepdim=True).clamp_min(1e-30)

        def smoothed_objective(x):
            values = differentiable_attribution(model, x, label, method, create_graph=True, **kw)
            return _objective(values, top, centre0, grid)

        def real_score(x):
            values = differentiable_attribution(model, x, label, method, **kw).detach()
            return _score(values, top, k, centre0, grid)

        return label_preserving_ascent(model, x0, label, eps, objective=smoothed_objective, score=real_score,
                                       steps=steps, step_size=step_size, beta=beta, bounds=bounds,
                                       progress=progress, desc="fragility attack")


def _noise(x0: Any, eps: float, bounds: tuple[float, float] | None, generator: Any):
    """Random sign noise of L-inf norm eps, clipped to ``bounds``."""
    import torch

    signs = torch.randint(0, 2, x0.shape, generator=generator, device=x0.device).to(x0.dtype) * 2 - 1
    x = x0 + float(eps) * signs
    return x.clamp(bounds[0], bounds[1]) if bounds is not None else x


def attribution_fragility(
    model: Any,
    X: Any,
    eps: float | Sequence[float],
    *,
    method: str = "saliency",
    objective: str = "topk",
    k: int | None = None,
    shape: Sequence[int] | None = None,
    steps: int = 20,
    beta: float = 10.0,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    random_state: Any = None,
    progress: bool = False,
    **attribute_kwargs: Any,
):
    """How far the fragility attack and random noise of the same eps move the attributions.

    For each eps: :func:`fragility_attack` and random sign noise of L-inf norm
    eps; the attributions (:func:`~geomkit.probe.attribution.attribute`, of the
    predicted class at the original input) of the perturbed inputs are
    compared to the original ones by :func:`topk_intersection`,
    :func:`rank_correlation` and :func:`center_of_mass_shift`, averaged over
    the inputs whose predicted label the perturbation kept.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left as it was.
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs, inside ``bounds``.
    eps : float or sequence of float
        L-inf radii (>= 0).
    method : {"saliency", "integrated_gradients", "deeplift"}, default="saliency"
        The attribution measured (captum). The attack differentiates the same
        method, except DeepLIFT, for which it differentiates integrated
        gradients (DeepLIFT's Rescale rule approximates them).
    objective : {"topk", "center_of_mass"}, default="topk"
        The attack's objective (:func:`fragility_attack`).
    k : int or None, default=None
        Top features of the attack and of :func:`topk_intersection`; ``None``:
        a tenth of them.
    shape : sequence of int, optional
        Image grid of one input for :func:`center_of_mass_shift` and the
        centre-of-mass attack; ``None``: the inputs' own shape.
    steps : int, default=20
        Steps of the attack.
    beta : float, default=10.0
        Softplus sharpness of the smoothed ReLUs the attack differentiates.
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid input range.
    random_state : None, int, numpy Generator or RandomState
        Seeds the noise.
    progress : bool, default=False
        A bar over eps.
    **attribute_kwargs
        Passed to :func:`~geomkit.probe.attribution.attribute` (``baselines``,
        ``n_steps``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per eps x perturbation (``"attack"``, ``"noise"``), columns
        ``eps``, ``perturbation``, ``topk_intersection``, ``rank_correlation``,
        ``center_of_mass_shift`` (means over the kept inputs), ``label_kept``
        (their fraction) and ``n_inputs``.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    >>> table = attribution_fragility(net, torch.rand(6, 16), [0.05], k=4, steps=5, random_state=0)
    >>> table[["eps", "perturbation"]].values.tolist()
    [[0.05, 'attack'], [0.05, 'noise']]
    """
    from ..attacks._checks import _check_bounds

    check_method(method)
    eps_list = [eps] if np.ndim(eps) == 0 else list(np.asarray(eps, dtype=float).ravel())
    if not eps_list:
        raise ValueError("eps must be a number or a non-empty sequence of numbers; got an empty sequence.")
    for e in eps_list:
        validate_params({"eps": e}, {"eps": [Real(0, None)]}, caller="attribution_fragility")
    validate_params({"random_state": random_state}, {"random_state": [RANDOM_STATE]}, caller="attribution_fragility")
    bounds = _check_bounds(bounds)
    attack_method = method if method in DIFFERENTIABLE_METHODS else "integrated_gradients"
    with evaluating(model):
        return _fragility_table(model, X, eps_list, method, attack_method, objective, k, shape, steps, beta,
                                bounds, random_state, progress, attribute_kwargs)


def _fragility_table(model, X, eps_list, method, attack_method, objective, k, shape, steps, beta, bounds,
                     random_state, progress, attribute_kwargs):
    """The rows of :func:`attribution_fragility`, with the model in eval mode."""
    import pandas as pd
    import torch

    from ..._params import check_random_state
    from ..attacks._checks import _generator, _seed

    x0 = prepared_input(model, X)
    label = resolve_target(model, x0, None).cpu().numpy()
    k = resolve_k(k, int(np.prod(x0.shape[1:])))
    grid = _check_shape(shape, tuple(x0.shape[1:]))
    generator = _generator(_seed(check_random_state(random_state)), x0.device)

    def explain(x):
        return np.asarray(attribute(model, x, target=label, method=method, **attribute_kwargs))

    original = explain(x0)
    rows = []
    for e in progress_bar(eps_list, progress=progress, desc="attribution fragility"):
        perturbed = {
            "attack": fragility_attack(model, x0, float(e), method=attack_method, objective=objective, k=k,
                                       shape=grid, steps=steps, beta=beta, bounds=bounds),
            "noise": _noise(x0, float(e), bounds, generator),
        }
        for kind, x in perturbed.items():
            with torch.no_grad():
                kept = (model(x).argmax(1).cpu().numpy() == label)
            moved = explain(x)
            row = {"eps": float(e), "perturbation": kind, "topk_intersection": np.nan,
                   "rank_correlation": np.nan, "center_of_mass_shift": np.nan,
                   "label_kept": float(kept.mean()), "n_inputs": int(kept.sum())}
            if kept.any():
                a, b = original[kept], moved[kept]
                row.update(topk_intersection=float(np.mean(topk_intersection(a, b, k))),
                           rank_correlation=float(np.nanmean(rank_correlation(a, b))),
                           center_of_mass_shift=float(np.nanmean(center_of_mass_shift(a, b, grid))))
            rows.append(row)
    return pd.DataFrame(rows)
