"""Composite adversarial attacks (CAA): semantic perturbations composed with an L-inf one.

Hsiung, Tsai, Chen & Ho (2023, "Towards compositional adversarial
robustness: generalizing adversarial training to composite semantic
perturbations", CVPR): an input passes through a chain of components — here
rotation, translation, brightness, contrast, Gaussian blur (each with a
bounded parameter per input, :mod:`~geomkit.probe.attacks.semantic`) and an
L-inf perturbation (radius ``eps`` around the image that reaches it) — in an
*attack order*. Component-wise PGD: the components are attacked one after the
other in that order; each runs ``steps`` signed-gradient steps on its own
parameter (step ``2.5 (high - low) / 2 / steps``, clipped to its range; the
L-inf step ``2.5 eps / steps``) with the components before it fixed. An
input that becomes misclassified is frozen (early stop), and the components
after it leave it unchanged. ``rounds`` passes are made, each from the clean
input with the parameters warm-started from the previous pass.

The order matters, since the components do not commute (a rotation after a
translation moves the digit elsewhere than before it). ``order`` chooses it:
a fixed sequence, a new random permutation per round, or the paper's
scheduling — a doubly-stochastic matrix relaxes the permutation (position t
applies the mixture ``sum_i P[t, i] C_i``), is moved up the loss gradient
(an exponentiated-gradient step, renormalized by Sinkhorn iterations) and
rounded to the nearest permutation (Hungarian assignment) before each round.
:func:`composite_robust_accuracy` measures the robust accuracy under each of
a set of orders and their per-input worst case.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._validation import check_float, check_int
from .base import Attack, BatchContext, bcast, loss_and_grad
from .pgd import STEP_FACTOR
from .semantic import _clip, DEFAULT_RANGES, IDENTITY, N_PARAMS, SEMANTIC_COMPONENTS, apply_component

__all__ = ["CompositeAttack", "composite_robust_accuracy", "COMPONENTS", "ORDER_MODES"]

#: Every component the composite attack knows, in its default order (the L-inf one last).
COMPONENTS = (*SEMANTIC_COMPONENTS, "linf")
#: The order modes besides an explicit sequence of component names.
ORDER_MODES = ("fixed", "random", "scheduled")
_MAX_ALL_ORDERS = 120  # orders="all": every permutation of at most 5 components


def _check_components(components: Any) -> tuple[str, ...]:
    if isinstance(components, str) or not isinstance(components, Sequence) or not components:
        raise TypeError(f"components must be a non-empty sequence of names from {COMPONENTS}; "
                        f"got {components!r}.")
    for c in components:
        if c not in COMPONENTS:
            close = difflib.get_close_matches(str(c), COMPONENTS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"components must hold names from {COMPONENTS}; got unknown component "
                             f"{c!r}.{hint}")
    if len(set(components)) != len(components):
        raise ValueError(f"components must not repeat a name; got {tuple(components)}.")
    return tuple(components)


def _check_ranges(ranges: Any, components: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    if ranges is None:
        ranges = {}
    if not isinstance(ranges, dict):
        raise TypeError(f"ranges must be None or a dict {{component: (low, high)}}; got {ranges!r}.")
    out = {}
    for name, rng in ranges.items():
        if name == "linf":
            raise ValueError("ranges['linf'] is not a range: the L-inf component's radius is eps.")
        if name not in SEMANTIC_COMPONENTS:
            raise ValueError(f"ranges has unknown component {name!r}; ranges are given for "
                             f"{SEMANTIC_COMPONENTS}.")
        try:
            low, high = rng
        except (TypeError, ValueError):
            raise TypeError(f"ranges[{name!r}] must be a pair (low, high); got {rng!r}.") from None
        low = check_float(low, f"ranges[{name!r}][0]")
        high = check_float(high, f"ranges[{name!r}][1]")
        if low > high:
            raise ValueError(f"ranges[{name!r}] must satisfy low <= high; got ({low:g}, {high:g}).")
        if not low <= IDENTITY[name] <= high:
            raise ValueError(f"ranges[{name!r}] must contain the identity parameter {IDENTITY[name]:g} "
                             f"(the attack leaves broken inputs unchanged with it); got ({low:g}, {high:g}).")
        if name == "blur" and low < 0:
            raise ValueError(f"ranges['blur'] holds a standard deviation, >= 0; got ({low:g}, {high:g}).")
        out[name] = (low, high)
    return {c: out.get(c, DEFAULT_RANGES[c]) for c in components if c != "linf"}


def _check_order(order: Any, components: tuple[str, ...]) -> str | tuple[str, ...]:
    if isinstance(order, str):
        if order in ORDER_MODES:
            return order
        if ">" in order:  # "rotation>blur>linf", the form composite_robust_accuracy writes
            order = order.split(">")
        else:
            raise ValueError(f"order must be one of {ORDER_MODES} or a permutation of components "
                             f"{components} (a sequence of names or 'a>b>c'); got {order!r}.")
    if not isinstance(order, Sequence) or sorted(map(str, order)) != sorted(components):
        raise ValueError(f"order must be one of {ORDER_MODES} or a permutation of components {components} "
                         f"(each name once); got {order!r}.")
    return tuple(order)


def _sinkhorn(P, n_iter: int = 20):
    """Alternately normalize the rows and columns of a positive matrix (-> doubly stochastic)."""
    for _ in range(n_iter):
        P = P / P.sum(dim=0, keepdim=True)
        P = P / P.sum(dim=1, keepdim=True)
    return P


def _nearest_permutation(P) -> tuple[int, ...]:
    """The permutation of largest total weight in P (Hungarian assignment): position -> component."""
    from scipy.optimize import linear_sum_assignment

    _, cols = linear_sum_assignment(P.detach().cpu().double().numpy(), maximize=True)
    return tuple(int(c) for c in cols)


class CompositeAttack(Attack):
    """Composite adversarial attack (CAA, Hsiung et al. 2023): semantic components and L-inf, in an order.

    See the module docstring for the algorithm. The inputs are read as
    images: (n, channels, height, width), (n, height, width), or flat
    (n, d) with ``image_shape`` (a square ``d`` is read as one channel,
    ``sqrt(d)`` pixels a side); the model receives them in their own shape.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the L-inf component (>= 0). Not needed without ``"linf"`` in ``components``.
    components : sequence of str, default=("rotation", "translation", "brightness", "contrast", "blur", "linf")
        The components composed, from :data:`COMPONENTS`, each at most once.
    ranges : dict or None, default=None
        ``{component: (low, high)}`` parameter ranges; each must contain the
        component's identity parameter. Missing ones: ``DEFAULT_RANGES``
        (rotation +-10 degrees, translation +-2 pixels along x and y,
        brightness +-0.2, contrast 0.7..1.3, blur sigma 0..1 pixel).
    order : "fixed", "random", "scheduled" or sequence of str, default="scheduled"
        The attack order: ``components`` as listed ("fixed"), an explicit
        permutation of them (a sequence or "a>b>c"), a new random permutation
        each round, or the paper's order scheduling.
    steps : int, default=10
        PGD steps per component per round.
    rounds : int, default=5
        Passes through the chain (for "scheduled" and "random": each with its own order).
    random_start : bool, default=True
        Start each semantic parameter uniformly in its range (else at the
        identity, where the blur's gradient vanishes). The L-inf component
        starts at 0 (as the paper's).
    image_shape : tuple of int or None, default=None
        ``(height, width)`` or ``(channels, height, width)`` of flat inputs.
    **kwargs
        ``loss`` ("ce" or "margin"), ``bounds``, ``dtype``, ``batch_size``,
        ``random_state``, ``eot``: as in :class:`Attack` (L-inf only, untargeted).

    Attributes
    ----------
    orders_ : list of tuple of str
        Set by :meth:`perturb`: per input, the order of the pass whose output was returned
        (an input misclassified without attack is returned as it is, with ``components`` as listed
        and every parameter at its identity).
    params_ : dict of str to torch.Tensor
        Per semantic component, the parameters of that pass, shape (n,) ((n, 2) for translation).
    delta_ : torch.Tensor of shape (n, channels, height, width) or None
        The L-inf component's perturbation of that pass (``None`` without it).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> X = torch.rand(4, 1, 8, 8)
    >>> attack = CompositeAttack(0.03, components=("rotation", "brightness", "linf"),
    ...                          order="fixed", steps=3, rounds=1, random_state=0)
    >>> x_adv = attack.perturb(net, X, [0, 1, 2, 0])
    >>> x_adv.shape, attack.orders_[0]
    (torch.Size([4, 1, 8, 8]), ('rotation', 'brightness', 'linf'))
    >>> bool(attack.params_["rotation"].abs().max() <= 10)
    True
    """

    name = "caa"
    norms = ("linf",)
    supports_targeted = False
    _eps_low_inclusive = True

    def __init__(self, eps: Any = None, *, components: Sequence[str] = COMPONENTS, ranges: dict | None = None,
                 order: Any = "scheduled", steps: int = 10, rounds: int = 5, random_start: bool = True,
                 image_shape: tuple[int, ...] | None = None, **kwargs: Any):
        super().__init__(eps, **kwargs)
        self.components = _check_components(components)
        self.ranges = _check_ranges(ranges, self.components)
        self.order = _check_order(order, self.components)
        self.steps = check_int(steps, "steps", low=1)
        self.rounds = check_int(rounds, "rounds", low=1)
        self.random_start = bool(random_start)
        self.image_shape = self._check_image_shape(image_shape)
        if "linf" not in self.components and self.eps is None:
            self.eps = 0.0  # no L-inf component: its radius is never used
        self.orders_ = self.params_ = self.delta_ = None

    def __repr__(self) -> str:
        return (f"CompositeAttack(eps={self.eps!r}, components={self.components!r}, "
                f"order={self.order!r}, steps={self.steps}, rounds={self.rounds})")

    @staticmethod
    def _check_image_shape(image_shape: Any):
        if image_shape is None:
            return None
        if (isinstance(image_shape, str) or not isinstance(image_shape, Sequence)
                or len(image_shape) not in (2, 3)
                or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                           for s in image_shape)):
            raise ValueError("image_shape must be None, (height, width) or (channels, height, width) of "
                             f"positive ints; got {image_shape!r}.")
        return tuple(int(s) for s in image_shape)

    def _images_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(channels, height, width) of one input of shape ``shape``."""
        d = math.prod(shape)
        if self.image_shape is not None:
            if math.prod(self.image_shape) != d:
                raise ValueError(f"image_shape={self.image_shape} holds {math.prod(self.image_shape)} "
                                 f"values but each input has {d} (shape {shape}).")
            return (1, *self.image_shape) if len(self.image_shape) == 2 else self.image_shape
        if len(shape) == 3:
            return shape
        if len(shape) == 2:
            return (1, *shape)
        side = math.isqrt(d)
        if len(shape) == 1 and side * side == d:
            return (1, side, side)
        raise ValueError(f"inputs of shape {shape} cannot be read as images; pass image_shape="
                         "(height, width) or (channels, height, width).")

    # ------------------------------------------------------------------ perturb
    def perturb(self, model: Any, X: Any, y: Any, *, eps: Any = None, target_labels: Any = None):
        """Composite adversarial versions of ``X`` for ``model``.

        Parameters
        ----------
        model : torch.nn.Module
            Returns logits of shape (n, n_classes). Left untouched.
        X : array-like or torch.Tensor of shape (n, ...)
            Inputs, inside ``bounds``, readable as images (see the class docstring).
        y : array-like of int of shape (n,)
            True class indices.
        eps : float, array-like of shape (n,) or None
            Overrides the attack's L-inf radius for this call (>= 0).
        target_labels : None
            Not supported (the attack is untargeted).

        Returns
        -------
        torch.Tensor of shape (n, ...)
            The adversarial inputs, on the model's device; ``orders_``,
            ``params_`` and ``delta_`` say how each was made.
        """
        import torch

        self._records: list[dict] = []
        out = super().perturb(model, X, y, eps=eps, target_labels=target_labels)
        recs = self._records
        del self._records
        self.orders_ = [o for r in recs for o in r["orders"]]
        self.params_ = {c: torch.cat([r["params"][c] for r in recs]) for c in self.ranges}
        self.delta_ = torch.cat([r["delta"] for r in recs]) if "linf" in self.components else None
        return out

    def _perturb_batch(self, ctx: BatchContext, x0, y, eps, t):
        import torch

        n = x0.shape[0]
        images = x0.reshape(n, *self._images_shape(tuple(x0.shape[1:])))

        def forward(z):  # the model sees inputs in their own shape
            return ctx.target(z.reshape(z.shape[0], *x0.shape[1:]))

        params = {c: self._start(c, n, images, ctx.generator) for c in self.ranges}
        delta = torch.zeros_like(images)
        with torch.no_grad():
            broken = forward(images).argmax(1) != y  # misclassified already: left as they are
        adv = images.clone()
        kept = {c: torch.full_like(p, IDENTITY[c]) for c, p in params.items()}
        kept_delta = torch.zeros_like(images)
        order = self._initial_order(ctx)
        kept_order = [self._named(order)] * n
        P = None
        for r in range(self.rounds):
            if self.order == "random" and r > 0:
                order = self._random_order(ctx)
            elif self.order == "scheduled":
                P, order = self._schedule(ctx, forward, images, y, params, delta, broken, P, order, r)
            active = ~broken
            todo = active.clone()
            z = images
            for i in order:
                comp = self.components[i]
                if comp == "linf":
                    z, delta = self._linf_stage(ctx, forward, z, y, eps, active)
                else:
                    z, params[comp] = self._semantic_stage(ctx, forward, comp, z, y, params[comp], active)
            with torch.no_grad():
                now = forward(z).argmax(1) != y
            adv[todo] = z[todo].detach()
            for c in kept:
                kept[c][todo] = params[c][todo]
            kept_delta[todo] = delta[todo]
            named = self._named(order)
            for i in todo.nonzero().flatten().tolist():
                kept_order[i] = named
            broken |= now
            if bool(broken.all()):
                break
        self._records.append({"orders": kept_order, "params": kept, "delta": kept_delta})
        return adv.reshape(x0.shape)

    # ------------------------------------------------------------------ the parts
    def _named(self, order: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(self.components[i] for i in order)

    def _initial_order(self, ctx) -> tuple[int, ...]:
        if isinstance(self.order, tuple):
            return tuple(self.components.index(c) for c in self.order)
        if self.order == "random":
            return self._random_order(ctx)
        return tuple(range(len(self.components)))  # "fixed"; "scheduled" replaces it in round 0

    def _random_order(self, ctx) -> tuple[int, ...]:
        import torch

        gen = ctx.generator
        return tuple(torch.randperm(len(self.components), generator=gen, device=gen.device).tolist())

    def _start(self, comp: str, n: int, images, gen):
        import torch

        shape = (n,) if N_PARAMS[comp] == 1 else (n, N_PARAMS[comp])
        if not self.random_start:
            return torch.full(shape, IDENTITY[comp], dtype=images.dtype, device=images.device)
        low, high = self.ranges[comp]
        u = torch.rand(shape, generator=gen, device=gen.device, dtype=images.dtype).to(images.device)
        return low + (high - low) * u

    def _apply(self, comp: str, z, p):
        # the blur's kernel width from its range, so a batch's result does not depend on its sigmas
        radius = max(1, math.ceil(3 * self.ranges["blur"][1])) if comp == "blur" else None
        return apply_component(comp, z, p, bounds=self.bounds, blur_radius=radius)

    def _grad(self, ctx, make_output, var, y):
        """Loss gradient with respect to ``var`` (mean over ``eot`` draws) and the last logits:
        :func:`~geomkit.probe.attacks.base.loss_and_grad` with ``make_output`` as the model."""
        _, logits, grad = loss_and_grad(dataclasses.replace(ctx, target=make_output), self.loss_fn, var, y)
        return grad, logits

    def _semantic_stage(self, ctx, forward, comp, z, y, p, active):
        """``steps`` signed-gradient steps on one component's parameters; returns (output, params)."""
        import torch

        low, high = self.ranges[comp]
        step = STEP_FACTOR / 2 * (high - low) / self.steps  # PGD's factor x the half-range / steps
        z = z.detach()
        p = torch.where(bcast(active, p), p, torch.full_like(p, IDENTITY[comp])).detach()
        for _ in range(self.steps):
            grad, logits = self._grad(ctx, lambda v: forward(self._apply(comp, z, v)), p, y)
            with torch.no_grad():
                active &= logits.argmax(1) == y  # early stop: a broken input keeps its parameters
                moved = (p + step * grad.sign()).clamp(low, high)
                p = torch.where(bcast(active, p), moved, p).detach()
        with torch.no_grad():
            return self._apply(comp, z, p), p

    def _linf_stage(self, ctx, forward, z, y, eps, active):
        """PGD in the L-inf ball of radius eps around ``z`` (the image reaching it), from 0."""
        import torch

        z = z.detach()
        e = bcast(eps, z)
        step = e * (STEP_FACTOR / self.steps)
        d = torch.zeros_like(z)
        for _ in range(self.steps):
            grad, logits = self._grad(ctx, lambda v: forward(_clip(z + v, self.bounds)), d, y)
            with torch.no_grad():
                active &= logits.argmax(1) == y
                moved = torch.minimum(torch.maximum(d + step * grad.sign(), -e), e)
                moved = _clip(z + moved, self.bounds) - z
                d = torch.where(bcast(active, d), moved, d).detach()
        with torch.no_grad():
            return _clip(z + d, self.bounds), d

    def _schedule(self, ctx, forward, images, y, params, delta, broken, P, order, r):
        """The paper's order scheduling: (relaxed permutation P, the order of this round)."""
        import torch

        m = len(self.components)
        gen = ctx.generator
        if P is None:
            u = torch.rand((m, m), generator=gen, device=gen.device, dtype=images.dtype).to(images.device)
            P = _sinkhorn(u + 1e-3)
            return P, _nearest_permutation(P)
        live = ~broken
        if not bool(live.any()):
            return P, order
        P = P.detach().requires_grad_(True)
        z = images[live]
        for t in range(m):
            mix = 0
            for i, comp in enumerate(self.components):
                if comp == "linf":
                    out = _clip(z + delta[live], self.bounds)
                else:
                    out = self._apply(comp, z, params[comp][live].detach())
                mix = mix + P[t, i] * out
            z = mix
        loss = self.loss_fn(forward(z), y[live], None).mean()
        g = torch.autograd.grad(loss, P)[0]
        with torch.no_grad():
            scale = g.abs().max()
            g = g / scale if scale > 0 else g
            P = _sinkhorn(P * torch.exp(g))
            new = _nearest_permutation(P)
            tries = 0
            # as the paper: a round that would repeat the previous order is kicked to another one
            while m > 1 and new == order and tries < 10:
                noise = torch.rand((m, m), generator=gen, device=gen.device, dtype=P.dtype).to(P.device)
                P = _sinkhorn(P * torch.exp(2 * noise))
                new = _nearest_permutation(P)
                tries += 1
        return P.detach(), new



def _order_label(order: Any) -> str:
    return order if isinstance(order, str) else ">".join(order)


def composite_robust_accuracy(
    model: Any,
    X: Any,
    y: Any,
    eps: float,
    *,
    orders: Any = "all",
    components: Sequence[str] = COMPONENTS,
    **attack_params: Any,
):
    """Robust accuracy under the composite attack in each of several orders, and their worst case.

    As :func:`~geomkit.probe.attacks.robust_accuracy`: the fraction of the
    correctly classified inputs that the attack does not flip. Every order
    runs with the same ``random_state``, so the semantic parameters start
    from the same points and the orders differ only in their order. The
    last row, ``"worst"``, counts an input as robust only if it survives
    every order: the order search by enumeration.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left untouched.
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs readable as images (see :class:`CompositeAttack`).
    y : array-like of int of shape (n,)
        True class indices.
    eps : float
        Radius of the L-inf component (>= 0).
    orders : "all" or sequence, default="all"
        Every permutation of ``components`` (at most 5 components, 120
        orders), or a list whose entries are permutations (sequences of names
        or "a>b>c") or the modes "fixed", "random", "scheduled".
    components : sequence of str, default=COMPONENTS
        As in :class:`CompositeAttack`.
    **attack_params
        Passed to :class:`CompositeAttack` (``ranges``, ``steps``,
        ``rounds``, ``random_state``, ``bounds``, ``batch_size``, ``loss``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per order and a last row ``"worst"``; columns ``order``
        (names joined by ">" or the mode), ``robust_accuracy``, ``n_robust``,
        ``n_correct``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> X = torch.rand(6, 1, 4, 4)
    >>> y = net(X).argmax(1)  # all correct
    >>> table = composite_robust_accuracy(net, X, y, 0.05, components=("brightness", "linf"),
    ...                                   steps=2, rounds=1, random_state=0)
    >>> table["order"].tolist()
    ['brightness>linf', 'linf>brightness', 'worst']
    >>> bool(table["robust_accuracy"].iloc[-1] <= table["robust_accuracy"].iloc[:-1].min())
    True
    """
    import pandas as pd
    import torch

    from .evaluate import _correct_subset, predict_labels

    components = _check_components(components)
    eps = check_float(eps, "eps", low=0.0)
    if isinstance(orders, str) and orders == "all":
        n_orders = math.factorial(len(components))
        if n_orders > _MAX_ALL_ORDERS:
            raise ValueError(f"orders='all' makes {n_orders} orders of {len(components)} components (at most "
                             f"{_MAX_ALL_ORDERS}); pass a list of orders, or fewer components.")
        orders = list(itertools.permutations(components))
    elif isinstance(orders, str) or not isinstance(orders, Sequence) or not orders:
        raise ValueError(f"orders must be 'all' or a non-empty list of orders; got {orders!r}.")
    attacks = [CompositeAttack(eps, components=components, order=o, **attack_params) for o in orders]
    bounds = attacks[0].bounds
    xc, yc = _correct_subset(model, X, y, bounds, attacks[0].batch_size)
    rows, survived = [], torch.ones_like(yc, dtype=torch.bool)
    for order, attack in zip(orders, attacks):
        kept = predict_labels(model, attack.perturb(model, xc, yc), batch_size=attack.batch_size) == yc
        survived &= kept
        rows.append((_order_label(attack.order), int(kept.sum())))
    rows.append(("worst", int(survived.sum())))
    n = int(yc.shape[0])
    return pd.DataFrame({"order": [r[0] for r in rows], "robust_accuracy": [r[1] / n for r in rows],
                         "n_robust": [r[1] for r in rows], "n_correct": n})
