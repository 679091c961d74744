"""Model probes of categorical perception (per-layer index, morph continua) and tuning maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import distance
from sklearn.decomposition import PCA

from geomkit.measures.categorization import CategorizationIndex
from geomkit.measures.topology import LevelSetTopology, contour_signature
from geomkit.probe import (
    categorization_by_layer,
    extract,
    layer_activations,
    morph_profile,
    morph_profiles,
    pca_directions,
    stimulus_directions,
    tuning_map,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: extra threads only fight over the cores (20x slower on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def linear(weight, bias):
    layer = torch.nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return torch.nn.Sequential(layer)


def mlp(seed=0, n_in=6, n_hidden=16, n_out=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, n_hidden), torch.nn.ReLU(),
                               torch.nn.Linear(n_hidden, n_out))


# -- per-layer categoricality ---------------------------------------------------------------


def test_categorization_by_layer_equals_the_estimator_on_each_layer():
    net = mlp()
    net.train()  # must be left in train mode
    x = torch.randn(90, 6, generator=torch.Generator().manual_seed(1))
    y = np.arange(90) % 3
    table = categorization_by_layer(net, x, y, n_bootstraps=50, random_state=3, progress=False)
    seed = int(np.random.default_rng(3).integers(2**32))  # one seed for all layers
    ds = extract(net, x, progress=False)
    spaces = {"input": x.numpy(), **{k: layer_activations(ds, k).values for k in ds.data_vars}}
    assert table["layer"].tolist() == list(spaces)
    assert table["depth"].tolist() == list(range(len(spaces)))
    for row in table.itertuples():
        est = CategorizationIndex(n_bootstraps=50, random_state=seed).fit(spaces[row.layer], y)
        assert row.index == est.index_
        assert (row.ci_low, row.ci_high) == est.ci_
        assert row.n_units == spaces[row.layer].shape[1]
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_categorization_by_layer_reads_labels_from_a_dataloader():
    net = mlp(seed=2)
    x = torch.randn(60, 6, generator=torch.Generator().manual_seed(2))
    y = torch.arange(60) % 3
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    from_loader = categorization_by_layer(net, loader, n_bootstraps=0, progress=False)
    from_arrays = categorization_by_layer(net, x, y, n_bootstraps=0, progress=False)
    np.testing.assert_array_equal(from_loader["index"], from_arrays["index"])
    with pytest.raises(ValueError, match="labels are needed"):
        categorization_by_layer(net, x, n_bootstraps=0, progress=False)


def test_shuffled_dataloader_keeps_inputs_and_labels_paired():
    # Two far clusters: a mislabelled "input" baseline would lose its categoricality.
    gen = torch.Generator().manual_seed(5)
    y = torch.arange(80) % 2
    x = torch.randn(80, 6, generator=gen) + 6.0 * torch.nn.functional.one_hot(y, 6).float()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16,
                                         shuffle=True, generator=torch.Generator().manual_seed(0))
    table = categorization_by_layer(mlp(), loader, n_bootstraps=0, random_state=7, progress=False)
    # The seed is that of the table; the pairs depend on the order of the labels, so the
    # reference is computed in the order the loader yielded (same generator state).
    order = torch.cat([yb for _, yb in torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.arange(80), y), batch_size=16, shuffle=True,
        generator=torch.Generator().manual_seed(0))]).numpy()
    seed = int(np.random.default_rng(7).integers(2**32))
    est = CategorizationIndex(n_bootstraps=0, random_state=seed).fit(x.numpy()[order],
                                                                    y.numpy()[order])
    row = table.set_index("layer").loc["input"]
    assert row["index"] == est.index_
    assert row["index"] > 0.9  # paired: the clusters are found


def test_categorization_by_layer_reads_a_one_shot_iterable_once():
    net = mlp(seed=1)
    x = torch.randn(48, 6, generator=torch.Generator().manual_seed(3))
    y = torch.arange(48) % 3
    batches = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 48, 10))  # a generator
    from_gen = categorization_by_layer(net, batches, n_bootstraps=0, progress=False)
    from_arrays = categorization_by_layer(net, x, y, n_bootstraps=0, progress=False)
    np.testing.assert_array_equal(from_gen["index"], from_arrays["index"])


def test_training_makes_hidden_layers_more_categorical_than_the_input():
    """Bonnasse-Gahot & Nadal's finding: categoricality grows with depth in a trained net."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    table = categorization_by_layer(net, x, y, layers=["1", "3"], n_bootstraps=0, progress=False)
    index = dict(zip(table["layer"], table["index"]))
    assert index["input"] < 0.7
    assert index["1"] > index["input"] + 0.05
    assert index["3"] > index["1"]


# -- morph continua -------------------------------------------------------------------------


def test_two_class_linear_model_crossing_and_distances():
    W, b = [[-1.0, 0.5], [1.0, -0.25]], [0.2, -0.1]
    net = linear(W, b)
    x_a, x_b = np.array([-3.0, 1.0]), np.array([4.0, 2.0])
    prof = morph_profile(net, x_a, x_b, n_steps=101, margin=5)
    # Closed form: the logits are equal where (w_b - w_a) . x(lambda) + (b_b - b_a) = 0.
    g = lambda x: (np.subtract(W[1], W[0]) @ x) + (b[1] - b[0])
    lam_star = g(x_a) / (g(x_a) - g(x_b))
    assert float(prof.crossing) == pytest.approx(lam_star, abs=1e-4)
    assert (int(prof.class_a), int(prof.class_b)) == (0, 1)
    lam = prof["lambda"].values
    assert int(prof.boundary_step) == np.argmin(np.abs(prof.p_a.values - 0.5))
    assert abs(lam[int(prof.boundary_step)] - lam_star) <= 0.5 / 100 + 1e-9
    assert prof.aligned.values[int(prof.boundary_step)] == 0.0
    # Distances: cosine between the logits of consecutive steps, computed directly.
    path = (1 - lam)[:, None] * x_a + lam[:, None] * x_b
    logits = path @ np.array(W).T + b
    expected = [distance.cosine(logits[k], logits[k + 1]) for k in range(100)]
    np.testing.assert_allclose(prof.distance.sel(layer="0").values, expected, rtol=1e-4, atol=1e-7)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prof.probability.values, softmax, atol=1e-6)


def test_acceptance_rule_and_fraction_accepted():
    # Class 2 wakes up with the third input coordinate (logit -10 + 12 x2).
    net = linear([[-1.0, 0, 0], [1.0, 0, 0], [0, 0, 12.0]], [0.0, 0.0, -10.0])
    X_a = torch.tensor([[-6.0, 0, 0], [-6.0, 0, 1.0], [-1.0, 0, 0]])
    X_b = torch.tensor([[6.0, 0, 0], [6.0, 0, 1.0], [11.0, 0, 0]])
    prof = morph_profiles(net, X_a, X_b, n_steps=51, progress=False)
    # 1: clean; 2: a third class takes the middle; 3: boundary 4 steps from the start (< 10).
    assert prof.accepted.values.tolist() == [True, False, False]
    assert prof.attrs["fraction_accepted"] == pytest.approx(1 / 3)
    assert int(prof.boundary_step[0]) == 25
    assert int(prof.boundary_step[2]) == 4
    total = (prof.p_a + prof.p_b).min("step").values
    assert total[0] > 0.95 > total[1]
    # The aligned means average the accepted pair only.
    np.testing.assert_allclose(prof.p_a_aligned.values, prof.p_a.values[0, 15:36])


def test_decoder_path_equals_input_path_for_a_linear_decoder():
    torch.manual_seed(0)
    decoder = torch.nn.Linear(2, 3)
    decoder.train()
    net = mlp(seed=4, n_in=3, n_out=2)
    Z_a, Z_b = torch.randn(4, 2), torch.randn(4, 2)
    through = morph_profiles(net, Z_a, Z_b, n_steps=21, decoder=decoder, margin=2, progress=False)
    with torch.no_grad():
        direct = morph_profiles(net, decoder(Z_a), decoder(Z_b), n_steps=21, margin=2,
                                progress=False)
    # An affine decoder commutes with interpolation.
    np.testing.assert_allclose(through.distance.values, direct.distance.values, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(through.probability.values, direct.probability.values, atol=1e-6)
    assert decoder.training  # left as found


def test_distance_peaks_at_the_boundary_in_a_saturating_layer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.cat([torch.full((16, 1), 4.0), 0.1 * torch.randn(16, 1)], 1))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.cat([-torch.ones(1, 16), torch.ones(1, 16)]))
        net[2].bias.zero_()
    prof = morph_profile(net, [-3.0, 1.0], [3.0, 1.0], n_steps=61)
    hidden = prof.distance.sel(layer="1").values
    assert abs(int(np.argmax(hidden)) - int(prof.boundary_step)) <= 1
    assert prof.attrs["accepted"]
    # Far from the boundary the saturated units barely move: a sharp peak.
    assert hidden.max() > 50 * np.median(hidden)


def test_morph_bad_input_is_named():
    net = linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    with pytest.raises(ValueError,
                       match=r"x_a and x_b must have the same shape; got \(2,\) and \(3,\)"):
        morph_profile(net, [0.0, 1.0], [1.0, 0.0, 0.0], margin=1)
    with pytest.raises(ValueError, match="n_steps must be >= 3; got 2"):
        morph_profile(net, [0.0, 1.0], [1.0, 0.0], n_steps=2, margin=0)
    with pytest.raises(ValueError, match="X_b holds 2 items but the other end holds 1"):
        morph_profiles(net, torch.zeros(1, 2), torch.zeros(2, 2), margin=1, progress=False)


@pytest.mark.parametrize("n_steps, margin", [(20, 10), (6, 3), (3, 2)])
def test_morph_steps_too_few_for_the_margin_raise(n_steps, margin):
    # A boundary at least `margin` steps from both ends needs n_steps >= 2 margin + 1.
    net = linear([[-1.0, 0.0], [1.0, 0.0]], [0.0, 0.0])
    with pytest.raises(ValueError, match=rf"n_steps={n_steps} .* margin={margin}.*"
                                         rf"= {2 * margin + 1}"):
        morph_profile(net, [-2.0, 0.0], [2.0, 0.0], n_steps=n_steps, margin=margin)


def test_morph_smallest_allowed_steps_accept_the_middle_boundary():
    # n_steps = 2 margin + 1: the only admissible boundary is the middle step, and a symmetric
    # continuum of a symmetric two-class model has it there (p_a = 0.5 at lambda = 1/2).
    net = linear([[-1.0, 0.5], [1.0, 0.5]], [0.0, 0.0])
    prof = morph_profile(net, [-4.0, 1.0], [4.0, 1.0], n_steps=7, margin=3)
    np.testing.assert_allclose(prof.p_a.values[3], 0.5, atol=1e-7)
    assert int(prof.boundary_step) == 3
    assert prof.attrs["accepted"]


def test_morph_profile_leaves_the_model_untouched():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.ReLU(),
                              torch.nn.Linear(8, 2))
    net.train()
    net[3].eval()
    net[0].bias.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    grads = [p.requires_grad for p in net.parameters()]
    prof = morph_profile(net, [-1.0, 0.5, 0.0], [1.0, -0.5, 0.2], n_steps=9, margin=1)
    # Run in eval mode: dropout off, so the distances equal those of the eval-mode net.
    with torch.no_grad():
        lam = prof["lambda"].values[:, None]
        path = torch.tensor((1 - lam) * [-1.0, 0.5, 0.0] + lam * [1.0, -0.5, 0.2],
                            dtype=torch.float32)
        out = net.eval()(path).numpy()
    np.testing.assert_allclose(
        prof.distance.sel(layer="3").values,
        [distance.cosine(out[k], out[k + 1]) for k in range(8)], rtol=1e-4, atol=1e-7)
    net.train()
    net[3].eval()
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == grads
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # bitwise
    assert all(p.grad is None for p in net.parameters())


def test_probabilities_output_is_used_as_given_and_sums_to_one():
    W, b = [[-1.0, 0.5, 0.0], [1.0, -0.25, 0.3], [0.2, 0.1, -0.4]], [0.2, -0.1, 0.0]
    logits_net = linear(W, b)
    prob_net = torch.nn.Sequential(logits_net[0], torch.nn.Softmax(dim=1))
    x_a, x_b = [-3.0, 1.0, 0.5], [4.0, 2.0, -1.0]
    from_probs = morph_profile(prob_net, x_a, x_b, n_steps=31, margin=3, output="probabilities")
    from_logits = morph_profile(logits_net, x_a, x_b, n_steps=31, margin=3)
    p = from_probs.probability.values
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    lam = from_probs["lambda"].values[:, None]
    z = ((1 - lam) * np.array(x_a) + lam * np.array(x_b)) @ np.array(W).T + b
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(p, from_logits.probability.values, atol=1e-6)
    assert float(from_probs.crossing) == pytest.approx(float(from_logits.crossing), abs=1e-5)


# -- tuning maps ----------------------------------------------------------------------------


def test_tuning_map_of_linear_units_is_the_plane():
    W = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    bias = np.array([0.3, -0.2])
    net = linear(W.tolist(), bias.tolist())
    origin, d1, d2 = np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, -1.0])
    maps = tuning_map(net, "0", [0, 1], origin, d1, d2, extent=(-2, 3), resolution=11)
    a = np.linspace(-2, 3, 11)
    for k in range(2):
        expected = (W[k] @ origin + bias[k]) + a[None, :] * (W[k] @ d1) + a[:, None] * (W[k] @ d2)
        np.testing.assert_allclose(maps.sel(unit=k).values, expected, rtol=1e-5, atol=1e-5)
    assert maps.dims == ("unit", "y", "x")
    np.testing.assert_allclose(maps.x.values, a)


def test_tuning_map_of_a_conv_unit_and_stimulus_directions():
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0  # channel 0 copies the pixel under it
        conv.bias.zero_()
    net = torch.nn.Sequential(conv)
    rng = np.random.default_rng(0)
    origin, s1, s2 = (rng.normal(size=(1, 5, 6)) for _ in range(3))
    d1, d2 = stimulus_directions(origin, s1, s2)
    m = tuning_map(net, "0", (0, 2, 3), origin, d1, d2, extent=1.0, resolution=3)
    # Coefficients -1, 0, 1: (x=0, y=0) is the origin, (1, 0) is stimulus 1, (0, 1) stimulus 2.
    assert m.sel(x=0.0, y=0.0).item() == pytest.approx(origin[0, 2, 3], abs=1e-6)
    assert m.sel(x=1.0, y=0.0).item() == pytest.approx(s1[0, 2, 3], abs=1e-6)
    assert m.sel(x=0.0, y=1.0).item() == pytest.approx(s2[0, 2, 3], abs=1e-6)


def test_tuning_map_equals_the_whole_layer_extracted_then_picked():
    # The previous implementation, kept as the reference: record the whole layer over the
    # plane with extract, then pick the units. Batches of 7 do not divide the 10 x 10 grid.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 3, 3))
    rng = np.random.default_rng(1)
    origin, d1, d2 = (rng.normal(size=(2, 6, 7)) for _ in range(3))
    units = [(1, 2, 3), 0, (2, 3, 4), 59]
    maps = tuning_map(net, "2", units, origin, d1, d2, extent=(-1.5, 2.0), resolution=10,
                      batch_size=7)
    coef = np.linspace(-1.5, 2.0, 10)
    b, a = np.meshgrid(coef, coef, indexing="ij")  # row-major: y (direction_2) is the slow axis
    plane = (origin + a.reshape(-1, 1, 1, 1) * d1 + b.reshape(-1, 1, 1, 1) * d2).astype(np.float32)
    acts = layer_activations(extract(net, plane, ["2"], batch_size=100, progress=False), "2")
    flat = [int(np.ravel_multi_index(u, (3, 4, 5))) if isinstance(u, tuple) else u for u in units]
    expected = acts.values[:, flat].T.reshape(4, 10, 10).astype(np.float64)
    np.testing.assert_array_equal(maps.values, expected)
    assert maps["unit"].values.tolist() == flat
    single = tuning_map(net, "2", (1, 2, 3), origin, d1, d2, extent=(-1.5, 2.0), resolution=10,
                        batch_size=13)
    np.testing.assert_array_equal(single.values, expected[0])


def test_pca_directions_are_the_principal_axes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4, 3)) * np.linspace(3, 0.2, 12).reshape(4, 3)
    dirs = pca_directions(X, 2)
    assert dirs.shape == (2, 4, 3)
    flat = dirs.reshape(2, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(2), atol=1e-12)
    ref = PCA(2).fit(X.reshape(200, -1)).components_
    np.testing.assert_allclose(np.abs(flat @ ref.T), np.eye(2), atol=1e-8)


def test_tuning_map_of_a_tuned_unit_has_one_peak_and_one_loop():
    class Bump(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.readout = torch.nn.Identity()

        def forward(self, x):
            centre = torch.tensor([0.3, -0.2, 0.0])
            return self.readout(torch.exp(-((x - centre) ** 2).sum(1, keepdim=True) / 0.5))

    m = tuning_map(Bump(), "readout", 0, np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                   extent=3.0, resolution=48)
    topo = LevelSetTopology(n_levels=21).fit(m.values[None])
    assert topo.peak_counts_.tolist() == [1]
    loops = contour_signature(m.values, n_levels=21).sel(kind="loop").values
    assert loops[1:-1].tolist() == [1] * 19  # every interior level: one closed contour
    # The peak sits at the grid point nearest to the centre (0.3, -0.2).
    iy, ix = np.unravel_index(m.values.argmax(), m.shape)
    assert (iy, ix) == (np.abs(m.y.values + 0.2).argmin(), np.abs(m.x.values - 0.3).argmin())


def test_tuning_map_bad_input():
    net = linear([[1.0, 0.0]], [0.0])
    with pytest.raises(ValueError, match="out of range"):
        tuning_map(net, "0", 5, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="origin's shape"):
        tuning_map(net, "0", 0, [0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="extent"):
        tuning_map(net, "0", 0, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], extent=(1, 1))
    with pytest.raises(ValueError, match="unknown layer"):
        tuning_map(net, "nope", 0, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0])

    class Pair(torch.nn.Module):
        def forward(self, x):
            return x, 2 * x

    two = torch.nn.Sequential(Pair())
    with pytest.raises(ValueError, match=r"layer '0' gave no single tensor output.*'0\[0\]'"):
        tuning_map(two, "0", 0, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0])


def test_plot_categorization_by_layer_labels_models_of_different_depth():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from geomkit.plotting import plot_categorization_by_layer

    # Two made-up models: "deep" has 4 layers named by module, "shallow" 3 with other names.
    deep = pd.DataFrame({"layer": ["input", "fc1", "fc2", "out"], "depth": [0, 1, 2, 3],
                         "index": [0.1, 0.3, 0.5, 0.8], "ci_low": [0.05, 0.2, 0.4, 0.7],
                         "ci_high": [0.15, 0.4, 0.6, 0.9]}).assign(model="deep")
    shallow = pd.DataFrame({"layer": ["input", "hidden", "out"], "depth": [0, 1, 2],
                            "index": [0.1, 0.6, 0.9], "ci_low": [0.0, 0.5, 0.85],
                            "ci_high": [0.2, 0.7, 0.95]}).assign(model="shallow")
    ax = plot_categorization_by_layer(pd.concat([deep, shallow]), hue="model", linewidth=3)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["input", "fc1 / hidden", "fc2 / out", "out"]
    np.testing.assert_array_equal(ax.get_xticks(), [0, 1, 2, 3])
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]  # not the legend handles
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_ydata(), deep["index"])
    np.testing.assert_array_equal(lines[1].get_ydata(), shallow["index"])
    assert {line.get_linewidth() for line in lines} == {3}
    # Each band is drawn in its line's colour between the interval bounds.
    for band, line, rows in zip(ax.collections, lines, (deep, shallow)):
        np.testing.assert_allclose(band.get_facecolor()[0][:3], matplotlib.colors.to_rgb(line.get_color()))
        path = band.get_paths()[0].vertices
        assert path[:, 1].min() == rows["ci_low"].min() and path[:, 1].max() == rows["ci_high"].max()
    plt.close("all")
