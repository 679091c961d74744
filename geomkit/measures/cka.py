"""Centred kernel alignment (CKA) between two representations of the same stimuli.

CKA compares two representations ``X`` (n_stimuli x p) and ``Y`` (n_stimuli x q)
through their stimulus-by-stimulus kernels ``K`` and ``L``:

    CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

* **Biased HSIC** (Gretton et al. 2005): ``tr(K H L H) / (n - 1)^2`` with
  ``H = I - 11^T / n``. For the linear kernel ``K = X X^T`` this is
  ``||X_c^T Y_c||_F^2 / (n - 1)^2`` (``X_c`` the column-centred data), which is
  how it is computed when ``n_stimuli`` exceeds the unit count: only p x p,
  q x q and p x q products, never an n x n matrix (Kornblith et al. 2019).
* **Debiased (unbiased) HSIC** (Song et al. 2012; for CKA, Nguyen, Raghu &
  Kornblith 2021): with ``K~`` the kernel with its diagonal set to 0,

      HSIC_u = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2))
                - 2 / (n-2) 1^T K~ L~ 1] / (n (n-3)),

  a U-statistic over distinct stimuli: unbiased for the population HSIC, so
  the debiased CKA of two independent representations is near 0 where the
  biased one is inflated by the finite sample (it grows with units / stimuli).
* **RBF kernel**: ``k(x, x') = exp(-||x - x'||^2 / (2 sigma^2))`` with
  ``sigma`` a multiple (parameter ``sigma``) of the median Euclidean distance
  between distinct stimuli (Kornblith et al. 2019 use the same heuristic).

**Noise correction with repeats.** Either side may be ``(n_repeats, n_stimuli,
n_units)``: ``x_ri = s_i + e_ri`` with trial noise ``e`` of mean 0, independent
across repeats and stimuli (any covariance across units, any variance per
stimulus). Averaging the repeats leaves noise in the self term ``HSIC(X, X)``
(through ``(x_i . x_j)^2``), which deflates CKA. The repeat-split estimator
takes two independent copies, the means of the even and of the odd repeats
``X_1``, ``X_2``, and estimates ``HSIC(S, S)`` with the kernel ``X_1 X_2^T``
against its transpose, in the U-statistic over distinct stimuli: every term
is then a product of independent noisy factors, so the estimate is
**unbiased for the noise-free HSIC(S, S)**. The cross term uses the debiased
HSIC of the repeat means, whose zeroed diagonal already removes independent
noise (when both sides have the same number of repeats they are taken as
recorded in the same trials, and halves of opposite parity are paired, which
removes noise shared by the two sides within a trial too). The CKA is the
ratio of these unbiased estimates: consistent for the noise-free CKA, not
exactly unbiased. The biased HSIC cannot be corrected this way (its diagonal
terms keep the noise), so the correction uses the debiased estimator.

References
----------
Gretton, A., Bousquet, O., Smola, A. & Schoelkopf, B. (2005). Measuring statistical
dependence with Hilbert-Schmidt norms. ALT.

Song, L., Smola, A., Gretton, A., Bedo, J. & Borgwardt, K. (2012). Feature
selection via dependence maximization. JMLR 13, 1393-1434.

Kornblith, S., Norouzi, M., Lee, H. & Hinton, G. (2019). Similarity of neural
network representations revisited. ICML.

Nguyen, T., Raghu, M. & Kornblith, S. (2021). Do wide and deep networks learn the
same things? ICLR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._params import Boolean, Options, Real, validate_params
from ._repeats import (NOISE_CORRECTIONS, check_pair, check_split_possible, halves, has_repeats,
                       trial_mean, with_intervals)
from ._resampling import ResamplingResult
from ._similarity_estimator import RESAMPLING_CONSTRAINTS, _PairedSimilarity

__all__ = ["cka", "CKA"]

_ZERO_VARIANCE_RTOL = 1e-12


# ---------------------------------------------------------------------------
# one representation, prepared once (compare_layers reuses it for every pair)
# ---------------------------------------------------------------------------


@dataclass
class _Prepared:
    """A representation ready for HSIC: centred features or a kernel, and its self-HSIC.

    ``X`` (n, p) centred features or ``K`` (n, n) a kernel (centred for the
    biased estimator, raw for the debiased one); ``d`` the kernel's diagonal
    and ``r`` the row sums of the zero-diagonal kernel (debiased only).
    """

    n: int
    debiased: bool
    X: np.ndarray | None = None
    K: np.ndarray | None = None
    d: np.ndarray | None = None
    r: np.ndarray | None = None
    self_hsic: float = np.nan
    linear: bool = True


def _centred(X: np.ndarray) -> np.ndarray:
    return X - X.mean(axis=-2, keepdims=True)


def _check_variance(Xc: np.ndarray, X: np.ndarray, name: str) -> None:
    scale = np.linalg.norm(X)
    if scale == 0.0 or np.linalg.norm(Xc) <= _ZERO_VARIANCE_RTOL * scale:
        raise ValueError(
            f"{name} has zero variance across stimuli (every stimulus gives the same "
            f"response, shape {X.shape}); CKA is undefined for a constant representation."
        )


def _rbf_kernel(X: np.ndarray, sigma: float, name: str) -> np.ndarray:
    sq = np.einsum("ij,ij->i", X, X)
    D2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (X @ X.T), 0.0)
    np.fill_diagonal(D2, 0.0)
    median = np.median(np.sqrt(D2[np.triu_indices_from(D2, k=1)]))
    if median == 0.0:
        raise ValueError(
            f"{name}: the median distance between stimuli is 0 (most stimuli give the same "
            "response), so the RBF bandwidth is 0; CKA is undefined."
        )
    return np.exp(-D2 / (2.0 * (sigma * median) ** 2))


def _double_centre(K: np.ndarray) -> np.ndarray:
    row = K.mean(axis=1, keepdims=True)
    return K - row - row.T + K.mean()


def _kernel_state(K: np.ndarray, *, debiased: bool, centre: bool, linear: bool) -> _Prepared:
    """A kernel's HSIC state: double-centred for the biased estimator (where ``centre``)."""
    n = K.shape[0]
    state = _Prepared(n, debiased, K=_double_centre(K) if centre and not debiased else K,
                      linear=linear)
    if debiased:
        state.d = np.diag(K).copy()
        state.r = K.sum(axis=1) - state.d  # row sums of the zero-diagonal kernel
    state.self_hsic = _cross_hsic(state, state)
    return state


def _prepare(X: np.ndarray, *, kernel: str, debiased: bool, sigma: float, name: str,
             gram: bool | None = None) -> _Prepared:
    """Centre (linear) or build the kernel (rbf) of one 2-D representation, and its self-HSIC."""
    n, p = X.shape
    Xc = _centred(X)
    _check_variance(Xc, X, name)
    if gram is None:
        gram = kernel == "rbf" or n <= p  # feature-space products when n_stimuli > units
    if kernel == "rbf":
        return _kernel_state(_rbf_kernel(Xc, sigma, name), debiased=debiased, centre=True,
                             linear=False)
    if gram:
        return _kernel_state(Xc @ Xc.T, debiased=debiased, centre=False, linear=True)
    state = _Prepared(n, debiased, X=Xc)
    if debiased:
        state.d = np.einsum("ij,ij->i", Xc, Xc)
        state.r = -state.d  # centred features: X^T 1 = 0, so the row sums of K~ are -diag(K)
    state.self_hsic = _cross_hsic(state, state)
    return state


def _subset(state: _Prepared, idx: np.ndarray) -> _Prepared:
    """A linear Gram state of the stimuli ``idx`` (a resample) from the full-sample Gram.

    The Gram of the rows ``X_c[idx]`` is ``K[idx][:, idx]``: no n x n x p
    product per resample. Both estimators are invariant to the shift by the
    resample's mean (the biased one double-centres, the debiased one is a
    U-statistic of differences).
    """
    K = np.take(np.take(state.K, idx, axis=0), idx, axis=1)  # = K[np.ix_(idx, idx)], faster
    return _kernel_state(K, debiased=state.debiased, centre=True, linear=True)


def _trace_product(a: _Prepared, b: _Prepared) -> float:
    """tr(K_a K_b) from whichever of features / kernel each side holds."""
    # np.vdot: a BLAS dot over the flattened (contiguous) matrices
    if a.X is not None and b.X is not None:
        G = a.X.T @ a.X if a is b else a.X.T @ b.X  # a is b: one syrk
        return float(np.vdot(G, G))
    if a.K is not None and b.K is not None:
        return float(np.vdot(a.K, b.K))
    K, X = (a.K, b.X) if a.K is not None else (b.K, a.X)
    return float(np.einsum("ij,ij->", K @ X, X))


def _hsic_u(n: int, trace: float, r_a: np.ndarray, r_b: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC from tr(K~ L~), and the row sums of K~ and L~."""
    total_a, total_b = r_a.sum(), r_b.sum()
    return float(
        (trace + total_a * total_b / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (r_a @ r_b))
        / (n * (n - 3))
    )


def _cross_hsic(a: _Prepared, b: _Prepared) -> float:
    n = a.n
    trace = _trace_product(a, b)
    if not a.debiased:
        return trace / (n - 1) ** 2
    return _hsic_u(n, trace - float(a.d @ b.d), a.r, b.r)


def _split_self_hsic(X1: np.ndarray, X2: np.ndarray) -> float:
    """Unbiased HSIC(S, S) from two independent noisy copies X1, X2 of the signal S.

    The kernel ``K = X1 X2^T`` is unbiased for ``S S^T`` but not symmetric;
    paired with ``L = K^T`` in the U-statistic over distinct stimuli
    ``(i, j, q, r)``, every product ``K_ij L_..`` involves independent repeats
    (e.g. ``K_ij L_ij = (x1_i . x2_j)(x2_i . x1_j)``). The sum over distinct
    indices is written with the traces and row / column sums of the
    zero-diagonal kernels (inclusion-exclusion), so for n > p only p x p
    products are formed.
    """
    n, p = X1.shape
    X1, X2 = _centred(X1), _centred(X2)
    d = np.einsum("ij,ij->i", X1, X2)  # diag(K)
    if n > p:
        C = X2.T @ X1
        tr_kk = float(np.einsum("ij,ji->", C, C))  # sum_ij K_ij K_ji
        tr_kkt = float(np.einsum("ij,ij->", X1.T @ X1, X2.T @ X2))  # sum_ij K_ij^2
        row = col = -d  # centred copies: X^T 1 = 0
    else:
        K = X1 @ X2.T
        tr_kk = float(np.einsum("ij,ji->", K, K))
        tr_kkt = float(np.einsum("ij,ij->", K, K))
        row, col = K.sum(axis=1) - d, K.sum(axis=0) - d
    dd = float(d @ d)
    s1 = tr_kk - dd  # sum_{i != j} K_ij L_ij with L = K^T
    s1t = tr_kkt - dd  # sum_{i != j} K_ij L_ji
    total = float(row.sum())
    # L = K^T: its row sums are K's column sums and vice versa.
    rr, cc, rc = float(row @ col), float(col @ row), float(row @ row)
    distinct4 = total * total + s1 + s1t - rr - float(col @ col) - rc - cc
    distinct3 = rr - s1  # sum over distinct (i, j, q) of K_ij L_iq
    return (s1 / (n * (n - 1)) + distinct4 / (n * (n - 1) * (n - 2) * (n - 3))
            - 2.0 * distinct3 / (n * (n - 1) * (n - 2)))


# ---------------------------------------------------------------------------
# the plain function
# ---------------------------------------------------------------------------

_CONSTRAINTS = {
    "kernel": [Options("linear", "rbf")],
    "debiased": [Boolean(), None],
    "sigma": [Real(0, None, closed="neither")],
    "noise_correction": [Options(*NOISE_CORRECTIONS)],
}


def _resolve_debiased(debiased: bool | None, corrected: bool, kernel: str) -> bool:
    if corrected and kernel != "linear":
        raise ValueError(
            "cka: the repeat-split noise correction is defined for kernel='linear' only (an RBF "
            "kernel of noisy responses is biased even across repeats); got kernel="
            f"{kernel!r}. Pass noise_correction='none' to average the repeats first."
        )
    if corrected and debiased is False:
        raise ValueError(
            "cka: the repeat-split noise correction needs the debiased (unbiased) HSIC; the "
            "biased one keeps trial noise in its diagonal terms. Got debiased=False with "
            "noise_correction='split'; pass debiased=True (or None), or noise_correction='none'."
        )
    return corrected if debiased is None else bool(debiased)


def _cka_arrays(X: np.ndarray, Y: np.ndarray, *, kernel: str, debiased: bool | None,
                sigma: float, noise_correction: str) -> float:
    """CKA of two checked float64 arrays (2-D, or 3-D with repeats)."""
    corrected = noise_correction == "split"
    if corrected:
        check_split_possible(X, Y, "cka")
    debiased = _resolve_debiased(debiased, corrected, kernel)
    n = X.shape[-2]
    if debiased and n < 4:
        raise ValueError(f"cka: debiased=True needs at least 4 stimuli; got {n}.")
    kw = dict(kernel=kernel, debiased=debiased, sigma=sigma)
    mean_x, mean_y = trial_mean(X), trial_mean(Y)
    px, py = _prepare(mean_x, name="X", **kw), _prepare(mean_y, name="Y", **kw)
    if not corrected:
        return _ratio(_cross_hsic(px, py), px.self_hsic, py.self_hsic)
    hxx = _split_self_hsic(*halves(X)) if has_repeats(X) else px.self_hsic
    hyy = _split_self_hsic(*halves(Y)) if has_repeats(Y) else py.self_hsic
    if has_repeats(X) and has_repeats(Y) and X.shape[0] == Y.shape[0]:
        # Same trials on both sides: pair opposite halves so that shared trial noise cancels.
        (x1, x2), (y1, y2) = halves(X), halves(Y)
        hxy = 0.5 * sum(_cross_hsic(_prepare(a, name="X", **kw), _prepare(b, name="Y", **kw))
                        for a, b in ((x1, y2), (x2, y1)))
    else:
        hxy = _cross_hsic(px, py)
    return _ratio(hxy, hxx, hyy)


def _range(debiased: bool | None, noise_correction: str) -> tuple[float, float]:
    """Where CKA can lie: [0, 1] biased; [-1, 1] debiased (the U-centred HSIC is an inner
    product, so Cauchy-Schwarz holds); unbounded with the split noise correction."""
    if noise_correction == "split":
        return (-np.inf, np.inf)
    return (-1.0, 1.0) if debiased else (0.0, 1.0)


def _reference(X: np.ndarray, Y: np.ndarray, kernel: str, debiased: bool | None, sigma: float,
               noise_correction: str):
    """What the bootstrap resamples of a debiased CKA scatter around: the biased CKA.

    Resamples are drawn from the stimuli's empirical distribution, whose
    population CKA is the biased (V-statistic) CKA of the data; the
    debiased estimate on a resample is (nearly) unbiased for that, not for the
    debiased estimate of the data. For the split noise correction the same
    holds of its cross-repeat terms: the reference is :func:`_split_reference`.
    None (the estimate itself) for the biased CKA.
    """
    if noise_correction == "split":
        return lambda: _split_reference(X, Y)
    if not debiased:
        return None
    return lambda: _cka_arrays(X, Y, kernel=kernel, debiased=False, sigma=sigma,
                               noise_correction="none")


def _split_reference(X: np.ndarray, Y: np.ndarray) -> float | None:
    """The split CKA of the stimuli's empirical distribution: its HSIC terms as V-statistics.

    Each term of the split estimator, a U-statistic over distinct stimuli of
    cross-repeat products, is replaced by the plug-in sum over all stimulus
    pairs (centred data: ``tr(K L)``; the common 1 / n^2 cancels in the
    ratio). A resample that repeats stimulus i pairs its repeat tuple with
    itself, so its cross-repeat products stay free of noise bias, and these
    sums are what the resampled estimates scatter around. None where a self
    term is <= 0.
    """
    def v_cross(A: np.ndarray, B: np.ndarray, transpose: bool = False) -> float:
        C = _centred(A).T @ _centred(B)
        return float(np.einsum("ij,ji->", C, C) if transpose else np.vdot(C, C))

    # HSIC(S, S) from two copies: sum_ij K_ij K_ji with K = X1 X2^T (a side without repeats: its mean twice)
    hxx, hyy = (v_cross(*halves(A), transpose=True) for A in (X, Y))
    if hxx <= 0.0 or hyy <= 0.0:
        return None
    if has_repeats(X) and has_repeats(Y) and X.shape[0] == Y.shape[0]:
        (x1, x2), (y1, y2) = halves(X), halves(Y)
        hxy = 0.5 * (v_cross(x1, y2) + v_cross(x2, y1))
    else:
        hxy = v_cross(trial_mean(X), trial_mean(Y))
    return hxy / np.sqrt(hxx * hyy)


def _ratio(hxy: float, hxx: float, hyy: float) -> float:
    for name, h in (("X", hxx), ("Y", hyy)):
        if not h > 0.0:
            raise ValueError(
                f"cka: the estimate of HSIC({name}, {name}) is {h:.3g} <= 0, so CKA is undefined "
                "(a debiased / noise-corrected estimate can be <= 0 when the signal is weak "
                "against the noise or there are few stimuli)."
            )
    return float(hxy / np.sqrt(hxx * hyy))


def cka(
    X: Any,
    Y: Any,
    *,
    kernel: str = "linear",
    debiased: bool | None = None,
    sigma: float = 1.0,
    noise_correction: str = "none",
    n_bootstraps: int = 0,
    n_permutations: int = 0,
    confidence_level: float = 0.95,
    random_state: Any = None,
) -> float | ResamplingResult:
    """Centred kernel alignment between two representations of the same stimuli.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
        First representation (numpy, torch or xarray); a list of equally
        shaped (n_stimuli, n_units_x) arrays counts as repeats.
    Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
        Second representation, same stimuli in the same order (unit counts
        may differ).
    kernel : {"linear", "rbf"}, default="linear"
        Stimulus kernel. Linear CKA is computed from feature-space products
        when a side has more stimuli than units (no n x n matrix).
    debiased : bool or None, default=None
        Use the unbiased HSIC of Song et al. (2012). None means False for
        ``noise_correction="none"`` and True for ``"split"`` (which needs it).
    sigma : float, default=1.0
        RBF bandwidth as a multiple of the median Euclidean distance between
        distinct stimuli (kernel="rbf" only).
    noise_correction : {"none", "split"}, default="none"
        ``"split"`` (needs a repeat axis on at least one side): the
        repeat-split estimator, whose HSIC terms are unbiased for the
        noise-free signal under trial noise independent across repeats and
        stimuli (module docstring). ``"none"`` averages the repeats first
        (noise then deflates CKA).
    n_bootstraps : int, default=0
        Paired bootstrap resamples of the stimuli; 0 skips.
    n_permutations : int, default=0
        Shuffles of ``Y``'s stimulus order for a one-sided permutation p-value; 0 skips.
    confidence_level : float, default=0.95
        Coverage of the basic bootstrap interval.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the resampling.

    Returns
    -------
    float or ResamplingResult
        CKA; in [0, 1] for the biased estimator, close to 0 for unrelated
        representations with the debiased one (which may be slightly
        negative, or above 1 with noise correction). With resampling, a
        :class:`~geomkit.measures._resampling.ResamplingResult`: ``value``
        (plug-in), ``value_corrected`` (``2 value - median(bootstrap)``, the
        value to report with the interval), ``ci`` (basic bootstrap
        interval, centred on ``value_corrected`` and clipped to the range
        above), ``p_value``, ...

    Raises
    ------
    ValueError
        Different stimulus counts, fewer than 3 stimuli (4 when debiased),
        NaN / inf, a constant representation (CKA undefined), repeats of
        unequal shape.

    See Also
    --------
    CKA : the estimator, with bootstrap interval and permutation p-value.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 10))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    >>> round(cka(X, 3.0 * X @ Q + 1.0), 10)
    1.0
    >>> round(cka(X, rng.normal(size=(100, 20))), 2)  # unrelated, but biased upwards
    0.13
    >>> abs(cka(X, rng.normal(size=(100, 20)), debiased=True)) < 0.05
    True
    """
    validate_params(
        {"kernel": kernel, "debiased": debiased, "sigma": sigma,
         "noise_correction": noise_correction, "n_bootstraps": n_bootstraps,
         "n_permutations": n_permutations, "confidence_level": confidence_level,
         "random_state": random_state},
        {**_CONSTRAINTS, **RESAMPLING_CONSTRAINTS}, caller="cka",
    )
    X, Y = check_pair(X, Y)
    return with_intervals(
        lambda A, B: _cka_arrays(A, B, kernel=kernel, debiased=debiased, sigma=sigma,
                                 noise_correction=noise_correction),
        X, Y, n_bootstraps=n_bootstraps, n_permutations=n_permutations,
        confidence_level=confidence_level, random_state=random_state,
        bounds=_range(debiased, noise_correction),
        reference=_reference(X, Y, kernel, debiased, sigma, noise_correction),
    )


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------


class CKA(_PairedSimilarity):
    """Centred kernel alignment with a paired-bootstrap interval and a permutation p-value.

    Parameters
    ----------
    kernel : {"linear", "rbf"}, default="linear"
        See :func:`cka`.
    debiased : bool or None, default=None
        See :func:`cka`.
    sigma : float, default=1.0
        RBF bandwidth in units of the median inter-stimulus distance.
    noise_correction : {"none", "split"}, default="none"
        ``"split"``: the repeat-split estimate (see :func:`cka`).
    n_bootstraps : int, default=0
        Paired bootstrap resamples of the stimuli (0: no interval).
    n_permutations : int, default=0
        Shuffles of ``Y``'s stimulus order for the p-value (0: none).
    confidence_level : float, default=0.95
        Nominal coverage of the interval.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the resampling.

    Attributes
    ----------
    value_ : float
        CKA of the fitted pair (the plug-in estimate).
    value_corrected_ : float
        ``2 value_ - median(bootstrap_)``: CKA less its bootstrap estimate of
        bias, the value to report with ``ci_`` (NaN without bootstraps).
    ci_ : tuple of float
        ``(low, high)`` basic bootstrap interval, ``(2 value_ - q_high,
        2 value_ - q_low)`` clipped to CKA's range; it contains
        ``value_corrected_``, not necessarily ``value_`` (NaN without bootstraps).
    ci_percentile_ : tuple of float
        ``(q_low, q_high)``, the percentile interval, for comparison.
    p_value_ : float
        One-sided permutation p-value (NaN without permutations).
    bootstrap_ : ndarray of shape (n_valid,)
        Bootstrap replicates.
    null_ : ndarray of shape (n_permutations,)
        Permutation null distribution.
    n_stimuli_ : int
        Stimuli in the fitted pair.

    See Also
    --------
    cka : the plain function.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> Y = X @ rng.normal(size=(5, 8)) + rng.normal(size=(200, 8))
    >>> est = CKA(n_bootstraps=200, n_permutations=99, random_state=0).fit(X, Y)
    >>> bool(est.ci_[0] <= est.value_corrected_ <= est.ci_[1]), est.p_value_
    (True, 0.01)
    """

    _parameter_constraints = {
        **_CONSTRAINTS,
        **RESAMPLING_CONSTRAINTS,
    }

    def __init__(self, *, kernel: str = "linear", debiased: bool | None = None,
                 sigma: float = 1.0, noise_correction: str = "none", n_bootstraps: int = 0,
                 n_permutations: int = 0, confidence_level: float = 0.95,
                 random_state: Any = None) -> None:
        self.kernel = kernel
        self.debiased = debiased
        self.sigma = sigma
        self.noise_correction = noise_correction
        self.n_bootstraps = n_bootstraps
        self.n_permutations = n_permutations
        self.confidence_level = confidence_level
        self.random_state = random_state

    def _bounds(self) -> tuple[float, float]:
        return _range(self.debiased, self.noise_correction)

    def _reference(self, X: np.ndarray, Y: np.ndarray) -> float | None:
        ref = _reference(X, Y, self.kernel, self.debiased, self.sigma, self.noise_correction)
        return None if ref is None else ref()

    def _statistic(self, X: np.ndarray, Y: np.ndarray) -> float:
        return _cka_arrays(X, Y, kernel=self.kernel, debiased=self.debiased, sigma=self.sigma,
                           noise_correction=self.noise_correction)
