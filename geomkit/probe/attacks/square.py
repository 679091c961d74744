"""Square: a query-based black-box attack (Andriushchenko, Croce, Flammarion & Hein 2020, ECCV).

"Square attack: a query-efficient black-box adversarial attack via random
search". It never uses a gradient, so gradient masking cannot stop it: the
black-box member AutoAttack relies on to catch masked models.

L-inf: start from vertical stripes of ``+-eps``; at each query, a square
window of side ``s`` (random position, per input) of every channel is set to
``+-2 eps`` (one random sign per channel), the result is projected back onto
the ball and the box, and kept if it lowers the margin loss
``z_y - max_{j != y} z_j`` (or breaks the input). The fraction ``p`` of
pixels a window covers halves on the schedule of the paper (iterations 10, 50,
200, 500, 1000, 2000, 4000, 6000, 8000 of a 10 000-query budget, rescaled to
``n_queries``), from ``p_init = 0.8``.

L2: start from a grid of "meta pseudo-Gaussian" patches (concentric
rectangles of weight ``1 / k^2``, opposite signs in the two halves) scaled to
norm eps; at each query the perturbation inside one random window (odd side
>= 3) is replaced by a fresh patch plus the old content, and the mass of a
second window moved into it, so that the norm stays eps (the paper's
Algorithm 3). Windows are drawn once per query for the whole batch. Inputs must
be images (n, c, h, w), (n, h, w) or flat with a square number of features.
"""

from __future__ import annotations

import math
from typing import Any

from ..._validation import check_float, check_int
from .base import Attack, bcast, on_remaining

__all__ = ["Square", "p_schedule"]

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(iteration: int, n_queries: int, p_init: float = 0.8) -> float:
    """Fraction of the image a Square window covers at ``iteration`` (0-based).

    Parameters
    ----------
    iteration : int
        The query index.
    n_queries : int
        The budget; the paper's schedule for 10 000 queries is rescaled to it.
    p_init : float, default=0.8
        The starting fraction.

    Returns
    -------
    float
        ``p_init`` halved once per schedule point passed.

    Examples
    --------
    >>> p_schedule(0, 10000), p_schedule(11, 10000), p_schedule(600, 10000)
    (0.8, 0.4, 0.05)
    """
    it = int(iteration / n_queries * 10000)
    return p_init / 2 ** sum(it > h for h in _HALVINGS)


def _image_shape(x0):
    """(c, h, w) of the inputs, or a clear error."""
    shape = tuple(x0.shape[1:])
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (1, *shape)
    side = math.isqrt(shape[0])
    if len(shape) == 1 and side * side == shape[0]:
        return (1, side, side)
    raise ValueError(
        f"the square attack needs images: X of shape (n, c, h, w), (n, h, w) or (n, d) with d a "
        f"square number; got shape {(x0.shape[0], *shape)}."
    )


class Square(Attack):
    """Square attack, L-inf or L2 (Andriushchenko et al. 2020): random search with square windows.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the ball (> 0).
    n_queries : int, default=5000
        Model queries per input (one forward each); broken inputs stop early.
    p_init : float, default=0.8
        Starting fraction of the image a window covers.
    restarts : int, default=1
        Runs on the inputs not yet broken.
    loss : {"margin"}, default="margin"
        The only loss of the random search: the true class's logit margin.
    **kwargs
        ``norm``, ``bounds``, ``dtype``, ``batch_size``,
        ``random_state``: as in :class:`Attack`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> X = torch.rand(4, 1, 4, 4)
    >>> x_adv = Square(0.05, n_queries=20, random_state=0).perturb(net, X, [0, 1, 2, 0])
    >>> bool((x_adv - X).abs().max() <= 0.05 + 1e-7)
    True
    """

    name = "square"
    losses = ("margin",)
    supports_targeted = False
    white_box = False

    def __init__(self, eps: Any = None, *, n_queries: int = 5000, p_init: float = 0.8,
                 restarts: int = 1, loss: str = "margin", **kwargs: Any):
        super().__init__(eps, loss=loss, **kwargs)
        self.n_queries = check_int(n_queries, "n_queries", low=1)
        self.p_init = check_float(p_init, "p_init", low=0.0, high=1.0, low_inclusive=False)
        self.restarts = check_int(restarts, "restarts", low=1)

    def _margin(self, ctx, x, y):
        import torch

        with torch.no_grad():
            z = ctx.target(x)
        z_y = z.gather(1, y[:, None]).squeeze(1)
        return z_y - z.scatter(1, y[:, None], float("-inf")).amax(1)

    def _sign(self, ctx, shape, like):
        import torch

        return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(
            0.5, generator=ctx.generator).mul_(2).sub_(1)

    def _run(self, ctx, x0, y, eps):
        if self.norm == "l2":
            return self._run_l2(ctx, x0, y, eps)
        return self._run_linf(ctx, x0, y, eps)

    def _patch(self, ctx, s: int, like):
        """An s x s meta pseudo-Gaussian patch of unit L2 norm (randomly transposed)."""
        import torch

        def rectangles(a: int, b: int):
            d = torch.zeros(a, b, dtype=like.dtype, device=like.device)
            ca, cb = a // 2, b // 2
            for k in range(max(ca, cb) + 1):
                d[max(ca - k, 0):min(ca + k + 1, a), max(cb - k, 0):min(cb + k + 1, b)] += 1.0 / (k + 1) ** 2
            return d / d.norm()

        top = s // 2
        patch = torch.cat([rectangles(top, s), -rectangles(s - top, s)]) if top else rectangles(s, s)
        patch = patch / patch.norm()
        flip = torch.rand(1, generator=ctx.generator, device=like.device)
        return patch.T if bool(flip > 0.5) else patch

    def _run_l2(self, ctx, x0, y, eps):
        import torch

        n = x0.shape[0]
        c, h, w = _image_shape(x0)
        img0 = x0.reshape(n, c, h, w)
        e = bcast(eps, img0)
        box = self.bounds if self.bounds is not None else (-float("inf"), float("inf"))

        def norms(d):
            return d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)

        def candidate(delta, x):
            return (x + delta * e_l / norms(delta).clamp_min(1e-12)).clamp(*box)

        s0 = max(h // 5, 1)
        delta = torch.zeros_like(img0)
        start = (h - 5 * s0) // 2, (w - 5 * s0) // 2
        for i in range(start[0], h - s0 + 1, s0):
            for j in range(start[1], w - s0 + 1, s0):
                delta[:, :, i:i + s0, j:j + s0] += self._patch(ctx, s0, img0) * self._sign(
                    ctx, (n, c, 1, 1), img0)
        e_l = e
        best = candidate(delta, img0)
        loss = self._margin(ctx, best.view_as(x0), y)
        for it in range(self.n_queries - 1):
            live = (loss > 0).nonzero().flatten()
            if live.numel() == 0:
                break
            x_l, e_l = img0[live], e[live]
            d = best[live] - x_l
            p = p_schedule(it, self.n_queries, self.p_init)
            s = max(int(round(math.sqrt(p * h * w))), 3)
            s = min(s + 1 - s % 2, h, w)  # odd, inside the image
            r1, c1, r2, c2 = (int(torch.randint(0, k + 1, (1,), generator=ctx.generator,
                                                device=x0.device)) for k in (h - s, w - s, h - s, w - s))
            old = d[:, :, r1:r1 + s, c1:c1 + s]
            old_norm = old.flatten(2).norm(dim=2)[..., None, None]
            both = torch.zeros_like(d)
            both[:, :, r1:r1 + s, c1:c1 + s] = 1
            both[:, :, r2:r2 + s, c2:c2 + s] = 1
            budget = ((e_l ** 2 - norms(d) ** 2).clamp_min(0) / c + norms(d * both) ** 2).sqrt()
            new = self._patch(ctx, s, d) * self._sign(ctx, (live.numel(), c, 1, 1), d)
            new = new + old / (old_norm + 1e-12)
            new = new / new.flatten(2).norm(dim=2)[..., None, None].clamp_min(1e-12) * budget
            d = d.clone()
            d[:, :, r2:r2 + s, c2:c2 + s] = 0
            d[:, :, r1:r1 + s, c1:c1 + s] = new
            cand = candidate(d, x_l)
            new_loss = self._margin(ctx, cand.view((live.numel(), *x0.shape[1:])), y[live])
            better = (new_loss < loss[live]) | (new_loss <= 0)
            idx = live[better]
            best[idx] = cand[better]
            loss[idx] = new_loss[better]
        return best.view_as(x0), loss <= 0

    def _run_linf(self, ctx, x0, y, eps):
        import torch

        n = x0.shape[0]
        c, h, w = _image_shape(x0)
        img0 = x0.reshape(n, c, h, w)
        e = bcast(eps, img0)
        lo, hi = img0 - e, img0 + e
        if self.bounds is not None:
            lo.clamp_(min=self.bounds[0])
            hi.clamp_(max=self.bounds[1])
        best = torch.minimum(torch.maximum(img0 + e * self._sign(ctx, (n, c, 1, w), img0), lo), hi)
        loss = self._margin(ctx, best.view_as(x0), y)
        rows = torch.arange(h, device=x0.device)
        cols = torch.arange(w, device=x0.device)
        for i in range(self.n_queries - 1):
            live = (loss > 0).nonzero().flatten()
            if live.numel() == 0:
                break
            p = p_schedule(i, self.n_queries, self.p_init)
            s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
            m = live.numel()
            top = torch.randint(0, h - s + 1, (m,), generator=ctx.generator,
                                device=x0.device) if h > s else torch.zeros(m, dtype=torch.long,
                                                                               device=x0.device)
            left = torch.randint(0, w - s + 1, (m,), generator=ctx.generator,
                                 device=x0.device) if w > s else torch.zeros(m, dtype=torch.long,
                                                                                device=x0.device)
            in_h = (rows >= top[:, None]) & (rows < top[:, None] + s)
            in_w = (cols >= left[:, None]) & (cols < left[:, None] + s)
            window = (in_h[:, None, :, None] & in_w[:, None, None, :]).to(x0.dtype)
            signs = self._sign(ctx, (m, c, 1, 1), x0) * 2 * e[live]
            cand = best[live] + window * signs
            cand = torch.minimum(torch.maximum(cand, lo[live]), hi[live])
            new_loss = self._margin(ctx, cand.view((m, *x0.shape[1:])), y[live])
            better = (new_loss < loss[live]) | (new_loss <= 0)
            idx = live[better]
            best[idx] = cand[better]
            loss[idx] = new_loss[better]
        return best.view_as(x0), loss <= 0

    def _perturb_batch(self, ctx, x0, y, eps, t):
        out, broken = self._run(ctx, x0, y, eps)
        for _ in range(self.restarts - 1):
            if not on_remaining(out, broken, lambda i: self._run(ctx, x0[i], y[i], eps[i])):
                break
        return out
