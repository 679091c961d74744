"""Per-input attack objectives computed from the logits (private).

Every loss returns one value per input, larger = more adversarial, so that one
ascent engine serves them all. A targeted loss also receives the target class.
"""

from __future__ import annotations

from collections.abc import Callable

from ..._validation import check_option


def margin(logits, y):
    """Per-input logit margin ``max_{j != y} z_j - z_y`` (positive = misclassified).

    The Carlini & Wagner (2017, "Towards evaluating the robustness of neural
    networks") objective without its clamp: its gradient is a difference of
    two logit gradients, which does not vanish when the softmax saturates.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, n_classes)
        The model's outputs.
    y : torch.Tensor of int64, shape (n,)
        The true classes.

    Returns
    -------
    torch.Tensor of shape (n,)
        The margin of each input.

    Examples
    --------
    >>> import torch
    >>> margin(torch.tensor([[2.0, 0.5, 1.0]]), torch.tensor([0])).tolist()
    [-1.0]
    """
    idx = y[:, None]
    z_true = logits.gather(1, idx).squeeze(1)
    z_other = logits.scatter(1, idx, float("-inf")).amax(1)
    return z_other - z_true


def _ce(logits, y, t=None):
    import torch.nn.functional as F

    # cross_entropy is nll_loss(log_softmax(logits)): stable, from the logits.
    if t is None:
        return F.cross_entropy(logits, y, reduction="none")
    return -F.cross_entropy(logits, t, reduction="none")  # towards the target


def _margin(logits, y, t=None):
    return margin(logits, y) if t is None else -margin(logits, t)


def _dlr(logits, y, t=None):
    """Difference-of-logits ratio (Croce & Hein 2020): shift- and scale-invariant.

    Untargeted ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)``; targeted
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` with ``z_pi`` the sorted logits.
    """
    top = logits.topk(min(4, logits.shape[1]), dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    if t is None:
        scale = top[:, 0] - top[:, min(2, top.shape[1] - 1)]
        return -(z_y - logits.scatter(1, y[:, None], float("-inf")).amax(1)) / (scale + 1e-12)
    z_t = logits.gather(1, t[:, None]).squeeze(1)
    scale = top[:, 0] - 0.5 * (top[:, min(2, top.shape[1] - 1)] + top[:, min(3, top.shape[1] - 1)])
    return -(z_y - z_t) / (scale + 1e-12)


LOSSES: dict[str, Callable] = {"ce": _ce, "margin": _margin, "dlr": _dlr}


def loss_fn(loss: str, options: tuple = ("ce", "margin")) -> Callable:
    """The per-input loss ``f(logits, y, target=None)`` of the name ``loss``."""
    return LOSSES[check_option(loss, "loss", options)]
