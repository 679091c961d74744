"""Attacks against ground truth: torchattacks' PGD (test-only peer), closed forms on linear
models, exact identities between seeded runs, and the model left as it was found."""

import numpy as np
import pytest
import torch

from geomkit.datasets import load_digits
from geomkit.probe import attacks as A


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small models run fastest single-threaded; the test machine is shared.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(flatten=False)  # (n, 1, 8, 8): torchattacks' PGDL2 wants 4-D images
    return torch.as_tensor(X), torch.as_tensor(y)


@pytest.fixture(scope="module")
def mlp(digits):
    X, y = digits
    return A.train_surrogate(X, y, hidden=(32,), epochs=8, random_state=0)


def accuracy(model, X, y):
    return float((A.predict_labels(model, X) == y).double().mean())


def linear_two_class(d=20, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Linear(d, 2).to(dtype)
    with torch.no_grad():
        # Logit gaps of a few units: beyond ~17 the float32 softmax of the true class rounds
        # to 1 and the cross-entropy gradient loses its w_y term (the margin loss does not).
        net.weight.copy_(0.2 * torch.randn(2, d, generator=gen, dtype=dtype))
        net.bias.copy_(0.2 * torch.randn(2, generator=gen, dtype=dtype))
    X = torch.randn(40, d, generator=gen, dtype=dtype)
    with torch.no_grad():
        y = net(X).argmax(1)  # all correctly classified
    return net, X, y


def closed_form_eps(net, X, y, ord_):
    """margin / ||w_y - w_other||_dual: where the FGSM / optimal step crosses the boundary."""
    with torch.no_grad():
        z = net(X).double()
        w = net.weight.detach().double()
    other = 1 - y
    margin = z.gather(1, y[:, None]).squeeze(1) - z.gather(1, other[:, None]).squeeze(1)
    dual = torch.linalg.vector_norm(w[y] - w[other], ord=ord_, dim=1)
    return (margin / dual).numpy()


# ---------------------------------------------------------------------------- peer
@pytest.mark.parametrize("norm, eps_list", [("linf", [0.05, 0.1, 0.15]), ("l2", [0.5, 1.0, 1.5])])
def test_pgd_matches_torchattacks(mlp, digits, norm, eps_list):
    torchattacks = pytest.importorskip("torchattacks")
    X, y = digits
    peer = {"linf": torchattacks.PGD, "l2": torchattacks.PGDL2}[norm]
    accs = []
    for eps in eps_list:
        ours = A.pgd(mlp, X, y, eps, norm=norm, steps=10, random_state=3)
        torch.manual_seed(3)  # the same random-start seed
        theirs = peer(mlp, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True)(X, y)
        a_ours, a_theirs = accuracy(mlp, ours, y), accuracy(mlp, theirs, y)
        assert abs(a_ours - a_theirs) <= 0.01
        accs.append(a_ours)
    # The comparison is made where the attack matters (robust accuracy well inside (0, 1)).
    assert accs[0] > accs[-1] and 0.05 < accs[1] < 0.95


@pytest.mark.slow
@pytest.mark.parametrize("norm, eps_list", [("linf", [0.02, 0.05, 0.08]), ("l2", [0.5, 1.0, 1.5])])
def test_pgd20_matches_torchattacks_on_mnist(norm, eps_list):
    torchattacks = pytest.importorskip("torchattacks")
    from geomkit.datasets import load_mnist5k

    X, y = load_mnist5k(flatten=False)
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    net = A.train_surrogate(X[1000:], y[1000:], hidden=(256,), epochs=5, random_state=0)
    X, y = X[:1000], y[:1000]
    peer = {"linf": torchattacks.PGD, "l2": torchattacks.PGDL2}[norm]
    for eps in eps_list:
        ours = A.pgd(net, X, y, eps, norm=norm, steps=20, random_state=11)
        torch.manual_seed(11)
        theirs = peer(net, eps=eps, alpha=2.5 * eps / 20, steps=20, random_start=True)(X, y)
        assert abs(accuracy(net, ours, y) - accuracy(net, theirs, y)) <= 0.01


# ---------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm, ord_", [("linf", 1), ("l2", 2)])
def test_fgsm_critical_eps_linear_closed_form(dtype, norm, ord_):
    net, X, y = linear_two_class(dtype=dtype)
    expected = closed_form_eps(net, X, y, ord_)
    # One more row, misclassified (the first input with the wrong label): nan there only.
    X_ext, y_ext = torch.cat([X, X[:1]]), torch.cat([y, 1 - y[:1]])
    found = A.critical_eps(net, X_ext, y_ext, attack="fgsm", norm=norm, bounds=None,
                           eps_max=2 * expected.max(), n_iter=40)
    assert np.isnan(found[-1])
    np.testing.assert_allclose(found[:-1], expected, rtol=1e-4, atol=1e-4)


def test_pgd_critical_eps_linear_equals_optimum():
    # On a linear model the FGSM corner is the optimal L-inf attack; PGD must find it too.
    net, X, y = linear_two_class(d=10, seed=1)
    expected = closed_form_eps(net, X, y, 1)
    found = A.critical_eps(net, X, y, attack="pgd", steps=20, bounds=None,
                           eps_max=2 * expected.max(), n_iter=30, random_state=0)
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-4)


def test_robust_accuracy_of_linear_model_counts_critical_eps_above_eps():
    net, X, y = linear_two_class()
    crit = closed_form_eps(net, X, y, 1)
    for eps in np.quantile(crit, [0.2, 0.5, 0.8]) * 1.0001:
        for attack, kw in (("fgsm", {}), ("pgd", {"random_state": 0})):
            acc = A.robust_accuracy(net, X, y, eps, attack=attack, bounds=None, **kw)
            assert acc == pytest.approx((crit > eps).mean(), abs=1e-12)


def test_fgsm_step_lowers_linear_margin_by_eps_times_l1():
    net, X, y = linear_two_class()
    eps = 0.01
    adv = A.fgsm(net, X, y, eps, bounds=None)
    before = -A.margin(net(X), y).detach()
    after = -A.margin(net(adv), y).detach()
    w = net.weight.detach()
    l1 = (w[y] - w[1 - y]).abs().sum(1)
    np.testing.assert_allclose((before - after).numpy(), (eps * l1).numpy(), rtol=1e-10)


def test_zero_gradient_fraction_equals_saturated_softmax_count(mlp, digits):
    X, y = digits
    scaled = torch.nn.Sequential(mlp, ScaleLogits(100.0))
    with torch.no_grad():
        z = scaled(X)
    # The CE gradient w.r.t. the logits is softmax - onehot: zero iff the softmax is one-hot.
    onehot = torch.nn.functional.one_hot(y, z.shape[1]).to(z.dtype)
    expected = float((torch.softmax(z, 1) == onehot).all(1).double().mean())
    assert expected > 0.3  # the premise: a good part is saturated in float32
    assert A.zero_gradient_fraction(scaled, X, y) == pytest.approx(expected, abs=1e-12)
    # float64 and the margin loss restore (almost) every gradient
    assert A.zero_gradient_fraction(scaled, X, y, dtype="float64") < 0.01
    assert A.zero_gradient_fraction(scaled, X, y, loss="margin") == 0.0


class ScaleLogits(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, z):
        return z * self.k


# ---------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_ball_and_bounds(mlp, digits, norm):
    X, y = digits
    X, y = X[:300], y[:300]
    eps = torch.linspace(0.0, 0.3 if norm == "linf" else 2.0, 300, dtype=torch.float64)
    adv = A.pgd(mlp, X, y, eps.numpy(), norm=norm, steps=5, random_state=0)
    delta = (adv - X).flatten(1).double()
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps * (1 + 1e-5) + 1e-6).all())
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert float(size[0]) == 0.0  # eps = 0 moves nothing


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_noise_has_norm_eps(mlp, digits, norm, distribution):
    X, y = digits
    adv = A.noise_attack(mlp, X[:50], y[:50], 0.2, norm=norm, distribution=distribution,
                         bounds=None, random_state=0)
    delta = (adv - X[:50]).flatten(1).double()
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    np.testing.assert_allclose(size.numpy(), 0.2, rtol=1e-5)


# ---------------------------------------------------------------------------- identities
def test_restarts_and_draws_never_weaker(mlp, digits):
    # The first restart / draw replays the single run (same seed), and the best is kept.
    X, y = digits
    X, y = X[:200], y[:200]
    m = lambda adv: A.margin(mlp(adv), y).detach()  # noqa: E731
    one = m(A.pgd(mlp, X, y, 0.05, steps=3, random_state=5))
    three = m(A.pgd(mlp, X, y, 0.05, steps=3, restarts=3, random_state=5))
    assert bool((three >= one).all()) and bool((three > one).any())
    one = m(A.noise_attack(mlp, X, y, 0.2, random_state=5))
    eight = m(A.noise_attack(mlp, X, y, 0.2, n_draws=8, random_state=5))
    assert bool((eight >= one).all()) and bool((eight > one).any())


def test_transfer_from_the_model_itself_is_white_box_pgd(mlp, digits):
    X, y = digits
    white = A.pgd(mlp, X[:100], y[:100], 0.1, steps=5, random_state=2)
    transfer = A.transfer_attack(mlp, X[:100], y[:100], 0.1, surrogate=mlp, steps=5, random_state=2)
    assert torch.equal(white, transfer)


def test_default_surrogate_imitates_the_model(mlp, digits):
    X, y = digits
    labels = A.predict_labels(mlp, X)
    sur = A.train_surrogate(X, labels, hidden=(32,), epochs=10, random_state=1)
    assert float((A.predict_labels(sur, X) == labels).double().mean()) > 0.9
    again = A.train_surrogate(X, labels, hidden=(32,), epochs=10, random_state=1)
    assert all(torch.equal(p, q) for p, q in zip(sur.parameters(), again.parameters()))


def test_seeded_runs_repeat_exactly(mlp, digits):
    X, y = digits
    X, y = X[:200], y[:200]
    for norm in ("linf", "l2"):
        a = A.pgd(mlp, X, y, 0.1, norm=norm, steps=3, random_state=7, batch_size=64)
        b = A.pgd(mlp, X, y, 0.1, norm=norm, steps=3, random_state=7, batch_size=64)
        c = A.pgd(mlp, X, y, 0.1, norm=norm, steps=3, random_state=8, batch_size=64)
        assert torch.equal(a, b) and not torch.equal(a, c)
    n1 = A.noise_attack(mlp, X, y, 0.1, n_draws=3, random_state=7)
    n2 = A.noise_attack(mlp, X, y, 0.1, n_draws=3, random_state=7)
    assert torch.equal(n1, n2)


def test_batches_give_the_same_deterministic_attack(mlp, digits):
    # Without a random start the attack is independent of the batching.
    X, y = digits
    a = A.pgd(mlp, X[:300], y[:300], 0.1, steps=4, random_start=False)
    b = A.pgd(mlp, X[:300], y[:300], 0.1, steps=4, random_start=False, batch_size=128)
    assert torch.equal(a, b)


def test_float64_attack_runs_in_float64_without_casting_the_model(mlp, digits):
    X, y = digits
    adv = A.pgd(mlp, X[:50], y[:50], 0.1, steps=2, dtype="float64", random_state=0)
    assert adv.dtype == torch.float64
    assert all(p.dtype == torch.float32 for p in mlp.parameters())


# ---------------------------------------------------------------------------- untouched
class Messy(torch.nn.Module):
    """Dropout, batch norm, a frozen layer: every flag an attack could disturb."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 16)
        self.bn = torch.nn.BatchNorm1d(16)
        self.drop = torch.nn.Dropout(0.5)
        self.fc2 = torch.nn.Linear(16, 10)
        self.fc1.weight.requires_grad_(False)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x.flatten(1))))))


def snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: m.training for n, m in model.named_modules()},
        {n: p.requires_grad for n, p in model.named_parameters()},
        {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
    )


def assert_same(before, after):
    state0, train0, req0, grad0 = before
    state1, train1, req1, grad1 = after
    assert state0.keys() == state1.keys()
    assert all(torch.equal(state0[k], state1[k]) for k in state0)
    assert train0 == train1 and req0 == req1
    assert all((grad0[k] is None and grad1[k] is None) or torch.equal(grad0[k], grad1[k])
               for k in grad0)


def test_model_untouched(digits):
    X, y = digits
    X, y = X[:64], y[:64]
    torch.manual_seed(0)
    net = Messy().train()
    net.fc2.weight.grad = torch.ones_like(net.fc2.weight)  # a pending gradient must survive
    before = snapshot(net)
    A.fgsm(net, X, y, 0.1)
    A.pgd(net, X, y, 0.1, steps=2, restarts=2, random_state=0)
    A.pgd(net, X, y, 0.5, norm="l2", steps=2, loss="margin", dtype="float64", random_state=0)
    A.noise_attack(net, X, y, 0.1, n_draws=2, random_state=0)
    A.input_gradient(net, X, y)
    A.critical_eps(net, X, y, n_iter=2, steps=2, random_state=0)
    A.transfer_attack(net, X, y, 0.1, steps=2, surrogate_params={"epochs": 1}, random_state=0)
    with pytest.raises(ValueError):  # an error inside the attack restores the flags too
        A.pgd(net, X, torch.full((64,), 12), 0.1)
    assert_same(before, snapshot(net))


def test_attack_is_evaluated_in_eval_mode(digits):
    # Dropout off during the attack: a train-mode model gives the eval-mode result.
    X, y = digits
    torch.manual_seed(0)
    net = Messy()
    a = A.pgd(net.train(), X[:64], y[:64], 0.1, steps=3, random_state=0)
    b = A.pgd(net.eval(), X[:64], y[:64], 0.1, steps=3, random_state=0)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------- bad input
def test_bad_input(mlp, digits):
    X, y = digits
    X, y = X[:20], y[:20]
    with pytest.raises(ValueError, match="eps must be >= 0"):
        A.pgd(mlp, X, y, -0.1)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        A.fgsm(mlp, X, y, np.r_[-1.0, np.zeros(19)])
    with pytest.raises(ValueError, match="steps must be >= 1"):
        A.pgd(mlp, X, y, 0.1, steps=0)
    with pytest.raises(ValueError, match="outside bounds"):
        A.pgd(mlp, X * 2, y, 0.1)
    with pytest.raises(ValueError, match="outside bounds"):
        A.fgsm(mlp, X - 0.5, y, 0.1, bounds=(0, 1))
    with pytest.raises(ValueError, match="y must be 1-D"):
        A.pgd(mlp, X, torch.nn.functional.one_hot(y, 10), 0.1)
    with pytest.raises(ValueError, match="y has 19 label"):
        A.pgd(mlp, X, y[:19], 0.1)
    with pytest.raises(ValueError, match="class index 12"):
        A.pgd(mlp, X, torch.full((20,), 12), 0.1)
    with pytest.raises(ValueError, match="norm must be one of"):
        A.pgd(mlp, X, y, 0.1, norm="l1")
    with pytest.raises(ValueError, match="loss must be one of"):
        A.pgd(mlp, X, y, 0.1, loss="mse")
    with pytest.raises(ValueError, match="NaN"):
        A.pgd(mlp, X * float("nan"), y, 0.1)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        A.pgd(lambda x: x, X, y, 0.1)
    with pytest.raises(ValueError, match="bounds must satisfy"):
        A.pgd(mlp, X, y, 0.1, bounds=(1, 0))


def test_probability_output_warns(mlp, digits):
    X, y = digits
    probs = torch.nn.Sequential(mlp, torch.nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="attacks need logits"):
        A.pgd(probs, X[:20], y[:20], 0.1, steps=1, random_state=0)
    logprobs = torch.nn.Sequential(mlp, torch.nn.LogSoftmax(dim=1))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log-probabilities are logits: no warning
        A.pgd(logprobs, X[:20], y[:20], 0.1, steps=1, random_state=0)
