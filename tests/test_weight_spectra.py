"""weight_spectra against closed forms, numpy's SVD and the powerlaw package."""

import math
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

torch = pytest.importorskip("torch")

from geomkit.measures.weight_spectra import WEIGHT_SPECTRA_COLUMNS, weight_spectra  # noqa: E402


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    # The test machine is shared; oversubscribed BLAS threads slow SVDs several-fold.
    with threadpool_limits(1):
        yield


def _linear_with_spectrum(eigenvalues, n_in, seed=0):
    """A Linear layer whose W' W has the given non-zero eigenvalues."""
    rng = np.random.default_rng(seed)
    k = eigenvalues.size
    U, _ = np.linalg.qr(rng.normal(size=(k, k)))
    V, _ = np.linalg.qr(rng.normal(size=(n_in, k)))
    W = (U * np.sqrt(eigenvalues)) @ V.T
    layer = torch.nn.Linear(n_in, k, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W))
    return layer, W


def _pareto(a, n, seed):
    rng = np.random.default_rng(seed)
    return np.sort((1 - rng.random(n)) ** (-1 / (a - 1)))[::-1]


def test_eigenvalues_are_squared_singular_values_linear_and_conv():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 20)
    )
    table = weight_spectra(net, progress=False)
    assert list(table.columns) == list(WEIGHT_SPECTRA_COLUMNS)
    conv = net[0].weight.detach().numpy().reshape(8, -1)  # (out, in * kh * kw)
    lin = net[3].weight.detach().numpy()
    for row, W in zip(table.itertuples(), (conv, lin)):
        ref = np.linalg.svd(W.astype(np.float64), compute_uv=False) ** 2
        np.testing.assert_allclose(row.eigenvalues, ref, rtol=1e-10)
        assert (row.n_rows, row.n_cols) == W.shape and row.shape == f"{W.shape[0]} x {W.shape[1]}"
    assert list(table["module"]) == ["Conv2d", "Linear"]
    # The parameters' own shapes, besides the matrices they are read as.
    assert list(table["weight_shape"]) == [(8, 3, 3, 3), (20, 8 * 6 * 6)]
    assert table.loc[0, "shape"] == "8 x 27"


def test_norms_and_ranks_match_their_closed_forms():
    lam = np.linspace(4.0, 1.0, 30)
    layer, W = _linear_with_spectrum(lam, 50)
    row = weight_spectra(torch.nn.Sequential(layer), progress=False).iloc[0]
    assert row.lambda_max == pytest.approx(4.0)
    assert row.stable_rank == pytest.approx(lam.sum() / 4.0)
    assert row.log_norm == pytest.approx(math.log10((W**2).sum()))  # log10 ||W||_F^2
    assert row.alpha_weighted == pytest.approx(row.alpha * math.log10(4.0))


@pytest.mark.parametrize("a", [2.0, 2.5, 4.0])
def test_density_exponent_of_a_pareto_spectrum(a):
    lam = _pareto(a, 1000, seed=1)
    # A rectangular diagonal W has singular values sqrt(lam) exactly.
    layer = torch.nn.Linear(1100, 1000, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, :1000] = torch.diag(torch.from_numpy(np.sqrt(lam)))
    row = weight_spectra(torch.nn.Sequential(layer), progress=False).iloc[0]
    stored = np.diag(layer.weight.detach().numpy()[:, :1000]).astype(np.float64) ** 2  # float32 W
    np.testing.assert_allclose(row.eigenvalues, np.sort(stored)[::-1], rtol=1e-12)
    # Within 3 standard errors of the MLE, (a - 1) / sqrt(n_tail) (Clauset et al. 2009).
    assert abs(row.alpha - a) < 3 * (a - 1) / np.sqrt(row.n_tail)
    assert row.alpha_rank == pytest.approx(1 / (row.alpha - 1))
    assert row.n_tail == np.count_nonzero(row.eigenvalues >= row.xmin)


def test_alpha_xmin_and_ks_equal_the_powerlaw_package():
    powerlaw = pytest.importorskip("powerlaw")
    rng = np.random.default_rng(3)
    lam = np.concatenate([_pareto(2.4, 300, seed=2), rng.lognormal(-1.0, 0.4, 200)])
    layer, _ = _linear_with_spectrum(np.sort(lam)[::-1], 600)
    row = weight_spectra(torch.nn.Sequential(layer), progress=False).iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(row.eigenvalues, verbose=0).power_law
        ref_alpha, ref_xmin, ref_d = ref.alpha, ref.xmin, ref.D
    assert row.alpha == pytest.approx(ref_alpha, rel=1e-8)
    assert row.xmin == pytest.approx(ref_xmin, rel=1e-12)
    assert row.ks_distance == pytest.approx(ref_d, rel=1e-8)


def test_float32_svd_agrees_with_float64():
    layer, _ = _linear_with_spectrum(_pareto(2.5, 200, seed=4), 300)
    net = torch.nn.Sequential(layer)
    a = weight_spectra(net, dtype="float64", progress=False).iloc[0]
    b = weight_spectra(net, dtype="float32", device="cpu", progress=False).iloc[0]
    np.testing.assert_allclose(b.eigenvalues[:50], a.eigenvalues[:50], rtol=1e-4)


def test_model_is_left_untouched():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.Linear(20, 5)).train()
    net[1].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    weight_spectra(net, progress=False)
    assert net.training and not net[1].weight.requires_grad and net[0].weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net[0].weight.grad is None


def test_layer_selection_and_errors():
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5))
    assert list(weight_spectra(net, layers="2", progress=False)["layer"]) == ["2"]
    with pytest.raises(ValueError, match="Available.*'0'.*'2'"):
        weight_spectra(net, layers=["3"], progress=False)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        weight_spectra(np.eye(3))
    with pytest.raises(ValueError, match="dtype"):
        weight_spectra(net, dtype="float16")
    with pytest.raises(ValueError, match="solver"):
        weight_spectra(net, solver="qr")
    with pytest.raises(ValueError, match=r"layers is empty.*\['0', '2'\]"):
        weight_spectra(net, layers=[], progress=False)


def test_models_without_weight_layers_raise_as_weight_kurtosis_does():
    from geomkit.measures.kurtosis import weight_kurtosis

    for model in (torch.nn.Sequential(torch.nn.ReLU(), torch.nn.BatchNorm1d(4)), torch.nn.Identity()):
        with pytest.raises(ValueError, match="no Linear / Conv1d / Conv2d / Conv3d layer"):
            weight_spectra(model, progress=False)
        with pytest.raises(ValueError, match="no layer with a weight"):
            weight_kurtosis(model)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_raise_naming_the_layer(bad):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Conv1d(1, 3, 2))
    with torch.no_grad():
        net[2].weight[1, 0, 1] = bad
        net[2].weight[2, 0, 0] = bad
    with pytest.raises(ValueError, match=r"layer '2' \(Conv1d\) has 2 NaN or infinite weight\(s\) of 6"):
        weight_spectra(net, progress=False)
    # The finite layer alone is fine: its spectrum is the squared singular values.
    row = weight_spectra(net, layers=["0"], progress=False).iloc[0]
    ref = np.linalg.svd(net[0].weight.detach().double().numpy(), compute_uv=False) ** 2
    np.testing.assert_allclose(row.eigenvalues, ref, rtol=1e-10)


def test_plot_weight_spectra_draws_each_layers_ccdf_and_fitted_tail():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geomkit.plotting import plot_weight_spectra

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(200, 100), torch.nn.ReLU(), torch.nn.Linear(100, 50))
    table = weight_spectra(net, progress=False)
    ax = plot_weight_spectra(table)
    lines = {line.get_label(): line for line in ax.get_lines()}
    for row in table.itertuples():
        curve = lines[f"{row.layer} ({row.shape})"]
        x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
        lam = row.eigenvalues
        assert x.size == lam.size and np.all(lam > 0)
        np.testing.assert_array_equal(np.sort(x), np.sort(lam))
        # Brute-force CCDF: the fraction of the layer's eigenvalues >= x.
        np.testing.assert_allclose(y, (lam[None, :] >= x[:, None]).mean(axis=1), rtol=1e-12)
        assert curve.get_drawstyle() == "steps-post"
        tail = lines[f"tail fit: a = {row.alpha:.2f}, x_min = {row.xmin:.3g}"]
        tx, ty = np.asarray(tail.get_xdata()), np.asarray(tail.get_ydata())
        assert tx[0] == pytest.approx(row.xmin) and tx[-1] == pytest.approx(lam.max())
        # The fitted Pareto tail: P(lambda >= x) = n_tail / n * (x / xmin) ** (1 - a).
        np.testing.assert_allclose(ty, row.n_tail / lam.size * (tx / row.xmin) ** (1 - row.alpha), rtol=1e-12)
    ax = plot_weight_spectra(table, layers=["2"])
    assert [line.get_label() for line in ax.get_lines()][0] == "2 (50 x 100)"
    with pytest.raises(TypeError, match="DataFrame returned by weight_spectra"):
        plot_weight_spectra(np.eye(3))
    plt.close("all")


@pytest.mark.parametrize("shape", [(300, 120), (120, 300)], ids=["tall", "wide"])
def test_eigh_solver_equals_squared_svdvals(shape):
    # The Gram-matrix eigenvalues equal the squared singular values up to rounding of the
    # order lambda_max * n * eps; the fitted tail is then the same.
    torch.manual_seed(1)
    t = torch.distributions.StudentT(df=3.0)
    layer = torch.nn.Linear(shape[1], shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(t.sample(layer.weight.shape) / np.sqrt(shape[1]))
    net = torch.nn.Sequential(layer)
    a = weight_spectra(net, solver="eigh", progress=False).iloc[0]
    b = weight_spectra(net, solver="svd", progress=False).iloc[0]
    ref = np.linalg.svd(layer.weight.detach().numpy().astype(np.float64), compute_uv=False) ** 2
    np.testing.assert_allclose(b.eigenvalues, ref, rtol=1e-10)
    assert a.eigenvalues.size == min(shape)
    np.testing.assert_allclose(a.eigenvalues, ref, rtol=0, atol=1e-12 * ref[0])
    for column in ("alpha", "xmin", "ks_distance", "n_tail", "stable_rank", "log_norm"):
        assert a[column] == pytest.approx(b[column], rel=1e-9), column


def test_named_arrays_give_the_rows_of_the_module():
    """A dict of weight arrays (as weight_kurtosis takes) measures like the module's layers."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Conv1d(2, 4, 3))
    from_module = weight_spectra(net, progress=False)
    arrays = {"0": net[0].weight.detach().numpy(), "2": net[2].weight.detach()}
    from_dict = weight_spectra(arrays, progress=False)
    assert list(from_dict["layer"]) == ["0", "2"]
    assert list(from_dict["module"]) == ["ndarray", "Tensor"]
    for col in ["shape", "weight_shape", "n_eigenvalues"]:
        assert list(from_dict[col]) == list(from_module[col])
    for col in ["lambda_max", "alpha", "xmin", "stable_rank", "log_norm"]:
        np.testing.assert_allclose(from_dict[col], from_module[col], rtol=1e-12)
    for a, b in zip(from_dict["eigenvalues"], from_module["eigenvalues"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * b[0])
    assert weight_spectra(arrays, layers="2", progress=False)["layer"].tolist() == ["2"]
    with pytest.raises(ValueError, match=r"2 or more dimensions.*\['b'\]"):
        weight_spectra({"a": np.ones((3, 3)), "b": np.ones(3)}, progress=False)
    with pytest.raises(TypeError, match="torch.nn.Module or a dict"):
        weight_spectra([np.ones((3, 3))], progress=False)


# ----------------------------------------------------------------------------- small layers
@pytest.mark.parametrize("a", [2.0, 3.0, 4.0])
def test_small_layers_use_the_small_sample_rule_which_is_closer_to_the_truth(a):
    # Ground truth: Pareto spectra of 12 eigenvalues with density exponent a. The plain
    # KS-minimizing MLE picks short tails and overshoots (median 3.5 at a = 3, measured);
    # the small-sample rule (tails >= 8, bias-corrected MLE) stays near a.
    from geomkit.measures._powerlaw import clauset_fit

    small, plain = [], []
    for seed in range(150):
        lam = _pareto(a, 12, seed=seed)
        row = weight_spectra({"W": np.diag(np.sqrt(lam))}, progress=False).iloc[0]
        assert row.fit_rule == "small-sample" and row.n_tail >= 8
        small.append(row.alpha)
        plain.append(clauset_fit(lam)[0])
    small, plain = np.array(small), np.array(plain)
    assert abs(np.median(small) - a) < 0.1 * a
    assert np.mean(np.abs(small - a)) < 0.7 * np.mean(np.abs(plain - a))


def test_small_sample_rule_equals_its_definition_by_brute_force():
    # Independent check of the rule: every tail of >= 8 values, bias-corrected MLE, KS distance.
    lam = _pareto(2.5, 15, seed=4)
    row = weight_spectra({"W": np.diag(np.sqrt(lam))}, progress=False).iloc[0]
    x = np.sort(lam)
    best = None
    for i in range(x.size - 7):
        tail = x[i:]
        a = 1 + (tail.size - 1) / np.sum(np.log(tail / tail[0]))
        ks = np.max(np.abs(np.arange(tail.size) / tail.size - (1 - (tail / tail[0]) ** (1 - a))))
        if best is None or ks < best[0]:
            best = (ks, a, tail[0], tail.size)
    assert row.alpha == pytest.approx(best[1], rel=1e-12)
    assert (row.xmin, row.n_tail) == (pytest.approx(best[2], rel=1e-12), best[3])
    assert row.ks_distance == pytest.approx(best[0], rel=1e-9)


def test_large_layers_keep_the_clauset_rule():
    lam = _pareto(2.4, 60, seed=1)
    row = weight_spectra({"W": np.diag(np.sqrt(lam))}, progress=False).iloc[0]
    assert row.fit_rule == "clauset"


def test_a_rank_three_matrix_has_no_tail_exponent_and_says_so():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(10, 3)) @ rng.normal(size=(3, 40))  # rank 3: 3 non-zero eigenvalues
    with pytest.warns(UserWarning, match="only 3 non-zero eigenvalue"):
        row = weight_spectra({"W": W}, progress=False).iloc[0]
    assert math.isnan(row.alpha) and math.isnan(row.alpha_rank) and row.fit_rule == "none"
    assert row.stable_rank == pytest.approx(np.sum(np.linalg.svd(W, compute_uv=False) ** 2)
                                            / np.linalg.norm(W, 2) ** 2)
