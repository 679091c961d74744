"""Spectral moments of dask-backed data: one streamed pass, chunk-wise.

The in-memory routes of :mod:`._spectral_moments` become sums over chunks of
rows (covariance route) or of units (Gram route). Each chunk is a dask task
that reads its rows, converts them to float64 one ~32 MB block at a time and
adds ``(x - c)' (x - c)`` with BLAS ``dsyrk`` to a float64 accumulator kept
by the worker thread that runs it (:mod:`._dask_fold`); the accumulators are
added at the end. This runs on the threaded scheduler or on a
``dask.distributed`` client when one is active.

Shift. Every row is shifted by one point ``c`` (the mean of the first rows of
the first chunk) and the centred product is ``S - s s' / W`` with ``S`` the
shifted product, ``s`` the shifted sums and ``W`` the (weighted) count. The
cancellation error is ``eps (|mean - c| / std)^2`` relative to the variances;
no separate pass for the mean is needed.

Bootstrap (Poisson). Replicate ``r`` gives row ``i`` the weight
``w_ri ~ Poisson(1)`` and accumulates ``sum_i w_ri (x_i - c)(x_i - c)'`` in the
same pass (rows of weight 0 are skipped, the others scaled by ``sqrt(w)``).
The weights are drawn per block of ``_WEIGHT_ROWS`` rows from a generator
seeded by ``(seed, r, block)``: the same for any chunking, any scheduler and
any grouping of replicates into passes. Unlike the multinomial bootstrap the
resample size ``W = sum_i w_ri`` varies (mean n, variance n); for large n the
two agree to ``O(1/n)`` (Hanley & MacGibbon 2006, Chamandy et al. 2012).

Memory. A worker thread holds its accumulators (``n_units^2`` float64 each,
one per replicate and cvPCA piece), the chunk it reads and one float64 block;
adding the workers' accumulators holds ``_SPLIT_EVERY + 1`` sets of them.
When they exceed a worker's memory the replicates are split over several
passes; when even one pass does not fit, :func:`plan_passes` raises a
``MemoryError`` naming the sizes and the route that would fit, before
anything is allocated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._dask_fold import SPLIT_EVERY as _SPLIT_EVERY
from ._dask_fold import fold as _fold
from ._spectral_moments import (
    CVPCAProblem,
    PCAProblem,
    _blocks,
    _cols_product_update,
    _fill_shifted,
    _mirror_upper,
    _rows_product_update,
    choose_route,
)

__all__ = [
    "is_streamed",
    "as_dask",
    "StreamedPCA",
    "StreamedCVPCA",
    "plan_passes",
    "poisson_weights",
]

# Rows per block of Poisson weights (the unit of their seeding).
_WEIGHT_ROWS = 4096
# Row chunks of fewer than _MIN_ROWS rows (task overhead) or more than _MAX_CHUNK bytes
# (memory) are re-cut to _TARGET_CHUNK bytes.
_MIN_ROWS, _TARGET_CHUNK, _MAX_CHUNK = 1024, 64 << 20, 512 << 20


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------
def is_streamed(X: Any) -> bool:
    """True for a dask array or an xarray object backed by one (nothing is imported)."""
    if type(X).__module__.startswith("dask"):
        return True
    if type(X).__module__.startswith("xarray") and type(X).__name__ == "DataArray":
        return type(X.data).__module__.startswith("dask")
    return False


def as_dask(X: Any, name: str, ndim: tuple[int, ...]):
    """The dask array of ``X`` (a dask array or a dask-backed DataArray), checked.

    A DataArray with a ``repeat`` dim has it moved first.
    """
    import dask.array as da

    from .._validation import to_numpy

    if type(X).__module__.startswith("xarray"):
        if "repeat" in X.dims:
            X = X.transpose("repeat", ...)
        X = X.data
    if not type(X).__module__.startswith("dask"):  # the in-memory partner of a dask repeat
        X = da.asarray(to_numpy(X, name))
    if X.ndim not in ndim:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, ndim))} dimensions; got a dask array of "
            f"shape {X.shape}."
        )
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise TypeError(
            f"{name} must be real numbers; got a dask array of dtype {X.dtype}. Accepted: "
            "float32, float64 or integer dask arrays."
        )
    if any(math.isnan(s) for s in X.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {X.shape}); call X.compute_chunk_sizes() first."
        )
    return X


def _row_chunks(X):
    """All units per chunk; the user's rows per chunk unless too few or too many bytes."""
    row_bytes = X.shape[1] * X.dtype.itemsize
    sizes = X.chunks[0]
    if all(c >= _MIN_ROWS for c in sizes[:-1]) and all(c * row_bytes <= _MAX_CHUNK for c in sizes):
        return X if len(X.chunks[1]) == 1 else X.rechunk({1: -1})
    rows = max(1, min(X.shape[0], _TARGET_CHUNK // max(row_bytes, 1)))
    return X.rechunk({0: rows, 1: -1})


def _col_chunks(X):
    """Whole rows, ~64 MB of units per chunk, for the Gram route."""
    n = X.shape[0]
    cols = max(1, min(X.shape[1], _TARGET_CHUNK // max(n * X.dtype.itemsize, 1)))
    return X.rechunk({0: -1, 1: cols})


# ---------------------------------------------------------------------------------------
# Poisson weights
# ---------------------------------------------------------------------------------------
def poisson_weights(seed: int, replicate: int, start: int, stop: int) -> np.ndarray:
    """Poisson(1) weights of rows ``start .. stop - 1`` for bootstrap ``replicate``.

    Drawn per block of ``_WEIGHT_ROWS`` rows from ``default_rng([seed, replicate,
    block])``, so a row's weight does not depend on how the rows are chunked.
    """
    first, last = start // _WEIGHT_ROWS, (stop - 1) // _WEIGHT_ROWS
    pieces = [
        np.random.default_rng([seed, replicate, b]).poisson(1.0, _WEIGHT_ROWS)
        for b in range(first, last + 1)
    ]
    w = np.concatenate(pieces).astype(np.float64)
    offset = start - first * _WEIGHT_ROWS
    return w[offset : offset + stop - start]


# ---------------------------------------------------------------------------------------
# Memory plan
# ---------------------------------------------------------------------------------------
def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def _active_client():
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def worker_memory() -> tuple[float, int, str]:
    """(bytes per task, number of workers, where): the active client's, else this machine's."""
    client = _active_client()
    if client is not None:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        limits = [w.get("memory_limit") or 0 for w in workers]
        threads = [max(1, w.get("nthreads", 1)) for w in workers]
        if limits and min(limits) > 0:
            per_task = min(lim / t for lim, t in zip(limits, threads))
            return float(per_task), len(limits), "per task on the dask workers"
    import psutil

    return psutil.virtual_memory().available, 1, "on this machine"


@dataclass
class Plan:
    """Accumulator pieces per replicate and how many replicates share a pass."""

    per_replicate: int
    replicates_per_pass: int
    n_passes: int


def plan_passes(
    size: int,
    *,
    pieces: int,
    n_replicates: int,
    chunk_bytes: float,
    what: str,
    route: str = "covariance",
    other_size: int | None = None,
    budget: float | None = None,
) -> Plan:
    """Group replicates into passes that fit a task's memory, or raise before allocating.

    A task holds its chunk (input and a float64 block, ``chunk_bytes``) and, at
    a tree node, ``_SPLIT_EVERY + 1`` sets of accumulators, each ``pieces``
    float64 matrices of ``size^2`` per replicate. ``other_size`` is the side
    of the other route's matrix, named in the error when it would fit.
    """
    where = "given"
    if budget is None:
        budget, _, where = worker_memory()
    usable = 0.8 * budget  # Python, the scheduler and BLAS workspace need the rest
    matrix = 8.0 * size * size
    per_replicate = pieces * matrix * (_SPLIT_EVERY + 1)
    fixed = 2.5 * chunk_bytes
    fit = int((usable - fixed) // per_replicate) if usable > fixed else 0
    if fit < 1:
        dim = "n_units" if route == "covariance" else "n_stimuli"
        message = (
            f"{what}: the {route} route needs {pieces} float64 matrices of {dim}^2 = "
            f"{size}^2 ({_gb(matrix)} each) at every node of the reduction tree, "
            f"{_gb(per_replicate + fixed)} in all, but {_gb(budget)} is available {where}."
        )
        if other_size is not None:
            other = "gram" if route == "covariance" else "covariance"
            need = 8.0 * other_size**2 * pieces * (_SPLIT_EVERY + 1) + fixed
            verdict = "would fit" if need < usable else "does not fit either"
            message += (
                f" The {other} route ({other_size}^2 float64, {_gb(need)}) {verdict}."
            )
        raise MemoryError(
            message + " Reduce n_units (a subset of units or a random projection) or "
            "n_stimuli, use fewer cvPCA shuffles (n_shuffles), or run on dask workers with "
            "more memory (memory_limit)."
        )
    fit = min(fit, max(n_replicates, 1))
    return Plan(pieces, fit, -(-max(n_replicates, 1) // fit))


# ---------------------------------------------------------------------------------------
# Chunk kernels (run on the workers; numpy + scipy BLAS only)
# ---------------------------------------------------------------------------------------
def _weighted(block: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rows of positive weight, scaled by ``sqrt(w)``: ``sum w x x'`` as one syrk."""
    keep = w > 0
    return block[keep] * np.sqrt(w[keep])[:, None]


def _pca_chunk(acc, x: np.ndarray, start: int, shift: np.ndarray, reps: tuple, seed: int,
               scratch: dict | None = None) -> dict:
    """Add the shifted products, sums and counts of rows ``start ..`` for replicates ``reps`` (0: all weights 1).

    ``scratch`` keeps the float64 block from one chunk to the next.
    """
    m, d = x.shape
    if acc is None:
        acc = {r: [np.zeros((d, d), order="F"), np.zeros(d), 0.0] for r in reps}
    weights = {r: poisson_weights(seed, r, start, start + m) for r in reps if r > 0}
    scratch = {} if scratch is None else scratch
    buffer = scratch.get("block")
    for rows in _blocks(m, d):
        source = x[rows]
        if buffer is None or buffer.size < source.size:
            buffer = scratch["block"] = np.empty(source.size)
        block = buffer[: source.size].reshape(source.shape)
        sums = np.zeros(d)
        _fill_shifted(block, source, shift, sums)
        for r in reps:
            out = acc[r]
            if r == 0:
                out[0] = _rows_product_update(out[0], block)
                out[1] += sums
                out[2] += block.shape[0]
            else:
                w = weights[r][rows]
                out[0] = _rows_product_update(out[0], _weighted(block, w))
                out[1] += w @ block
                out[2] += float(w.sum())
    return acc


def _gram_chunk(acc, x: np.ndarray, start: int, scratch=None) -> dict:
    """Add the Gram product of the column-centred units ``start ..``, and record their means."""
    n, k = x.shape
    if acc is None:
        acc = {"G": np.zeros((n, n), order="F"), "means": []}
    means = np.empty(k)
    for cols in _blocks(k, n):
        block = x[:, cols].astype(np.float64)
        means[cols] = block.mean(axis=0)
        block -= means[cols]
        acc["G"] = _cols_product_update(acc["G"], block)
    acc["means"].append((start, means))
    return acc


def _cvpca_chunk(out, a, b, masks, start, shift_m, shift_e, reps, seed, scratch=None) -> dict:
    """Add per replicate: products of M = (a + b)/2 and E = (a - b)/2, and per shuffle the training repeat's.

    ``masks`` (rows, n_shuffles) holds the swap signs s; the training rows are
    ``M + s E`` (a where s = 1, b where s = -1).
    """
    m, d = a.shape
    k = masks.shape[1]
    masks = masks.T
    zeros = lambda: np.zeros((d, d), order="F")  # noqa: E731
    if out is None:
        out = {
            r: {
                "P": zeros(), "p": np.zeros(d), "R": zeros(), "e": np.zeros(d), "W": 0.0,
                "T": [zeros() for _ in range(k)], "g": np.zeros((k, d)),
            }
            for r in reps
        }
    weights = {r: poisson_weights(seed, r, start, start + m) for r in reps if r > 0}
    for rows in _blocks(m, 4 * d):
        a64, b64 = a[rows].astype(np.float64), b[rows].astype(np.float64)
        M = (a64 + b64) / 2
        E = (a64 - b64) / 2
        del a64, b64
        s = masks[:, rows].astype(np.float64)
        Mc, Ec = M - shift_m, E - shift_e
        for r in reps:
            w = weights[r][rows] if r > 0 else np.ones(M.shape[0])
            acc = out[r]
            scale = (lambda Z: Z) if r == 0 else (lambda Z, w=w: _weighted(Z, w))
            acc["P"] = _rows_product_update(acc["P"], scale(Mc))
            acc["R"] = _rows_product_update(acc["R"], scale(Ec))
            acc["p"] += w @ Mc
            acc["e"] += w @ Ec
            acc["W"] += float(w.sum())
            acc["g"] += (s * w) @ E
            for j in range(k):
                train = Mc + s[j][:, None] * E
                acc["T"][j] = _rows_product_update(acc["T"][j], scale(train))
    return out


def _cvpca_gram_chunk(acc, a, b, start, scratch=None) -> dict:
    """Add the stimulus-space pieces of :class:`CVPCAProblem`'s Gram route for units ``start ..``."""
    n = a.shape[0]
    if acc is None:
        acc = {"GMM": np.zeros((n, n), order="F"), "GEE": np.zeros((n, n), order="F"),
               "GEM": np.zeros((n, n)), "p": np.zeros(n), "q": np.zeros(n), "e2": 0.0}
    GMM, GEE, GEM, p, q, e2 = (acc[key] for key in ("GMM", "GEE", "GEM", "p", "q", "e2"))
    for cols in _blocks(a.shape[1], 2 * n):
        a64, b64 = a[:, cols].astype(np.float64), b[:, cols].astype(np.float64)
        mean_e = (a64.mean(axis=0) - b64.mean(axis=0)) / 2
        Mc = (a64 + b64) / 2
        Mc -= Mc.mean(axis=0)
        Ec = (a64 - b64) / 2 - mean_e
        GMM = _cols_product_update(GMM, Mc)
        GEE = _cols_product_update(GEE, Ec)
        GEM += Ec @ Mc.T
        p += Mc @ mean_e
        q += Ec @ mean_e
        e2 += float(mean_e @ mean_e)
    acc.update(GMM=GMM, GEE=GEE, GEM=GEM, e2=e2)
    return acc


def _first_rows_mean(X, rows: int = 256) -> np.ndarray:
    """Mean of the first rows (one chunk read): the shift point."""
    return np.asarray(X[: min(rows, X.shape[0])].astype(np.float64).mean(axis=0).compute())


def _finite(matrix: np.ndarray, name: str = "X") -> np.ndarray:
    """The reduced product; NaN or inf in the data show up here (the data are never scanned)."""
    if not np.isfinite(matrix).all():
        raise ValueError(
            f"{name} contains NaN or inf (found in its streamed second moments); a spectrum "
            "needs finite responses."
        )
    return matrix


def _centred(S: np.ndarray, s: np.ndarray, W: float) -> np.ndarray:
    """``S - s s' / W`` from the upper triangle of the shifted product, mirrored."""
    from scipy.linalg import blas

    _finite(S)
    _finite(s)
    return _mirror_upper(blas.dsyr(-1.0 / W, s, a=np.asfortranarray(S), lower=0, overwrite_a=1))


def _chunk_bytes(X) -> float:
    rows = max(X.chunks[0])
    width = int(np.prod(X.shape[1:]))
    return rows * width * (X.dtype.itemsize + 8.0)


# ---------------------------------------------------------------------------------------
# Problems (same interface as the in-memory ones)
# ---------------------------------------------------------------------------------------
class StreamedPCA(PCAProblem):
    """:class:`PCAProblem` of a dask array: the product is reduced chunk by chunk.

    Parameters
    ----------
    X : dask array of shape (n_stimuli, n_units)
    n_bootstraps : int
        Poisson-bootstrap replicates accumulated with the product (covariance
        route; the Gram route resamples its in-memory Gram matrix instead).
    seed : int
        Seeds the Poisson weights.
    """

    def __init__(self, X, *, n_bootstraps: int = 0, seed: int | None = None,
                 device: Any = None):
        self.X = X
        self.n_stimuli, self.n_units = (int(s) for s in X.shape)
        self.device = device
        self.route = choose_route(self.n_stimuli, self.n_units)
        self.seed = seed = 0 if seed is None else seed
        self.bootstrap_moments: list[tuple[np.ndarray, float]] = []
        if self.route == "gram":
            self._gram()
            return
        Xr = _row_chunks(X)
        plan = plan_passes(
            self.n_units, pieces=1, n_replicates=n_bootstraps + 1, chunk_bytes=_chunk_bytes(Xr),
            what=f"PCA of {self.n_stimuli} x {self.n_units}", other_size=self.n_stimuli,
        )
        self.plan = plan
        shift = _first_rows_mean(Xr)
        replicates = list(range(n_bootstraps + 1))
        for i in range(0, len(replicates), plan.replicates_per_pass):
            reps = tuple(replicates[i : i + plan.replicates_per_pass])
            sums = _fold(_pca_chunk, [Xr], 0, shift, reps, seed)
            for r in reps:
                S, s, W = sums[r]
                C = _centred(S, s, W)
                sums[r] = None  # free as we go
                if r == 0:
                    self.matrix, self.mean = C, shift + s / W
                else:
                    self.bootstrap_moments.append((C, W))

    def _gram(self) -> None:
        Xc = _col_chunks(self.X)
        plan_passes(self.n_stimuli, pieces=1, n_replicates=1, chunk_bytes=_chunk_bytes(Xc),
                    what=f"PCA of {self.n_stimuli} x {self.n_units}", route="gram",
                    other_size=self.n_units)
        sums = _fold(_gram_chunk, [Xc], 1)
        self.matrix = _mirror_upper(_finite(sums["G"]))
        self.mean = np.concatenate([m for _, m in sorted(sums["means"], key=lambda t: t[0])])

    def bootstrap_eigenvalues(self):
        """Eigenvalues of each Poisson-bootstrap covariance, with its resample size."""
        from .._backend import eigvalsh

        for C, W in self.bootstrap_moments:
            yield eigvalsh(C, device=self.device, symmetric=True) / (W - 1), W


class StreamedCVPCA(CVPCAProblem):
    """:class:`CVPCAProblem` of two dask repeats, all shuffles accumulated in one pass.

    The swap masks are drawn on the client exactly as the in-memory
    :meth:`CVPCAProblem.spectrum` draws them (a random half of the stimuli per
    shuffle, from the same generator), so the same ``random_state`` gives the
    same spectrum. Bootstrap replicates (Poisson weights) keep these masks:
    a resampled stimulus carries its swap signs.

    Parameters
    ----------
    A, B : dask arrays of shape (n_stimuli, n_units)
    n_shuffles : int
    rng : numpy Generator
        Draws the swap masks.
    n_bootstraps : int
        Poisson-bootstrap replicates accumulated in the same pass(es).
    seed : int, optional
        Seeds the Poisson weights (default: drawn from ``rng`` after the masks).
    """

    def __init__(self, A, B, *, n_shuffles: int, rng: np.random.Generator,
                 n_bootstraps: int = 0, seed: int | None = None, device: Any = None):
        self.n_stimuli, self.n_units = (int(s) for s in A.shape)
        self.device = device
        self.route = choose_route(self.n_stimuli, self.n_units)
        self.A, self.B = A, B
        self.n_shuffles = n_shuffles
        self.replicates: dict[int, dict] = {}
        if self.route == "gram":
            Ac = _col_chunks(A)
            Bc = B.rechunk(Ac.chunks)
            plan_passes(self.n_stimuli, pieces=3, n_replicates=1,
                        chunk_bytes=2 * _chunk_bytes(Ac), route="gram", other_size=self.n_units,
                        what=f"cvPCA of 2 x {self.n_stimuli} x {self.n_units}")
            sums = _fold(_cvpca_gram_chunk, [Ac, Bc], 1)
            _finite(sums["GEM"])
            self.GMM, self.GEE = _mirror_upper(sums["GMM"]), _mirror_upper(sums["GEE"])
            self.GEM, self.p, self.q, self.e2 = sums["GEM"], sums["p"], sums["q"], sums["e2"]
            return
        n = self.n_stimuli
        masks = np.ones((n_shuffles, n), dtype=np.int8)
        for j in range(n_shuffles):
            masks[j, rng.permutation(n)[: n // 2]] = -1
        self.masks = masks
        # After the masks, so that the masks match the in-memory ones for the same generator.
        seed = self.seed = int(rng.integers(2**63 - 1)) if seed is None else seed
        Ar = _row_chunks(A)
        Br = B.rechunk(Ar.chunks)
        plan = plan_passes(
            self.n_units, pieces=2 + n_shuffles, n_replicates=n_bootstraps + 1,
            chunk_bytes=2 * _chunk_bytes(Ar), other_size=n,
            what=f"cvPCA of 2 x {n} x {self.n_units} with {n_shuffles} shuffles",
        )
        self.plan = plan
        shift_a, shift_b = _first_rows_mean(Ar), _first_rows_mean(Br)
        shift_m, shift_e = (shift_a + shift_b) / 2, (shift_a - shift_b) / 2
        import dask.array as da

        # The swap signs as a dask array chunked like the rows: each task gets its rows' signs.
        signs = da.from_array(masks.T, chunks=(Ar.chunks[0], -1))
        replicates = list(range(n_bootstraps + 1))
        for i in range(0, len(replicates), plan.replicates_per_pass):
            reps = tuple(replicates[i : i + plan.replicates_per_pass])
            sums = _fold(_cvpca_chunk, [Ar, Br, signs], 0, shift_m, shift_e, reps, seed)
            for r in reps:
                self.replicates[r] = self._finish(sums.pop(r), shift_m, shift_e)
        self.P, self.R = self.replicates[0]["P"], self.replicates[0]["R"]
        self.e_bar = self.replicates[0]["e_bar"]

    @staticmethod
    def _finish(acc: dict, shift_m, shift_e) -> dict:
        """Centred pieces of one replicate (see :meth:`CVPCAProblem._shuffle_cov`)."""
        W = acc["W"]
        P = _centred(acc["P"], acc["p"], W)
        R = _centred(acc["R"], acc["e"], W)
        e_bar = shift_e + acc["e"] / W
        # The training rows' shifted sums are the M sums plus sum_i w_i s_i E_i (= g).
        K = [_centred(T, acc["p"] + g, W) for T, g in zip(acc["T"], acc["g"])]
        # sym(A_k' B_k) centred = Mc'Mc - (Ec'Ec + W e e' - g g' / W).
        X = [P - R - W * np.outer(e_bar, e_bar) + np.outer(g, g) / W for g in acc["g"]]
        return {"P": P, "R": R, "e_bar": e_bar, "K": K, "X": X, "W": W}

    def streamed_spectrum(self, replicate: int = 0) -> tuple[np.ndarray, int, float]:
        """Shuffle-averaged signal spectrum of a replicate, its usable count and size W."""
        from .._backend import eigh
        from ._powerlaw import usable_count

        rep = self.replicates[replicate]
        total, usable = None, None
        for K, X in zip(rep["K"], rep["X"]):
            values, vectors = eigh(K, device=self.device)
            signal = np.einsum("ij,ij->j", vectors, X @ vectors)
            total = signal if total is None else total + signal
            k = usable_count(values, self.n_units)
            usable = k if usable is None else min(usable, k)
        return total / len(rep["K"]) / (rep["W"] - 1), int(usable), rep["W"]

    def spectrum(self, n_shuffles, rng, idx=None):
        """As :meth:`CVPCAProblem.spectrum`; the covariance route uses the streamed shuffles."""
        if self.route == "gram":
            return super().spectrum(n_shuffles, rng, idx)
        if idx is not None:
            raise ValueError("a streamed covariance-route cvPCA is resampled with Poisson weights")
        signal, usable, _ = self.streamed_spectrum(0)
        return signal, usable
