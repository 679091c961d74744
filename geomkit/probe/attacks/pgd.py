"""FGSM and PGD: signed / normalized gradient steps, projected onto the eps ball.

* :class:`FGSM` / :func:`fgsm` — one step of size eps up the loss gradient
  (Goodfellow, Shlens, Szegedy 2015, "Explaining and harnessing adversarial
  examples").
* :class:`PGD` / :func:`pgd` — projected gradient ascent from a random start,
  with restarts (Madry et al. 2018, "Towards deep learning models resistant to
  adversarial attacks"), in an L-inf or L2 ball, inside the input bounds;
  ``targeted=True`` descends towards a target class (by default the most
  likely wrong one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._validation import check_int
from ._checks import _as_eps
from ._losses import margin
from .base import (
    Attack,
    bcast,
    keep_best,
    loss_and_grad,
    most_likely_targets,
    project,
    random_start,
    steepest,
)

__all__ = ["PGD", "FGSM", "pgd", "fgsm", "STEP_FACTOR"]

# Madry et al. 2018: a step of 2.5 eps / steps lets PGD reach the ball's border
# and move along it within the step budget.
STEP_FACTOR = 2.5


class PGD(Attack):
    """Projected gradient ascent from a random start, with restarts (Madry et al. 2018).

    From a random start in the eps-ball (L-inf: each coordinate uniform in
    ``[-eps, eps]``; L2: a Gaussian direction at a radius uniform in
    ``[0, eps]``, as torchattacks' ``PGDL2``), ``steps`` times: step
    ``step_size * sign(grad)`` (L-inf) or ``step_size * grad / ||grad||_2``
    (L2, normalized scale-free), project back onto the eps-ball, clip to
    ``bounds``. With ``restarts > 1`` the run is repeated from new random
    starts and per input the result of largest logit margin is kept.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the ball.
    steps : int, default=20
        Gradient steps per restart.
    step_size : float, array-like of shape (n,) or None
        ``None``: ``2.5 * eps / steps``.
    restarts : int, default=1
        Runs from independent random starts.
    random_start : bool, default=True
        Start at a random point of the ball (else at the input).
    **kwargs
        ``norm``, ``loss`` ("ce" or "margin"), ``targeted``, ``bounds``,
        ``dtype``, ``batch_size``, ``random_state``, ``eot``: as in :class:`Attack`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(4, 3)
    >>> X = torch.rand(5, 4)
    >>> x_adv = PGD(0.05, steps=10, random_state=0).perturb(net, X, [0, 1, 2, 0, 1])
    >>> bool((x_adv - X).abs().max() <= 0.05 + 1e-7)
    True
    """

    name = "pgd"
    _eps_low_inclusive = True

    def __init__(self, eps: Any = None, *, steps: int = 20, step_size: Any = None,
                 restarts: int = 1, random_start: bool = True, **kwargs: Any):
        super().__init__(eps, **kwargs)
        self.steps = check_int(steps, "steps", low=1)
        self.step_size = step_size
        self.restarts = check_int(restarts, "restarts", low=1)
        self.random_start = bool(random_start)

    def _perturb_batch(self, ctx, x0, y, eps, t):
        import torch

        if self.targeted and t is None:
            with torch.no_grad():
                t = most_likely_targets(ctx.target(x0), y, 1)
        if self.step_size is None:
            step = eps * (STEP_FACTOR / self.steps)
        else:
            step = _as_eps(self.step_size, x0.shape[0], "step_size", x0.device, x0.dtype)
        best = best_margin = None
        for _ in range(self.restarts):
            if self.random_start:
                start = random_start(x0, eps, self.norm, self.bounds, ctx.generator)
            else:
                start = x0.clone()
            adv = self._ascent(ctx, x0, y, t, eps, bcast(step, x0), project(start, x0, eps, self.norm,
                                                                            self.bounds))
            if self.restarts == 1:
                return adv
            with torch.no_grad():
                best, best_margin = keep_best(best, best_margin, adv, margin(ctx.target(adv), y))
        return best

    def _ascent(self, ctx, x0, y, t, eps, step, x):
        """``steps`` projected ascent steps from ``x`` (a tensor we own, updated in place)."""
        import torch

        for _ in range(self.steps):
            _, _, grad = loss_and_grad(ctx, self.loss_fn, x, y, t)
            with torch.no_grad():
                x.addcmul_(steepest(grad, self.norm), step)
                project(x, x0, eps, self.norm, self.bounds)
        return x


class FGSM(PGD):
    """Fast gradient (sign) method: one step of size ``eps`` up the loss gradient.

    Goodfellow, Shlens & Szegedy 2015: ``x + eps * sign(grad_x L)`` for
    ``norm="linf"``, ``x + eps * grad / ||grad||_2`` for ``norm="l2"``, then
    clipped to ``bounds``. For a linear classifier the L-inf step lowers the
    true-class margin by exactly ``eps * ||w_y - w_j||_1``.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Step size and radius.
    **kwargs
        ``norm``, ``loss``, ``targeted``, ``bounds``, ``dtype``,
        ``batch_size``, ``eot``: as in :class:`Attack`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> x_adv = FGSM(0.1).perturb(net, torch.full((3, 2), 0.5), [0, 1, 0])
    >>> round(float((x_adv - 0.5).abs().max()), 6)
    0.1
    """

    name = "fgsm"

    def __init__(self, eps: Any = None, **kwargs: Any):
        super().__init__(eps, steps=1, restarts=1, random_start=False, **kwargs)

    def _perturb_batch(self, ctx, x0, y, eps, t):
        import torch

        if self.targeted and t is None:
            with torch.no_grad():
                t = most_likely_targets(ctx.target(x0), y, 1)
        return self._ascent(ctx, x0, y, t, eps, bcast(eps, x0), x0.clone())


# ----------------------------------------------------------------------------- function forms
def fgsm(
    model: Any,
    X: Any,
    y: Any,
    eps: float | Sequence[float],
    *,
    norm: str = "linf",
    loss: str = "ce",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    dtype: Any = None,
    batch_size: int | None = None,
):
    """Fast gradient (sign) method: one step of size ``eps`` up the loss gradient.

    Goodfellow, Shlens & Szegedy 2015: ``x + eps * sign(grad_x L)`` for
    ``norm="linf"``, ``x + eps * grad / ||grad||_2`` for ``norm="l2"``, then
    clipped to ``bounds``. For a linear classifier the L-inf step lowers the
    true-class margin by exactly ``eps * ||w_y - w_j||_1``.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left untouched.
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs, inside ``bounds``.
    y : array-like of int of shape (n,)
        True class indices.
    eps : float or array-like of shape (n,)
        Perturbation size (>= 0), one for all inputs or one per input.
    norm : {"linf", "l2"}, default="linf"
    loss : {"ce", "margin"}, default="ce"
        Cross-entropy from ``log_softmax`` of the logits, or the logit margin
        (:func:`margin`).
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid input range; ``None`` for unbounded inputs.
    dtype : None, "float32" or "float64"
        Precision of the model evaluation; ``None`` is the model's own.
    batch_size : int or None, default=None
        Inputs per forward / backward pass; ``None``: all at once.

    Returns
    -------
    torch.Tensor of shape (n, ...)
        The adversarial inputs, on the model's device, in ``dtype``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> x_adv = fgsm(net, torch.full((3, 2), 0.5), [0, 1, 0], eps=0.1)
    >>> float((x_adv - 0.5).abs().max())  # doctest: +ELLIPSIS
    0.1...
    """
    attack = FGSM(norm=norm, loss=loss, bounds=bounds, dtype=dtype, batch_size=batch_size)
    return attack.perturb(model, X, y, eps=eps)


def pgd(
    model: Any,
    X: Any,
    y: Any,
    eps: float | Sequence[float],
    *,
    norm: str = "linf",
    steps: int = 20,
    step_size: float | Sequence[float] | None = None,
    restarts: int = 1,
    random_start: bool = True,
    loss: str = "ce",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    dtype: Any = None,
    batch_size: int | None = None,
    random_state: Any = None,
):
    """Projected gradient descent on the loss, from a random start (Madry et al. 2018).

    From a random start in the eps-ball (L-inf: each coordinate uniform in
    ``[-eps, eps]``; L2: a Gaussian direction at a radius uniform in
    ``[0, eps]``, as torchattacks' ``PGDL2``), ``steps`` times:
    step ``step_size * sign(grad)`` (L-inf) or ``step_size * grad / ||grad||_2``
    (L2), project back onto the eps-ball around the input, clip to
    ``bounds``. With ``restarts > 1`` the whole run is repeated from new
    random starts and, per input, the result with the largest logit margin is
    kept (a success if any restart succeeded).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (n, n_classes). Left untouched.
    X : array-like or torch.Tensor of shape (n, ...)
    y : array-like of int of shape (n,)
    eps : float or array-like of shape (n,)
        Radius of the ball (>= 0), for all inputs or per input.
    norm : {"linf", "l2"}, default="linf"
    steps : int, default=20
    step_size : float, array-like of shape (n,) or None
        ``None``: ``2.5 * eps / steps`` (Madry et al.).
    restarts : int, default=1
    random_start : bool, default=True
    loss : {"ce", "margin"}, default="ce"
    bounds : (float, float) or None, default=(0.0, 1.0)
    dtype : None, "float32" or "float64"
    batch_size : int or None, default=None
    random_state : int, numpy RandomState / Generator or None
        Seeds the random starts (a ``torch.Generator`` on the model's device:
        an int seed gives the same starts as ``torch.manual_seed(seed)`` does
        for torchattacks). The same seed and ``batch_size`` give the same result.

    Returns
    -------
    torch.Tensor of shape (n, ...)
        The adversarial inputs, on the model's device, in ``dtype``.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = torch.rand(5, 4)
    >>> x_adv = pgd(net, X, [0, 1, 2, 0, 1], eps=0.05, steps=10, random_state=0)
    >>> bool((x_adv - X).abs().max() <= 0.05 + 1e-7)
    True
    """
    attack = PGD(steps=steps, step_size=step_size, restarts=restarts, random_start=random_start,
                 norm=norm, loss=loss, bounds=bounds, dtype=dtype, batch_size=batch_size,
                 random_state=random_state)
    return attack.perturb(model, X, y, eps=eps)


