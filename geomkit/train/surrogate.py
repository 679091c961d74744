"""The default surrogate of the transfer attack: a plain ReLU MLP trained to imitate a model.

It is trained by :func:`~geomkit.train.train_module`, the loop under the
scikit-learn classifiers (one training loop in the package).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._validation import check_float, check_int

__all__ = ["train_surrogate"]


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
    passes over shuffled mini-batches by :func:`~geomkit.train.train_module`. Deterministic for an int
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
    >>> from geomkit.probe import predict_labels
    >>> net = train_surrogate(X, np.r_[np.zeros(20, int), np.ones(20, int)], epochs=30)
    >>> predict_labels(net, X).tolist() == [0] * 20 + [1] * 20
    True
    """
    import torch

    from .._backend import resolve_device
    from ..probe.attacks._checks import _as_input, _as_labels, _seed
    from .classifiers import train_module

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
    train_module(net, x, labels, epochs=epochs, lr=lr, batch_size=batch_size, random_state=seed % 2**63)
    net.eval()
    for p in net.parameters():
        p.grad = None
    return net
