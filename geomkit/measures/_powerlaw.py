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
