"""Canonical correlation similarities: mean CCA, SVCCA and PWCCA.

For column-centred ``X`` (n_stimuli, p_x) and ``Y`` (n_stimuli, p_y) with
covariances :math:`C_{xx}, C_{yy}` and cross-covariance :math:`C_{xy}`, the
canonical correlations :math:`\\rho_1 \\ge \\rho_2 \\ge \\dots` are the singular
values of :math:`C_{xx}^{-1/2} C_{xy} C_{yy}^{-1/2}` (directions a
representation does not span are dropped, so ``k = min(rank X, rank Y)``
correlations remain).

* ``"mean"``: :math:`\\bar\\rho = \\frac1k \\sum_i \\rho_i`.
* ``"svcca"`` (Raghu et al. 2017): each side is first reduced to the leading
  principal components that keep ``variance_kept`` (99 %) of its variance,
  then the mean canonical correlation of the reduced data.
* ``"pwcca"`` (Morcos et al. 2018): a weighted mean
  :math:`\\sum_i w_i \\rho_i` with :math:`w_i \\propto \\sum_j |\\langle h_i,
  x_j\\rangle|`, the projection of ``X``'s units :math:`x_j` on its canonical
  variates :math:`h_i` — directions that carry much of ``X`` count more. The
  weights come from ``X``: PWCCA is not symmetric.

With as many units as stimuli every canonical correlation is 1, whatever the
data: CCA needs ``n_stimuli`` well above ``n_units``; SVCCA's reduction helps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._params import Options, Real, validate_params
from ._repeats import (
    NOISE_CORRECTIONS,
    centre,
    check_pair,
    check_split_possible,
    cross_covariance,
    halves,
    with_intervals,
)
from ._resampling import ResamplingResult
from ._similarity_estimator import RESAMPLING_CONSTRAINTS

__all__ = ["cca_similarity", "canonical_correlations"]

_CONSTRAINTS = {
    "method": [Options("mean", "svcca", "pwcca")],
    "variance_kept": [Real(0, 1, closed="right")],
    "noise_correction": [Options(*NOISE_CORRECTIONS)],
    **RESAMPLING_CONSTRAINTS,
}
_RTOL = 1e-10  # eigenvalues below this fraction of the largest are directions the data does not span


def _covariances(X: np.ndarray, Y: np.ndarray, split: bool):
    X1, X2 = centre(*halves(X))
    Y1, Y2 = centre(*halves(Y))
    if not split:
        Xm, Ym = (X1 + X2) / 2, (Y1 + Y2) / 2
        n = Xm.shape[0]
        return Xm.T @ Xm / n, Ym.T @ Ym / n, Xm.T @ Ym / n
    return (cross_covariance(X1, X2, X1, X2), cross_covariance(Y1, Y2, Y1, Y2),
            cross_covariance(X1, X2, Y1, Y2))


def _principal(C: np.ndarray, variance_kept: float | None):
    """Eigenvectors (descending) spanning the data, optionally only those keeping a variance share."""
    lam, V = np.linalg.eigh((C + C.T) / 2)
    lam, V = lam[::-1], V[:, ::-1]
    keep = lam > _RTOL * max(lam[0], 0.0)
    if not keep.any():
        raise ValueError("the representation's (signal) covariance has no positive eigenvalue.")
    lam, V = lam[keep], V[:, keep]
    if variance_kept is not None and variance_kept < 1:
        k = int(np.searchsorted(np.cumsum(lam) / lam.sum(), variance_kept) + 1)
        lam, V = lam[:k], V[:, :k]
    return lam, V


def _cca(Cxx, Cyy, Cxy, variance_kept=None):
    """Canonical correlations and X's canonical weights (p_x, k)."""
    lx, Vx = _principal(Cxx, variance_kept)
    ly, Vy = _principal(Cyy, variance_kept)
    Wx, Wy = Vx / np.sqrt(lx), Vy / np.sqrt(ly)  # whitening within the spanned subspace
    U, rho, _ = np.linalg.svd(Wx.T @ Cxy @ Wy, full_matrices=False)
    return rho, Wx @ U


def canonical_correlations(
    X: Any, Y: Any, *, variance_kept: float = 1.0, noise_correction: str = "none"
) -> np.ndarray:
    """Canonical correlations between two representations, largest first.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
        First representation.
    Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
        Second representation, same stimuli.
    variance_kept : float, default=1.0
        Keep on each side the leading principal components holding this share
        of the variance before CCA (SVCCA's step; 1 keeps all).
    noise_correction : {"none", "split"}, default="none"
        ``"split"``: covariances from products of even-repeat and odd-repeat
        means (see :func:`cca_similarity`).

    Returns
    -------
    ndarray of shape (k,)
        ``k = min`` of the two (reduced) ranks.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import canonical_correlations
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 3))
    >>> Y = X @ rng.normal(size=(3, 3)) + [0, 0, 3] * rng.normal(size=(500, 3))
    >>> canonical_correlations(X, Y).round(2)
    array([1.  , 1.  , 0.33])
    """
    validate_params(dict(variance_kept=variance_kept, noise_correction=noise_correction),
                    _CONSTRAINTS, caller="canonical_correlations")
    X, Y = check_pair(X, Y)
    split = noise_correction == "split"
    if split:
        check_split_possible(X, Y, "canonical_correlations")
    return _cca(*_covariances(X, Y, split), variance_kept)[0]


def _similarity(X, Y, method, variance_kept, split) -> float:
    Cxx, Cyy, Cxy = _covariances(X, Y, split)
    if method == "svcca":
        return float(_cca(Cxx, Cyy, Cxy, variance_kept)[0].mean())
    rho, A = _cca(Cxx, Cyy, Cxy)
    if method == "mean":
        return float(rho.mean())
    # <h_i, x_j> = n a_i' C_xx e_j: the weights need no data matrix, only C_xx.
    weights = np.abs(A.T @ Cxx).sum(axis=1)
    return float(weights @ rho / weights.sum())


def cca_similarity(
    X: Any,
    Y: Any,
    *,
    method: str = "mean",
    variance_kept: float = 0.99,
    noise_correction: str = "none",
    n_bootstraps: int = 0,
    n_permutations: int = 0,
    confidence_level: float = 0.95,
    random_state: Any = None,
) -> float | ResamplingResult:
    """Mean canonical correlation, SVCCA or PWCCA between two representations.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
        First representation (numpy, torch or xarray); repeats are averaged
        unless ``noise_correction="split"``.
    Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
        Second representation, same stimuli in the same order.
    method : {"mean", "svcca", "pwcca"}, default="mean"
        Plain mean of the canonical correlations; SVCCA (PCA keeping
        ``variance_kept`` first); PWCCA (projection-weighted mean, weights from ``X``).
    variance_kept : float, default=0.99
        Share of each side's variance SVCCA keeps (ignored by the other methods).
    noise_correction : {"none", "split"}, default="none"
        ``"split"`` (needs repeats on one side at least): every covariance is
        a product of *different* repeat halves, ``(A_1' B_2 + A_2' B_1) / 2n``,
        whose expectation is the signal covariance when trial noise is
        independent across repeats (even if correlated between X and Y within
        a trial). Plain averaging instead adds the noise variance to
        :math:`C_{xx}, C_{yy}` and attenuates every correlation.
    n_bootstraps : int, default=0
        Paired bootstrap resamples of the stimuli; 0 skips.
    n_permutations : int, default=0
        Shuffles of ``Y``'s stimulus order for a one-sided permutation p-value; 0 skips.
    confidence_level : float, default=0.95
        Coverage of the basic bootstrap interval (see ``ResamplingResult``).
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the resampling.

    Returns
    -------
    float or ResamplingResult
        The similarity in [0, 1] (the split estimate may exceed 1 by sampling
        error); with resampling, a
        :class:`~geomkit.measures._resampling.ResamplingResult`.

    References
    ----------
    Raghu, Gilmer, Yosinski & Sohl-Dickstein (2017). SVCCA. NeurIPS 30.
    Morcos, Raghu & Bengio (2018). Insights on representational similarity in
    neural networks with canonical correlation. NeurIPS 31.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import cca_similarity
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 4))
    >>> round(cca_similarity(X, X @ rng.normal(size=(4, 6))), 6)
    1.0
    >>> round(cca_similarity(X, rng.normal(size=(500, 4)), method="pwcca"), 2)
    0.07
    """
    validate_params(
        dict(method=method, variance_kept=variance_kept, noise_correction=noise_correction,
             n_bootstraps=n_bootstraps, n_permutations=n_permutations,
             confidence_level=confidence_level, random_state=random_state),
        _CONSTRAINTS, caller="cca_similarity",
    )
    X, Y = check_pair(X, Y)
    split = noise_correction == "split"
    if split:
        check_split_possible(X, Y, "cca_similarity")
    return with_intervals(
        lambda A, B: _similarity(A, B, method, variance_kept, split), X, Y,
        n_bootstraps=n_bootstraps, n_permutations=n_permutations,
        confidence_level=confidence_level, random_state=random_state,
    )
