"""Per-input Jacobians against torch.autograd.functional.jacobian, closed forms and brute force."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from geomkit.probe.jacobian import (
    JacobianFallbackWarning,
    SaturationWarning,
    jacobian,
    jacobian_norm,
)


def mlp(seed=0, d=12, h=16, c=5, act=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), act(), nn.Linear(h, h), act(), nn.Linear(h, c))


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3, 4),
    )


def reference(f, X):
    """Per-input Jacobians with torch.autograd.functional.jacobian, one input at a time."""
    return torch.stack([torch.autograd.functional.jacobian(lambda x: f(x[None])[0], x) for x in X])


@pytest.mark.parametrize("method", ["auto", "jacrev", "jacfwd", "autograd"])
def test_mlp_matches_autograd_functional(method):
    net = mlp()
    X = torch.randn(9, 12)
    J, info = jacobian(net, X, method=method, progress=False, return_info=True)
    assert J.shape == (9, 5, 12)
    torch.testing.assert_close(J, reference(net, X), rtol=1e-5, atol=1e-5)
    assert info.path == ("autograd" if method == "autograd" else "torch.func")


@pytest.mark.parametrize("method", ["auto", "autograd"])
def test_cnn_matches_autograd_functional(method):
    net = cnn()
    X = torch.randn(5, 2, 6, 6)
    J = jacobian(net, X, method=method, progress=False)
    assert J.shape == (5, 4, 2, 6, 6)
    torch.testing.assert_close(J, reference(net, X), rtol=1e-5, atol=1e-5)
    Jf = jacobian(net, X, method=method, progress=False, flatten=True)
    assert Jf.shape == (5, 4, 72)
    torch.testing.assert_close(Jf, J.reshape(5, 4, 72), rtol=0, atol=0)


def test_hidden_layer_jacobian_matches_truncated_network():
    net = mlp()
    X = torch.randn(6, 12)
    J, info = jacobian(net, X, layer="3", progress=False, return_info=True)
    torch.testing.assert_close(J, reference(net[:4], X), rtol=1e-5, atol=1e-5)
    assert info.method == "jacfwd"  # 16 outputs > 12 inputs: forward mode is cheaper
    conv = cnn()
    Xc = torch.randn(3, 2, 6, 6)
    Jc = jacobian(conv, Xc, layer="1", progress=False)
    assert Jc.shape == (3, 4, 6, 6, 2, 6, 6)
    torch.testing.assert_close(Jc, reference(conv[:2], Xc), rtol=1e-5, atol=1e-5)


def test_chunks_give_the_same_jacobians():
    net = mlp()
    X = torch.randn(10, 12)
    J_all = jacobian(net, X, progress=False)
    J3, info = jacobian(net, X, chunk_size=3, progress=False, return_info=True)
    assert info.n_chunks == 4 and info.chunk_size == 3
    torch.testing.assert_close(J3, J_all, rtol=0, atol=1e-6)


class ItemModel(nn.Module):
    """torch.func cannot trace .item() in forward: forces the autograd fallback."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = mlp()

    def forward(self, x):
        scale = 1.0 + 0.0 * x.abs().max().item()
        return self.net(x) * scale


class BatchCoupled(ItemModel):
    """Outputs depend on the other inputs of the batch (batch centring)."""

    def forward(self, x):
        return super().forward(x - 0.5 * x.mean(dim=0, keepdim=True))


def test_fallback_to_autograd_when_torch_func_cannot_trace():
    model, X = ItemModel(), torch.randn(7, 12)
    with pytest.warns(JacobianFallbackWarning, match=r"ItemModel \(RuntimeError.*item.*plain-autograd"):
        J, info = jacobian(model, X, progress=False, return_info=True)
    assert info.path == "autograd" and "item" in info.fallback_reason
    assert info.independent_samples is True
    torch.testing.assert_close(J, reference(model, X), rtol=1e-5, atol=1e-5)


def test_fallback_handles_batch_coupled_models_one_input_at_a_time():
    model, X = BatchCoupled(), torch.randn(5, 12)
    with pytest.warns(JacobianFallbackWarning, match="BatchCoupled"):
        J, info = jacobian(model, X, progress=False, return_info=True)
    assert info.independent_samples is False
    torch.testing.assert_close(J, reference(model, X), rtol=1e-5, atol=1e-5)


def test_float64_matches_double_reference():
    net = mlp()
    X = torch.randn(4, 12)
    J = jacobian(net, X, dtype=torch.float64, progress=False)
    assert J.dtype == torch.float64
    ref = reference(mlp().double(), X.double())  # same seed -> same weights
    torch.testing.assert_close(J, ref, rtol=1e-12, atol=1e-12)
    assert next(net.parameters()).dtype == torch.float32


def test_exact_norm_is_sum_of_squares():
    net = cnn()
    X = torch.randn(5, 2, 6, 6)
    ref = (reference(net, X).double() ** 2).sum(dim=(1, 2, 3, 4)).numpy()
    np.testing.assert_allclose(jacobian_norm(net, X, progress=False), ref, rtol=1e-5)
    lin = nn.Linear(7, 3)
    expected = float((lin.weight.detach().double() ** 2).sum())
    np.testing.assert_allclose(jacobian_norm(lin, torch.randn(4, 7), progress=False), expected, rtol=1e-6)


@pytest.mark.parametrize("method", ["auto", "autograd"])
def test_projection_estimate_is_unbiased(method):
    net = mlp(c=10)
    X = torch.randn(100, 12)
    exact = jacobian_norm(net, X, progress=False)
    est = jacobian_norm(net, X, n_projections=64, random_state=0, method=method, progress=False)
    # Hoffman et al.: E[C ||v^T J||^2] = ||J||_F^2 for v uniform on the unit sphere.
    assert abs(est.mean() / exact.mean() - 1) < 0.10
    assert np.median(np.abs(est / exact - 1)) < 0.10
    # With C orthonormal directions the estimate is exact; many projections converge to it.
    if method == "auto":
        many = jacobian_norm(net, X[:10], n_projections=4000, random_state=1, progress=False)
        np.testing.assert_allclose(many, exact[:10], rtol=0.06)
    again = jacobian_norm(net, X, n_projections=64, random_state=0, method=method, progress=False)
    np.testing.assert_array_equal(est, again)


def test_projection_estimate_of_a_layer():
    net = mlp()
    X = torch.randn(50, 12)
    exact = jacobian_norm(net, X, layer="2", progress=False)
    ref = (reference(net[:3], X).double() ** 2).sum(dim=(1, 2)).numpy()
    np.testing.assert_allclose(exact, ref, rtol=1e-5)
    est = jacobian_norm(net, X, layer="2", n_projections=64, random_state=0, progress=False)
    assert abs(est.mean() / exact.mean() - 1) < 0.10


def snapshot(model):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        {n: m.training for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
    )


def assert_untouched(model, snap):
    params, modes, grads = snapshot(model)
    for k, v in snap[0].items():
        assert torch.equal(params[k], v), k
    assert modes == snap[1]
    assert grads == snap[2]


def bn_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))


def test_probe_leaves_model_untouched():
    net = bn_model().train()
    net[0].weight.requires_grad_(False)
    snap = snapshot(net)
    X = torch.randn(8, 6)
    J = jacobian(net, X, progress=False)
    assert_untouched(net, snap)
    # Eval mode was used: dropout off, running statistics of batch norm.
    ref = reference(bn_model().eval(), X)
    torch.testing.assert_close(J, ref, rtol=1e-5, atol=1e-6)
    jacobian_norm(net, X, n_projections=3, progress=False)
    jacobian(net, X, layer="1", method="autograd", progress=False)
    assert_untouched(net, snap)
    with pytest.raises(RuntimeError):
        jacobian(net, torch.randn(4, 5), progress=False)
    assert_untouched(net, snap)
    assert all(not m._forward_hooks for m in net.modules())


def test_bad_input_errors():
    net = mlp()
    with pytest.raises(TypeError, match="torch.nn.Module"):
        jacobian(lambda x: x, torch.randn(3, 12))
    with pytest.raises(RuntimeError, match=r"rejected inputs of shape \(3, 10\).*\(n_inputs, \.\.\., 12\)"):
        jacobian(net, torch.randn(3, 10), progress=False)
    with pytest.raises(ValueError, match="NaN"):
        jacobian(net, torch.full((3, 12), float("nan")), progress=False)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        jacobian(net, torch.randn(12), progress=False)
    with pytest.raises(ValueError, match="n_projections must be >= 1"):
        jacobian_norm(net, torch.randn(3, 12), n_projections=0, progress=False)
    with pytest.raises(ValueError, match=r"unknown layer.*'4'"):
        jacobian(net, torch.randn(3, 12), layer="44", progress=False)
    with pytest.raises(ValueError, match="method must be one of"):
        jacobian(net, torch.randn(3, 12), method="finite", progress=False)

    class NaNOut(nn.Module):
        def forward(self, x):
            return torch.log(x)  # NaN for negative entries

    X = torch.rand(6, 4) + 0.1
    X[4, 0] = -1.0
    with pytest.raises(ValueError, match=r"NaN or infinite outputs.*index 4"):
        jacobian(NaNOut(), X, chunk_size=2, progress=False)


def test_saturated_float32_warns_and_float64_recovers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Sigmoid(), nn.Linear(6, 3))
    with torch.no_grad():
        # Pre-activations in (21, 29): 1 - sigmoid(h) rounds to 0 in float32 (h > 17) but
        # not in float64 (h < 36), so sigmoid' = s (1 - s) vanishes only in float32.
        net[0].bias.fill_(25.0)
    X = torch.rand(4, 5) + 0.5
    with pytest.warns(SaturationWarning, match="float64"):
        J32 = jacobian(net, X, progress=False)
    assert float(J32.abs().max()) == 0.0
    J64 = jacobian(net, X, dtype=torch.float64, progress=False)
    # Closed form: W2 diag(s(1 - s)) W1 with s = sigmoid(W1 x + b1), in float64.
    W1, b1, W2 = (t.detach().double() for t in (net[0].weight, net[0].bias, net[2].weight))
    s = torch.sigmoid(X.double() @ W1.T + b1)
    expected = torch.einsum("ch,nh,hd->ncd", W2, s * (1 - s), W1)
    torch.testing.assert_close(J64, expected, rtol=1e-10, atol=0)
    assert float(J64.abs().min()) > 0


# ----------------------------------------------------------------------------- jacobian_norm paths
class LogOut(nn.Module):
    """log(x): NaN where an entry is negative."""

    def forward(self, x):
        return torch.log(x)


@pytest.mark.parametrize("n_projections", [None, 3])
@pytest.mark.parametrize("method", ["auto", "autograd"])
def test_jacobian_norm_checks_every_chunk_for_nan(method, n_projections):
    # The first chunk is finite; input 4 (third chunk of 2) has a NaN output.
    X = torch.rand(6, 4) + 0.1
    X[4, 0] = -1.0
    with pytest.raises(ValueError, match=r"NaN or infinite outputs for 1 input\(s\) \(first: index 4\)"):
        jacobian_norm(LogOut(), X, n_projections=n_projections, method=method, chunk_size=2,
                      progress=False)
    # Finite inputs: d log(x) / dx = diag(1 / x), so ||J||_F^2 = sum 1 / x^2 exactly.
    Xf = X.clone()
    Xf[4, 0] = 0.5
    expected = (1.0 / Xf.double() ** 2).sum(dim=1).numpy()
    np.testing.assert_allclose(jacobian_norm(LogOut(), Xf, chunk_size=2, method=method, progress=False),
                               expected, rtol=1e-5)


def test_jacobian_norm_returns_which_path_ran():
    net = mlp()
    X = torch.randn(10, 12)
    est, info = jacobian_norm(net, X, n_projections=4, random_state=0, chunk_size=4,
                              progress=False, return_info=True)
    assert (info.path, info.method, info.chunk_size, info.n_chunks) == ("torch.func", "vjp", 4, 3)
    assert (info.in_shape, info.out_shape, info.fallback_reason) == ((12,), (5,), None)
    np.testing.assert_array_equal(
        est, jacobian_norm(net, X, n_projections=4, random_state=0, chunk_size=4, progress=False)
    )
    est_ag, info_ag = jacobian_norm(net, X, n_projections=4, random_state=0, chunk_size=4,
                                    method="autograd", progress=False, return_info=True)
    assert info_ag.path == "autograd" and info_ag.independent_samples is True
    assert info_ag.fallback_reason == "method='autograd' was requested"
    np.testing.assert_allclose(est_ag, est, rtol=1e-5)  # same projections, other path
    exact, info_ex = jacobian_norm(net, X, progress=False, return_info=True)
    assert (info_ex.path, info_ex.method) == ("torch.func", "jacrev")  # 5 outputs < 12 inputs
    ref = (reference(net, X).double() ** 2).sum(dim=(1, 2)).numpy()
    np.testing.assert_allclose(exact, ref, rtol=1e-5)


@pytest.mark.parametrize("call", ["jacobian", "exact norm", "projected norm"])
def test_fallback_warning_points_at_the_caller(call):
    model, X = ItemModel(), torch.randn(4, 12)
    run = {
        "jacobian": lambda: jacobian(model, X, progress=False),
        "exact norm": lambda: jacobian_norm(model, X, progress=False),
        "projected norm": lambda: jacobian_norm(model, X, n_projections=2, progress=False),
    }[call]
    with pytest.warns(JacobianFallbackWarning) as record:
        run()
    assert [w.filename for w in record] == [__file__]


def test_jacobian_norm_projection_falls_back_with_a_warning():
    model, X = ItemModel(), torch.randn(8, 12)
    with pytest.warns(JacobianFallbackWarning, match=r"ItemModel.*item.*jacobian_norm now runs"):
        est, info = jacobian_norm(model, X, n_projections=5, random_state=2, progress=False,
                                  return_info=True)
    assert info.path == "autograd" and "item" in info.fallback_reason
    # ItemModel is model.net times 1: the same projections give the same estimate.
    ref = jacobian_norm(model.net, X, n_projections=5, random_state=2, progress=False)
    np.testing.assert_allclose(est, ref, rtol=1e-5)


def _saturated_sigmoid_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Sigmoid(), nn.Linear(6, 3))
    with torch.no_grad():
        net[0].bias.fill_(25.0)  # sigmoid' underflows to 0 in float32 only
    return net


def test_jacobian_norm_projection_warns_on_saturation():
    import warnings

    net, X = _saturated_sigmoid_net(), torch.rand(4, 5) + 0.5
    with pytest.warns(SaturationWarning, match=r"Jacobian is exactly zero for 4 of 4"):
        est32 = jacobian_norm(net, X, n_projections=2, random_state=0, progress=False)
    assert (est32 == 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)
        est64 = jacobian_norm(net, X, n_projections=2000, random_state=0, dtype=torch.float64,
                              progress=False)
    exact64 = jacobian_norm(net, X, dtype=torch.float64, progress=False)
    assert (exact64 > 0).all()
    # Unbiased; 2000 projections in C = 3 outputs leave a few per cent of noise.
    np.testing.assert_allclose(est64, exact64, rtol=0.1)


class OOMUnderGrad(nn.Module):
    """Runs under no_grad (the probe forward) but 'runs out of memory' when differentiated."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        if torch.is_grad_enabled():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return self.lin(x)


class LayerOnlyWithoutGrad(nn.Module):
    """Layer 'a' runs in the probe forward (no_grad) but not when differentiated."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.b(x) if torch.is_grad_enabled() else self.b(self.a(x))


@pytest.mark.parametrize("n_projections", [None, 2])
def test_out_of_memory_and_own_errors_are_raised_not_fallen_back(n_projections):
    import warnings

    X = torch.randn(5, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobianFallbackWarning)
        with pytest.raises(torch.cuda.OutOfMemoryError, match=r"80.00 GiB[\s\S]*smaller chunk_size"):
            jacobian_norm(OOMUnderGrad(), X, n_projections=n_projections, progress=False)
        with pytest.raises(ValueError, match="layer 'a' did not run"):
            jacobian_norm(LayerOnlyWithoutGrad(), X, layer="a", n_projections=n_projections,
                          progress=False)


def test_forward_mode_stays_on_torch_func_when_deprecation_warnings_are_errors():
    # torch loads its forward-mode decompositions on the first jacfwd of a process by
    # torch.jit.script-ing them, which raises a DeprecationWarning; under -W error that used to
    # push every Jacobian onto the slow autograd path. A fresh process, as torch loads them once.
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from geomkit.probe.jacobian import jacobian\n"
        "net = torch.nn.Sequential(torch.nn.Linear(4, 50), torch.nn.Tanh(), torch.nn.Linear(50, 60))\n"
        "X = torch.randn(3, 4, dtype=torch.float64)\n"
        "net = net.double()\n"
        "J, info = jacobian(net, X, method='jacfwd', progress=False, return_info=True)\n"
        "ref = torch.stack([torch.autograd.functional.jacobian(net, x) for x in X])\n"
        "assert torch.allclose(torch.as_tensor(J), ref, atol=1e-12), 'values'\n"
        "print(info.path)\n"
    )
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "torch.func"
