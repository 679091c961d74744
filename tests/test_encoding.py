"""Encoding models on synthetic recordings whose predictivity and noise ceiling are known."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from geomkit.datasets import make_recording
from geomkit.measures import EncodingModel, encoding_similarity, noise_ceiling, pearson_per_unit
from geomkit.measures._resampling import ResamplingResult


def _layer(n=800, d=12, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("model", ["ridge", "pls"])
@pytest.mark.parametrize("noise,explained", [(1.0, 1.0), (1.5, 0.6)])
def test_normalized_predictivity_matches_the_ground_truth(model, noise, explained):
    X = _layer(2000)
    rec = make_recording(X, n_units=10, n_repeats=4, noise=noise, explained=explained,
                         alpha=1.0, random_state=1)
    m = EncodingModel(model=model, n_components=12, random_state=0).fit(X, rec)
    truth = (rec["true_predictivity"] / rec["true_ceiling"]).values
    res = m.results_
    assert abs(m.score_ - np.median(truth)) < 0.05
    # per unit the ratio of two noisy estimates scatters more (no bias: mean signed error ~ 0)
    assert np.abs(res["normalized"].values - truth).mean() < 0.08
    assert abs(np.mean(res["normalized"].values - truth)) < 0.05
    assert np.abs(res["predictivity"].values - rec["true_predictivity"].values).mean() < 0.05
    assert np.abs(res["ceiling"].values - rec["true_ceiling"].values).mean() < 0.05
    # r / sqrt(ceiling) estimates the correlation with the noise-free signal, sqrt(explained)
    assert np.median(res["corrected"].values) == pytest.approx(np.sqrt(explained), abs=0.05)


def test_noise_ceiling_is_the_reliability_of_the_trial_mean():
    rec = make_recording(n_stimuli=3000, n_units=6, n_repeats=6, noise=1.5, random_state=2)
    est = noise_ceiling(rec, n_splits=20, random_state=0)
    np.testing.assert_allclose(est, rec["true_ceiling"].values, atol=0.03)
    # two repeats: one split, exactly Spearman-Brown of the correlation of the two repeats
    two = rec.values[:2]
    r = pearson_per_unit(two[0], two[1])
    np.testing.assert_allclose(noise_ceiling(two), 2 * r / (1 + r), atol=1e-12)


def test_predict_score_and_tidy_results_round_trip(tmp_path):
    X = _layer(600)
    rec = make_recording(X, n_units=5, n_repeats=4, noise=0.5, random_state=3)
    m = EncodingModel(random_state=0).fit(X[:400], rec[:, :400])
    assert m.predict(X[400:]).shape == (200, 5)
    truth = float((rec["true_predictivity"] / rec["true_ceiling"]).median())
    assert m.score(X[400:], rec[:, 400:]) == pytest.approx(truth, abs=0.06)
    path = tmp_path / "enc.nc"
    m.results_.to_netcdf(path)
    back = xr.load_dataset(path)
    xr.testing.assert_allclose(back, m.results_)
    df = m.results_.to_dataframe()
    assert list(df.columns) == ["predictivity", "ceiling", "normalized", "corrected"]
    # without repeats: predictivity only, the ceiling is NaN
    flat = EncodingModel(random_state=0).fit(X, rec.mean("repeat"))
    assert np.isnan(flat.results_["ceiling"]).all()
    assert flat.score_ == pytest.approx(float(np.median(flat.results_["predictivity"])))


def test_encoding_similarity_intervals():
    X = _layer(400, 6)
    rec = make_recording(X, n_units=6, n_repeats=4, noise=1.0, random_state=0)
    r = encoding_similarity(X, rec, n_bootstraps=100, n_permutations=49, random_state=0)
    assert isinstance(r, ResamplingResult)
    assert r.ci[0] <= r.value_corrected <= r.ci[1] and r.p_value == pytest.approx(0.02)
    assert r.value == pytest.approx(EncodingModel(random_state=0).fit(X, rec).score_, abs=1e-12)
    unrelated = encoding_similarity(_layer(400, 6, seed=9), rec, n_permutations=49, random_state=0)
    assert unrelated.p_value > 0.05


def test_bad_input_names_the_argument():
    X = _layer(50, 4)
    rec = make_recording(X, n_units=3, random_state=0)
    with pytest.raises(ValueError, match="same stimuli"):
        EncodingModel().fit(X[:40], rec)
    with pytest.raises(ValueError, match="alphas must be positive"):
        EncodingModel(alphas=(1.0, -1.0)).fit(X, rec)
    with pytest.raises(ValueError, match="model must be one of"):
        EncodingModel(model="lasso").fit(X, rec)
    with pytest.raises(ValueError, match="Y must hold repeats"):
        noise_ceiling(rec.values[0])
    with pytest.raises(ValueError, match="X has 3 features but the model was fitted on 4"):
        EncodingModel().fit(X, rec).predict(X[:, :3])
