"""The report and its claims table follow from a results Dataset: synthetic results, known verdicts."""

import base64
import re

import numpy as np
import pytest
import xarray as xr

from geomkit.report import (
    build_report,
    claims_table,
    diagnostics_table,
    load_results,
    paired_interval,
    summary_table,
)

MODELS = ["mlp", "spectral_a1", "spectral_a2.5", "sigmoid_saturated", "krotov_hopfield", "softhebb"]
LAYERS = ["input", "hidden", "output"]


def _with_nan_input(values):
    values = np.asarray(values, dtype=float)
    values[:, LAYERS.index("input")] = np.nan
    return values


def _results(alpha_a1=1.05, alpha_a25=2.45, kh_r2=0.97, cat=(0.2, 0.5, 0.8)):
    rng = np.random.default_rng(0)
    n_m, n_l, n_rank = len(MODELS), len(LAYERS), 50
    alpha = np.full((n_m, n_l), 1.5)
    alpha[MODELS.index("spectral_a1"), 1] = alpha_a1
    alpha[MODELS.index("spectral_a2.5"), 1] = alpha_a25
    r2 = np.full((n_m, n_l), 0.99)
    r2[MODELS.index("krotov_hopfield"), 1] = kh_r2
    ranks = np.arange(1, n_rank + 1)
    eig = np.stack([[ranks ** -a for a in row] for row in alpha])
    auc = {"mlp": 0.30, "spectral_a1": 0.28, "spectral_a2.5": 0.35, "sigmoid_saturated": 0.60,
           "krotov_hopfield": 0.33, "softhebb": 0.25}
    eps = np.geomspace(1e-3, 0.3, 5)
    robust = np.stack([[np.clip(1 - eps / (auc[m] * 0.3), 0, 1) for _ in ("fgsm", "pgd")] for m in MODELS])
    kurt = np.full((n_m, n_l), 0.5)
    kurt[:, 0] = np.nan
    kurt[MODELS.index("sigmoid_saturated"), 1] = 4.0
    diag = np.array([["pass", "pass"]] * n_m, dtype=str)
    diag[MODELS.index("sigmoid_saturated")] = ["warn", "pass"]
    ds = xr.Dataset(
        {
            "accuracy": (("model",), np.linspace(0.9, 0.95, n_m)),
            "alpha": (("model", "layer"), alpha),
            "alpha_r2": (("model", "layer"), r2),
            "alpha_ci_low": (("model", "layer"), alpha - 0.1),
            "alpha_ci_high": (("model", "layer"), alpha + 0.1),
            "fit_rank_low": (("model", "layer"), np.full((n_m, n_l), 11.0)),
            "fit_rank_high": (("model", "layer"), np.full((n_m, n_l), 25.0)),
            "eigenvalues": (("model", "layer", "rank"), eig),
            "weight_kurtosis": (("model", "layer"), kurt),
            "weight_alpha": (("model", "layer"), np.where(np.isnan(kurt), np.nan, 3.0)),
            "jacobian_fro2": (("model", "layer"), np.where(np.isnan(kurt), np.nan, 2.0)),
            "categoricality": (("model", "layer"), np.tile(cat, (n_m, 1))),
            "categoricality_ci_low": (("model", "layer"), np.tile(cat, (n_m, 1)) - 0.02),
            "categoricality_ci_high": (("model", "layer"), np.tile(cat, (n_m, 1)) + 0.02),
            "fisher_log_trace": (("model",), rng.normal(size=n_m)),
            "pgd_auc": (("model",), np.array([auc[m] for m in MODELS])),
            # the worst case over every attack is never above the PGD score
            "worst_auc": (("model",), np.array([auc[m] - 0.05 for m in MODELS])),
            "worst_attack": (("model",), np.array(["transfer"] * n_m)),
            "critical_eps_median": (("model",), np.array([auc[m] / 10 for m in MODELS])),
            "saturation_fraction": (("model",), np.linspace(0, 0.9, n_m)),
            "robust_accuracy": (("model", "attack", "eps"), robust),
            # per layer, as the study writes them: NaN for the input layer, whose pixels are not mapped
            "betti0": (("model", "layer", "level"), _with_nan_input(1 + rng.integers(0, 4, size=(n_m, n_l, 21)))),
            "betti1": (("model", "layer", "level"), _with_nan_input(rng.integers(0, 2, size=(n_m, n_l, 21)))),
            "n_peaks": (("model", "layer"), _with_nan_input(1 + np.arange(n_m * n_l).reshape(n_m, n_l) / 10)),
            "diagnostic": (("model", "check"), diag),
        },
        coords={"model": MODELS, "layer": LAYERS, "rank": np.arange(1, n_rank + 1), "attack": ["fgsm", "pgd"],
                "eps": eps, "level": np.arange(21), "level_fraction": ("level", np.linspace(0, 1, 21)),
                "check": ["zero_gradient", "reaches_zero"]},
        attrs={"smoothness_bound": 1.15, "intrinsic_dim": 13.3, "data": "synthetic", "seed": 0},
    )
    return ds


class _ByPrefix(dict):
    def __getitem__(self, prefix):
        (match,) = [k for k in self if k.startswith(prefix.rstrip())]
        return dict.__getitem__(self, match)


# Per-seed noise with mean exactly 0 (deterministic): a true difference of 0 stays 0 on average.
NOISE = np.array([0.02, -0.01, 0.03, -0.04, 0.0])


def _seeded(ds, changes=None):
    """Five seeds of ``ds``: every value repeated, then ``changes`` {(var, model, layer): per-seed values}."""
    out = xr.concat([ds] * len(NOISE), dim=xr.DataArray(np.arange(len(NOISE)), dims="seed", name="seed"))
    for (var, model, layer), values in (changes or {}).items():
        where = dict(model=model, **({"layer": layer} if layer else {}))
        out[var] = out[var].copy()
        out[var].loc[where] = np.asarray(values, dtype=float)
    return out


def _verdicts(ds):
    table = claims_table(ds)
    return _ByPrefix(zip(table["claim"], table["verdict"]))


SOFTHEBB = "SoftHebb networks are more robust to adv"


@pytest.mark.parametrize("shift, verdict", [(0.0, "inconclusive"), (0.1, "holds"), (-0.1, "does not hold")])
def test_paired_verdict_follows_the_true_difference(shift, verdict):
    # Synthetic truth: softhebb's PGD score = mlp's + shift, plus per-seed noise of mean 0.
    ds = _seeded(_results(), {("pgd_auc", "softhebb", None): 0.30 + shift + NOISE})
    table = claims_table(ds).set_index("claim")
    row = table.loc[[c for c in table.index if c.startswith(SOFTHEBB)][0]]
    assert row.verdict == verdict
    assert row.mean_difference == pytest.approx(shift)
    assert row.ci_low < row.mean_difference < row.ci_high
    assert "t interval" in row.criterion
    assert "softhebb 0.300 ± 0.027" in row.measured if shift == 0 else True


def test_paired_interval_equals_scipys_one_sample_t_interval():
    from scipy.stats import ttest_1samp

    d = np.array([0.12, 0.05, 0.2, -0.01])
    mean, low, high = paired_interval(d)
    ref = ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert mean == pytest.approx(d.mean())
    assert (low, high) == (pytest.approx(ref.low), pytest.approx(ref.high))
    assert np.isnan(paired_interval([0.3])[1])  # one seed: no interval


def test_band_claims_hold_inside_fail_outside_and_are_inconclusive_across():
    claim = "Spectral regularization sets the hidden layer's power-law exponent (target 1.0)"
    v = _verdicts(_seeded(_results(), {("alpha", "spectral_a1", "hidden"): 1.02 + NOISE / 4}))
    assert v[claim] == "holds"
    v = _verdicts(_seeded(_results(), {("alpha", "spectral_a1", "hidden"): 1.5 + NOISE}))
    assert v[claim] == "does not hold"
    v = _verdicts(_seeded(_results(), {("alpha", "spectral_a1", "hidden"): 1.14 + 3 * NOISE}))
    assert v[claim] == "inconclusive"


def test_saturated_claim_is_two_rows_judged_separately():
    # The case: kurtosis 0.55 vs 0.55 and a higher PGD score was one "holds".
    ds = _seeded(_results(), {("weight_kurtosis", "sigmoid_saturated", "hidden"): 0.5 + NOISE,
                              ("pgd_auc", "sigmoid_saturated", None): 0.6 + NOISE})
    v = _verdicts(ds)
    assert v["Saturated networks have heavy-tailed (kurtotic) weights"] == "inconclusive"
    assert v["Saturated networks resist gradient-based attacks"] == "holds"
    assert v["The saturated nets' robustness is an art"] == "holds"  # zero_gradient warns in every seed


def test_claims_follow_their_criteria_over_seeds():
    ds = _seeded(_results(), {("alpha_r2", "krotov_hopfield", "hidden"): 0.97 + NOISE / 10})
    v = _verdicts(ds)
    assert v["Hebbian winner-take-all learning gives a "] == "holds"
    assert v["Spectral regularization to α ≈ 2–3 gives more robustness than brain-like"] == "holds"
    assert v["Categoricality grows with depth (input → hidden)"] == "holds"
    assert v["Categoricality grows with depth (hidden → output)"] == "holds"
    # identical values in every seed: sd 0, the interval is the point; softhebb 0.25 < mlp 0.30
    assert v[SOFTHEBB] == "does not hold"


def test_one_seed_is_never_more_than_inconclusive():
    table = claims_table(_results())
    judged = table[table["criterion"].str.contains("t interval")]
    assert len(judged) >= 8
    assert set(judged["verdict"]) <= {"inconclusive (one seed: no interval)", "not measured"}


@pytest.mark.parametrize("claim, var, model, layer", [
    ("Spectral regularization sets the hidden layer's power-law exponent (target 1.0)", "alpha",
     "spectral_a1", "hidden"),
    (SOFTHEBB, "pgd_auc", "softhebb", None),
    ("Saturated networks have heavy-tailed (kurtotic) weights", "weight_kurtosis", "mlp", "hidden"),
])
def test_a_missing_number_is_not_measured_rather_than_failed(claim, var, model, layer):
    ds = _seeded(_results())
    ds[var].loc[dict(model=model, **({"layer": layer} if layer else {}))] = np.nan
    assert _verdicts(ds)[claim] == "not measured"


def test_hebbian_claim_is_judged_on_the_krotov_hopfield_net_by_name():
    ds = _seeded(_results(kh_r2=0.8))
    assert _verdicts(ds.drop_sel(model="krotov_hopfield"))["Hebbian winner-take-all learning gives a "] \
        == "not measured"
    reordered = ds.sel(model=["softhebb", "krotov_hopfield", "mlp"])
    assert _verdicts(reordered)["Hebbian winner-take-all learning gives a "] == "does not hold"


def test_diagnostics_table_has_one_row_per_model_with_every_check():
    ds = _results()
    table = diagnostics_table(ds).set_index("model")
    assert list(table.index) == MODELS
    assert list(table.columns) == ["pgd_auc", "worst_auc", "worst_attack", "zero_gradient", "reaches_zero"]
    assert table.loc["sigmoid_saturated", "zero_gradient"] == "warn"
    assert (table.drop(index="sigmoid_saturated")[["zero_gradient", "reaches_zero"]] == "pass").all().all()
    assert table.loc["spectral_a2.5", "pgd_auc"] == pytest.approx(0.35)
    assert table.loc["spectral_a2.5", "worst_auc"] == pytest.approx(0.30)
    assert diagnostics_table(ds.drop_vars("diagnostic")).empty


def test_summary_is_two_tidy_tables_that_join_on_the_model():
    ds = _results()
    layers = summary_table(ds)
    assert len(layers) == len(MODELS) * len(LAYERS)
    row = layers[(layers.model == "spectral_a1") & (layers.layer == "hidden")].iloc[0]
    assert row["alpha"] == pytest.approx(1.05)
    # model-level values are not repeated on every layer row: they live in the model table
    per_model = [v for v in ds.data_vars if ds[v].dims == ("model",)]
    assert per_model and not set(per_model) & set(layers.columns)
    models = summary_table(ds, level="model")
    assert list(models["model"]) == MODELS and "layer" not in models.columns
    assert set(per_model) <= set(models.columns)
    row = models.set_index("model").loc["spectral_a1"]
    assert row["pgd_auc"] == pytest.approx(0.28) and row["worst_auc"] == pytest.approx(0.23)
    # both round-trip through CSV and join back to the one wide table of before
    joined = layers.merge(models, on="model")
    for var in per_model:
        if ds[var].dtype.kind in "fiu":
            np.testing.assert_allclose(joined.loc[joined.layer == "hidden", var], ds[var].values)
    with pytest.raises(ValueError, match="level must be 'layer' or 'model'; got 'unit'"):
        summary_table(ds, level="unit")


def test_page_embeds_every_figure_and_the_claims(tmp_path):
    ds = _results()
    path = tmp_path / "results.nc"
    ds.to_netcdf(path)
    xr.testing.assert_identical(load_results(path), ds)
    page = build_report(path, figures_dir=tmp_path / "figures")
    assert page == tmp_path / "report.html"
    html = page.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    pngs = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert len(images) == len(pngs) == 7
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "What the papers claim / what this run measured" in html
    assert "spectral_a1: α = 1.05 (1 seed) (bias-corrected)" in html
    # the per-model masking diagnostics: the saturated net's row with its warning
    assert "gradient-masking diagnostics</h2>" in html
    assert re.search(r"<tr><td>sigmoid_saturated</td><td>0\.6</td><td>0\.55</td><td>transfer</td>"
                     r"<td>warn</td><td>pass</td></tr>", html)
    # Self-contained: nothing is loaded from elsewhere.
    assert not re.search(r'(src|href)="(?!data:)', html)


def test_missing_results_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `geomkit study` first"):
        build_report(tmp_path / "nope.nc")


def test_categoricality_figure_draws_intervals_that_exclude_the_estimate():
    # a percentile bootstrap interval of a biased statistic may lie beside the estimate; the figure
    # must draw it where it is, not fail or clip it
    from geomkit.plotting.study import study_figures

    ds = _results()
    ds["categoricality_ci_low"] = ds["categoricality"] + 0.05
    ds["categoricality_ci_high"] = ds["categoricality"] + 0.10
    fig, _ = study_figures(ds)["categoricality"]
    (ax,) = fig.axes
    segments = np.concatenate([c.get_segments() for c in ax.collections])
    lows = sorted(seg[:, 1].min() for seg in segments)
    expected = sorted(ds["categoricality_ci_low"].values.ravel())
    np.testing.assert_allclose(lows, expected)


def test_summary_has_the_peak_count_of_every_model_and_layer():
    ds = _results()
    table = summary_table(ds).set_index(["model", "layer"])
    for m in MODELS:
        for layer in LAYERS:
            expected = float(ds["n_peaks"].sel(model=m, layer=layer))
            got = table.loc[(m, layer), "n_peaks"]
            assert np.isnan(got) if layer == "input" else got == pytest.approx(expected)


def _betti_figure(ds):
    """The Betti figure and its caption; the other figures are closed."""
    import matplotlib.pyplot as plt

    from geomkit.plotting.study import study_figures

    figures = study_figures(ds)
    for name, (fig, _) in figures.items():
        if name != "betti_curves":
            plt.close(fig)
    return figures["betti_curves"]


def test_betti_figure_draws_each_layer_and_model():
    ds = _results()
    # hidden-unit ramps: the same flat curves for every model, as the study measures them
    ds["betti0"].loc[dict(layer="hidden")] = 1.0
    ds["betti1"].loc[dict(layer="hidden")] = 0.0
    fig, caption = _betti_figure(ds)
    axes = fig.axes
    assert len(axes) == 4  # rows hidden, output (the input layer is NaN: no row); columns b0, b1
    for ax, (layer, var) in zip(axes, [(l, v) for l in ("hidden", "output") for v in ("betti0", "betti1")]):
        assert ax.get_title().startswith({"hidden": "hidden units", "output": "output logits"}[layer])
        ys = [line.get_ydata() for line in ax.get_lines()]
        np.testing.assert_array_equal(ys, ds[var].sel(layer=layer).values)
        np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), ds["level_fraction"].values)
    # overlapping identical curves are announced on the panel
    assert "all 6 models: b₀ = 1 at every level" in axes[0].texts[0].get_text()
    assert not axes[2].texts  # output b0 varies between models
    (legend,) = fig.legends
    peaks = ds["n_peaks"].sel(layer="output").values
    assert [t.get_text() for t in legend.get_texts()] == [f"{m} ({p:.1f})" for m, p in zip(MODELS, peaks)]
    # the caption's numbers follow from the data
    n_above = int((ds["betti0"].sel(layer="output").values > 1).sum())
    assert f"exceeds 1 at {n_above} of {len(MODELS) * 21} (model, level) points" in caption
    assert f"ranges {peaks.min():.2g}–{peaks.max():.2g}" in caption
    assert "by construction" in caption
    import matplotlib.pyplot as plt

    plt.close(fig)
    # all output curves flat at 1 but one: the panel counts the overlapping ones
    ds["betti0"].loc[dict(layer="output")] = 1.0
    ds["betti0"].loc[dict(layer="output", model="softhebb", level=5)] = 1.5
    fig, caption = _betti_figure(ds)
    assert "5 of 6 models: b₀ = 1 at every level" in fig.axes[2].texts[0].get_text()
    assert f"exceeds 1 at 1 of {len(MODELS) * 21} (model, level) points" in caption
    plt.close(fig)


def test_betti_figure_reads_results_with_hidden_curves_only():
    # results.nc of earlier versions: betti0 / betti1 over (model, level), n_peaks over (model,)
    import matplotlib.pyplot as plt

    ds = _results()
    old = ds.drop_vars(["betti0", "betti1", "n_peaks"]).assign(
        betti0=ds["betti0"].sel(layer="output", drop=True), betti1=ds["betti1"].sel(layer="output", drop=True),
        n_peaks=ds["n_peaks"].sel(layer="output", drop=True))
    fig, caption = _betti_figure(old)
    assert len(fig.axes) == 2
    for ax, var in zip(fig.axes, ("betti0", "betti1")):
        np.testing.assert_array_equal([line.get_ydata() for line in ax.get_lines()], old[var].values)
    assert "Output logits" not in caption
    plt.close(fig)


def test_summary_keeps_the_model_description_once():
    ds = _results().assign_coords(description=("model", [f"the {m} net" for m in MODELS]))
    table = summary_table(ds, level="model")
    assert [c for c in table.columns if c.startswith("description")] == ["description"]
    assert list(table["description"]) == [f"the {m} net" for m in MODELS]
    assert "description" not in summary_table(ds).columns  # not repeated on every layer row


def _with_conditions(ds, seeds=3):
    """``ds`` over ``seeds`` seeds with the study's composite-attack and attribution measures (random)."""
    rng = np.random.default_rng(5)
    ds = xr.concat([ds] * seeds, dim=xr.DataArray(np.arange(seeds), dims="seed", name="seed"))
    orders = ["rotation>blur>linf", "linf>blur>rotation", "scheduled", "worst"]
    n_m = ds.sizes["model"]
    return ds.assign(
        caa_robust_accuracy=(("seed", "model", "order"), rng.random((seeds, n_m, len(orders)))),
        attribution_topk=(("seed", "model", "attribution_perturbation", "attribution_eps"),
                          rng.random((seeds, n_m, 2, 2))),
        attribution_com_shift=(("seed", "model", "attribution_perturbation", "attribution_eps"),
                               3 * rng.random((seeds, n_m, 2, 2))),
    ).assign_coords(order=orders, attribution_perturbation=["attack", "noise"], attribution_eps=[0.03, 0.1])


def test_condition_table_is_tidy_and_holds_every_value_of_the_dataset():
    from geomkit.report import condition_table

    ds = _with_conditions(_results())
    table = condition_table(ds)
    assert list(table.columns) == ["seed", "model", "measure", "condition", "value"]
    n_m = ds.sizes["model"]
    assert len(table) == 3 * n_m * (4 + 4 + 4)
    assert not table.duplicated(["seed", "model", "measure", "condition"]).any()
    # each row is the Dataset's entry at its coordinates
    row = table[(table.seed == 2) & (table.model == "softhebb") & (table.measure == "attribution_topk")
                & (table.condition == "noise, eps=0.03")]
    assert row["value"].item() == ds["attribution_topk"].sel(
        seed=2, model="softhebb", attribution_perturbation="noise", attribution_eps=0.03).item()
    caa = table[table.measure == "caa_robust_accuracy"].pivot_table(index=["seed", "model"], columns="condition",
                                                                      values="value")
    expected = ds["caa_robust_accuracy"].sel(order="scheduled").transpose("seed", "model").values
    np.testing.assert_array_equal(caa["scheduled"].unstack("model")[list(ds["model"].values)].values, expected)
    # results without those measures: an empty table with the same columns
    empty = condition_table(_results())
    assert empty.empty and list(empty.columns) == ["model", "measure", "condition", "value"]


def test_page_shows_the_composite_attack_and_attribution_results_over_seeds(tmp_path):
    ds = _with_conditions(_results())
    html = build_report(ds, tmp_path / "report.html").read_text()
    assert "Composite semantic attacks (mean ± sd over seeds)</h2>" in html
    assert "Attacks on explanations (mean ± sd over seeds)</h2>" in html
    values = ds["attribution_com_shift"].sel(model="mlp", attribution_perturbation="attack", attribution_eps=0.1).values
    cell = f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
    assert re.search(r"<tr><td>mlp</td>(<td>[^<]*</td>)*<td>" + re.escape(cell) + "</td>", html)
    assert "robust accuracy: rotation &gt; blur &gt; linf" in html
    # results without them: no empty sections
    plain = build_report(_results(), tmp_path / "plain.html").read_text()
    assert "Composite semantic attacks" not in plain and "Attacks on explanations" not in plain
