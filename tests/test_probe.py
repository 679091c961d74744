"""The probe records exactly what a manual forward pass computes and leaves the model as found."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import xarray as xr

from geomkit.probe import Recorder, extract, layer_activations, layer_moments, resolve_layers, unstack_units


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(8, 4), nn.Tanh()
    )


def _in_batches(fn, X, sizes):
    """``fn`` applied batch by batch with the batch boundaries ``extract`` uses.

    float32 matrix products round differently for different batch shapes (BLAS picks its
    kernel and blocking by shape), so a reference that should equal the recording bit for bit
    must run the same batches.
    """
    out, start = [], 0
    with torch.no_grad():
        for size in sizes:
            out.append(fn(torch.from_numpy(X[start:start + size])))
            start += size
    return torch.cat(out).numpy()


def _sizes(n, batch_size):
    return [min(batch_size, n - s) for s in range(0, n, batch_size)]


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
    sizes = _sizes(len(X), 16)
    h0 = _in_batches(model[0], X, sizes)
    h1 = _in_batches(lambda x: torch.relu(model[0](x)), X, sizes)
    h3 = _in_batches(lambda x: model[3](torch.relu(model[0](x))), X, sizes)
    h4 = np.tanh(h3.astype(np.float64)).astype(np.float32)
    assert list(ds.data_vars) == ["0", "1", "3", "4"]
    # Linear output "0" is recorded before the in-place ReLU overwrites it.
    np.testing.assert_array_equal(ds["0"].values, h0)
    assert (ds["0"].values < 0).any()
    np.testing.assert_array_equal(ds["1"].values, h1)
    np.testing.assert_array_equal(ds["3"].values, h3)
    # torch's float32 tanh may differ from the correctly rounded value by an ulp or two.
    np.testing.assert_allclose(ds["4"].values, h4, rtol=0, atol=4 * np.finfo(np.float32).eps)


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
        # one batch of 9 in both: the same conv on the same shape, equal bit for bit
        np.testing.assert_array_equal(conv.values[:, unit], direct[:, c, y, x])
    np.testing.assert_array_equal(ds["label"].values, labels)
    path = tmp_path / "acts.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as loaded:
        xr.testing.assert_identical(loaded.load(), ds)


def test_tuple_dict_and_repeated_modules_are_all_recorded(rng, tmp_path):
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
    sizes = _sizes(len(X), 3)
    a = _in_batches(model.shared, X, sizes)
    b = _in_batches(lambda x: model.shared(torch.relu(model.shared(x))), X, sizes)
    logits = _in_batches(lambda x: model.head(model.shared(torch.relu(model.shared(x)))), X, sizes)
    np.testing.assert_array_equal(ds["shared#0"].values, a)
    np.testing.assert_array_equal(ds["shared#1"].values, b)
    np.testing.assert_array_equal(ds["output[1][0]"].values, a)
    np.testing.assert_array_equal(ds["output[0][logits]"].values, logits)
    for key in ds.data_vars:
        assert ds[key].attrs["layer"] == key and ds[key].attrs["model"] == "Net"
    assert ds["shared#1"].attrs["module"] == "shared" and ds["output[0][feature]"].attrs["feature_shape"] == "4"
    # "#", "[" and "]" in variable and dimension names survive netCDF.
    path = tmp_path / "special.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as loaded:
        xr.testing.assert_identical(loaded.load(), ds)


def test_iterable_of_batches_and_dataloader_labels(rng):
    model = _mlp()
    X = rng.normal(size=(20, 6)).astype(np.float32)
    y = np.arange(20) % 4
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=6
    )
    ds = extract(model, loader, ["3"], progress=False)
    np.testing.assert_array_equal(ds["label"].values, y)
    layer3 = lambda x: model[3](torch.relu(model[0](x)))  # noqa: E731 (eval mode: dropout is the identity)
    np.testing.assert_array_equal(ds["3"].values, _in_batches(layer3, X, _sizes(20, 6)))
    batches = [X[:5], X[5:]]
    np.testing.assert_array_equal(
        extract(model, batches, ["3"], progress=False)["3"].values, _in_batches(layer3, X, [5, 15])
    )


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


def test_non_shape_runtime_error_propagates_unchanged():
    err = RuntimeError("Expected all tensors to be on the same device, but found cpu and cuda:0")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            raise err

    with pytest.raises(RuntimeError) as info:
        extract(Net(), np.ones((4, 3), dtype=np.float32), progress=False)
    assert info.value is err and "rejected an input batch" not in str(info.value)


def test_conv_channel_mismatch_names_the_batch_shape():
    model = nn.Sequential(nn.Conv2d(1, 3, 3))
    with pytest.raises(RuntimeError, match=r"rejected an input batch of shape \(2, 2, 6, 6\)"):
        extract(model, np.ones((2, 2, 6, 6), dtype=np.float32), progress=False)


def test_device_argument_runs_there_and_leaves_the_model_where_it_was(rng):
    model = _mlp().eval()
    X = rng.normal(size=(20, 6)).astype(np.float32)
    weight, ptr = model[0].weight, model[0].weight.data_ptr()
    ref = extract(model, X, ["3"], progress=False)
    ds = extract(model, X, ["3"], device="cpu", progress=False)
    np.testing.assert_array_equal(ds["3"].values, ref["3"].values)
    with torch.no_grad():
        # one batch of 20 in both (batch_size 256): equal bit for bit
        np.testing.assert_array_equal(ds["3"].values, model[:4](torch.from_numpy(X)).numpy())
    assert model[0].weight is weight and weight.data_ptr() == ptr and weight.device.type == "cpu"


def test_model_moved_for_the_run_is_put_back_bitwise_also_on_failure():
    # The meta device exercises the move on a CPU-only machine: the model goes there and the
    # extraction then fails (meta tensors hold no data), after which everything must be back.
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU()).train()
    model(torch.randn(6, 3)).sum().backward()
    snap = _snapshot(model)
    params = {n: (p, p.data_ptr(), p.grad, p.grad.clone()) for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    for func in (extract, layer_moments):
        with pytest.raises(NotImplementedError, match="meta"):
            func(model, np.ones((4, 3), dtype=np.float32), device="meta", progress=False)
        _assert_unchanged(model, snap)
        for name, p in model.named_parameters():
            obj, ptr, grad, grad_values = params[name]
            assert p is obj and p.device.type == "cpu" and p.data_ptr() == ptr
            assert p.grad is grad and torch.equal(p.grad, grad_values)
        assert all(b is buffers[n] and b.device.type == "cpu" for n, b in model.named_buffers())


def test_a_layer_that_never_runs_is_an_error(rng):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 2)
            self.unused = nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)

    model = Net()
    snap = _snapshot(model)
    X = rng.normal(size=(5, 3)).astype(np.float32)
    for func in (extract, layer_moments):
        with pytest.raises(ValueError, match=r"layer\(s\) \['unused'\] of Net did not run"):
            func(model, X, ["used", "unused"], progress=False)
        _assert_unchanged(model, snap)
    with torch.no_grad():
        np.testing.assert_array_equal(  # one batch of 5 in both: bit for bit
            extract(model, X, ["used"], progress=False)["used"].values, model(torch.from_numpy(X)).numpy()
        )


def test_whole_model_and_a_submodule_named_output_collide(rng):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 4)
            self.output = nn.Linear(4, 2)

        def forward(self, x):
            return 2.0 * self.output(self.body(x))

    model = Net()
    X = rng.normal(size=(5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"whole model \(''\) and for its submodule 'output'"):
        extract(model, X, ["", "output"], progress=False)
    # Each alone is recorded under "output": the model's output is twice its submodule's.
    whole = extract(model, X, [""], progress=False)["output"].values
    sub = extract(model, X, ["output"], progress=False)["output"].values
    np.testing.assert_array_equal(whole, 2.0 * sub)  # same batch; doubling is exact in float32


def test_two_modules_producing_one_record_key_is_an_error():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.add_module("a#0", nn.Linear(2, 2))  # the key of a's first call

        def forward(self, x):
            return getattr(self, "a#0")(self.a(self.a(x)))

    model = Net()
    snap = _snapshot(model)
    with pytest.raises(ValueError, match=r"layers 'a' and 'a#0' both produce the record key 'a#0'"):
        extract(model, np.ones((3, 2), dtype=np.float32), ["a", "a#0"], progress=False)
    _assert_unchanged(model, snap)


def test_train_mode_batch_norm_statistics_are_restored(rng):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)).train()
    snap = _snapshot(model)
    running_mean = model[1].running_mean
    X = rng.normal(loc=3.0, size=(40, 5)).astype(np.float32)
    ds = extract(model, X, ["1"], batch_size=40, eval_mode=False, progress=False)
    # Train mode normalizes with the batch's own statistics: mean 0, biased variance 1 per unit.
    acts = ds["1"].values.astype(np.float64)
    np.testing.assert_allclose(acts.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(acts.var(axis=0), 1.0, rtol=1e-3)
    # ... yet the running statistics it updated, num_batches_tracked and the mode are as before.
    _assert_unchanged(model, snap)
    assert model[1].running_mean is running_mean and int(model[1].num_batches_tracked) == 0


def _held_elements(obj) -> int:
    """Elements of every tensor / array an object holds in its attributes (lists included)."""
    items = list(vars(obj).values())
    total = 0
    while items:
        item = items.pop()
        if isinstance(item, (torch.Tensor, np.ndarray)):
            total += int(np.prod(item.shape))
        elif isinstance(item, (list, tuple)):
            items.extend(item)
        elif isinstance(item, dict):
            items.extend(item.values())
    return total


def test_covariance_route_holds_no_activation_rows(rng, monkeypatch):
    import importlib

    # The module, not the function geomkit.probe.extract that shadows its name.
    extract_module = importlib.import_module("geomkit.probe.extract")
    made = []

    class Watched(extract_module.MomentAccumulator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(extract_module, "MomentAccumulator", Watched)
    model = _mlp()
    held = {}
    for method in ("covariance", "gram"):
        for n in (60, 600):
            made.clear()
            X = rng.normal(size=(n, 6)).astype(np.float32)
            layer_moments(model, X, ["3"], method=method, batch_size=30, progress=False)
            (acc,) = made
            assert acc.method == method
            held[method, n] = _held_elements(acc)
    # Covariance: the mean (4) and the 4 x 4 scatter matrix, whatever the number of stimuli.
    assert held["covariance", 60] == held["covariance", 600] == 4 + 16
    # The Gram route keeps every row (so the count above can see rows when there are some).
    assert held["gram", 600] - held["gram", 60] == 540 * 4


class _TinyTransformer(nn.Module):
    """Token ids and an attention mask as keyword inputs, like a HuggingFace model."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 8)
        self.block = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True, dropout=0.0)
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask):
        h = self.block(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        return self.head(h[:, 0])


def test_dict_batches_are_keyword_inputs_and_tokens_get_a_token_axis():
    model = _TinyTransformer()
    ids = torch.randint(0, 20, (6, 5), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(6, 5, dtype=torch.long)
    mask[4:, 3:] = 0
    batches = [{"input_ids": ids[:4], "attention_mask": mask[:4], "labels": torch.tensor([0, 1, 2, 0])},
               {"input_ids": ids[4:], "attention_mask": mask[4:], "labels": torch.tensor([1, 2])}]
    ds = extract(model, batches, ["embed", "block", "head"], progress=False)
    np.testing.assert_array_equal(ds["label"].values, [0, 1, 2, 0, 1, 2])
    assert ds["embed"].attrs["feature_shape"] == "5,8"
    emb = layer_activations(ds, "embed")
    assert {"token", "feature"} <= set(emb.coords)
    with torch.no_grad():
        ref = [model.block(model.embed(b["input_ids"]), src_key_padding_mask=b["attention_mask"] == 0)
               for b in batches]
    block = unstack_units(layer_activations(ds, "block"))
    assert block.dims == ("stimulus", "token", "feature") and block.shape == (6, 5, 8)
    np.testing.assert_array_equal(block.values, torch.cat(ref).numpy())
    np.testing.assert_array_equal(unstack_units(emb).values, model.embed(ids).detach().numpy())
    # Without labels in the dicts the label coordinate is absent; without model inputs: an error.
    plain = extract(model, [{"input_ids": ids, "attention_mask": mask}], ["head"], progress=False)
    assert "label" not in plain.coords and plain["head"].shape == (6, 3)
    with pytest.raises(ValueError, match="needs model inputs besides its labels"):
        extract(model, [{"labels": torch.tensor([0])}], ["head"], progress=False)


def test_unstack_units_restores_conv_maps():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())
    x = torch.randn(4, 2, 7, 6)
    ds = extract(net, x, ["0"], progress=False)
    maps = unstack_units(layer_activations(ds, "0"))
    assert maps.dims == ("stimulus", "channel", "y", "x") and maps.shape == (4, 3, 5, 4)
    with torch.no_grad():
        np.testing.assert_array_equal(maps.values, net[0](x).numpy())
    dense = layer_activations(extract(nn.Sequential(nn.Linear(3, 2)), torch.randn(4, 3), progress=False), "0")
    assert unstack_units(dense) is dense
    with pytest.raises(TypeError, match="'unit' dim"):
        unstack_units(ds)
