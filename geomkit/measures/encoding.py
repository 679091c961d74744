"""Encoding models: predict recorded responses from a representation, per neuron.

A linear map from a layer ``X`` (n_stimuli, n_features) to the trial-mean
responses ``Y`` (n_stimuli, n_units) is fitted by ridge regression
(``RidgeCV`` over ``alphas``, on standardised features) or partial least
squares, in K-fold cross-validation over stimuli. Each neuron's
**predictivity** is the Pearson correlation between its held-out
predictions and its trial-mean responses.

Trial noise caps what any model can reach. The **noise ceiling** of a
neuron is the Spearman-Brown corrected split-half reliability: the repeats
are split into two halves at random, the correlation ``r_h`` of the two
half means is stepped up to the full number of repeats,
``rho = 2 r_h / (1 + r_h)``, and averaged over ``n_splits`` random splits.
Under additive noise independent across repeats, ``rho`` estimates the
correlation of two independent ``n_repeats``-trial means, ``v / (v + sigma^2 / R)``
(``v`` the signal variance). Following Brain-Score (Schrimpf et al. 2018),
the **normalised predictivity** is ``r / rho`` and the model's score is its
median over neurons. (``r / sqrt(rho)`` would instead estimate the
correlation with the noise-free signal — Spearman's correction for
attenuation; it is reported as ``corrected``.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, clone
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from .._params import RANDOM_STATE, InstanceOf, Integer, Options, check_random_state, validate_params
from ._repeats import check_pair, check_representation, trial_mean, with_intervals
from ._resampling import ResamplingResult

__all__ = ["EncodingModel", "encoding_similarity", "noise_ceiling", "pearson_per_unit"]


def pearson_per_unit(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Column-wise Pearson correlation of two (n_stimuli, n_units) arrays (NaN for a constant column).

    Parameters
    ----------
    A, B : ndarray of shape (n_stimuli, n_units)
        Paired columns.

    Returns
    -------
    ndarray of shape (n_units,)
        The correlation of each column of ``A`` with the same column of ``B``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1., 2.], [2., 1.], [3., 3.]])
    >>> pearson_per_unit(A, 2 * A + 1)
    array([1., 1.])
    """
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    den = np.sqrt((A * A).sum(axis=0) * (B * B).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (A * B).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)


def noise_ceiling(Y: Any, *, n_splits: int = 10, random_state: Any = None) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability of every unit.

    Parameters
    ----------
    Y : array-like of shape (n_repeats, n_stimuli, n_units)
        Repeated responses, ``n_repeats >= 2``.
    n_splits : int, default=10
        Random half splits of the repeats averaged (with 2 repeats there is one split).
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the splits.

    Returns
    -------
    ndarray of shape (n_units,)
        ``rho = 2 r_h / (1 + r_h)`` averaged over splits, ``r_h`` the
        correlation over stimuli of the two half means. It estimates the
        reliability of the ``n_repeats``-trial mean, ``v / (v + sigma^2 / n_repeats)``.

    Examples
    --------
    >>> from geomkit.datasets import make_recording
    >>> from geomkit.measures import noise_ceiling
    >>> rec = make_recording(n_stimuli=2000, n_units=5, n_repeats=4, noise=1.0, random_state=0)
    >>> est = noise_ceiling(rec, random_state=0)
    >>> bool(abs(est - rec["true_ceiling"].values).max() < 0.05)
    True
    """
    validate_params({"n_splits": n_splits, "random_state": random_state},
                    {"n_splits": [Integer(1, None)], "random_state": [RANDOM_STATE]},
                    caller="noise_ceiling")
    Y = check_representation(Y, "Y")
    if Y.ndim != 3 or Y.shape[0] < 2:
        raise ValueError(
            f"Y must hold repeats, shape (n_repeats >= 2, n_stimuli, n_units), for a noise "
            f"ceiling; got shape {Y.shape}."
        )
    rng = check_random_state(random_state)
    n_rep = Y.shape[0]
    n_splits = 1 if n_rep == 2 else n_splits
    rhos = []
    for _ in range(n_splits):
        order = rng.permutation(n_rep)
        a, b = order[: n_rep // 2], order[n_rep // 2:]
        r = pearson_per_unit(Y[a].mean(axis=0), Y[b].mean(axis=0))
        rhos.append(2 * r / (1 + r))
    return np.mean(rhos, axis=0)


class EncodingModel(BaseEstimator):
    """Cross-validated linear encoding model from a representation to recorded neurons.

    Parameters
    ----------
    model : {"ridge", "pls"}, default="ridge"
        Ridge regression with the penalty chosen by ``RidgeCV`` over ``alphas``
        (features standardised), or PLS regression with ``n_components``.
    alphas : tuple of float, default=(1e-3, 1e-2, ..., 1e5)
        Ridge penalties tried (efficient leave-one-out inside each training fold).
    n_components : int, default=25
        PLS components (capped by the feature count).
    cv : int, default=5
        Folds over stimuli for the held-out predictions.
    n_splits : int, default=10
        Random repeat half splits for the noise ceiling.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the fold assignment and of the splits.

    Attributes
    ----------
    results_ : xarray.Dataset
        Per-unit variables over ``unit``: ``predictivity`` (held-out Pearson r),
        ``ceiling`` (noise ceiling; NaN without repeats), ``normalized``
        (``predictivity / ceiling``), ``corrected`` (``predictivity / sqrt(ceiling)``).
    score_ : float
        Median of ``normalized`` over units (of ``predictivity`` without repeats).
    predictions_ : ndarray of shape (n_stimuli, n_units)
        Held-out predictions of the trial-mean responses.
    estimator_ : sklearn estimator
        The model refitted on all stimuli (used by :meth:`predict`).

    Examples
    --------
    >>> from geomkit.datasets import make_recording
    >>> from geomkit.measures import EncodingModel
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(600, 10))
    >>> rec = make_recording(X, n_units=8, n_repeats=4, noise=1.0, random_state=1)
    >>> m = EncodingModel(random_state=0).fit(X, rec)
    >>> truth = rec["true_predictivity"] / rec["true_ceiling"]
    >>> bool(abs(m.score_ - float(truth.median())) < 0.05)
    True
    """

    _parameter_constraints = {
        "model": [Options("ridge", "pls")],
        "alphas": [InstanceOf(tuple, list, np.ndarray, description="a sequence of positive floats")],
        "n_components": [Integer(1, None)],
        "cv": [Integer(2, None)],
        "n_splits": [Integer(1, None)],
        "random_state": [RANDOM_STATE],
    }

    def __init__(self, model: str = "ridge", alphas=tuple(10.0 ** np.arange(-3, 6)),
                 n_components: int = 25, cv: int = 5, n_splits: int = 10,
                 random_state: Any = None) -> None:
        self.model = model
        self.alphas = alphas
        self.n_components = n_components
        self.cv = cv
        self.n_splits = n_splits
        self.random_state = random_state

    def _regressor(self, n_features: int):
        if self.model == "pls":
            return PLSRegression(n_components=min(self.n_components, n_features), scale=True)
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.asarray(self.alphas, float)))

    def fit(self, X: Any, Y: Any) -> "EncodingModel":
        """Cross-validate the predictions, compute the ceiling, refit on all stimuli.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_features) or (n_repeats, n_stimuli, n_features)
            The representation (repeats are averaged).
        Y : array-like of shape (n_repeats, n_stimuli, n_units) or (n_stimuli, n_units)
            Recorded responses; with repeats the noise ceiling is computed.

        Returns
        -------
        self : EncodingModel
            The fitted model.
        """
        validate_params(self.get_params(), self._parameter_constraints, caller="EncodingModel")
        alphas = np.asarray(self.alphas, dtype=float)
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(alphas > 0):
            raise ValueError(f"EncodingModel: alphas must be positive floats; got {self.alphas!r}.")
        X, Y = check_pair(X, Y, min_stimuli=max(3, self.cv))
        Xm, Ym = trial_mean(X), trial_mean(Y)
        fold_seed, self._ceiling_seed = (int(s) for s in check_random_state(
            self.random_state).integers(2**31 - 1, size=2))
        folds = KFold(self.cv, shuffle=True, random_state=fold_seed)
        pred = np.empty_like(Ym)
        base = self._regressor(Xm.shape[1])
        for train, test in folds.split(Xm):
            pred[test] = clone(base).fit(Xm[train], Ym[train]).predict(Xm[test])
        self.predictions_ = pred
        r = pearson_per_unit(pred, Ym)
        if Y.ndim == 3 and Y.shape[0] >= 2:
            ceiling = noise_ceiling(Y, n_splits=self.n_splits, random_state=self._ceiling_seed)
        else:
            ceiling = np.full(Ym.shape[1], np.nan)
        self.results_ = _results(r, ceiling, Y)
        normalized = self.results_["normalized"].values
        self.score_ = float(np.nanmedian(normalized if np.isfinite(normalized).any() else r))
        self.estimator_ = clone(base).fit(Xm, Ym)
        self.n_features_in_ = Xm.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted trial-mean responses of the model refitted on all stimuli.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_features) or (n_repeats, n_stimuli, n_features)
            The representation of new stimuli.

        Returns
        -------
        ndarray of shape (n_stimuli, n_units)
            The predictions.
        """
        check_is_fitted(self, "estimator_")
        Xm = trial_mean(check_representation(X, "X", min_stimuli=1))
        if Xm.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xm.shape[1]} features but the model was fitted on {self.n_features_in_}."
            )
        return np.asarray(self.estimator_.predict(Xm)).reshape(Xm.shape[0], -1)

    def score(self, X: Any, Y: Any) -> float:
        """Median normalised predictivity on (held-out) stimuli.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_features)
            The representation of the test stimuli.
        Y : array-like of shape (n_repeats, n_stimuli, n_units) or (n_stimuli, n_units)
            Their recorded responses.

        Returns
        -------
        float
            Median over units of ``r / ceiling``, ``r`` the Pearson correlation
            between :meth:`predict` and the trial means, the ceiling computed
            from ``Y``'s repeats; the median ``r`` when ``Y`` has no repeats.
        """
        X, Y = check_pair(X, Y)
        return _median_normalized(self.predict(X), Y, self.n_splits, self.random_state)


def _results(r: np.ndarray, ceiling: np.ndarray, Y: np.ndarray) -> xr.Dataset:
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = r / ceiling
        corrected = r / np.sqrt(np.where(ceiling > 0, ceiling, np.nan))
    units = np.arange(Y.shape[-1])
    return xr.Dataset(
        {"predictivity": ("unit", r), "ceiling": ("unit", ceiling),
         "normalized": ("unit", normalized), "corrected": ("unit", corrected)},
        coords={"unit": units},
        attrs={"ceiling_method": "Spearman-Brown corrected split-half reliability"},
    )


def _median_normalized(P: np.ndarray, Y: np.ndarray, n_splits: int, random_state: Any) -> float:
    r = pearson_per_unit(P, trial_mean(Y))
    if Y.ndim == 3 and Y.shape[0] >= 2:
        r = r / noise_ceiling(Y, n_splits=n_splits, random_state=random_state)
    return float(np.nanmedian(r))


def encoding_similarity(
    X: Any,
    Y: Any,
    *,
    model: str = "ridge",
    cv: int = 5,
    n_bootstraps: int = 0,
    n_permutations: int = 0,
    confidence_level: float = 0.95,
    random_state: Any = None,
) -> float | ResamplingResult:
    """Median normalised neural predictivity of ``X`` for ``Y``, with optional intervals.

    The models are fitted once (:class:`EncodingModel`); the bootstrap and the
    permutation test then resample the stimuli of the held-out predictions
    and of the recorded repeats (the ceiling is recomputed on every resample),
    so the interval is conditional on the fitted maps.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_features) or (n_repeats, n_stimuli, n_features)
        The representation.
    Y : array-like of shape (n_repeats, n_stimuli, n_units) or (n_stimuli, n_units)
        Recorded responses.
    model : {"ridge", "pls"}, default="ridge"
        The regression.
    cv : int, default=5
        Folds over stimuli.
    n_bootstraps : int, default=0
        Paired bootstrap resamples of the stimuli; 0 skips.
    n_permutations : int, default=0
        Shuffles of the recording's stimulus order against the predictions; 0 skips.
    confidence_level : float, default=0.95
        Coverage of the basic bootstrap interval (see ``ResamplingResult``).
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the folds, ceiling splits and resampling.

    Returns
    -------
    float or ResamplingResult
        Median over units of predictivity / noise ceiling (Brain-Score's
        score); with resampling, a
        :class:`~geomkit.measures._resampling.ResamplingResult`.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.datasets import make_recording
    >>> from geomkit.measures import encoding_similarity
    >>> X = np.random.default_rng(0).normal(size=(400, 6))
    >>> rec = make_recording(X, n_units=6, n_repeats=4, noise=0.5, random_state=0)
    >>> r = encoding_similarity(X, rec, n_bootstraps=50, n_permutations=19, random_state=0)
    >>> bool(r.ci[0] <= r.value_corrected <= r.ci[1]), r.p_value
    (True, 0.05)
    """
    m = EncodingModel(model=model, cv=cv, random_state=random_state).fit(X, Y)
    Y = check_representation(Y, "Y")
    # the fit's ceiling splits, so that the value equals m.score_
    return with_intervals(
        lambda P, Yr: _median_normalized(P, Yr, m.n_splits, m._ceiling_seed), m.predictions_, Y,
        n_bootstraps=n_bootstraps, n_permutations=n_permutations,
        confidence_level=confidence_level, random_state=random_state,
    )
