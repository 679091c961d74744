"""Black-box transfer attack: PGD on a surrogate model, evaluated on the target.

The attack never differentiates the target, so masked gradients of the
target cannot stop it (Athalye, Carlini & Wagner 2018; Papernot et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...train.surrogate import train_surrogate
from ._checks import _as_input, _Target, model_device
from .base import Attack
from .evaluate import predict_labels
from .pgd import PGD

__all__ = ["TransferAttack", "transfer_attack", "train_surrogate"]


class TransferAttack(Attack):
    """PGD on a surrogate model; the target model is only queried for labels.

    Parameters
    ----------
    eps : float, array-like of shape (n,) or None
        Radius of the ball.
    surrogate : torch.nn.Module or None
        Returns logits over the same classes as the target. ``None``: a ReLU
        MLP trained by :func:`~geomkit.train.surrogate.train_surrogate` on the
        attacked inputs with the target's predicted labels, at each call.
    surrogate_params : dict or None
        Keyword arguments of that training.
    steps : int, default=20
        PGD steps on the surrogate.
    step_size : float or None
        ``None``: ``2.5 eps / steps``.
    restarts : int, default=1
        PGD restarts.
    **kwargs
        ``norm``, ``loss``, ``bounds``, ``batch_size``, ``random_state``: as in :class:`Attack`.

    Examples
    --------
    >>> import torch
    >>> target = torch.nn.Linear(2, 2)
    >>> attack = TransferAttack(0.1, surrogate=target, random_state=0)
    >>> tuple(attack.perturb(target, torch.rand(8, 2), [0, 1] * 4).shape)
    (8, 2)
    """

    name = "transfer"
    supports_targeted = False
    _eps_low_inclusive = True
    white_box = False

    def __init__(self, eps: Any = None, *, surrogate: Any = None, surrogate_params: dict | None = None,
                 steps: int = 20, step_size: Any = None, restarts: int = 1, **kwargs: Any):
        super().__init__(eps, **kwargs)
        self.surrogate = surrogate
        self.surrogate_params = surrogate_params
        self._pgd = PGD(steps=steps, step_size=step_size, restarts=restarts, norm=self.norm,
                        loss=self.loss, bounds=self.bounds, dtype="float32",
                        batch_size=self.batch_size, random_state=self.random_state)
        self.steps, self.step_size, self.restarts = steps, step_size, restarts

    def perturb(self, model: Any, X: Any, y: Any, *, eps: Any = None, target_labels: Any = None):
        """Adversarial versions of ``X``, found on the surrogate.

        Parameters
        ----------
        model : torch.nn.Module
            The target (queried for its labels only when a surrogate is trained).
        X : array-like or torch.Tensor of shape (n, ...)
            Inputs, inside ``bounds``.
        y : array-like of int of shape (n,)
            True class indices.
        eps : float, array-like of shape (n,) or None
            Overrides the attack's ``eps``.
        target_labels : None
            Not supported (untargeted attack).

        Returns
        -------
        torch.Tensor of shape (n, ...)
            Adversarial inputs, on ``model``'s device.
        """
        surrogate = self.surrogate
        if surrogate is None:
            labels = predict_labels(model, X, bounds=self.bounds, batch_size=self.batch_size)
            with _Target(model) as target:
                n_classes = target.check(_as_input(X, "X", target.device, target.dtype, None))
            params = {"random_state": self.random_state, "n_classes": n_classes,
                      **(self.surrogate_params or {})}
            surrogate = train_surrogate(X, labels.cpu().numpy(), device=model_device(model), **params)
        eps = self.eps if eps is None else eps
        return self._pgd.perturb(surrogate, X, y, eps=eps).to(model_device(model))


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
        As in :func:`~geomkit.probe.attacks.pgd.pgd` (applied to the surrogate).
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
    attack = TransferAttack(surrogate=surrogate, surrogate_params=surrogate_params, norm=norm,
                            steps=steps, step_size=step_size, restarts=restarts, loss=loss,
                            bounds=bounds, batch_size=batch_size, random_state=random_state)
    return attack.perturb(model, X, y, eps=eps)
