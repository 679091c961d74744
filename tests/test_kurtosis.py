"""Weight kurtosis against closed forms (Gaussian 0, Laplace 3, uniform -1.2) and scipy."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import stats
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from geomkit.measures.kurtosis import (
    WeightKurtosis,
    excess_kurtosis,
    l1_l2_ratio,
    pooled_weight_kurtosis,
    weight_kurtosis,
)

# Excess kurtosis and E|w| / sqrt(E w^2) of the three reference laws.
LAWS = {
    "normal": (lambda rng, n: rng.standard_normal(n), 0.0, np.sqrt(2 / np.pi)),
    "laplace": (lambda rng, n: rng.laplace(size=n), 3.0, 1 / np.sqrt(2)),
    "uniform": (lambda rng, n: rng.uniform(-1, 1, size=n), -1.2, np.sqrt(3) / 2),
}


@pytest.mark.parametrize("law", list(LAWS))
def test_reference_laws_with_a_million_weights(law):
    draw, kurt, ratio = LAWS[law]
    w = draw(np.random.default_rng(0), 10**6).reshape(1000, 1000)
    est = WeightKurtosis().fit(w)
    assert abs(est.kurtosis_ - kurt) < 0.05
    assert abs(est.l1_l2_normalized_ - ratio) < 2e-3
    assert est.n_weights_ == 10**6 and est.n_features_in_ == 1000
    # The same through a model: one Linear layer holding these weights.
    lin = nn.Linear(1000, 1000)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
    row = weight_kurtosis(lin).iloc[0]
    assert row["layer"] == "" and row["n_weights"] == 10**6
    assert row["kurtosis"] == pytest.approx(est.kurtosis_, abs=1e-5)  # float32 storage


def test_pearson_and_unbiased_options_follow_scipy():
    w = np.random.default_rng(1).standard_t(df=6, size=(40, 25))
    for fisher in (True, False):
        for bias in (True, False):
            est = WeightKurtosis(fisher=fisher, bias=bias).fit(w)
            assert est.kurtosis_ == pytest.approx(stats.kurtosis(w.ravel(), fisher=fisher, bias=bias), rel=1e-12)


def test_per_layer_rows_and_pooled_value():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 20), nn.ReLU(), nn.Linear(20, 3),
    )
    table = weight_kurtosis(net)
    assert list(table["layer"]) == ["0", "4", "6"]  # batch norm scales are not weights
    assert list(table["module"]) == ["Conv2d", "Linear", "Linear"]
    weights = [net[i].weight.detach().double().numpy().ravel() for i in (0, 4, 6)]
    for row, w in zip(table.itertuples(), weights):
        assert row.n_weights == w.size
        assert row.kurtosis == pytest.approx(stats.kurtosis(w), rel=1e-12)
        assert row.l1_l2_ratio == pytest.approx(np.abs(w).sum() / np.linalg.norm(w), rel=1e-12)
        assert row.l1_l2_normalized == pytest.approx(row.l1_l2_ratio / np.sqrt(w.size), rel=1e-12)
    pooled = np.concatenate(weights)
    summary = pooled_weight_kurtosis(net)
    assert summary["kurtosis"] == pytest.approx(stats.kurtosis(pooled), rel=1e-12)
    assert summary["n_weights"] == pooled.size and summary["layers"] == "0,4,6"
    assert summary["l1_l2_ratio"] == pytest.approx(np.abs(pooled).sum() / np.linalg.norm(pooled), rel=1e-12)
    with_bias = weight_kurtosis(net, layers=["4"], include_bias=True)
    w4 = np.concatenate([weights[1], net[4].bias.detach().double().numpy()])
    assert with_bias.iloc[0]["n_weights"] == w4.size == 144 * 20 + 20
    assert with_bias.iloc[0]["kurtosis"] == pytest.approx(stats.kurtosis(w4), rel=1e-12)
    from_dict = pooled_weight_kurtosis({"a": weights[0], "b": weights[2]})
    assert from_dict["kurtosis"] == pytest.approx(stats.kurtosis(np.concatenate([weights[0], weights[2]])))
    assert list(weight_kurtosis({"a": weights[0], "b": weights[2]})["layer"]) == ["a", "b"]


def test_closed_form_small_cases():
    assert excess_kurtosis([-1.0, 1.0]) == pytest.approx(-2.0)  # two-point law: 1/1 - 3
    assert l1_l2_ratio([3.0, 4.0]) == pytest.approx(7 / 5)
    assert l1_l2_ratio(np.ones(16), normalized=True) == pytest.approx(1.0)
    assert l1_l2_ratio(np.eye(1, 16)[0], normalized=True) == pytest.approx(0.25)


def test_score_and_cross_validation():
    w = np.random.default_rng(2).laplace(size=(200, 50))
    est = WeightKurtosis().fit(w[:100])
    assert est.score(w[100:]) == pytest.approx(stats.kurtosis(w[100:].ravel()), rel=1e-12)
    scores = cross_val_score(WeightKurtosis(), w, cv=4)
    truth = [stats.kurtosis(w[i * 50 : (i + 1) * 50].ravel()) for i in range(4)]
    np.testing.assert_allclose(scores, truth, rtol=1e-12)
    vec = WeightKurtosis().fit(w.ravel())  # any shape, 1-D included
    assert vec.kurtosis_ == pytest.approx(stats.kurtosis(w.ravel()), rel=1e-12)
    assert not hasattr(vec, "n_features_in_")
    kernel = WeightKurtosis().fit(w.reshape(10, 5, 20, 10))
    assert kernel.kurtosis_ == pytest.approx(vec.kurtosis_, rel=1e-12)
    with pytest.raises(ValueError, match="expecting 50 features"):
        est.score(w[:, :10])


def test_bad_input():
    with pytest.raises(TypeError, match="torch.nn.Module or a dict"):
        weight_kurtosis(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"unknown weight layer.*'0'"):
        weight_kurtosis(nn.Sequential(nn.Linear(3, 3)), layers=["00"])
    with pytest.raises(ValueError, match="no layer with a weight"):
        weight_kurtosis(nn.ReLU())
    with pytest.raises(ValueError, match="NaN"):
        WeightKurtosis().fit(np.array([[1.0, np.nan], [0.0, 2.0]]))
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert np.isnan(excess_kurtosis(np.full((3, 3), 0.5)))


def test_model_untouched():
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    weight_kurtosis(net, include_bias=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    assert net.training and all(p.requires_grad for p in net.parameters())


def _expected_failed(estimator):
    return {
        "check_fit1d": "weights come in any shape; a 1-D weight vector (a linear readout, a "
        "bias) is valid input, so fit accepts 1-D arrays instead of raising.",
    }


@parametrize_with_checks([WeightKurtosis()], expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    check(estimator)
