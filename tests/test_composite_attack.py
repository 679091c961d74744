"""The composite attack (CAA) against ground truth: each semantic component exact at its identity and
equal to a closed form, scipy's Gaussian filter or kornia's rotation / translation at known parameters; the composite rebuilt from the
parameters it reports, inside the box and the L-inf ball; robust accuracy under the composite below every
single component's on a trained model; orders that differ; bad input refused by name."""

import itertools

import numpy as np
import pytest
import torch

from geomkit.datasets import load_digits
from geomkit.probe import attacks as A
from geomkit.probe.attacks import semantic as S
from geomkit.probe.attacks.composite import (
    COMPONENTS,
    CompositeAttack,
    _nearest_permutation,
    _sinkhorn,
    composite_robust_accuracy,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(flatten=False)  # (n, 1, 8, 8)
    return torch.as_tensor(X), torch.as_tensor(y)


@pytest.fixture(scope="module")
def mlp(digits):
    X, y = digits
    return A.train_surrogate(X, y, hidden=(32,), epochs=8, random_state=0)


@pytest.fixture(scope="module")
def eval_set(digits):
    X, y = digits
    return X[:120], y[:120]


# ranges for 8 x 8 digits (the defaults are for 28 x 28 and larger: 2 pixels of translation break every
# digit): here each component alone leaves most digits intact and the composite does not
TOY_RANGES = {"rotation": (-5.0, 5.0), "translation": (-0.5, 0.5), "brightness": (-0.1, 0.1),
              "contrast": (0.8, 1.2), "blur": (0.0, 0.5)}


def images(n=3, c=2, h=7, w=5, seed=0, dtype=torch.float32):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def accuracy(model, X, y):
    return float((A.predict_labels(model, X) == y).double().mean())


# ----------------------------------------------------------------------------- the components
@pytest.mark.parametrize("name", S.SEMANTIC_COMPONENTS)
def test_each_component_at_its_identity_is_exactly_the_identity(name):
    x = images()
    param = torch.full((3, 2) if name == "translation" else (3,), S.IDENTITY[name])
    assert torch.equal(S.apply_component(name, x, param), x)


def test_brightness_adds_and_clips():
    x = images()
    b = torch.tensor([0.3, -0.25, 0.0])
    assert torch.equal(S.adjust_brightness(x, b), (x + b[:, None, None, None]).clamp(0, 1))
    assert torch.equal(S.adjust_brightness(x, 0.3, bounds=None), x + 0.3)


@pytest.mark.parametrize("angle, k", [(90.0, 1), (180.0, 2), (-90.0, -1), (270.0, 3)])
def test_rotation_by_right_angles_is_rot90(angle, k):
    x = images(h=6, w=6, dtype=torch.float64)
    torch.testing.assert_close(S.rotate(x, angle), torch.rot90(x, k, dims=(2, 3)), atol=1e-12, rtol=0)
    x32 = x.float()
    torch.testing.assert_close(S.rotate(x32, angle), torch.rot90(x32, k, dims=(2, 3)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -1), (-3, 2), (1, 1)])
def test_integer_translation_is_roll_with_zero_fill(dx, dy):
    x = images(h=7, w=5)
    expected = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    # the pixels that wrapped around come from outside the image: zero
    if dy > 0:
        expected[:, :, :dy] = 0
    elif dy < 0:
        expected[:, :, dy:] = 0
    if dx > 0:
        expected[:, :, :, :dx] = 0
    elif dx < 0:
        expected[:, :, :, dx:] = 0
    assert torch.equal(S.translate(x, [float(dx), float(dy)]), expected)


def test_half_pixel_translation_averages_neighbours():
    x = images(n=1, c=1, h=4, w=4)
    out = S.translate(x, [0.5, 0.0])
    torch.testing.assert_close(out[..., 1:], 0.5 * (x[..., 1:] + x[..., :-1]))
    torch.testing.assert_close(out[..., 0], 0.5 * x[..., 0])  # half of the zero fill


def test_contrast_closed_form():
    x = images()
    f = torch.tensor([0.5, 1.3, 0.0])
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    expected = (mean + f[:, None, None, None] * (x - mean)).clamp(0, 1)
    torch.testing.assert_close(S.adjust_contrast(x, f), expected, atol=1e-6, rtol=0)
    assert torch.allclose(S.adjust_contrast(x, 0.0)[2], mean[2].expand_as(x[2]))


@pytest.mark.parametrize("sigma", [0.4, 0.8, 1.5])
def test_blur_matches_scipy_gaussian_filter(sigma):
    from scipy.ndimage import gaussian_filter

    x = images(n=2, c=1, h=9, w=7, dtype=torch.float64)
    radius = int(np.ceil(3 * sigma))
    out = S.gaussian_blur(x, sigma, radius=radius).numpy()
    for i in range(2):
        ref = gaussian_filter(x[i, 0].numpy(), sigma, mode="nearest", radius=radius)
        np.testing.assert_allclose(out[i, 0], ref, atol=1e-12)


@pytest.mark.parametrize("angle", [7.3, -12.0, 33.0])
def test_rotation_and_translation_match_kornia(angle):
    # kornia (test-only peer): the same bilinear sampling about the centre, zero padding
    kornia = pytest.importorskip("kornia")
    x = images(n=2, c=1, h=9, w=7, dtype=torch.float64)
    theirs = kornia.geometry.transform.rotate(x, torch.full((2,), angle, dtype=torch.float64), align_corners=True)
    torch.testing.assert_close(S.rotate(x, angle), theirs, atol=1e-12, rtol=0)
    shift = torch.tensor([[1.3, -0.6], [-0.25, 2.5]], dtype=torch.float64)
    theirs = kornia.geometry.transform.translate(x, shift, align_corners=True)
    torch.testing.assert_close(S.translate(x, shift), theirs, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name, param", [("rotation", 7.3), ("translation", (0.3, -0.6)),
                                         ("brightness", 0.1), ("contrast", 1.2), ("blur", 0.7)])
def test_components_are_differentiable_in_their_parameter(name, param):
    x = images(n=2, c=1, h=6, w=6, dtype=torch.float64) * 0.6 + 0.2  # away from the clipping
    p = torch.tensor(param, dtype=torch.float64).expand(2, *np.shape(param)).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: S.apply_component(name, x, v, bounds=None), (p,))


def test_components_do_not_commute():
    x = images(n=1, c=1, h=8, w=8)
    a = S.rotate(S.translate(x, [2.0, 0.0]), 90.0)
    b = S.translate(S.rotate(x, 90.0), [2.0, 0.0])
    assert float((a - b).abs().max()) > 0.1


def test_sinkhorn_and_nearest_permutation():
    P = _sinkhorn(torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) + 0.1)
    torch.testing.assert_close(P.sum(0), torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(P.sum(1), torch.ones(4), atol=1e-5, rtol=0)
    perm = (2, 0, 3, 1)
    Q = torch.full((4, 4), 0.1)
    Q[range(4), perm] = 0.7
    assert _nearest_permutation(Q) == perm


# ----------------------------------------------------------------------------- the composite
def rebuild(attack, X):
    """The composite recomputed from the orders, parameters and L-inf perturbation it reports."""
    out = []
    for i, order in enumerate(attack.orders_):
        z = X[i: i + 1]
        for comp in order:
            if comp == "linf":
                z = (z + attack.delta_[i: i + 1]).clamp(0, 1)
            else:
                radius = int(np.ceil(3 * attack.ranges["blur"][1])) if comp == "blur" else None
                z = S.apply_component(comp, z, attack.params_[comp][i: i + 1], blur_radius=radius)
        out.append(z)
    return torch.cat(out)


@pytest.mark.parametrize("order", ["fixed", ("linf", "blur", "contrast", "brightness", "translation", "rotation"),
                                   "random", "scheduled"])
def test_composite_is_rebuilt_from_its_parameters_inside_box_and_ball(mlp, eval_set, order):
    X, y = eval_set
    eps = 0.05
    attack = CompositeAttack(eps, order=order, steps=4, rounds=2, random_state=0)
    adv = attack.perturb(mlp, X, y)
    assert adv.shape == X.shape and float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float(attack.delta_.abs().max()) <= eps + 1e-6
    torch.testing.assert_close(rebuild(attack, X), adv, atol=1e-5, rtol=0)
    for comp, (low, high) in attack.ranges.items():
        p = attack.params_[comp]
        assert float(p.min()) >= low - 1e-6 and float(p.max()) <= high + 1e-6
    for o in attack.orders_:
        assert sorted(o) == sorted(COMPONENTS)
    if not isinstance(order, str):
        assert set(attack.orders_) == {order}
    # the attack lowers the accuracy and never repairs a misclassified input
    assert accuracy(mlp, adv, y) < accuracy(mlp, X, y)
    wrong = A.predict_labels(mlp, X) != y
    assert torch.equal(adv[wrong], X[wrong])


def test_linf_only_stays_in_the_ball_around_the_input(mlp, eval_set):
    X, y = eval_set
    adv = CompositeAttack(0.04, components=("linf",), steps=5, rounds=1, random_state=0).perturb(mlp, X, y)
    assert float((adv - X).abs().max()) <= 0.04 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_identity_ranges_and_zero_eps_leave_the_inputs_exactly(mlp, eval_set):
    X, y = eval_set
    ranges = {c: (S.IDENTITY[c], S.IDENTITY[c]) for c in S.SEMANTIC_COMPONENTS}
    adv = CompositeAttack(0.0, ranges=ranges, steps=2, rounds=2, random_state=0).perturb(mlp, X, y)
    assert torch.equal(adv, X)


def test_composite_is_at_least_as_strong_as_each_component(mlp, eval_set):
    X, y = eval_set
    eps, kw = 0.02, dict(steps=5, rounds=2, random_state=0)
    clean = accuracy(mlp, X, y)
    singles = {c: accuracy(mlp, CompositeAttack(eps, components=(c,), ranges={c: TOY_RANGES[c]} if c != "linf"
                                                else None, **kw).perturb(mlp, X, y), y)
               for c in COMPONENTS}
    assert all(acc <= clean for acc in singles.values())
    for order in ("scheduled", "fixed", "random"):
        caa = accuracy(mlp, CompositeAttack(eps, order=order, ranges=TOY_RANGES, **kw).perturb(mlp, X, y), y)
        assert caa <= clean
        for c, acc in singles.items():
            assert caa <= acc, (order, c, caa, singles)
        # measured: 0.16 to 0.19 against 0.49 for the strongest component (translation): the composite
        # breaks digits that no component alone breaks
        assert caa < min(singles.values()) - 0.1, (order, caa, singles)


def test_the_order_matters_and_worst_is_the_per_input_minimum(mlp, eval_set):
    X, y = eval_set
    comps = ("rotation", "translation", "linf")
    ranges = {c: TOY_RANGES[c] for c in comps[:2]}
    table = composite_robust_accuracy(mlp, X, y, 0.02, components=comps, ranges=ranges, steps=4, rounds=1,
                                      random_state=0)
    assert table["order"].tolist() == [">".join(o) for o in itertools.permutations(comps)] + ["worst"]
    per_order = table["robust_accuracy"].to_numpy()[:-1]
    # some orders differ (measured: 0.34 to 0.46; the worst case over orders 0.28)
    assert np.ptp(per_order) >= 0.05
    assert table["robust_accuracy"].iloc[-1] <= per_order.min()
    n_correct = int((A.predict_labels(mlp, X) == y).sum())
    assert (table["n_correct"] == n_correct).all()
    np.testing.assert_allclose(table["robust_accuracy"], table["n_robust"] / n_correct)


def test_same_seed_same_result_and_flat_inputs(mlp, eval_set):
    X, y = eval_set
    a = CompositeAttack(0.03, steps=3, rounds=2, random_state=1).perturb(mlp, X, y)
    b = CompositeAttack(0.03, steps=3, rounds=2, random_state=1).perturb(mlp, X, y)
    assert torch.equal(a, b)
    flat = CompositeAttack(0.03, steps=3, rounds=2, random_state=1).perturb(mlp, X.reshape(len(X), -1), y)
    assert flat.shape == (len(X), 64)
    torch.testing.assert_close(flat.reshape(X.shape), a)


def test_registered_by_name():
    assert {"caa", "caa-fixed", "caa-random"} <= set(A.available_attacks())
    attack = A.make_attack("caa-fixed", eps=0.1, steps=3)
    assert isinstance(attack, CompositeAttack) and attack.order == "fixed" and attack.steps == 3


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(components=("rotation", "blurr")), r"components .*unknown component 'blurr'.*'blur'"),
    (dict(components=("rotation", "rotation")), "must not repeat"),
    (dict(components=()), "non-empty"),
    (dict(ranges={"rotation": (5.0, -5.0)}), r"ranges\['rotation'\] must satisfy low <= high; got \(5, -5\)"),
    (dict(ranges={"brightness": (0.1, 0.2)}), r"must contain the identity parameter 0"),
    (dict(ranges={"linf": (0, 0.1)}), "radius is eps"),
    (dict(ranges={"hue": (0, 0.1)}), "unknown component 'hue'"),
    (dict(order=("rotation", "linf")), "order must be .* a permutation"),
    (dict(order=("rotation", "rotation", "translation", "brightness", "contrast", "blur")), "permutation"),
    (dict(order="sorted"), "order must be one of"),
    (dict(steps=0), "steps must be >= 1"),
    (dict(image_shape=(8, -8)), "image_shape"),
])
def test_bad_parameters_are_refused_by_name(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CompositeAttack(0.1, **kwargs)


def test_bad_inputs_are_refused(mlp, eval_set):
    X, y = eval_set
    with pytest.raises(ValueError, match="cannot be read as images"):
        CompositeAttack(0.1, components=("linf",)).perturb(torch.nn.Linear(60, 10), torch.rand(2, 60), [0, 1])
    with pytest.raises(ValueError, match="image_shape"):
        CompositeAttack(0.1, image_shape=(7, 7)).perturb(mlp, X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match="norm"):
        CompositeAttack(0.1, norm="l2")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        composite_robust_accuracy(mlp, X, y, -0.1, components=("linf",))
    with pytest.raises(ValueError, match="orders must be 'all' or a non-empty list"):
        composite_robust_accuracy(mlp, X, y, 0.1, components=("linf",), orders=[])
    with pytest.raises(ValueError, match="orders='all' makes 720 orders"):
        composite_robust_accuracy(mlp, X, y, 0.1)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        S.gaussian_blur(images(), -1.0)
    with pytest.raises(ValueError, match=r"shift must be shape \(2,\) or \(n, 2\)"):
        S.translate(images(), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="images must be a floating-point tensor"):
        S.rotate(torch.rand(8, 8), 10.0)
