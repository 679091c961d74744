"""Gradient-free baseline: random noise of norm exactly eps.

A white-box attack weaker than random noise of the same norm is masked
(Carlini et al. 2019, "On evaluating adversarial robustness").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._validation import check_int, check_option
from ._losses import margin
from .base import Attack, bcast, keep_best, l2_norms

__all__ = ["NoiseAttack", "noise_attack"]


class NoiseAttack(Attack):
    """Random noise of norm exactly ``eps``; of ``n_draws`` draws the one of largest margin.

    Each draw is uniform on ``[-1, 1]`` per coordinate or standard Gaussian,
    rescaled to L-inf or L2 norm ``eps``, added to the input and clipped to
    ``bounds``.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Norm of the noise.
    distribution : {"uniform", "gaussian"}, default="uniform"
        Distribution of the draws before rescaling.
    n_draws : int, default=1
        Draws per input; the one of largest logit margin is kept.
    **kwargs
        ``norm``, ``bounds``, ``dtype``, ``batch_size``, ``random_state``: as in :class:`Attack`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> x_adv = NoiseAttack(0.1, random_state=0).perturb(net, torch.full((2, 3), 0.5), [0, 1])
    >>> [round(v, 4) for v in (x_adv - 0.5).abs().amax(1).tolist()]
    [0.1, 0.1]
    """

    name = "noise"
    supports_targeted = False
    _eps_low_inclusive = True
    white_box = False

    def __init__(self, eps: Any = None, *, distribution: str = "uniform", n_draws: int = 1,
                 **kwargs: Any):
        super().__init__(eps, **kwargs)
        self.distribution = check_option(distribution, "distribution", ("uniform", "gaussian"))
        self.n_draws = check_int(n_draws, "n_draws", low=1)

    def _perturb_batch(self, ctx, x0, y, eps, t):
        import torch

        best = best_margin = None
        with torch.no_grad():
            for _ in range(self.n_draws):
                d = torch.empty_like(x0)
                if self.distribution == "uniform":
                    d.uniform_(-1.0, 1.0, generator=ctx.generator)
                else:
                    d.normal_(generator=ctx.generator)
                size = d.flatten(1).abs().amax(1) if self.norm == "linf" else l2_norms(d)
                adv = d.mul_(bcast(eps / size.clamp_min(1e-30), d)).add_(x0)
                if self.bounds is not None:
                    adv.clamp_(self.bounds[0], self.bounds[1])
                best, best_margin = keep_best(best, best_margin, adv, margin(ctx.target(adv), y))
        return best


def noise_attack(
    model: Any,
    X: Any,
    y: Any,
    eps: float | Sequence[float],
    *,
    norm: str = "linf",
    distribution: str = "uniform",
    n_draws: int = 1,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    dtype: Any = None,
    batch_size: int | None = None,
    random_state: Any = None,
):
    """Gradient-free baseline: random noise of norm exactly ``eps``.

    Each draw is uniform on ``[-1, 1]`` per coordinate or standard Gaussian,
    rescaled to L-inf or L2 norm ``eps``, added to the input and clipped to
    ``bounds``. Of ``n_draws`` draws, per input the one with the largest logit
    margin is kept (a success if any draw flips the prediction). A white-box
    attack weaker than this is masked.

    Parameters
    ----------
    model, X, y, eps, norm, bounds, dtype, batch_size, random_state
        As in :func:`~geomkit.probe.attacks.pgd.pgd`.
    distribution : {"uniform", "gaussian"}, default="uniform"
    n_draws : int, default=1

    Returns
    -------
    torch.Tensor of shape (n, ...)

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> x_adv = noise_attack(net, torch.full((4, 3), 0.5), [0, 1, 0, 1], eps=0.1, random_state=0)
    >>> [round(v, 4) for v in (x_adv - 0.5).abs().amax(1).tolist()]
    [0.1, 0.1, 0.1, 0.1]
    """
    attack = NoiseAttack(distribution=distribution, n_draws=n_draws, norm=norm, bounds=bounds,
                         dtype=dtype, batch_size=batch_size, random_state=random_state)
    return attack.perturb(model, X, y, eps=eps)
