"""Representational similarity analysis: dissimilarity matrices (RDMs) and their comparison.

An RDM holds a dissimilarity for every pair of stimuli (Kriegeskorte, Mur &
Bandettini 2008). The conventions are rsatoolbox's (0.3), whose results these
functions reproduce to rounding:

* ``"correlation"``: ``1 - r``, Pearson's r between two stimuli's patterns
  across units;
* ``"euclidean"``: the *squared* Euclidean distance divided by the number of
  units;
* ``"crossnobis"``: the cross-validated squared (Mahalanobis) distance from
  repeats (Walther et al. 2016; Diedrichsen et al. 2021). With responses
  ``x_ri = s_i + e_ri`` on repeats ``r = 1..R``, rsatoolbox's leave-one-repeat-out
  estimate ``mean_r (mean_{r' != r} x_r'i - x_r'j)^T P (x_ri - x_rj) / n_units``
  equals the mean over ordered pairs of distinct repeats, which is computed here
  in closed form. As the two factors of every product come from different
  repeats, it is **unbiased for the noise-free**
  ``(s_i - s_j)^T P (s_i - s_j) / n_units`` whenever the noise has mean 0 and
  is independent across repeats (any covariance across units and across
  stimuli within a repeat), whereas the distance of repeat means is inflated
  by the noise. ``P`` is a noise precision (identity by default: a
  cross-validated Euclidean distance).

RDMs are compared by Spearman's rho, Kendall's tau-a (no tie correction:
appropriate when a model predicts tied dissimilarities; Nili et al. 2014),
the cosine, or the **whitened cosine** (rsatoolbox's ``"cosine_cov"``;
Diedrichsen et al. 2021): the cosine between the double-centred matrices
``-1/2 H D H``, which accounts for the covariance of distance estimates that
share a stimulus and equals linear CKA computed from the RDMs.

References
----------
Kriegeskorte, N., Mur, M. & Bandettini, P. (2008). Representational similarity
analysis. Front. Syst. Neurosci. 2, 4.

Nili, H. et al. (2014). A toolbox for representational similarity analysis.
PLoS Comput. Biol. 10(4), e1003553.

Walther, A. et al. (2016). Reliability of dissimilarity measures for multi-voxel
pattern analysis. NeuroImage 137, 188-200.

Diedrichsen, J., Berlot, E., Mur, M., Schuett, H. H. & Kriegeskorte, N. (2021).
Comparing representational geometries using whitened unbiased-distance-matrix
similarity. Neurons, Behavior, Data analysis, and Theory 5(3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._params import Integer, Options, validate_params
from .._validation import as_float_array
from ._repeats import check_pair, check_representation, has_repeats, trial_mean, with_intervals
from ._resampling import ResamplingResult
from ._similarity_estimator import RESAMPLING_CONSTRAINTS, _PairedSimilarity

__all__ = ["rdm", "compare_rdms", "rsa", "RSA"]

METRICS = ("correlation", "euclidean", "crossnobis")
METHODS = ("spearman", "kendall_tau_a", "cosine", "whitened_cosine", "pearson")


# ---------------------------------------------------------------------------
# RDMs
# ---------------------------------------------------------------------------


def _with_repeats(X: Any, repeats: int | None) -> np.ndarray:
    """``X`` as (n_stimuli, n_units) or (n_repeats, n_stimuli, n_units)."""
    if repeats is None:
        return check_representation(X, "X")
    arr = as_float_array(X, "X", ndim=(2, 3))
    if arr.ndim == 3:
        if arr.shape[0] != repeats:
            raise ValueError(
                f"rdm: repeats={repeats} but X has {arr.shape[0]} repeats (shape {arr.shape}); "
                "pass repeats=None for a 3-D X."
            )
        return check_representation(arr, "X")
    if arr.shape[0] % repeats:
        raise ValueError(
            f"rdm: X has {arr.shape[0]} rows, not a multiple of repeats={repeats}; a 2-D X "
            "with repeats stacks them repeat by repeat: (n_repeats * n_stimuli, n_units)."
        )
    return check_representation(arr.reshape(repeats, -1, arr.shape[1]), "X")


def _crossnobis_kernel(X: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """Mean over ordered pairs of distinct repeats of ``X_r P X_r'^T``."""
    R = X.shape[0]
    total = X.sum(axis=0)
    right = (lambda A: A) if noise is None else (lambda A: A @ noise)
    same = sum(right(x) @ x.T for x in X)
    return (right(total) @ total.T - same) / (R * (R - 1))


def _rdm_arrays(X: np.ndarray, metric: str, noise: np.ndarray | None, name: str = "X") -> np.ndarray:
    n_units = X.shape[-1]
    if metric == "crossnobis":
        if not has_repeats(X):
            raise ValueError(
                f"metric='crossnobis' needs repeats: {name} of shape (n_repeats, n_stimuli, "
                f"n_units) (or, for rdm, a 2-D X with repeats=R); got shape {X.shape} without "
                "repeats."
            )
        K = _crossnobis_kernel(X, noise)
        d = np.diag(K)
        return (d[:, None] + d[None, :] - K - K.T) / n_units
    M = trial_mean(X)
    if metric == "euclidean":
        sq = np.einsum("ij,ij->i", M, M)
        D = (sq[:, None] + sq[None, :] - 2.0 * (M @ M.T)) / n_units
        np.fill_diagonal(D, 0.0)
        return D
    Mc = M - M.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", Mc, Mc))
    if np.any(norms == 0.0):
        raise ValueError(
            f"rdm: {int(np.sum(norms == 0.0))} stimuli have the same response in every unit, "
            "so their correlation distance is undefined; use metric='euclidean'."
        )
    Mc /= norms[:, None]
    D = 1.0 - Mc @ Mc.T
    np.fill_diagonal(D, 0.0)
    return D


def _check_noise(noise: Any, n_units: int) -> np.ndarray | None:
    if noise is None:
        return None
    P = as_float_array(noise, "noise", ndim=2)
    if P.shape != (n_units, n_units):
        raise ValueError(
            f"rdm: noise must be a ({n_units}, {n_units}) precision matrix over units; got "
            f"shape {P.shape}."
        )
    return P


def rdm(X: Any, *, metric: str = "correlation", repeats: int | None = None,
        noise: Any = None) -> np.ndarray:
    """Representational dissimilarity matrix of the stimuli in ``X``.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units) or (n_repeats, n_stimuli, n_units)
        Responses; with repeats, "correlation" and "euclidean" use the repeat
        mean and "crossnobis" cross-validates over repeats.
    metric : {"correlation", "euclidean", "crossnobis"}, default="correlation"
        Dissimilarity, in rsatoolbox's conventions (module docstring):
        ``1 - r``, squared Euclidean / n_units, cross-validated squared
        Mahalanobis / n_units.
    repeats : int, optional
        For a 2-D ``X`` holding repeats stacked repeat by repeat, i.e. of
        shape (n_repeats * n_stimuli, n_units): their number.
    noise : array-like of shape (n_units, n_units), optional
        Noise precision for "crossnobis" (identity if None).

    Returns
    -------
    ndarray of shape (n_stimuli, n_stimuli)
        Symmetric, zero diagonal, float64. Crossnobis entries can be
        negative (unbiased estimates of distances near 0).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> rdm(X, metric="euclidean")  # squared distance / 2 units
    array([[0. , 0.5, 2. ],
           [0.5, 0. , 2.5],
           [2. , 2.5, 0. ]])
    """
    validate_params(
        {"metric": metric, "repeats": repeats},
        {"metric": [Options(*METRICS)], "repeats": [Integer(2, None), None]},
        caller="rdm",
    )
    X = _with_repeats(X, repeats)
    return _rdm_arrays(X, metric, _check_noise(noise, X.shape[-1]))


# ---------------------------------------------------------------------------
# comparing RDMs
# ---------------------------------------------------------------------------


def _as_rdm(A: Any, name: str) -> np.ndarray:
    """A square RDM (n, n) from a square or condensed (n (n - 1) / 2,) input."""
    arr = as_float_array(A, name, ndim=(1, 2))
    if arr.ndim == 2:
        if arr.shape[0] != arr.shape[1]:
            raise ValueError(f"{name} must be a square RDM or a condensed vector; got shape {arr.shape}.")
        n = arr.shape[0]
    else:
        n = int(round((1 + np.sqrt(1 + 8 * arr.size)) / 2))
        if n * (n - 1) // 2 != arr.size:
            raise ValueError(
                f"{name} has {arr.size} entries, not n (n - 1) / 2 for any n; a condensed RDM "
                "holds the upper triangle (as scipy.spatial.distance.squareform)."
            )
        square = np.zeros((n, n))
        square[np.triu_indices(n, k=1)] = arr
        arr = square + square.T
    if n < 3:
        raise ValueError(f"{name} is an RDM of {n} stimuli; at least 3 are needed.")
    return arr


def _ties(v: np.ndarray) -> int:
    _, counts = np.unique(v, return_counts=True)
    return int(np.sum(counts * (counts - 1) // 2))


def _kendall_tau_a(a: np.ndarray, b: np.ndarray) -> float:
    """(concordant - discordant) / (m (m - 1) / 2), via scipy's O(m log m) tau-b."""
    from scipy.stats import kendalltau

    total = a.size * (a.size - 1) // 2
    ties_a, ties_b = _ties(a), _ties(b)
    if ties_a == total or ties_b == total:
        return 0.0  # one side all tied: no pair is concordant or discordant
    tau_b = kendalltau(a, b, variant="b").statistic
    # tau_b = (C - D) / sqrt((T - ties_a)(T - ties_b)), tau_a = (C - D) / T.
    return float(tau_b * np.sqrt((total - ties_a) * (total - ties_b)) / total)


def _average_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..m, ties given their average rank (as ``scipy.stats.rankdata``).

    An unstable sort suffices, since tied values share one rank; numpy's
    default (SIMD) sort is several times faster than the stable sort
    ``rankdata`` uses.
    """
    order = np.argsort(v)
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    counts = np.diff(np.r_[starts, v.size])
    ranks = np.empty(v.size)
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return ranks


def _double_centred(D: np.ndarray) -> np.ndarray:
    G = -0.5 * D
    row = G.mean(axis=1, keepdims=True)
    return G - row - row.T + G.mean()


def _comparable(D: np.ndarray, method: str, keep: np.ndarray | None = None) -> np.ndarray:
    """An RDM turned into the vector that ``method`` compares by a dot product (unit norm).

    Prepared once per RDM, so that comparing many RDMs (compare_layers) ranks
    and centres each once. ``keep`` selects upper-triangle pairs. Kendall's
    tau-a is no dot product: its vector is the raw upper triangle.
    """
    if method == "whitened_cosine":
        v = _double_centred(D).ravel()
    else:
        v = D[np.triu_indices(D.shape[0], k=1)]
        if keep is not None:
            v = v[keep]
        if method == "kendall_tau_a":
            return v
        if method == "spearman":
            v = _average_ranks(v)
        if method in ("spearman", "pearson"):
            v = v - v.mean()
    norm = np.sqrt(v @ v)
    if norm == 0.0:
        raise ValueError(
            f"compare_rdms: an RDM is constant{' after centring' if method != 'cosine' else ''}, "
            f"so the {method} comparison is undefined."
        )
    return v / norm


def _pair(a: np.ndarray, b: np.ndarray, method: str) -> float:
    return _kendall_tau_a(a, b) if method == "kendall_tau_a" else float(a @ b)


def _compare(A: np.ndarray, B: np.ndarray, method: str, keep: np.ndarray | None = None) -> float:
    """Compare two square RDMs; ``keep`` (optional) selects the stimuli pairs to use."""
    return _pair(_comparable(A, method, keep), _comparable(B, method, keep), method)


def compare_rdms(A: Any, B: Any, *, method: str = "spearman") -> float:
    """Similarity of two RDMs of the same stimuli.

    Parameters
    ----------
    A : array-like of shape (n_stimuli, n_stimuli) or (n_stimuli * (n_stimuli - 1) / 2,)
        First RDM, square or condensed (upper triangle, row by row).
    B : array-like of the same shape as ``A``
        Second RDM.
    method : {"spearman", "kendall_tau_a", "cosine", "whitened_cosine", "pearson"}, default="spearman"
        Spearman's rho (average ranks for ties), Kendall's tau-a, the cosine,
        the whitened cosine (rsatoolbox's "cosine_cov" without a pattern
        covariance: cosine of the double-centred ``-D / 2``) or Pearson's r,
        each over the off-diagonal entries as rsatoolbox computes them.

    Returns
    -------
    float
        The similarity (1 for identical RDMs).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(8, 5))
    >>> A = rdm(X)
    >>> round(compare_rdms(A, A**2, method="spearman"), 12)  # a monotone transform keeps ranks
    1.0
    """
    validate_params({"method": method}, {"method": [Options(*METHODS)]}, caller="compare_rdms")
    A, B = _as_rdm(A, "A"), _as_rdm(B, "B")
    if A.shape != B.shape:
        raise ValueError(
            f"A and B must be RDMs of the same stimuli; got {A.shape[0]} and {B.shape[0]} stimuli."
        )
    return _compare(A, B, method)


# ---------------------------------------------------------------------------
# representations in, similarity out
# ---------------------------------------------------------------------------


def _distinct_pairs(X: np.ndarray, Y: np.ndarray) -> np.ndarray | None:
    """Mask over the upper-triangle pairs, False where a stimulus is paired with a copy of itself.

    A bootstrap resample repeats stimuli; the zero distance between the two
    copies is no measurement, so those pairs are left out (as rsatoolbox's
    bootstrap does).
    """
    n = X.shape[-2]
    rows = np.concatenate([np.moveaxis(A, -2, 0).reshape(n, -1) for A in (X, Y)], axis=1)
    _, ids = np.unique(rows, axis=0, return_inverse=True)
    if ids.max() == n - 1:
        return None
    iu = np.triu_indices(n, k=1)
    return ids.ravel()[iu[0]] != ids.ravel()[iu[1]]


def _rsa_arrays(X: np.ndarray, Y: np.ndarray, metric: str, method: str) -> float:
    keep = _distinct_pairs(X, Y)
    if keep is not None and method == "whitened_cosine":
        # Whitening needs every pair; use each distinct stimulus once.
        _, first = np.unique(np.moveaxis(X, -2, 0).reshape(X.shape[-2], -1), axis=0,
                             return_index=True)
        first = np.sort(first)
        X, Y, keep = X[..., first, :], Y[..., first, :], None
    return _compare(_rdm_arrays(X, metric, None), _rdm_arrays(Y, metric, None, "Y"), method, keep)


RANGE = (-1.0, 1.0)  # every comparison is a correlation or a cosine of unit vectors

_RSA_CONSTRAINTS = {"metric": [Options(*METRICS)], "method": [Options(*METHODS)]}


def rsa(X: Any, Y: Any, *, metric: str = "correlation", method: str = "spearman",
        n_bootstraps: int = 0, n_permutations: int = 0, confidence_level: float = 0.95,
        random_state: Any = None) -> float | ResamplingResult:
    """RSA similarity of two representations: their RDMs, compared.

    Parameters
    ----------
    X : array-like of shape (n_stimuli, n_units_x) or (n_repeats, n_stimuli, n_units_x)
        First representation.
    Y : array-like of shape (n_stimuli, n_units_y) or (n_repeats, n_stimuli, n_units_y)
        Second representation of the same stimuli.
    metric : {"correlation", "euclidean", "crossnobis"}, default="correlation"
        RDM dissimilarity (see :func:`rdm`); "crossnobis" needs repeats on
        both sides and removes the noise bias of the distances.
    method : {"spearman", "kendall_tau_a", "cosine", "whitened_cosine", "pearson"}, default="spearman"
        RDM comparison (see :func:`compare_rdms`).
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
        ``compare_rdms(rdm(X), rdm(Y))``; with resampling, a
        :class:`~geomkit.measures._resampling.ResamplingResult` (a resample
        leaves out the pairs of a stimulus with its own copy): ``value``
        (plug-in), ``value_corrected`` (``2 value - median(bootstrap)``) and
        ``ci``, the basic bootstrap interval around it, clipped to [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 6))
    >>> round(rsa(X, 2.0 * X + 1.0, metric="euclidean", method="whitened_cosine"), 10)
    1.0
    """
    validate_params(
        {"metric": metric, "method": method, "n_bootstraps": n_bootstraps,
         "n_permutations": n_permutations, "confidence_level": confidence_level,
         "random_state": random_state},
        {**_RSA_CONSTRAINTS, **RESAMPLING_CONSTRAINTS}, caller="rsa",
    )
    X, Y = check_pair(X, Y)
    if not n_bootstraps and not n_permutations:
        return _compare(_rdm_arrays(X, metric, None), _rdm_arrays(Y, metric, None, "Y"), method)
    return with_intervals(lambda A, B: _rsa_arrays(A, B, metric, method), X, Y,
                          n_bootstraps=n_bootstraps, n_permutations=n_permutations,
                          confidence_level=confidence_level, random_state=random_state,
                          bounds=RANGE)


class RSA(_PairedSimilarity):
    """RSA similarity with a paired-bootstrap interval and a permutation p-value.

    Parameters
    ----------
    metric : {"correlation", "euclidean", "crossnobis"}, default="correlation"
        RDM dissimilarity (see :func:`rdm`).
    method : {"spearman", "kendall_tau_a", "cosine", "whitened_cosine", "pearson"}, default="spearman"
        RDM comparison (see :func:`compare_rdms`).
    n_bootstraps : int, default=0
        Paired bootstrap resamples of the stimuli (0: no interval). Pairs of
        a stimulus with its own copy are left out of a resample's comparison.
    n_permutations : int, default=0
        Shuffles of ``Y``'s stimulus order for the p-value (0: none).
    confidence_level : float, default=0.95
        Nominal coverage of the interval.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the resampling.

    Attributes
    ----------
    value_ : float
        Similarity of the fitted pair's RDMs (the plug-in estimate).
    value_corrected_ : float
        ``2 value_ - median(bootstrap_)``, the value to report with ``ci_``
        (NaN without bootstraps).
    ci_ : tuple of float
        ``(low, high)`` basic bootstrap interval, clipped to [-1, 1]; it
        contains ``value_corrected_``.
    ci_percentile_ : tuple of float
        ``(q_low, q_high)``, the percentile interval, for comparison.
    p_value_ : float
        One-sided permutation p-value.
    bootstrap_ : ndarray of shape (n_valid,)
        Bootstrap replicates.
    null_ : ndarray of shape (n_permutations,)
        Permutation null distribution.
    rdm_x_ : ndarray of shape (n_stimuli, n_stimuli)
        RDM of ``X``.
    rdm_y_ : ndarray of shape (n_stimuli, n_stimuli)
        RDM of ``Y``.
    n_stimuli_ : int
        Stimuli in the fitted pair.

    See Also
    --------
    rsa, rdm, compare_rdms : the plain functions.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6))
    >>> Y = X @ rng.normal(size=(6, 9)) + 0.5 * rng.normal(size=(40, 9))
    >>> est = RSA(n_permutations=99, random_state=0).fit(X, Y)
    >>> est.value_ > 0.5, est.p_value_
    (True, 0.01)
    """

    _parameter_constraints = {
        **_RSA_CONSTRAINTS,
        **RESAMPLING_CONSTRAINTS,
    }

    def __init__(self, *, metric: str = "correlation", method: str = "spearman",
                 n_bootstraps: int = 0, n_permutations: int = 0,
                 confidence_level: float = 0.95, random_state: Any = None) -> None:
        self.metric = metric
        self.method = method
        self.n_bootstraps = n_bootstraps
        self.n_permutations = n_permutations
        self.confidence_level = confidence_level
        self.random_state = random_state

    def _bounds(self) -> tuple[float, float]:
        return RANGE

    def _statistic(self, X: np.ndarray, Y: np.ndarray) -> float:
        return _rsa_arrays(X, Y, self.metric, self.method)

    def _fit_extra(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.rdm_x_ = _rdm_arrays(X, self.metric, None)
        self.rdm_y_ = _rdm_arrays(Y, self.metric, None, "Y")
