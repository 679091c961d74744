"""The :class:`Attack` base class and the gradient-ascent engine every iterative attack uses.

An attack is a small object: its parameters (threat model ``norm`` and ``eps``,
``loss``, ``targeted``, ``bounds``, ``dtype``, ``batch_size``,
``random_state`` and its own budget) are validated once, when it is made;
:meth:`Attack.perturb` takes the model as it is and leaves it so (eval mode and
parameter gradients off during the attack, flags restored afterwards, also on
error), checks the inputs, and hands each batch to the subclass's
``_perturb_batch``. The engine functions below (one forward-backward per
step, the steepest-ascent direction of a norm, the projection onto the ball
and the box, the random start) are shared by FGSM, PGD, APGD and FAB.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._params import RANDOM_STATE, validate_params
from ..._validation import check_float, check_int
from ._checks import (
    NORMS,
    _as_eps,
    _as_input,
    _as_labels,
    _check_batch_size,
    _check_bounds,
    _check_norm,
    _generator,
    _resolve_dtype,
    _seed,
    _slices,
    _Target,
)
from ._losses import loss_fn as _loss_fn

__all__ = ["Attack", "BatchContext"]


# ----------------------------------------------------------------------------- the engine
def bcast(v, x):
    """A per-input vector of shape (n,) viewed as (n, 1, ..., 1) to broadcast over ``x``."""
    return v.view((-1,) + (1,) * (x.ndim - 1))


def l2_norms(t):
    return t.flatten(1).norm(dim=1)


def lp_norms(t, norm: str):
    return t.flatten(1).abs().amax(1) if norm == "linf" else l2_norms(t)


def loss_and_grad(ctx: "BatchContext", loss, x, y, t=None):
    """Per-input loss, logits and input gradient at ``x`` (mean over ``ctx.eot`` draws).

    With ``eot > 1`` (expectation over transformation, Athalye et al. 2018) the
    gradient of a randomized forward is averaged over draws; the loss and logits
    returned are those of the last draw.
    """
    import torch

    x = x.detach().requires_grad_(True)
    grad = None
    for _ in range(ctx.eot):
        z = ctx.target(x)
        values = loss(z, y, t)
        g = torch.autograd.grad(values.sum(), x)[0]
        grad = g if grad is None else grad.add_(g)
    if ctx.eot > 1:
        grad.div_(ctx.eot)
    return values.detach(), z.detach(), grad


def steepest(grad, norm: str):
    """The unit-norm steepest-ascent direction of ``grad`` for the norm's dual.

    L-inf: ``sign(grad)``. L2: ``grad / ||grad||_2`` computed scale-free — the
    gradient is first divided by its largest entry, so a tiny but nonzero
    gradient (a confident model in float64, ~1e-16) still gives a full step;
    a zero gradient gives a zero step.
    """
    import torch

    if norm == "linf":
        return grad.sign()
    g = grad.flatten(1)
    scale = g.abs().amax(1, keepdim=True)
    g = g / torch.where(scale > 0, scale, torch.ones_like(scale))
    n = g.norm(dim=1, keepdim=True)
    return (g / torch.where(n > 0, n, torch.ones_like(n))).view_as(grad)


def project(x, x0, eps, norm: str, bounds) -> Any:
    """In place: ``x`` into the ``norm`` ball of radius ``eps`` (shape (n,)) around ``x0``,
    then into ``bounds``; returns ``x``."""
    import torch

    if norm == "linf":
        e = bcast(eps, x)
        torch.maximum(x, x0 - e, out=x)
        torch.minimum(x, x0 + e, out=x)
    else:
        x.sub_(x0)
        norms = l2_norms(x)
        factor = torch.where(norms > eps, eps / norms.clamp_min(1e-30), 1.0)
        x.mul_(bcast(factor, x)).add_(x0)
    if bounds is not None:
        x.clamp_(bounds[0], bounds[1])
    return x


def random_start(x0, eps, norm: str, bounds, gen):
    """Uniform in the L-inf ball; in the L2 ball a Gaussian direction with a radius uniform in
    [0, eps] (the convention of torchattacks' PGD / PGDL2, drawn in the same order, so one seed
    gives the same starts); clipped to the bounds."""
    import torch

    if norm == "linf":
        x = torch.empty_like(x0).uniform_(-1.0, 1.0, generator=gen).mul_(bcast(eps, x0)).add_(x0)
    else:
        d = torch.empty_like(x0).normal_(generator=gen)
        radius = torch.empty(x0.shape[0], dtype=x0.dtype, device=x0.device).uniform_(generator=gen)
        radius = radius.mul_(eps) / l2_norms(d).clamp_min(1e-30)
        x = d.mul_(bcast(radius, d)).add_(x0)
    if bounds is not None:
        x.clamp_(bounds[0], bounds[1])
    return x


def keep_best(best, best_score, candidate, candidate_score):
    """Per input, the candidate of largest score so far (in place in ``best``)."""
    import torch

    if best is None:
        return candidate, candidate_score
    better = candidate_score > best_score
    best[better] = candidate[better]
    return best, torch.where(better, candidate_score, best_score)


@dataclass
class BatchContext:
    """What an attack's ``_perturb_batch`` receives besides the batch itself.

    Parameters
    ----------
    target : callable
        The prepared model (eval mode, parameter gradients off, ``dtype``):
        ``target(x)`` returns logits.
    n_classes : int
        Number of logits.
    generator : torch.Generator
        Seeded from ``random_state`` once per :meth:`Attack.perturb` call.
    eot : int
        Forward-backward draws averaged per gradient (1: a deterministic model).

    Examples
    --------
    >>> BatchContext(target=None, n_classes=10, generator=None).eot
    1
    """

    target: Any
    n_classes: int
    generator: Any
    eot: int = 1


# ----------------------------------------------------------------------------- the base class
class Attack:
    """Base class of geomkit's attacks: validated parameters and a batched ``perturb``.

    A subclass sets the class attributes ``norms`` and ``losses`` (what it
    supports) and implements ``_perturb_batch(ctx, x0, y, eps, t)``: for a
    batch ``x0`` (n, ...) with true labels ``y`` (n,), radii ``eps`` (n,) and
    target labels ``t`` (n,) or None, return adversarial inputs inside the
    ball and the bounds. ``ctx`` is a :class:`BatchContext`. Register it with
    :func:`~geomkit.probe.attacks.register_attack` to make it available by
    name (``make_attack``, ``AdversarialRobustness(attacks=[...])``).

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the threat model's ball (> 0; an array gives one radius per
        input, >= 0). ``None``: given to each :meth:`perturb` call.
    norm : {"linf", "l2"}, default="linf"
        The threat model's norm (the subclass may support fewer).
    loss : str, default="ce"
        Objective the attack ascends (from the subclass's ``losses``).
    targeted : bool, default=False
        Push each input towards a target class instead of away from its own.
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid input range (inputs outside it are an error); ``None``: unbounded.
    dtype : None, "float32" or "float64"
        Precision of the model evaluation; ``None`` is the model's own.
    batch_size : int or None, default=None
        Inputs per forward / backward pass; ``None``: all at once.
    random_state : int, numpy RandomState / Generator or None
        Seeds the attack's randomness (a ``torch.Generator`` on the model's
        device, seeded afresh at each :meth:`perturb` call).
    eot : int, default=1
        Expectation over transformation: gradients averaged over this many
        forward passes (for models with a randomized forward).

    Examples
    --------
    >>> import torch
    >>> class OneStep(Attack):
    ...     name = "one-step"
    ...     def _perturb_batch(self, ctx, x0, y, eps, t):
    ...         values, _, grad = loss_and_grad(ctx, self.loss_fn, x0, y, t)
    ...         return project(x0 + bcast(eps, x0) * steepest(grad, self.norm), x0, eps,
    ...                        self.norm, self.bounds)
    >>> net = torch.nn.Linear(2, 2)
    >>> x_adv = OneStep(0.1).perturb(net, torch.full((3, 2), 0.5), [0, 1, 0])
    >>> round(float((x_adv - 0.5).abs().max()), 6)
    0.1
    """

    name: str = "attack"
    norms: tuple[str, ...] = NORMS
    losses: tuple[str, ...] = ("ce", "margin")
    supports_targeted: bool = True
    #: Whether the attack differentiates the model (False: gradient-free, a masking check).
    white_box: bool = True
    #: whether a scalar eps may be 0 (the legacy function forms allow it).
    _eps_low_inclusive: bool = False

    def __init__(
        self,
        eps: Any = None,
        *,
        norm: str = "linf",
        loss: str = "ce",
        targeted: bool = False,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        dtype: Any = None,
        batch_size: int | None = None,
        random_state: Any = None,
        eot: int = 1,
    ):
        self.eps = self._check_eps(eps)
        self.norm = _check_norm(norm, self.norms, self.name)
        self.loss = loss
        self.loss_fn = _loss_fn(loss, self.losses)
        if not isinstance(targeted, (bool, np.bool_)):
            raise TypeError(f"targeted must be True or False; got {targeted!r}.")
        if targeted and not self.supports_targeted:
            raise ValueError(f"targeted=True is not supported by the {self.name} attack.")
        self.targeted = bool(targeted)
        self.bounds = _check_bounds(bounds)
        if dtype is not None:
            _resolve_dtype(dtype, None)  # raises on a bad name
        self.dtype = dtype
        self.batch_size = _check_batch_size(batch_size)
        validate_params({"random_state": random_state}, {"random_state": [RANDOM_STATE]},
                        caller=type(self).__name__)
        self.random_state = random_state
        self.eot = check_int(eot, "eot", low=1)

    def _check_eps(self, eps: Any):
        if eps is None:
            return None
        if isinstance(eps, numbers.Real) and not isinstance(eps, bool):
            return check_float(eps, "eps", low=0.0, low_inclusive=self._eps_low_inclusive)
        return eps  # per-input radii: checked against the inputs in perturb

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(eps={self.eps!r}, norm={self.norm!r}, loss={self.loss!r}, "
                f"targeted={self.targeted})")

    def perturb(self, model: Any, X: Any, y: Any, *, eps: Any = None, target_labels: Any = None):
        """Adversarial versions of ``X`` for ``model``.

        Parameters
        ----------
        model : torch.nn.Module
            Returns logits of shape (n, n_classes). Left untouched.
        X : array-like or torch.Tensor of shape (n, ...)
            Inputs, inside ``bounds``.
        y : array-like of int of shape (n,)
            True class indices.
        eps : float, array-like of shape (n,) or None
            Overrides the attack's ``eps`` for this call (>= 0).
        target_labels : array-like of int of shape (n,) or None
            Target classes of a targeted attack; ``None``: the attack's own
            choice (the most likely wrong classes).

        Returns
        -------
        torch.Tensor of shape (n, ...)
            The adversarial inputs, on the model's device, in ``dtype``.
        """
        import torch

        target = _Target(model, self.dtype)
        x = _as_input(X, "X", target.device, target.dtype, self.bounds)
        labels = _as_labels(y, x.shape[0], target.device)
        eps = self.eps if eps is None else eps
        if eps is None:
            raise ValueError(f"eps is required: the {self.name} attack was made with eps=None.")
        eps_t = _as_eps(eps, x.shape[0], "eps", target.device, target.dtype)
        t = None
        if target_labels is not None:
            if not self.targeted:
                raise ValueError("target_labels is given but the attack is not targeted "
                                 "(make it with targeted=True).")
            t = _as_labels(target_labels, x.shape[0], target.device)
        gen = _generator(_seed(self.random_state), target.device)
        with target:
            n_classes = target.check(x, labels, targeted=self.targeted)
            if t is not None and int(t.max()) >= n_classes:
                raise ValueError(f"target_labels holds class index {int(t.max())} but the model "
                                 f"returns {n_classes} logits.")
            if t is not None and bool((t == labels).any()):
                raise ValueError("target_labels must differ from y for every input.")
            ctx = BatchContext(target, n_classes, gen, self.eot)
            parts = [self._perturb_batch(ctx, x[s], labels[s], eps_t[s], None if t is None else t[s])
                     for s in _slices(x.shape[0], self.batch_size)]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out.detach()

    def __call__(self, model: Any, X: Any, y: Any, **kwargs: Any):
        """Alias of :meth:`perturb`.

        Parameters
        ----------
        model, X, y
            As in :meth:`perturb`.
        **kwargs
            Passed to :meth:`perturb`.

        Returns
        -------
        torch.Tensor of shape (n, ...)
            The adversarial inputs.
        """
        return self.perturb(model, X, y, **kwargs)

    def _perturb_batch(self, ctx: BatchContext, x0, y, eps, t):  # pragma: no cover - abstract
        raise NotImplementedError


def most_likely_targets(logits, y, k: int):
    """Per input, the ``k``-th most likely class other than ``y`` (k = 1: the runner-up)."""
    masked = logits.scatter(1, y[:, None], float("-inf"))
    return masked.topk(k, dim=1).indices[:, k - 1]


def on_remaining(out, broken, run) -> bool:
    """Run ``run(todo) -> (adv, hit)`` on the inputs not yet broken and merge its successes into
    ``out`` / ``broken`` in place (restarts, targets, ensemble members); False if none was left."""
    todo = (~broken).nonzero().flatten()
    if todo.numel() == 0:
        return False
    adv, hit = run(todo)
    out[todo[hit]] = adv[hit]
    broken[todo[hit]] = True
    return True


def flipped(ctx: BatchContext, x, y):
    """Whether the model misclassifies each input of ``x`` (no gradient)."""
    import torch

    with torch.no_grad():
        return ctx.target(x).argmax(1) != y

