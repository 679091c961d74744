"""Input checks shared by the similarities of two paired representations (CKA, RSA).

A representation is ``(n_stimuli, n_units)`` or, with repeated presentations,
``(n_repeats, n_stimuli, n_units)`` (a list of equally shaped
``(n_stimuli, n_units)`` arrays is accepted as repeats). The stimulus axis is
the second-to-last one, as :mod:`geomkit.measures._resampling` expects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_float_array

__all__ = ["as_representation", "check_paired", "repeat_halves"]

MIN_STIMULI = 3


def as_representation(X: Any, name: str) -> np.ndarray:
    """``X`` as a float64 array of shape (n_stimuli, n_units) or (n_repeats, n_stimuli, n_units)."""
    if isinstance(X, (list, tuple)) and X and all(np.ndim(x) == 2 for x in X):
        shapes = [tuple(np.shape(x)) for x in X]
        if len(set(shapes)) > 1:
            raise ValueError(
                f"{name}: the repeats have unequal shapes {shapes}; every repeat must be an "
                "(n_stimuli, n_units) array of the same shape."
            )
        X = np.stack([np.asarray(x, dtype=np.float64) for x in X])
    try:
        arr = as_float_array(X, name, ndim=(2, 3), min_samples=MIN_STIMULI)
    except ValueError as err:
        if "inhomogeneous" in str(err):  # a ragged nested list of repeats
            raise ValueError(
                f"{name}: the repeats have unequal shapes; every repeat must be an "
                "(n_stimuli, n_units) array of the same shape."
            ) from None
        raise
    return arr


def check_paired(X: Any, Y: Any, names: tuple[str, str] = ("X", "Y")) -> tuple[np.ndarray, np.ndarray]:
    """Both representations, checked to share their stimuli."""
    X = as_representation(X, names[0])
    Y = as_representation(Y, names[1])
    if X.shape[-2] != Y.shape[-2]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of stimuli (second-to-last "
            f"axis); got {X.shape[-2]} (shape {X.shape}) and {Y.shape[-2]} (shape {Y.shape})."
        )
    for name, arr in zip(names, (X, Y)):
        if arr.ndim == 3 and arr.shape[0] < 2:
            raise ValueError(
                f"{name} has {arr.shape[0]} repeat (shape {arr.shape}); a repeat axis needs at "
                "least 2 repeats for the noise correction. Pass a 2-D (n_stimuli, n_units) "
                "array instead."
            )
    return X, Y


def repeat_halves(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means over the even and the odd repeats: two independent noisy copies of the signal."""
    return X[0::2].mean(axis=0), X[1::2].mean(axis=0)
