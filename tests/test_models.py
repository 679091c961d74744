"""MLP / SmallCNN: named layers, outputs against a manual computation, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geomkit.probe.extract import extract, layer_activations
from geomkit.train import MLP, SmallCNN, build_model


@pytest.mark.parametrize("activation,fn", [("relu", torch.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid)])
def test_mlp_matches_manual_forward(activation, fn):
    torch.manual_seed(0)
    net = MLP((6, 5, 4, 3), activation=activation)
    assert [n for n, _ in net.named_children()] == ["flatten", "hidden1", "act1", "hidden2", "act2", "out"]
    x = torch.randn(7, 6)
    h1 = F.linear(x, net.hidden1.weight, net.hidden1.bias)
    h2 = F.linear(fn(h1), net.hidden2.weight, net.hidden2.bias)
    expected = F.linear(fn(h2), net.out.weight, net.out.bias)
    torch.testing.assert_close(net(x), expected)


def test_extract_addresses_documented_layer_names():
    torch.manual_seed(0)
    net = MLP((6, 5, 3))
    x = torch.randn(9, 6)
    ds = extract(net, x, layers=["hidden1", "act1", "out"], progress=False)
    pre = F.linear(x, net.hidden1.weight, net.hidden1.bias)
    # One batch of 9 rows in extract and here: the same kernels on the same shapes, so the
    # float32 values are equal bit for bit (a tolerance would hide batch-shape rounding).
    np.testing.assert_array_equal(layer_activations(ds, "hidden1").values, pre.detach().numpy())
    np.testing.assert_array_equal(layer_activations(ds, "act1").values, pre.relu().detach().numpy())
    np.testing.assert_array_equal(layer_activations(ds, "out").values, net(x).detach().numpy())


def test_small_cnn_layers_and_flat_input():
    torch.manual_seed(0)
    net = SmallCNN(input_shape=(1, 8, 8), channels=(2, 3), hidden=5, n_classes=4)
    names = [n for n, _ in net.named_children()]
    assert names == ["reshape", "conv1", "conv_act1", "pool1", "conv2", "conv_act2", "pool2", "flatten",
                     "hidden1", "act1", "out"]
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(net(x), net(x.reshape(3, 64)))
    # manual forward as ground truth
    h = F.max_pool2d(torch.relu(F.conv2d(x, net.conv1.weight, net.conv1.bias, padding=1)), 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, net.conv2.weight, net.conv2.bias, padding=1)), 2)
    h = torch.relu(F.linear(h.flatten(1), net.hidden1.weight, net.hidden1.bias))
    torch.testing.assert_close(net(x), F.linear(h, net.out.weight, net.out.bias))
    ds = extract(net, x.reshape(3, 64), layers=["conv1"], progress=False)
    assert ds["conv1"].shape == (3, 2 * 8 * 8)


@pytest.mark.parametrize("net", [MLP((5, 4, 2), activation="tanh", bias=False), SmallCNN((1, 4, 4), 3, (2, 2), 3)])
def test_build_model_round_trip(net):
    rebuilt = build_model(net.config)
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, int(np.prod(net.config.get("input_shape", [5]))))
    torch.testing.assert_close(rebuilt(x), net(x))
    assert rebuilt.config == net.config


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"sizes": (5,)}, ValueError, "at least two"),
        ({"sizes": (5, 0, 2)}, ValueError, r"sizes\[1\] must be >= 1"),
        ({"sizes": (5, 2.5, 2)}, TypeError, r"sizes\[1\] must be an integer"),
        ({"activation": "gelu"}, ValueError, "activation must be one of 'relu', 'tanh', 'sigmoid'"),
    ],
)
def test_mlp_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        MLP(**kwargs)


def test_build_model_unknown_kind():
    with pytest.raises(ValueError, match="pass it to load"):
        build_model({"kind": "ResNet"})
