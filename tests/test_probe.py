"""The probe records exactly what a manual forward pass computes and leaves the model as found."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import xarray as xr

from geomkit.probe import Recorder, extract, layer_activations, layer_moments, resolve_layers


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(8, 4), nn.Tanh()
    )


def _snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: m.training for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
    )


def _assert_unchanged(model, snap):
    state, modes, grads = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_recorded_values_equal_a_manual_forward_pass(rng):
    model = _mlp().eval()
    X = rng.normal(size=(50, 6)).astype(np.float32)
    ds = extract(model, X, batch_size=16, progress=False)
    with torch.no_grad():
        x = torch.from_numpy(X)
        h0 = model[0](x)
        h1 = torch.relu(h0)
        h3 = model[3](h1)
        h4 = torch.tanh(h3)
    assert list(ds.data_vars) == ["0", "1", "3", "4"]
    # Linear output "0" is recorded before the in-place ReLU overwrites it.
    np.testing.assert_allclose(ds["0"].values, h0.numpy(), rtol=1e-6)
    assert (ds["0"].values < 0).any()
    np.testing.assert_allclose(ds["1"].values, h1.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds["3"].values, h3.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds["4"].values, h4.numpy(), rtol=1e-6)


def test_model_is_left_exactly_as_found(rng):
    model = _mlp().train()
    model[3].weight.requires_grad_(False)
    snap = _snapshot(model)
    extract(model, rng.normal(size=(10, 6)).astype(np.float32), progress=False)
    _assert_unchanged(model, snap)


def test_hooks_removed_and_state_restored_when_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            self.lin(x)
            raise RuntimeError("kaboom")

    model = Boom().train()
    snap = _snapshot(model)
    with pytest.raises(RuntimeError, match="kaboom"):
        extract(model, np.ones((4, 3), dtype=np.float32), progress=False)
    _assert_unchanged(model, snap)


def test_input_shape_rejection_is_reraised_with_the_shape():
    with pytest.raises(RuntimeError, match=r"rejected an input batch of shape \(4, 5\)"):
        extract(_mlp(), np.ones((4, 5), dtype=np.float32), progress=False)


def test_conv_coordinates_and_netcdf_round_trip(tmp_path, rng):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    X = rng.random((9, 1, 6, 6)).astype(np.float32)
    labels = np.arange(9) % 2
    ds = extract(model, X, labels=labels, progress=False)
    conv = layer_activations(ds, "0")
    assert conv.dims == ("stimulus", "unit")
    with torch.no_grad():
        direct = model[0](torch.from_numpy(X)).numpy()
    # Unit coordinates address the conv map: value at (channel, y, x) is the map's value there.
    for unit in (0, 17, 47):
        c, y, x = (int(conv[coord][unit]) for coord in ("channel", "y", "x"))
        np.testing.assert_allclose(conv.values[:, unit], direct[:, c, y, x], rtol=1e-6)
    np.testing.assert_array_equal(ds["label"].values, labels)
    path = tmp_path / "acts.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as loaded:
        xr.testing.assert_identical(loaded.load(), ds)


def test_tuple_dict_and_repeated_modules_are_all_recorded(rng):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            a = self.shared(x)
            b = self.shared(torch.relu(a))
            return {"logits": self.head(b), "feature": b}, (a,)

    torch.manual_seed(0)
    model = Net()
    X = rng.normal(size=(7, 4)).astype(np.float32)
    ds = extract(model, X, ["shared", ""], batch_size=3, progress=False)
    assert set(ds.data_vars) == {"shared#0", "shared#1", "output[0][logits]", "output[0][feature]", "output[1][0]"}
    with torch.no_grad():
        x = torch.from_numpy(X)
        a = model.shared(x)
        b = model.shared(torch.relu(a))
    np.testing.assert_allclose(ds["shared#0"].values, a.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds["shared#1"].values, b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds["output[1][0]"].values, a.numpy(), rtol=1e-6)


def test_iterable_of_batches_and_dataloader_labels(rng):
    model = _mlp()
    X = rng.normal(size=(20, 6)).astype(np.float32)
    y = np.arange(20) % 4
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=6
    )
    ds = extract(model, loader, ["3"], progress=False)
    np.testing.assert_array_equal(ds["label"].values, y)
    ref = extract(model, X, ["3"], progress=False)
    np.testing.assert_allclose(ds["3"].values, ref["3"].values, rtol=1e-6)
    batches = [X[:5], X[5:]]
    np.testing.assert_allclose(extract(model, batches, ["3"], progress=False)["3"].values, ref["3"].values, rtol=1e-6)


def test_layer_selection_by_type_and_callable_and_errors():
    model = _mlp()
    assert resolve_layers(model, nn.Linear) == ["0", "3"]
    assert resolve_layers(model, (nn.Tanh, nn.ReLU)) == ["1", "4"]
    assert resolve_layers(model, lambda name, m: name.startswith("3")) == ["3"]
    assert resolve_layers(model, "2") == ["2"]
    with pytest.raises(ValueError, match=r"unknown layer name\(s\): '30' \(closest: '3'.*Available layers"):
        resolve_layers(model, ["30"])
    with pytest.raises(ValueError, match="selects no module"):
        resolve_layers(model, nn.Conv2d)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        resolve_layers("not a model", None)


def test_recorder_keeps_graph_when_asked():
    model = _mlp().eval()
    x = torch.randn(3, 6, requires_grad=True)
    with Recorder(model, ["3"], detach=False) as rec:
        model(x)
    assert rec.n_hooks == 0
    out = rec.records["3"][0]
    assert out.requires_grad
    grad, = torch.autograd.grad(out.sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all()


def test_layer_moments_equal_numpy_and_do_not_keep_activations(rng):
    model = _mlp()
    X = rng.normal(size=(300, 6)).astype(np.float32)
    acts = extract(model, X, ["3"], progress=False)["3"].values.astype(np.float64)
    moments = layer_moments(model, X, ["3"], method="covariance", batch_size=37, progress=False)["3"]
    assert moments.n_samples == 300
    np.testing.assert_allclose(moments.mean, acts.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(moments.covariance, np.cov(acts, rowvar=False), rtol=1e-5, atol=1e-8)
    gram = layer_moments(model, X[:3], ["3"], method="auto", progress=False)["3"]
    # 4 units > 3 stimuli: the Gram route, with the covariance's non-zero eigenvalues.
    assert gram.kind == "gram"
    cov_eigs = np.sort(np.linalg.eigvalsh(np.cov(acts[:3], rowvar=False)))[::-1][:2]
    np.testing.assert_allclose(gram.eigenvalues()[:2], cov_eigs, rtol=1e-5)
