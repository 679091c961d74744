"""Fisher-information and Jacobian flatness against closed forms and input-space brute force."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import xarray as xr
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from geomkit.probe.jacobian import SaturationWarning
from geomkit.sensitivity import (
    FisherFlatness,
    JacobianFlatness,
    fisher_eigenvalues,
    fisher_information,
    fisher_trace,
    flatness_frame,
    spectral_summaries,
)


def mlp(seed=0, d=10, h=12, c=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, c))


def brute_fisher(model, X):
    """G(x) = J^T (diag p - p p^T) J in float64, formed in input space, one input at a time."""
    m = mlp_like_double(model)
    out = []
    for x in X.double():
        J = torch.autograd.functional.jacobian(lambda v: m(v[None])[0], x).reshape(-1, x.numel())
        p = torch.softmax(m(x[None])[0], dim=0).detach()
        out.append(J.T @ (torch.diag(p) - torch.outer(p, p)) @ J)
    return torch.stack(out)


def mlp_like_double(model):
    import copy

    return copy.deepcopy(model).double().eval()


def test_linear_softmax_closed_form_float64():
    torch.manual_seed(3)
    D, C = 8, 5
    net = nn.Linear(D, C).double()
    with torch.no_grad():
        net.weight.mul_(4.0)  # strongly peaked softmax, far from uniform
    X = torch.randn(20, D, dtype=torch.float64)
    G = fisher_information(net, X, dtype=torch.float64, progress=False)
    W = net.weight.detach()
    P = torch.softmax(net(X), dim=1).detach()
    closed = torch.stack([W.T @ (torch.diag(p) - torch.outer(p, p)) @ W for p in P])
    torch.testing.assert_close(G, closed, rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        fisher_trace(net, X, dtype=torch.float64, progress=False),
        torch.diagonal(closed, dim1=1, dim2=2).sum(-1).numpy(), rtol=1e-10,
    )


def test_fisher_eigenvalues_small_space_equal_input_space():
    net = mlp()
    X = torch.randn(15, 10)
    G = brute_fisher(net, X).numpy()
    full = np.linalg.eigvalsh(G)[:, ::-1]  # D = 10 eigenvalues in input space
    est = FisherFlatness(net, dtype=torch.float64, progress=False).fit(X)
    assert est.eigenvalues_.shape == (15, 1, 3)  # rank <= C - 1 = 3
    np.testing.assert_allclose(est.eigenvalues_[:, 0], full[:, :3], rtol=1e-8, atol=1e-12)
    assert np.abs(full[:, 3:]).max() < 1e-12 * full[:, 0].max()  # the rank bound holds
    np.testing.assert_allclose(est.trace_[:, 0], np.trace(G, axis1=1, axis2=2), rtol=1e-10)
    lam = np.clip(full, 0, None)
    pr = lam.sum(1) ** 2 / (lam**2).sum(1)
    np.testing.assert_allclose(est.participation_ratio_[:, 0], pr, rtol=1e-8)
    n90 = np.array([np.searchsorted(np.cumsum(l) / l.sum(), 0.9) + 1 for l in lam])
    np.testing.assert_array_equal(est.n_directions_[:, 0], n90)
    # float32 agrees with the float64 truth to float32 accuracy.
    np.testing.assert_allclose(fisher_trace(net, X, progress=False), est.trace_[:, 0], rtol=1e-4)
    np.testing.assert_allclose(
        fisher_eigenvalues(net, X, n_eigenvalues=2, dtype="float64", progress=False),
        full[:, :2], rtol=1e-8,
    )


def test_fisher_trace_is_expected_squared_score():
    # tr G = sum_k p_k ||grad log p_k||^2, from per-class gradients of log_softmax.
    net = mlp(seed=1)
    X = torch.randn(6, 10, dtype=torch.float64)
    m = mlp_like_double(net)
    expected = []
    for x in X:
        J = torch.autograd.functional.jacobian(lambda v: torch.log_softmax(m(v[None])[0], 0), x)
        p = torch.softmax(m(x[None])[0], 0).detach()
        expected.append(float((p[:, None] * J**2).sum()))
    np.testing.assert_allclose(fisher_trace(net, X, dtype=torch.float64, progress=False), expected, rtol=1e-10)


def test_jacobian_flatness_per_layer_matches_svd():
    net = mlp()
    X = torch.randn(8, 10)
    est = JacobianFlatness(net, layers=["1", "3", "output"], n_eigenvalues=4, dtype=torch.float64, progress=False).fit(X)
    assert est.layers_ == ["1", "3", "output"]
    m = mlp_like_double(net)
    for j, sub in enumerate([m[:2], m[:4], m]):
        for i, x in enumerate(X.double()):
            J = torch.autograd.functional.jacobian(lambda v: sub(v[None])[0], x)
            s = torch.linalg.svdvals(J).numpy()
            np.testing.assert_allclose(est.trace_[i, j], (s**2).sum(), rtol=1e-10)
            k = min(4, s.size)
            np.testing.assert_allclose(est.eigenvalues_[i, j, :k], s[:k] ** 2, rtol=1e-8, atol=1e-15)
            # Square roots of Gram eigenvalues: accurate to sqrt(eps) * s_max in absolute terms.
            np.testing.assert_allclose(est.singular_values_[i, j, :k], s[:k], rtol=1e-7, atol=1e-7)
            summ = spectral_summaries((s**2)[None], 0.9)
            np.testing.assert_allclose(est.participation_ratio_[i, j], summ["participation_ratio"][0], rtol=1e-8)
            assert est.n_directions_[i, j] == summ["n_directions"][0]


def test_jacobian_flatness_of_a_conv_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    X = torch.randn(4, 1, 5, 5)
    est = JacobianFlatness(net, layers="0", progress=False).fit(X)
    for i, x in enumerate(X):
        J = torch.autograd.functional.jacobian(lambda v: net[0](v[None])[0], x).reshape(18, 25)
        np.testing.assert_allclose(est.trace_[i, 0], float((J.double() ** 2).sum()), rtol=1e-5)


def test_spectral_summaries_closed_forms():
    s = spectral_summaries([[4.0, 0.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0]], 0.9)
    assert s["participation_ratio"][0] == 2.0 and np.isnan(s["participation_ratio"][1])
    np.testing.assert_array_equal(s["n_directions"], [2, 0])
    np.testing.assert_array_equal(s["trace"], [8.0, 0.0])
    s = spectral_summaries(np.ones((1, 10)), 0.9)
    assert s["participation_ratio"][0] == pytest.approx(10.0) and s["n_directions"][0] == 9
    geo = 0.5 ** np.arange(30)  # cumulative share 1 - 2^-m: 90 % needs m = 4
    s = spectral_summaries(geo[None], 0.9)
    assert s["n_directions"][0] == 4
    np.testing.assert_allclose(s["participation_ratio"][0], (geo.sum() ** 2) / (geo**2).sum())


def test_score_is_negative_mean_log_trace():
    net = mlp()
    X_fit, X_new = torch.randn(10, 10), torch.randn(12, 10)
    est = FisherFlatness(net, progress=False).fit(X_fit)
    expected = -np.mean(np.log(fisher_trace(net, X_new, progress=False)))
    assert est.score(X_new) == pytest.approx(expected, rel=1e-12)
    jest = JacobianFlatness(net, layers=["1", "output"], progress=False).fit(X_fit)
    ref = JacobianFlatness(net, layers=["1", "output"], progress=False).fit(X_new)
    assert jest.score(X_new) == pytest.approx(-np.mean(np.log(ref.trace_)), rel=1e-10)


def test_sklearn_api_clone_params_and_cross_validation():
    net = mlp()
    est = FisherFlatness(net, dtype=torch.float64, progress=False)
    assert est.get_params()["model"] is net
    twin = clone(est)
    assert twin.model is not net
    for a, b in zip(twin.model.parameters(), net.parameters()):
        assert torch.equal(a, b)
    est.set_params(variance_fraction=0.5)
    assert est.variance_fraction == 0.5
    X = torch.randn(20, 10)
    scores = cross_val_score(FisherFlatness(net, progress=False), X.numpy(), cv=2)
    # KFold(2) without shuffling: the first half is the first test fold.
    truth = [-np.mean(np.log(fisher_trace(net, X[s], progress=False))) for s in (slice(0, 10), slice(10, 20))]
    np.testing.assert_allclose(scores, truth, rtol=1e-6)
    with pytest.raises(Exception, match="not fitted"):
        FisherFlatness(net).score(X)


def test_jacobian_flatness_clone_and_params():
    net = mlp()
    # n_eigenvalues=4 keeps every eigenvalue of the output layer's J^T J (C = 4).
    est = JacobianFlatness(net, layers=["1", "output"], n_eigenvalues=4, dtype="float64",
                           chunk_size=4, progress=False)
    params = est.get_params()
    assert sorted(params) == sorted([
        "model", "layers", "n_eigenvalues", "variance_fraction", "dtype", "method",
        "chunk_size", "device", "eval_mode", "progress",
    ])
    assert params["model"] is net and params["layers"] == ["1", "output"]
    assert (params["n_eigenvalues"], params["chunk_size"], params["variance_fraction"]) == (4, 4, 0.9)
    X = torch.randn(7, 10)
    est.fit(X)
    twin = clone(est)
    assert not hasattr(twin, "results_")  # clone gives an unfitted estimator
    assert twin.model is not net and twin.layers == ["1", "output"]
    for a, b in zip(twin.model.parameters(), net.parameters()):
        assert a is not b and torch.equal(a, b)
    twin.fit(X)
    # The deep copy computes the same numbers as the original model.
    np.testing.assert_array_equal(twin.trace_, est.trace_)
    np.testing.assert_array_equal(twin.eigenvalues_, est.eigenvalues_)
    # set_params changes what fit computes: n_directions at 50 % instead of 90 %.
    twin.set_params(variance_fraction=0.5, layers="output").fit(X)
    assert twin.layers_ == ["output"]
    lam = est.eigenvalues_[:, 1]
    n50 = [np.searchsorted(np.cumsum(l) / l.sum(), 0.5 * (1 - 1e-12)) + 1 for l in lam]
    np.testing.assert_array_equal(twin.n_directions_[:, 0], n50)
    with pytest.raises(ValueError, match="Invalid parameter 'layer'"):
        est.set_params(layer="1")


def test_results_xarray_and_tidy_tables(tmp_path):
    net = mlp()
    X = torch.randn(9, 10)
    y = np.arange(9) % 3
    est = JacobianFlatness(net, layers=["1", "output"], n_eigenvalues=5, progress=False).fit(X, y)
    ds = est.results_
    assert dict(ds.sizes) == {"stimulus": 9, "layer": 2, "rank": 5}
    np.testing.assert_array_equal(ds["label"].values, y)
    np.testing.assert_allclose(ds["log_trace"].values, np.log(est.trace_))
    assert np.isnan(ds["eigenvalues"].sel(layer="output").values[:, 4:]).all()  # C = 4 < 5
    path = tmp_path / "flat.nc"
    ds.to_netcdf(path)
    back = xr.load_dataset(path)
    xr.testing.assert_identical(back, ds)
    tidy = est.to_frame()
    assert len(tidy) == 18 and set(tidy["layer"]) == {"1", "output"}
    row = tidy[(tidy.stimulus == 3) & (tidy.layer == "output")].iloc[0]
    assert row["trace"] == est.trace_[3, 1] and row["label"] == 0
    per_layer = flatness_frame(back, by="layer")
    assert list(per_layer["layer"]) == ["1", "output"]
    np.testing.assert_allclose(per_layer["mean_log_trace"], np.log(est.trace_).mean(0))
    np.testing.assert_allclose(per_layer["median_participation_ratio"], np.median(est.participation_ratio_, 0))


def test_estimators_leave_model_untouched():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Tanh(), nn.Linear(8, 3)).train()
    net[4].bias.requires_grad_(False)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    X = torch.randn(10, 6)
    FisherFlatness(net, dtype=torch.float64, progress=False).fit(X).score(X)
    JacobianFlatness(net, layers=["1", "output"], progress=False).fit(X)
    with pytest.raises(RuntimeError):
        FisherFlatness(net, progress=False).fit(torch.randn(3, 7))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    assert {n: p.requires_grad for n, p in net.named_parameters()} == flags
    assert all(m.training for m in net.modules())
    assert next(net.parameters()).dtype == torch.float32


def test_bad_model_outputs():
    X = torch.randn(4, 5)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        FisherFlatness("not a model").fit(X)
    probs = nn.Sequential(nn.Linear(5, 3), nn.Softmax(dim=1))
    with pytest.raises(ValueError, match="probabilities"):
        fisher_trace(probs, X, progress=False)
    with pytest.raises(ValueError, match=r"logits of shape \(batch, n_classes\).*\(batch, 1\)"):
        fisher_trace(nn.Linear(5, 1), X, progress=False)
    with pytest.raises(ValueError, match=r"logits of shape.*\(batch, 2, 3\)"):
        fisher_trace(nn.Sequential(nn.Linear(5, 6), nn.Unflatten(1, (2, 3))), X, progress=False)

    class NaNAt(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 3)

        def forward(self, x):
            return self.lin(x) * torch.sqrt(x[:, :1])  # NaN where x[:, 0] < 0

    Xn = torch.rand(6, 5)
    Xn[5, 0] = -1
    with pytest.raises(ValueError, match="index 5"):
        FisherFlatness(NaNAt(), chunk_size=2, progress=False).fit(Xn)
    with pytest.raises(ValueError, match="variance_fraction"):
        FisherFlatness(nn.Linear(5, 3), variance_fraction=1.5).fit(X)
    with pytest.raises(ValueError, match="dtype"):
        fisher_trace(nn.Linear(5, 3), X, dtype="int32", progress=False)
    with pytest.raises(ValueError, match=r"unknown layer.*closest: '1'"):
        JacobianFlatness(mlp(), layers=["11"]).fit(torch.randn(3, 10))
    with pytest.raises(ValueError, match=r"device must be None.*'gpu0'"):
        FisherFlatness(nn.Linear(5, 3), device="gpu0").fit(X)
    with pytest.raises(TypeError, match="device must be None.*got float"):
        JacobianFlatness(nn.Linear(5, 3), device=1.5).fit(X)


def test_log_softmax_output_gives_the_same_fisher_metric_as_logits():
    # softmax(log_softmax(z)) = softmax(z): log-probabilities are valid logits.
    net = mlp()
    X = torch.randn(6, 10, dtype=torch.float64)
    with_log = nn.Sequential(net, nn.LogSoftmax(dim=1))
    np.testing.assert_allclose(
        fisher_trace(with_log, X, dtype=torch.float64, progress=False),
        np.trace(brute_fisher(net, X).numpy(), axis1=1, axis2=2), rtol=1e-10,
    )
    with pytest.raises(ValueError, match="remove the final softmax"):
        fisher_eigenvalues(nn.Sequential(net, nn.Softmax(dim=1)), X, progress=False)


def test_saturated_model_warns_in_float32_and_is_exact_in_float64():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Sigmoid(), nn.Linear(6, 3))
    with torch.no_grad():
        net[0].bias.fill_(25.0)  # sigmoid' underflows to 0 in float32 only
    X = torch.rand(5, 5) + 0.5
    with pytest.warns(SaturationWarning, match="dtype=torch.float64"):
        t32 = fisher_trace(net, X, progress=False)
    assert (t32 == 0).all()
    with pytest.warns(SaturationWarning):
        FisherFlatness(net, progress=False).fit(X)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)
        t64 = fisher_trace(net, X, dtype=torch.float64, progress=False)
    expected = np.trace(brute_fisher(net, X).numpy(), axis1=1, axis2=2)
    assert (expected > 0).all()
    np.testing.assert_allclose(t64, expected, rtol=1e-8)
    # A saturated softmax (p_max == 1 in float32) also warns.
    lin = nn.Linear(5, 3)
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([60.0, 0.0, 0.0]))
    with pytest.warns(SaturationWarning, match="softmax is saturated"):
        fisher_trace(lin, torch.randn(3, 5), progress=False)


def test_plots_draw_the_computed_numbers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geomkit.measures.kurtosis import pooled_weight_kurtosis, weight_kurtosis
    from geomkit.plotting import plot_flatness, plot_flatness_spectrum, plot_weight_kurtosis

    net = mlp()
    est = FisherFlatness(net, progress=False).fit(torch.randn(12, 10), np.arange(12) % 2)
    ax = plot_flatness_spectrum(est)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), np.median(est.eigenvalues_[:, 0], axis=0))
    assert ax.get_yscale() == "log" and "Fisher" in ax.get_ylabel()
    ax = plot_flatness(est, "participation_ratio", kind="strip", hue="label")
    offsets = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    np.testing.assert_allclose(np.sort(offsets), np.sort(est.participation_ratio_[:, 0]))
    table = weight_kurtosis(net)
    ax = plot_weight_kurtosis(table)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, table["kurtosis"])
    pooled = pooled_weight_kurtosis(net)
    ax = plot_weight_kurtosis(table, pooled=pooled, alpha=0.5)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [*table["kurtosis"], pooled["kurtosis"]])
    assert [p.get_alpha() for p in ax.patches] == [0.5] * (len(table) + 1)  # kwargs reach seaborn
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "pooled"
    with pytest.raises(ValueError, match="hue='network'"):
        plot_flatness(est, hue="network")
    plt.close("all")


def test_fisher_eigenvalues_when_inputs_are_fewer_than_classes():
    # D = 3 < C - 1 = 5: G is D x D and has min(D, C - 1) = 3 eigenvalues.
    torch.manual_seed(0)
    net = nn.Linear(3, 6).double()
    X = torch.randn(5, 3, dtype=torch.float64)
    ev = fisher_eigenvalues(net, X, progress=False)
    assert ev.shape == (5, 3)
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(brute_fisher(net, X).numpy())[:, ::-1], rtol=1e-10)


@pytest.mark.slow
def test_full_size_mlp_against_per_input_reference():
    # The benchmark's MLP 784-1000-1000-10: Jacobians, Fisher traces and a hidden layer's
    # Frobenius norms against one-input-at-a-time float64 references.
    from geomkit.probe.jacobian import jacobian

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10))
    X = torch.rand(30, 784)
    J = jacobian(net, X, chunk_size=7, progress=False)
    ref = torch.stack([torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x) for x in X])
    torch.testing.assert_close(J, ref, rtol=1e-5, atol=1e-5)
    est = FisherFlatness(net, dtype=torch.float64, progress=False).fit(X)
    G = brute_fisher(net, X[:5]).numpy()
    np.testing.assert_allclose(est.trace_[:5, 0], np.trace(G, axis1=1, axis2=2), rtol=1e-10)
    np.testing.assert_allclose(est.eigenvalues_[:5, 0], np.linalg.eigvalsh(G)[:, ::-1][:, :9], rtol=1e-8, atol=1e-14)
    jac = JacobianFlatness(net, layers=["2"], n_eigenvalues=5, dtype=torch.float64, progress=False).fit(X[:4])
    m = mlp_like_double(net)
    for i, x in enumerate(X[:4].double()):
        Jl = torch.autograd.functional.jacobian(lambda v: m[:3](v[None])[0], x)
        s = torch.linalg.svdvals(Jl).numpy()
        np.testing.assert_allclose(jac.trace_[i, 0], (s**2).sum(), rtol=1e-10)
        np.testing.assert_allclose(jac.eigenvalues_[i, 0], s[:5] ** 2, rtol=1e-8)
