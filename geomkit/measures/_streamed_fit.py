"""PowerLawSpectrum, eigenspectrum and cvpca_spectrum on dask-backed data.

The estimator hands dask arrays (and dask-backed DataArrays, e.g. from
``xr.open_zarr``) here; the spectra come from :mod:`._dask_moments`, which
never loads the data. What differs from the in-memory fit:

* bootstrap: on the covariance route Poisson weights per stimulus,
  accumulated in the same pass as the spectrum (in-memory: multinomial
  resamples); on the Gram route the in-memory Gram matrix is resampled
  exactly as in memory;
* bias simulation: Gaussian data are not generated row by row. For PCA the
  sample covariance of n Gaussian stimuli is drawn directly as a Wishart
  matrix (Bartlett decomposition, ``n_units^2`` numbers instead of
  ``n x n_units``); for cvPCA the simulated repeats are lazy dask random
  arrays reduced like the data.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._dask_moments import StreamedCVPCA, StreamedPCA, as_dask
from ._powerlaw import usable_count

__all__ = ["fit_streamed", "streamed_eigenspectrum", "streamed_cvpca", "held_out_variances"]


def _check_shape(shape: tuple[int, ...], name: str, low: int = 3) -> None:
    if shape[0] < low or shape[1] < low:
        raise ValueError(
            f"{name} has shape {tuple(shape)}; at least {low} stimuli and {low} units are required."
        )


def _repeats(X: Any, y: Any):
    """The two repeats of dask input: X of shape (2, n, d), or X and y of shape (n, d)."""
    if y is None:
        X = as_dask(X, "X", (3,))
        if X.shape[0] != 2:
            raise ValueError(
                "cvPCA needs two repeats: X of shape (2, n_stimuli, n_units), or X and a "
                f"second array of the same (n_stimuli, n_units) shape; got X of shape {X.shape}."
            )
        A, B = X[0], X[1]
    else:
        A, B = as_dask(X, "X", (2,)), as_dask(y, "y (second repeat)", (2,))
        if A.shape != B.shape:
            raise ValueError(
                f"the repeats must have the same shape (n_stimuli, n_units); got {A.shape} "
                f"and {B.shape}."
            )
    _check_shape(A.shape, "each repeat")
    return A, B


def streamed_eigenspectrum(X: Any, device: Any = None) -> np.ndarray:
    """:func:`~geomkit.measures.spectrum.eigenspectrum` of a dask array, chunk-wise."""
    X = as_dask(X, "X", (2,))
    _check_shape(X.shape, "X", low=2)
    return StreamedPCA(X, device=device).eigenvalues()


def streamed_cvpca(X: Any, Y: Any, n_shuffles: int, rng: np.random.Generator,
                   device: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~geomkit.measures.spectrum.cvpca_spectrum` of dask repeats, chunk-wise."""
    A, B = _repeats(X, Y)
    problem = StreamedCVPCA(A, B, n_shuffles=n_shuffles, rng=rng, device=device)
    signal, _ = problem.spectrum(n_shuffles, rng)
    return signal, problem.noise_eigenvalues()


def held_out_variances(est: Any, X: Any, y: Any, axes: np.ndarray) -> np.ndarray:
    """``PowerLawSpectrum._held_out_variances`` of dask data, chunk-wise: X is never loaded.

    The rows, shifted by the mean of the first rows, are projected on the
    training axes chunk by chunk; the projections' sums and (cross-)products
    give the variances (pca) or cross-repeat covariances (cvpca) along the
    axes, as the in-memory centred projections do.
    """
    import dask

    from ._dask_moments import _first_rows_mean, _row_chunks

    if est.method == "pca":
        repeats = [as_dask(X, "X", (2,))]
    else:
        repeats = list(_repeats(X, y))
    n, units = repeats[0].shape
    if units != est.n_features_in_ or n < 3:
        raise ValueError(
            f"X has shape {tuple(repeats[0].shape)} (per repeat); PowerLawSpectrum was fitted "
            f"with {est.n_features_in_} units and needs at least 3 stimuli."
        )
    projected = []
    for R in repeats:
        R = _row_chunks(R)
        projected.append((R.astype(np.float64) - _first_rows_mean(R)) @ axes)
    first, last = projected[0], projected[-1]  # the same array for pca
    s_first, s_last, products = dask.compute(first.sum(axis=0), last.sum(axis=0),
                                             (first * last).sum(axis=0))
    return (products - s_first * s_last / n) / (n - 1)


def fit_streamed(est: Any, X: Any, y: Any, rng: np.random.Generator) -> Any:
    """``est.fit(X, y)`` for dask-backed X (and y): same attributes as the in-memory fit."""
    from .spectrum import _check_variance

    n_boot = int(est.n_bootstraps)
    if est.method == "pca":
        Xd = as_dask(X, "X", (2,))
        _check_shape(Xd.shape, "X")
        problem = StreamedPCA(Xd, n_bootstraps=n_boot, seed=int(rng.integers(2**63 - 1)),
                              device=est.device)
        lam = problem.eigenvalues()
        _check_variance(lam[0], "X")
        n_usable = usable_count(lam, problem.n_units)
    else:
        A, B = _repeats(X, y)
        problem = StreamedCVPCA(A, B, n_shuffles=est.n_shuffles, rng=rng, n_bootstraps=n_boot,
                                device=est.device)
        _check_variance(problem.within_repeat_variance(), "each repeat")
        lam, n_usable = problem.spectrum(est.n_shuffles, rng)
        _check_variance(n_usable, "the training repeat")
        est.noise_eigenvalues_ = problem.noise_eigenvalues()
    est.n_features_in_ = problem.n_units
    est.n_stimuli_ = problem.n_stimuli
    est._basis = (est.method, problem)
    est._set_fit(lam, n_usable)
    _bootstrap(est, problem, rng)
    return est


def _replicate_spectra(est: Any, problem: Any, rng: np.random.Generator):
    """(eigenvalues, usable count) of each bootstrap replicate."""
    n = est.n_stimuli_
    if problem.route == "gram":  # the Gram pieces are in memory: multinomial, as in memory
        for _ in range(est.n_bootstraps):
            idx = rng.integers(0, n, size=n)
            if est.method == "pca":
                lam = problem.resample(idx)
                yield lam, usable_count(lam, est.n_features_in_)
            else:
                yield problem.spectrum(est.n_shuffles, rng, idx)
    elif est.method == "pca":
        for lam, _ in problem.bootstrap_eigenvalues():
            yield lam, usable_count(lam, est.n_features_in_)
    else:
        for r in range(1, est.n_bootstraps + 1):
            lam, usable, _ = problem.streamed_spectrum(r)
            yield lam, usable


def _bootstrap(est: Any, problem: Any, rng: np.random.Generator) -> None:
    from scipy.special import ndtri

    est.alpha_bootstrap_ = np.empty(0)
    est.alpha_ci_ = (math.nan, math.nan)
    est.alpha_bias_ = math.nan
    if not est.n_bootstraps:
        return
    fits = (est._refit(lam, k) for lam, k in _replicate_spectra(est, problem, rng))
    alphas = [fit.alpha for fit in fits if fit is not None]
    est.alpha_bootstrap_ = np.asarray(alphas)
    if len(alphas) < 2:
        return
    # One simulated bias at the plug-in law (the in-memory estimator iterates; its simulations
    # need the data's size in memory), subtracted: the interval is centred on alpha_corrected_.
    est.alpha_bias_ = _simulated_bias(est, rng, min(est.n_bootstraps, 25))
    est.alpha_corrected_ = est.alpha_ - est.alpha_bias_
    z = float(ndtri(0.5 + est.confidence_level / 2.0))
    se = float(np.std(est.alpha_bootstrap_, ddof=1))
    centre = est.alpha_corrected_
    est.alpha_ci_ = (centre - z * se, centre + z * se)


def wishart_eigenvalues(pop: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Eigenvalues of the sample covariance of n Gaussian stimuli with covariance diag(pop).

    That covariance is ``Wishart(diag(pop), n - 1) / (n - 1)``; with ``n - 1 >=
    len(pop)`` it is drawn by Bartlett's decomposition ``D^1/2 L L' D^1/2``
    (L lower triangular, ``L_ii^2 ~ chi2(n - i)``, ``L_ij ~ N(0, 1)`` below),
    otherwise from the (n - 1) x (n - 1) Gram matrix of Gaussian columns,
    built a block of units at a time.

    Parameters
    ----------
    pop : ndarray of shape (p,)
        Population eigenvalues.
    n : int
        Number of stimuli (``n - 1`` degrees of freedom after centring).
    rng : numpy Generator

    Returns
    -------
    ndarray of shape (min(p, n - 1),)
        Descending.
    """
    from .._backend import eigvalsh

    dof, p = n - 1, pop.size
    root = np.sqrt(pop)
    if dof >= p:
        L = np.tril(rng.standard_normal((p, p)), -1)
        L[np.diag_indices(p)] = np.sqrt(rng.chisquare(dof - np.arange(p)))
        B = root[:, None] * L
        return eigvalsh(B @ B.T) / dof
    G = np.zeros((dof, dof))
    step = max(1, (1 << 22) // dof)
    for start in range(0, p, step):
        Z = rng.standard_normal((dof, min(step, p - start))) * root[start : start + step]
        G += Z @ Z.T
    return eigvalsh((G + G.T) / 2) / dof


def _simulated_bias(est: Any, rng: np.random.Generator, n_sim: int) -> float:
    """As ``PowerLawSpectrum._simulated_bias``, with data that never sit in memory whole."""
    lo, hi = est._range
    pop = est._population(est.alpha_, est.intercept_ - 0.5 * est.alpha_ * math.log(lo * hi))
    n, n_units = est.n_stimuli_, est.n_features_in_
    alphas = []
    for _ in range(n_sim):
        if est.method == "pca":
            lam = wishart_eigenvalues(pop, n, rng)
            k = usable_count(lam, pop.size)
        else:
            lam, k = _simulated_cvpca(est, pop, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = est._refit(lam, k)
        if fit is not None:
            alphas.append(fit.alpha)
    return float(np.mean(alphas) - est.alpha_) if alphas else 0.0


def _simulated_cvpca(est: Any, pop: np.ndarray, rng: np.random.Generator):
    """cvPCA of Gaussian repeats (signal diag(pop) plus isotropic noise), as lazy dask arrays."""
    import dask.array as da

    n, n_units = est.n_stimuli_, est.n_features_in_
    noise_sd = math.sqrt(max(float(np.sum(est.noise_eigenvalues_)), 0.0) / n_units)
    width = max(n_units, pop.size)
    scale = np.zeros(width)
    scale[: pop.size] = np.sqrt(pop)
    rows = max(1, (64 << 20) // (8 * width))
    gen = da.random.default_rng(int(rng.integers(2**63 - 1)))
    signal = gen.standard_normal((n, width), chunks=(rows, -1)) * scale
    A = signal + gen.standard_normal((n, width), chunks=(rows, -1)) * noise_sd
    B = signal + gen.standard_normal((n, width), chunks=(rows, -1)) * noise_sd
    problem = StreamedCVPCA(A, B, n_shuffles=est.n_shuffles, rng=rng, device=est.device)
    return problem.spectrum(est.n_shuffles, rng)
