"""FAB-T: the targeted fast adaptive boundary attack (Croce & Hein 2020, ICML).

"Minimally distorted adversarial examples with a fast adaptive boundary
attack". For a target class ``t`` the decision function
``g(x) = z_t(x) - z_y(x)`` is linearized at the iterate ``x_k``; both the
iterate and the original input ``x_0`` are projected onto the hyperplane
``g = 0`` within the input box (minimal L-inf / L2 step ``d_k`` / ``d_0``), and
the next iterate is the biased mix::

    x_k+1 = clip((1 - a)(x_k + eta d_k) + a (x_0 + eta d_0)),
    a = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max)

with overshoot ``eta``. Whenever an iterate is adversarial it is recorded if
smaller than the best so far, and the iterate is pulled back towards ``x_0``
(``x_0 + beta (x_k - x_0)``). The attack searches the smallest perturbation;
it counts as a success at radius eps when that perturbation's norm is <= eps.
By default (``stop_at_eps``) an input leaves the search as soon as it is
broken within eps, which breaks the same inputs in fewer steps.
The projection onto the hyperplane within the box is solved exactly: the
constraint value is piecewise linear in the step length, so sorting the
coordinates' breakpoints gives the root (no bisection).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import check_float, check_int
from .base import Attack, bcast, lp_norms, most_likely_targets, on_remaining

__all__ = ["FAB", "project_hyperplane"]


def project_hyperplane(p, w, b, norm: str, bounds):
    """Smallest step ``d`` (L-inf or L2) with ``w . (p + d) = b`` and ``p + d`` in ``bounds``.

    Parameters
    ----------
    p, w : torch.Tensor of shape (n, d)
        Points and hyperplane normals.
    b : torch.Tensor of shape (n,)
        Offsets.
    norm : {"linf", "l2"}
        The norm minimized.
    bounds : (float, float) or None
        The box; where the hyperplane cannot be reached inside it, the step
        that gets closest is returned.

    Returns
    -------
    torch.Tensor of shape (n, d)
        The steps ``d``.

    Examples
    --------
    >>> import torch
    >>> d = project_hyperplane(torch.zeros(1, 2), torch.tensor([[1.0, 1.0]]), torch.tensor([1.0]),
    ...                        "linf", None)
    >>> d.tolist()
    [[0.5, 0.5]]
    """
    import torch

    r = b - (w * p).sum(1)
    sign = torch.sign(r)
    ws = w * sign[:, None]  # orient so that the required value r' = |r| >= 0
    r = r.abs()
    aw = ws.abs()
    if bounds is None:
        if norm == "linf":
            tau = r / aw.sum(1).clamp_min(1e-30)
            return tau[:, None] * torch.sign(ws)
        return (r / (ws * ws).sum(1).clamp_min(1e-30))[:, None] * ws
    lo, hi = bounds[0] - p, bounds[1] - p
    room = torch.where(ws > 0, hi, -lo).clamp_min(0)  # how far each coordinate can go
    if norm == "linf":
        brk = torch.where(aw > 0, room, torch.zeros_like(room))
        slope = aw
    else:
        brk = torch.where(aw > 0, room / aw.clamp_min(1e-30), torch.zeros_like(room))
        slope = aw * aw
    order = brk.argsort(1)
    brk_s, slope_s = brk.gather(1, order), slope.gather(1, order)
    gain = (aw * room).gather(1, order)  # value of a saturated coordinate
    # for the step between breakpoints j-1 and j: value = A_j + s * B_j
    A = torch.cumsum(gain, 1) - gain
    B = slope_s.flip(1).cumsum(1).flip(1)
    H = A + brk_s * B  # value at breakpoint j (nondecreasing in j)
    j = torch.searchsorted(H.contiguous(), r[:, None].contiguous()).squeeze(1)
    reachable = j < H.shape[1]
    jj = j.clamp_max(H.shape[1] - 1)[:, None]
    s = (r[:, None] - A.gather(1, jj)) / B.gather(1, jj).clamp_min(1e-30)
    s = torch.where(reachable[:, None], s, brk_s[:, -1:]).squeeze(1)
    step = torch.sign(ws) if norm == "linf" else ws
    return torch.minimum(torch.maximum(s[:, None] * step, lo), hi)


class FAB(Attack):
    """FAB-T: targeted minimal-norm attack, L-inf or L2 (Croce & Hein 2020).

    For ``k = 1 .. n_target_classes`` the inputs not yet broken at ``eps`` are
    attacked with target the ``k``-th most likely wrong class of the clean
    input. An input is broken when the smallest adversarial found has norm <= eps;
    others are returned unchanged.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius at which success is counted (> 0).
    n_target_classes : int, default=9
        Target classes tried (at most ``n_classes - 1``).
    steps : int, default=100
        Iterations per target (one forward-backward and one forward each).
    restarts : int, default=1
        Runs per target; runs after the first start from a random point at
        half the smallest norm found (at most eps).
    alpha_max : float, default=0.1
        Largest weight of the step from the original input.
    eta : float, default=1.05
        Overshoot of the projection.
    beta : float, default=0.9
        Backward step towards the input after a success.
    stop_at_eps : bool, default=True
        Stop searching an input once an adversarial within eps is found: the
        inputs broken at eps are the same, in fewer steps. ``False``: keep
        shrinking every perturbation for all ``steps`` (the smallest
        adversarial found, as a minimal-norm attack reports it).
    **kwargs
        ``norm``, ``bounds``, ``dtype``, ``batch_size``, ``random_state``: as in :class:`Attack`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(4, 3)
    >>> X = torch.rand(6, 4)
    >>> x_adv = FAB(0.05, steps=10).perturb(net, X, [0, 1, 2] * 2)
    >>> bool((x_adv - X).abs().max() <= 0.05 + 1e-7)
    True
    """

    name = "fab-t"
    losses = ("ce", "margin", "dlr")

    def __init__(self, eps: Any = None, *, n_target_classes: int = 9, steps: int = 100,
                 restarts: int = 1, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
                 stop_at_eps: bool = True, **kwargs: Any):
        kwargs.setdefault("targeted", True)
        super().__init__(eps, **kwargs)
        self.n_target_classes = check_int(n_target_classes, "n_target_classes", low=1)
        self.steps = check_int(steps, "steps", low=1)
        self.restarts = check_int(restarts, "restarts", low=1)
        self.alpha_max = check_float(alpha_max, "alpha_max", low=0.0, high=1.0)
        self.eta = check_float(eta, "eta", low=1.0)
        self.beta = check_float(beta, "beta", low=0.0, high=1.0)
        if not isinstance(stop_at_eps, (bool, np.bool_)):
            raise TypeError(f"stop_at_eps must be True or False; got {stop_at_eps!r}.")
        self.stop_at_eps = bool(stop_at_eps)

    def _run(self, ctx, x0, y, t, eps, random_start: bool):
        """Smallest adversarial found towards ``t``: (x_adv, its norm; inf where none).

        With ``stop_at_eps`` an input leaves the search once an adversarial within
        its eps is found. Each input's iterates depend on that input alone (the
        model is in eval mode and no random draw is made inside the loop), so
        dropping finished inputs changes no other input's search: the inputs
        broken at eps are the same, only the steps spent on them are saved.
        """
        import torch

        n = x0.shape[0]
        best = torch.full((n,), float("inf"), dtype=x0.dtype, device=x0.device)
        best_adv = x0.clone()
        x = x0.clone()
        if random_start:
            u = (torch.empty_like(x0).uniform_(-1, 1, generator=ctx.generator) if self.norm == "linf"
                 else torch.empty_like(x0).normal_(generator=ctx.generator))
            radius = torch.minimum(best, eps) * 0.5
            x = x0 + u * bcast(radius / lp_norms(u, self.norm).clamp_min(1e-12), x0)
            if self.bounds is not None:
                x.clamp_(self.bounds[0], self.bounds[1])
        # the inputs still searched: `act` maps them to rows of the batch
        act = torch.arange(n, device=x0.device)
        xa0, ya, ta = x0, y, t
        reach = eps * (1 + 1e-6)
        for _ in range(self.steps):
            m = act.numel()
            xr = x.detach().requires_grad_(True)
            z = ctx.target(xr)
            rows = torch.arange(m, device=x0.device)
            g = z[rows, ta] - z[rows, ya]
            (w,) = torch.autograd.grad(g.sum(), xr)
            with torch.no_grad():
                w = w.flatten(1)
                flat, flat0 = x.flatten(1), xa0.flatten(1)
                b = (w * flat).sum(1) - g.detach()
                d = project_hyperplane(torch.cat([flat, flat0]), torch.cat([w, w]), torch.cat([b, b]),
                                       self.norm, self.bounds)
                d1, d2 = d[:m], d[m:]
                a1 = lp_norms(d1, self.norm).clamp_min(1e-8)
                a2 = lp_norms(d2, self.norm).clamp_min(1e-8)
                alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max)[:, None]
                new = (flat + self.eta * d1) * (1 - alpha) + (flat0 + self.eta * d2) * alpha
                if self.bounds is not None:
                    new.clamp_(self.bounds[0], self.bounds[1])
                x = new.view_as(xa0)
                adv = ctx.target(x).argmax(1) != ya
                if not bool(adv.any()):
                    continue
                size = lp_norms(x - xa0, self.norm)
                better = adv & (size < best[act])
                best_adv[act[better]] = x[better]
                best[act[better]] = size[better]
                x = torch.where(bcast(adv, x), xa0 + (x - xa0) * self.beta, x)
                if self.stop_at_eps:
                    keep = best[act] > reach[act]
                    if not bool(keep.all()):
                        act, x, xa0, ya, ta = act[keep], x[keep], xa0[keep], ya[keep], ta[keep]
                        if act.numel() == 0:
                            break
        return best_adv, best

    def _perturb_batch(self, ctx, x0, y, eps, t):
        import torch

        with torch.no_grad():
            clean = ctx.target(x0)
        out = x0.clone()
        broken = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        n_targets = 1 if t is not None else min(self.n_target_classes, ctx.n_classes - 1)
        for k in range(1, n_targets + 1):
            targets = t if t is not None else most_likely_targets(clean, y, k)
            for r in range(self.restarts):
                def run(i, targets=targets, r=r):
                    adv, size = self._run(ctx, x0[i], y[i], targets[i], eps[i], r > 0)
                    return adv, size <= eps[i] * (1 + 1e-6)

                if not on_remaining(out, broken, run):
                    return out
        return out
