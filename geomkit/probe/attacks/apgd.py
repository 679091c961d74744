"""Auto-PGD: PGD with momentum and a step size that adapts at checkpoints (Croce & Hein 2020).

Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks" (ICML), Algorithm 1. From a
random point on the sphere of radius eps, with step size ``eta = 2 eps``::

    z      = P(x_k + eta * s(grad f(x_k)))                 # s: sign (L-inf) / unit (L2)
    x_k+1  = P(x_k + a (z - x_k) + (1 - a)(x_k - x_k-1))   # a = 0.75 (1 at the first step)

At checkpoints (after ``0.22 N`` steps, then intervals shrinking by
``0.03 N`` down to ``0.06 N``) the step size is halved, and the iterate moved
back to the best point so far, for each input where (1) the loss rose in at
most ``rho = 75 %`` of the steps since the last checkpoint, or (2) the step
size was not halved at the last checkpoint and the best loss has not improved
since. An input counts as broken at the first iterate the model
misclassifies; that iterate is returned for it.

Losses: ``"ce"`` (APGD-CE), ``"dlr"`` (the difference-of-logits ratio,
APGD-DLR) and, in :class:`APGDT`, the targeted DLR loss against each of the
``n_target_classes`` most likely wrong classes in turn (APGD-T).
"""

from __future__ import annotations

from typing import Any

from ..._validation import check_float, check_int
from .base import (
    Attack,
    BatchContext,
    bcast,
    loss_and_grad,
    most_likely_targets,
    on_remaining,
    project,
    steepest,
)

__all__ = ["APGD", "APGDT", "checkpoints"]


def checkpoints(steps: int) -> list[int]:
    """The iterations (1-based) after which APGD checks its step size.

    Intervals of ``max(floor(0.22 N), 1)`` steps, each following one shorter by
    ``max(floor(0.03 N), 1)``, never below ``max(floor(0.06 N), 1)`` (the
    paper's ``p_j`` schedule on the integer grid of the reference code).

    Parameters
    ----------
    steps : int
        The iteration budget N.

    Returns
    -------
    list of int
        The checkpoint iterations, increasing, all <= ``steps``.

    Examples
    --------
    >>> checkpoints(100)
    [22, 41, 57, 70, 80, 87, 93, 99]
    """
    k = max(int(0.22 * steps), 1)
    decr, k_min = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at = [], 0
    while at + k <= steps:
        at += k
        out.append(at)
        k = max(k - decr, k_min)
    return out


class APGD(Attack):
    """Auto-PGD (APGD-CE / APGD-DLR), L-inf or L2 (Croce & Hein 2020).

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the ball (> 0).
    steps : int, default=100
        Iterations per restart (one forward-backward each).
    restarts : int, default=1
        Runs from new random starts, on the inputs not yet broken.
    rho : float, default=0.75
        Fraction of loss increases below which the step size is halved.
    momentum : float, default=0.75
        Weight ``a`` of the new step against the previous one.
    **kwargs
        ``norm``, ``loss`` ("ce", "dlr" or "margin"), ``bounds``, ``dtype``,
        ``batch_size``, ``random_state``, ``eot``: as in :class:`Attack`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(4, 3)
    >>> X = torch.rand(6, 4)
    >>> x_adv = APGD(0.05, steps=10, random_state=0).perturb(net, X, [0, 1, 2] * 2)
    >>> bool((x_adv - X).abs().max() <= 0.05 + 1e-7)
    True
    """

    name = "apgd"
    losses = ("ce", "dlr", "margin")
    supports_targeted = False

    def __init__(self, eps: Any = None, *, steps: int = 100, restarts: int = 1, rho: float = 0.75,
                 momentum: float = 0.75, **kwargs: Any):
        super().__init__(eps, **kwargs)
        self.steps = check_int(steps, "steps", low=1)
        self.restarts = check_int(restarts, "restarts", low=1)
        self.rho = check_float(rho, "rho", low=0.0, high=1.0)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0)

    # one run on a batch ------------------------------------------------------------
    def _start(self, ctx: BatchContext, x0, eps):
        """A random point on the sphere of radius eps (L-inf or L2), in the bounds."""
        import torch

        if self.norm == "linf":
            u = torch.empty_like(x0).uniform_(-1.0, 1.0, generator=ctx.generator)
            size = u.flatten(1).abs().amax(1)
        else:
            u = torch.empty_like(x0).normal_(generator=ctx.generator)
            size = u.flatten(1).norm(dim=1)
        x = x0 + u * bcast(eps / size.clamp_min(1e-12), x0)
        if self.bounds is not None:
            x.clamp_(self.bounds[0], self.bounds[1])
        return x

    def _run(self, ctx: BatchContext, x0, y, eps, t, loss):
        """One APGD run; returns (x_out, broken): the first misclassified iterate where
        broken, else the iterate of highest loss."""
        import torch

        n = x0.shape[0]
        x = self._start(ctx, x0, eps)
        values, logits, grad = loss_and_grad(ctx, loss, x, y, t)
        out = x.clone()
        broken = torch.zeros(n, dtype=torch.bool, device=x0.device)
        # Per-row state of the inputs still attacked; `row` maps them to rows of the batch, and
        # broken inputs are dropped (their first adversarial iterate is final).
        st = dict(row=torch.arange(n, device=x0.device), x0=x0, y=y, eps=eps, x=x, x_prev=x.clone(),
                  grad=grad, x_best=x.clone(), grad_best=grad.clone(), best=values.clone(),
                  last=values.clone(), eta=2.0 * eps, rises=torch.zeros(n, dtype=torch.long,
                                                                        device=x0.device),
                  best_at_check=values.clone(),
                  halved_at_check=torch.ones(n, dtype=torch.bool, device=x0.device))
        if t is not None:
            st["t"] = t
        k = max(int(0.22 * self.steps), 1)
        decr, k_min = max(int(0.03 * self.steps), 1), max(int(0.06 * self.steps), 1)
        since = 0
        now_broken = logits.argmax(1) != y
        for i in range(self.steps + 1):
            with torch.no_grad():
                if bool(now_broken.any()):
                    rows = st["row"][now_broken]
                    out[rows], broken[rows] = st["x"][now_broken], True
                    st = {key: v[~now_broken] for key, v in st.items()}
                    if st["row"].numel() == 0:
                        return out, broken
                if i == self.steps:
                    break
                x, x_prev = st["x"], st["x_prev"]
                a = self.momentum if i > 0 else 1.0
                z = project(x + bcast(st["eta"], x) * steepest(st["grad"], self.norm), st["x0"],
                            st["eps"], self.norm, self.bounds)
                x_new = x + a * (z - x) + (1.0 - a) * (x - x_prev)
                st["x_prev"], st["x"] = x, project(x_new, st["x0"], st["eps"], self.norm, self.bounds)
            values, logits, st["grad"] = loss_and_grad(ctx, loss, st["x"], st["y"], st.get("t"))
            with torch.no_grad():
                now_broken = logits.argmax(1) != st["y"]
                improved = values > st["best"]
                st["x_best"][improved] = st["x"][improved]
                st["grad_best"][improved] = st["grad"][improved]
                st["best"] = torch.where(improved, values, st["best"])
                st["rises"] += values > st["last"]
                st["last"] = values
                since += 1
                if since == k:  # a checkpoint: halve the step where progress stalled
                    oscillating = st["rises"] <= k * self.rho
                    stalled = ~st["halved_at_check"] & (st["best_at_check"] >= st["best"])
                    halve = oscillating | stalled
                    st["halved_at_check"], st["best_at_check"] = halve, st["best"].clone()
                    st["eta"] = torch.where(halve, st["eta"] / 2, st["eta"])
                    st["x"][halve] = st["x_best"][halve]
                    st["grad"][halve] = st["grad_best"][halve]
                    since, k = 0, max(k - decr, k_min)
                    st["rises"].zero_()
        out[st["row"]] = st["x_best"]
        return out, broken

    def _perturb_batch(self, ctx, x0, y, eps, t):
        out, broken = self._run(ctx, x0, y, eps, None, self.loss_fn)
        for _ in range(self.restarts - 1):
            if not on_remaining(out, broken, lambda i: self._run(ctx, x0[i], y[i], eps[i], None,
                                                                 self.loss_fn)):
                break
        return out


class APGDT(APGD):
    """APGD-T: APGD on the targeted DLR loss, against the most likely wrong classes in turn.

    For ``k = 1 .. n_target_classes`` the inputs not yet broken are attacked
    with target the ``k``-th most likely class other than the true one (on the
    clean input), ``restarts`` runs each (Croce & Hein 2020). An input counts
    as broken when it is misclassified (as any class).

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the ball (> 0).
    n_target_classes : int, default=9
        Target classes tried per input (at most ``n_classes - 1``).
    steps : int, default=100
        Iterations per run.
    restarts : int, default=1
        Runs per target class.
    loss : {"dlr", "ce", "margin"}, default="dlr"
        The targeted loss: Croce & Hein's targeted DLR, cross-entropy towards
        the target, or the target's logit margin.
    **kwargs
        ``norm``, ``rho``, ``momentum``, ``bounds``, ``dtype``, ``batch_size``,
        ``random_state``, ``eot``: as in :class:`APGD`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(4, 3)
    >>> X = torch.rand(6, 4)
    >>> x_adv = APGDT(0.05, steps=10, random_state=0).perturb(net, X, [0, 1, 2] * 2)
    >>> bool((x_adv - X).abs().max() <= 0.05 + 1e-7)
    True
    """

    name = "apgd-t"
    losses = ("dlr", "ce", "margin")
    supports_targeted = True

    def __init__(self, eps: Any = None, *, n_target_classes: int = 9, steps: int = 100,
                 restarts: int = 1, loss: str = "dlr", **kwargs: Any):
        kwargs.setdefault("targeted", True)
        super().__init__(eps, steps=steps, restarts=restarts, loss=loss, **kwargs)
        self.n_target_classes = check_int(n_target_classes, "n_target_classes", low=1)

    def _perturb_batch(self, ctx, x0, y, eps, t):
        import torch

        with torch.no_grad():
            clean = ctx.target(x0)
        out = broken = None
        n_targets = min(self.n_target_classes, ctx.n_classes - 1)
        for k in range(1, n_targets + 1):
            targets = most_likely_targets(clean, y, k) if t is None else t
            for _ in range(self.restarts):
                if out is None:
                    out, broken = self._run(ctx, x0, y, eps, targets, self.loss_fn)
                elif not on_remaining(out, broken, lambda i: self._run(
                        ctx, x0[i], y[i], eps[i], targets[i], self.loss_fn)):
                    return out
            if t is not None:
                break
        return out
