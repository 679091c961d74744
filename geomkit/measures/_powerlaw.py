"""Fitting power laws to eigenvalue spectra: usable ranks, log-log OLS, Clauset MLE.

Two views of the same law (Stringer, Pachitariu et al. 2019, Nature):

* rank view: ``lambda_n ~ n ** -alpha``, fitted by (weighted) least squares of
  ``log lambda_n = -alpha log n + b`` over a range of ranks;
* density view: ``p(lambda) ~ lambda ** -a`` with ``alpha = 1 / (a - 1)``,
  fitted by maximum likelihood with ``x_min`` chosen by the smallest
  Kolmogorov-Smirnov distance (Clauset, Shalizi & Newman 2009, SIAM Review),
  the estimator of the ``powerlaw`` package (Alstott et al. 2014) and of the
  WeightWatcher tool (Martin & Mahoney).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PowerLawFit",
    "SpectrumWarning",
    "usable_count",
    "resolve_fit_range",
    "fit_spectrum",
    "clauset_fit",
]

EPS = float(np.finfo(np.float64).eps)


class SpectrumWarning(UserWarning):
    """A spectrum was clipped: a narrower fit range, or non-positive eigenvalues left out."""


@dataclass(frozen=True)
class PowerLawFit:  # numpydoc ignore=PR01
    """A power-law fit ``lambda_n ~ exp(intercept) * n ** -alpha`` (a record, documented by its attributes).

    Returned by :func:`geomkit.measures.spectrum.power_law_exponent`; the
    estimator :class:`~geomkit.measures.spectrum.PowerLawSpectrum` stores the
    same numbers as ``alpha_``, ``intercept_``, ... .

    Attributes
    ----------
    alpha : float
        Rank exponent.
    intercept : float
        ``b`` in ``log lambda_n = -alpha log n + b`` (natural logarithms).
    r2 : float
        Coefficient of determination of that line in log-log space over the
        fitted ranks (weighted as the fit).
    fit_range : (int, int)
        First and last rank (1-based, inclusive) actually fitted.
    n_clipped : int
        Non-positive eigenvalues inside the fit range, left out of the fit.
    fitter : str
        ``"ols"`` or ``"mle"``.
    alpha_density : float
        Density exponent ``a = 1 + 1 / alpha`` (the MLE's own estimate for ``"mle"``).
    xmin : float
        Smallest eigenvalue of the tail (``"mle"``; NaN for ``"ols"``).
    ks_distance : float
        Kolmogorov-Smirnov distance of the tail fit (``"mle"``; NaN for ``"ols"``).
    n_usable : int
        Eigenvalues above ``lambda_max * n_units * eps`` (numerically non-zero).

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures.spectrum import power_law_exponent
    >>> fit = power_law_exponent(2.0 * np.arange(1, 801) ** -1.2)
    >>> round(fit.alpha, 6), round(float(np.exp(fit.intercept)), 6), fit.fit_range
    (1.2, 2.0, (11, 400))
    """

    alpha: float
    intercept: float
    r2: float
    fit_range: tuple[int, int]
    n_clipped: int = 0
    fitter: str = "ols"
    alpha_density: float = math.nan
    xmin: float = math.nan
    ks_distance: float = math.nan
    n_usable: int = 0


def usable_count(eigenvalues: np.ndarray, n_units: int | None = None) -> int:
    """Number of eigenvalues above ``lambda_max * n_units * eps`` (float64 eps).

    Below that threshold an eigenvalue is rounding noise of the
    eigendecomposition, not variance: counting it as signal distorts the fit
    range and the exponent.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    lam_max = float(np.max(lam)) if lam.size else 0.0
    if lam_max <= 0:
        return 0
    n = lam.size if n_units is None else int(n_units)
    return int(np.count_nonzero(lam > lam_max * max(n, 1) * EPS))


def _check_fit_range(fit_range: Any) -> tuple[int, int]:
    ok = (
        isinstance(fit_range, (tuple, list, np.ndarray))
        and len(fit_range) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in fit_range)
    )
    if not ok:
        raise TypeError(
            f"fit_range must be a pair of integer ranks (first, last), 1-based and inclusive, "
            f"such as (11, 500); got {fit_range!r}."
        )
    lo, hi = int(fit_range[0]), int(fit_range[1])
    if lo < 1 or hi < lo + 2:
        raise ValueError(
            f"fit_range must satisfy 1 <= first and last >= first + 2 (at least 3 ranks); "
            f"got {(lo, hi)}."
        )
    return lo, hi


def resolve_fit_range(
    fit_range: Any, n_usable: int, *, n_available: int | None = None, clip: bool = True
) -> tuple[int, int]:
    """Validate ``fit_range`` and clip its last rank to about half the usable eigenvalues.

    Stringer et al. keep the upper rank at or below half the number of usable
    eigenvalues, where the sample spectrum is still close to the population
    one. A clipped range is announced with a :class:`SpectrumWarning` that
    states the range used.

    Parameters
    ----------
    fit_range : (int, int)
        Requested first and last rank (1-based, inclusive).
    n_usable : int
        Number of numerically non-zero eigenvalues.
    n_available : int, optional
        Length of the spectrum (for ``clip=False``: the range may not exceed it).
    clip : bool, default=True
        If False, only check that the range lies inside the spectrum.

    Raises
    ------
    ValueError
        If the range starts beyond the spectrum or leaves fewer than 3 ranks.
    """
    lo, hi = _check_fit_range(fit_range)
    if not clip:
        n = n_available if n_available is not None else n_usable
        if hi > n:
            raise ValueError(
                f"fit_range {(lo, hi)} goes beyond the spectrum, which has {n} ranks."
            )
        return lo, hi
    if n_usable < 3 or lo > n_usable - 2:
        raise ValueError(
            f"fit_range {(lo, hi)} lies beyond the spectrum: only {n_usable} usable "
            f"(numerically non-zero) eigenvalue(s), so the first rank must be at most "
            f"{max(n_usable - 2, 0)} and 3 ranks are needed. Pass a smaller fit_range "
            "or more units / stimuli."
        )
    cap = min(max(n_usable // 2, lo + 2), n_usable)
    if hi > cap:
        warnings.warn(
            f"fit_range {(lo, hi)} clipped to {(lo, cap)}: the spectrum has {n_usable} usable "
            f"eigenvalues (above lambda_max * n_units * eps) and the last fitted rank is kept "
            f"at or below about half of them (Stringer et al. 2019).",
            SpectrumWarning,
            stacklevel=3,
        )
        hi = cap
    return lo, hi


def _weights(ranks: np.ndarray, weighting: str) -> np.ndarray:
    return 1.0 / ranks if weighting == "1/n" else np.ones_like(ranks, dtype=np.float64)


def _line_r2(logn: np.ndarray, logy: np.ndarray, w: np.ndarray, slope: float, b: float) -> float:
    pred = slope * logn + b
    ss_res = float(np.sum(w * (logy - pred) ** 2))
    ss_tot = float(np.sum(w * (logy - np.average(logy, weights=w)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def _positive_ranks(lam: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, int]:
    ranks = np.arange(lo, hi + 1, dtype=np.float64)
    y = lam[lo - 1 : hi]
    positive = y > 0
    n_clipped = int(y.size - np.count_nonzero(positive))
    if n_clipped:
        warnings.warn(
            f"{n_clipped} non-positive eigenvalue(s) in ranks {lo}..{hi} left out of the fit "
            "(a cross-validated spectrum can be negative where noise dominates).",
            SpectrumWarning,
            stacklevel=4,
        )
    if np.count_nonzero(positive) < 3:
        raise ValueError(
            f"fewer than 3 positive eigenvalues in ranks {lo}..{hi}; cannot fit a power law."
        )
    return ranks[positive], y[positive], n_clipped


def _fit_ols(lam: np.ndarray, lo: int, hi: int, weighting: str, n_usable: int) -> PowerLawFit:
    ranks, y, n_clipped = _positive_ranks(lam, lo, hi)
    logn, logy = np.log(ranks), np.log(y)
    w = _weights(ranks, weighting)
    # Closed-form weighted least squares of a line (no lstsq call: 2 parameters).
    mx, my = np.average(logn, weights=w), np.average(logy, weights=w)
    slope = float(np.sum(w * (logn - mx) * (logy - my)) / np.sum(w * (logn - mx) ** 2))
    b = float(my - slope * mx)
    return PowerLawFit(
        alpha=-slope,
        intercept=b,
        r2=_line_r2(logn, logy, w, slope, b),
        fit_range=(lo, hi),
        n_clipped=n_clipped,
        fitter="ols",
        alpha_density=1.0 + 1.0 / -slope if slope != 0 else math.inf,
        n_usable=n_usable,
    )


def clauset_fit(
    values: Any, xmin_range: tuple[float, float] | None = None
) -> tuple[float, float, float, int]:
    """Continuous power-law MLE with ``x_min`` chosen by the smallest KS distance.

    For each candidate ``x_min`` (every distinct value except the largest, or
    those in ``xmin_range``) the exponent is Clauset et al.'s closed-form MLE
    ``a = 1 + n / sum(log(x_i / x_min))`` over the ``n`` values ``>= x_min``,
    and the KS distance is ``max |F_emp - F_fit|`` with ``F_emp = (0..n-1)/n``
    at the sorted tail values and ``F_fit(x) = 1 - (x / x_min) ** (1 - a)``.
    This reproduces ``powerlaw.Fit(values).power_law`` (the package's analytic
    branch, which it uses for ``1.5 < a <= 3``) vectorized; unlike the package
    it does not cap ``a`` at 3, so rank exponents below 0.5 stay reachable.

    Parameters
    ----------
    values : array-like of shape (n,)
        Positive values (non-positive ones are dropped).
    xmin_range : (float, float), optional
        Only candidates with ``low <= x_min < high`` are considered.

    Returns
    -------
    a : float
        Density exponent.
    xmin : float
    ks_distance : float
    n_tail : int
        Number of values ``>= xmin``.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[x > 0]
    if x.size < 3:
        raise ValueError(f"at least 3 positive values are needed for a power-law MLE; got {x.size}.")
    logx = np.log(x)
    # suffix[i] = sum(log x[i:]); candidates are the first occurrence of each distinct value.
    suffix = np.cumsum(logx[::-1])[::-1]
    _, first = np.unique(x, return_index=True)
    cand = first[:-1]
    if xmin_range is not None:
        lo, hi = xmin_range
        cand = cand[(x[cand] >= lo) & (x[cand] < hi)]
    cand = cand[x.size - cand >= 2]
    if cand.size == 0:
        raise ValueError("no admissible x_min candidate (fewer than 2 tail values above each).")
    n_tail = (x.size - cand).astype(np.float64)
    denom = suffix[cand] - n_tail * logx[cand]
    with np.errstate(divide="ignore"):
        a = 1.0 + n_tail / denom
    ks = np.full(cand.size, np.inf)
    # Chunked evaluation of the KS distance for every candidate: O(candidates x n) memory-bounded.
    chunk = max(1, int(4_000_000 // x.size))
    j = np.arange(x.size)
    for start in range(0, cand.size, chunk):
        c = cand[start : start + chunk]
        ac = a[start : start + chunk]
        nt = n_tail[start : start + chunk]
        rel = j[None, :] - c[:, None]
        mask = rel >= 0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit = 1.0 - np.exp((1.0 - ac[:, None]) * (logx[None, :] - logx[c][:, None]))
            diff = np.abs(np.where(mask, rel / nt[:, None] - fit, 0.0))
        d = diff.max(axis=1)
        d[~np.isfinite(ac) | (ac <= 1)] = np.inf
        ks[start : start + chunk] = d
    best = int(np.argmin(ks))
    return float(a[best]), float(x[cand[best]]), float(ks[best]), int(n_tail[best])


def _fit_mle(lam: np.ndarray, lo: int, hi: int, weighting: str, n_usable: int) -> PowerLawFit:
    # Density view over all positive usable eigenvalues (sorted: along fixed axes the
    # values need not be); the tail must start between ranks lo and hi, so the fitted
    # ranks are 1..rank(x_min) with rank(x_min) in [lo, hi].
    ordered = np.sort(lam)[::-1][:n_usable]
    n_clipped = int(np.count_nonzero(ordered[:hi] <= 0))
    ordered = ordered[ordered > 0]
    hi = min(hi, ordered.size)
    if hi < lo + 2:
        raise ValueError(
            f"fewer than 3 positive eigenvalues in ranks {lo}..{hi}; cannot fit a power law."
        )
    a, xmin, ks, n_tail = clauset_fit(
        ordered, xmin_range=(float(ordered[hi - 1]), float(np.nextafter(ordered[lo - 1], np.inf)))
    )
    alpha = 1.0 / (a - 1.0)
    # The tail's CCDF (x / x_min) ** (1 - a) = rank / n_tail gives log lambda_n = -alpha log n + b.
    b = math.log(xmin) + alpha * math.log(n_tail)
    ranks = np.arange(1, n_tail + 1, dtype=np.float64)
    r2 = _line_r2(np.log(ranks), np.log(ordered[:n_tail]), _weights(ranks, weighting), -alpha, b)
    return PowerLawFit(
        alpha=alpha,
        intercept=b,
        r2=r2,
        fit_range=(1, n_tail),
        n_clipped=n_clipped,
        fitter="mle",
        alpha_density=a,
        xmin=xmin,
        ks_distance=ks,
        n_usable=n_usable,
    )


def fit_spectrum(
    eigenvalues: np.ndarray,
    fit_range: Any = (11, 500),
    weighting: str = "1/n",
    fitter: str = "ols",
    *,
    n_units: int | None = None,
    n_usable: int | None = None,
    clip: bool = True,
) -> PowerLawFit:
    """Fit a power law to a descending spectrum (shared core of the public functions).

    ``n_usable`` may be given when usability was judged on another spectrum
    (cvPCA: the training repeat's covariance). With ``clip=False`` the range
    is used as given (scoring along fixed axes, where the values need not be
    sorted).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if n_usable is None:
        n_usable = usable_count(lam, n_units)
    lo, hi = resolve_fit_range(fit_range, n_usable, n_available=lam.size, clip=clip)
    if fitter == "mle":
        return _fit_mle(lam, lo, hi, weighting, n_usable)
    return _fit_ols(lam, lo, hi, weighting, n_usable)


# Largest relative distortion of a sample eigenvalue accepted inside the fit range (see
# ``distortion_limit``): beyond it the simulated bias correction, not the data, carries the fit.
MAX_DISTORTION = 0.25


def sample_distortion(eigenvalues: np.ndarray, n_stimuli: int, total_variance: float) -> np.ndarray:
    """Predicted relative inflation of each sample eigenvalue by the variance it cannot resolve.

    To first order in ``1 / n_stimuli``, the sample eigenvalue of rank ``k`` is
    ``l_k ~ lambda_k + L_k / n`` with ``L_k = sum_{j > k} lambda_j``: every
    weaker population component leaks about ``lambda_j / n`` into it (the
    spiked-covariance expansion ``l_k = lambda_k (1 + sum_j lambda_j / (n (lambda_k - lambda_j)))``
    with ``lambda_j << lambda_k``). ``L_k`` is observable: the sample's total
    variance (an unbiased estimate of the population's) less the sample
    eigenvalues of ranks ``<= k``. The inflation ``l_k / lambda_k - 1`` is then
    ``L_k / (n l_k - L_k)``. With many more units than stimuli it reaches 1 well
    below rank ``n_stimuli`` (1000 x 5000, alpha 1: rank ~300); the fit must stop before.

    Parameters
    ----------
    eigenvalues : ndarray of shape (n,)
        Sample eigenvalues, descending.
    n_stimuli : int
    total_variance : float
        Trace of the sample covariance (all units).

    Returns
    -------
    ndarray of shape (n,)
        Predicted ``l_k / lambda_k - 1`` (``inf`` where ``n l_k <= L_k``).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    leaked = np.maximum(total_variance - np.cumsum(np.clip(lam, 0.0, None)), 0.0)
    resolved = n_stimuli * lam - leaked
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(resolved > 0, leaked / resolved, np.inf)


def distortion_limit(
    fit_range: tuple[int, int],
    eigenvalues: np.ndarray,
    n_stimuli: int,
    total_variance: float,
    max_distortion: float = MAX_DISTORTION,
) -> tuple[tuple[int, int], float, bool]:
    """Stop the fit range where the sample spectrum departs from the population's.

    The last rank is lowered to the last one whose predicted distortion
    (:func:`sample_distortion`) is at most ``max_distortion``, but not below
    ``3 * first`` (a slope needs a factor of 3 in rank). Returns the range, the
    distortion at its first rank and whether the data support the fit (``False``
    when even ``3 * first`` had to exceed the limit, or the first rank is
    already distorted by more than ``max_distortion``).
    """
    D = sample_distortion(eigenvalues, n_stimuli, total_variance)
    # D grows with rank for a decaying spectrum: keep the leading run of ranks within the limit.
    new, _, supported = _cut_range(fit_range, D[: fit_range[1]] <= max_distortion)
    return new, float(D[fit_range[0] - 1]), supported


def _cut_range(fit_range: tuple[int, int], good: np.ndarray) -> tuple[tuple[int, int], int, bool]:
    """Last rank of the leading run of ``good`` ranks (1..hi), the range cut there but not below
    ``3 * first``, and whether the run reaches ``3 * first`` (or the requested last rank)."""
    lo, hi = fit_range
    last = hi if good.all() else int(np.argmin(good))
    new_hi = min(hi, max(last, 3 * lo))
    return (lo, max(new_hi, lo + 2)), last, bool(last >= min(hi, 3 * lo))


# Smallest squared overlap of a training-repeat axis with its signal axis accepted in a cvPCA fit.
MIN_AXIS_OVERLAP = 0.5


def axis_overlap(signal: np.ndarray, noise_variance: float, aspect: float) -> np.ndarray:
    """Squared overlap of a sample principal axis with its population axis (spiked model).

    For a signal variance ``lambda`` in isotropic noise of variance ``s2`` per
    unit, with ``aspect = n_units / n_stimuli``, the top sample axis of the
    noisy repeat has ``|<u, v>|^2 = (1 - aspect s2^2 / lambda^2) / (1 + aspect s2 / lambda)``
    above the detection threshold ``lambda > s2 sqrt(aspect)`` and 0 below it
    (Paul 2007, Statistica Sinica; Benaych-Georges & Nadakuditi 2011). cvPCA
    measures the signal along axes of one noisy repeat: where the overlap is
    small, its "eigenvalues" are noise around the truth (they change sign,
    and fitted exponents come out flat).

    Parameters
    ----------
    signal : ndarray of shape (n,)
        Estimated signal variances (cvPCA spectrum).
    noise_variance : float
        Trial-noise variance per unit (mean noise eigenvalue over all units).
    aspect : float
        ``n_units / n_stimuli``.

    Returns
    -------
    ndarray of shape (n,)
        Squared overlaps in [0, 1] (0 where the signal is not positive).
    """
    lam = np.asarray(signal, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = 1.0 - aspect * noise_variance**2 / lam**2
        den = 1.0 + aspect * noise_variance / lam
        out = np.where(lam > 0, num / den, 0.0)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


def resolvable_limit(
    fit_range: tuple[int, int],
    signal: np.ndarray,
    noise_variance: float,
    aspect: float,
    min_overlap: float = MIN_AXIS_OVERLAP,
) -> tuple[tuple[int, int], int, bool]:
    """Stop a cvPCA fit where the training axes stop resolving the signal (:func:`axis_overlap`).

    Returns the range (last rank not below ``3 * first``), the last
    resolvable rank (leading run from rank 1, 0 if none) and whether the data
    support the fit (the resolvable ranks reach ``3 * first`` or the
    requested last rank).
    """
    return _cut_range(fit_range, axis_overlap(signal[: fit_range[1]], noise_variance, aspect) >= min_overlap)


# Below this many eigenvalues the tail fit switches to the small-sample rule (WeightWatcher 0.7.7).
SMALL_SAMPLE = 20
# The small-sample rule's smallest tail, and the smallest tail any fit reports.
SMALL_SAMPLE_MIN_TAIL = 8
MIN_TAIL = 4


def small_sample_fit(values: Any) -> tuple[float, float, float, int]:
    """Power-law tail of fewer than ~20 values: bias-corrected MLE, tails of >= 8 values.

    The rule WeightWatcher 0.7.7 applies to small spectra (its
    ``fit_powerlaw_smallN``; reimplemented from its description): the
    exponent is the bias-corrected MLE ``a = 1 + (n - 1) / sum(log(x_i / x_min))``
    (unbiased for ``1 / (a - 1)`` of a Pareto sample, where the plain MLE's ``n``
    overestimates ``a - 1`` by ``n / (n - 1)``), and ``x_min`` minimizes the KS
    distance over tails of at least 8 values only (over all tails, the KS
    distance picks the shortest ones, whose exponents are wild: a 10-class
    output layer gave 9.87 where this rule gives 2.1). With fewer than 9
    values the whole sample is the tail. (Its code also computes an objective
    ``D_KS - 0.868 / sqrt(n)``, but the KS minimum is what it reports; we
    follow the reported value, checked against its ``WWFit``.)

    Parameters
    ----------
    values : array-like of shape (n,)
        Positive values (non-positive ones are dropped).

    Returns
    -------
    a, xmin, ks_distance, n_tail
        As :func:`clauset_fit`.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[x > 0]
    if x.size < 2:
        raise ValueError(f"at least 2 positive values are needed for a power-law fit; got {x.size}.")
    logx = np.log(x)
    best = None
    for i in range(x.size - 1):
        n = x.size - i
        if n < SMALL_SAMPLE_MIN_TAIL and best is not None:
            break
        s = float(np.sum(logx[i:]) - n * logx[i])
        if s <= 1e-12:
            continue
        a = 1.0 + (n - 1.0) / s
        if a <= 1.0:
            continue
        ks = float(np.max(np.abs(np.arange(n) / n - (1.0 - (x[i:] / x[i]) ** (1.0 - a)))))
        score = ks
        eligible = n >= SMALL_SAMPLE_MIN_TAIL or i == 0  # the whole sample if nothing else
        if eligible and (best is None or score < best[0]):
            best = (score, a, float(x[i]), ks, n)
    if best is None:
        raise ValueError("no admissible x_min: the values are (nearly) all equal.")
    return best[1], best[2], best[3], best[4]
