"""Adversarial attacks on PyTorch classifiers, and the baselines that expose gradient masking.

White-box attacks follow the input gradient of a loss computed from the
model's **logits** (never from probabilities):

* :func:`fgsm` — one signed-gradient step (Goodfellow, Shlens, Szegedy 2015,
  "Explaining and harnessing adversarial examples"); for ``norm="l2"`` one step
  along the normalized gradient.
* :func:`pgd` — projected gradient ascent with a random start and restarts
  (Madry et al. 2018, "Towards deep learning models resistant to adversarial
  attacks"), in an L-infinity or L2 ball, inside the input bounds.

Losses: ``"ce"``, the cross-entropy ``-log_softmax(z)[y]``, and ``"margin"``,
the logit margin ``max_{j != y} z_j - z_y`` of Carlini & Wagner (2017), which
keeps its gradient when the softmax saturates. ``dtype=torch.float64``
evaluates the model in double precision (without changing it).

Gradient-free baselines (:func:`noise_attack`: uniform / Gaussian noise of the
same norm; :func:`transfer_attack`: PGD on a surrogate model) must never beat
the white-box attacks; when they do, the white-box gradients are masked
(Athalye, Carlini, Wagner 2018, "Obfuscated gradients give a false sense of
security"; Carlini et al. 2019, "On evaluating adversarial robustness").
:func:`zero_gradient_fraction` counts inputs whose input gradient is exactly
zero — the numerical vanishing that made saturated networks look robust
(Brendel & Bethge 2017, arXiv 1704.01547). :func:`critical_eps` finds, per
input, the smallest eps that flips the prediction (bisection over eps);
:func:`robust_accuracy` is the fraction of correctly classified inputs an
attack does not flip.

Every function takes the model as it is and leaves it so: it runs in eval mode
with parameter gradients switched off during the attack, and the train / eval
flags and ``requires_grad`` flags are restored afterwards (also on error).
Attacks run on the model's device, in batches of ``batch_size`` inputs.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .._backend import model_device
from .._validation import as_float_array, check_float, check_int, check_labels, check_option
from .recorder import ModelState

__all__ = [
    "fgsm",
    "pgd",
    "noise_attack",
    "transfer_attack",
    "train_surrogate",
    "critical_eps",
    "robust_accuracy",
    "predict_labels",
    "input_gradient",
    "zero_gradient_fraction",
    "margin",
    "NORMS",
    "LOSSES",
]

NORMS = ("linf", "l2")
LOSSES = ("ce", "margin")
# Madry et al. 2018: a step of 2.5 eps / steps lets PGD reach the ball's border
# and move along it within the step budget.
STEP_FACTOR = 2.5
_PROBE_ROWS = 64


# ----------------------------------------------------------------------------- validation
def _check_norm(norm: Any) -> str:
    if isinstance(norm, numbers.Real) and not isinstance(norm, bool):
        norm = {float("inf"): "linf", 2.0: "l2"}.get(float(norm), norm)
    if isinstance(norm, str):
        norm = {"inf": "linf", "l_inf": "linf", "linf": "linf", "2": "l2", "l2": "l2"}.get(
            norm.lower(), norm
        )
    return check_option(norm, "norm", NORMS)


def _check_bounds(bounds: Any) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise TypeError(
            f"bounds must be None (unbounded inputs) or a pair (low, high); got {bounds!r}."
        ) from None
    lo = check_float(lo, "bounds[0]")
    hi = check_float(hi, "bounds[1]")
    if not lo < hi:
        raise ValueError(f"bounds must satisfy low < high; got ({lo}, {hi}).")
    return lo, hi


def _model_dtype(model: Any):
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _resolve_dtype(dtype: Any, model: Any):
    import torch

    if dtype is None:
        return _model_dtype(model)
    names = {"float32": torch.float32, "float64": torch.float64, "double": torch.float64}
    if isinstance(dtype, str) and dtype in names:
        return names[dtype]
    if dtype in (torch.float32, torch.float64):
        return dtype
    if dtype in (np.float32, np.float64) or (isinstance(dtype, np.dtype) and dtype.kind == "f"):
        return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    raise ValueError(
        f"dtype must be None (the model's dtype), 'float32', 'float64' or a torch float dtype; "
        f"got {dtype!r}."
    )


def _as_input(X: Any, name: str, device, dtype, bounds: tuple[float, float] | None):
    """``X`` as a tensor of ``dtype`` on ``device`` (a view when it already is one: never
    modified in place), with a batch axis, finite and inside ``bounds``."""
    import torch

    if isinstance(X, torch.Tensor):
        if X.is_complex() or X.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor; got dtype {X.dtype}.")
        x = X.detach().to(device=device, dtype=dtype)
    else:
        x = torch.as_tensor(as_float_array(X, name), dtype=dtype, device=device)
    if x.ndim < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(
            f"{name} must have shape (n_inputs, ...) with at least one input and one "
            f"feature; got shape {tuple(x.shape)}."
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if bounds is not None:
        xmin, xmax = (float(v) for v in torch.aminmax(x))
        if xmin < bounds[0] or xmax > bounds[1]:
            raise ValueError(
                f"{name} has values in [{xmin:.6g}, {xmax:.6g}], outside bounds=({bounds[0]:g}, "
                f"{bounds[1]:g}); rescale the inputs, declare the bounds they live in, or pass "
                "bounds=None for unbounded inputs."
            )
    return x


def _as_labels(y: Any, n: int, device):
    import torch

    arr = check_labels(y, n, "y")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"y must hold integer class indices 0..n_classes-1 (the model's logit columns); "
            f"got dtype {arr.dtype}."
        )
    if arr.min() < 0:
        raise ValueError(f"y must hold class indices >= 0; got minimum {arr.min()}.")
    return torch.as_tensor(arr, dtype=torch.long, device=device)


def _as_eps(eps: Any, n: int, name: str, device, dtype):
    """``eps`` (a number or one value per input, >= 0) as a tensor of shape (n,)."""
    import torch

    if isinstance(eps, numbers.Real) and not isinstance(eps, bool):
        return torch.full((n,), check_float(eps, name, low=0.0), dtype=dtype, device=device)
    arr = as_float_array(eps, name, ndim=(0, 1))
    if arr.ndim == 0:
        return _as_eps(float(arr), n, name, device, dtype)
    if arr.shape[0] != n:
        raise ValueError(
            f"{name} must be a number or hold one value per input ({n}); got {arr.shape[0]}."
        )
    if arr.min() < 0:
        raise ValueError(f"{name} must be >= 0; got minimum {arr.min()}.")
    return torch.as_tensor(arr, dtype=dtype, device=device)


def _seed(random_state: Any) -> int:
    """An integer torch seed: ``random_state`` itself if it is one, else drawn from it."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**62))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**62))
    raise TypeError(
        "random_state must be None, an int, a numpy RandomState or Generator; "
        f"got {random_state!r}."
    )


def _generator(seed: int, device):
    import torch

    return torch.Generator(device=device).manual_seed(seed)


def _slices(n: int, batch_size: int | None) -> Iterator[slice]:
    if batch_size is None:
        yield slice(0, n)
        return
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _check_batch_size(batch_size: Any) -> int | None:
    return None if batch_size is None else check_int(batch_size, "batch_size", low=1)


# ----------------------------------------------------------------------------- the model
class _Target:
    """A model prepared for attacks: eval mode, parameter gradients off, optional dtype.

    A context manager; on exit the model's train / eval and ``requires_grad``
    flags are restored. Another dtype than the model's is evaluated through
    :func:`torch.func.functional_call` with converted copies of the parameters
    and buffers, so the model itself is never cast.
    """

    def __init__(self, model: Any, dtype: Any = None):
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
        self.model = model
        self.device = model_device(model)
        self.dtype = _resolve_dtype(dtype, model)
        self._tensors: dict | None = None
        self._state: ModelState | None = None

    def __enter__(self) -> "_Target":
        self._state = ModelState(self.model)
        try:
            self.model.eval()
            for p in self.model.parameters():
                p.requires_grad_(False)
            if self.dtype != _model_dtype(self.model):
                named = list(self.model.named_parameters()) + list(self.model.named_buffers())
                self._tensors = {
                    k: (v.detach().to(self.dtype) if v.is_floating_point() else v) for k, v in named
                }
        except BaseException:
            self._state.restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._tensors = None
        self._state.restore()

    def __call__(self, x):
        if self._tensors is None:
            return self.model(x)
        from torch.func import functional_call

        return functional_call(self.model, self._tensors, (x,))

    def check(self, x, y=None) -> int:
        """Forward a few inputs: check the output is (n, n_classes) logits; return n_classes."""
        import torch

        with torch.no_grad():
            z = self(x[:_PROBE_ROWS])
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] < 2:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                "the model must return logits of shape (n_inputs, n_classes) with n_classes >= 2; "
                f"it returned {got}."
            )
        n_classes = z.shape[1]
        if y is not None and int(y.max()) >= n_classes:
            raise ValueError(
                f"y holds class index {int(y.max())} but the model returns {n_classes} logits."
            )
        if bool((z >= 0).all()) and float((z.sum(1) - 1).abs().max()) < 1e-3:
            warnings.warn(
                "the model's outputs are non-negative and sum to 1 along the classes: it seems to "
                "return probabilities, but attacks need logits — gradients through a softmax "
                "saturate and mask the attack. Remove the final softmax (log-probabilities are "
                "fine).",
                UserWarning,
                stacklevel=3,
            )
        return n_classes


# ----------------------------------------------------------------------------- losses
def margin(logits, y):
    """Per-input logit margin ``max_{j != y} z_j - z_y`` (positive = misclassified).

    The Carlini & Wagner (2017, "Towards evaluating the robustness of neural
    networks") objective without its clamp: its gradient is a difference of
    two logit gradients, which does not vanish when the softmax saturates.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, n_classes)
    y : torch.Tensor of int64, shape (n,)

    Returns
    -------
    torch.Tensor of shape (n,)
    """
    idx = y[:, None]
    z_true = logits.gather(1, idx).squeeze(1)
    z_other = logits.scatter(1, idx, float("-inf")).amax(1)
    return z_other - z_true


def _ce_sum(logits, y):
    import torch.nn.functional as F

    # cross_entropy is nll_loss(log_softmax(logits)): stable, from the logits. A sum
    # (not a mean) keeps each input's gradient independent of the batch size.
    return F.cross_entropy(logits, y, reduction="sum")


def _margin_sum(logits, y):
    return margin(logits, y).sum()


def _loss_fn(loss: str) -> Callable:
    return {"ce": _ce_sum, "margin": _margin_sum}[check_option(loss, "loss", LOSSES)]


# ----------------------------------------------------------------------------- the engine
def _bcast(v, x):
    """A per-input vector of shape (n,) viewed as (n, 1, ..., 1) to broadcast over ``x``."""
    return v.view((-1,) + (1,) * (x.ndim - 1))


def _l2_norms(t):
    return t.flatten(1).norm(dim=1)


def _ascent(target, loss_fn, x0, y, eps, step, steps, norm, bounds, start):
    """``steps`` steps of projected gradient ascent from ``start`` (a tensor we own).

    ``eps`` and ``step`` are (n, 1, ..., 1) tensors. The loop does one forward
    and one input-gradient backward per step; the update and projection are
    in-place and outside autograd.
    """
    import torch

    x = start
    if norm == "linf":
        lower, upper = x0 - eps, x0 + eps
        if bounds is not None:
            lower.clamp_(min=bounds[0])
            upper.clamp_(max=bounds[1])
        torch.clamp(x, lower, upper, out=x)
        for _ in range(steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_fn(target(x), y), x)
            x.requires_grad_(False)
            with torch.no_grad():
                x.addcmul_(grad.sign_(), step)
                torch.clamp(x, lower, upper, out=x)
        return x
    eps_flat = eps.flatten()
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(target(x), y), x)
        x.requires_grad_(False)
        with torch.no_grad():
            # Normalized step; a zero gradient gives a zero step (as torchattacks).
            x.addcmul_(grad, step / _bcast(_l2_norms(grad).add_(1e-12), x))
            _project_l2(x, x0, eps_flat, bounds)
    return x


def _project_l2(x, x0, eps_flat, bounds) -> None:
    """In place: ``x`` into the L2 ball of radius eps around ``x0``, then into the bounds."""
    import torch

    x.sub_(x0)
    norms = _l2_norms(x)
    factor = torch.where(norms > eps_flat, eps_flat / norms.clamp_min(1e-30), 1.0)
    x.mul_(_bcast(factor, x)).add_(x0)
    if bounds is not None:
        x.clamp_(bounds[0], bounds[1])


def _random_start(x0, eps, norm, bounds, gen):
    """Uniform in the L-inf ball; in the L2 ball a Gaussian direction with a radius
    uniform in [0, eps] (the convention of torchattacks' PGDL2, drawn in the same
    order, so one seed gives the same starts); clipped to the bounds."""
    import torch

    if norm == "linf":
        x = torch.empty_like(x0).uniform_(-1.0, 1.0, generator=gen).mul_(eps).add_(x0)
    else:
        d = torch.empty_like(x0).normal_(generator=gen)
        radius = torch.empty(x0.shape[0], dtype=x0.dtype, device=x0.device).uniform_(generator=gen)
        radius = radius.mul_(eps.flatten()) / _l2_norms(d).clamp_min(1e-30)
        x = d.mul_(_bcast(radius, d)).add_(x0)
    if bounds is not None:
        x.clamp_(bounds[0], bounds[1])
    return x


def _pgd_batch(target, loss_fn, x0, y, eps, step, steps, norm, bounds, restarts, random_start, gen):
    """PGD on one batch; with restarts, per input the restart of largest final margin."""
    import torch

    eps, step = _bcast(eps, x0), _bcast(step, x0)
    best = best_margin = None
    for _ in range(restarts):
        start = _random_start(x0, eps, norm, bounds, gen) if random_start else x0.clone()
        adv = _ascent(target, loss_fn, x0, y, eps, step, steps, norm, bounds, start)
        if restarts == 1:
            return adv
        with torch.no_grad():
            best, best_margin = _keep_best(best, best_margin, adv, margin(target(adv), y))
    return best


def _keep_best(best, best_margin, candidate, candidate_margin):
    """Per input, the candidate of largest logit margin so far (in place in ``best``)."""
    import torch

    if best is None:
        return candidate, candidate_margin
    better = candidate_margin > best_margin
    best[better] = candidate[better]
    return best, torch.where(better, candidate_margin, best_margin)


def _prepare(model, X, y, eps, *, norm, bounds, dtype, batch_size, name_eps="eps"):
    """Common validation: (target (not entered), x, labels, eps, norm, bounds, batch_size)."""
    norm = _check_norm(norm)
    bounds = _check_bounds(bounds)
    batch_size = _check_batch_size(batch_size)
    target = _Target(model, dtype)
    x = _as_input(X, "X", target.device, target.dtype, bounds)
    labels = _as_labels(y, x.shape[0], target.device)
    eps_t = _as_eps(eps, x.shape[0], name_eps, target.device, target.dtype)
    return target, x, labels, eps_t, norm, bounds, batch_size


def _gradient_attack(
    model, X, y, eps, *, norm, steps, step_size, restarts, random_start, loss, bounds, dtype,
    batch_size, random_state,
):
    import torch

    target, x, labels, eps_t, norm, bounds, batch_size = _prepare(
        model, X, y, eps, norm=norm, bounds=bounds, dtype=dtype, batch_size=batch_size
    )
    steps = check_int(steps, "steps", low=1)
    restarts = check_int(restarts, "restarts", low=1)
    loss_fn = _loss_fn(loss)
    if step_size is None:
        step_t = eps_t * (STEP_FACTOR / steps)
    else:
        step_t = _as_eps(step_size, x.shape[0], "step_size", target.device, target.dtype)
    gen = _generator(_seed(random_state), target.device) if random_start else None
    with target:
        target.check(x, labels)
        parts = [
            _pgd_batch(target, loss_fn, x[s], labels[s], eps_t[s], step_t[s], steps, norm,
                       bounds, restarts, random_start, gen)
            for s in _slices(x.shape[0], batch_size)
        ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


# ----------------------------------------------------------------------------- public attacks
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
    return _gradient_attack(
        model, X, y, eps, norm=norm, steps=1, step_size=eps, restarts=1, random_start=False,
        loss=loss, bounds=bounds, dtype=dtype, batch_size=batch_size, random_state=None,
    )


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
    return _gradient_attack(
        model, X, y, eps, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
        random_start=bool(random_start), loss=loss, bounds=bounds, dtype=dtype,
        batch_size=batch_size, random_state=random_state,
    )


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
        As in :func:`pgd`.
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
    import torch

    target, x, labels, eps_t, norm, bounds, batch_size = _prepare(
        model, X, y, eps, norm=norm, bounds=bounds, dtype=dtype, batch_size=batch_size
    )
    check_option(distribution, "distribution", ("uniform", "gaussian"))
    n_draws = check_int(n_draws, "n_draws", low=1)
    gen = _generator(_seed(random_state), target.device)
    parts = []
    with target, torch.no_grad():
        target.check(x, labels)
        for s in _slices(x.shape[0], batch_size):
            x0, yb, eb = x[s], labels[s], eps_t[s]
            best = best_margin = None
            for _ in range(n_draws):
                d = torch.empty_like(x0)
                if distribution == "uniform":
                    d.uniform_(-1.0, 1.0, generator=gen)
                else:
                    d.normal_(generator=gen)
                size = d.flatten(1).abs().amax(1) if norm == "linf" else _l2_norms(d)
                adv = d.mul_(_bcast(eb / size.clamp_min(1e-30), d)).add_(x0)
                if bounds is not None:
                    adv.clamp_(bounds[0], bounds[1])
                best, best_margin = _keep_best(best, best_margin, adv, margin(target(adv), yb))
            parts.append(best)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def train_surrogate(
    X: Any,
    y: Any,
    *,
    hidden: Sequence[int] = (256,),
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 64,
    n_classes: int | None = None,
    device: Any = None,
    random_state: Any = 0,
):
    """Train a plain ReLU MLP classifier with Adam: the default transfer-attack surrogate.

    Inputs are flattened; the network is ``Flatten -> [Linear -> ReLU] * len(hidden)
    -> Linear(n_classes)``, trained with the cross-entropy for ``epochs``
    passes over shuffled mini-batches. Deterministic for an int
    ``random_state`` on the CPU; the global torch RNG is left as it was.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n, ...)
    y : array-like of int of shape (n,)
        Labels to imitate (for a transfer attack: the target model's predictions).
    hidden : sequence of int, default=(256,)
    epochs : int, default=20
    lr : float, default=1e-3
    batch_size : int, default=64
    n_classes : int or None
        Output size; ``None``: ``max(y) + 1``.
    device : None, str or torch.device
    random_state : int, RandomState, Generator or None, default=0

    Returns
    -------
    torch.nn.Sequential
        The trained surrogate, in eval mode.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((20, 2)), np.ones((20, 2))]
    >>> net = train_surrogate(X, np.r_[np.zeros(20, int), np.ones(20, int)], epochs=30)
    >>> predict_labels(net, X).tolist() == [0] * 20 + [1] * 20
    True
    """
    import torch
    import torch.nn.functional as F

    from .._backend import resolve_device

    dev = resolve_device(device)
    x = _as_input(X, "X", dev, torch.float32, None).flatten(1)
    labels = _as_labels(y, x.shape[0], dev)
    hidden = [check_int(h, "hidden", low=1) for h in hidden]
    epochs = check_int(epochs, "epochs", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    lr = check_float(lr, "lr", low=0.0, low_inclusive=False)
    n_out = int(labels.max()) + 1 if n_classes is None else check_int(n_classes, "n_classes", low=2)
    seed = _seed(random_state)
    sizes = [x.shape[1], *hidden]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list = [torch.nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(sizes[-1], max(n_out, 2)))
        net = torch.nn.Sequential(*layers).to(dev)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen).to(dev)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[idx]), labels[idx]).backward()
            opt.step()
    net.eval()
    for p in net.parameters():
        p.grad = None
    return net


def transfer_attack(
    model: Any,
    X: Any,
    y: Any,
    eps: float | Sequence[float],
    *,
    surrogate: Any = None,
    norm: str = "linf",
    steps: int = 20,
    step_size: float | Sequence[float] | None = None,
    restarts: int = 1,
    loss: str = "ce",
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int | None = None,
    random_state: Any = None,
    surrogate_params: dict | None = None,
):
    """Black-box transfer attack: PGD on a surrogate model, to be evaluated on ``model``.

    The surrogate is the user's model or, if ``surrogate=None``, a plain MLP
    trained by :func:`train_surrogate` to imitate ``model``'s predictions on
    ``X`` (black-box label queries only). The attack never differentiates
    ``model``, so masked gradients of ``model`` cannot stop it.

    Parameters
    ----------
    model : torch.nn.Module
        The target (only queried for its labels when a surrogate is trained).
    X, y, eps, norm, steps, step_size, restarts, loss, bounds, batch_size, random_state
        As in :func:`pgd` (applied to the surrogate).
    surrogate : torch.nn.Module or None
        Returns logits over the same classes as ``model``.
    surrogate_params : dict or None
        Keyword arguments of :func:`train_surrogate` when it is trained here.

    Returns
    -------
    torch.Tensor of shape (n, ...)
        Adversarial inputs, on ``model``'s device.

    Examples
    --------
    >>> import torch
    >>> target = torch.nn.Linear(2, 2)
    >>> x_adv = transfer_attack(target, torch.rand(8, 2), [0, 1] * 4, eps=0.1, surrogate=target,
    ...                         random_state=0)
    >>> tuple(x_adv.shape)
    (8, 2)
    """
    if surrogate is None:
        labels = predict_labels(model, X, bounds=bounds, batch_size=batch_size)
        with _Target(model) as target:
            n_classes = target.check(_as_input(X, "X", target.device, target.dtype, None))
        params = {"random_state": random_state, "n_classes": n_classes, **(surrogate_params or {})}
        surrogate = train_surrogate(X, labels.cpu().numpy(), device=model_device(model), **params)
    adv = pgd(
        surrogate, X, y, eps, norm=norm, steps=steps, step_size=step_size, restarts=restarts,
        loss=loss, bounds=bounds, dtype="float32", batch_size=batch_size, random_state=random_state,
    )
    return adv.to(model_device(model))


# ----------------------------------------------------------------------------- evaluation
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
        As in :func:`pgd`.
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
        As in :func:`pgd`.

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
            parts.append(torch.autograd.grad(loss_fn(target(xb), labels[s]), xb)[0])
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
        As in :func:`pgd`.

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
        As in :func:`pgd`.
    eps : float
    attack : {"pgd", "fgsm", "noise", "transfer"}, default="pgd"
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
    fn = {"pgd": pgd, "fgsm": fgsm, "noise": noise_attack, "transfer": transfer_attack}[
        check_option(attack, "attack", ("pgd", "fgsm", "noise", "transfer"))
    ]
    with _Target(model) as target:
        x = _as_input(X, "X", target.device, target.dtype, _check_bounds(bounds))
        labels = _as_labels(y, x.shape[0], target.device)
    correct = predict_labels(model, x, batch_size=batch_size) == labels
    if not bool(correct.any()):
        raise ValueError("the model classifies none of the inputs correctly.")
    xc, yc = x[correct], labels[correct]
    adv = fn(model, xc, yc, eps, bounds=bounds, batch_size=batch_size, **attack_params)
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
        As in :func:`pgd`.
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
