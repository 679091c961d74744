"""Float64 second moments for spectra: covariance vs Gram route, and cvPCA.

Everything here returns unnormalized centred products (divide by
``n_stimuli - 1`` for a covariance). Data may be float32: it is converted to
float64 one block at a time, so the float64 copy of a large activation matrix
never exists whole, and every product accumulates in float64.

cvPCA (Stringer, Pachitariu et al. 2019, Nature) is computed from shuffle-
invariant pieces. With ``M = (A + B) / 2`` and ``E = (A - B) / 2`` for repeats
``A`` and ``B``, swapping the repeats of the stimuli where ``s = -1`` turns them
into ``M + F`` and ``M - F`` with ``F = diag(s) E``. The cross-repeat product's
symmetric part ``M M' - F F'`` and the training product ``(M + F)(M + F)'``
are then assembled from ``M M'``, ``E E'`` and ``E M'`` (computed once) with
O(n^2) work per shuffle; only the eigendecomposition is repeated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import blas

from .._backend import eigh, eigvalsh

__all__ = [
    "choose_route",
    "column_mean",
    "shifted_product",
    "centered_product",
    "product_and_mean",
    "double_center",
    "PCAProblem",
    "CVPCAProblem",
]

# About 32 MB of float64 per converted block.
_BLOCK_ELEMENTS = 1 << 22
# About 1 MB of float64: a piece of a block that stays in a core's cache.
_CACHE_ELEMENTS = 1 << 17


def choose_route(n_stimuli: int, n_units: int) -> str:
    """``"covariance"`` (units x units) when stimuli outnumber units, else ``"gram"``."""
    return "covariance" if n_stimuli >= n_units else "gram"


def column_mean(X: np.ndarray) -> np.ndarray:
    """Per-unit mean over stimuli, accumulated in float64."""
    return X.mean(axis=0, dtype=np.float64)


def _blocks(n: int, width: int):
    step = max(64, _BLOCK_ELEMENTS // max(width, 1))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def _torch_block(X: np.ndarray, sl_rows, sl_cols, mean, device):
    import torch

    block = torch.as_tensor(np.ascontiguousarray(X[sl_rows, sl_cols]))
    return block.to(device=device, dtype=torch.float64) - mean


def _rows_product_update(out: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``out += block' block`` in place, upper triangle only (BLAS ``dsyrk``).

    ``out`` is a Fortran-ordered float64 accumulator, ``block`` a C-ordered
    float64 (m, k) array, whose transpose BLAS reads without a copy.
    """
    return blas.dsyrk(1.0, block.T, beta=1.0, c=out, trans=0, lower=0, overwrite_c=1)


def _cols_product_update(out: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``out += block block'`` in place, upper triangle only (BLAS ``dsyrk``)."""
    return blas.dsyrk(1.0, block.T, beta=1.0, c=out, trans=1, lower=0, overwrite_c=1)


def _mirror_upper(out: np.ndarray, width: int = 128) -> np.ndarray:
    """Copy the upper triangle onto the lower one, in place: an exactly symmetric matrix.

    By column panels (a cache-sized transpose each), twice as fast as one
    fancy-indexed copy of the whole triangle.
    """
    n = out.shape[0]
    for j0 in range(0, n, width):
        j1 = min(j0 + width, n)
        out[j0:j1, :j0] = out[:j0, j0:j1].T
        diagonal = out[j0:j1, j0:j1]
        lower = np.tril_indices(j1 - j0, -1)
        diagonal[lower] = diagonal.T[lower]
    return out


def _default_shift(X: np.ndarray) -> np.ndarray:
    """Mean of at most ~256 evenly spaced rows: a cheap point near the column mean."""
    return X[:: max(1, X.shape[0] // 256)].mean(axis=0, dtype=np.float64)


def _fill_shifted(out: np.ndarray, X: np.ndarray, shift: np.ndarray, sums: np.ndarray) -> None:
    """``out[:] = X - shift`` in float64 and ``sums += out.sum(axis=0)``.

    In pieces of about 1 MB, so that the cast, the subtraction and the sum
    find the piece in cache (a single casting ``np.subtract`` over the block
    takes twice as long as the plain cast, and the sum would read it again).
    """
    step = max(1, _CACHE_ELEMENTS // max(X.shape[1], 1))
    for start in range(0, X.shape[0], step):
        piece = out[start : start + step]
        piece[...] = X[start : start + step]
        piece -= shift
        sums += piece.sum(axis=0)


def shifted_product(
    X: np.ndarray, route: str, shift: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Centred product and column mean in one float64 pass over X.

    ``Xc' Xc`` (route ``"covariance"``) or ``Xc Xc'`` (``"gram"``) with
    ``Xc = X - mean``, by the shifted-data formula: X is converted to float64
    as ``X - shift`` one block at a time (rows for the covariance, units for
    the Gram matrix) while its column sums ``s`` accumulate, and then
    ``Xc' Xc = S - s s' / n`` (S the shifted product) or ``Xc Xc' = J S J``
    (``J = I - 11'/n``; exact for any shift). The cancellation error is
    ``eps (|mean - shift| / std)^2`` relative to the variances; with the
    default shift (the mean of ~256 evenly spaced rows, ``|mean - shift| ~
    std / 16``) it is far below the rounding of the sums, so no separate pass
    for the mean is needed. The products are BLAS ``dsyrk`` updates (half the
    work of a general product) into one accumulator, in scipy's BLAS, the
    library of the eigensolver that follows: numpy and scipy ship separate
    OpenBLAS builds, and their thread pools taking turns fight over the cores.

    Parameters
    ----------
    X : ndarray of shape (n_stimuli, n_units), float32 or float64
    route : {"covariance", "gram"}
    shift : ndarray of shape (n_units,), optional
        Point subtracted from every row (default: see above).

    Returns
    -------
    product : ndarray of shape (n_units, n_units) or (n_stimuli, n_stimuli)
        float64, exactly symmetric.
    mean : ndarray of shape (n_units,), float64
    """
    n, d = X.shape
    shift = _default_shift(X) if shift is None else np.asarray(shift, dtype=np.float64)
    sums = np.zeros(d)
    covariance = route == "covariance"
    size = d if covariance else n
    out = np.zeros((size, size), order="F")
    buffer = None
    for part in _blocks(n, d) if covariance else _blocks(d, n):
        rows, cols = (part, slice(None)) if covariance else (slice(None), part)
        source = X[rows, cols]
        if buffer is None:
            buffer = np.empty(source.size)
        # A C-ordered view of the buffer's start: BLAS reads its transpose without a copy.
        block = buffer[: source.size].reshape(source.shape)
        _fill_shifted(block, source, shift[cols], sums[cols])
        out = (_rows_product_update if covariance else _cols_product_update)(out, block)
    if covariance:
        out = _mirror_upper(blas.dsyr(-1.0 / n, sums, a=out, lower=0, overwrite_a=1))
    else:
        out = double_center(_mirror_upper(out))
    return out, shift + sums / n


def centered_product(
    X: np.ndarray, mean: np.ndarray, route: str, *, device: Any = None
) -> Any:
    """``Xc' Xc`` (route ``"covariance"``) or ``Xc Xc'`` (``"gram"``), ``Xc = X - mean``.

    float64, accumulated over blocks of rows (covariance) or of units (Gram).
    With ``device`` set the products run in torch there and a torch tensor is
    returned; otherwise numpy arrays from BLAS symmetric rank-k updates
    (see :func:`shifted_product`).
    """
    n, d = X.shape
    if device is not None:
        import torch

        mean_t = torch.as_tensor(mean, dtype=torch.float64, device=device)
        size = d if route == "covariance" else n
        out = torch.zeros((size, size), dtype=torch.float64, device=device)
        if route == "covariance":
            for rows in _blocks(n, d):
                b = _torch_block(X, rows, slice(None), mean_t, device)
                out += b.T @ b
        else:
            for cols in _blocks(d, n):
                b = _torch_block(X, slice(None), cols, mean_t[cols], device)
                out += b @ b.T
        return (out + out.T) / 2
    return shifted_product(X, route, shift=mean)[0]


def product_and_mean(X: np.ndarray, route: str, device: Any = None) -> tuple[Any, np.ndarray]:
    """The centred product of ``route`` and the column mean: one pass on the CPU
    (:func:`shifted_product`), the mean first and then torch's products on ``device``."""
    if device is None:
        return shifted_product(X, route)
    mean = column_mean(X)
    return centered_product(X, mean, route, device=device), mean


def double_center(G: np.ndarray) -> np.ndarray:
    """``J G J`` with ``J = I - 11'/n`` for a symmetric G: the Gram matrix of row-centred data.

    One vector of row means serves rows and columns (equal for a symmetric G),
    and ``r_i + r_j`` is the same number both ways: the result is exactly
    symmetric.
    """
    row = G.mean(axis=1)
    out = np.add.outer(row, row)
    out -= row.mean()
    return np.subtract(G, out, out=out)


def _centred_trace(G: np.ndarray) -> float:
    """``tr(J G J)`` with ``J = I - 11'/n``, without forming it: ``tr G - sum(G) / n``."""
    return float(np.trace(G) - G.sum() / G.shape[0])


def _to_numpy(M: Any) -> np.ndarray:
    return M if isinstance(M, np.ndarray) else M.cpu().numpy()


class PCAProblem:
    """Eigenvalues of the covariance of X, and of bootstrap resamples of its stimuli.

    Parameters
    ----------
    X : ndarray of shape (n_stimuli, n_units), float32 or float64
    device : None or torch device
        Where the products and eigendecompositions run (None: numpy and scipy, CPU).
    """

    def __init__(self, X: np.ndarray, device: Any = None):
        self.X = X
        self.n_stimuli, self.n_units = X.shape
        self.device = device
        self.route = choose_route(self.n_stimuli, self.n_units)
        self.matrix, self.mean = product_and_mean(X, self.route, device)

    def eigenvalues(self) -> np.ndarray:
        """Descending covariance eigenvalues, length ``min(n_stimuli, n_units)``."""
        # Both routes' products are exactly symmetric (mirrored, or (P + P') / 2 in torch).
        return eigvalsh(self.matrix, device=self.device, symmetric=True) / (self.n_stimuli - 1)

    def resample(self, idx: np.ndarray) -> np.ndarray:
        """Eigenvalues for the stimuli ``idx`` (drawn with replacement)."""
        if self.route == "gram":
            G = _to_numpy(self.matrix)
            return eigvalsh(double_center(G[np.ix_(idx, idx)]), device=self.device) / (
                idx.size - 1
            )
        C, _ = product_and_mean(self.X[idx], "covariance", self.device)
        return eigvalsh(C, device=self.device, symmetric=True) / (idx.size - 1)

    def covariance(self) -> np.ndarray:
        """The (n_units, n_units) covariance (computed if the Gram route was used)."""
        if self.route == "covariance":
            return _to_numpy(self.matrix) / (self.n_stimuli - 1)
        C = centered_product(self.X, self.mean, "covariance", device=self.device)
        return _to_numpy(C) / (self.n_stimuli - 1)


def _repeat_products(A, B, mean_m, mean_e) -> tuple[np.ndarray, np.ndarray]:
    """``Mc' Mc`` and ``Ec' Ec`` of the repeat average and half-difference, float64."""
    n, d = A.shape
    P, R = np.zeros((d, d), order="F"), np.zeros((d, d), order="F")
    for rows in _blocks(n, 2 * d):
        a = A[rows].astype(np.float64)
        b = B[rows].astype(np.float64)
        P = _rows_product_update(P, (a + b) / 2 - mean_m)
        R = _rows_product_update(R, (a - b) / 2 - mean_e)
    return _mirror_upper(P), _mirror_upper(R)


class CVPCAProblem:
    """Cross-validated PCA of two repeats, averaged over random repeat swaps.

    Parameters
    ----------
    A, B : ndarray of shape (n_stimuli, n_units)
        The two repeats (float32 or float64).
    device : None or torch device
        Where the eigendecompositions run.
    """

    def __init__(self, A: np.ndarray, B: np.ndarray, device: Any = None):
        self.n_stimuli, self.n_units = A.shape
        self.device = device
        self.route = choose_route(self.n_stimuli, self.n_units)
        self.A, self.B = A, B
        mean_m = (column_mean(A) + column_mean(B)) / 2
        mean_e = (column_mean(A) - column_mean(B)) / 2
        self.e_bar = mean_e
        if self.route == "gram":
            self._gram_pieces(A, B, mean_m, mean_e)
        else:
            self.P, self.R = _repeat_products(A, B, mean_m, mean_e)

    # -- precomputation ---------------------------------------------------------------
    def _gram_pieces(self, A, B, mean_m, mean_e):
        n, d = A.shape
        GMM, GEE = np.zeros((n, n), order="F"), np.zeros((n, n), order="F")
        GEM = np.zeros((n, n))
        p, q = np.zeros(n), np.zeros(n)
        for cols in _blocks(d, 2 * n):
            a = A[:, cols].astype(np.float64)
            b = B[:, cols].astype(np.float64)
            Mc = (a + b) / 2 - mean_m[cols]
            Ec = (a - b) / 2 - mean_e[cols]
            GMM = _cols_product_update(GMM, Mc)
            GEE = _cols_product_update(GEE, Ec)
            GEM += Ec @ Mc.T
            p += Mc @ mean_e[cols]
            q += Ec @ mean_e[cols]
        self.GMM, self.GEE = _mirror_upper(GMM), _mirror_upper(GEE)
        self.GEM, self.p, self.q = GEM, p, q
        self.e2 = float(mean_e @ mean_e)

    # -- spectra ----------------------------------------------------------------------
    def noise_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the noise covariance, Cov((A - B) / sqrt(2)), descending."""
        if self.route == "gram":
            N = double_center(self.GEE)
        else:
            N = self.R
        return eigvalsh(N, device=self.device) * 2.0 / (self.n_stimuli - 1)

    def within_repeat_variance(self) -> float:
        """Summed variance of both repeats' units, ``tr(Ac' Ac + Bc' Bc) / (2 (n - 1))``.

        From the pieces: ``Ac = Mc + Ec`` and ``Bc = Mc - Ec`` give
        ``Ac' Ac + Bc' Bc = 2 (Mc' Mc + Ec' Ec)``. Zero when every unit is
        constant within each repeat (even if the repeats differ by an offset,
        which the repeat swaps would otherwise turn into spurious variance).
        """
        if self.route == "gram":
            total = _centred_trace(self.GMM) + _centred_trace(self.GEE)
        else:
            total = float(np.trace(self.P) + np.trace(self.R))
        return total / (self.n_stimuli - 1)

    def signal_axes_matrix(self) -> np.ndarray:
        """Centred product of the repeat average M (Gram or covariance, per route)."""
        return double_center(self.GMM) if self.route == "gram" else self.P

    def _shuffle_gram(self, s: np.ndarray, idx: np.ndarray | None):
        take = (lambda M: M[np.ix_(idx, idx)]) if idx is not None else (lambda M: M)
        GMM, GEE, GEM = take(self.GMM), take(self.GEE), take(self.GEM)
        p = self.p[idx] if idx is not None else self.p
        q = self.q[idx] if idx is not None else self.q
        sq = s * q
        FF = (s[:, None] * GEE * s[None, :]) + np.outer(sq, s) + np.outer(s, sq)
        FF += self.e2 * np.outer(s, s)
        FM = s[:, None] * GEM + np.outer(s, p)
        K = double_center(GMM + FM + FM.T + FF)
        X = double_center(GMM - FF)
        return K, X

    def _shuffle_cov(self, s: np.ndarray, A: np.ndarray, B: np.ndarray, P, R, e_bar):
        n = A.shape[0]
        swap = s < 0
        train = A.copy()
        train[swap] = B[swap]
        K = centered_product(train, column_mean(train), "covariance")
        # sym(A_k' B_k) = Mc'Mc - Fc'Fc with Fc'Fc = Ec'Ec + n e e' - g g' / n.
        Ec_s = self._Ec_t_s(A, B, s, e_bar)
        g = Ec_s + s.sum() * e_bar
        X = P - R - n * np.outer(e_bar, e_bar) + np.outer(g, g) / n
        return K, X

    @staticmethod
    def _Ec_t_s(A, B, s, e_bar):
        # Ec' s without forming Ec: sum_i s_i ((a_i - b_i) / 2 - e_bar).
        out = np.zeros(A.shape[1])
        for rows in _blocks(A.shape[0], A.shape[1]):
            diff = (A[rows].astype(np.float64) - B[rows]) / 2 - e_bar
            out += s[rows] @ diff
        return out

    def _one(self, s, idx=None):
        if self.route == "gram":
            K, X = self._shuffle_gram(s, idx)
        elif idx is None:
            K, X = self._shuffle_cov(s, self.A, self.B, self.P, self.R, self.e_bar)
        else:
            K, X = self._resampled_cov(s, idx)
        values, vectors = eigh(K, device=self.device)
        # Quadratic forms u_n' X u_n for every axis: column sums of U * (X U).
        signal = np.einsum("ij,ij->j", vectors, X @ vectors)
        return signal, values

    def _resampled_cov(self, s, idx):
        A, B = self.A[idx], self.B[idx]
        mean_m = (column_mean(A) + column_mean(B)) / 2
        mean_e = (column_mean(A) - column_mean(B)) / 2
        P, R = _repeat_products(A, B, mean_m, mean_e)
        return self._shuffle_cov(s, A, B, P, R, mean_e)

    def spectrum(
        self, n_shuffles: int, rng: np.random.Generator, idx: np.ndarray | None = None
    ) -> tuple[np.ndarray, int]:
        """Shuffle-averaged signal spectrum (by rank of the training repeat) and usable count.

        Each shuffle swaps the repeats of a random half of the stimuli.
        """
        from ._powerlaw import usable_count

        n = self.n_stimuli if idx is None else idx.size
        total, usable = None, None
        for _ in range(n_shuffles):
            s = np.ones(n)
            s[rng.permutation(n)[: n // 2]] = -1.0
            signal, values = self._one(s, idx)
            total = signal if total is None else total + signal
            k = usable_count(values, self.n_units)
            usable = k if usable is None else min(usable, k)
        return total / n_shuffles / (n - 1), int(usable)
