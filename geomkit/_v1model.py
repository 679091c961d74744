"""A model of primary visual cortex: a synthetic, brain-like "recording" of any images.

Complex cells of an energy model (Adelson & Bergen 1985) over a random bank
of Gabor filters, whose population covariance is then reshaped to a power
law with exponent ``alpha`` (Stringer et al. 2019 measured ``alpha ~ 1`` in
mouse V1). It is the recording that the study's co-trained model is pulled
towards: smooth in the image (local, band-pass filters) and with a
brain-like spectrum, and known exactly, so a test can check what co-training
does to a network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._params import RANDOM_STATE, Integer, Real, check_random_state, validate_params

__all__ = ["GaborV1"]

# product of the envelope's width and the frequency for a bandwidth of one octave:
# sigma f = sqrt(ln 2 / 2) / pi * (2 + 1) / (2 - 1)
_SIGMA_F = 0.5622
_RTOL = 1e-6  # singular values below this fraction of the largest are directions the bank does not span


class GaborV1(TransformerMixin, BaseEstimator):
    """Complex-cell responses of a random Gabor bank, with a power-law population spectrum.

    Neuron ``j`` has a quadrature pair of Gabor filters (a Gaussian envelope
    of width ``sigma_j = 0.56 / f_j``, one octave of bandwidth, times a
    cosine and a sine grating of frequency ``f_j`` and orientation
    ``theta_j``, centred at a random position in the middle 60 % of the
    image); its response is the energy ``sqrt(even^2 + odd^2)``. ``fit``
    then finds the linear map that gives the centred energies of the
    training images the covariance eigenvalues ``c n^-alpha`` (same
    eigenvectors, ``c`` such that the mean variance per neuron is 1):
    ``transform(X) = (E(X) - mean) @ M``.

    Parameters
    ----------
    n_neurons : int, default=500
        Number of model neurons.
    image_shape : tuple of int, optional
        (height, width) of the images; None: square images of
        ``sqrt(n_features)`` pixels a side.
    alpha : float or None, default=1.0
        Exponent of the power-law spectrum (mouse V1: about 1); None keeps the
        energies' own spectrum (only centred).
    frequency_range : tuple of float, default=(1.5, 7.0)
        Spatial frequencies in cycles per image width, drawn log-uniformly.
    random_state : None, int or numpy.random.Generator, default=None
        Draws the filters.

    Attributes
    ----------
    filters_ : ndarray of shape (2, n_features, n_neurons)
        The even and odd filters (unit norm, zero mean).
    frequency_ : ndarray of shape (n_neurons,)
        In cycles per pixel.
    orientation_ : ndarray of shape (n_neurons,)
        In radians.
    mean_ : ndarray of shape (n_neurons,)
        Mean energy over the training images.
    projection_ : ndarray of shape (n_neurons, n_neurons)
        The map ``M``.
    eigenvalues_ : ndarray of shape (k,)
        The covariance eigenvalues of ``transform`` on the training images
        (``k`` = the spanned directions, at most ``n_samples - 1``).
    n_features_in_ : int

    References
    ----------
    Adelson, E. H. & Bergen, J. R. (1985). Spatiotemporal energy models for the
    perception of motion. JOSA A 2, 284-299.

    Stringer, C., Pachitariu, M., Steinmetz, N., Carandini, M. & Harris, K. D.
    (2019). High-dimensional geometry of population responses in visual
    cortex. Nature 571, 361-365.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.datasets import GaborV1, load_digits
    >>> X, _, _, _ = load_digits(test_size=0.5)
    >>> v1 = GaborV1(n_neurons=100, alpha=1.0, random_state=0).fit(X)
    >>> R = v1.transform(X)
    >>> R.shape
    (898, 100)
    >>> lam = np.linalg.eigvalsh(np.cov(R.T))[::-1]
    >>> bool(np.allclose(lam[:5] / lam[0], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]))
    True
    """

    _parameter_constraints = {
        "n_neurons": [Integer(1, None)],
        "alpha": [None, Real(0, None)],
        "random_state": [RANDOM_STATE],
    }

    def __init__(self, n_neurons: int = 500, image_shape: tuple[int, int] | None = None,
                 alpha: float | None = 1.0, frequency_range: tuple[float, float] = (1.5, 7.0),
                 random_state: Any = None):
        self.n_neurons = n_neurons
        self.image_shape = image_shape
        self.alpha = alpha
        self.frequency_range = frequency_range
        self.random_state = random_state

    def _shape(self, n_features: int) -> tuple[int, int]:
        if self.image_shape is None:
            side = int(round(np.sqrt(n_features)))
            if side * side != n_features:
                raise ValueError(f"image_shape is None, so X must hold square images; its {n_features} "
                                 "features are no square number. Pass image_shape=(height, width).")
            return side, side
        shape = tuple(int(s) for s in self.image_shape)
        if len(shape) != 2 or shape[0] * shape[1] != n_features:
            raise ValueError(f"image_shape must be (height, width) with height * width = n_features "
                             f"({n_features}); got {self.image_shape!r}.")
        return shape

    def _draw(self, shape: tuple[int, int]) -> None:
        low, high = (float(f) for f in self.frequency_range)
        if not 0 < low <= high:
            raise ValueError(f"frequency_range must be (low, high) with 0 < low <= high (cycles per image "
                             f"width); got {self.frequency_range!r}.")
        rng = check_random_state(self.random_state)
        h, w = shape
        n = self.n_neurons
        f = np.exp(rng.uniform(np.log(low), np.log(high), n)) / w  # cycles per pixel
        theta = rng.uniform(0, np.pi, n)
        cy, cx = rng.uniform(0.2, 0.8, n) * (h - 1), rng.uniform(0.2, 0.8, n) * (w - 1)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        dy, dx = yy.ravel()[:, None] - cy, xx.ravel()[:, None] - cx  # (pixels, neurons)
        envelope = np.exp(-(dx**2 + dy**2) / (2 * (_SIGMA_F / f) ** 2))
        phase = 2 * np.pi * f * (dx * np.cos(theta) + dy * np.sin(theta))
        bank = np.stack([envelope * np.cos(phase), envelope * np.sin(phase)])
        bank -= bank.mean(axis=1, keepdims=True)  # blind to the mean luminance
        bank /= np.linalg.norm(bank, axis=1, keepdims=True).clip(1e-12)
        self.filters_, self.frequency_, self.orientation_ = bank, f, theta

    def _energy(self, X: np.ndarray) -> np.ndarray:
        even, odd = X @ self.filters_[0], X @ self.filters_[1]
        return np.sqrt(even**2 + odd**2)

    def fit(self, X: Any, y: Any = None) -> "GaborV1":
        """Draw the filter bank and fit the spectrum map on the images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened images (row-major, ``image_shape``).
        y : ignored

        Returns
        -------
        self
        """
        validate_params(self.get_params(), self._parameter_constraints, caller="GaborV1")
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=3)
        self._draw(self._shape(X.shape[1]))
        E = self._energy(X)
        self.mean_ = E.mean(axis=0)
        _, s, Vt = np.linalg.svd(E - self.mean_, full_matrices=False)
        k = int(np.sum(s > _RTOL * s[0])) if s[0] > 0 else 0
        if k == 0:
            raise ValueError("GaborV1: the filter energies do not vary over X (constant images?).")
        k = min(k, X.shape[0] - 1)
        variances = s[:k] ** 2 / (X.shape[0] - 1)
        if self.alpha is None:
            lam, gains = variances, np.ones(k)
        else:
            lam = np.arange(1, k + 1, dtype=np.float64) ** -float(self.alpha)
            lam *= self.n_neurons / lam.sum()
            gains = np.sqrt(lam / variances)
        self.projection_ = (Vt[:k].T * gains) @ Vt[:k]
        self.eigenvalues_ = lam
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Model responses to the images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened images.

        Returns
        -------
        ndarray of shape (n_samples, n_neurons)
            Centred responses (float32).
        """
        check_is_fitted(self, "projection_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return ((self._energy(X) - self.mean_) @ self.projection_).astype(np.float32)
