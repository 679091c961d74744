"""Spiking nets (geomkit.train.spiking): LIF dynamics and surrogate gradients against snntorch and
closed forms, the MPPD regularizer against its closed form, probes, attacks and the masking check."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from geomkit.datasets import load_digits
from geomkit.train import LIF, MembranePerturbation, SpikingClassifier, SpikingMLP, membrane_perturbation, spike
from geomkit.train.spiking import SURROGATES, with_surrogate


@pytest.fixture(scope="module")
def digits():
    return load_digits(test_size=0.3)


@pytest.fixture(scope="module")
def digits_snn(digits):
    X_train, X_test, y_train, y_test = digits
    return SpikingClassifier(hidden_sizes=(96,), n_steps=6, epochs=12, random_state=0,
                             progress=False).fit(X_train, y_train)


# --------------------------------------------------------------------------- the spike and its surrogates
# the derivatives, written out independently of the primitives the module differentiates
DERIVATIVES = {
    "fast_sigmoid": lambda x, k: 1.0 / (1.0 + k * np.abs(x)) ** 2,
    "atan": lambda x, k: (k / 2) / (1.0 + (np.pi / 2 * k * x) ** 2),
    "sigmoid": lambda x, k: k * np.exp(-k * x) / (1.0 + np.exp(-k * x)) ** 2,
    "triangle": lambda x, k: k * np.maximum(0.0, 1.0 - k * np.abs(x)),
}


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("scale", [None, 3.0])
def test_spike_is_the_step_with_the_surrogate_derivative(name, scale):
    x = torch.linspace(-2, 2, 101, dtype=torch.float64, requires_grad=True)
    s = spike(x, name, scale)
    assert torch.equal(s, (x > 0).double())  # exactly 0 / 1
    s.sum().backward()
    k = SURROGATES[name][1] if scale is None else scale
    np.testing.assert_allclose(x.grad.numpy(), DERIVATIVES[name](x.detach().numpy(), k), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("name,peer", [("fast_sigmoid", "fast_sigmoid"), ("atan", "atan"), ("sigmoid", "sigmoid")])
def test_lif_matches_snntorch_leaky(name, peer):
    snntorch = pytest.importorskip("snntorch")
    from snntorch import surrogate

    torch.manual_seed(0)
    T, beta, threshold = 12, 0.8, 0.7
    current = (torch.randn(16, T, 9) * 0.8 + 0.3).requires_grad_(True)
    readout = torch.randn(T, 9)

    lif = LIF(9, n_steps=T, beta=beta, threshold=threshold, surrogate=name)
    ours = lif(current)
    (g_ours,) = torch.autograd.grad((ours * readout).sum(), current)

    leaky = snntorch.Leaky(beta=beta, threshold=threshold, spike_grad=getattr(surrogate, peer)())
    mem = leaky.init_leaky()
    spikes = []
    for t in range(T):
        spk, mem = leaky(current[:, t], mem)
        spikes.append(spk)
    theirs = torch.stack(spikes, 1)
    (g_theirs,) = torch.autograd.grad((theirs * readout).sum(), current)

    assert 0.1 < float(ours.detach().mean()) < 0.9  # the comparison covers spikes and silences
    assert torch.equal(ours, theirs)
    # snntorch's sigmoid surrogate computes k e^{-kx} / (1 + e^{-kx})^2, which overflows to NaN far
    # below the threshold in float32; ours stays finite, and the two agree wherever snntorch's is
    assert torch.isfinite(g_ours).all()
    finite = torch.isfinite(g_theirs)
    assert finite.float().mean() > 0.9
    # (float32: snntorch's sigmoid formula loses a few digits against torch.sigmoid's)
    tol = 1e-5 if name == "sigmoid" else 1e-6
    torch.testing.assert_close(g_ours[finite], g_theirs[finite], rtol=10 * tol, atol=tol)


def test_integrate_and_fire_counts_closed_form():
    # beta = 1: U_t = t I - theta (spikes before t); a spike when U_t > theta. For I = theta * r with
    # 0 < r < 1 the neuron fires floor((t - 1) r ...) times; brute-force the recurrence in plain Python
    T, theta = 50, 1.0
    rates = [0.13, 0.37, 0.5, 0.71, 0.99]
    out = LIF(len(rates), n_steps=T, beta=1.0, threshold=theta)(torch.tensor([rates], dtype=torch.float64))[0]
    for j, r in enumerate(rates):
        u, prev, count = 0.0, 0, 0
        for _ in range(T):
            u = u + r - prev * theta
            prev = int(u > theta)
            count += prev
        assert int(out[:, j].sum()) == count
        # the long-run rate of an integrate-and-fire neuron with subtractive reset is I / theta
        assert abs(count / T - r) <= 2.0 / T


def test_oscillating_membrane_zero_omega_is_lif_and_rotation_delays_spikes():
    current = torch.full((1, 3), 0.4)
    plain = LIF(3, n_steps=20, beta=0.9)(current)
    assert torch.equal(LIF(3, n_steps=20, beta=0.9, omega=0.0)(current), plain)
    # an oscillating membrane (no spike): U_t = Re(sum_k (beta e^{i omega})^k) I, smaller than the LIF's
    rotated = LIF(3, n_steps=20, beta=0.9, omega=0.6)(current)
    assert rotated.sum() < plain.sum()


# --------------------------------------------------------------------------- the MPPD regularizer
@pytest.mark.parametrize("beta,omega", [(0.5, 0.0), (0.9, 0.0), (0.8, 0.7), (1.0, 1.3)])
def test_membrane_perturbation_closed_form(beta, omega):
    T, d = 7, torch.tensor([[1.5, -0.5]], dtype=torch.float64)
    delta = d.unsqueeze(1).expand(1, T, 2)
    z = beta * complex(math.cos(omega), math.sin(omega))
    # Y_t = d (1 + z + ... + z^{t-1}) = d (1 - z^t) / (1 - z) (a geometric sum; t terms when z = 1)
    sums = [t if z == 1 else abs((1 - z**t) / (1 - z)) for t in range(1, T + 1)]
    expected = float((d**2).mean()) * float(np.mean(np.square(sums)))
    got = float(membrane_perturbation(delta, beta, omega=omega))
    assert got == pytest.approx(expected, rel=1e-12)


def test_membrane_perturbation_with_gain_closed_form():
    T, beta = 4, 0.5
    gain = torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=torch.float64)
    delta = torch.ones(1, T, 1, dtype=torch.float64)
    y, ys = 0.0, []
    for t in range(T):
        y = beta * y + float(gain[t])
        ys.append(y)  # 1, 2.5, 1.25, -0.375
    assert float(membrane_perturbation(delta, beta, gain=gain)) == pytest.approx(np.mean(np.square(ys)), rel=1e-12)


def test_membrane_perturbation_regularizer_value_closed_form():
    # current encoding: the clean and noisy input currents differ by W (x - x') = -sigma W n in every step
    torch.manual_seed(3)
    net = SpikingMLP((5, 4, 3), n_steps=6, beta=0.7, encoding="current").double().train()
    reg = MembranePerturbation(strength=2.0, noise_std=0.3)
    reg.setup(net, torch.zeros(1, 5), batch_size=8, n_epochs=1)
    x = torch.rand(8, 5, dtype=torch.float64)
    from geomkit.train.regularizers import BatchContext

    torch.manual_seed(11)
    value = reg(BatchContext(net, x, None)).detach()
    torch.manual_seed(11)
    torch.randint(0, 2**62, (1,))  # the common-random-numbers seed the term draws first
    noise = torch.randn_like(x)
    d = (-0.3 * noise @ net.fc1.weight.T).detach()  # (8, 4)
    growth = [(1 - 0.7**t) / (1 - 0.7) for t in range(1, 7)]
    expected = 2.0 * float((d**2).mean()) * float(np.mean(np.square(growth)))
    assert float(value) == pytest.approx(expected, rel=1e-10)


def test_membrane_perturbation_trains_and_lowers_the_perturbation(digits):
    X_train, X_test, y_train, y_test = digits
    common = dict(hidden_sizes=(64,), n_steps=6, epochs=10, random_state=0, progress=False)
    plain = SpikingClassifier(**common).fit(X_train, y_train)
    reg = SpikingClassifier(regularizers=MembranePerturbation(strength=0.3, noise_std=0.2), **common)
    reg.fit(X_train, y_train)
    assert "reg_mppd" in reg.history_ and np.isfinite(reg.history_["reg_mppd"]).all()
    assert reg.score(X_test, y_test) > 0.8  # (plain: 0.92; the term trades accuracy for stability)

    def mppd(clf):  # the unweighted term on held-out inputs, same noise for both nets
        probe = MembranePerturbation(strength=1.0, noise_std=0.2)
        probe.setup(clf.module_, None, batch_size=1, n_epochs=1)
        torch.manual_seed(0)
        from geomkit.train.regularizers import BatchContext

        with torch.no_grad():
            return float(probe(BatchContext(clf.module_.train(), torch.as_tensor(X_test), None)))

    assert mppd(reg) < 0.7 * mppd(plain)  # measured: 0.26 vs 0.42


# --------------------------------------------------------------------------- the classifier
def test_spiking_classifier_learns_digits(digits, digits_snn):
    X_train, X_test, y_train, y_test = digits
    assert digits_snn.score(X_test, y_test) > 0.9
    with torch.no_grad():
        counts = digits_snn.module_.simulate(torch.as_tensor(X_test[:5]))["spikes"][0].sum(1)
    assert counts.max() <= 6 and torch.equal(counts, counts.round())  # spike counts: integers in 0..n_steps


def test_save_load_round_trip(tmp_path, digits, digits_snn):
    X_test = digits[1]
    digits_snn.save(tmp_path / "snn")
    loaded = SpikingClassifier.load(tmp_path / "snn")
    np.testing.assert_array_equal(loaded.predict_proba(X_test), digits_snn.predict_proba(X_test))
    assert loaded.get_params() == digits_snn.get_params()


@pytest.mark.slow
def test_mnist5k_accuracy_close_to_the_matching_ann():
    from geomkit.datasets import load_mnist5k
    from geomkit.train import MLP, NetClassifier

    X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2, random_state=0)
    epochs = 8
    ann = NetClassifier(module=MLP((784, 256, 10)), epochs=epochs, lr=2e-3, random_state=0,
                        progress=False).fit(X_train, y_train)
    snn = SpikingClassifier(hidden_sizes=(256,), n_steps=8, epochs=epochs, lr=2e-3, random_state=0,
                            progress=False).fit(X_train, y_train)
    acc_ann, acc_snn = ann.score(X_test, y_test), snn.score(X_test, y_test)
    assert acc_ann > 0.9
    assert acc_snn >= 0.95 * acc_ann


@pytest.mark.parametrize("params,match", [
    ({"n_steps": 0}, "n_steps must be an integer >= 1; got 0"),
    ({"surrogate": "fast_sigmod"}, "surrogate must be one of .*did you mean 'fast_sigmoid'"),
    ({"encoding": "spikes"}, "encoding must be one of 'bernoulli', 'poisson', 'current'"),
    ({"beta": 1.5}, r"beta must be a finite real number in \[0, 1\]"),
])
def test_bad_parameters_name_themselves(digits, params, match):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=match):
        SpikingClassifier(**params, epochs=1, progress=False).fit(X_train[:50], y_train[:50])


def test_bad_input_errors():
    with pytest.raises(TypeError, match="n_steps must be an integer >= 1; got 2.5"):
        SpikingMLP((4, 3, 2), n_steps=2.5)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        LIF(3, surrogate="relu")
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\] for encoding='bernoulli'"):
        SpikingClassifier(epochs=1, progress=False).fit(np.full((20, 4), 2.0), [0, 1] * 10)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        with_surrogate(SpikingMLP((4, 3, 2)), "nope")
    with pytest.raises(TypeError, match="needs a SpikingMLP"):
        MembranePerturbation().setup(torch.nn.Linear(2, 2), torch.zeros(1, 2), batch_size=1, n_epochs=1)


# --------------------------------------------------------------------------- probes
def test_extract_records_spikes_with_a_time_axis_and_counts(digits, digits_snn):
    from geomkit.probe import extract, layer_activations, unstack_units

    X_test = digits[1][:30]
    ds = extract(digits_snn.module_, X_test, ["lif1", "count1"], progress=False)
    spikes = unstack_units(layer_activations(ds, "lif1"))
    assert spikes.dims == ("stimulus", "time", "neuron") and spikes.sizes["time"] == 6
    counts = layer_activations(ds, "count1")
    np.testing.assert_array_equal(spikes.sum("time").values, counts.values)
    # an independent forward: the counts are the spikes summed over the steps
    with torch.no_grad():
        direct = digits_snn.module_.simulate(torch.as_tensor(X_test))["spikes"][0].sum(1).numpy()
    np.testing.assert_array_equal(counts.values, direct)


def test_the_forward_in_eval_mode_is_deterministic_and_sampling_is_detected(digits_snn, digits):
    from geomkit.probe.attacks import randomized_forward

    X = torch.as_tensor(digits[1][:20])
    assert randomized_forward(digits_snn.module_, X) is False
    config = {k: v for k, v in digits_snn.module_.config.items() if k != "kind"}
    sampled = SpikingMLP(**{**config, "sample_in_eval": True}).eval()
    sampled.load_state_dict(digits_snn.module_.state_dict())
    assert randomized_forward(sampled, X) is True


# --------------------------------------------------------------------------- attacks
def test_pgd_through_the_surrogate_flips_predictions(digits, digits_snn):
    from geomkit.probe.attacks import make_attack, predict_labels, zero_gradient_fraction

    X, y = torch.as_tensor(digits[1][:100]), torch.as_tensor(digits[3][:100])
    net = digits_snn.module_
    assert zero_gradient_fraction(net, X, y) < 0.05
    clean = (predict_labels(net, X) == y).double().mean()
    adv = make_attack("pgd", eps=0.15, steps=20, random_state=0).perturb(net, X, y)
    assert float((adv - X).abs().max()) <= 0.15 + 1e-6
    robust = (predict_labels(net, adv) == y).double().mean()
    noise = make_attack("noise", eps=0.15, random_state=0).perturb(net, X, y)
    assert robust < 0.5 * clean
    assert robust < (predict_labels(net, noise) == y).double().mean()


def test_adversarial_robustness_checks_pass_on_the_snn(digits, digits_snn):
    from geomkit.robustness import AdversarialRobustness

    X, y = digits[1][:60], digits[3][:60]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        est = AdversarialRobustness(digits_snn.module_, attacks=("fgsm", "pgd", "square"), eps=[0.05, 0.2, 0.6],
                                    steps=10, compute_critical_eps=False, progress=False,
                                    attack_params={"square": {"n_queries": 50}}).fit(X, y)
    checks = est.diagnostics_.set_index("check")["status"]
    assert checks["deterministic_forward"] == "pass"
    assert checks["zero_gradient"] == "pass"
    assert float(est.robust_accuracy_.sel(attack="pgd").values[-1]) == 0.0


def test_surrogate_check_warns_when_the_training_surrogate_masks(digits, digits_snn):
    from geomkit.robustness import GradientMaskingWarning, surrogate_gradient_check

    X, y = digits[1][:80], digits[3][:80]
    # a needle-thin training surrogate: nearly every membrane sits outside its support, the gradient
    # vanishes and PGD through it stalls; other surrogates (same forward pass) see the directions
    masked = with_surrogate(digits_snn.module_, "triangle", 1e4)
    with pytest.warns(GradientMaskingWarning, match="'pgd/atan'"):
        table = surrogate_gradient_check(masked, X, y, eps=[0.1], other_surrogates=("atan",), steps=10,
                                         n_queries=50)
    row = table.set_index("attack").loc["pgd/atan"]
    assert bool(row["beats_training_surrogate"]) and row["gap"] > 0.3
    # the unmasked net: PGD through its own surrogate is at least as strong as through atan
    table = surrogate_gradient_check(digits_snn.module_, X, y, eps=[0.1], other_surrogates=("atan",), steps=10,
                                     n_queries=50)
    pgd = table.set_index("attack")["robust_accuracy"]
    assert pgd["pgd"] <= pgd["pgd/atan"] + 0.05


def test_surrogate_check_bad_input(digits_snn):
    from geomkit.robustness import surrogate_gradient_check

    with pytest.raises(TypeError, match="spiking net"):
        surrogate_gradient_check(torch.nn.Linear(2, 2), np.zeros((2, 2)), [0, 1], eps=0.1)
    with pytest.raises(ValueError, match="other_surrogates"):
        surrogate_gradient_check(digits_snn.module_, np.zeros((2, 64)), [0, 1], eps=0.1, other_surrogates=("x",))
