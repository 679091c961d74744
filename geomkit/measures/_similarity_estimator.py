"""The estimator shape shared by every similarity of two paired representations (CKA, RSA).

A subclass declares its parameters (``__init__`` stores them), its
``_parameter_constraints`` (the resampling ones are :data:`RESAMPLING_CONSTRAINTS`)
and ``_statistic(X, Y) -> float`` on checked float64 arrays; ``fit`` and
``score`` are here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._params import RANDOM_STATE, Integer, Real, validate_params
from ._repeats import check_pair
from ._resampling import resample_similarity

__all__ = ["RESAMPLING_CONSTRAINTS"]

RESAMPLING_CONSTRAINTS = {
    "n_bootstraps": [Integer(0, None)],
    "n_permutations": [Integer(0, None)],
    "confidence_level": [Real(0, 1, closed="neither")],
    "random_state": [RANDOM_STATE],
}


class _PairedSimilarity(BaseEstimator):
    """fit / score of a similarity with a paired-bootstrap interval and a permutation p-value."""

    _parameter_constraints: dict = RESAMPLING_CONSTRAINTS

    def _statistic(self, X: np.ndarray, Y: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_extra(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Further fitted attributes of a subclass (none by default)."""

    def _bounds(self) -> tuple[float, float]:
        """The statistic's range; the bootstrap interval is clipped to it (none by default)."""
        return (-np.inf, np.inf)

    def _reference(self, X: np.ndarray, Y: np.ndarray) -> float | None:
        """The statistic of the empirical distribution where it is not ``_statistic`` (None)."""
        return None

    def fit(self, X: Any, Y: Any):
        """Compute the similarity of ``X`` and ``Y``, its interval and its p-value.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
            First representation.
        Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
            Second representation of the same stimuli.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        validate_params(self.get_params(), self._parameter_constraints, caller=type(self).__name__)
        X, Y = check_pair(X, Y)
        self._fit_extra(X, Y)
        result = resample_similarity(
            self._statistic, X, Y, n_bootstraps=self.n_bootstraps,
            n_permutations=self.n_permutations, confidence_level=self.confidence_level,
            random_state=self.random_state, bounds=self._bounds(),
            reference=self._reference(X, Y) if self.n_bootstraps else None,
        )
        self.value_ = result.value
        self.value_corrected_ = result.value_corrected
        self.ci_ = result.ci
        self.ci_percentile_ = result.ci_percentile
        self.p_value_ = result.p_value
        self.bootstrap_ = result.bootstrap
        self.null_ = result.null
        self.n_stimuli_ = X.shape[-2]
        return self

    def score(self, X: Any, Y: Any) -> float:
        """The similarity of ``X`` and ``Y`` with the fitted settings (higher: more similar).

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
            First representation.
        Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
            Second representation of the same stimuli.

        Returns
        -------
        float
            The similarity (no resampling).
        """
        check_is_fitted(self, "value_")
        X, Y = check_pair(X, Y)
        return self._statistic(X, Y)
