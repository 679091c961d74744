"""Evaluating a model under attack: predictions, input gradients, robust accuracy, critical eps.

:func:`zero_gradient_fraction` counts inputs whose input gradient is exactly
zero — the numerical vanishing that made saturated networks look robust
(Brendel & Bethge 2017, arXiv 1704.01547). :func:`critical_eps` finds, per
input, the smallest eps that flips the prediction (bisection over eps);
:func:`robust_accuracy` is the fraction of correctly classified inputs an
attack does not flip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..._validation import check_float, check_int, check_option
from ._checks import (
    _as_input,
    _as_labels,
    _check_batch_size,
    _check_bounds,
    _check_norm,
    _seed,
    _slices,
    _Target,
)
from ._losses import loss_fn as _loss_fn

__all__ = ["predict_labels", "input_gradient", "zero_gradient_fraction", "robust_accuracy",
           "critical_eps"]


def predict_labels(
    model: Any,
    X: Any,
    *,
    bounds: tuple[float, float] | None = None,
    dtype: Any = None,
    batch_size: int | None = None,
):
    """Predicted classes ``argmax(logits)`` in eval mode, as a tensor on the model's device.

    Parameters
    ----------
    model, X, dtype, batch_size
        As in :func:`~geomkit.probe.attacks.pgd.pgd`.
    bounds : (float, float) or None, default=None
        If given, a ValueError is raised when ``X`` has values outside them.

    Returns
    -------
    torch.Tensor of int64, shape (n,)
        The predicted class of each input.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> predict_labels(net, torch.zeros(3, 2)).shape
    torch.Size([3])
    """
    import torch

    target = _Target(model, dtype)
    x = _as_input(X, "X", target.device, target.dtype, _check_bounds(bounds))
    with target, torch.no_grad():
        target.check(x)
        return torch.cat(
            [target(x[s]).argmax(1) for s in _slices(x.shape[0], _check_batch_size(batch_size))]
        )


def input_gradient(
    model: Any,
    X: Any,
    y: Any,
    *,
    loss: str = "ce",
    dtype: Any = None,
    batch_size: int | None = None,
):
    """Gradient of each input's loss with respect to that input.

    Parameters
    ----------
    model, X, y, loss, dtype, batch_size
        As in :func:`~geomkit.probe.attacks.pgd.pgd`.

    Returns
    -------
    torch.Tensor of shape (n, ...)
        ``d loss_i / d x_i``, in ``dtype`` (``None``: the model's).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    >>> input_gradient(net, torch.zeros(1, 2), [0], loss="margin").tolist()
    [[-1.0, 2.0]]
    """
    import torch

    target = _Target(model, dtype)
    x = _as_input(X, "X", target.device, target.dtype, None)
    labels = _as_labels(y, x.shape[0], target.device)
    loss_fn = _loss_fn(loss)
    parts = []
    with target:
        target.check(x, labels)
        for s in _slices(x.shape[0], _check_batch_size(batch_size)):
            xb = x[s].clone().requires_grad_(True)
            parts.append(torch.autograd.grad(loss_fn(target(xb), labels[s]).sum(), xb)[0])
    return torch.cat(parts)


def zero_gradient_fraction(
    model: Any,
    X: Any,
    y: Any,
    *,
    loss: str = "ce",
    dtype: Any = None,
    batch_size: int | None = None,
) -> float:
    """Fraction of inputs whose input gradient of the loss is exactly zero.

    An exactly zero gradient stops every gradient attack (``sign(0) = 0``):
    the numerical vanishing that made saturated networks look robust
    (Brendel & Bethge 2017). With ``loss="ce"`` in float32 it happens once the
    softmax of the true class rounds to 1 and the others underflow; the
    margin loss or float64 often restores the gradient.

    Parameters
    ----------
    model, X, y, loss, dtype, batch_size
        As in :func:`~geomkit.probe.attacks.pgd.pgd`.

    Returns
    -------
    float in [0, 1]
        The fraction of inputs whose gradient has no non-zero entry.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1e4, 0.0], [0.0, 1e4]]))
    >>> X, y = torch.tensor([[1.0, 0.0]]), [0]
    >>> zero_gradient_fraction(net, X, y), zero_gradient_fraction(net, X, y, loss="margin")
    (1.0, 0.0)
    """
    grad = input_gradient(model, X, y, loss=loss, dtype=dtype, batch_size=batch_size)
    return float((grad.flatten(1) == 0).all(1).double().mean())


def _correct_subset(model: Any, X: Any, y: Any, bounds: Any, batch_size: int | None):
    """The validated inputs the model classifies correctly, and their labels: ``(xc, yc)``.

    Robustness is measured on these only. ``bounds`` are already checked
    (``_check_bounds``); raises ValueError when no input is classified correctly.
    """
    with _Target(model) as target:
        x = _as_input(X, "X", target.device, target.dtype, bounds)
        labels = _as_labels(y, x.shape[0], target.device)
    correct = predict_labels(model, x, batch_size=batch_size) == labels
    if not bool(correct.any()):
        raise ValueError("the model classifies none of the inputs correctly; robustness is measured on "
                         "correctly classified inputs only.")
    return x[correct], labels[correct]


def robust_accuracy(
    model: Any,
    X: Any,
    y: Any,
    eps: float,
    *,
    attack: str = "pgd",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int | None = None,
    **attack_params: Any,
) -> float:
    """Fraction of the correctly classified inputs that the attack does not flip.

    The plain-function form of one cell of
    ``robust_accuracy_`` of :class:`geomkit.AdversarialRobustness`: inputs the model
    misclassifies are left out (the fraction is conditional on clean
    correctness, as in Holzhausen et al. 2024).

    Parameters
    ----------
    model, X, y, bounds, batch_size
        As in :func:`~geomkit.probe.attacks.pgd.pgd`.
    eps : float
    attack : str, default="pgd"
        A registered attack name (:func:`~geomkit.probe.attacks.make_attack`:
        "fgsm", "pgd", "apgd-ce", "autoattack", ...).
    **attack_params
        Passed to the attack (``norm``, ``steps``, ``loss``, ``random_state``, ...).

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.eye(2))
    >>> X, y = [[0.6, 0.2], [0.2, 0.9]], [0, 1]   # critical eps 0.2 and 0.35
    >>> robust_accuracy(net, X, y, 0.3, attack="fgsm")
    0.5
    """
    from .registry import make_attack

    attack_ = make_attack(attack, bounds=bounds, batch_size=batch_size, **attack_params)
    xc, yc = _correct_subset(model, X, y, _check_bounds(bounds), batch_size)
    adv = attack_.perturb(model, xc, yc, eps=eps)
    return float((predict_labels(model, adv, batch_size=batch_size) == yc).double().mean())


# ----------------------------------------------------------------------------- critical eps
def _bisect(flipped_at: Callable, lo, hi, n_iter: int):
    """Per input, shrink [lo, hi] (flipped at hi, not at lo) ``n_iter`` times; return hi.

    The midpoint is geometric once ``lo > 0`` (eps spans decades), ``hi / 2`` before.
    """
    import torch

    for _ in range(n_iter):
        mid = torch.where(lo > 0, (lo * hi).sqrt(), hi / 2)
        flipped = flipped_at(mid)
        hi = torch.where(flipped, mid, hi)
        lo = torch.where(flipped, lo, mid)
    return hi


def critical_eps(
    model: Any,
    X: Any,
    y: Any,
    *,
    attack: str = "pgd",
    norm: str = "linf",
    eps_max: float | None = None,
    n_iter: int = 20,
    loss: str = "ce",
    steps: int = 20,
    restarts: int = 1,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    dtype: Any = None,
    batch_size: int | None = None,
    random_state: Any = None,
) -> np.ndarray:
    """Per input, the smallest eps at which the attack flips the prediction.

    Bisection over eps in ``[0, eps_max]`` (Holzhausen et al. 2024 report this
    per-image critical eps on correctly classified inputs): at each of
    ``n_iter`` rounds every input is attacked at its own midpoint (``hi / 2``
    while no lower bracket exists, then the geometric mean); a flip moves the
    upper end down, no flip the lower end up. PGD uses ``step = 2.5 eps /
    steps`` and the same random starts (seed) in every round.

    Parameters
    ----------
    model, X, y, norm, loss, steps, restarts, bounds, dtype, batch_size, random_state
        As in :func:`~geomkit.probe.attacks.pgd.pgd`.
    attack : {"pgd", "fgsm"}, default="pgd"
    eps_max : float or None
        Upper end of the search. ``None``: the whole input box — ``high - low``
        (L-inf) or ``(high - low) * sqrt(n_features)`` (L2); required when
        ``bounds=None``.
    n_iter : int, default=20
        Bisection rounds; the result is an upper bound within a factor
        ``2 ** -n_iter`` of ``eps_max`` (arithmetic phase) or of the bracket's
        log-width (geometric phase).

    Returns
    -------
    ndarray of float64, shape (n,)
        The critical eps (an upper bound of the true one, found by the
        attack); ``inf`` where even ``eps_max`` does not flip the prediction;
        ``nan`` for inputs the model already misclassifies.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> # margin 0.4, ||w_0 - w_1||_1 = 2: FGSM flips at eps = 0.2
    >>> crit = critical_eps(net, [[0.6, 0.2]], [0], attack="fgsm", bounds=None, eps_max=1.0,
    ...                     n_iter=30)
    >>> round(float(crit[0]), 6)
    0.2
    """
    import torch

    from .pgd import fgsm, pgd

    check_option(attack, "attack", ("pgd", "fgsm"))
    n_iter = check_int(n_iter, "n_iter", low=1)
    steps = check_int(steps, "steps", low=1)
    bounds_ = _check_bounds(bounds)
    norm_ = _check_norm(norm)
    batch_size = _check_batch_size(batch_size)
    target = _Target(model, dtype)
    x = _as_input(X, "X", target.device, target.dtype, bounds_)
    labels = _as_labels(y, x.shape[0], target.device)
    if eps_max is None:
        if bounds_ is None:
            raise ValueError("eps_max is required when bounds=None (no input box to span).")
        width = bounds_[1] - bounds_[0]
        eps_max = width if norm_ == "linf" else width * float(np.sqrt(x[0].numel()))
    eps_max = check_float(eps_max, "eps_max", low=0.0, low_inclusive=False)
    seed = _seed(random_state)
    common = dict(norm=norm_, loss=loss, bounds=bounds_, dtype=target.dtype, batch_size=batch_size)

    def flipped(idx, eps_vec):
        if attack == "fgsm":
            adv = fgsm(model, x[idx], labels[idx], eps_vec, **common)
        else:
            adv = pgd(model, x[idx], labels[idx], eps_vec, steps=steps, restarts=restarts,
                      random_state=seed, **common)
        return predict_labels(model, adv, dtype=target.dtype, batch_size=batch_size) != labels[idx]

    out = torch.full((x.shape[0],), float("nan"), dtype=torch.float64, device=target.device)
    correct = predict_labels(model, x, dtype=target.dtype, batch_size=batch_size) == labels
    idx = torch.nonzero(correct).flatten()
    if idx.numel():
        hi = torch.full((idx.numel(),), eps_max, dtype=target.dtype, device=target.device)
        breakable = flipped(idx, hi)
        out[idx[~breakable]] = float("inf")
        idx, hi = idx[breakable], hi[breakable]
        if idx.numel():
            found = _bisect(lambda e: flipped(idx, e), torch.zeros_like(hi), hi, n_iter)
            out[idx] = found.double()
    return out.cpu().numpy()
