"""Models as attacks should see them: input normalization inside, randomness detected.

* :class:`NormalizedModel` puts the per-channel ``(x - mean) / std`` inside the
  model, so that the attack's eps and box are in pixel space ([0, 1]) — eps
  given in normalized units is the most common source of wrong eps in the
  peers' issue trackers (an eps of 8/255 on inputs divided by std ~ 0.25 is
  an eps of 2/255 in pixels).
* :func:`randomized_forward` tells whether two forward passes on the same
  input differ (dropout at test time, random input transformations): gradient
  attacks on such a model need expectation over transformation (the ``eot``
  parameter of every attack; Athalye, Carlini & Wagner 2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import as_float_array
from ._checks import _as_input, _Target

__all__ = ["NormalizedModel", "randomized_forward"]


def _module_base():
    import torch

    return torch.nn.Module


class NormalizedModel(_module_base()):
    """``model((x - mean) / std)``, mean and std per channel: attack it in pixel space.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier, trained on normalized inputs.
    mean, std : float or array-like of shape (n_channels,)
        Per-channel statistics (channels on axis 1 of the inputs); std > 0.

    Examples
    --------
    >>> import torch
    >>> net = NormalizedModel(torch.nn.Identity(), mean=[0.5, 0.25], std=[0.5, 0.25])
    >>> net(torch.tensor([[1.0, 0.5]])).tolist()
    [[1.0, 1.0]]
    """

    def __init__(self, model: Any, mean: Any, std: Any):
        import torch

        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
        mean_ = as_float_array(mean, "mean", ndim=(0, 1))
        std_ = as_float_array(std, "std", ndim=(0, 1))
        if (std_ <= 0).any():
            raise ValueError(f"std must be > 0 for every channel; got {std_.tolist()}.")
        if mean_.ndim and std_.ndim and mean_.shape != std_.shape:
            raise ValueError(f"mean and std must have one value per channel each; got {mean_.size} "
                             f"and {std_.size}.")
        self.model = model
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self.register_buffer("mean", torch.as_tensor(np.atleast_1d(mean_), dtype=dtype))
        self.register_buffer("std", torch.as_tensor(np.atleast_1d(std_), dtype=dtype))

    def forward(self, x):
        """Normalize per channel (axis 1), then run the model.

        Parameters
        ----------
        x : torch.Tensor of shape (n, n_channels, ...)
            Inputs in pixel space.

        Returns
        -------
        torch.Tensor
            The model's output on the normalized inputs.
        """
        if self.mean.numel() > 1 and (x.ndim < 2 or x.shape[1] != self.mean.numel()):
            raise ValueError(f"x has {x.shape[1] if x.ndim > 1 else 0} channels on axis 1 but mean "
                             f"and std have {self.mean.numel()} values.")
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return self.model((x - self.mean.view(shape)) / self.std.view(shape))


def randomized_forward(model: Any, X: Any, *, n_rows: int = 16) -> bool:
    """Whether two forward passes of ``model`` (in eval mode) differ on the same inputs.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (left as it was).
    X : array-like or torch.Tensor of shape (n, ...)
        Inputs; the first ``n_rows`` are used.
    n_rows : int, default=16
        Inputs forwarded twice.

    Returns
    -------
    bool
        True when the outputs differ: attack with ``eot > 1``.

    Examples
    --------
    >>> import torch
    >>> randomized_forward(torch.nn.Linear(2, 2), torch.rand(4, 2))
    False
    """
    import torch

    target = _Target(model)
    x = _as_input(X, "X", target.device, target.dtype, None)[:n_rows]
    with target, torch.no_grad():
        return not torch.equal(target(x), target(x))
