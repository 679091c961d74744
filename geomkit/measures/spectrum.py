"""Power-law spectra of activations (seed: the functional core; the estimator comes next).

Stringer, Pachitariu et al. 2019, "High-dimensional geometry of population
responses in visual cortex", Nature: eigenvalues lambda_n of the covariance,
fitted as log lambda_n = -alpha log n + b by least squares with weights 1/n
over ranks 11..500 (1-based), the upper rank kept at or below half the usable
eigenvalues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import eigvalsh
from .._validation import as_float_array

__all__ = ["eigenspectrum", "power_law_exponent", "PowerLawFit", "smoothness_threshold"]


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`power_law_exponent`."""

    alpha: float
    intercept: float
    r2: float
    fit_range: tuple[int, int]
    n_clipped: int = 0


def eigenspectrum(X: Any, *, device: Any = None) -> np.ndarray:
    """Eigenvalues (descending, float64) of the covariance of X of shape (n_stimuli, n_units).

    Uses the stimulus Gram matrix when units outnumber stimuli (same non-zero
    eigenvalues, smaller problem).
    """
    X = as_float_array(X, "X", ndim=2, min_samples=2)
    Xc = X - X.mean(axis=0)
    n, d = Xc.shape
    M = (Xc.T @ Xc) if n >= d else (Xc @ Xc.T)
    return eigvalsh(M / (n - 1), device=device)


def power_law_exponent(
    eigenvalues: Any,
    fit_range: tuple[int, int] = (11, 500),
    weighting: str = "1/n",
) -> PowerLawFit:
    """Fit lambda_n ~ n^-alpha by (weighted) least squares in log-log space.

    Parameters
    ----------
    eigenvalues : array-like of shape (n,)
        Descending eigenvalues.
    fit_range : (int, int), default=(11, 500)
        First and last rank (1-based, inclusive); the upper rank is clipped to
        half the usable (numerically non-zero) eigenvalues.
    weighting : {"1/n", "uniform"}, default="1/n"

    Returns
    -------
    PowerLawFit
    """
    lam = as_float_array(eigenvalues, "eigenvalues", ndim=1)
    tol = lam[0] * lam.size * np.finfo(np.float64).eps
    n_usable = int((lam > tol).sum())
    lo, hi = fit_range
    hi = min(hi, max(n_usable // 2, lo + 1))
    ranks = np.arange(lo, hi + 1)
    y = lam[lo - 1 : hi]
    positive = y > 0
    ranks, y = ranks[positive], y[positive]
    logn, logy = np.log(ranks), np.log(y)
    w = 1.0 / ranks if weighting == "1/n" else np.ones_like(logn)
    A = np.stack([logn, np.ones_like(logn)], axis=1) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(A, logy * np.sqrt(w), rcond=None)
    pred = coef[0] * logn + coef[1]
    ss_res = np.sum(w * (logy - pred) ** 2)
    ss_tot = np.sum(w * (logy - np.average(logy, weights=w)) ** 2)
    return PowerLawFit(
        alpha=float(-coef[0]),
        intercept=float(coef[1]),
        r2=float(1 - ss_res / ss_tot),
        fit_range=(int(lo), int(hi)),
        n_clipped=int((~positive).sum()),
    )


def smoothness_threshold(d: float) -> float:
    """Stringer et al.'s bound: a smooth code of a d-dimensional stimulus set needs alpha > 1 + 2/d."""
    return 1.0 + 2.0 / float(d)
