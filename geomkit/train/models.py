"""Small torch models with named layers: a multilayer perceptron and a small CNN.

Every layer has a stable name, so that :func:`geomkit.probe.extract`, the
regularizers of :mod:`geomkit.train.regularizers` and the saturation and
spectral measures can address it:

``MLP(sizes=(784, 1000, 10))``
    ``flatten`` -> ``hidden1`` (Linear, the pre-activations) -> ``act1`` (the
    nonlinearity, the hidden representation) -> ... -> ``hidden{L}`` ->
    ``act{L}`` -> ``out`` (Linear, the logits).

``SmallCNN()``
    ``reshape`` -> ``conv1`` -> ``conv_act1`` -> ``pool1`` -> ``conv2`` ->
    ``conv_act2`` -> ``pool2`` -> ``flatten`` -> ``hidden1`` -> ``act1`` ->
    ``out``. The fully connected part uses the same names as the MLP, so a
    regularizer written for ``"act1"`` applies to both.

Both are :class:`torch.nn.Sequential` subclasses and carry their constructor
arguments in ``.config`` (a JSON-serializable dict) so that
:func:`build_model` can rebuild them without unpickling code.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from .._validation import check_int, check_option

__all__ = ["MLP", "SmallCNN", "build_model", "ACTIVATIONS", "activation_kind"]

#: Names accepted for ``activation``, mapped to their torch modules.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _make_activation(name: str) -> nn.Module:
    check_option(name, "activation", tuple(ACTIVATIONS))
    return ACTIVATIONS[name]()


def activation_kind(module: nn.Module) -> str | None:
    """Name the activation a module computes.

    Parameters
    ----------
    module : torch.nn.Module
        Any module.

    Returns
    -------
    str or None
        ``"relu"``, ``"tanh"`` or ``"sigmoid"`` for those activation modules,
        else None.
    """
    for name, cls in ACTIVATIONS.items():
        if isinstance(module, cls):
            return name
    return None


class MLP(nn.Sequential):
    """Fully connected network with named layers.

    Parameters
    ----------
    sizes : sequence of int, default=(784, 1000, 10)
        Input width, hidden widths, number of outputs (at least two entries).
    activation : {"relu", "tanh", "sigmoid"}, default="relu"
        Nonlinearity after every hidden layer (none after ``out``).
    bias : bool, default=True

    Notes
    -----
    Layer names: ``flatten``; for hidden layer ``i = 1 .. len(sizes) - 2``
    the Linear ``hidden{i}`` (pre-activations, shape (batch, sizes[i])) and
    the nonlinearity ``act{i}`` (the representation); the Linear ``out``
    (logits). Inputs of any shape ``(batch, ...)`` are flattened.

    Examples
    --------
    >>> import torch
    >>> from geomkit.train import MLP
    >>> net = MLP((784, 100, 10), activation="tanh")
    >>> [name for name, _ in net.named_children()]
    ['flatten', 'hidden1', 'act1', 'out']
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, sizes: Sequence[int] = (784, 1000, 10), activation: str = "relu", bias: bool = True):
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise ValueError(
                f"sizes must be a sequence of at least two ints (input width, ..., n_outputs); got {sizes!r}."
            )
        sizes = [check_int(s, f"sizes[{i}]", low=1) for i, s in enumerate(sizes)]
        check_option(activation, "activation", tuple(ACTIVATIONS))
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        for i, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1):
            layers[f"hidden{i}"] = nn.Linear(n_in, n_out, bias=bias)
            layers[f"act{i}"] = _make_activation(activation)
        layers["out"] = nn.Linear(sizes[-2], sizes[-1], bias=bias)
        super().__init__(layers)
        self.config = {"kind": "MLP", "sizes": list(sizes), "activation": activation, "bias": bool(bias)}


class SmallCNN(nn.Sequential):
    """Two conv blocks and one fully connected hidden layer, with named layers.

    Parameters
    ----------
    input_shape : (int, int, int), default=(1, 28, 28)
        Channels, height, width of one input. Flat inputs of shape
        (batch, C*H*W) are reshaped.
    n_classes : int, default=10
    channels : (int, int), default=(16, 32)
        Channels of ``conv1`` and ``conv2`` (3x3 kernels, padding 1, each
        followed by 2x2 max pooling).
    hidden : int, default=128
        Width of ``hidden1``.
    activation : {"relu", "tanh", "sigmoid"}, default="relu"

    Notes
    -----
    Layer names: ``reshape``, ``conv1``, ``conv_act1``, ``pool1``, ``conv2``,
    ``conv_act2``, ``pool2``, ``flatten``, ``hidden1``, ``act1``, ``out``.

    Examples
    --------
    >>> import torch
    >>> from geomkit.train import SmallCNN
    >>> net = SmallCNN()
    >>> net(torch.zeros(3, 784)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        n_classes: int = 10,
        channels: Sequence[int] = (16, 32),
        hidden: int = 128,
        activation: str = "relu",
    ):
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must be (channels, height, width); got {input_shape!r}.")
        c, h, w = (check_int(s, "input_shape", low=1) for s in input_shape)
        if h < 4 or w < 4:
            raise ValueError(f"input_shape needs height and width >= 4 (two 2x2 poolings); got {input_shape!r}.")
        if len(channels) != 2:
            raise ValueError(f"channels must be two ints (conv1, conv2); got {channels!r}.")
        c1, c2 = (check_int(s, "channels", low=1) for s in channels)
        n_classes = check_int(n_classes, "n_classes", low=1)
        hidden = check_int(hidden, "hidden", low=1)
        check_option(activation, "activation", tuple(ACTIVATIONS))
        flat = c2 * (h // 4) * (w // 4)
        super().__init__(
            OrderedDict(
                reshape=nn.Unflatten(1, (c, h, w)),
                conv1=nn.Conv2d(c, c1, 3, padding=1),
                conv_act1=_make_activation(activation),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(c1, c2, 3, padding=1),
                conv_act2=_make_activation(activation),
                pool2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                hidden1=nn.Linear(flat, hidden),
                act1=_make_activation(activation),
                out=nn.Linear(hidden, n_classes),
            )
        )
        self._input_shape = (c, h, w)
        self.config = {
            "kind": "SmallCNN",
            "input_shape": [c, h, w],
            "n_classes": n_classes,
            "channels": [c1, c2],
            "hidden": hidden,
            "activation": activation,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # accept flat (batch, C*H*W) as well as image-shaped (batch, C, H, W) inputs
        x = x.reshape(x.shape[0], -1)
        return super().forward(x)


_BUILDERS = {"MLP": MLP, "SmallCNN": SmallCNN}


def build_model(config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its ``.config`` dict (as saved in JSON).

    Parameters
    ----------
    config : dict
        ``{"kind": "MLP" | "SmallCNN" | ..., **constructor arguments}``.

    Returns
    -------
    torch.nn.Module
        A freshly initialised model (load a state dict into it).

    Examples
    --------
    >>> from geomkit.train import MLP, build_model
    >>> build_model(MLP((4, 3, 2)).config).config["sizes"]
    [4, 3, 2]
    """
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"config must be a dict with a 'kind' entry; got {config!r}.")
    kind = config["kind"]
    if kind not in _BUILDERS:
        raise ValueError(
            f"config['kind'] must be one of {sorted(_BUILDERS)}; got {kind!r}. A custom module "
            "cannot be rebuilt from JSON: pass it to load(..., module=...) instead."
        )
    kwargs = {k: v for k, v in config.items() if k != "kind"}
    return _BUILDERS[kind](**kwargs)


def register_model(kind: str, builder: Any) -> None:
    """Let :func:`build_model` rebuild ``builder(**config)`` for ``config["kind"] == kind``."""
    _BUILDERS[kind] = builder
