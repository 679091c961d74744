"""`geomkit study --quick` end to end, as CI runs it, checked against independent computations."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geomkit import study
from geomkit.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("study")
    try:
        ds = study.run(out=out, quick=True, progress=False, random_state=0)
    finally:
        torch.set_num_threads(threads)
    return out, ds


def test_every_output_is_written_and_round_trips(quick_run):
    out, ds = quick_run
    with xr.open_dataset(out / "results.nc") as saved:
        xr.testing.assert_identical(saved.load(), ds)
    summary = pd.read_csv(out / "summary_layers.csv")
    assert len(summary) == len(study.ZOO) * 3 * 2  # models x layers x seeds
    assert set(summary["model"]) == set(study.ZOO)
    models = pd.read_csv(out / "summary_models.csv")
    assert len(models) == len(study.ZOO) * 2  # models x seeds
    for row in models.itertuples():
        assert row.accuracy == pytest.approx(float(ds["accuracy"].sel(seed=row.seed, model=row.model)))
    assert {p.stem for p in (out / "figures").glob("*.png")} >= {
        "spectra", "kurtosis", "flatness", "robustness", "categoricality", "betti_curves"}
    for name in study.ZOO:
        for seed in (0, 1):
            assert (out / "models" / f"seed{seed}" / name / "state_dict.pt").is_file()
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 6 and "What the papers claim" in html


def test_input_layer_spectrum_equals_numpy(quick_run):
    _, ds = quick_run
    ds = ds.sel(seed=0)  # the first seed's values (seed 0, as the checks below)
    from geomkit.datasets import load_mnist5k

    _, X_test, _, y_test = load_mnist5k(test_size=0.2, random_state=0)
    cfg = study.StudyConfig.make(quick=True)
    X_eval, _ = study._subsample(X_test, y_test, cfg.n_eval, 0)
    expected = np.sort(np.linalg.eigvalsh(np.cov(X_eval.astype(np.float64), rowvar=False)))[::-1]
    got = ds["eigenvalues"].sel(model="mlp", layer="input").values
    k = 50
    np.testing.assert_allclose(got[:k], expected[:k], rtol=1e-6)


def test_measured_values_are_sane(quick_run):
    _, ds = quick_run
    ds = ds.sel(seed=0)  # the first seed's values (seed 0, as the checks below)
    # Held-out accuracy of the plain MLP, trained for a few epochs on 1500 images: well above chance.
    assert float(ds["accuracy"].sel(model="mlp")) > 0.8
    # Robust accuracy starts near 1 (correctly classified inputs, tiny eps) and falls with eps for PGD.
    pgd = ds["robust_accuracy"].sel(attack="pgd")
    assert (pgd.isel(eps=0) > 0.9).all()
    assert (pgd.isel(eps=-1) < pgd.isel(eps=0)).all()
    # Categoricality is a KS statistic in [0, 1]; the input baseline is the same for every model.
    cat = ds["categoricality"]
    assert ((cat >= 0) & (cat <= 1)).all()
    np.testing.assert_allclose(cat.sel(layer="input").values, float(cat.sel(model="mlp", layer="input")))
    assert 0 <= float(ds["saturation_fraction"].sel(model="sigmoid_saturated")) <= 1
    assert ds.attrs["smoothness_bound"] == pytest.approx(1 + 2 / ds.attrs["intrinsic_dim"])


def test_the_spiking_net_is_measured_on_its_spike_counts(quick_run):
    # (before test_rerun_reuses_checkpoints, which rewrites results.nc with the mlp alone)
    from geomkit.probe import extract
    from geomkit.train import SpikingClassifier

    out, ds = quick_run
    cfg = study.StudyConfig.make(quick=True)
    with xr.open_dataset(out / "results.nc") as saved:
        snn = saved.sel(model="snn", seed=0).load()
    assert float(snn["accuracy"]) > 0.6  # 2 epochs on 1500 images; chance is 0.1
    assert str(snn["diagnostic"].sel(check="deterministic_forward").values) == "pass"
    assert np.isfinite(snn["pgd_auc"]) and np.isfinite(snn["alpha"].sel(layer="hidden"))
    # the hidden layer is the spike counts of the checkpoint's lif1: recompute their spectrum
    clf = SpikingClassifier.load(out / "models" / "seed0" / "snn")
    assert clf.module_.n_steps == cfg.snn_steps and clf.module_.fc1.out_features == cfg.snn_hidden
    counts = extract(clf.module_, _eval_inputs(), ["count1"], progress=False)["count1"].values.astype(np.float64)
    np.testing.assert_array_equal(counts, np.round(counts))
    assert counts.min() >= 0 and counts.max() <= cfg.snn_steps
    expected = np.sort(np.linalg.eigvalsh(np.cov(counts, rowvar=False)))[::-1]
    got = snn["eigenvalues"].sel(layer="hidden").values
    np.testing.assert_allclose(got[:20], expected[:20], rtol=1e-6, atol=1e-12)


def _eval_inputs():
    """The study's held-out inputs of the quick run (seed 0)."""
    from geomkit.datasets import load_mnist5k

    _, X_test, _, y_test = load_mnist5k(test_size=0.2, random_state=0)
    X_eval, _ = study._subsample(X_test, y_test, study.StudyConfig.make(quick=True).n_eval, 0)
    return X_eval


def test_cotrained_model_and_v1_cka_in_results(quick_run):
    """v1_cka of the co-trained net equals CKA recomputed from its checkpoint and a refitted V1 model,
    and co-training raised it above the plain MLP's (issue 17 part 4)."""
    from geomkit.datasets import GaborV1, load_mnist5k
    from geomkit.measures import cka
    from geomkit.probe.extract import extract, layer_activations
    from geomkit.train import NetClassifier

    out, ds = quick_run
    with xr.open_dataset(out / "results.nc") as saved:
        assert saved["v1_cka"].dims == ("seed", "model") and saved["v1_cka"].attrs["units"] == "1"
    v1_cka = ds["v1_cka"].sel(seed=0)
    cfg = study.StudyConfig.make(quick=True)
    X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2, random_state=0)
    X_train, _ = study._subsample(X_train, y_train, cfg.n_train, 0)
    truth = GaborV1(n_neurons=cfg.n_v1_neurons, alpha=1.0, random_state=0).fit(X_train).transform(_eval_inputs())
    clf = NetClassifier.load(out / "models" / "seed0" / "cotrained")
    acts = layer_activations(extract(clf.module_, _eval_inputs(), layers=["act1"], progress=False), "act1")
    assert float(v1_cka.sel(model="cotrained")) == pytest.approx(cka(acts.values, truth), abs=1e-6)
    assert float(v1_cka.sel(model="cotrained")) > float(v1_cka.sel(model="mlp")) + 0.1


def test_hidden_tuning_maps_are_ramps_and_topology_is_per_layer(quick_run):
    out, ds = quick_run
    ds = ds.sel(seed=0)  # the first seed's values (seed 0, as the checks below)
    assert ds["betti0"].dims == ds["betti1"].dims == ("model", "layer", "level")
    assert ds["n_peaks"].dims == ("model", "layer")
    # a hidden unit is a monotone function of one projection w.x + b, a ramp on any plane: its
    # superlevel sets are half-planes, so one component, no hole and one peak at every level
    hidden = ds.sel(layer="hidden")
    np.testing.assert_array_equal(hidden["betti0"].values, 1.0)
    np.testing.assert_array_equal(hidden["betti1"].values, 0.0)
    np.testing.assert_array_equal(hidden["n_peaks"].values, 1.0)
    # the input layer is not mapped: NaN, not zero; hidden and output are measured for every model
    for var in ("betti0", "betti1", "n_peaks"):
        assert np.isnan(ds[var].sel(layer="input").values).all(), var
        assert np.isfinite(ds[var].sel(layer=["hidden", "output"]).values).all(), var
        assert "description" in ds[var].attrs
    # at the lowest level the superlevel set is the whole map: one component, no hole
    np.testing.assert_array_equal(ds["betti0"].sel(layer="output").isel(level=0).values, 1.0)
    np.testing.assert_array_equal(ds["betti1"].sel(layer="output").isel(level=0).values, 0.0)
    summary = pd.read_csv(out / "summary_layers.csv").query("seed == 0").set_index(["model", "layer"])
    for (model, layer), value in summary["n_peaks"].items():
        np.testing.assert_equal(value, float(ds["n_peaks"].sel(model=model, layer=layer)))


@pytest.mark.parametrize("name", ["mlp", "krotov_hopfield"])
def test_output_topology_equals_a_recomputation_from_the_checkpoint(quick_run, name):
    from scipy import ndimage
    from sklearn.decomposition import PCA

    from geomkit.measures.topology import LevelSetTopology
    from geomkit.probe.tuning import tuning_map
    from geomkit.train import HebbianClassifier, NetClassifier

    out, ds = quick_run
    ds = ds.sel(seed=0)  # the first seed's values (seed 0, as the checks below)
    cfg = study.StudyConfig.make(quick=True)
    X_eval = _eval_inputs()
    module = (NetClassifier if name == "mlp" else HebbianClassifier).load(out / "models" / "seed0" / name).module_
    pca = PCA(n_components=2, random_state=0).fit(X_eval)
    maps = tuning_map(module, "out", list(range(10)), origin=pca.mean_, direction_1=pca.components_[0],
                      direction_2=pca.components_[1], extent=2 * np.sqrt(pca.explained_variance_[0]),
                      resolution=cfg.tuning_resolution)
    maps = np.asarray(maps.values, dtype=np.float64)
    got = ds.sel(model=name, layer="output")
    topo = LevelSetTopology(n_levels=21).fit(maps)
    np.testing.assert_array_equal(got["betti0"].values, topo.betti_curves_.values[:, 0].mean(axis=0))
    np.testing.assert_array_equal(got["betti1"].values, topo.betti_curves_.values[:, 1].mean(axis=0))
    assert float(got["n_peaks"]) == pytest.approx(topo.peak_counts_.mean(), abs=1e-12)
    # brute force, without LevelSetTopology: label the components of {f >= t} (8-connected) and the
    # holes, components of {f < t} (4-connected) that touch no border, at 21 levels from min to max
    b0 = np.zeros((len(maps), 21))
    b1 = np.zeros((len(maps), 21))
    for i, f in enumerate(maps):
        for j, t in enumerate(f.min() + np.linspace(0, 1, 21) * (f.max() - f.min())):
            above = f >= t
            b0[i, j] = ndimage.label(above, structure=np.ones((3, 3)))[1]
            below, n_below = ndimage.label(~above)
            on_border = np.unique(np.concatenate([below[0], below[-1], below[:, 0], below[:, -1]]))
            b1[i, j] = n_below - np.count_nonzero(on_border)
    np.testing.assert_allclose(got["betti0"].values, b0.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got["betti1"].values, b1.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("name", ["krotov_hopfield", "softhebb", "mlp"])
def test_hidden_weights_are_measured_for_every_net(quick_run, name):
    # the Hebbian layers keep their weights in a buffer, not a Parameter: measured all the same
    from scipy import stats

    from geomkit.train import HebbianClassifier, NetClassifier

    out, ds = quick_run
    ds = ds.sel(seed=0)  # the first seed's values (seed 0, as the checks below)
    cls = NetClassifier if name == "mlp" else HebbianClassifier
    W = cls.load(out / "models" / "seed0" / name).module_.hidden1.weight.detach().double().numpy()
    got = ds.sel(model=name, layer="hidden")
    for var in ("weight_kurtosis", "weight_l1_l2", "weight_stable_rank", "weight_alpha"):
        assert np.isfinite(float(got[var])), var
    assert float(got["weight_kurtosis"]) == pytest.approx(stats.kurtosis(W.ravel(), fisher=True), rel=1e-9)
    assert float(got["weight_l1_l2"]) == pytest.approx(np.abs(W).sum() / np.linalg.norm(W), rel=1e-9)
    sv2 = np.linalg.svd(W, compute_uv=False) ** 2
    assert float(got["weight_stable_rank"]) == pytest.approx(sv2.sum() / sv2.max(), rel=1e-8)


def test_pgd_score_and_worst_case_are_stored_apart(quick_run):
    _, ds = quick_run
    ds = ds.sel(seed=0)  # the first seed's values (seed 0, as the checks below)
    eps = ds["eps"].values
    # independent trapezoid over log eps of each attack's robust-accuracy curve
    area = np.trapezoid(ds["robust_accuracy"].values, np.log(eps), axis=-1) / np.log(eps[-1] / eps[0])
    attacks = list(ds["attack"].values)
    pgd = [i for i, a in enumerate(attacks) if a.split("-")[0] == "pgd"]
    assert len(pgd) == 2  # cross-entropy and margin loss
    np.testing.assert_allclose(ds["pgd_auc"].values, area[:, pgd].min(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ds["worst_auc"].values, area.min(axis=1), rtol=1e-12)
    assert list(ds["worst_attack"].values) == [attacks[i] for i in area.argmin(axis=1)]
    assert "robust_auc" not in ds


def test_results_have_a_seed_dimension_and_every_interval_contains_its_estimate(quick_run):
    out, ds = quick_run
    assert list(ds["seed"].values) == [0, 1] and ds.attrs["seeds"] == "0,1"
    assert ds["accuracy"].dims == ("seed", "model")
    # the two seeds trained different weights
    assert not np.array_equal(ds["accuracy"].sel(seed=0).values, ds["accuracy"].sel(seed=1).values) or \
        not np.array_equal(ds["weight_kurtosis"].sel(seed=0).values, ds["weight_kurtosis"].sel(seed=1).values)
    with xr.open_dataset(out / "results.nc") as saved:
        lows = [v for v in saved.data_vars if v.endswith("_ci_low")]
        assert {"alpha_ci_low", "categoricality_ci_low"} <= set(lows)
        for low in lows:
            name = low[: -len("_ci_low")]
            est, lo, hi = (saved[v].values for v in (name, low, f"{name}_ci_high"))
            ok = np.isfinite(lo)
            assert ok.any(), name
            assert np.all((lo[ok] <= est[ok] + 1e-12) & (est[ok] <= hi[ok] + 1e-12)), name
    # the claims are judged over the seeds
    from geomkit.report import claims_table

    table = claims_table(ds)
    assert set(table["verdict"]) <= {"holds", "does not hold", "inconclusive", "not measured"}
    assert table["criterion"].str.contains("t interval").any()


def test_config_is_stored_in_the_attributes(quick_run):
    import dataclasses
    import json

    _, ds = quick_run
    cfg = study.StudyConfig.make(quick=True)
    assert json.loads(ds.attrs["config"]) == json.loads(json.dumps(dataclasses.asdict(cfg)))
    # the budgets the Hebbian nets were trained with
    assert json.loads(ds.attrs["config"])["krotov_hopfield_epochs"] == 3


def test_default_hebbian_budgets_are_the_validated_ones():
    # tests/test_classifiers.py::test_hebbian_mnist5k reaches >= 0.88 with these
    cfg = study.StudyConfig.make(quick=False)
    assert (cfg.krotov_hopfield_epochs, cfg.softhebb_epochs, cfg.readout_epochs, cfg.n_hebbian) == (50, 20, 60, 2000)
    zoo = study._zoo()
    kh = zoo["krotov_hopfield"].build(cfg, 784, 0, "cpu", False)
    sh = zoo["softhebb"].build(cfg, 784, 0, "cpu", False)
    assert (kh.unsup_epochs, kh.epochs, sh.unsup_epochs, sh.epochs) == (50, 60, 20, 60)
    # the saturated sigmoid net uses the strength that saturates sigmoid units (SaturationPenalty's docs)
    (penalty,) = zoo["sigmoid_saturated"].build(cfg, 784, 0, "cpu", False).regularizers
    assert penalty.strength == 10.0


def _tiny(tmp_path, X, y, **kw):
    """One small mlp trained (or reused) through the study's checkpoint logic."""
    import dataclasses

    cfg = dataclasses.replace(study.StudyConfig.make(quick=True), n_hidden=8, epochs=1)
    notes = []
    entry = kw.pop("entry", study._zoo()["mlp"])
    clf, reused = study._train_or_load("mlp", entry, cfg, X, y, tmp_path, 0, "cpu", kw.pop("retrain", False),
                                       False, notes.append, study._data_hash(X, y))
    return clf, reused, notes


def test_checkpoint_stamp_decides_reuse(tmp_path):
    import os

    rng = np.random.default_rng(0)
    X = rng.random((60, 12)).astype(np.float32)
    y = np.arange(60) % 3
    weights = tmp_path / "mlp" / "state_dict.pt"

    first, reused, _ = _tiny(tmp_path, X, y)
    assert not reused
    os.utime(weights, ns=(10**18, 10**18))  # a known mtime: a rewrite would change it

    # same data, same settings: reused, file untouched, same weights
    again, reused, notes = _tiny(tmp_path, X, y)
    assert reused and "reusing the checkpoint" in notes[0]
    assert weights.stat().st_mtime_ns == 10**18
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))

    # other data of the same shapes (what a PATH of other images would give): retrained
    _, reused, notes = _tiny(tmp_path, X[::-1].copy(), y)
    assert not reused and "data_sha256" in notes[0] and "retraining" in notes[0]
    assert weights.stat().st_mtime_ns != 10**18

    # other model settings (a regularizer strength): retrained
    os.utime(weights, ns=(10**18, 10**18))
    from geomkit import train

    other = study.ZooEntry("mlp + penalty", lambda cfg, n, seed, device, progress: study._net(
        cfg, n, seed, device, progress, regularizers=(train.WeightDecay(1e-2),)))
    _, reused, notes = _tiny(tmp_path, X[::-1].copy(), y, entry=other)
    assert not reused and "params" in notes[0] and "retraining" in notes[0]
    assert weights.stat().st_mtime_ns != 10**18

    # a matching stamp with --retrain: retrained
    os.utime(weights, ns=(10**18, 10**18))
    _, reused, notes = _tiny(tmp_path, X[::-1].copy(), y, entry=other, retrain=True)
    assert not reused and "retraining (--retrain)" in notes[0]
    assert weights.stat().st_mtime_ns != 10**18


def test_rerun_reuses_checkpoints(quick_run):
    out, ds = quick_run
    again = study.run(out=out, quick=True, progress=False, random_state=0, models=["mlp"])
    assert "seed 0: mlp: reusing the checkpoint" in again.attrs["notes"]
    assert "seed 1: mlp: reusing the checkpoint" in again.attrs["notes"]
    np.testing.assert_array_equal(again["accuracy"].sel(model="mlp").values, ds["accuracy"].sel(model="mlp").values)


def test_report_command_rebuilds_the_page(quick_run, tmp_path, capsys):
    out, _ = quick_run
    page = tmp_path / "again.html"
    assert main(["report", str(out / "results.nc"), "--out", str(page)]) == 0
    assert page.is_file() and "What the papers claim" in page.read_text()


def test_bad_data_path_and_unwritable_out_fail_clearly(tmp_path, capsys):
    assert main(["study", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "neither 'mnist5k', 'digits' nor an existing folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["study", "--out", str(blocker / "sub")]) == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not in the zoo"):
        study.run(out=tmp_path / "o2", models=["resnet"], progress=False)
    with pytest.raises(TypeError, match="config must be a StudyConfig"):
        study.run(out=tmp_path / "o3", config={"epochs": 1}, progress=False)


# comparing representations
def test_model_similarity_of_hidden_layers_equals_a_recomputation(quick_run):
    from geomkit.measures import cka
    from geomkit.probe import extract
    from geomkit.train import NetClassifier

    out, ds = quick_run
    assert ds["hidden_cka"].dims == ("seed", "model_a", "model_b")  # one matrix per training seed
    ds = ds.sel(seed=0)
    assert ds["model_a"].values.tolist() == list(study.ZOO)
    values = ds["hidden_cka"].values
    np.testing.assert_allclose(values, values.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-12)
    assert np.all(ds["hidden_cka_ci_low"].values <= ds["hidden_cka_ci_high"].values)
    X_eval = _eval_inputs()
    acts = {}
    for name in ("mlp", "weight_decay"):
        module = NetClassifier.load(out / "models" / "seed0" / name).module_
        acts[name] = extract(module, X_eval, ["act1"], progress=False)["act1"].values
    expected = cka(acts["mlp"], acts["weight_decay"], debiased=True)
    pair = ds.sel(model_a="mlp", model_b="weight_decay")
    assert float(pair["hidden_cka_plugin"]) == pytest.approx(expected, abs=1e-6)
    assert pair["hidden_cka_ci_low"] <= pair["hidden_cka"] <= pair["hidden_cka_ci_high"]
    assert (out / "figures" / "model_similarity.png").is_file()


def test_seeds_and_jobs_are_checked_before_any_work(tmp_path, capsys):
    assert main(["study", "--seeds", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--seeds must be >= 1; got 0" in capsys.readouterr().err
    assert main(["study", "--jobs", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--jobs must be >= 1; got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="jobs must be None or a positive int"):
        study.run(out=tmp_path / "o3", jobs=0, progress=False)
    assert study.StudyConfig.make(quick=True).n_seeds == 2
    assert study.StudyConfig.make(quick=False).n_seeds == 3


def test_seed_is_the_old_name_of_random_state(tmp_path, monkeypatch):
    # Checked before any work: a refused value or both names cost nothing.
    with pytest.raises(TypeError, match="got both seed= and random_state="):
        study.run(out=tmp_path / "a", seed=1, random_state=2, progress=False)
    with pytest.raises(ValueError, match="random_state must be an integer >= 0"):
        study.run(out=tmp_path / "b", random_state=-1, progress=False)
    seen = {}

    def fake_load(data, test_size, random_state):
        seen["random_state"] = random_state
        raise RuntimeError("stop")

    monkeypatch.setattr("geomkit.datasets.load_dataset", fake_load)
    with pytest.warns(DeprecationWarning, match="seed= is deprecated"), pytest.raises(RuntimeError, match="stop"):
        study.run(out=tmp_path / "c", seed=5, progress=False)
    assert seen["random_state"] == 5
    from geomkit.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["study", "--seed", "3"]).random_state == 3
    assert parser.parse_args(["study", "--random-state", "4"]).random_state == 4


def test_composite_attack_per_order_is_stored_and_equals_a_recomputation(quick_run):
    from geomkit.datasets import load_mnist5k
    from geomkit.probe.attacks import composite_robust_accuracy
    from geomkit.train import NetClassifier

    out, ds = quick_run
    caa = ds["caa_robust_accuracy"]
    assert caa.dims == ("seed", "model", "order")
    orders = [o if isinstance(o, str) else ">".join(o) for o in study.CAA_ORDERS] + ["worst"]
    assert list(ds["order"].values) == orders
    values = caa.values
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()
    # the per-input worst case is below every order
    assert (caa.sel(order="worst") <= caa.drop_sel(order="worst").min("order")).all()
    # seed 0's MLP, recomputed from its checkpoint on the same inputs
    cfg = study.StudyConfig.make(quick=True)
    _, X_test, _, y_test = load_mnist5k(test_size=0.2, random_state=0)
    X_eval, y_eval = study._subsample(X_test, y_test, cfg.n_eval, 0)
    n = min(cfg.n_attack, cfg.caa_inputs)
    module = NetClassifier.load(out / "models" / "seed0" / "mlp").module_
    table = composite_robust_accuracy(module, X_eval[:n], y_eval[:n], cfg.caa_eps, orders=list(study.CAA_ORDERS),
                                      ranges=study.CAA_RANGES, steps=cfg.caa_steps, rounds=cfg.caa_rounds, random_state=0)
    np.testing.assert_array_equal(caa.sel(seed=0, model="mlp").values, table["robust_accuracy"].to_numpy())


def test_every_variable_has_a_long_name_and_units(quick_run):
    # CF conventions: a reader of results.nc sees what each number is and its units.
    from geomkit._study_attrs import COORDINATES, VARIABLES

    out, ds = quick_run
    with xr.open_dataset(out / "results.nc") as saved:
        missing = [v for v in saved.data_vars if not {"long_name", "units"} <= set(saved[v].attrs)]
        assert missing == []
        for name in saved.data_vars:
            assert (saved[name].attrs["long_name"], saved[name].attrs["units"]) == VARIABLES[name]
        for name in set(COORDINATES) & set(saved.coords):
            assert saved[name].attrs["units"] == COORDINATES[name][1]
        assert saved["eps"].attrs["units"] == "pixel" and saved["accuracy"].attrs["units"] == "1"


def test_report_tables_scroll_inside_the_page(quick_run):
    import re

    out, _ = quick_run
    page = (out / "report.html").read_text()
    tables = page.count("<table>")
    assert tables >= 3
    # every table sits in a scrolling wrapper, so a wide one cannot push the page wider
    assert page.count('<div class="table-wrap"><table>') == tables
    assert re.search(r"\.table-wrap \{ overflow-x: auto; max-width: 100%; \}", page)


def test_warnings_of_a_measure_name_the_model_and_layer():
    from geomkit.robustness import GradientMaskingWarning

    with pytest.warns(GradientMaskingWarning) as caught:
        with study._named_warnings("sigmoid_saturated/hidden"):
            import warnings

            warnings.warn("PGD is weaker than the noise baseline", GradientMaskingWarning)
    assert [str(w.message) for w in caught] == ["sigmoid_saturated/hidden: PGD is weaker than the noise baseline"]
    assert caught[0].category is GradientMaskingWarning


def test_the_numbers_do_not_depend_on_the_number_of_processes(tmp_path):
    """(seed, model) tasks in one process or spread over two give the same results, bit for bit."""
    import dataclasses

    import torch

    tiny = dataclasses.replace(
        study.StudyConfig.make(quick=True), n_hidden=64, n_hebbian=100, epochs=3, krotov_hopfield_epochs=2,
        softhebb_epochs=2, readout_epochs=3, n_train=600, n_eval=200, n_attack=20, n_bootstraps=3,
        n_pairs=50, n_tuning_units=2, tuning_resolution=8, eps=(0.01, 0.3), pgd_steps=2, n_bisect=2,
        n_noise_draws=1, surrogate_epochs=1, n_seeds=2)
    import warnings

    threads = torch.get_num_threads()
    runs, raised = {}, {}
    try:
        for jobs in (1, 2):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                runs[jobs] = study.run(data="digits", out=tmp_path / f"jobs{jobs}",
                                       models=["mlp", "krotov_hopfield"], config=tiny, progress=False, jobs=jobs)
            # geomkit's own warnings (a library's once-per-process warning depends on what ran before
            # in that process, and the worker processes outlive one run)
            raised[jobs] = {(w.category.__name__, str(w.message)) for w in caught
                            if w.category.__module__.startswith("geomkit")
                            and str(w.message).startswith(("mlp", "krotov_hopfield"))}
    finally:
        torch.set_num_threads(threads)
    one, two = (runs[j].drop_attrs(deep=False) for j in (1, 2))
    xr.testing.assert_identical(one, two)
    # the workers' warnings reach this process, named by model (and layer), as in a serial run
    assert raised[1] == raised[2]


def test_attribution_fragility_is_stored_and_equals_a_recomputation(quick_run):
    # issue 17, part 2: the zoo's saliency maps under the fragility attack vs random noise
    pytest.importorskip("captum")
    from geomkit.probe.attribution import attribution_fragility
    from geomkit.train import NetClassifier

    out, ds = quick_run
    cfg = study.StudyConfig.make(quick=True)
    for var in ("attribution_topk", "attribution_spearman", "attribution_com_shift"):
        assert ds[var].dims == ("seed", "model", "attribution_perturbation", "attribution_eps")
        assert np.isfinite(ds[var].values).all(), var
    np.testing.assert_allclose(ds["attribution_eps"].values, cfg.attribution_eps)
    assert list(ds["attribution_perturbation"].values) == ["attack", "noise"]
    topk = ds["attribution_topk"]
    assert ((topk >= 0) & (topk <= 1)).all()
    # the attack moves the explanations of the plain MLP further than noise of the same eps, every seed
    mlp = topk.sel(model="mlp")
    assert (mlp.sel(attribution_perturbation="attack") < mlp.sel(attribution_perturbation="noise")).all()
    # seed 0's MLP, recomputed from its checkpoint on the same inputs
    module = NetClassifier.load(out / "models" / "seed0" / "mlp").module_
    X = _eval_inputs()[: cfg.n_attack][: cfg.n_attribution]
    table = attribution_fragility(module, X, list(cfg.attribution_eps), shape=(28, 28),
                                  steps=cfg.attribution_steps, random_state=0).set_index(["perturbation", "eps"])
    for kind in ("attack", "noise"):
        got = ds.sel(seed=0, model="mlp", attribution_perturbation=kind, attribution_eps=cfg.attribution_eps[0])
        row = table.loc[(kind, cfg.attribution_eps[0])]
        assert float(got["attribution_topk"]) == pytest.approx(row["topk_intersection"], abs=1e-9)
        assert float(got["attribution_com_shift"]) == pytest.approx(row["center_of_mass_shift"], abs=1e-9)
    with xr.open_dataset(out / "results.nc") as saved:
        assert saved["attribution_com_shift"].attrs["units"] == "pixel"
