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
        ds = study.run(out=out, quick=True, progress=False, seed=0)
    finally:
        torch.set_num_threads(threads)
    return out, ds


def test_every_output_is_written_and_round_trips(quick_run):
    out, ds = quick_run
    with xr.open_dataset(out / "results.nc") as saved:
        xr.testing.assert_identical(saved.load(), ds)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == len(study.ZOO) * 3
    assert set(summary["model"]) == set(study.ZOO)
    assert {p.stem for p in (out / "figures").glob("*.png")} >= {
        "spectra", "kurtosis", "flatness", "robustness", "categoricality", "betti_curves"}
    for name in study.ZOO:
        assert (out / "models" / name / "state_dict.pt").is_file()
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 6 and "What the papers claim" in html


def test_input_layer_spectrum_equals_numpy(quick_run):
    _, ds = quick_run
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


def test_rerun_reuses_checkpoints(quick_run):
    out, ds = quick_run
    again = study.run(out=out, quick=True, progress=False, seed=0, models=["mlp"])
    assert "mlp: reusing the checkpoint" in again.attrs["notes"]
    assert float(again["accuracy"].sel(model="mlp")) == float(ds["accuracy"].sel(model="mlp"))


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
