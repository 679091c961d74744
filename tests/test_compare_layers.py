"""compare_layers: every pair equals the single-pair estimators, each layer is prepared once, heat map."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import geomkit.measures.compare as compare_module
from geomkit.measures import CKA, RSA, cka, compare_layers, rsa
from geomkit.plotting import plot_layer_similarity


def _layers(seed, n=60, widths=(4, 7, 12, 30, 80, 5)):
    """Six layers, each a noisy linear read-out of the previous (the 80-unit one uses the Gram route)."""
    rng = np.random.default_rng(seed)
    out, h = {}, rng.normal(size=(n, 6))
    for k, w in enumerate(widths):
        h = np.tanh(h @ rng.normal(size=(h.shape[1], w)) / np.sqrt(h.shape[1])) + 0.3 * rng.normal(size=(n, w))
        out[f"l{k}"] = h
    return out


@pytest.fixture(scope="module")
def acts():
    return _layers(0), _layers(1)


def test_extract_dataset_layout_and_values():
    torch = pytest.importorskip("torch")
    from geomkit.probe import extract

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    ds = extract(net, torch.randn(40, 5), progress=False)
    sim = compare_layers(ds, progress=False)
    assert sim["value"].dims == ("layer_a", "layer_b")
    assert sim.layer_a.values.tolist() == list(ds.data_vars)
    for a in ds.data_vars:
        for b in ds.data_vars:
            expected = cka(ds[a].values, ds[b].values)
            assert float(sim["value"].sel(layer_a=a, layer_b=b)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric,params,single", [
    ("cka", {}, lambda X, Y: cka(X, Y)),
    ("cka", {"debiased": True}, lambda X, Y: cka(X, Y, debiased=True)),
    ("cka", {"kernel": "rbf", "sigma": 0.8}, lambda X, Y: cka(X, Y, kernel="rbf", sigma=0.8)),
    ("rsa", {"method": "whitened_cosine", "metric": "euclidean"},
     lambda X, Y: rsa(X, Y, metric="euclidean", method="whitened_cosine")),
    ("rsa", {"method": "kendall_tau_a"}, lambda X, Y: rsa(X, Y, method="kendall_tau_a")),
])
def test_every_pair_equals_the_single_pair_function(acts, metric, params, single):
    a, b = acts
    sim = compare_layers(a, b, metric, metric_params=params, progress=False)
    expected = np.array([[single(a[i], b[j]) for j in b] for i in a])
    np.testing.assert_allclose(sim["value"].values, expected, rtol=0, atol=1e-12)
    own = compare_layers(a, metric=metric, metric_params=params, progress=False)
    np.testing.assert_allclose(own["value"].values, own["value"].values.T, rtol=0, atol=0)
    np.testing.assert_allclose(np.diag(own["value"].values), 1.0, atol=1e-12)


@pytest.mark.parametrize("metric,estimator", [("cka", CKA(debiased=True)),
                                              ("rsa", RSA(method="spearman"))])
def test_intervals_and_p_values_equal_the_estimators_with_the_same_seed(acts, metric, estimator):
    """Same seed, same draws: the shared resampling gives the estimators' numbers for every pair."""
    a, b = acts
    params = {"debiased": True} if metric == "cka" else {"method": "spearman"}
    sim = compare_layers(a, b, metric, metric_params=params, n_bootstraps=30, n_permutations=19,
                         random_state=3, progress=False)
    for i, j in [("l0", "l1"), ("l4", "l2"), ("l5", "l5")]:
        est = estimator.set_params(n_bootstraps=30, n_permutations=19, random_state=3).fit(a[i], b[j])
        cell = sim.sel(layer_a=i, layer_b=j)
        assert float(cell["value"]) == pytest.approx(est.value_, abs=1e-12)
        assert (float(cell["ci_low"]), float(cell["ci_high"])) == pytest.approx(est.ci_, abs=1e-12)
        assert float(cell["p_value"]) == pytest.approx(est.p_value_, abs=1e-15)


def test_each_layer_is_prepared_once_per_resample(acts, monkeypatch):
    calls = []
    for name in ("_prepare", "_subset"):  # centring / Gram from data, or a resampled Gram
        original = getattr(compare_module, name)

        def counting(X, *args, _original=original, _name=name, **kw):
            calls.append(_name)
            return _original(X, *args, **kw)

        monkeypatch.setattr(compare_module, name, counting)
    a, b = acts
    compare_layers(a, progress=False)
    assert len(calls) == 6  # 36 pairs (21 distinct), 6 centrings / Grams
    calls.clear()
    compare_layers(a, b, progress=False)
    assert len(calls) == 12
    calls.clear()
    compare_layers(a, n_bootstraps=4, progress=False)
    assert len(calls) == 6 + 4 * 6
    # layers of 12, 30 and 80 units (60 stimuli <= units^2) are held as Grams and resample them
    assert calls.count("_subset") == 3 * 4


def test_round_trips_through_netcdf(acts, tmp_path):
    sim = compare_layers(acts[0], n_bootstraps=10, n_permutations=9, random_state=0, progress=False)
    path = tmp_path / "sim.nc"
    sim.to_netcdf(path)
    back = xr.load_dataset(path)
    xr.testing.assert_identical(back, sim)
    assert np.all(sim["ci_low"] <= sim["ci_high"]) and np.all((sim["p_value"] > 0) & (sim["p_value"] <= 1))


def test_bad_input(acts):
    a, _ = acts
    with pytest.raises(ValueError, match="same stimuli; got stimulus counts"):
        compare_layers(a, {"x": np.ones((10, 3))}, progress=False)
    with pytest.raises(ValueError, match=r"layers \['l9'\] not found"):
        compare_layers(a, layers_a=["l0", "l9"], progress=False)
    with pytest.raises(ValueError, match="are not parameters of metric='cka'"):
        compare_layers(a, metric_params={"method": "spearman"}, progress=False)
    with pytest.raises(ValueError, match="zero variance"):
        compare_layers({"flat": np.ones((10, 3)), "x": np.eye(10)}, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        compare_layers({"x": np.full((10, 3), np.nan)}, progress=False)
    with pytest.raises(TypeError, match="must be an xarray.Dataset"):
        compare_layers(np.ones((10, 3)), progress=False)
    with pytest.raises(ValueError, match="metric must be one of"):
        compare_layers(a, metric="cca", progress=False)


def test_heat_map_draws_the_values_and_intervals(acts):
    import matplotlib.pyplot as plt

    sim = compare_layers(acts[0], layers_a=["l0", "l1", "l2"], n_bootstraps=20, random_state=0,
                         progress=False)
    ax = plot_layer_similarity(sim)
    # bootstrapped: the bias-corrected value, the centre of the interval, is drawn
    np.testing.assert_array_equal(ax.images[0].get_array(), sim["value_corrected"].values)
    first = ax.texts[1].get_text()  # row l0, column l1
    v, lo, hi = (float(sim[k].sel(layer_a="l0", layer_b="l1"))
                 for k in ("value_corrected", "ci_low", "ci_high"))
    assert lo <= v <= hi and first == f"{v:.2f}\n[{lo:.2f}, {hi:.2f}]"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["l0", "l1", "l2"]
    assert ax.get_xlabel() == "layer_b" and ax.get_ylabel() == "layer_a"
    plt.close(ax.figure)


def test_study_figure_draws_the_model_by_model_similarity():
    import matplotlib.pyplot as plt

    from geomkit.plotting import study_figures

    models = ["mlp", "softhebb", "jacobian"]
    value = np.array([[1.0, 0.3, 0.8], [0.3, 1.0, 0.25], [0.8, 0.25, 1.0]])
    dims = ("model_a", "model_b")
    ds = xr.Dataset({"hidden_cka": (dims, value), "hidden_cka_ci_low": (dims, value - 0.05),
                     "hidden_cka_ci_high": (dims, value + 0.05)},
                    coords={"model": models, "model_a": models, "model_b": models})
    figures = study_figures(ds)
    assert list(figures) == ["model_similarity"]
    fig, caption = figures["model_similarity"]
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), value)
    assert ax.texts[1].get_text() == "0.30\n[0.25, 0.35]"
    assert "bootstrap" in caption
    plt.close(fig)
