"""AdversarialRobustness against ground truth: direct attack runs, closed forms on a linear
model, and deliberately masked models whose masking the diagnostics must catch."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

from geomkit import AdversarialRobustness, GradientMaskingWarning
from geomkit.datasets import load_digits
from geomkit.plotting import plot_critical_eps, plot_robust_accuracy
from geomkit.probe import attacks as A
from geomkit.robustness import robustness_auc

FAST = dict(n_eps=8, n_noise_draws=5, n_bisect=6, progress=False,
            surrogate_params={"hidden": (32,), "epochs": 5})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small models run fastest single-threaded; the test machine is shared.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    idx = np.random.default_rng(0).permutation(len(X))
    return X[idx[:200]], y[idx[:200]], X, y


@pytest.fixture(scope="module")
def mlp(digits):
    *_, X, y = digits
    return A.train_surrogate(X, y, hidden=(32,), epochs=8, random_state=0)


class ScaleLogits(torch.nn.Module):
    """Multiplies the logits: same predictions, a softmax that saturates (masked gradients)."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, z):
        return z * self.k


def fit_quietly(est, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    return est, [w for w in caught if issubclass(w.category, GradientMaskingWarning)]


@pytest.fixture(scope="module")
def plain_fit(mlp, digits):
    X, y, *_ = digits
    attacks = ("fgsm", "pgd", "pgd-margin", "pgd-f64", "noise", "transfer")
    return fit_quietly(AdversarialRobustness(mlp, attacks=attacks, **FAST), X, y)


def status(est):
    return dict(zip(est.diagnostics_["check"], est.diagnostics_["status"]))


# ---------------------------------------------------------------------------- ordinary model
def test_ordinary_mlp_triggers_no_warning(plain_fit):
    est, caught = plain_fit
    assert caught == []
    assert set(status(est).values()) == {"pass"}
    assert est.zero_gradient_fraction_.max() == 0.0


def test_sweep_equals_direct_attacks(plain_fit, mlp, digits):
    est, _ = plain_fit
    X, y, *_ = digits
    pred = A.predict_labels(mlp, X).numpy()
    correct = pred == y
    assert est.n_correct_ == correct.sum() and est.clean_accuracy_ == correct.mean()
    Xc, yc = X[correct], y[correct]
    for k in (3, 5):
        eps = est.eps_[k]
        adv = A.pgd(mlp, Xc, yc, eps, steps=20, random_state=0, batch_size=512)
        direct = (A.predict_labels(mlp, adv).numpy() == yc).mean()
        assert est.robust_accuracy_.sel(attack="pgd").values[k] == pytest.approx(direct, abs=1e-12)
    # The default grid: 8 log-spaced values over 1e-3 .. 1 x (high - low).
    np.testing.assert_allclose(est.eps_, np.geomspace(1e-3, 1.0, 8))


def test_score_is_normalized_log_eps_area_of_strongest_attack(plain_fit, digits):
    est, _ = plain_fit
    X, y, *_ = digits
    acc = est.robust_accuracy_.values
    log_eps = np.log(est.eps_)
    # Trapezoids by hand, divided by the log-eps span.
    areas = [sum((a[i] + a[i + 1]) / 2 * (log_eps[i + 1] - log_eps[i])
                 for i in range(len(a) - 1)) / (log_eps[-1] - log_eps[0]) for a in acc]
    np.testing.assert_allclose(est.auc_.values, areas, rtol=1e-12)
    assert est.strongest_attack_ == est.auc_.index[int(np.argmin(areas))]
    # score() reruns the sweep on (X, y): seeded, it reproduces the fit.
    assert est.score(X, y) == pytest.approx(min(areas), abs=1e-12)


def test_critical_eps_consistent_with_sweep(plain_fit):
    est, _ = plain_fit
    crit = est.critical_eps_.values
    flipped = est.flipped_.sel(attack=est.critical_attack_).values  # (eps, input)
    first = np.where(flipped.any(0), flipped.argmax(0), -1)
    # The bisection stays inside each input's grid bracket ...
    hit = first >= 0
    assert np.all(crit[hit] <= est.eps_[first[hit]])
    lower = np.where(first[hit] > 0, est.eps_[np.maximum(first[hit] - 1, 0)], 0.0)
    assert np.all(crit[hit] > lower)
    # ... and inputs never flipped are inf.
    assert np.all(np.isposinf(crit[~hit]))
    assert est.critical_attack_ == est.auc_[["pgd", "pgd-margin", "pgd-f64"]].idxmin()


# ---------------------------------------------------------------------------- masked models
def test_logits_times_1e4_masking_is_caught_and_margin_breaks_it(mlp, digits, plain_fit):
    X, y, *_ = digits
    masked = torch.nn.Sequential(mlp, ScaleLogits(1e4))
    est, caught = fit_quietly(AdversarialRobustness(
        masked, attacks=("fgsm", "pgd", "pgd-margin", "noise", "transfer"), **FAST), X, y)
    checks = status(est)
    assert checks["zero_gradient"] == "warn" and checks["white_box_beats_black_box"] == "warn"
    warned = " ".join(str(w.message) for w in caught)
    assert "zero_gradient" in warned and "white_box_beats_black_box" in warned
    assert est.zero_gradient_fraction_["ce/float32"] > 0.9
    assert est.zero_gradient_fraction_["margin/float32"] == 0.0
    # The cross-entropy attack is fooled: it reports far more robustness than the model has.
    plain, _ = plain_fit
    assert est.auc_["pgd"] > plain.auc_["pgd"] + 0.2
    # The margin loss is blind to the scale: it sees the unmasked model's robustness.
    np.testing.assert_allclose(est.robust_accuracy_.sel(attack="pgd-margin"),
                               plain.robust_accuracy_.sel(attack="pgd-margin"), atol=0.01)
    assert est.strongest_attack_ == "pgd-margin"


def test_logits_times_100_masking_is_caught_and_float64_breaks_it(mlp, digits, plain_fit):
    X, y, *_ = digits
    masked = torch.nn.Sequential(mlp, ScaleLogits(100.0))
    est, caught = fit_quietly(AdversarialRobustness(
        masked, attacks=("fgsm", "pgd", "pgd-f64", "noise", "transfer"), **FAST), X, y)
    checks = status(est)
    assert checks["zero_gradient"] == "warn" and checks["white_box_beats_black_box"] == "warn"
    zg = est.zero_gradient_fraction_
    assert zg["ce/float32"] > 0.5 and zg["ce/float64"] < 0.01
    advice = est.diagnostics_.set_index("check").loc["zero_gradient", "advice"]
    assert "pgd-f64" in advice
    plain, _ = plain_fit
    assert est.auc_["pgd"] > plain.auc_["pgd"] + 0.1
    assert est.auc_["pgd-f64"] == pytest.approx(plain.auc_["pgd"], abs=0.02)


# ---------------------------------------------------------------------------- closed form
def test_critical_eps_of_linear_model_is_margin_over_l1():
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Linear(10, 2).double()
    with torch.no_grad():
        net.weight.copy_(0.2 * torch.randn(2, 10, generator=gen, dtype=torch.float64))
        net.bias.zero_()
    X = torch.randn(60, 10, generator=gen, dtype=torch.float64)
    y = net(X).argmax(1).detach()
    z, w = net(X).detach(), net.weight.detach()
    expected = ((z[:, 0] - z[:, 1]).abs() / (w[0] - w[1]).abs().sum()).numpy()
    eps = np.geomspace(1e-3, np.quantile(expected, 0.8), 10)  # a fifth never flips
    est = AdversarialRobustness(net, attacks=("pgd",), eps=eps, bounds=None, n_bisect=14,
                                progress=False)
    with pytest.warns(GradientMaskingWarning, match="reaches_zero"):  # the grid stops short
        est.fit(X, y)
    inside = expected < eps[-1]
    assert inside.sum() >= 40 and (~inside).sum() >= 10
    np.testing.assert_allclose(est.critical_eps_.values[inside], expected[inside], rtol=1e-3)
    assert np.all(np.isposinf(est.critical_eps_.values[~inside]))
    # Robust accuracy at each eps: the fraction of inputs whose critical eps exceeds it.
    np.testing.assert_allclose(est.robust_accuracy_.sel(attack="pgd"),
                               [(expected > e).mean() for e in eps], atol=1 / 60)


# ---------------------------------------------------------------------------- hygiene
def test_seeded_fit_repeats_and_leaves_model_untouched(mlp, digits):
    X, y, *_ = digits
    net = torch.nn.Sequential(torch.nn.Dropout(0.3), mlp).train()
    mlp[1].weight.requires_grad_(False)
    before = ({k: v.clone() for k, v in net.state_dict().items()},
              [m.training for m in net.modules()], [p.requires_grad for p in net.parameters()])
    kw = dict(attacks=("fgsm", "pgd", "noise", "transfer"), random_state=3, **FAST)
    a, _ = fit_quietly(AdversarialRobustness(net, **kw), X[:80], y[:80])
    b, _ = fit_quietly(AdversarialRobustness(net, **kw), X[:80], y[:80])
    assert a.robust_accuracy_.equals(b.robust_accuracy_)
    assert a.critical_eps_.equals(b.critical_eps_)
    after = (net.state_dict(), [m.training for m in net.modules()],
             [p.requires_grad for p in net.parameters()])
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:]
    assert all(p.grad is None for p in net.parameters())
    mlp[1].weight.requires_grad_(True)


def test_results_round_trip_netcdf(plain_fit, tmp_path):
    import xarray as xr

    est, _ = plain_fit
    for da in (est.robust_accuracy_, est.critical_eps_):
        path = tmp_path / f"{da.name}.nc"
        da.to_netcdf(path)
        with xr.open_dataarray(path) as back:
            xr.testing.assert_identical(back.load(), da)


def test_clone_keeps_params_drops_fit(plain_fit):
    est, _ = plain_fit
    twin = clone(est)
    assert twin.get_params()["attacks"] == est.get_params()["attacks"]
    assert not hasattr(twin, "robust_accuracy_")


def test_plots_draw_the_fitted_numbers(plain_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    est, _ = plain_fit
    ax = plot_robust_accuracy(est)
    curves = {tuple(np.round(line.get_ydata(), 12)) for line in ax.lines
              if len(line.get_xdata()) == est.eps_.size}
    rows = {tuple(np.round(r, 12)) for r in est.robust_accuracy_.values}
    assert curves == rows and ax.get_xscale() == "log"
    ax2 = plot_critical_eps(est)
    n_finite = int(np.isfinite(est.critical_eps_.values).sum())
    assert sum(p.get_height() for p in ax2.patches) == n_finite
    plt.close("all")


# ---------------------------------------------------------------------------- bad input
def test_bad_input(mlp, digits):
    X, y, *_ = digits
    X, y = X[:30], y[:30]
    fit = lambda **kw: AdversarialRobustness(mlp, **{**FAST, **kw}).fit(X, y)  # noqa: E731
    with pytest.raises(ValueError, match="eps must be > 0"):
        fit(eps=[-0.1, 0.1])
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit(steps=0)
    with pytest.raises(ValueError, match="attacks must be one of"):
        fit(attacks=("pgd", "deepfool"))
    with pytest.raises(ValueError, match="outside bounds"):
        AdversarialRobustness(mlp, **FAST).fit(X * 3, y)
    with pytest.raises(ValueError, match="y must be 1-D"):
        AdversarialRobustness(mlp, **FAST).fit(X, np.eye(10)[y])
    with pytest.raises(ValueError, match="y has 29 label"):
        AdversarialRobustness(mlp, **FAST).fit(X, y[:29])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        AdversarialRobustness("not a model", **FAST).fit(X, y)
    with pytest.raises(ValueError, match="none of the inputs"):
        AdversarialRobustness(mlp, **FAST).fit(X, (A.predict_labels(mlp, X).numpy() + 1) % 10)
    probs = torch.nn.Sequential(mlp, torch.nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="attacks need logits"):
        AdversarialRobustness(probs, attacks=("pgd",), compute_critical_eps=False,
                              **{**FAST, "n_eps": 2}).fit(X, y)


def test_robustness_auc_closed_form():
    # A linear fall over three decades: area = 1/2; a step at the middle decade: 1/2.
    eps = np.geomspace(1e-3, 1, 4)
    assert robustness_auc([1.0, 2 / 3, 1 / 3, 0.0], eps) == pytest.approx(0.5)
    assert robustness_auc([[1, 1, 1, 1], [0, 0, 0, 0]], eps).tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------- made-up curves
def made_up(names, acc):
    from geomkit.robustness import _parse_attack

    return [_parse_attack(n) for n in names], np.asarray(acc, dtype=float)


def test_pgd_weaker_than_fgsm_warns_with_the_numbers():
    from geomkit.robustness import _check_iterative

    specs, acc = made_up(("fgsm", "pgd", "noise"),
                         [[0.875, 0.5, 0.125], [0.875, 0.75, 0.0], [1.0, 1.0, 1.0]])
    eps = np.array([0.01, 0.1, 0.3])
    check, status, evidence, advice = _check_iterative(None, specs, acc, eps, 0.125)
    assert (check, status) == ("iterative_beats_single_step", "warn")
    # PGD leaves 25 points more than FGSM at eps 0.1: the largest excess.
    assert evidence == ("largest excess of PGD over FGSM robust accuracy: +25.0% "
                        "('pgd' leaves 75.0% robust vs 50.0% for 'fgsm' at eps=0.1).")
    assert "Carlini" in advice
    # The excess at the slack passes; a PGD at least as strong as FGSM passes.
    assert _check_iterative(None, specs, acc, eps, 0.25)[1] == "pass"
    acc[1] = [0.75, 0.25, 0.0]
    _, status, evidence, _ = _check_iterative(None, specs, acc, eps, 0.0)
    assert status == "pass"
    assert evidence == ("largest excess of PGD over FGSM robust accuracy: -12.5% "
                        "('pgd' leaves 75.0% robust vs 87.5% for 'fgsm' at eps=0.01).")
    # FGSM and PGD with different losses are no pair: nothing to compare.
    specs2, acc2 = made_up(("fgsm", "pgd-margin"), acc[:2])
    assert _check_iterative(None, specs2, acc2, eps, 0.0)[1] == "n/a"


def test_accuracy_rising_with_eps_warns_with_the_numbers():
    from geomkit.robustness import _check_monotone

    # FGSM may rise (a single step can overshoot); PGD and noise must not.
    specs, acc = made_up(("fgsm", "pgd", "noise"),
                         [[0.5, 0.875, 0.0], [0.75, 0.25, 0.5], [1.0, 1.0, 0.875]])
    eps = np.array([0.01, 0.1, 0.3])
    check, status, evidence, advice = _check_monotone(None, specs, acc, eps, 0.125)
    assert (check, status) == ("monotone_in_eps", "warn")
    assert evidence == ("largest rise of robust accuracy between consecutive eps: +25.0% "
                        "('pgd', eps 0.1 -> 0.3).")
    assert "for 'pgd':" in advice and "'noise'" not in advice and "'fgsm'" not in advice
    assert _check_monotone(None, specs, acc, eps, 0.25)[1] == "pass"  # a rise at the slack
    acc[1] = [0.75, 0.25, 0.25]
    assert _check_monotone(None, specs, acc, eps, 0.0)[1] == "pass"  # FGSM's rise is ignored
    assert _check_monotone(None, specs, acc[:, :1], eps[:1], 0.0)[1] == "n/a"  # one eps


def test_diagnostics_table_uses_the_larger_of_tolerance_and_two_inputs():
    from types import SimpleNamespace

    import pandas as pd
    import xarray as xr

    from geomkit.robustness import _diagnostics

    specs, acc = made_up(("fgsm", "pgd"), [[0.5, 0.25, 0.0], [0.5, 0.375, 0.0]])
    eps = np.array([0.01, 0.1, 0.3])

    def table(tolerance, n_correct):
        est = SimpleNamespace(
            _specs=specs, eps_=eps, tolerance=tolerance, n_correct_=n_correct,
            robust_accuracy_=xr.DataArray(acc, dims=("attack", "eps")),
            zero_gradient_fraction_=pd.Series({"ce/float32": 0.0, "ce/float64": 0.0,
                                               "margin/float32": 0.0}),
            _native_dtype="float32", zero_gradient_threshold=0.01)
        return dict(zip(*_diagnostics(est)[["check", "status"]].T.values))

    # PGD leaves 12.5 points more than FGSM at eps 0.1.
    assert table(0.02, 100)["iterative_beats_single_step"] == "warn"
    assert table(0.125, 100)["iterative_beats_single_step"] == "pass"
    assert table(0.02, 16)["iterative_beats_single_step"] == "pass"  # 2 / 16 = 0.125
    assert table(0.02, 100)["white_box_beats_black_box"] == "n/a"
