"""How far two attribution maps of the same inputs are apart (Ghorbani, Abid & Zou 2019).

Three measures, each per input, on the maps' absolute values (the importance
of a feature, whatever its sign):

* :func:`topk_intersection` — the fraction of the k most important features of
  the first map that are among the k most important of the second;
* :func:`rank_correlation` — Spearman's rank correlation of the two maps;
* :func:`center_of_mass_shift` — the distance between the maps' centres of
  mass, in pixels, on the image grid.

Each takes arrays of shape (n, ...) (numpy, torch, xarray) and returns an
array of shape (n,).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._validation import as_float_array, check_int

__all__ = ["topk_intersection", "rank_correlation", "center_of_mass_shift"]


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both maps as float64 arrays (n, ...) of equal shape."""
    a = np.asarray(as_float_array(a, "a", ndim=None))
    b = np.asarray(as_float_array(b, "b", ndim=None))
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"a must have shape (n_inputs, ...) with at least one input; got shape {a.shape}.")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (one map per input); got {a.shape} and {b.shape}.")
    return a, b


def _importance(a: np.ndarray) -> np.ndarray:
    return np.abs(a.reshape(a.shape[0], -1))


def resolve_k(k: Any, n_features: int) -> int:
    """``k``, or a tenth of the features (at least one) for ``k=None``; checked against ``n_features``."""
    if k is None:
        return max(1, int(round(0.1 * n_features)))
    return check_int(k, "k", low=1, high=n_features)


def topk_intersection(a: Any, b: Any, k: int | None = None) -> np.ndarray:
    """Fraction of the k most important features of ``a`` that are among the k of ``b``.

    Parameters
    ----------
    a, b : array-like of shape (n, ...)
        Attribution maps of the same n inputs (original and perturbed).
        Importance is the absolute value; ties are broken by feature index.
    k : int or None, default=None
        Features compared, ``1 <= k <= n_features``; ``None``: a tenth of
        them (at least one).

    Returns
    -------
    numpy.ndarray of shape (n,)
        In [0, 1]: 1 when the top-k sets agree.

    Examples
    --------
    >>> topk_intersection([[4, -3, 2, 1]], [[1, 3, -4, 2]], k=2)
    array([0.5])
    """
    a, b = _pair(a, b)
    ia, ib = _importance(a), _importance(b)
    k = resolve_k(k, ia.shape[1])
    # stable sort of -importance: the largest first, ties by index
    top_a = np.argsort(-ia, axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-ib, axis=1, kind="stable")[:, :k]
    in_b = np.zeros_like(ib, dtype=bool)
    np.put_along_axis(in_b, top_b, True, axis=1)
    return np.take_along_axis(in_b, top_a, axis=1).mean(axis=1)


def rank_correlation(a: Any, b: Any) -> np.ndarray:
    """Spearman's rank correlation of the absolute attributions, per input.

    Parameters
    ----------
    a, b : array-like of shape (n, ...)
        Attribution maps of the same n inputs. Ties get their average rank
        (as :func:`scipy.stats.spearmanr`).

    Returns
    -------
    numpy.ndarray of shape (n,)
        In [-1, 1]; NaN for an input whose map is constant.

    Examples
    --------
    >>> rank_correlation([[1.0, 2.0, 3.0]], [[-10.0, 20.0, 30.0]])
    array([1.])
    """
    from scipy.stats import rankdata

    a, b = _pair(a, b)
    ra = rankdata(_importance(a), axis=1)
    rb = rankdata(_importance(b), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.nan)


def _centres(importance: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Centre of mass of each row of ``importance`` (n, prod(shape)) on the grid ``shape``: (n, len(shape))."""
    grids = np.indices(shape).reshape(len(shape), -1).astype(np.float64)  # (ndim, n_features)
    mass = importance.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (importance @ grids.T) / mass


def center_of_mass_shift(a: Any, b: Any, shape: Sequence[int] | None = None) -> np.ndarray:
    """Distance between the centres of mass of two attribution maps, per input.

    The centre of mass of a map is ``sum_i |a_i| p_i / sum_i |a_i|`` over the
    feature positions ``p_i`` on the image grid.

    Parameters
    ----------
    a, b : array-like of shape (n, ...)
        Attribution maps of the same n inputs.
    shape : sequence of int, optional
        The grid of one map: ``(28, 28)`` for flattened MNIST images. ``None``:
        the maps' own shape without the batch axis (for (n, C, H, W) maps the
        channel is one more grid axis; sum them first to leave it out).

    Returns
    -------
    numpy.ndarray of shape (n,)
        Euclidean distance in grid units (pixels); NaN for an all-zero map.

    Examples
    --------
    >>> a = [[1.0, 0.0, 0.0, 0.0]]
    >>> b = [[0.0, 0.0, 0.0, 1.0]]
    >>> center_of_mass_shift(a, b, shape=(2, 2))  # (0, 0) -> (1, 1)
    array([1.41421356])
    """
    a, b = _pair(a, b)
    grid = tuple(a.shape[1:]) if shape is None else tuple(check_int(s, "shape", low=1) for s in shape)
    n_features = int(np.prod(a.shape[1:]))
    if int(np.prod(grid)) != n_features:
        raise ValueError(f"shape {grid} holds {int(np.prod(grid))} features but each map has {n_features}.")
    ca = _centres(_importance(a), grid)
    cb = _centres(_importance(b), grid)
    return np.sqrt(((ca - cb) ** 2).sum(axis=1))
