"""Hebbian winner-take-all layers against direct loop-based implementations and fixed points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomkit.train import KrotovHopfield, SoftHebb

# ---------------------------------------------------------------------------
# Direct, loop-based implementations of the rules (one sample, one unit,
# one weight at a time), written from the papers' equations.
# ---------------------------------------------------------------------------


def krotov_hopfield_loop(W, V, lr, p, k, delta, R):
    """Krotov & Hopfield (2019): one batch update, loops over samples, units, weights."""
    W = np.array(W, dtype=np.float64)
    n_hidden, n_in = W.shape
    ds = np.zeros_like(W)
    for v in V:
        current = np.zeros(n_hidden)
        for mu in range(n_hidden):
            for i in range(n_in):
                current[mu] += np.sign(W[mu, i]) * abs(W[mu, i]) ** (p - 1) * v[i]
        ranking = sorted(range(n_hidden), key=lambda mu: -current[mu])
        g = np.zeros(n_hidden)
        g[ranking[0]] = 1.0
        g[ranking[k - 1]] = -delta
        for mu in range(n_hidden):
            for i in range(n_in):
                ds[mu, i] += g[mu] * (R**p * v[i] - current[mu] * W[mu, i])
    scale = max(np.abs(ds).max(), 1e-30)
    return W + lr * ds / scale


def softhebb_loop(W, X, lr, temperature, power_lr, anti_hebbian):
    """SoftHebb (Moraitis et al. 2022; Journé et al. 2023): one batch update with loops."""
    W = np.array(W, dtype=np.float64)
    n_hidden, n_in = W.shape
    eta = [lr * (abs(np.sqrt(sum(w * w for w in W[k])) - 1.0) + 1e-10) ** power_lr for k in range(n_hidden)]
    dw = np.zeros_like(W)
    for x in X:
        u = [sum(W[k, i] * x[i] for i in range(n_in)) for k in range(n_hidden)]
        m = max(u)
        e = [np.exp((uk - m) / temperature) for uk in u]
        y = [ek / sum(e) for ek in e]
        winner = int(np.argmax(u))
        for k in range(n_hidden):
            yk = -y[k] if (anti_hebbian and k != winner) else y[k]
            for i in range(n_in):
                dw[k, i] += yk * (x[i] - u[k] * W[k, i])
    dw /= max(np.abs(dw).max(), 1e-30)
    for k in range(n_hidden):
        W[k] += eta[k] * dw[k]
    return W


@pytest.fixture
def batches():
    rng = np.random.default_rng(3)
    return [rng.random((5, 7)) for _ in range(3)]


@pytest.mark.parametrize("p,k,delta,R", [(3.0, 3, 0.4, 1.0), (2.0, 2, 0.2, 1.7), (4.5, 4, 0.0, 0.8)])
def test_krotov_hopfield_matches_loop(batches, p, k, delta, R):
    layer = KrotovHopfield(7, 6, p=p, k=k, delta=delta, R=R, random_state=1, dtype=torch.float64)
    W = layer.weight.numpy().copy()
    for step, V in enumerate(batches):
        lr = 0.05 * (1 - step / 3)
        W = krotov_hopfield_loop(W, V, lr, p, k, delta, R)
        layer.step(torch.from_numpy(V), lr)
        np.testing.assert_allclose(layer.weight.numpy(), W, atol=1e-6, rtol=0)


@pytest.mark.parametrize("anti", [False, True])
def test_softhebb_matches_loop(batches, anti):
    layer = SoftHebb(7, 6, temperature=0.5, lr=0.1, power_lr=0.5, anti_hebbian=anti, init_norm=2.0,
                     random_state=2, dtype=torch.float64)
    W = layer.weight.numpy().copy()
    for V in batches:
        W = softhebb_loop(W, V, 0.1, 0.5, 0.5, anti)
        layer.step(torch.from_numpy(V), 0.1)
        np.testing.assert_allclose(layer.weight.numpy(), W, atol=1e-6, rtol=0)


def test_fit_unsupervised_is_steps_in_documented_order():
    """One epoch = steps over randperm(seed) batches with the linearly annealed rate."""
    rng = np.random.default_rng(0)
    X = rng.random((12, 7))
    layer = KrotovHopfield(7, 5, k=2, lr=0.1, random_state=4, dtype=torch.float64)
    W = layer.weight.numpy().copy()
    layer.fit_unsupervised(X, epochs=2, batch_size=5, random_state=9, progress=False)
    gen = torch.Generator().manual_seed(9)
    for epoch in range(2):
        order = torch.randperm(12, generator=gen).numpy()
        for start in range(0, 12, 5):
            W = krotov_hopfield_loop(W, X[order[start : start + 5]], 0.1 * (1 - epoch / 2), 3.0, 2, 0.4, 1.0)
    np.testing.assert_allclose(layer.weight.numpy(), W, atol=1e-6, rtol=0)
    assert layer.history_["lr"].tolist() == [0.1, 0.05]


def test_krotov_hopfield_converges_to_radius_along_input():
    """One repeated input v and delta=0: the winner's fixed point is R v / ||v||_p."""
    v = np.array([[0.2, 0.9, 0.4, 0.1]])
    layer = KrotovHopfield(4, 2, p=3.0, k=2, delta=0.0, R=1.5, lr=0.02, random_state=0, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.abs_()  # both units start with a positive current
    layer.fit_unsupervised(np.repeat(v, 10, axis=0), epochs=400, batch_size=10, schedule="constant",
                           progress=False)
    winner = int(layer.currents(torch.from_numpy(v)).argmax())
    expected = 1.5 * v[0] / np.sum(v[0] ** 3) ** (1 / 3)
    np.testing.assert_allclose(layer.weight[winner].numpy(), expected, atol=2e-2)
    norms = np.sum(np.abs(layer.weight.numpy()) ** 3, axis=1) ** (1 / 3)
    hist = layer.history_
    assert hist["norm_distance"].iloc[-1] == pytest.approx(np.mean(np.abs(norms - 1.5)), abs=1e-12)
    assert (hist["frac_won_epoch"] == 0.5).all()  # one input: one winner per epoch


def test_softhebb_single_unit_converges_to_unit_vector():
    """One unit, one repeated input x: dw = x - u w has its fixed point at x / ||x||."""
    x = np.array([[0.3, 0.5, 0.8]])
    layer = SoftHebb(3, 1, lr=0.2, init_norm=3.0, random_state=0, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.abs_()  # u > 0: the stable side of the fixed point
    layer.fit_unsupervised(np.repeat(x, 4, axis=0), epochs=300, batch_size=4, progress=False)
    w = layer.weight[0].numpy()
    # the direction converges; max-normalized steps leave the norm in a small limit cycle
    assert w @ x[0] / (np.linalg.norm(w) * np.linalg.norm(x)) > 1 - 1e-4
    assert abs(np.linalg.norm(w) - 1.0) < 0.02
    assert layer.history_["norm_distance"].iloc[-1] == pytest.approx(abs(np.linalg.norm(w) - 1.0), abs=1e-12)
    assert layer.history_["frac_ever_won"].iloc[-1] == 1.0


def test_history_tracks_winners_exactly():
    """frac_won_epoch counts the distinct argmax units, recomputed by brute force."""
    rng = np.random.default_rng(5)
    X = rng.random((30, 6))
    layer = SoftHebb(6, 20, lr=0.05, random_state=0, dtype=torch.float64)
    W0 = layer.weight.clone()
    layer.fit_unsupervised(X, epochs=1, batch_size=30, progress=False)
    winners = set((torch.from_numpy(X) @ W0.T).argmax(1).tolist())
    assert layer.history_["frac_won_epoch"].iloc[0] == pytest.approx(len(winners) / 20)


def test_forward_is_plain_currents():
    layer = KrotovHopfield(3, 4, k=2, random_state=0)
    x = torch.rand(2, 3)
    torch.testing.assert_close(layer(x), x @ layer.weight.T, rtol=0, atol=0)  # the same product


@pytest.mark.parametrize(
    "kwargs,match",
    [({"k": 1}, "k must be >= 2"), ({"k": 9}, "k must be <= 4"), ({"k": 2, "p": 1.0}, "p must be >= 2"),
     ({"k": 2, "delta": -0.1}, "delta must be >= 0")],
)
def test_krotov_hopfield_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KrotovHopfield(3, 4, **kwargs)


def test_fit_unsupervised_bad_input():
    layer = SoftHebb(3, 2, random_state=0)
    with pytest.raises(ValueError, match="n_features=3"):
        layer.fit_unsupervised(np.ones((4, 5)), epochs=1, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        layer.fit_unsupervised(np.full((4, 3), np.nan), epochs=1, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        layer.fit_unsupervised(np.ones((4, 3)), epochs=1, schedule="cosine", progress=False)


# ---------------------------------------------------------------------------
# Subnormal floats: a weight on an input that is always 0 decays geometrically
# and, without care, stays subnormal for thousands of steps, which slows every
# later product with the weights many times on a CPU. Both rules set them to 0.
# ---------------------------------------------------------------------------
def _subnormal_count(t: torch.Tensor) -> int:
    return int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum())


def test_krotov_hopfield_weight_on_an_always_zero_input_reaches_zero_not_subnormal():
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.random((5, 4)).astype(np.float32))
    X[:, 3] = 0.0  # the "border pixel": its weights only decay
    layer = KrotovHopfield(4, 3, k=2, lr=0.5, random_state=0)
    tiny = torch.finfo(torch.float32).tiny
    with torch.no_grad():
        layer.weight[:, 3] = 2 * tiny  # just above the subnormal range
    layer._wp = None
    reference = layer.weight.clone().double()
    for _ in range(30):
        layer.step(X, 0.3)
    # measured without the flush: one weight left at -2.2e-42 after these 30 steps
    assert _subnormal_count(layer.weight) == 0
    assert (layer.weight[:, 3] == 0).sum() >= 2
    # the other weights are those of the rule in float64 (no more than float32 rounding apart)
    for _ in range(30):
        reference = torch.from_numpy(krotov_hopfield_loop(reference.numpy(), X.double().numpy(),
                                                          0.3, 3.0, 2, 0.4, 1.0))
    np.testing.assert_allclose(layer.weight[:, :3].numpy(), reference[:, :3].numpy(), atol=1e-5)


def test_softhebb_at_a_temperature_that_underflows_the_softmax_still_matches_the_loop():
    # temperature 1/12 on inputs of norm ~2: most responses y_k underflow float32; the update
    # drops them (exactly 0 instead of subnormal) and still equals the float64 loop
    rng = np.random.default_rng(1)
    V = rng.random((8, 7)).astype(np.float32) * 1.5
    layer = SoftHebb(7, 40, temperature=1 / 12, lr=0.05, random_state=3)
    u = torch.from_numpy(V) @ layer.weight.T
    y = torch.softmax(u / layer.temperature, dim=1)
    assert _subnormal_count(y) > 0  # the case is real
    W = softhebb_loop(layer.weight.numpy().astype(np.float64), V.astype(np.float64), 0.05, 1 / 12, 0.5, False)
    layer.step(torch.from_numpy(V), 0.05)
    np.testing.assert_allclose(layer.weight.numpy(), W, atol=1e-5, rtol=1e-5)
    assert _subnormal_count(layer.weight) == 0
