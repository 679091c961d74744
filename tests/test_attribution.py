"""geomkit.probe.attribution: closed forms, captum, brute-force metrics, and the attacks on explanations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("captum")

from geomkit.probe.attribution import (  # noqa: E402
    attribute,
    attribution_fragility,
    center_of_mass_shift,
    concept_activation_vector,
    concept_sensitivity,
    fragility_attack,
    rank_correlation,
    smoothed_relu,
    tcav_attack,
    tcav_score,
    topk_intersection,
)
from geomkit.probe.attribution.fragility import differentiable_attribution  # noqa: E402


def _linear(seed=0, n_in=6, n_out=3):
    torch.manual_seed(seed)
    net = torch.nn.Linear(n_in, n_out).double()
    return net, net.weight.detach().numpy().copy()


# --------------------------------------------------------------------------- closed forms
def test_linear_model_attributions_equal_their_closed_forms():
    net, W = _linear()
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(5, 6))
    t = np.array([0, 1, 2, 0, 1])
    np.testing.assert_allclose(attribute(net, X, t, method="saliency"), W[t], rtol=1e-12)
    np.testing.assert_allclose(attribute(net, X, t, method="integrated_gradients"), X * W[t], rtol=1e-9)
    np.testing.assert_allclose(attribute(net, X, t, method="deeplift"), X * W[t], rtol=1e-9)
    base = torch.full((5, 6), 0.25, dtype=torch.float64)
    np.testing.assert_allclose(attribute(net, X, t, method="integrated_gradients", baselines=base),
                               (X - 0.25) * W[t], rtol=1e-9)
    np.testing.assert_allclose(attribute(net, X, t, method="deeplift", baselines=base), (X - 0.25) * W[t],
                               rtol=1e-9)
    # target=None explains the predicted class; an int explains that class for every input
    pred = (X @ W.T + net.bias.detach().numpy()).argmax(1)
    np.testing.assert_allclose(attribute(net, X, method="saliency"), W[pred])
    np.testing.assert_allclose(attribute(net, X, 2, method="saliency"), np.tile(W[2], (5, 1)))


def test_dataarray_in_dataarray_out_and_the_model_is_left_as_it_was():
    import xarray as xr

    net, W = _linear()
    net.train()
    X = xr.DataArray(np.random.default_rng(1).uniform(size=(4, 6)), dims=("stimulus", "pixel"),
                     coords={"stimulus": [10, 11, 12, 13]})
    out = attribute(net, X, 1, method="saliency")
    assert isinstance(out, xr.DataArray) and out.dims == X.dims
    np.testing.assert_array_equal(out["stimulus"].values, [10, 11, 12, 13])
    np.testing.assert_allclose(out.values, np.tile(W[1], (4, 1)))
    assert net.training and net.weight.requires_grad


def test_own_differentiable_attributions_equal_captums():
    from captum.attr import IntegratedGradients, Saliency

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)).double()
    x = torch.rand(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 2, 1, 1])
    ours = differentiable_attribution(net, x.clone(), t, "integrated_gradients", n_steps=16)
    theirs = IntegratedGradients(net).attribute(x, target=t, n_steps=16, method="riemann_middle")
    np.testing.assert_allclose(ours.detach().numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    sal = Saliency(net).attribute(x, target=t, abs=False)
    np.testing.assert_allclose(differentiable_attribution(net, x.clone(), t, "saliency").numpy(), sal.numpy())
    np.testing.assert_allclose(differentiable_attribution(net, x.clone(), t, "input_x_gradient").detach().numpy(),
                               (x * sal).numpy())


# --------------------------------------------------------------------------- metrics
def test_metrics_equal_brute_force_computations():
    from scipy.ndimage import center_of_mass
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 4, 5))
    b = a + rng.normal(scale=0.7, size=a.shape)
    k = 5
    got = topk_intersection(a, b, k)
    for i in range(len(a)):
        top_a = set(np.argsort(-np.abs(a[i]).ravel())[:k])
        top_b = set(np.argsort(-np.abs(b[i]).ravel())[:k])
        assert got[i] == len(top_a & top_b) / k
        assert rank_correlation(a, b)[i] == pytest.approx(spearmanr(np.abs(a[i]).ravel(), np.abs(b[i]).ravel())[0])
        shift = np.subtract(center_of_mass(np.abs(a[i])), center_of_mass(np.abs(b[i])))
        assert center_of_mass_shift(a, b)[i] == pytest.approx(np.hypot(*shift))
    # flat maps read on a given grid give the same shift
    np.testing.assert_allclose(center_of_mass_shift(a.reshape(6, -1), b.reshape(6, -1), shape=(4, 5)),
                               center_of_mass_shift(a, b))
    assert (topk_intersection(a, a, k) == 1).all() and np.allclose(rank_correlation(a, -a), 1)


# --------------------------------------------------------------------------- the fragility attack
@pytest.fixture(scope="module")
def digits_net():
    from geomkit.datasets import load_digits
    from geomkit.probe import predict_labels
    from geomkit.probe.attacks import train_surrogate

    X_train, X_test, y_train, y_test = load_digits(test_size=0.25)
    net = train_surrogate(X_train, y_train, hidden=(32,), epochs=15, random_state=0)
    correct = np.asarray(predict_labels(net, X_test)) == y_test
    assert correct.mean() > 0.9
    return net, X_test[correct], y_test[correct]


def test_second_derivatives_of_a_relu_net_vanish_unless_smoothed(digits_net):
    net, X, _ = digits_net
    x = torch.as_tensor(X[:5]).requires_grad_(True)
    t = net(x).argmax(1)

    def grad_of_saliency_mass():
        sal = differentiable_attribution(net, x, t, "saliency", create_graph=True)
        return torch.autograd.grad(sal.abs()[:, :10].sum(), x, allow_unused=True)[0]

    g = grad_of_saliency_mass()
    assert g is None or float(g.abs().max()) == 0.0  # piecewise-linear: the saliency map is locally constant
    with smoothed_relu(net, beta=10.0) as n:
        assert n == 1
        assert float(grad_of_saliency_mass().abs().max()) > 0
    assert not net[2]._forward_hooks  # the hooks are gone


def test_attack_lowers_topk_intersection_below_noise_and_keeps_labels(digits_net):
    net, X, _ = digits_net
    table = attribution_fragility(net, X[:40], [0.05, 0.1], k=10, shape=(8, 8), steps=20, random_state=0)
    t = table.set_index(["perturbation", "eps"])
    for eps in (0.05, 0.1):
        attack, noise = t.loc[("attack", eps)], t.loc[("noise", eps)]
        assert attack["label_kept"] == 1.0
        assert attack["topk_intersection"] < noise["topk_intersection"] - 0.1  # measured: 0.79 vs 0.95, 0.72 vs 0.92
        assert attack["rank_correlation"] < noise["rank_correlation"]
    # the larger ball moves the explanation further
    assert t.loc[("attack", 0.1), "topk_intersection"] < t.loc[("attack", 0.05), "topk_intersection"]


def test_attack_stays_in_the_ball_and_the_centre_of_mass_objective_moves_the_centre(digits_net):
    net, X, _ = digits_net
    x = torch.as_tensor(X[:20])
    x_adv = fragility_attack(net, x, 0.1, objective="center_of_mass", shape=(8, 8), steps=20)
    assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6 and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert (net(x_adv).argmax(1) == net(x).argmax(1)).all()
    labels = net(x).argmax(1).numpy()
    before = attribute(net, x, labels, method="saliency")
    moved = center_of_mass_shift(before, attribute(net, x_adv, labels, method="saliency"), shape=(8, 8))
    noise = (x + 0.1 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))).clamp(0, 1)
    by_noise = center_of_mass_shift(before, attribute(net, noise, labels, method="saliency"), shape=(8, 8))
    assert moved.mean() > 2 * by_noise.mean()


# --------------------------------------------------------------------------- concepts
def _planted(seed=0, n_in=10, n_units=12):
    """A net whose class-0 logit rises along a known direction v of the first layer's output."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(n_in, n_units).double()
    v = torch.randn(n_units, dtype=torch.float64)
    v /= v.norm()
    readout = torch.nn.Linear(n_units, 2).double()
    with torch.no_grad():
        readout.weight[0] = v  # grad_h z_0 = v * tanh'(h): positive along v everywhere
    return torch.nn.Sequential(layer, torch.nn.Tanh(), readout), v.numpy()


def test_tcav_of_a_planted_concept_is_one_and_of_random_cavs_one_half():
    net, v = _planted()
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(200, 10))
    with torch.no_grad():
        acts = net[0](torch.as_tensor(rng.uniform(size=(300, 10)))).numpy()
    cav = concept_activation_vector(acts[:100] + 2.0 * v, acts[100:200])
    assert cav @ v > 0.9
    assert tcav_score(net, X, "0", cav, target=0) == 1.0
    random_scores = [tcav_score(net, X, "0", concept_activation_vector(acts[rng.choice(300, 50)],
                                                                          acts[rng.choice(300, 50)]), target=0)
                     for _ in range(30)]
    assert 0.3 < np.mean(random_scores) < 0.7
    # the sensitivity is the directional derivative: grad_h z_0 . cav = sum_j v_j tanh'(h_j) cav_j
    with torch.no_grad():
        h = net[0](torch.as_tensor(X[:5]))
    expected = ((1 - torch.tanh(h) ** 2) * torch.as_tensor(v)) @ torch.as_tensor(cav)
    np.testing.assert_allclose(concept_sensitivity(net, X[:5], "0", cav, target=0), expected.numpy(), rtol=1e-10)


def test_tcav_attack_moves_concept_sensitivity_far_more_than_noise_and_keeps_labels(digits_net):
    net, X, y = digits_net
    with torch.no_grad():
        acts = net[1](torch.as_tensor(X)).numpy()
    # the concept "looks like a 4", at the hidden pre-activations, for the class-0 inputs: a concept the
    # class 0 leans on (TCAV score > 0.8) without being its own
    cav = concept_activation_vector(acts[y == 4], acts[y != 4][:60])
    x = torch.as_tensor(X[y == 0])
    before = tcav_score(net, x, "1", cav)
    assert before > 0.8
    noise = (x + 0.1 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))).clamp(0, 1)
    s0 = concept_sensitivity(net, x, "1", cav)
    drop_noise = s0 - concept_sensitivity(net, noise, "1", cav)
    for increase in (False, True):
        x_adv = tcav_attack(net, x, "1", cav, eps=0.1, steps=20, increase=increase)
        assert (net(x_adv).argmax(1) == net(x).argmax(1)).all()
        assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
        change = concept_sensitivity(net, x_adv, "1", cav) - s0
        assert (change > 0).all() if increase else (change < 0).all()
        assert abs(change.mean()) > 3 * abs(drop_noise.mean())
        if not increase:
            assert tcav_score(net, x_adv, "1", cav) < 0.5  # the explanation flips; no prediction does


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_clear_errors():
    net, _ = _linear()
    X = np.random.default_rng(0).uniform(size=(3, 6))
    with pytest.raises(ValueError, match="method must be one of 'saliency', 'integrated_gradients', 'deeplift'"):
        attribute(net, X, method="gradcam")
    with pytest.raises(TypeError, match="takes no keyword"):
        attribute(net, X, method="saliency", n_steps=5)
    with pytest.raises(ValueError, match="class index 7"):
        attribute(net, X, 7)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        attribute(lambda x: x, X)
    with pytest.raises(ValueError, match="same shape"):
        topk_intersection(np.ones((2, 4)), np.ones((3, 4)), 2)
    with pytest.raises(ValueError, match="k must be <= 4"):
        topk_intersection(np.ones((2, 4)), np.ones((2, 4)), 5)
    with pytest.raises(ValueError, match="shape"):
        center_of_mass_shift(np.ones((2, 6)), np.ones((2, 6)), shape=(4, 4))
    with pytest.raises(ValueError, match="eps must be"):
        fragility_attack(net, X, -0.1)
    with pytest.raises(ValueError, match="objective must be one of"):
        fragility_attack(net, X, 0.1, objective="bottom-k")
    with pytest.raises(ValueError, match="outside bounds"):
        fragility_attack(net, X + 2, 0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        attribution_fragility(net, X, 0.1, method="lime")
    with pytest.raises(ValueError, match="unknown layer"):
        tcav_score(net, X, "hidden", np.ones(3))
    tiny = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Linear(4, 2)).double()
    with pytest.raises(ValueError, match="cav has 3 entries but layer '0' has 4 units"):
        tcav_score(tiny, X, "0", np.ones(3))
    with pytest.raises(ValueError, match="same layer"):
        concept_activation_vector(np.ones((5, 3)), np.ones((5, 4)))


def test_without_captum_attribute_names_the_extra_and_the_study_writes_nan(monkeypatch):
    import sys

    from geomkit import study

    for name in [m for m in sys.modules if m == "captum" or m.startswith("captum.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "captum", None)  # import captum -> ImportError
    net, _ = _linear()
    with pytest.raises(ImportError, match=r"pip install geomkit\[attribution\]"):
        attribute(net, np.zeros((2, 6)))
    assert not study._has_captum()
    cfg = study.StudyConfig.make(quick=True)
    out = study._attribution(net, np.zeros((4, 6)), cfg, 0)
    assert set(out) == {"attribution_topk", "attribution_spearman", "attribution_com_shift"}
    assert all(v.shape == (2, len(cfg.attribution_eps)) and np.isnan(v).all() for v in out.values())
