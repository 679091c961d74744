"""Intrinsic dimension of a point cloud: the TwoNN estimator.

Facco, d'Errico, Rodriguez & Laio 2017, "Estimating the intrinsic dimension
of datasets by a minimal neighborhood information", Scientific Reports 7:
for each point the ratio mu = r2 / r1 of its second- to first-nearest-neighbour
distances is Pareto distributed with exponent d: -log(1 - F(mu)) = d log(mu), with F the
empirical distribution function. d is the slope of that line through the
origin, fitted by least squares after discarding the largest
``discard_fraction`` of ratios (dominated by noise and boundaries), as in the
paper.

The study uses it to draw Stringer et al.'s smoothness bound alpha > 1 + 2/d
for the stimulus set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array, check_float

__all__ = ["twonn_dimension"]


def twonn_dimension(X: Any, discard_fraction: float = 0.1) -> float:
    """TwoNN intrinsic dimension of points X of shape (n_points, n_features).

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        At least 3 distinct points.
    discard_fraction : float, default=0.1
        Fraction of the largest ratios r2/r1 left out of the fit.

    Returns
    -------
    float
        The estimated dimension.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(2000, 2)) @ rng.normal(size=(2, 10))
    >>> round(twonn_dimension(plane), 1)
    2.0
    """
    from scipy.spatial import cKDTree

    X = as_float_array(X, "X", ndim=2, min_samples=3)
    discard_fraction = check_float(discard_fraction, "discard_fraction", low=0.0, high=0.9)
    X = np.unique(X, axis=0)  # duplicates give r1 = 0
    if X.shape[0] < 3:
        raise ValueError("X must hold at least 3 distinct points for the TwoNN estimate.")
    distances, _ = cKDTree(X).query(X, k=3)
    mu = np.sort(distances[:, 2] / distances[:, 1])
    n = len(mu)
    n_keep = max(2, int(np.floor(n * (1 - discard_fraction))))
    x = np.log(mu[:n_keep])
    y = -np.log(1.0 - np.arange(1, n_keep + 1) / n)
    return float(np.dot(x, y) / np.dot(x, x))
