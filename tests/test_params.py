"""Declarative parameter constraints and the shared resampling of similarities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from geomkit._params import (
    DEPRECATED,
    RANDOM_STATE,
    Boolean,
    Integer,
    Options,
    Real,
    check_random_state,
    random_seed,
    renamed_parameter,
    validate_params,
)
from geomkit.measures._resampling import paired_bootstrap, permutation_test, resample_similarity


@pytest.mark.parametrize(
    ("value", "error"),
    [("x", TypeError), (-1, ValueError), (1.5, TypeError), (True, TypeError), (2**64, ValueError)],
)
def test_bad_random_state_names_the_parameter(value, error):
    with pytest.raises(error, match=r"^seed must be None, an integer"):
        check_random_state(value, "seed")


def test_random_state_kinds_give_reproducible_generators():
    assert check_random_state(5).integers(1000) == np.random.default_rng(5).integers(1000)
    g = np.random.default_rng(0)
    assert check_random_state(g) is g
    a = check_random_state(np.random.RandomState(3)).integers(1000)
    b = check_random_state(np.random.RandomState(3)).integers(1000)
    assert a == b
    assert random_seed(11) == 11 and random_seed(np.random.default_rng(1)) == random_seed(
        np.random.default_rng(1))


def test_constraints_accept_and_reject_at_their_bounds():
    c = {"k": [Integer(1, 3)], "p": [Real(0, 1, closed="neither")], "flag": [Boolean()],
         "kind": [Options("a", "bb")], "seed": [RANDOM_STATE], "opt": [Integer(0, None), None]}
    validate_params({"k": 1, "p": 0.5, "flag": False, "kind": "bb", "seed": None, "opt": None},
                    c, caller="f")
    validate_params({"k": 3, "p": 1e-12, "flag": np.True_, "kind": "a", "seed": 0, "opt": 0},
                    c, caller="f")
    for bad, error, text in [
        ({"k": 0}, ValueError, "f: k must be an integer in [1, 3]; got 0."),
        ({"k": 2.0}, TypeError, "f: k must be an integer in [1, 3]; got 2.0."),
        ({"p": 1.0}, ValueError, "f: p must be a finite real number in (0, 1); got 1.0."),
        ({"p": float("nan")}, ValueError, "got nan"),
        ({"flag": 1}, TypeError, "f: flag must be True or False; got 1."),
        ({"kind": "b"}, ValueError, "did you mean 'bb'"),
        ({"opt": -1}, ValueError, "f: opt must be an integer >= 0 or None; got -1."),
    ]:
        with pytest.raises(error) as info:
            validate_params(bad, c, caller="f")
        assert text in str(info.value)


def test_renamed_parameter_warns_and_refuses_both():
    with pytest.warns(DeprecationWarning, match="n_bootstrap= is deprecated"):
        assert renamed_parameter("n_bootstrap", 7, "n_bootstraps", 0, caller="f",
                                 new_default=0) == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_parameter("n_bootstrap", DEPRECATED, "n_bootstraps", 9, caller="f",
                                 new_default=0) == 9
    with pytest.raises(TypeError, match="got both n_bootstrap= and n_bootstraps="):
        renamed_parameter("n_bootstrap", 7, "n_bootstraps", 9, caller="f", new_default=0)


def _corr(a, b):
    return np.corrcoef(a[..., 0].ravel(), b[..., 0].ravel())[0, 1]


def test_paired_bootstrap_interval_covers_the_true_correlation():
    # Gaussian pairs with correlation rho: the 90 % interval covers rho in about 90 % of draws.
    rho, hits, n_draws = 0.6, 0, 60
    cov = [[1, rho], [rho, 1]]
    for seed in range(n_draws):
        xy = np.random.default_rng(seed).multivariate_normal([0, 0], cov, size=200)
        (lo, hi), _ = paired_bootstrap(_corr, xy[:, :1], xy[:, 1:], n_bootstraps=300,
                                       confidence_level=0.9, random_state=seed)
        hits += lo <= rho <= hi
    assert 0.78 <= hits / n_draws <= 0.98


def test_bootstrap_resamples_both_sides_with_the_same_stimuli():
    X = np.arange(40.0).reshape(20, 2)
    (lo, hi), reps = paired_bootstrap(_corr, X, X.copy(), n_bootstraps=50, random_state=0)
    np.testing.assert_allclose(reps, 1.0)  # identical sides stay perfectly correlated
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)


def test_permutation_p_value_is_uniform_under_the_null_and_small_under_the_alternative():
    ps = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        X, Y = rng.normal(size=(30, 1)), rng.normal(size=(30, 1))
        ps.append(permutation_test(_corr, X, Y, n_permutations=99, random_state=seed)[0])
    ps = np.array(ps)
    assert ps.min() >= 0.01 and 0.3 < ps.mean() < 0.7  # uniform on (0, 1]: mean 0.5
    X = np.random.default_rng(0).normal(size=(50, 1))
    p, null = permutation_test(_corr, X, 2 * X + 1, n_permutations=199, random_state=0)
    assert p == pytest.approx(1 / 200) and null.shape == (199,)


def test_repeats_axis_is_resampled_on_the_stimulus_axis():
    X = np.random.default_rng(0).normal(size=(2, 25, 3))
    r = resample_similarity(_corr, X, X, n_bootstraps=10, n_permutations=9, random_state=1)
    assert r.value == pytest.approx(1.0) and r.p_value == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same number of stimuli"):
        resample_similarity(_corr, X, X[:, :20], n_bootstraps=1)
    with pytest.raises(ValueError, match="n_bootstraps must be an integer >= 0; got -1"):
        resample_similarity(_corr, X, X, n_bootstraps=-1)
