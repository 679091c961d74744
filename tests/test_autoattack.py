"""APGD, FAB-T, Square and the AutoAttack ensemble against torchattacks 3.5 (test-only peer) on a
trained MNIST-5k MLP; geometry (ball, box), masking diagnostics, targeted PGD, EOT, the
normalization wrapper, the registry and bad input."""

import warnings

import numpy as np
import pytest
import torch

from geomkit import AdversarialRobustness, GradientMaskingWarning
from geomkit.datasets import load_digits, load_mnist5k
from geomkit.probe import attacks as A


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def mnist():
    X, y = load_mnist5k(flatten=False)  # (n, 1, 28, 28): torchattacks wants images
    X, y = torch.as_tensor(np.array(X)), torch.as_tensor(np.array(y))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))  # the file is sorted
    X, y = X[perm], y[perm]
    net = A.train_surrogate(X[1000:], y[1000:], hidden=(128,), epochs=5, random_state=0)
    return net, X[:300], y[:300]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(flatten=False)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    return A.train_surrogate(X, y, hidden=(32,), epochs=8, random_state=0), X[:120], y[:120]


def accuracy(model, X, y):
    return float((A.predict_labels(model, X) == y).double().mean())


def agree_within(model, ours, theirs, y, points):
    """Whether the two attacks' robust accuracies differ by at most ``points`` percentage points,
    counted in inputs (0.647 vs 0.657 of 300 is 3 inputs, not the float 0.010000000000000009)."""
    n_ours = int((A.predict_labels(model, ours) == y).sum())
    n_theirs = int((A.predict_labels(model, theirs) == y).sum())
    return abs(n_ours - n_theirs) <= round(points / 100 * len(y))


def peer(name, net, eps, n_queries=1000):
    """torchattacks' attack with our budget (its APGDT / FAB take every class as a target:
    the count is set to ours)."""
    ta = pytest.importorskip("torchattacks")
    if name == "apgd-ce":
        return ta.APGD(net, eps=eps, steps=20, loss="ce", seed=0)
    if name == "apgd-t":
        atk = ta.APGDT(net, eps=eps, steps=20, n_classes=10, seed=0)
    elif name == "fab-t":
        atk = ta.FAB(net, eps=eps, steps=20, multi_targeted=True, n_classes=10, seed=0)
    else:
        return ta.Square(net, eps=eps, n_queries=n_queries, seed=0)
    atk.n_target_classes = 3
    return atk


OURS = {
    "apgd-ce": dict(steps=20),
    "apgd-t": dict(steps=20, n_target_classes=3),
    "fab-t": dict(steps=20, n_target_classes=3),
    "square": dict(n_queries=1000),
}


# ---------------------------------------------------------------------------- peer
@pytest.mark.parametrize("name, eps", [(n, e) for n in OURS for e in (0.1, 0.3)
                                       if (n, e) != ("square", 0.1)])
def test_matches_torchattacks(mnist, name, eps):
    net, X, y = mnist
    ours = A.make_attack(name, eps=eps, random_state=0, **OURS[name]).perturb(net, X, y)
    theirs = peer(name, net, eps)(X, y)
    a_ours, a_theirs = accuracy(net, ours, y), accuracy(net, theirs, y)
    assert abs(a_ours - a_theirs) <= 0.01, (a_ours, a_theirs)
    if eps == 0.1 and name != "square":  # the comparison is made where the attack matters
        assert 0.03 < a_ours < 0.5


def test_fab_stop_at_eps_breaks_the_same_inputs(mnist):
    # Ground truth: the full minimal-norm search (stop_at_eps=False). An input's iterates do not
    # depend on the others, so leaving the search once within eps breaks the same inputs (up to
    # float32 rounding that depends on the batch's size: one input of slack).
    net, X, y = mnist
    kw = dict(steps=20, n_target_classes=3, random_state=0)
    full = A.FAB(0.1, stop_at_eps=False, **kw).perturb(net, X, y)
    early = A.FAB(0.1, **kw).perturb(net, X, y)
    broken_full = A.predict_labels(net, full) != y
    broken_early = A.predict_labels(net, early) != y
    assert int(broken_full.sum()) > 30  # the comparison is made where the attack matters
    assert int((broken_full != broken_early).sum()) <= 1
    size = (early - X).flatten(1).abs().amax(1)
    assert float(size[broken_early].max()) <= 0.1 * (1 + 1e-5)
    with pytest.raises(TypeError, match="stop_at_eps"):
        A.FAB(0.1, stop_at_eps="yes")


@pytest.mark.slow
def test_square_matches_torchattacks_at_the_autoattack_budget(mnist):
    # Random search converges slowly: at eps 0.1 the two agree to a point at 5000 queries
    # (0.123 vs 0.127), not yet at 1000-2000 (0.7 to 2 points apart, depending on the seed).
    net, X, y = mnist
    ours = A.Square(0.1, n_queries=5000, random_state=0).perturb(net, X, y)
    theirs = peer("square", net, 0.1, n_queries=5000)(X, y)
    assert agree_within(net, ours, theirs, y, points=1)


@pytest.mark.slow
@pytest.mark.parametrize("eps", [1.0, 2.0])
def test_square_l2_matches_torchattacks(mnist, eps):
    # measured: 0.647 vs 0.657 (eps 1), 0.170 vs 0.160 (eps 2) at 1000 queries
    ta = pytest.importorskip("torchattacks")
    net, X, y = mnist
    ours = A.Square(eps, norm="l2", n_queries=1000, random_state=0).perturb(net, X, y)
    theirs = ta.Square(net, norm="L2", eps=eps, n_queries=1000, seed=0)(X, y)
    assert agree_within(net, ours, theirs, y, points=1)


def test_autoattack_never_above_a_member_nor_pgd(mnist):
    net, X, y = mnist
    budget = dict(steps=20, n_target_classes=3)
    aa = A.AutoAttack(0.1, n_queries=300, random_state=0, **budget)
    a_aa = accuracy(net, aa.perturb(net, X, y), y)
    members = {name: accuracy(net, m.perturb(net, X, y, eps=0.1), y) for name, m in aa.members_.items()}
    assert all(a_aa <= a for a in members.values()), (a_aa, members)
    assert a_aa <= accuracy(net, A.pgd(net, X, y, 0.1, steps=20, random_state=0), y)
    assert a_aa <= accuracy(net, A.pgd(net, X, y, 0.1, steps=20, loss="margin", random_state=0), y)


def test_checkpoints_follow_the_paper():
    # p_0 = 0, p_1 = 0.22, p_j+1 = p_j + max(p_j - p_j-1 - 0.03, 0.06), times N = 100
    p, q, expected = 0.22, 0.0, [22]
    while True:
        p, q = p + max(p - q - 0.03, 0.06), p
        if p > 1.0:
            break
        expected.append(round(100 * p))
    assert A.apgd.checkpoints(100) == expected


# ---------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("name, norm", [("apgd-ce", "linf"), ("apgd-ce", "l2"), ("apgd-t", "linf"),
                                        ("apgd-t", "l2"), ("fab-t", "linf"), ("fab-t", "l2"),
                                        ("square", "linf"), ("square", "l2"),
                                        ("autoattack", "linf"), ("autoattack", "l2"),
                                        ("pgd-t", "linf"), ("pgd-t", "l2")])
def test_stays_in_ball_and_box(digits, name, norm):
    net, X, y = digits
    eps = 0.2 if norm == "linf" else 1.5
    params = {"square": dict(n_queries=50), "autoattack": dict(steps=5, n_target_classes=2,
                                                                n_queries=50)}.get(name, {})
    if name.startswith(("apgd", "fab")):
        params = dict(steps=10, **({"n_target_classes": 2} if name != "apgd-ce" else {}))
    adv = A.make_attack(name, eps=eps, norm=norm, random_state=0, **params).perturb(net, X, y)
    delta = (adv - X).flatten(1).double()
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5) + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert accuracy(net, adv, y) < accuracy(net, X, y)  # and it does something


def test_fab_projection_is_the_minimal_step():
    # Brute force: the smallest L-inf / L2 step onto w.x = b inside [0, 1]^2, on a fine grid.
    p = torch.tensor([[0.9, 0.2]], dtype=torch.float64)
    w = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([2.2], dtype=torch.float64)
    g = torch.linspace(0, 1, 2001, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    on = (grid @ w[0] - b).abs() < 1e-3
    for norm, ord_ in (("linf", float("inf")), ("l2", 2)):
        d = A.fab.project_hyperplane(p, w, b, norm, (0.0, 1.0))
        assert float((p + d) @ w[0]) == pytest.approx(2.2, abs=1e-12)
        brute = torch.linalg.vector_norm(grid[on] - p, ord=ord_, dim=1).min()
        assert float(torch.linalg.vector_norm(d, ord=ord_)) == pytest.approx(float(brute), abs=2e-3)


# ---------------------------------------------------------------------------- masking
class Scaled(torch.nn.Module):
    def __init__(self, net, k):
        super().__init__()
        self.net, self.k = net, k

    def forward(self, x):
        return self.net(x) * self.k


class Rounded(torch.nn.Module):
    """Rounds its input to 8 levels: the gradient is zero almost everywhere."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 7) / 7)


@pytest.mark.parametrize("wrap", [lambda n: Scaled(n, 1e4), Rounded], ids=["logits_x1e4", "rounding"])
def test_square_beats_pgd_on_masked_models_and_diagnostics_warn(digits, wrap):
    net, X, y = digits
    masked = wrap(net)
    keep = A.predict_labels(masked, X) == y
    X, y = X[keep], y[keep]
    eps = 0.15
    pgd = accuracy(masked, A.pgd(masked, X, y, eps, steps=20, random_state=0), y)
    square = accuracy(masked, A.Square(eps, n_queries=300, random_state=0).perturb(masked, X, y), y)
    assert square < pgd - 0.3, (square, pgd)
    est = AdversarialRobustness(masked, attacks=("pgd", "square"), eps=[0.05, eps], steps=10,
                                compute_critical_eps=False, progress=False,
                                attack_params={"square": {"n_queries": 300}})
    with pytest.warns(GradientMaskingWarning) as record:
        est.fit(X, y)
    checks = " ".join(str(w.message) for w in record)
    assert "white_box_beats_black_box" in checks and "zero_gradient" in checks


def test_plain_mlp_passes_the_diagnostics(mnist):
    net, X, y = mnist
    X, y = X[:150], y[:150]
    est = AdversarialRobustness(net, attacks=("pgd", "square"), eps=[0.1, 0.3], steps=20,
                                compute_critical_eps=False, progress=False,
                                attack_params={"square": {"n_queries": 300}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientMaskingWarning)
        est.fit(X, y)
    assert set(est.diagnostics_["status"]) <= {"pass", "n/a"}


def test_score_changes_nothing(digits):
    net, X, y = digits
    est = AdversarialRobustness(net, attacks=("fgsm", "pgd"), eps=[0.05, 0.2], steps=3,
                                compute_critical_eps=False, progress=False).fit(X, y)
    before = dict(vars(est))
    score = est.score(X, y)
    assert vars(est).keys() == before.keys()
    assert all(vars(est)[k] is v for k, v in before.items())
    assert score == pytest.approx(float(est.auc_.min()))


def test_autoattack_in_the_estimator(digits):
    net, X, y = digits
    est = AdversarialRobustness(net, attacks=("pgd", "autoattack"), eps=[0.1, 0.2], steps=10,
                                compute_critical_eps=False, progress=False,
                                attack_params={"autoattack": dict(steps=10, n_target_classes=2,
                                                                  n_queries=100)}).fit(X, y)
    acc = est.robust_accuracy_
    assert bool((acc.sel(attack="autoattack") <= acc.sel(attack="pgd") + 1e-12).all())


# ---------------------------------------------------------------------------- L2 step (issue 15, item 11)
def test_l2_step_is_scale_free():
    net = torch.nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[40.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    # CE gradient ~ softmax(-39.5) ~ 1e-17 per entry: a (||g|| + 1e-12) step moved 7e-7
    adv = A.fgsm(net, x, [0], 0.1, norm="l2")
    assert float((adv - x).norm()) == pytest.approx(0.1, rel=1e-9)
    # the margin falls (the step climbs the loss); PGD L2 moves to the ball's border too
    with torch.no_grad():
        assert float(A.margin(net(adv), torch.tensor([0]))) > float(A.margin(net(x), torch.tensor([0])))
    adv = A.pgd(net, x, [0], 0.1, norm="l2", steps=5, random_start=False)
    assert float((adv - x).norm()) == pytest.approx(0.1, rel=1e-9)


# ---------------------------------------------------------------------------- targeted, EOT, wrappers
def test_targeted_pgd_reaches_its_targets(digits):
    net, X, y = digits
    target = (y + 1) % 10
    adv = A.PGD(0.5, steps=30, targeted=True, random_state=0).perturb(net, X, y, target_labels=target)
    assert float((A.predict_labels(net, adv) == target).double().mean()) > 0.95
    # the default target is the runner-up class
    with torch.no_grad():
        runner_up = net(X).scatter(1, y[:, None], float("-inf")).argmax(1)
    adv = A.make_attack("pgd-t", eps=0.5, steps=30, random_state=0).perturb(net, X, y)
    assert float((A.predict_labels(net, adv) == runner_up).double().mean()) > 0.95


class Noisy(torch.nn.Module):
    """A randomized forward (input noise, also in eval mode)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x + 0.05 * torch.randn_like(x))


def test_eot_gradient_is_the_mean_over_draws(digits):
    from geomkit.probe.attacks.base import BatchContext, loss_and_grad

    net, X, y = digits
    model = Noisy(net).eval()
    ce = A._losses.LOSSES["ce"]
    torch.manual_seed(3)
    _, _, g = loss_and_grad(BatchContext(model, 10, None, eot=8), ce, X, y)
    torch.manual_seed(3)
    draws = [loss_and_grad(BatchContext(model, 10, None), ce, X, y)[2] for _ in range(8)]
    torch.testing.assert_close(g, torch.stack(draws).mean(0), rtol=1e-5, atol=1e-7)
    assert A.randomized_forward(model, X) and not A.randomized_forward(net, X)
    est = AdversarialRobustness(model, attacks=("pgd",), eps=[0.1], steps=3,
                                compute_critical_eps=False, progress=False)
    with pytest.warns(GradientMaskingWarning, match="deterministic_forward"):
        est.fit(X, y)


def test_normalized_model_attacks_in_pixel_space(digits):
    net, X, y = digits
    mean, std = 0.3, 0.25
    wrapped = A.NormalizedModel(net, [mean], [std])
    Z = (X - mean) / std  # what the net sees
    ours = A.fgsm(wrapped, X, y, 0.1, bounds=None)
    theirs = A.fgsm(net, Z, y, 0.1 / std, bounds=None)  # eps in normalized units: 0.1 / std
    torch.testing.assert_close(ours, theirs * std + mean, rtol=0, atol=1e-5)
    boxed = A.fgsm(wrapped, X, y, 0.1)  # eps and box in pixel space
    assert float((boxed - X).abs().max()) <= 0.1 + 1e-6 and 0 <= float(boxed.min()) <= float(boxed.max()) <= 1


# ---------------------------------------------------------------------------- registry, bad input
def test_user_attack_by_registry(digits):
    net, X, y = digits

    class Shift(A.Attack):
        name = "shift"
        supports_targeted = False

        def _perturb_batch(self, ctx, x0, y, eps, t):
            return (x0 + eps.view(-1, *[1] * (x0.ndim - 1))).clamp(0, 1)

    A.register_attack("shift-test", Shift, overwrite=True)
    adv = A.make_attack("shift-test", eps=0.2).perturb(net, X, y)
    torch.testing.assert_close(adv, (X + 0.2).clamp(0, 1))
    est = AdversarialRobustness(net, attacks=("shift-test",), eps=[0.2], compute_critical_eps=False,
                                progress=False).fit(X, y)
    correct = A.predict_labels(net, X) == y
    expected = accuracy(net, adv[correct], y[correct])
    assert float(est.robust_accuracy_.values[0, 0]) == pytest.approx(expected)


def _guide_example() -> str:
    """The user guide's example attack (the code block after "Adding an attack is one class")."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs/user_guide/robustness.rst").read_text()
    section = text.split("Adding an attack is one class", 1)
    assert len(section) == 2, "the robustness guide no longer shows how to add an attack"
    block = section[1].split(".. code-block:: python", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def test_user_guide_example_attack_runs():
    # The guide's MomentumFGSM, registered and made by name. Ground truth: on a two-class linear
    # model the cross-entropy gradient is p_other (w_other - w_y), of constant sign, and the
    # momentum keeps that sign; 10 steps of eps / 10 therefore end at clip(x0 + eps sign(d)).
    code = _guide_example()
    assert code.count("\n") <= 30, "the guide's example should stay short"
    namespace = {"__name__": "guide_example"}
    try:
        exec(compile(code, "docs/user_guide/robustness.rst", "exec"), namespace)
        torch.manual_seed(0)
        net = torch.nn.Linear(6, 2)
        X = torch.rand(40, 6)
        y = A.predict_labels(net, X)
        adv = A.make_attack("mi-fgsm", eps=0.1).perturb(net, X, y)
    finally:
        from geomkit.probe.attacks import registry

        registry._REGISTRY.pop("mi-fgsm", None)
    d = (net.weight[1 - y] - net.weight[y]).detach()
    expected = (X + 0.1 * torch.sign(d)).clamp(0, 1)
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)
    assert accuracy(net, adv, y) < 1.0  # and it is an attack: some inputs flip


def test_bad_input(digits):
    net, X, y = digits
    with pytest.raises(ValueError, match="Did you mean 'apgd-ce'"):
        A.make_attack("apgd_ce")
    with pytest.raises(ValueError, match="registered attacks .*autoattack"):
        A.make_attack("deepfool")
    for name in ("apgd-ce", "apgd-t", "square", "fab-t", "autoattack"):
        with pytest.raises(ValueError, match="eps must be > 0"):
            A.make_attack(name, eps=0.0)
    with pytest.raises(ValueError, match="eps must be >= 0"):  # PGD / FGSM accept eps = 0
        A.make_attack("pgd", eps=-1.0)
    class LinfOnly(A.FGSM):  # an attack that declares fewer norms
        name, norms = "linf-only", ("linf",)

    with pytest.raises(ValueError, match="norm='l2' is not supported by the linf-only attack"):
        LinfOnly(0.1, norm="l2")
    with pytest.raises(ValueError, match="norm must be one of"):
        A.make_attack("apgd-ce", eps=0.1, norm="l1")
    one_class = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    with pytest.raises(ValueError, match="targeted=True needs a model with at least 2 classes"):
        A.make_attack("apgd-t", eps=0.1).perturb(one_class, X, torch.zeros(len(X), dtype=torch.long))
    with pytest.raises(ValueError, match="y holds class index 12"):
        A.make_attack("apgd-ce", eps=0.1).perturb(net, X, torch.full((len(X),), 12))
    with pytest.raises(ValueError, match="y must hold class indices >= 0"):
        A.make_attack("square", eps=0.1).perturb(net, X, torch.full((len(X),), -1))
    with pytest.raises(ValueError, match="X has values in .* outside bounds"):
        A.make_attack("fab-t", eps=0.1).perturb(net, X * 2, y)
    with pytest.raises(ValueError, match="targeted=True is not supported by the square attack"):
        A.make_attack("square", eps=0.1, targeted=True)
    with pytest.raises(ValueError, match="square attack needs images"):
        A.make_attack("square", eps=0.1).perturb(torch.nn.Linear(7, 3), torch.rand(4, 7), [0, 1, 2, 0])
    with pytest.raises(ValueError, match="members must be"):
        A.AutoAttack(0.1, members=("apgd-ce", "deepfool"))
    with pytest.raises(ValueError, match="attack_params must be"):
        AdversarialRobustness(net, attacks=("pgd",), attack_params={"square": {}}).fit(X, y)
