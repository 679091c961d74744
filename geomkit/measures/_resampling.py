"""Intervals and p-values for any similarity of two paired representations.

Every similarity in :mod:`geomkit.measures` (CKA, RSA, shape metrics, CCA,
encoding predictivity) is a function ``statistic(X, Y) -> float`` of two
arrays whose *stimulus* axis is paired. Two resampling schemes serve them all:

* the **paired bootstrap** draws stimuli with replacement and applies the same
  draw to both sides (percentile interval; Efron & Tibshirani 1993, ch. 13);
* the **permutation test** shuffles the stimulus order of one side only, which
  destroys the pairing and so gives the statistic's null distribution; the
  p-value is ``(1 + #{null >= observed}) / (1 + n_permutations)`` (Phipson &
  Smyth 2010), one-sided in the direction "more similar than chance".

The stimulus axis is the second-to-last one, so ``(n_stimuli, n_units)`` and
``(n_repeats, n_stimuli, n_units)`` arrays are resampled alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._params import RANDOM_STATE, Integer, Real, check_random_state, validate_params

__all__ = [
    "ResamplingResult",
    "paired_bootstrap",
    "permutation_test",
    "resample_similarity",
    "percentile_interval",
    "permutation_p_value",
]

Statistic = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class ResamplingResult:
    """A similarity with its bootstrap interval and permutation p-value.

    Attributes
    ----------
    value : float
        The statistic on the data as given.
    ci : tuple of float
        ``(low, high)`` percentile interval of the paired bootstrap at
        ``confidence_level``; ``(nan, nan)`` when ``n_bootstraps == 0``.
    p_value : float
        One-sided permutation p-value; NaN when ``n_permutations == 0``.
    bootstrap : ndarray of shape (n_bootstraps,)
        The bootstrap replicates (non-finite replicates removed).
    null : ndarray of shape (n_permutations,)
        The permutation null distribution.
    confidence_level : float
        The interval's nominal coverage.
    """

    value: float
    ci: tuple[float, float]
    p_value: float
    bootstrap: np.ndarray
    null: np.ndarray
    confidence_level: float


def _n_stimuli(X: np.ndarray, Y: np.ndarray) -> int:
    n_x, n_y = X.shape[-2], Y.shape[-2]
    if n_x != n_y:
        raise ValueError(
            f"X and Y must have the same number of stimuli (second-to-last axis); got "
            f"{n_x} and {n_y}."
        )
    return n_x


def paired_bootstrap(
    statistic: Statistic,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    n_bootstraps: int = 1000,
    confidence_level: float = 0.95,
    random_state: Any = None,
) -> tuple[tuple[float, float], np.ndarray]:
    """Percentile interval of ``statistic`` over stimuli resampled in pairs.

    Parameters
    ----------
    statistic : callable
        ``statistic(X, Y) -> float``.
    X, Y : ndarray of shape (..., n_stimuli, n_units_x) and (..., n_stimuli, n_units_y)
        Paired along the stimulus axis (second-to-last).
    n_bootstraps : int, default=1000
        Number of resamples (>= 1).
    confidence_level : float, default=0.95
        Nominal coverage, in (0, 1).
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the resampling.

    Returns
    -------
    ci : tuple of float
        ``(low, high)``.
    replicates : ndarray of shape (n_valid,)
        The finite bootstrap values (a resample may repeat stimuli so often
        that a statistic is undefined; those are dropped, and when more than
        a tenth are, the interval is NaN rather than a biased one).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); Y = X + rng.normal(size=(200, 3))
    >>> corr = lambda a, b: np.corrcoef(a[:, 0], b[:, 0])[0, 1]
    >>> (lo, hi), reps = paired_bootstrap(corr, X, Y, n_bootstraps=200, random_state=0)
    >>> bool(lo < corr(X, Y) < hi)
    True
    """
    validate_params(
        {"n_bootstraps": n_bootstraps, "confidence_level": confidence_level,
         "random_state": random_state},
        {"n_bootstraps": [Integer(1, None)], "confidence_level": [Real(0, 1, closed="neither")],
         "random_state": [RANDOM_STATE]},
        caller="paired_bootstrap",
    )
    n = _n_stimuli(X, Y)
    rng = check_random_state(random_state)
    reps = np.empty(n_bootstraps)
    for b in range(n_bootstraps):
        idx = rng.integers(0, n, size=n)
        reps[b] = _safe(statistic, X[..., idx, :], Y[..., idx, :])
    low, high = percentile_interval(reps, confidence_level)
    return (float(low), float(high)), reps[np.isfinite(reps)]


def permutation_test(
    statistic: Statistic,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    n_permutations: int = 1000,
    observed: float | None = None,
    random_state: Any = None,
) -> tuple[float, np.ndarray]:
    """One-sided p-value of ``statistic`` against stimulus-shuffled pairings.

    Parameters
    ----------
    statistic : callable
        ``statistic(X, Y) -> float``, larger meaning more similar.
    X, Y : ndarray of shape (..., n_stimuli, n_units_x) and (..., n_stimuli, n_units_y)
        Paired along the stimulus axis.
    n_permutations : int, default=1000
        Number of shuffles of ``Y``'s stimulus order (>= 1).
    observed : float, optional
        The statistic on the data, if already computed.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the shuffles.

    Returns
    -------
    p_value : float
        ``(1 + #{null >= observed}) / (1 + n_permutations)``; never 0.
    null : ndarray of shape (n_permutations,)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 2))
    >>> corr = lambda a, b: np.corrcoef(a[:, 0], b[:, 0])[0, 1]
    >>> p, null = permutation_test(corr, X, X, n_permutations=99, random_state=0)
    >>> p
    0.01
    """
    validate_params(
        {"n_permutations": n_permutations, "random_state": random_state},
        {"n_permutations": [Integer(1, None)], "random_state": [RANDOM_STATE]},
        caller="permutation_test",
    )
    n = _n_stimuli(X, Y)
    rng = check_random_state(random_state)
    if observed is None:
        observed = _safe(statistic, X, Y)
    null = np.empty(n_permutations)
    for b in range(n_permutations):
        null[b] = _safe(statistic, X, Y[..., rng.permutation(n), :])
    return float(permutation_p_value(null, observed)), null


def resample_similarity(
    statistic: Statistic,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    n_bootstraps: int = 0,
    n_permutations: int = 0,
    confidence_level: float = 0.95,
    random_state: Any = None,
) -> ResamplingResult:
    """The statistic, its paired-bootstrap interval and its permutation p-value in one call.

    Parameters
    ----------
    statistic : callable
        ``statistic(X, Y) -> float``.
    X, Y : ndarray of shape (..., n_stimuli, n_units_x) and (..., n_stimuli, n_units_y)
        Paired along the stimulus axis.
    n_bootstraps, n_permutations : int, default=0
        Resamples of each kind; 0 skips that kind (NaN interval / p-value).
    confidence_level : float, default=0.95
        Nominal coverage of the interval.
    random_state : None, int or numpy.random.Generator, default=None
        One seed for both schemes (they draw from independent child streams).

    Returns
    -------
    ResamplingResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(150, 2)); Y = X + rng.normal(size=(150, 2))
    >>> corr = lambda a, b: np.corrcoef(a[:, 0], b[:, 0])[0, 1]
    >>> r = resample_similarity(corr, X, Y, n_bootstraps=100, n_permutations=99, random_state=0)
    >>> bool(r.ci[0] < r.value < r.ci[1]), r.p_value
    (True, 0.01)
    """
    validate_params(
        {"n_bootstraps": n_bootstraps, "n_permutations": n_permutations,
         "confidence_level": confidence_level, "random_state": random_state},
        {"n_bootstraps": [Integer(0, None)], "n_permutations": [Integer(0, None)],
         "confidence_level": [Real(0, 1, closed="neither")], "random_state": [RANDOM_STATE]},
        caller="resample_similarity",
    )
    _n_stimuli(X, Y)
    value = float(statistic(X, Y))
    boot_rng, perm_rng = check_random_state(random_state).spawn(2)
    ci, reps = (np.nan, np.nan), np.empty(0)
    if n_bootstraps:
        ci, reps = paired_bootstrap(statistic, X, Y, n_bootstraps=n_bootstraps,
                                    confidence_level=confidence_level, random_state=boot_rng)
    p_value, null = np.nan, np.empty(0)
    if n_permutations:
        p_value, null = permutation_test(statistic, X, Y, n_permutations=n_permutations,
                                         observed=value, random_state=perm_rng)
    return ResamplingResult(value, ci, p_value, reps, null, confidence_level)


def percentile_interval(replicates: np.ndarray, confidence_level: float) -> tuple[Any, Any]:
    """``(low, high)`` percentile interval over the first axis of ``replicates``.

    Non-finite replicates (resamples where the statistic is undefined) are
    ignored; where more than a tenth are non-finite the interval is NaN
    rather than a biased one. Works element-wise on (n_resamples, ...) arrays.

    Examples
    --------
    >>> low, high = percentile_interval(np.arange(101.0), 0.5)
    >>> float(low), float(high)
    (25.0, 75.0)
    """
    reps = np.asarray(replicates, dtype=np.float64)
    tail = (1.0 - confidence_level) / 2.0
    finite = np.isfinite(reps)
    with np.errstate(all="ignore"):
        quantile = np.quantile if finite.all() else np.nanquantile
        low, high = quantile(np.where(finite, reps, np.nan), [tail, 1.0 - tail], axis=0)
    too_few = finite.sum(axis=0) < 0.9 * reps.shape[0]
    return np.where(too_few, np.nan, low)[()], np.where(too_few, np.nan, high)[()]


def permutation_p_value(null: np.ndarray, observed: Any) -> Any:
    """``(1 + #{null >= observed}) / (1 + n_permutations)`` over the first axis of ``null``.

    Examples
    --------
    >>> float(permutation_p_value(np.array([0.1, 0.5, 0.9]), 0.6))
    0.5
    """
    null = np.asarray(null, dtype=np.float64)
    return ((1.0 + np.count_nonzero(null >= observed, axis=0)) / (1.0 + null.shape[0]))[()]


def _safe(statistic: Statistic, X: np.ndarray, Y: np.ndarray) -> float:
    """The statistic, NaN where a resample makes it undefined (e.g. zero variance)."""
    try:
        return float(statistic(X, Y))
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return np.nan
