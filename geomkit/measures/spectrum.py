"""Power-law spectra of population responses: PCA and cross-validated PCA.

Stringer, Pachitariu, Steinmetz, Carandini & Harris 2019, "High-dimensional
geometry of population responses in visual cortex", Nature 571:361-365:

* the spectrum is the descending eigenvalues ``lambda_n`` of the covariance of
  responses (stimuli x units), rank ``n = 1, 2, ...``;
* cvPCA estimates the *signal* spectrum from two repeats: principal axes
  ``u_n`` from repeat 1, ``lambda_n = sum_s (x1_s . u_n)(x2_s . u_n) / (N - 1)``
  (noise independent across repeats cancels), averaged over random swaps of
  the repeats for half of the stimuli;
* ``alpha`` is fitted by least squares of ``log lambda_n = -alpha log n + b``
  with weights ``1/n`` over ranks 11..500, the last rank at or below about half
  the usable eigenvalues; a smooth code of a d-dimensional stimulus set needs
  ``alpha > 1 + 2/d``.

The density view (``fitter="mle"``) fits ``p(lambda) ~ lambda ** -a`` by
maximum likelihood with ``x_min`` chosen by the smallest Kolmogorov-Smirnov
distance (Clauset, Shalizi & Newman 2009) and reports ``alpha = 1 / (a - 1)``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
from scipy.special import ndtri
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .._backend import check_device, eigh, eigvalsh
from .._params import RANDOM_STATE, Boolean, Integer, Options, Real, check_random_state, validate_params
from .._progress import progress_bar
from .._validation import as_float_array, check_float, check_int, check_option, host_array, to_numpy
from ..moments import Moments
from ._powerlaw import (
    MAX_DISTORTION,
    PowerLawFit,
    SpectrumWarning,
    distortion_limit,
    MIN_AXIS_OVERLAP,
    fit_spectrum,
    resolvable_limit,
    resolve_fit_range,
    sample_distortion,
    usable_count,
)
from ._dask_moments import is_streamed
from ._streamed_fit import fit_streamed, streamed_cvpca, streamed_eigenspectrum
from ._spectral_moments import (
    CVPCAProblem,
    PCAProblem,
    _blocks,
    column_mean,
    double_center,
)

__all__ = [
    "PowerLawSpectrum",
    "PowerLawFit",
    "SpectrumWarning",
    "eigenspectrum",
    "cvpca_spectrum",
    "power_law_exponent",
    "smoothness_threshold",
]

_METHODS = ("pca", "cvpca")

# scikit-learn's estimator checks that cannot apply, with the reason (for
# ``parametrize_with_checks(..., expected_failed_checks=...)``).
_TWO_UNITS = (
    "fits on 2-feature data; a spectrum needs at least 3 units (a power law over ranks "
    "needs 3 eigenvalues), so PowerLawSpectrum rejects 2 units with a ValueError; the same "
    "property is checked by hand on 10-unit data in tests/test_spectrum.py"
)
SKLEARN_EXPECTED_FAILED_CHECKS = {
    "check_estimators_overwrite_params": _TWO_UNITS,
    "check_estimators_fit_returns_self": _TWO_UNITS,
    "check_readonly_memmap_input": _TWO_UNITS,
    "check_fit_idempotent": _TWO_UNITS,
    "check_fit_check_is_fitted": _TWO_UNITS,
    "check_n_features_in": _TWO_UNITS,
}
_WEIGHTINGS = ("1/n", "uniform")
_FITTERS = ("ols", "mle")


# ---------------------------------------------------------------------------------------
# Functional forms
# ---------------------------------------------------------------------------------------
def eigenspectrum(X: Any, *, device: Any = None) -> np.ndarray:
    """Eigenvalues of the covariance of X, descending, in float64.

    The cheaper eigenproblem is chosen by shape: the (n_units, n_units)
    covariance when stimuli outnumber units, the (n_stimuli, n_stimuli) Gram
    matrix of the centred stimuli otherwise (same non-zero eigenvalues).

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units)
        Responses; numpy, torch or xarray; float32 is accumulated in float64.
        A dask array (or dask-backed xarray) is reduced chunk by chunk.
    device : None, str or torch.device
        Run the products and the eigendecomposition with torch there (e.g.
        "cuda"); ``None``: numpy on the CPU (see :ref:`devices`).

    Returns
    -------
    ndarray of shape (min(n_stimuli, n_units),)
        Covariance eigenvalues (normalized by ``n_stimuli - 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures.spectrum import eigenspectrum
    >>> X = np.random.default_rng(0).normal(size=(20000, 4)) * [4.0, 3.0, 2.0, 1.0]
    >>> eigenspectrum(X).round(0).tolist()
    [16.0, 9.0, 4.0, 1.0]
    """
    check_device(device)
    if is_streamed(X):  # dask arrays / dask-backed xarray: reduced chunk-wise, never loaded
        return streamed_eigenspectrum(X, device=device)
    X = _as_data(X, "X", ndim=2, min_samples=2)
    return PCAProblem(X, device=device).eigenvalues()


def cvpca_spectrum(
    X: Any,
    Y: Any = None,
    *,
    n_shuffles: int = 10,
    random_state: Any = None,
    device: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated PCA signal spectrum of two repeats (Stringer et al. 2019).

    Parameters
    ----------
    X : array-like of shape (2, n_stimuli, n_units), or (n_stimuli, n_units) with ``Y``
        Two repeats of the responses to the same stimuli (dask arrays and
        dask-backed xarray are reduced chunk by chunk, all shuffles in one pass).
    Y : array-like of shape (n_stimuli, n_units), optional
        The second repeat, when ``X`` holds only the first.
    n_shuffles : int, default=10
        Random swaps of the repeats for half of the stimuli, averaged.
    random_state : None, int, numpy Generator or RandomState
        Seeds the repeat swaps; anything else raises naming ``random_state``.
    device : None, str or torch.device
        Run the eigendecompositions with torch there; ``None``: numpy on the
        CPU (see :ref:`devices`).

    Returns
    -------
    signal : ndarray of shape (min(n_stimuli, n_units),)
        Signal variance along the n-th principal axis of repeat 1 (may be negative
        where noise dominates).
    noise : ndarray of shape (min(n_stimuli, n_units),)
        Eigenvalues of the noise covariance ``Cov((X1 - X2) / sqrt(2))``, descending.

    Examples
    --------
    >>> from geomkit.datasets import make_powerlaw_data
    >>> from geomkit.measures.spectrum import cvpca_spectrum
    >>> X, lam = make_powerlaw_data(2000, 50, alpha=1.0, noise=0.5, n_repeats=2, random_state=0)
    >>> signal, noise = cvpca_spectrum(X, random_state=0)
    >>> bool(abs(signal[0] - 1.0) < 0.1), bool(abs(noise.mean() - 0.25) < 0.02)
    (True, True)
    """
    n_shuffles = check_int(n_shuffles, "n_shuffles", low=1)
    rng = _rng(random_state)
    check_device(device)
    if is_streamed(X) or is_streamed(Y):  # dask input: streamed cross-moments
        return streamed_cvpca(X, Y, n_shuffles, _rng(random_state), device=device)
    A, B = _split_repeats(_as_data(X, "X", ndim=(2, 3), min_samples=3), Y)
    problem = CVPCAProblem(A, B, device=device)
    signal, _ = problem.spectrum(n_shuffles, rng)
    return signal, problem.noise_eigenvalues()


def power_law_exponent(
    eigenvalues: Any,
    fit_range: tuple[int, int] = (11, 500),
    weighting: str = "1/n",
    fitter: str = "ols",
    *,
    n_units: int | None = None,
) -> PowerLawFit:
    """Fit ``lambda_n ~ n ** -alpha`` to a descending spectrum.

    Parameters
    ----------
    eigenvalues : array-like of shape (n,)
        Eigenvalues by rank, rank 1 first (descending). Position ``n`` is
        rank ``n``: values out of order are fitted as given (a cvPCA signal
        spectrum along fixed axes need not be monotone), except an ascending
        spectrum, the order of ``np.linalg.eigvalsh``, which is reversed with a
        :class:`SpectrumWarning`.
    fit_range : (int, int), default=(11, 500)
        First and last rank, 1-based and inclusive (Stringer et al.; others use
        6..100). The last rank is clipped to about half the usable eigenvalues
        (those above ``lambda_max * n_units * eps``) with a
        :class:`SpectrumWarning` stating the range used.
    weighting : {"1/n", "uniform"}, default="1/n"
        Least-squares weights per rank (``"ols"``; also weights ``r2``).
    fitter : {"ols", "mle"}, default="ols"
        ``"ols"``: least squares of ``log lambda_n`` on ``log n``. ``"mle"``: the
        eigenvalue density ``p(lambda) ~ lambda ** -a`` by maximum likelihood,
        ``x_min`` by the smallest KS distance among the eigenvalues of ranks in
        ``fit_range``, reported as ``alpha = 1 / (a - 1)``.
    n_units : int, optional
        Size of the matrix the eigenvalues came from (default: their number);
        sets the usability threshold.

    Returns
    -------
    PowerLawFit
        ``alpha``, ``intercept``, ``r2``, ``fit_range`` (ranks used), ``n_clipped``
        (non-positive eigenvalues left out), and for ``"mle"`` ``alpha_density``,
        ``xmin``, ``ks_distance``.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures.spectrum import power_law_exponent
    >>> fit = power_law_exponent(np.arange(1, 1001) ** -1.5)
    >>> round(fit.alpha, 6), fit.fit_range
    (1.5, (11, 500))
    """
    lam = _descending(as_float_array(eigenvalues, "eigenvalues", ndim=1, min_samples=3))
    check_option(weighting, "weighting", _WEIGHTINGS)
    check_option(fitter, "fitter", _FITTERS)
    if n_units is not None:
        n_units = check_int(n_units, "n_units", low=1)
    return fit_spectrum(lam, fit_range, weighting, fitter, n_units=n_units)


def smoothness_threshold(d: float) -> float:
    """Stringer et al.'s bound: a smooth code of a d-dimensional stimulus set needs alpha > 1 + 2/d.

    Stringer et al. (2019) show that if the stimuli vary along ``d`` dimensions
    and the eigenspectrum of the responses decays as ``n ** -alpha`` with
    ``alpha < 1 + 2/d``, the code is not differentiable (it has fractal,
    arbitrarily fine structure); a smooth code needs ``alpha > 1 + 2/d``
    (natural images, large ``d``: just above 1).

    Parameters
    ----------
    d : float
        Dimension of the stimulus set (> 0), e.g. 2 for gratings varying in
        orientation and phase.

    Returns
    -------
    float
        The critical exponent ``1 + 2/d``.

    Examples
    --------
    >>> from geomkit.measures.spectrum import smoothness_threshold
    >>> smoothness_threshold(2)
    2.0
    """
    d = check_float(d, "d", low=0.0, low_inclusive=False)
    return 1.0 + 2.0 / d


# ---------------------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------------------
def _rng(random_state: Any) -> np.random.Generator:
    return check_random_state(random_state)


def _descending(lam: np.ndarray) -> np.ndarray:
    """An ascending spectrum (what ``np.linalg.eigvalsh`` returns) reversed, with a warning."""
    if lam.size > 1 and lam[-1] > lam[0] and np.all(np.diff(lam) >= 0):
        warnings.warn(
            "eigenvalues are in ascending order (as np.linalg.eigvalsh returns them); they "
            "were reversed so that rank 1 is the largest. Pass them descending "
            "(eigenvalues[::-1]) to silence this warning.",
            SpectrumWarning,
            stacklevel=3,
        )
        return lam[::-1].copy()
    return lam


def _as_data(X: Any, name: str, *, ndim, min_samples: int) -> np.ndarray:
    """Float32 stays float32 (accumulation is float64 anyway); anything else -> float64."""
    arr = to_numpy(X)
    dtype = np.float32 if getattr(arr, "dtype", None) == np.float32 else np.float64
    return as_float_array(arr, name, ndim=ndim, min_samples=min_samples, dtype=dtype)


def _split_repeats(X: np.ndarray, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    if Y is None:
        if X.ndim != 3 or X.shape[0] != 2:
            raise ValueError(
                "cvPCA needs two repeats: X of shape (2, n_stimuli, n_units), or X and a "
                f"second array of the same (n_stimuli, n_units) shape; got X of shape {X.shape}."
            )
        A, B = X[0], X[1]
    else:
        if X.ndim != 2:
            raise ValueError(
                f"with a second repeat given, X must be (n_stimuli, n_units); got shape {X.shape}."
            )
        B = _as_data(Y, "y (second repeat)", ndim=2, min_samples=3)
        if B.shape != X.shape:
            raise ValueError(
                f"the repeats must have the same shape (n_stimuli, n_units); got {X.shape} and "
                f"{B.shape}."
            )
        A = X
    if A.shape[0] < 3 or A.shape[1] < 3:
        raise ValueError(
            f"cvPCA needs at least 3 stimuli and 3 units; got repeats of shape {A.shape}."
        )
    return A, B


def _check_variance(lam_max: float, what: str) -> None:
    if not lam_max > 0:
        raise ValueError(
            f"{what} has zero variance (every unit is constant across stimuli); "
            "a spectrum needs variation."
        )


# ---------------------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------------------
class PowerLawSpectrum(BaseEstimator):
    """Power-law exponent of a population's eigenspectrum (PCA or cvPCA), with intervals.

    Parameters
    ----------
    method : {"pca", "cvpca"}, default="pca"
        ``"pca"``: eigenvalues of the covariance of X (n_stimuli, n_units), via
        the covariance when stimuli outnumber units and via the stimulus Gram
        matrix otherwise, in float64. ``"cvpca"``: Stringer et al.'s
        cross-validated PCA of two repeats, X of shape (2, n_stimuli, n_units)
        or X and ``y`` the second repeat.
    fit_range : (int, int), default=(11, 500)
        First and last rank fitted (1-based, inclusive); the last is clipped to
        about half the usable eigenvalues with a :class:`SpectrumWarning`.
    weighting : {"1/n", "uniform"}, default="1/n"
        Least-squares weights (Stringer et al.: 1/n; Holzhausen et al.: uniform).
    fitter : {"ols", "mle"}, default="ols"
        Log-log least squares, or the maximum-likelihood fit of the eigenvalue
        density converted to the rank exponent (see :func:`power_law_exponent`).
    n_shuffles : int, default=10
        cvPCA: random repeat swaps averaged (Stringer et al. use 5 to 20).
    n_bootstraps : int, default=0
        Bootstrap resamples of the stimuli for ``alpha_ci_`` (0: no interval).
        Each costs about one fit.
    confidence_level : float, default=0.95
        Of the interval ``alpha_ci_``; strictly between 0 and 1.
    random_state : None, int, numpy Generator or RandomState
        Seeds the cvPCA shuffles and the bootstrap.
    device : None, str or torch.device
        Run the products and eigendecompositions with torch on this device
        (e.g. ``"cuda"``); ``None``: numpy and scipy on the CPU (see
        :ref:`devices`). A string torch cannot
        parse, or a CUDA device this machine does not have, raises a
        ``ValueError`` in ``fit``.
    progress : bool, default=False
        Show a progress bar over bootstrap resamples (off by default, as an
        estimator is often fitted in loops such as ``cross_val_score``).

    Attributes
    ----------
    eigenvalues_ : ndarray of shape (n_ranks,)
        Covariance eigenvalues (``"pca"``) or cvPCA signal variances, by rank.
    noise_eigenvalues_ : ndarray of shape (n_ranks,)
        ``"cvpca"`` only: eigenvalues of the noise covariance Cov((X1 - X2)/sqrt(2)).
    alpha_ : float
        Fitted rank exponent.
    intercept_ : float
        ``b`` of ``log lambda_n = -alpha log n + b`` (natural logarithms).
    r2_ : float
        r^2 of that line in log-log space over the fitted ranks.
    fit_range_ : (int, int)
        Ranks actually fitted (for ``"mle"``: 1 .. rank of ``x_min``).
    n_usable_ : int
        Eigenvalues above ``lambda_max * n_units * eps``.
    n_clipped_ : int
        Non-positive eigenvalues in the fit range, left out.
    xmin_, ks_distance_, alpha_density_ : float
        ``"mle"``: tail start, KS distance and density exponent (NaN for ``"ols"``).
    alpha_corrected_ : float
        The exponent corrected for the estimator's finite-sample bias (NaN
        without bootstraps): the population exponent whose simulated fits
        average to ``alpha_`` (Gaussian data from the fitted law, same
        stimuli, units, noise and fit; the law pivots at the middle of the
        fit range; two rounds of up to 12 simulations with common random
        numbers, the second a secant step). This is the value to report.
    alpha_ci_ : (float, float)
        Confidence interval of the population exponent (NaN without
        bootstraps), centred on ``alpha_corrected_``:
        ``alpha_corrected_ +- z * se``, ``se`` the standard deviation of the
        bootstrap exponents (resampled stimuli) divided by the slope
        ``d E[alpha_] / d alpha`` of the simulations, with their Monte Carlo
        error added in quadrature. It contains ``alpha_corrected_``, not
        necessarily ``alpha_``.
    alpha_bias_ : float
        ``alpha_ - alpha_corrected_``, the estimated bias of ``alpha_``.
    fit_distortion_ : float
        ``"pca"``: predicted inflation of the sample eigenvalue at the last
        fitted rank by the variance the stimuli cannot resolve
        (:func:`geomkit.measures._powerlaw.sample_distortion`); the last rank
        is lowered until it is at most 0.25 (with a :class:`SpectrumWarning`),
        and a warning says when even 3 x the first rank exceeds it (the data
        cannot support the fit). NaN for ``"cvpca"``, whose range is instead
        cut where the axes of one noisy repeat stop resolving the signal
        (:func:`geomkit.measures._powerlaw.axis_overlap` < 0.5).
    alpha_bootstrap_ : ndarray of shape (n_bootstraps,)
        The bootstrap exponents.
    n_features_in_ : int
        Number of units.
    n_stimuli_ : int
        Number of stimuli fitted.

    Notes
    -----
    ``fit`` also accepts a :class:`geomkit.moments.Moments` (from
    :func:`geomkit.probe.layer_moments` or a ``MomentAccumulator``), so huge
    activation sets never have to sit in memory; bootstraps need the stimuli
    and are then skipped.

    Dask arrays and dask-backed xarray objects (e.g. ``xr.open_zarr``) are
    reduced chunk by chunk without loading them, on the active
    ``dask.distributed`` client if any (:func:`geomkit.dask_client`); the
    bootstrap then uses Poisson weights accumulated in the same pass. See the
    user guide's "Large data" page.

    The estimator keeps a reference to the training data (no copy) so that
    :meth:`score` can compute principal axes only when asked. A pickled
    estimator holds the axes instead (``k`` columns, ``k`` the last fitted
    rank), never the training data.

    Examples
    --------
    >>> from geomkit.datasets import make_powerlaw_data
    >>> from geomkit.measures.spectrum import PowerLawSpectrum
    >>> X, _ = make_powerlaw_data(3000, 400, alpha=1.0, random_state=0)
    >>> est = PowerLawSpectrum(fit_range=(11, 200)).fit(X)
    >>> bool(abs(est.alpha_ - 1.0) < 0.05)
    True
    """

    def __init__(
        self,
        method: str = "pca",
        fit_range: tuple[int, int] = (11, 500),
        weighting: str = "1/n",
        fitter: str = "ols",
        n_shuffles: int = 10,
        n_bootstraps: int = 0,
        confidence_level: float = 0.95,
        random_state: Any = None,
        device: Any = None,
        progress: bool = False,
    ):
        self.method = method
        self.fit_range = fit_range
        self.weighting = weighting
        self.fitter = fitter
        self.n_shuffles = n_shuffles
        self.n_bootstraps = n_bootstraps
        self.confidence_level = confidence_level
        self.random_state = random_state
        self.device = device
        self.progress = progress

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    _parameter_constraints: dict = {
        "method": [Options(*_METHODS)],
        "weighting": [Options(*_WEIGHTINGS)],
        "fitter": [Options(*_FITTERS)],
        "n_shuffles": [Integer(1, None)],
        "n_bootstraps": [Integer(0, None)],
        "confidence_level": [Real(0, 1, closed="neither")],
        "random_state": [RANDOM_STATE],
        "progress": [Boolean()],
    }

    # -- validation -------------------------------------------------------------------
    def _check_params(self) -> None:
        validate_params(self.get_params(deep=False), self._parameter_constraints,
                        caller=type(self).__name__)
        resolve_fit_range(self.fit_range, 10**9, clip=False)  # type / order checks only
        # Before any work: an unusable device would otherwise fail deep inside the products.
        check_device(self.device)

    def _validate_2d(self, X: Any, reset: bool) -> np.ndarray:
        X = host_array(X)
        # At scoring time the unit count must match the fit, which the n_features_in_
        # check reports more usefully than a minimum.
        return validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32],
            ensure_min_samples=3, ensure_min_features=3 if reset else 1,
        )

    def _validate_repeats(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        arr = check_array(
            to_numpy(X), allow_nd=True, dtype=[np.float64, np.float32], ensure_min_samples=1,
            ensure_min_features=1, input_name="X",
        )
        A, B = _split_repeats(arr, None if y is None else check_array(
            to_numpy(y), dtype=[np.float64, np.float32], input_name="y"))
        if reset:
            self.n_features_in_ = A.shape[1]
        elif A.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {A.shape[1]} units, but PowerLawSpectrum was fitted with "
                f"{self.n_features_in_}."
            )
        return A, B

    # -- fitting ----------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "PowerLawSpectrum":
        """Compute the spectrum and fit its power law.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units), (2, n_stimuli, n_units), or Moments
            Responses (``"pca"``), two repeats (``"cvpca"``), or precomputed
            :class:`geomkit.moments.Moments` (``"pca"`` only).
        y : array-like of shape (n_stimuli, n_units), optional
            ``"cvpca"``: the second repeat when X holds only the first (so that
            ``cross_val_score(est, X1, X2)`` splits both by stimulus). Ignored
            for ``"pca"``.

        Returns
        -------
        self
        """
        self._check_params()
        self.__dict__.pop("_axes_cache", None)  # axes of an earlier fit
        rng = _rng(self.random_state)
        if isinstance(X, Moments):
            return self._fit_moments(X)
        if is_streamed(X) or is_streamed(y):  # dask input: one streamed pass, Poisson bootstrap
            return fit_streamed(self, X, y, rng)
        if self.method == "pca":
            X = self._validate_2d(X, reset=True)
            problem = PCAProblem(X, device=self.device)
            lam = problem.eigenvalues()
            _check_variance(lam[0], "X")
            n_usable = usable_count(lam, X.shape[1])
            self._basis = ("pca", problem)
            self.n_stimuli_ = X.shape[0]
        else:
            A, B = self._validate_repeats(X, y, reset=True)
            problem = CVPCAProblem(A, B, device=self.device)
            _check_variance(problem.within_repeat_variance(), "each repeat")
            lam, n_usable = problem.spectrum(self.n_shuffles, rng)
            _check_variance(n_usable, "the training repeat")
            self.noise_eigenvalues_ = problem.noise_eigenvalues()
            self._basis = ("cvpca", problem)
            self.n_stimuli_ = A.shape[0]
        self._set_fit(lam, n_usable)
        self._bootstrap(problem, rng)
        return self

    def _fit_moments(self, moments: Moments) -> "PowerLawSpectrum":
        if self.method != "pca":
            raise ValueError(
                "method='cvpca' needs two repeats of the responses; Moments hold one second "
                "moment. Use method='pca' with Moments."
            )
        if moments.n_samples < 3 or moments.n_units < 3:
            raise ValueError(
                f"Moments of {moments.n_samples} stimuli x {moments.n_units} units; at least 3 "
                "of each are required."
            )
        lam = moments.eigenvalues(device=self.device)
        _check_variance(lam[0], "the Moments")
        self.n_features_in_ = moments.n_units
        self.n_stimuli_ = moments.n_samples
        self._basis = ("moments", moments)
        self._set_fit(lam, usable_count(lam, moments.n_units))
        if self.n_bootstraps:
            warnings.warn(
                "n_bootstraps ignored: bootstrapping needs the stimuli, and Moments hold only "
                "their second moment; alpha_ci_ is NaN.",
                SpectrumWarning,
                stacklevel=3,
            )
        self.alpha_ci_ = (math.nan, math.nan)
        self.alpha_bootstrap_ = np.empty(0)
        self.alpha_bias_ = math.nan
        return self

    def _set_fit(self, lam: np.ndarray, n_usable: int) -> None:
        self._range = resolve_fit_range(self.fit_range, n_usable, n_available=lam.size)
        self.fit_distortion_ = math.nan
        if self.method == "pca":
            self._range, self.fit_distortion_ = self._limit_distortion(lam, self._range)
        else:
            self._range = self._limit_resolvable(lam, self._range)
        fit = fit_spectrum(lam, self._range, self.weighting, self.fitter, n_usable=n_usable,
                           clip=False)
        self.eigenvalues_ = lam
        self.alpha_ = fit.alpha
        self.alpha_corrected_ = math.nan
        self.intercept_ = fit.intercept
        self.r2_ = fit.r2
        self.fit_range_ = fit.fit_range
        self.n_usable_ = n_usable
        self.n_clipped_ = fit.n_clipped
        self.xmin_ = fit.xmin
        self.ks_distance_ = fit.ks_distance
        self.alpha_density_ = fit.alpha_density

    def _limit_distortion(self, lam: np.ndarray, fit_range: tuple[int, int]):
        """Stop the range where the sample spectrum departs from the population's (wide data)."""
        total = float(np.clip(lam, 0.0, None).sum())  # all eigenvalues: the covariance's trace
        new, d_first, supported = distortion_limit(fit_range, lam, self.n_stimuli_, total)
        d_last = float(sample_distortion(lam, self.n_stimuli_, total)[new[1] - 1])
        if not supported:
            warnings.warn(
                f"the data cannot support a power-law fit over ranks {fit_range}: with "
                f"{self.n_stimuli_} stimuli, the variance of the weaker components inflates the "
                f"sample eigenvalue of rank {fit_range[0]} by about {d_first:.0%} and of rank "
                f"{new[1]} by {d_last:.0%} (more than {MAX_DISTORTION:.0%}; rank << n_stimuli is "
                "needed). alpha_ is biased; alpha_corrected_ rests on the power law continuing "
                "over all units. Use more stimuli (or fewer units).",
                SpectrumWarning,
                stacklevel=4,
            )
        elif new != tuple(fit_range):
            warnings.warn(
                f"fit_range {tuple(fit_range)} clipped to {new}: beyond rank {new[1]} the variance "
                f"of the weaker components inflates the sample eigenvalues by more than "
                f"{MAX_DISTORTION:.0%} ({self.n_stimuli_} stimuli cannot resolve them; rank << "
                "n_stimuli is needed).",
                SpectrumWarning,
                stacklevel=4,
            )
        return new, d_last

    def _limit_resolvable(self, lam: np.ndarray, fit_range: tuple[int, int]):
        """cvPCA at low signal-to-noise: stop where repeat 1's axes no longer resolve the signal."""
        noise_var = max(float(np.sum(self.noise_eigenvalues_)), 0.0) / self.n_features_in_
        aspect = self.n_features_in_ / self.n_stimuli_
        new, last, supported = resolvable_limit(fit_range, lam, noise_var, aspect)
        if not supported:
            warnings.warn(
                f"the data cannot support a cvPCA power-law fit over ranks {fit_range}: the "
                f"trial noise ({noise_var:.3g} per unit, {self.n_features_in_} units, "
                f"{self.n_stimuli_} stimuli) leaves the axes of one repeat aligned with the signal "
                f"(squared overlap >= {MIN_AXIS_OVERLAP}) only up to rank {last}. Beyond it the "
                f"cross-validated eigenvalues are noise around the truth and the fitted exponent "
                f"comes out too flat; alpha_ over ranks {new} is unreliable. Use more stimuli, "
                "more repeats (averaged) or a fit range below that rank.",
                SpectrumWarning,
                stacklevel=4,
            )
        elif new != tuple(fit_range):
            warnings.warn(
                f"fit_range {tuple(fit_range)} clipped to {new}: beyond rank {new[1]} the trial "
                f"noise ({noise_var:.3g} per unit) leaves the cvPCA axes of one repeat poorly aligned "
                f"with the signal (squared overlap < {MIN_AXIS_OVERLAP}), so the cross-validated "
                "eigenvalues there are noise around the truth.",
                SpectrumWarning,
                stacklevel=4,
            )
        return new

    def _refit(self, lam: np.ndarray, n_usable: int) -> PowerLawFit | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpectrumWarning)
            try:
                return fit_spectrum(lam, self._range, self.weighting, self.fitter,
                                    n_usable=n_usable, clip=False)
            except ValueError:
                return None

    def _bootstrap(self, problem: Any, rng: np.random.Generator) -> None:
        self.alpha_bootstrap_ = np.empty(0)
        self.alpha_ci_ = (math.nan, math.nan)
        self.alpha_bias_ = math.nan
        if not self.n_bootstraps:
            return
        n = self.n_stimuli_
        alphas = []
        for _ in progress_bar(range(self.n_bootstraps), desc="bootstrap", progress=self.progress):
            idx = rng.integers(0, n, size=n)
            if self.method == "pca":
                lam_b = problem.resample(idx)
                n_usable_b = usable_count(lam_b, self.n_features_in_)
            else:
                lam_b, n_usable_b = problem.spectrum(self.n_shuffles, rng, idx)
            fit = self._refit(lam_b, n_usable_b)
            if fit is not None:
                alphas.append(fit.alpha)
        self.alpha_bootstrap_ = np.asarray(alphas)
        if len(alphas) < 2:
            return
        # Sample spectra are biased (eigenvalue repulsion; with more units than stimuli, the
        # variance the stimuli cannot resolve), and resampling stimuli does not see it (the
        # bootstrap's own bias had the opposite sign, measured). The bias is found by
        # simulation under a population law instead, and the standard error by the bootstrap.
        corrected, slope, mc_se = self._bias_correction(rng, min(self.n_bootstraps, 12))
        self.alpha_corrected_ = corrected
        self.alpha_bias_ = self.alpha_ - corrected
        z = float(ndtri(0.5 + self.confidence_level / 2.0))
        # The corrected value moves by 1 / slope per unit of alpha_; the Monte Carlo error
        # of the simulated mean adds in quadrature.
        se = math.hypot(float(np.std(self.alpha_bootstrap_, ddof=1)) / slope, mc_se)
        self.alpha_ci_ = (corrected - z * se, corrected + z * se)

    def _population(self, alpha: float, log_mid: float) -> np.ndarray:
        """Population spectrum of a simulation: ``exp(log_mid) (n / r_mid) ** -alpha`` from rank lo on.

        ``r_mid`` is the geometric middle of the fit range, so a change of
        ``alpha`` pivots the law there. Ranks above lo keep the sample's
        eigenvalues, less their predicted inflation (:func:`sample_distortion`).
        """
        lo, hi = self._range
        n_units, n = self.n_features_in_, self.n_stimuli_
        # Rank-deficient data keep their rank; with fewer stimuli than units the law is
        # extended to all units (what the population beyond the sample rank is, is unseen).
        size = min(self.n_usable_, n_units) if n >= n_units else n_units
        ranks = np.arange(1, size + 1, dtype=np.float64)
        pop = np.exp(log_mid - alpha * (np.log(ranks) - 0.5 * math.log(lo * hi)))
        lam = np.clip(self.eigenvalues_, 0.0, None)
        top = lam[: lo - 1]
        if self.method == "pca":
            top = top / (1.0 + sample_distortion(lam, n, float(lam.sum()))[: lo - 1])
        pop[: top.size] = np.maximum(top, pop[lo - 1])
        return pop

    def _simulate(self, alpha: float, log_mid: float, seeds: np.ndarray) -> np.ndarray:
        """Fitted (alpha, log_mid) of Gaussian data simulated from :meth:`_population`, one row per seed."""
        pop = self._population(alpha, log_mid)
        n, n_units = self.n_stimuli_, self.n_features_in_
        mid = 0.5 * math.log(self._range[0] * self._range[1])
        noise_sd = 0.0
        if self.method == "cvpca":
            noise_sd = math.sqrt(max(float(np.sum(self.noise_eigenvalues_)), 0.0) / n_units)
        out = []
        for seed in seeds:
            # Common random numbers: the same draws at every (alpha, log_mid), so the
            # difference between two simulated means is not swamped by Monte Carlo noise.
            rng = np.random.default_rng(seed)
            # Gaussian responses with covariance diag(pop): the sample spectrum's law is
            # rotation invariant, so no random basis is needed.
            signal = rng.standard_normal((n, pop.size)) * np.sqrt(pop)
            if self.method == "pca":
                lam = PCAProblem(signal, device=self.device).eigenvalues()
                k = usable_count(lam, pop.size)
            else:
                width = max(n_units, pop.size)
                A = rng.standard_normal((n, width)) * noise_sd
                B = rng.standard_normal((n, width)) * noise_sd
                A[:, : pop.size] += signal
                B[:, : pop.size] += signal
                lam, k = CVPCAProblem(A, B, device=self.device).spectrum(self.n_shuffles, rng)
            fit = self._refit(lam, k)
            if fit is not None:
                out.append((fit.alpha, fit.intercept - fit.alpha * mid))
        return np.asarray(out, dtype=np.float64).reshape(-1, 2)

    def _bias_correction(self, rng: np.random.Generator, n_sim: int) -> tuple[float, float, float]:
        """Population exponent whose simulated fits average to ``alpha_`` (iterated bias correction).

        Indirect inference: simulate at the plug-in law, shift by the
        simulated bias, simulate again, and take the secant step through
        both (with common random numbers the simulated mean is a smooth
        function of alpha). A single shift, as before, used the bias at the
        plug-in exponent, which in wide data differs from the bias at the
        truth (1000 x 5000, alpha 1: corrected 1.027, interval missing 1).

        Returns the corrected exponent, the slope ``d E[alpha_] / d alpha``
        and the Monte Carlo standard error of the corrected value.
        """
        mid = 0.5 * math.log(self._range[0] * self._range[1])
        observed = np.array([self.alpha_, self.intercept_ - self.alpha_ * mid])
        seeds = rng.integers(0, 2**63 - 1, size=n_sim)
        first = self._simulate(*observed, seeds)
        if len(first) < 2:
            return self.alpha_, 1.0, 0.0
        m0 = first.mean(axis=0)
        step = observed + (observed - m0)
        slope = 1.0
        sims = first
        if abs(step[0] - observed[0]) > 1e-3:
            second = self._simulate(*step, seeds)
            if len(second) >= 2:
                m1 = second.mean(axis=0)
                slope = float(np.clip((m1[0] - m0[0]) / (step[0] - observed[0]), 0.25, 4.0))
                step = step + np.array([(observed[0] - m1[0]) / slope, observed[1] - m1[1]])
                sims = second
        mc_se = float(np.std(sims[:, 0], ddof=1) / math.sqrt(len(sims)) / slope)
        return float(step[0]), slope, mc_se

    # -- scoring ----------------------------------------------------------------------
    def _axes(self) -> np.ndarray:
        """Principal axes (n_units, k) of the training data for ranks 1..k, k = last fitted rank."""
        k = self._range[1]
        cached = getattr(self, "_axes_cache", None)
        if cached is not None and cached.shape[1] >= k:
            return cached[:, :k]
        if not hasattr(self, "_basis"):
            raise ValueError(
                "this PowerLawSpectrum was unpickled after a fit on Gram-matrix Moments, which "
                "hold no unit-space principal axes; refit it to score."
            )
        kind, source = self._basis
        if kind == "moments":
            if source.covariance is None:
                raise ValueError(
                    "score needs unit-space principal axes, which a Gram-matrix Moments cannot "
                    "give (it holds stimulus-space products). Accumulate "
                    "method='covariance' Moments, or fit on the activations."
                )
            axes = eigh(source.covariance, device=self.device)[1][:, :k]
        elif kind == "pca" and source.route == "covariance":
            axes = eigh(source.matrix, device=self.device)[1][:, :k]
        elif kind == "cvpca" and source.route == "covariance":
            axes = eigh(source.P, device=self.device)[1][:, :k]
        else:
            axes = self._gram_axes(kind, source, k)
        self._axes_cache = axes
        return axes

    def _gram_axes(self, kind: str, source: Any, k: int) -> np.ndarray:
        # Unit-space axes from stimulus-space eigenvectors: u_n = Xc' v_n / sigma_n.
        if kind == "pca":
            G = source.matrix if isinstance(source.matrix, np.ndarray) else source.matrix.cpu().numpy()
            data = lambda cols: np.subtract(source.X[:, cols], source.mean[cols], dtype=np.float64)
        else:
            G = source.signal_axes_matrix()
            mean = (column_mean(source.A) + column_mean(source.B)) / 2
            data = lambda cols: (source.A[:, cols].astype(np.float64) + source.B[:, cols]) / 2 - mean[cols]
        values, vectors = eigh(G, device=self.device)
        V = vectors[:, :k] / np.sqrt(np.maximum(values[:k], np.finfo(np.float64).tiny))
        axes = np.empty((self.n_features_in_, k))
        for cols in _blocks(self.n_features_in_, G.shape[0]):
            axes[cols] = data(cols).T @ V
        return axes

    def _held_out_variances(self, X: Any, y: Any) -> np.ndarray:
        """Variances (pca) or cross-repeat covariances (cvpca) of X along the training axes 1..k."""
        check_is_fitted(self)
        if is_streamed(X) or is_streamed(y):  # dask input: projected chunk by chunk
            from ._streamed_fit import held_out_variances

            return held_out_variances(self, X, y, self._axes())
        if self.method == "pca":
            Xt = self._validate_2d(X, reset=False)
            U = self._axes()
            proj = np.subtract(Xt, column_mean(Xt), dtype=np.float64) @ U
            return np.einsum("ij,ij->j", proj, proj) / (Xt.shape[0] - 1)
        A, B = self._validate_repeats(X, y, reset=False)
        U = self._axes()
        pa = np.subtract(A, column_mean(A), dtype=np.float64) @ U
        pb = np.subtract(B, column_mean(B), dtype=np.float64) @ U
        return np.einsum("ij,ij->j", pa, pb) / (A.shape[0] - 1)

    def score(self, X: Any, y: Any = None) -> float:
        """Held-out goodness of fit of the power law (0 is a perfect fit; higher is better).

        The variance of X along the training principal axes ``u_n`` is
        compared with the fitted law ``gamma_n = exp(intercept_) n^-alpha_``
        over the fitted ranks ``n = lo .. hi``::

            score = - sum_n w_n (lambda_n / gamma_n - 1)^2 / sum_n w_n

        with the fit's weights ``w_n`` (``1/n`` or 1). ``lambda_n`` is X's
        variance along ``u_n`` (``"pca"``: the training covariance's
        eigenvectors, X centred on its own mean), or, for ``"cvpca"``, the
        cross-repeat covariance ``(x1 . u_n)(x2 . u_n)`` of the held-out
        stimuli along the principal axes of the training repeats' average (so
        trial noise does not enter; a negative held-out signal variance counts
        as a large misfit, not an error). It is a relative squared error,
        scale free, and finite for any input, so ``GridSearchCV`` and
        ``cross_val_score`` maximise how well the fitted power law describes
        unseen stimuli (e.g. to choose ``fit_range``), never the exponent
        itself. :meth:`held_out_alpha` gives the exponent of the held-out
        spectrum.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units), or (2, n_stimuli, n_units) for cvPCA
        y : array-like, optional
            cvPCA: the second repeat, as in :meth:`fit`; otherwise ignored.

        Returns
        -------
        float
            At most 0; minus the weighted mean squared relative deviation of
            the held-out variances from the fitted law.
        """
        lam = self._held_out_variances(X, y)
        lo, hi = self._range
        ranks = np.arange(lo, hi + 1, dtype=np.float64)
        gamma = np.exp(self.intercept_ - self.alpha_ * np.log(ranks))
        w = 1.0 / ranks if self.weighting == "1/n" else np.ones_like(ranks)
        return float(-np.sum(w * (lam[lo - 1 : hi] / gamma - 1.0) ** 2) / np.sum(w))

    def held_out_alpha(self, X: Any, y: Any = None) -> float:
        """Exponent of X's spectrum along the fitted principal axes (cross-validated).

        The variance of X (centred on its own mean) along the training
        principal axes ``u_1 .. u_k`` (``k`` = the last fitted rank) is fitted
        with the same range, weighting and fitter as ``alpha_``. For
        ``"pca"`` the axes are the eigenvectors of the training covariance.
        For ``"cvpca"`` they are the principal axes of the average of the two
        training repeats, ``(X1 + X2) / 2`` (no repeat swaps: all training
        data, one set of axes), and the variance is the cross-repeat
        covariance ``(x1 . u_n)(x2 . u_n)`` of the held-out stimuli, each
        repeat centred on its own mean. On new stimuli this is an
        out-of-sample exponent, not inflated by fitting the axes to the same
        data. Higher is not "better": :meth:`score` is the goodness of fit
        that model selection maximises.

        Parameters
        ----------
        X : array-like of shape (n_stimuli, n_units), or (2, n_stimuli, n_units) for cvPCA
        y : array-like, optional
            cvPCA: the second repeat, as in :meth:`fit`; otherwise ignored.

        Returns
        -------
        float
            The rank exponent of the held-out spectrum.

        Examples
        --------
        >>> from geomkit.datasets import make_powerlaw_data
        >>> X, _ = make_powerlaw_data(4000, 200, alpha=1.5, random_state=0)
        >>> est = PowerLawSpectrum(fit_range=(5, 50)).fit(X[:2000])
        >>> bool(abs(est.held_out_alpha(X[2000:]) - 1.5) < 0.1)
        True
        """
        lam = self._held_out_variances(X, y)
        fit = fit_spectrum(lam, self._range, self.weighting, self.fitter, clip=False,
                           n_usable=lam.size)
        return float(fit.alpha)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the training data: the principal axes that score needs replace it."""
        state = self.__dict__.copy()
        if "_basis" in state:
            try:
                state["_axes_cache"] = self._axes()
            except ValueError:  # Gram-matrix Moments: no unit-space axes to keep
                state["_axes_cache"] = None
            del state["_basis"]
        return state

    # -- results ----------------------------------------------------------------------
    def to_xarray(self):
        """The spectrum and its fit as an :class:`xarray.Dataset` (round-trips through netCDF).

        Variables ``eigenvalue`` (and ``noise_eigenvalue`` for cvPCA) and
        ``fitted`` (the fitted line over the fit range, NaN elsewhere) over the
        coordinate ``rank`` (1-based); the fit is in the attributes.

        Returns
        -------
        xarray.Dataset
            Dimension ``rank`` (1 .. number of eigenvalues); variables
            ``eigenvalue``, ``fitted`` and, for cvPCA, ``noise_eigenvalue``;
            attributes ``alpha``, ``intercept``, ``r2``, ``fit_range``,
            ``alpha_corrected``, ``alpha_ci`` (centred on ``alpha_corrected``),
            ``n_usable``, ``n_clipped``, ``xmin``,
            ``ks_distance``, ``n_stimuli``, ``n_units`` and the settings.

        Examples
        --------
        >>> from geomkit.datasets import make_powerlaw_data
        >>> from geomkit.measures.spectrum import PowerLawSpectrum
        >>> X, _ = make_powerlaw_data(2000, 300, alpha=1.0, random_state=0)
        >>> ds = PowerLawSpectrum(fit_range=(11, 100)).fit(X).to_xarray()
        >>> ds.sizes["rank"], ds.attrs["fit_range"].tolist()
        (300, [11, 100])
        """
        import xarray as xr

        check_is_fitted(self)
        n = self.eigenvalues_.size
        rank = np.arange(1, n + 1)
        fitted = np.full(n, np.nan)
        lo, hi = self.fit_range_
        fitted[lo - 1 : hi] = np.exp(self.intercept_ - self.alpha_ * np.log(rank[lo - 1 : hi]))
        data = {
            "eigenvalue": ("rank", self.eigenvalues_),
            "fitted": ("rank", fitted),
        }
        if self.method == "cvpca":
            data["noise_eigenvalue"] = ("rank", self.noise_eigenvalues_)
        attrs = {
            "method": self.method,
            "fitter": self.fitter,
            "weighting": self.weighting,
            "alpha": self.alpha_,
            "intercept": self.intercept_,
            "r2": self.r2_,
            "fit_range": np.asarray(self.fit_range_, dtype=np.int64),
            "alpha_corrected": self.alpha_corrected_,
            "alpha_ci": np.asarray(self.alpha_ci_, dtype=np.float64),
            "confidence_level": float(self.confidence_level),
            "n_bootstraps": int(self.alpha_bootstrap_.size),
            "n_usable": int(self.n_usable_),
            "n_clipped": int(self.n_clipped_),
            "xmin": self.xmin_,
            "ks_distance": self.ks_distance_,
            "n_stimuli": int(self.n_stimuli_),
            "n_units": int(self.n_features_in_),
        }
        ds = xr.Dataset(data, coords={"rank": rank}, attrs=attrs)
        ds["eigenvalue"].attrs["long_name"] = (
            "cvPCA signal variance" if self.method == "cvpca" else "covariance eigenvalue"
        )
        return ds
