"""Generalized shape metrics between two representations (Williams et al. 2021).

Two representations of the same stimuli, ``X`` (n_stimuli, p_x) and ``Y``
(n_stimuli, p_y), are compared after removing what a metric should not see:
translation (columns centred), isotropic scale, rotations/reflections and,
for ``alpha < 1``, part of the linear mixing. With the partial whitening

.. math::

   \\phi_\\alpha(X) = X\\,\\big((1-\\alpha)\\,\\tilde C_X + \\alpha I\\big)^{-1/2},
   \\qquad \\tilde C_X = C_X / \\bar\\lambda_X,

(:math:`C_X = X^\\top X / n` of the centred data, :math:`\\bar\\lambda_X` its
mean eigenvalue, so that both terms have the same scale and the metric is
invariant to isotropic scaling), the **angular shape distance** is

.. math::

   \\theta_\\alpha(X, Y) = \\arccos \\max_{Q \\in O(p)}
   \\frac{\\langle \\phi_\\alpha(X), \\phi_\\alpha(Y) Q\\rangle_F}
   {\\|\\phi_\\alpha(X)\\|_F\\,\\|\\phi_\\alpha(Y)\\|_F}
   = \\arccos \\frac{\\|\\phi_\\alpha(X)^\\top \\phi_\\alpha(Y)\\|_*}
   {\\|\\phi_\\alpha(X)\\|_F\\,\\|\\phi_\\alpha(Y)\\|_F}.

``alpha=1`` is the Procrustes (angular) distance; ``alpha=0`` whitens fully and
gives ``arccos`` of the mean canonical correlation (the metric version of
CCA); in between is the ridge-regularised CCA of Vinod (1976). Every
``alpha`` gives a proper metric (symmetric, triangle inequality), because
:math:`\\phi_\\alpha` is a fixed map of each representation. The
``"euclidean"`` form is the chord ``sqrt(2 - 2 cos theta)`` between the unit-norm
aligned representations, also a metric. (netrep, the reference
implementation, writes the whitening as ``alpha I + (1 - alpha) C^{-1/2}``;
both interpolate between the same end points.)

Unequal unit counts: the smaller side is zero-padded after its whitening
(``dim_mismatch="pad"``, as the paper does), or the larger side is reduced to
its leading principal components (``"pca"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._params import Options, Real, validate_params
from ._repeats import (
    NOISE_CORRECTIONS,
    centre,
    check_pair,
    check_split_possible,
    halves,
    trial_mean,
    with_intervals,
)
from ._resampling import ResamplingResult
from ._similarity_estimator import RESAMPLING_CONSTRAINTS

__all__ = ["ShapeMetric", "shape_distance"]

_CONSTRAINTS = {
    "alpha": [Real(0, 1)],
    "metric": [Options("angular", "euclidean")],
    "dim_mismatch": [Options("pad", "pca")],
    "noise_correction": [Options(*NOISE_CORRECTIONS)],
}
_RESAMPLING = RESAMPLING_CONSTRAINTS


def _side_map(C: np.ndarray, alpha: float, k: int, dim_mismatch: str) -> np.ndarray:
    """(p, k) map: optional PCA to k dims, partial whitening, zero padding to k columns."""
    lam, V = np.linalg.eigh((C + C.T) / 2.0)
    lam, V = np.clip(lam[::-1], 0.0, None), V[:, ::-1]  # descending; noise may make some < 0
    p = C.shape[0]
    if dim_mismatch == "pca" and p > k:
        lam, V = lam[:k], V[:, :k]
    scale = lam.mean()
    if not scale > 0:
        raise ValueError(
            "a representation's (repeat-split) signal covariance has no positive eigenvalue: "
            "there is no reliable signal to compare."
        )
    d = (1.0 - alpha) * lam / scale + alpha
    # Directions the data does not span (alpha = 0) carry no data: leave them at zero.
    keep = d > 1e-12 * d.max()
    inv_sqrt = np.where(keep, 1.0 / np.sqrt(np.where(keep, d, 1.0)), 0.0)
    # Symmetric whitening when all dims are kept (alpha = 1: a multiple of the identity);
    # after PCA, whitened principal-component coordinates.
    W = (V * inv_sqrt) @ V.T if V.shape[1] == p else V * inv_sqrt
    W = W / np.sqrt(scale)
    if W.shape[1] < k:
        W = np.hstack([W, np.zeros((W.shape[0], k - W.shape[1]))])
    return W


def _rotation(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Orthogonal R maximising <A, B R> (orthogonal Procrustes, Schoenemann 1966)."""
    U, _, Vt = np.linalg.svd(B.T @ A, full_matrices=False)
    return U @ Vt


def _chord(Xh, Yh, Wx, Wy, R, split: bool) -> float:
    """Chord between the unit-norm aligned representations, ``sqrt(2 - 2 cos theta)``.

    With ``split``, the cosine comes from cross-half products, so that trial noise drops out.
    """
    (X1, X2), (Y1, Y2) = Xh, Yh
    if not split:
        A, B = (X1 + X2) / 2 @ Wx, (Y1 + Y2) / 2 @ Wy @ R
        A, B = A / np.linalg.norm(A), B / np.linalg.norm(B)
        # The chord, not 1 - cos, keeps full precision for nearly equal shapes.
        return float(np.linalg.norm(A - B))
    A1, A2, B1, B2 = X1 @ Wx, X2 @ Wx, Y1 @ Wy @ R, Y2 @ Wy @ R
    num = (np.sum(A1 * B2) + np.sum(A2 * B1)) / 2.0
    return _cos_to_chord(_ratio(num, np.sum(A1 * A2), np.sum(B1 * B2)))


def _cos_to_chord(cos: float) -> float:
    return float(np.sqrt(max(2.0 - 2.0 * np.clip(cos, -1.0, 1.0), 0.0)))


def _ratio(num: float, den_x: float, den_y: float) -> float:
    if den_x <= 0 or den_y <= 0:
        side = "X" if den_x <= 0 else "Y"
        raise ValueError(
            f"the repeat-split estimate of {side}'s signal variance is not positive "
            f"({min(den_x, den_y):.3g}): the repeats of {side} are not reliable enough for "
            "noise_correction='split'."
        )
    return float(num / np.sqrt(den_x * den_y))


def _to_distance(chord: float, metric: str) -> float:
    if metric == "angular":
        return float(2.0 * np.arcsin(min(chord / 2.0, 1.0)))
    return float(chord)


class _Fit:
    """Means, maps and rotation fitted on one set of stimuli."""

    def __init__(self, X, Y, alpha, dim_mismatch, split):
        self.split = split
        Xh, Yh = halves(X), halves(Y)
        self.mean_x = trial_mean(X).mean(axis=0)
        self.mean_y = trial_mean(Y).mean(axis=0)
        X1, X2 = centre(*Xh)
        Y1, Y2 = centre(*Yh)
        n = X1.shape[0]
        # Signal covariances: cross-half products are free of trial noise (split); else plain.
        if split:
            Cx, Cy = (X1.T @ X2 + X2.T @ X1) / (2 * n), (Y1.T @ Y2 + Y2.T @ Y1) / (2 * n)
        else:
            Xm, Ym = (X1 + X2) / 2, (Y1 + Y2) / 2
            Cx, Cy = Xm.T @ Xm / n, Ym.T @ Ym / n
        p_x, p_y = Cx.shape[0], Cy.shape[0]
        k = max(p_x, p_y) if dim_mismatch == "pad" else min(p_x, p_y)
        self.Wx = _side_map(Cx, alpha, k, dim_mismatch)
        self.Wy = _side_map(Cy, alpha, k, dim_mismatch)
        self.R = _rotation((X1 + X2) / 2 @ self.Wx, (Y1 + Y2) / 2 @ self.Wy)
        if split:
            # Rotation fitted on one half, products taken on the other: the noise that the
            # alignment fits does not enter the numerator.
            nums = [np.sum(Xb @ self.Wx * (Yb @ self.Wy @ _rotation(Xa @ self.Wx, Ya @ self.Wy)))
                    for (Xa, Ya, Xb, Yb) in ((X1, Y1, X2, Y2), (X2, Y2, X1, Y1))]
            self.chord = _cos_to_chord(_ratio(
                np.mean(nums), np.sum((X1 @ self.Wx) * (X2 @ self.Wx)),
                np.sum((Y1 @ self.Wy) * (Y2 @ self.Wy))))
        else:
            self.chord = _chord((X1, X2), (Y1, Y2), self.Wx, self.Wy, self.R, False)

    def test_chord(self, X, Y) -> float:
        Xh = [h - self.mean_x for h in halves(X)]
        Yh = [h - self.mean_y for h in halves(Y)]
        return _chord(Xh, Yh, self.Wx, self.Wy, self.R, self.split)


def shape_distance(
    X: Any,
    Y: Any,
    *,
    alpha: float = 1.0,
    metric: str = "angular",
    dim_mismatch: str = "pad",
    noise_correction: str = "none",
    n_bootstraps: int = 0,
    n_permutations: int = 0,
    confidence_level: float = 0.95,
    random_state: Any = None,
) -> float | ResamplingResult:
    """Generalized shape distance between two representations of the same stimuli.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
        First representation (numpy, torch or xarray); repeats are averaged
        unless ``noise_correction="split"``.
    Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
        Second representation, same stimuli in the same order.
    alpha : float, default=1.0
        Regularisation in [0, 1]: 1 is the Procrustes (rotation-only) distance,
        0 the CCA distance (any invertible linear map), in between partial whitening.
    metric : {"angular", "euclidean"}, default="angular"
        ``"angular"``: the angle theta in [0, pi/2]; ``"euclidean"``: the chord
        ``sqrt(2 - 2 cos theta)`` in [0, sqrt 2] between the unit-norm aligned data.
    dim_mismatch : {"pad", "pca"}, default="pad"
        Unequal unit counts: zero-pad the smaller side, or keep the larger
        side's leading principal components.
    noise_correction : {"none", "split"}, default="none"
        ``"split"`` (needs repeats on one side at least): covariances and
        norms from products of the even-repeat and odd-repeat means, and the
        rotation fitted on one half and evaluated on the other, so that trial
        noise (independent across repeats and between X and Y) neither inflates
        the norms nor is fitted by the alignment.
    n_bootstraps : int, default=0
        Paired bootstrap resamples of the stimuli; 0 skips.
    n_permutations : int, default=0
        Shuffles of ``Y``'s stimulus order for a one-sided p-value (a
        distance *smaller* than chance); 0 skips.
    confidence_level : float, default=0.95
        Coverage of the basic bootstrap interval (see ``ResamplingResult``).
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the resampling.

    Returns
    -------
    float or ResamplingResult
        The distance; with resampling, a
        :class:`~geomkit.measures._resampling.ResamplingResult` carrying the
        value, interval and p-value.

    See Also
    --------
    ShapeMetric : The estimator, with cross-validated fit / score.

    References
    ----------
    Williams, Kunz, Kornblith & Linderman (2021). Generalized shape metrics on
    neural representations. NeurIPS 34.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import shape_distance
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    >>> round(shape_distance(X, 3 * X @ Q + 1), 8)
    0.0
    >>> round(shape_distance(X, rng.normal(size=(100, 5))), 2)
    1.39
    """
    params = dict(alpha=alpha, metric=metric, dim_mismatch=dim_mismatch,
                  noise_correction=noise_correction)
    validate_params(params, _CONSTRAINTS, caller="shape_distance")
    validate_params(dict(n_bootstraps=n_bootstraps, n_permutations=n_permutations,
                         confidence_level=confidence_level, random_state=random_state),
                    _RESAMPLING, caller="shape_distance")
    X, Y = check_pair(X, Y)
    split = noise_correction == "split"
    if split:
        check_split_possible(X, Y, "shape_distance")

    def statistic(A, B):
        return _to_distance(_Fit(A, B, alpha, dim_mismatch, split).chord, metric)

    return with_intervals(statistic, X, Y, n_bootstraps=n_bootstraps,
                          n_permutations=n_permutations, confidence_level=confidence_level,
                          random_state=random_state, larger_is_similar=False)


class ShapeMetric(BaseEstimator):
    """Generalized shape metric with an alignment fitted on training stimuli.

    ``fit(X, Y)`` learns the centring, the partial whitening of each side and
    the rotation aligning ``Y`` to ``X``; ``distance(X, Y)`` and ``score(X, Y)``
    apply them to (held-out) stimuli, so the alignment cannot fit their noise.
    ``cross_val_score(ShapeMetric(), X, Y)`` works, ``Y`` taking the place of
    scikit-learn's ``y``. See :func:`shape_distance` for the formulas.

    Parameters
    ----------
    alpha : float, default=1.0
        1: Procrustes; 0: CCA; in between: partial whitening.
    metric : {"angular", "euclidean"}, default="angular"
        The form reported by :meth:`distance` and ``distance_``.
    dim_mismatch : {"pad", "pca"}, default="pad"
        How unequal unit counts are reconciled.
    noise_correction : {"none", "split"}, default="none"
        Repeat-split products (see :func:`shape_distance`), in ``fit`` and on test data.

    Attributes
    ----------
    mean_x_, mean_y_ : ndarray of shape (n_units_x,) and (n_units_y,)
        Training means removed from each side.
    map_x_, map_y_ : ndarray of shape (n_units_x, k) and (n_units_y, k)
        Partial whitening (and padding / PCA) of each side into the common space.
    rotation_ : ndarray of shape (k, k)
        Orthogonal map applied to the mapped ``Y``.
    distance_ : float
        The distance on the training stimuli (the value :func:`shape_distance` gives).

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import ShapeMetric
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> Y = X @ np.linalg.qr(rng.normal(size=(4, 4)))[0] + 0.1 * rng.normal(size=(200, 4))
    >>> m = ShapeMetric().fit(X[:100], Y[:100])
    >>> round(m.distance(X[100:], Y[100:]), 2), round(m.score(X[100:], Y[100:]), 3)
    (0.1, 0.995)
    """

    _parameter_constraints = _CONSTRAINTS

    def __init__(self, alpha: float = 1.0, metric: str = "angular", dim_mismatch: str = "pad",
                 noise_correction: str = "none") -> None:
        self.alpha = alpha
        self.metric = metric
        self.dim_mismatch = dim_mismatch
        self.noise_correction = noise_correction

    def fit(self, X: Any, Y: Any) -> "ShapeMetric":
        """Fit centring, whitening and rotation on these stimuli.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
            First representation.
        Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
            Second representation of the same stimuli.

        Returns
        -------
        self : ShapeMetric
            The fitted estimator.
        """
        validate_params(self.get_params(), self._parameter_constraints, caller="ShapeMetric")
        X, Y = check_pair(X, Y)
        split = self.noise_correction == "split"
        if split:
            check_split_possible(X, Y, "ShapeMetric")
        fit = _Fit(X, Y, self.alpha, self.dim_mismatch, split)
        self._fit = fit
        self.mean_x_, self.mean_y_ = fit.mean_x, fit.mean_y
        self.map_x_, self.map_y_, self.rotation_ = fit.Wx, fit.Wy, fit.R
        self.n_features_in_ = X.shape[-1]
        self.distance_ = _to_distance(fit.chord, self.metric)
        return self

    def _test_chord(self, X: Any, Y: Any) -> float:
        check_is_fitted(self, "rotation_")
        X, Y = check_pair(X, Y)
        for name, A, expected in (("X", X, self.mean_x_.size), ("Y", Y, self.mean_y_.size)):
            if A.shape[-1] != expected:
                raise ValueError(
                    f"{name} has {A.shape[-1]} units but the metric was fitted on {expected}."
                )
        return self._fit.test_chord(X, Y)

    def transform(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Both representations (trial means) in the common aligned space.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
            First representation.
        Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
            Second representation.

        Returns
        -------
        X_aligned, Y_aligned : ndarray of shape (n_stimuli, k)
            ``(X - mean_x_) @ map_x_`` and ``(Y - mean_y_) @ map_y_ @ rotation_``.
        """
        check_is_fitted(self, "rotation_")
        X, Y = check_pair(X, Y)
        return ((trial_mean(X) - self.mean_x_) @ self.map_x_,
                (trial_mean(Y) - self.mean_y_) @ self.map_y_ @ self.rotation_)

    def distance(self, X: Any, Y: Any) -> float:
        """The shape distance on these stimuli, with the fitted alignment.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
            First representation (e.g. held-out stimuli).
        Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
            Second representation.

        Returns
        -------
        float
            Angular distance (radians) or chord, per the ``metric`` parameter.
        """
        return _to_distance(self._test_chord(X, Y), self.metric)

    def score(self, X: Any, Y: Any) -> float:
        """Cosine of the aligned representations on these stimuli (higher is more similar).

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
            First representation (e.g. held-out stimuli).
        Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
            Second representation.

        Returns
        -------
        float
            ``cos(theta)`` in [-1, 1] of the held-out angular distance theta
            (1: identical shape).
        """
        return float(1.0 - self._test_chord(X, Y) ** 2 / 2.0)
