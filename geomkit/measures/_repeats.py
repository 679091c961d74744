"""Input checks and repeat handling shared by the shape, CCA and encoding measures.

A representation is ``(n_stimuli, n_units)`` (one response per stimulus: a
network layer, or trial-averaged recordings) or ``(n_repeats, n_stimuli,
n_units)`` (repeated presentations of every stimulus). The repeat-split
estimators need two *independent* estimates of each stimulus' response; they
are the means of the even and of the odd repeats. A side without repeats is
noise-free for this purpose and serves as both halves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import as_float_array, to_numpy
from ._resampling import ResamplingResult, resample_similarity

NOISE_CORRECTIONS = ("none", "split")


def check_representation(X: Any, name: str, *, min_stimuli: int = 3) -> np.ndarray:
    """``X`` as float64 of shape (n_stimuli, n_units) or (n_repeats, n_stimuli, n_units).

    A list or tuple of 2-D arrays is taken as the repeats, which must share one shape.
    """
    if isinstance(X, (list, tuple)) and X and not np.isscalar(X[0]):
        parts = [to_numpy(x, f"{name}[{i}]") for i, x in enumerate(X)]
        shapes = [np.shape(p) for p in parts]
        if len(set(shapes)) > 1:
            odd = next(i for i, s in enumerate(shapes) if s != shapes[0])
            raise ValueError(
                f"{name} is a sequence of repeats of unequal shape: {name}[0] has shape "
                f"{shapes[0]} and {name}[{odd}] has shape {shapes[odd]}; every repeat must be "
                "(n_stimuli, n_units) with the same stimuli and units."
            )
        if np.ndim(parts[0]) == 2:
            X = np.stack(parts)
    arr = as_float_array(X, name, ndim=(2, 3), min_samples=min_stimuli)
    mean = arr.mean(axis=0) if arr.ndim == 3 else arr
    if not np.any(mean.std(axis=0) > 0):
        raise ValueError(
            f"{name} has zero variance across stimuli (every unit is constant); the "
            "similarity is undefined for a constant representation."
        )
    return arr


def check_pair(X: Any, Y: Any, *, min_stimuli: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Both representations checked, with the same number of stimuli."""
    X = check_representation(X, "X", min_stimuli=min_stimuli)
    Y = check_representation(Y, "Y", min_stimuli=min_stimuli)
    if X.shape[-2] != Y.shape[-2]:
        raise ValueError(
            f"X and Y must hold the same stimuli: X has {X.shape[-2]} (shape {X.shape}) and "
            f"Y has {Y.shape[-2]} (shape {Y.shape}) along the stimulus axis."
        )
    return X, Y


def trial_mean(X: np.ndarray) -> np.ndarray:
    """The (n_stimuli, n_units) mean over repeats (the array itself when 2-D)."""
    return X.mean(axis=0) if X.ndim == 3 else X


def has_repeats(X: np.ndarray) -> bool:
    return X.ndim == 3 and X.shape[0] >= 2


def halves(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means of the even and of the odd repeats; a side without repeats twice."""
    if not has_repeats(X):
        M = trial_mean(X)
        return M, M
    return X[0::2].mean(axis=0), X[1::2].mean(axis=0)


def check_split_possible(X: np.ndarray, Y: np.ndarray, caller: str) -> None:
    if not (has_repeats(X) or has_repeats(Y)):
        raise ValueError(
            f"{caller}: noise_correction='split' needs repeats on at least one side: X or Y "
            f"of shape (n_repeats >= 2, n_stimuli, n_units); got X {X.shape} and Y {Y.shape}."
        )


def cross_covariance(A1: np.ndarray, A2: np.ndarray, B1: np.ndarray, B2: np.ndarray) -> np.ndarray:
    """Symmetrised cross-half covariance ``(A1' B2 + A2' B1) / 2n`` of column-centred halves.

    With trial noise independent across repeats, ``E[A1' B2] = A_s' B_s``: the
    noise drops out even when A's and B's noise are correlated within a trial.
    """
    n = A1.shape[0]
    return (A1.T @ B2 + A2.T @ B1) / (2.0 * n)


def centre(*arrays: np.ndarray) -> list[np.ndarray]:
    return [a - a.mean(axis=0) for a in arrays]


def with_intervals(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    X: np.ndarray,
    Y: np.ndarray,
    *,
    n_bootstraps: int,
    n_permutations: int,
    confidence_level: float,
    random_state: Any,
    larger_is_similar: bool = True,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    reference: Callable[[], float] | None = None,
) -> float | ResamplingResult:
    """The statistic as a float, or with its intervals when any resampling is asked for.

    For a distance (``larger_is_similar=False``) the permutation test counts
    null values *at most* the observed one, and the interval is that of the
    distance itself. ``bounds`` is the statistic's range and ``reference()``
    (called only when bootstrapping) its value for the empirical distribution
    (see :func:`~geomkit.measures._resampling.resample_similarity`).
    """
    if not n_bootstraps and not n_permutations:
        return float(statistic(X, Y))
    ref = reference() if reference is not None and n_bootstraps else None
    if larger_is_similar:
        return resample_similarity(
            statistic, X, Y, n_bootstraps=n_bootstraps, n_permutations=n_permutations,
            confidence_level=confidence_level, random_state=random_state, bounds=bounds,
            reference=ref,
        )
    r = resample_similarity(
        lambda a, b: -statistic(a, b), X, Y, n_bootstraps=n_bootstraps,
        n_permutations=n_permutations, confidence_level=confidence_level,
        random_state=random_state, bounds=(-bounds[1], -bounds[0]),
        reference=None if ref is None else -ref,
    )
    return ResamplingResult(-r.value, (-r.ci[1], -r.ci[0]), r.p_value, -r.bootstrap, -r.null,
                            r.confidence_level, -r.value_corrected,
                            (-r.ci_percentile[1], -r.ci_percentile[0]))
