"""Intervals and p-values for any similarity of two paired representations.

Every similarity in :mod:`geomkit.measures` (CKA, RSA, shape metrics, CCA,
encoding predictivity) is a function ``statistic(X, Y) -> float`` of two
arrays whose *stimulus* axis is paired. Two resampling schemes serve them all:

* the **paired bootstrap** draws stimuli with replacement and applies the same
  draw to both sides. It reports the *basic* (reverse-percentile) interval
  ``(2 theta - q_high, 2 theta - q_low)`` with the bias-corrected estimate
  ``2 theta - median(replicates)`` at its centre (Davison & Hinkley 1997,
  sec. 5.2): the replicates' offset from ``theta`` estimates ``theta``'s offset
  from the population value. The percentile interval ``(q_low, q_high)`` sits
  on the biased side instead and can exclude ``theta`` itself (a biased
  statistic such as the CKA of few stimuli and many units, whose resamples,
  with duplicated stimuli, come out higher still); it is kept as
  ``ci_percentile``. The corrected estimate always lies inside the basic
  interval (the median lies between the two quantiles), the plug-in need not.
  An estimator that is not the plug-in of the empirical distribution (the
  debiased CKA, a ratio of U-statistics, and the split noise-corrected CKA)
  passes that plug-in as ``reference``: the resamples are drawn from the empirical distribution, so
  they scatter around *its* value (the biased CKA), and the interval is
  ``theta + (reference - q)``. Against ``theta`` itself the resamples'
  duplicated stimuli look like a bias of -0.1 to -0.65 on independent data
  whose debiased CKA is 0, and the interval covered 0 in 6 of 40 and 0 of 40
  data sets (60 x 8, 30 x 60); against the reference in 40 of 40;
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
    "basic_interval",
    "permutation_p_value",
]

Statistic = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class ResamplingResult:
    """A similarity with its bootstrap interval and permutation p-value.

    Attributes
    ----------
    value : float
        The statistic on the data as given (the plug-in estimate).
    ci : tuple of float
        ``(low, high)`` basic bootstrap interval at ``confidence_level``,
        ``(2 value - q_high, 2 value - q_low)`` (clipped to the statistic's
        range where it has one); it contains ``value_corrected``.
        ``(nan, nan)`` when ``n_bootstraps == 0``.
    p_value : float
        One-sided permutation p-value; NaN when ``n_permutations == 0``.
    bootstrap : ndarray of shape (n_bootstraps,)
        The bootstrap replicates (non-finite replicates removed).
    null : ndarray of shape (n_permutations,)
        The permutation null distribution.
    confidence_level : float
        The interval's nominal coverage.
    value_corrected : float
        ``2 value - median(bootstrap)``: the estimate less its bootstrap
        estimate of bias, the centre of ``ci`` and the value to report with
        it (NaN without bootstraps).
    ci_percentile : tuple of float
        ``(q_low, q_high)``, the percentile interval, for comparison; it can
        exclude both estimates when the statistic is biased.
    """

    value: float
    ci: tuple[float, float]
    p_value: float
    bootstrap: np.ndarray
    null: np.ndarray
    confidence_level: float
    value_corrected: float = np.nan
    ci_percentile: tuple[float, float] = (np.nan, np.nan)


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
    observed: float | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[tuple[float, float], np.ndarray]:
    """Basic bootstrap interval of ``statistic`` over stimuli resampled in pairs.

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
    observed : float, optional
        The statistic on the data, if already computed.
    bounds : (float, float), default=(-inf, inf)
        The statistic's range; the interval is clipped to it.

    Returns
    -------
    ci : tuple of float
        ``(low, high)``, the basic interval (see :func:`basic_interval`); it
        contains ``2 * statistic(X, Y) - median(replicates)``.
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
    if observed is None:
        observed = _safe(statistic, X, Y)
    reps = _replicates(statistic, X, Y, n_bootstraps, n, rng)
    low, _, high = basic_interval(reps, observed, confidence_level, bounds)
    return (float(low), float(high)), reps[np.isfinite(reps)]


def _replicates(statistic: Statistic, X: np.ndarray, Y: np.ndarray, n_bootstraps: int, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """The statistic on ``n_bootstraps`` paired resamples of the stimuli (NaN where undefined)."""
    reps = np.empty(n_bootstraps)
    for b in range(n_bootstraps):
        idx = rng.integers(0, n, size=n)
        reps[b] = _safe(statistic, X[..., idx, :], Y[..., idx, :])
    return reps


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
    bounds: tuple[float, float] = (-np.inf, np.inf),
    reference: float | None = None,
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
    bounds : (float, float), default=(-inf, inf)
        The statistic's range (e.g. ``(0, 1)`` for the biased CKA); the
        basic interval and the corrected value are clipped to it.
    reference : float, optional
        The statistic's value for the empirical distribution of the stimuli,
        around which the resamples scatter, where it differs from the
        statistic on the data (see the module docstring); default: the
        statistic on the data.

    Returns
    -------
    ResamplingResult
        ``ci`` is the basic interval, centred on ``value_corrected``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(150, 2)); Y = X + rng.normal(size=(150, 2))
    >>> corr = lambda a, b: np.corrcoef(a[:, 0], b[:, 0])[0, 1]
    >>> r = resample_similarity(corr, X, Y, n_bootstraps=100, n_permutations=99, random_state=0)
    >>> bool(r.ci[0] <= r.value_corrected <= r.ci[1]), r.p_value
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
    corrected, ci_percentile = np.nan, (np.nan, np.nan)
    if n_bootstraps:
        all_reps = _replicates(statistic, X, Y, n_bootstraps, X.shape[-2], boot_rng)
        low, corrected, high = (float(v) for v in basic_interval(
            all_reps, value, confidence_level, bounds, reference=reference))
        ci = (low, high)
        ci_percentile = tuple(float(q) for q in percentile_interval(all_reps, confidence_level))
        reps = all_reps[np.isfinite(all_reps)]
    p_value, null = np.nan, np.empty(0)
    if n_permutations:
        p_value, null = permutation_test(statistic, X, Y, n_permutations=n_permutations,
                                         observed=value, random_state=perm_rng)
    return ResamplingResult(value, ci, p_value, reps, null, confidence_level, corrected,
                            ci_percentile)


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
    tail = (1.0 - confidence_level) / 2.0
    low, high = _quantiles(replicates, [tail, 1.0 - tail])
    return low[()], high[()]


def basic_interval(
    replicates: np.ndarray,
    estimate: Any,
    confidence_level: float,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    reference: Any = None,
) -> tuple[Any, Any, Any]:
    """Basic bootstrap interval and the bias-corrected estimate at its centre.

    With ``q`` the bootstrap quantiles and ``r`` the reference (default: the
    estimate), ``low = estimate + r - q_high``, ``corrected = estimate + r -
    q_median``, ``high = estimate + r - q_low``, each clipped to ``bounds``:
    ``low <= corrected <= high`` always holds.
    Non-finite replicates are handled as in :func:`percentile_interval`.
    Works element-wise on (n_resamples, ...) arrays.

    Parameters
    ----------
    replicates : ndarray of shape (n_resamples, ...)
        Bootstrap values of the statistic.
    estimate : float or ndarray of shape (...)
        The statistic on the data.
    confidence_level : float
        Nominal coverage, in (0, 1).
    bounds : (float, float), default=(-inf, inf)
        The statistic's range.
    reference : float or ndarray of shape (...), optional
        The statistic of the empirical distribution, which the replicates
        scatter around (see :func:`resample_similarity`); default ``estimate``.

    Returns
    -------
    low, corrected, high : float or ndarray of shape (...)

    Examples
    --------
    >>> reps = np.array([0.5, 0.6, 0.7, 0.8, 0.9])  # resamples sit above the estimate
    >>> [round(float(v), 2) for v in basic_interval(reps, 0.6, 0.5)]
    [0.4, 0.5, 0.6]
    """
    tail = (1.0 - confidence_level) / 2.0
    q_low, q_mid, q_high = _quantiles(replicates, [tail, 0.5, 1.0 - tail])
    est = np.asarray(estimate, dtype=np.float64)
    ref = est if reference is None else np.asarray(reference, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = [np.clip(est + (ref - q), bounds[0], bounds[1])[()] for q in (q_high, q_mid, q_low)]
    return out[0], out[1], out[2]


def _quantiles(replicates: np.ndarray, probs: list[float]) -> np.ndarray:
    """Quantiles over the first axis, NaN where more than a tenth of the replicates are non-finite."""
    reps = np.asarray(replicates, dtype=np.float64)
    finite = np.isfinite(reps)
    with np.errstate(all="ignore"):
        quantile = np.quantile if finite.all() else np.nanquantile
        q = np.asarray(quantile(np.where(finite, reps, np.nan), probs, axis=0))
    too_few = finite.sum(axis=0) < 0.9 * reps.shape[0]
    return np.where(too_few, np.nan, q)


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
