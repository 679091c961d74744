"""The AutoAttack "standard" ensemble (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square.

The members run in that order, each on the inputs that the previous ones did
not break; per input the first successful adversarial is kept (the worst case
over the members). The robust accuracy it reports is therefore never above
that of a member run alone on the same inputs with the same random draws —
and the gradient-free Square member catches what gradient masking hides.
"""

from __future__ import annotations

from typing import Any

from ..._validation import check_int
from .apgd import APGD, APGDT
from .base import Attack, flipped, on_remaining
from .fab import FAB
from .square import Square

__all__ = ["AutoAttack"]

MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square")


class AutoAttack(Attack):
    """AutoAttack "standard": APGD-CE, APGD-T, FAB-T and Square, worst case per input.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the ball (> 0).
    steps : int, default=100
        Iterations of APGD-CE, APGD-T (per target) and FAB-T (per target).
    n_target_classes : int, default=9
        Targets of APGD-T and FAB-T.
    n_queries : int, default=5000
        Queries of Square.
    members : sequence of str or None
        Subset of ("apgd-ce", "apgd-t", "fab-t", "square"), run in that
        order; ``None``: all four.
    **kwargs
        ``norm``, ``bounds``, ``dtype``, ``batch_size``, ``random_state``,
        ``eot``: as in :class:`Attack`, shared by the members.

    Attributes
    ----------
    members_ : dict of str to Attack
        The member attacks, in order.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> X = torch.rand(4, 1, 4, 4)
    >>> aa = AutoAttack(0.05, steps=5, n_target_classes=2, n_queries=10, random_state=0)
    >>> list(aa.members_)
    ['apgd-ce', 'apgd-t', 'fab-t', 'square']
    >>> bool((aa.perturb(net, X, [0, 1, 2, 0]) - X).abs().max() <= 0.05 + 1e-7)
    True
    """

    name = "autoattack"
    losses = ("ce",)
    supports_targeted = False

    def __init__(self, eps: Any = None, *, steps: int = 100, n_target_classes: int = 9,
                 n_queries: int = 5000, members: Any = None, **kwargs: Any):
        super().__init__(eps, **kwargs)
        self.steps = check_int(steps, "steps", low=1)
        self.n_target_classes = check_int(n_target_classes, "n_target_classes", low=1)
        self.n_queries = check_int(n_queries, "n_queries", low=1)
        if members is None:
            members = MEMBERS
        if isinstance(members, str) or not len(members) or any(m not in MEMBERS for m in members):
            raise ValueError(f"members must be a non-empty subset of {MEMBERS}; got {members!r}.")
        self.members = tuple(m for m in MEMBERS if m in members)
        common = dict(norm=self.norm, bounds=self.bounds, dtype=self.dtype, random_state=self.random_state,
                      eot=self.eot)
        make = {
            "apgd-ce": lambda: APGD(steps=steps, loss="ce", **common),
            "apgd-t": lambda: APGDT(steps=steps, n_target_classes=n_target_classes, **common),
            "fab-t": lambda: FAB(steps=steps, n_target_classes=n_target_classes, **common),
            "square": lambda: Square(n_queries=n_queries, **common),
        }
        self.members_ = {m: make[m]() for m in self.members}

    def _perturb_batch(self, ctx, x0, y, eps, t):
        first, *others = self.members_.values()
        out = first._perturb_batch(ctx, x0, y, eps, None)  # the default where nothing succeeds
        broken = flipped(ctx, out, y)
        for member in others:
            def run(i, member=member):
                adv = member._perturb_batch(ctx, x0[i], y[i], eps[i], None)
                return adv, flipped(ctx, adv, y[i])

            if not on_remaining(out, broken, run):
                break
        return out
