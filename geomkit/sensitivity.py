"""Input-space sensitivity of a model: Fisher-information and Jacobian flatness.

**Fisher information metric.** For a softmax classifier with logits z(x),
p = softmax(z) and J = dz/dx (C x D), the Fisher information of the output
distribution in input space is

    G(x) = J^T (diag(p) - p p^T) J,   tr G = sum_k p_k ||grad_x log p_k||^2.

It has rank <= C - 1. Writing diag(p) - p p^T = L L^T with
L = diag(sqrt p) - p sqrt(p)^T gives G = B^T B with the C x D factor
B = L^T J, whose row k is sqrt(p_k) grad_x log p_k. So B is the Jacobian of
``log_softmax(z)`` with rows scaled by sqrt(p_k): C vector-Jacobian products
per input (C batched backward passes), never D. The non-zero eigenvalues of
G (D x D) are those of B B^T (C x C), which is where they are computed.
Flat, compressed representations have few large eigenvalues (Nayebi &
Ganguli 2017, "Biologically inspired protection of deep networks from
adversarial attacks", arXiv:1703.09202). In saturated networks float32
gradients vanish numerically (Brendel & Bethge 2017, arXiv:1704.01547):
compute with ``dtype=torch.float64`` to tell flatness from underflow.

**Jacobian flatness.** Per input and per layer, the Jacobian J_l of the
layer's output w.r.t. the input: its squared Frobenius norm
||J_l||_F^2 = tr(J_l^T J_l) (the quantity Hoffman, Roberts & Yaida 2019
regularize) and the eigenvalues of J_l^T J_l (squared singular values).

**Summaries** of a metric with eigenvalues lambda_1 >= lambda_2 >= ...:
the trace; the participation ratio (sum lambda)^2 / sum lambda^2 (effective
number of sensitive input directions); and the number of input directions
(eigenvectors) needed to carry ``variance_fraction`` (90 %) of the trace.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._backend import check_device
from ._validation import check_float, check_int, check_labels
from .probe.jacobian import (
    OUTPUT,
    JacobianInfo,
    _check_model,
    _resolve_dtype,
    iter_jacobians,
    warn_saturation,
)

__all__ = [
    "FisherFlatness",
    "JacobianFlatness",
    "fisher_information",
    "fisher_trace",
    "fisher_eigenvalues",
    "spectral_summaries",
    "flatness_frame",
]

_QUANTITIES = ("trace", "log_trace", "participation_ratio", "n_directions")


# ----------------------------------------------------------------------------- summaries


def spectral_summaries(eigenvalues: Any, variance_fraction: float = 0.9) -> dict[str, np.ndarray]:
    """Trace, participation ratio and directions carrying a fraction of the trace.

    Parameters
    ----------
    eigenvalues : array-like of shape (n_inputs, n_eigenvalues)
        All eigenvalues of each input's metric (any order; negatives from
        rounding are treated as 0).
    variance_fraction : float in (0, 1], default=0.9

    Returns
    -------
    dict with ``"trace"`` (float64), ``"participation_ratio"`` (float64,
    NaN where the trace is 0) and ``"n_directions"`` (int64, 0 where the
    trace is 0), each of shape (n_inputs,).

    Examples
    --------
    >>> s = spectral_summaries([[4.0, 4.0, 0.0, 0.0]])
    >>> float(s["participation_ratio"][0]), int(s["n_directions"][0])
    (2.0, 2)
    """
    lam = np.clip(np.sort(np.asarray(eigenvalues, dtype=np.float64), axis=1)[:, ::-1], 0.0, None)
    frac = check_float(variance_fraction, "variance_fraction", low=0.0, high=1.0, low_inclusive=False)
    trace = lam.sum(axis=1)
    sq = (lam**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pr = np.where(trace > 0, trace**2 / np.where(sq > 0, sq, 1.0), np.nan)
    cum = np.cumsum(lam, axis=1)
    # Smallest m with cum[m-1] >= frac * trace (a relative slack absorbs rounding).
    n_dir = (cum < frac * trace[:, None] * (1 - 1e-12)).sum(axis=1) + 1
    n_dir = np.where(trace > 0, n_dir, 0).astype(np.int64)
    return {"trace": trace, "participation_ratio": pr, "n_directions": n_dir}


# ----------------------------------------------------------------------------- engine


def _log_softmax(z):
    return z.log_softmax(dim=-1)


def _check_logits(out) -> None:
    """The model output must be logits of shape (batch, n_classes), not probabilities."""
    import torch

    if out.ndim != 2 or out.shape[1] < 2:
        raise ValueError(
            "the Fisher information needs logits of shape (batch, n_classes) with n_classes >= 2; "
            f"the model returned outputs of shape (batch, {', '.join(map(str, out.shape[1:]))})."
        )
    rows = out.to(torch.float64)
    if bool(((rows >= 0) & (rows <= 1)).all()) and bool(
        torch.allclose(rows.sum(dim=1), torch.ones(len(rows), dtype=torch.float64), atol=1e-5)
    ):
        raise ValueError(
            "the model output looks like probabilities (non-negative rows summing to 1), not "
            "logits; remove the final softmax: geomkit applies log_softmax itself."
        )


def _iter_factors(model, X, layer, *, fisher: bool, info: JacobianInfo, **kwargs):
    """Yield (J, w, n_saturated) per chunk, J float64 of shape (chunk, rows, D).

    The metric of each input is G = B^T B with B = diag(w) J. Fisher: J is the
    Jacobian of ``log_softmax(logits)`` and w = sqrt(p), so row k of B = L^T J
    is sqrt(p_k) grad log p_k; n_saturated counts inputs whose p_max rounded
    to exactly 1. A layer: J = J_l and w is None (B = J).
    """
    import torch

    for _, J, values in iter_jacobians(
        model, X, layer, post=_log_softmax if fisher else None,
        check_output=_check_logits if fisher else None, info=info,
        desc="fisher" if fisher else f"jacobian {layer or OUTPUT}", **kwargs,
    ):
        if not fisher:
            yield J.to(torch.float64), None, 0
            continue
        w = values.to(torch.float64).exp().sqrt()
        yield J.to(torch.float64), w, int((values.max(dim=1).values == 0).sum())


def _trace_and_gram(J, w, need_gram: bool):
    """tr(B^T B) per input and the smaller Gram of B = diag(w) J (same non-zero eigenvalues).

    With rows <= D the Gram is B B^T = w_i w_j (J J^T)_ij, formed without
    scaling the large J.
    """
    import torch

    if J.shape[1] <= J.shape[2]:
        K = J @ J.mT
        gram = K if w is None else K * (w.unsqueeze(2) * w.unsqueeze(1))
        return torch.diagonal(gram, dim1=1, dim2=2).sum(dim=1), gram
    row_sq = torch.einsum("ncd,ncd->nc", J, J)
    trace = row_sq.sum(dim=1) if w is None else (row_sq * w**2).sum(dim=1)
    if not need_gram:
        return trace, None
    B = J if w is None else w.unsqueeze(2) * J
    return trace, B.mT @ B


def _metric_stats(
    model, X, layer, *, fisher: bool, n_eigenvalues: int | None, variance_fraction: float,
    traces_only: bool = False, **kwargs,
) -> dict[str, Any]:
    """Per-input trace, summaries and top eigenvalues of G(x) (Fisher) or J^T J (a layer).

    ``kwargs`` go to :func:`~geomkit.probe.jacobian.iter_jacobians` (method,
    chunk_size, device, dtype, eval_mode, progress).
    """
    import torch

    info = JacobianInfo()
    traces, eigs, summaries = [], [], []
    n_sat = 0
    compute_dtype = _resolve_dtype(kwargs.get("dtype"), _check_model(model))
    for J, w, n_sat_chunk in _iter_factors(model, X, layer, fisher=fisher, info=info, **kwargs):
        n_sat += n_sat_chunk
        trace, gram = _trace_and_gram(J, w, need_gram=not traces_only)
        traces.append(trace.cpu().numpy())
        if traces_only:
            continue
        lam = torch.linalg.eigvalsh(gram).flip(-1).clamp_min(0).cpu().numpy()
        summaries.append(spectral_summaries(lam, variance_fraction))
        eigs.append(lam)
    trace = np.concatenate(traces)
    warn_saturation(
        int((trace == 0).sum()), trace.size, compute_dtype, n_saturated=n_sat, stacklevel=4,
        what="Fisher information" if fisher else "Jacobian",
    )
    out: dict[str, Any] = {"trace": trace, "info": info}
    if traces_only:
        return out
    lam = np.concatenate(eigs)
    n_classes = info.out_shape[0] if info.out_shape else lam.shape[1]
    rank_bound = min(n_classes - 1, lam.shape[1]) if fisher else lam.shape[1]  # rank G <= C - 1
    k = rank_bound if n_eigenvalues is None else min(n_eigenvalues, rank_bound)
    out["eigenvalues"] = lam[:, : max(k, 1)]
    out["participation_ratio"] = np.concatenate([s["participation_ratio"] for s in summaries])
    out["n_directions"] = np.concatenate([s["n_directions"] for s in summaries])
    return out


def _fisher_factor(model, X, **kwargs):
    """B (n, C, D) float64 with G(x_i) = B_i^T B_i."""
    import torch

    pieces = list(_iter_factors(model, X, None, fisher=True, info=JacobianInfo(), **kwargs))
    B = torch.cat([w.unsqueeze(2) * J for J, w, _ in pieces])
    n_zero = int(((B**2).sum(dim=(1, 2)) == 0).sum())
    dtype = _resolve_dtype(kwargs.get("dtype"), model)
    warn_saturation(
        n_zero, B.shape[0], dtype, what="Fisher information",
        n_saturated=sum(n for _, _, n in pieces), stacklevel=4,
    )
    return B


# ----------------------------------------------------------------------------- functions


def fisher_information(
    model: Any,
    X: Any,
    *,
    dtype: Any = None,
    method: str = "auto",
    chunk_size: int | None = None,
    device: Any = None,
    eval_mode: bool = True,
    progress: bool = True,
):
    """The Fisher information metric G(x) = J^T (diag p - p p^T) J of each input, in input space.

    Computed as G = B^T B with B the Jacobian of ``log_softmax(logits)``,
    rows scaled by sqrt(p_k) (see the module docstring). Memory grows as
    n_inputs x D^2: for large inputs use :func:`fisher_trace`,
    :func:`fisher_eigenvalues` or :class:`FisherFlatness`, which never form G.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (batch, n_classes); left exactly as found.
    X : array-like or torch.Tensor of shape ``(n_inputs, *input_shape)``
    dtype : None or floating dtype
        Compute dtype; ``torch.float64`` for saturated networks.
    method, chunk_size, device, eval_mode, progress
        As in :func:`geomkit.probe.jacobian`.

    Returns
    -------
    torch.Tensor of shape (n_inputs, D, D), float64
        D is the number of input features (the input shape flattened).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> G = fisher_information(net, torch.randn(4, 3), progress=False)
    >>> G.shape
    torch.Size([4, 3, 3])
    """
    B = _fisher_factor(
        model, X, dtype=dtype, chunk_size=chunk_size, device=device, eval_mode=eval_mode,
        method=method, progress=progress,
    )
    return B.mT @ B


def fisher_trace(
    model: Any,
    X: Any,
    *,
    dtype: Any = None,
    method: str = "auto",
    chunk_size: int | None = None,
    device: Any = None,
    eval_mode: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Trace tr G(x) = sum_k p_k ||grad_x log p_k||^2 per input, at the cost of C backward passes.

    Parameters
    ----------
    model, X, dtype, method, chunk_size, device, eval_mode, progress
        As in :func:`fisher_information`.

    Returns
    -------
    ndarray of shape (n_inputs,), float64
        The trace of the Fisher information metric of each input.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> fisher_trace(net, torch.randn(4, 3), progress=False).shape
    (4,)
    """
    return _metric_stats(
        model, X, None, fisher=True, n_eigenvalues=None, variance_fraction=0.9, traces_only=True,
        method=method, chunk_size=chunk_size, device=device, dtype=dtype, eval_mode=eval_mode,
        progress=progress,
    )["trace"]


def fisher_eigenvalues(
    model: Any,
    X: Any,
    n_eigenvalues: int | None = None,
    *,
    dtype: Any = None,
    method: str = "auto",
    chunk_size: int | None = None,
    device: Any = None,
    eval_mode: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """Top eigenvalues of G(x) per input, computed in the C x C space.

    Parameters
    ----------
    model, X
        As in :func:`fisher_information`.
    n_eigenvalues : int, optional
        How many (at most C - 1, the rank bound); default C - 1.
    dtype, method, chunk_size, device, eval_mode, progress
        As in :func:`fisher_information`.

    Returns
    -------
    ndarray of shape (n_inputs, n_eigenvalues), float64
        The eigenvalues of each input's metric, in descending order.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 4)
    >>> fisher_eigenvalues(net, torch.randn(5, 3), progress=False).shape
    (5, 3)
    """
    if n_eigenvalues is not None:
        check_int(n_eigenvalues, "n_eigenvalues", low=1)
    return _metric_stats(
        model, X, None, fisher=True, n_eigenvalues=n_eigenvalues, variance_fraction=0.9,
        method=method, chunk_size=chunk_size, device=device, dtype=dtype, eval_mode=eval_mode,
        progress=progress,
    )["eigenvalues"]


# ----------------------------------------------------------------------------- results


def _to_dataset(per_layer: dict[str, dict], labels, attrs: dict):
    """Per-layer stats -> Dataset over (stimulus, layer[, rank]), NaN-padded along rank."""
    import xarray as xr

    layers = list(per_layer)
    n = len(next(iter(per_layer.values()))["trace"])
    k = max(s["eigenvalues"].shape[1] for s in per_layer.values())
    eig = np.full((n, len(layers), k), np.nan)
    for j, s in enumerate(per_layer.values()):
        eig[:, j, : s["eigenvalues"].shape[1]] = s["eigenvalues"]
    stack = lambda key: np.stack([per_layer[l][key] for l in layers], axis=1)  # noqa: E731
    trace = stack("trace")
    with np.errstate(divide="ignore"):
        log_trace = np.log(trace)
    dims = ("stimulus", "layer")
    ds = xr.Dataset(
        {
            "trace": (dims, trace),
            "log_trace": (dims, log_trace),
            "participation_ratio": (dims, stack("participation_ratio")),
            "n_directions": (dims, stack("n_directions").astype(np.int64)),
            "eigenvalues": (dims + ("rank",), eig),
        },
        coords={"stimulus": np.arange(n), "layer": np.array(layers, dtype=str), "rank": np.arange(1, k + 1)},
        attrs=attrs,
    )
    if labels is not None:
        ds = ds.assign_coords(label=("stimulus", labels))
    return ds


def flatness_frame(results: Any, by: str = "stimulus"):
    """Tidy table of a flatness result.

    Parameters
    ----------
    results : FisherFlatness, JacobianFlatness or xarray.Dataset
        A fitted estimator or its ``results_`` (also after a netCDF round trip).
    by : {"stimulus", "layer"}, default="stimulus"
        ``"stimulus"``: one row per (stimulus, layer) with ``trace``,
        ``log_trace``, ``participation_ratio``, ``n_directions`` (and
        ``label``). ``"layer"``: one row per layer with the mean and median
        of each over stimuli.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import torch
    >>> est = JacobianFlatness(torch.nn.Linear(3, 2), progress=False).fit(torch.randn(4, 3))
    >>> flatness_frame(est).shape
    (4, 6)
    """
    import xarray as xr

    from ._validation import check_option

    check_option(by, "by", ("stimulus", "layer"))
    ds = results.results_ if hasattr(results, "results_") else results
    if not isinstance(ds, xr.Dataset):
        raise TypeError(
            "results must be a fitted FisherFlatness / JacobianFlatness or its results_ Dataset; "
            f"got {type(results).__name__}."
        )
    df = ds[list(_QUANTITIES)].to_dataframe().reset_index()
    df.attrs = dict(ds.attrs)  # measure, variance_fraction, ... for plot labels
    if by == "stimulus":
        return df
    finite = df.replace([np.inf, -np.inf], np.nan)
    agg = finite.groupby("layer", sort=False)[list(_QUANTITIES)].agg(["mean", "median"])
    agg.columns = [f"{stat}_{q}" for q, stat in agg.columns]
    agg.insert(0, "n_stimuli", df.groupby("layer", sort=False).size())
    return agg.reset_index()


# ----------------------------------------------------------------------------- estimators


class _FlatnessBase(BaseEstimator):
    """Shared fit / score / to_frame; subclasses say which metric per layer."""

    _measure = ""

    def _layers(self) -> list[str | None]:
        raise NotImplementedError

    def _kwargs(self) -> dict:
        return dict(
            method=self.method, chunk_size=self.chunk_size, device=self.device, dtype=self.dtype,
            eval_mode=self.eval_mode, progress=self.progress,
        )

    def _check_params(self) -> None:
        _check_model(self.model)
        check_float(self.variance_fraction, "variance_fraction", low=0.0, high=1.0, low_inclusive=False)
        if self.n_eigenvalues is not None:
            check_int(self.n_eigenvalues, "n_eigenvalues", low=1)
        check_device(self.device)  # None: where the model is

    def fit(self, X: Any, y: Any = None):
        """Compute the per-input metrics of every layer on X.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape ``(n_stimuli, *input_shape)``
        y : array-like of shape (n_stimuli,), optional
            Labels, stored as the ``label`` coordinate of ``results_``.

        Returns
        -------
        self
        """
        self._check_params()
        per_layer, infos = {}, {}
        for layer in self._layers():
            stats = _metric_stats(
                self.model, X, layer, fisher=self._measure == "fisher",
                n_eigenvalues=self.n_eigenvalues, variance_fraction=self.variance_fraction,
                **self._kwargs(),
            )
            name = layer or OUTPUT
            infos[name] = stats.pop("info")
            per_layer[name] = stats
        n = len(next(iter(per_layer.values()))["trace"])
        labels = None if y is None else check_labels(y, n, "y")
        self.jacobian_info_ = infos
        self.results_ = _to_dataset(
            per_layer,
            labels,
            {
                "measure": self._measure,
                "model": type(self.model).__name__,
                "variance_fraction": float(self.variance_fraction),
                "dtype": str(_resolve_dtype(self.dtype, self.model)),
                "path": ",".join(f"{k}:{v.path}" for k, v in infos.items()),
            },
        )
        self.layers_ = list(per_layer)
        self.n_stimuli_ = n
        self._set_attributes()
        return self

    def _set_attributes(self) -> None:
        ds = self.results_
        self.trace_ = ds["trace"].values
        self.eigenvalues_ = ds["eigenvalues"].values
        self.participation_ratio_ = ds["participation_ratio"].values
        self.n_directions_ = ds["n_directions"].values

    def score(self, X: Any, y: Any = None) -> float:
        """Negative mean natural log of the per-input trace on X (higher = flatter).

        For :class:`FisherFlatness` the trace is tr G(x); for
        :class:`JacobianFlatness` the squared Frobenius norm ||J_l(x)||_F^2,
        averaged over inputs and layers. A trace of exactly 0 (a vanishing
        gradient) counts as the smallest positive float64 and triggers a
        :class:`~geomkit.probe.jacobian.SaturationWarning` in float32.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape ``(n_stimuli, *input_shape)``
        y : ignored

        Returns
        -------
        float
        """
        check_is_fitted(self, "results_")
        self._check_params()
        logs = []
        for layer in self._layers():
            trace = _metric_stats(
                self.model, X, layer, fisher=self._measure == "fisher", n_eigenvalues=None,
                variance_fraction=self.variance_fraction, traces_only=True, **self._kwargs(),
            )["trace"]
            logs.append(np.log(np.maximum(trace, np.finfo(np.float64).tiny)))
        return float(-np.mean(np.concatenate(logs)))

    def to_frame(self, by: str = "stimulus"):
        """Tidy table of the results, as :func:`flatness_frame` makes it.

        Parameters
        ----------
        by : {"stimulus", "layer"}, default="stimulus"
            One row per (stimulus, layer), or per layer with the mean and
            median over stimuli.

        Returns
        -------
        pandas.DataFrame
            The table.
        """
        check_is_fitted(self, "results_")
        return flatness_frame(self, by=by)


class FisherFlatness(_FlatnessBase):
    """Flatness of a classifier's Fisher information metric in input space.

    Per input x, G(x) = J^T (diag p - p p^T) J with J = d logits / dx and
    p = softmax(logits), computed through ``log_softmax`` as G = B^T B,
    B_k = sqrt(p_k) grad_x log p_k: C vector-Jacobian products per input,
    and eigenvalues from the C x C matrix B B^T (G has rank <= C - 1).
    Flat, compressed representations have few large eigenvalues (Nayebi &
    Ganguli 2017, arXiv:1703.09202).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (batch, n_classes) (no final softmax). Left
        exactly as found. ``sklearn.base.clone`` deep-copies it.
    n_eigenvalues : int, optional
        Eigenvalues kept per input (at most C - 1); default C - 1.
    variance_fraction : float in (0, 1], default=0.9
        Fraction of the trace for ``n_directions_``.
    dtype : None or floating dtype, default=None
        Compute dtype; ``torch.float64`` (or ``"float64"``) for saturated
        networks whose float32 gradients vanish. ``None``: the model's dtype.
    method : {"auto", "jacrev", "jacfwd", "autograd"}, default="auto"
        See :func:`geomkit.probe.jacobian`.
    chunk_size : int, optional
        Inputs per vectorized call (bounded memory).
    device : None, str or torch.device
        Where to compute; ``None`` is where the model is (see :ref:`devices`).
    eval_mode : bool, default=True
        Differentiate in eval mode (mode restored afterwards).
    progress : bool, default=True
        Show a tqdm bar over chunks.

    Attributes
    ----------
    trace_ : ndarray of shape (n_stimuli, 1)
        tr G(x) per input (one "layer": ``"output"``).
    eigenvalues_ : ndarray of shape (n_stimuli, 1, n_eigenvalues)
        Top eigenvalues of G(x), descending.
    participation_ratio_ : ndarray of shape (n_stimuli, 1)
        (sum lambda)^2 / sum lambda^2.
    n_directions_ : ndarray of shape (n_stimuli, 1)
        Input directions (eigenvectors of G) carrying ``variance_fraction``
        of the trace.
    results_ : xarray.Dataset
        All of the above over dims ``("stimulus", "layer"[, "rank"])``, with
        ``log_trace`` and a ``label`` coordinate when ``y`` was given.
    layers_ : list of str
        ``["output"]``.
    jacobian_info_ : dict of str to JacobianInfo
        Which differentiation path ran.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> est = FisherFlatness(net, progress=False).fit(torch.randn(10, 4))
    >>> est.eigenvalues_.shape
    (10, 1, 2)
    >>> bool(np.allclose(est.trace_[:, 0], est.eigenvalues_.sum(axis=2)[:, 0]))
    True
    """

    _measure = "fisher"

    def __init__(
        self,
        model: Any,
        *,
        n_eigenvalues: int | None = None,
        variance_fraction: float = 0.9,
        dtype: Any = None,
        method: str = "auto",
        chunk_size: int | None = None,
        device: Any = None,
        eval_mode: bool = True,
        progress: bool = True,
    ):
        self.model = model
        self.n_eigenvalues = n_eigenvalues
        self.variance_fraction = variance_fraction
        self.dtype = dtype
        self.method = method
        self.chunk_size = chunk_size
        self.device = device
        self.eval_mode = eval_mode
        self.progress = progress

    def _layers(self):
        return [None]


class JacobianFlatness(_FlatnessBase):
    """Per-layer input Jacobian norms and singular values.

    For each input x and layer l, J_l = d h_l / dx (the layer's output
    flattened, w.r.t. the input): the squared Frobenius norm
    ||J_l||_F^2 = tr(J_l^T J_l) (Hoffman, Roberts & Yaida 2019,
    arXiv:1908.02729), the top eigenvalues of J_l^T J_l (squared singular
    values), their participation ratio and the number of input directions
    carrying ``variance_fraction`` of the norm. Eigenvalues come from the
    smaller of J J^T and J^T J (float64), so they are accurate to about
    1e-16 x the largest one; singular values, their square roots, to about
    1e-8 x the largest singular value.

    Parameters
    ----------
    model : torch.nn.Module
        Left exactly as found; ``clone`` deep-copies it.
    layers : None, str or list of str, default=None
        Module names as in :func:`geomkit.probe.extract`; ``None`` or
        ``"output"``: the model's output.
    n_eigenvalues : int, default=10
        Eigenvalues (squared singular values) kept per input and layer.
    variance_fraction, dtype, method, chunk_size, device, eval_mode, progress
        As in :class:`FisherFlatness`.

    Attributes
    ----------
    trace_ : ndarray of shape (n_stimuli, n_layers)
        ||J_l(x)||_F^2.
    eigenvalues_ : ndarray of shape (n_stimuli, n_layers, n_eigenvalues)
        Squared singular values, descending (NaN-padded for small layers).
    singular_values_ : ndarray of shape (n_stimuli, n_layers, n_eigenvalues)
    participation_ratio_, n_directions_ : ndarray of shape (n_stimuli, n_layers)
    results_ : xarray.Dataset over ``("stimulus", "layer"[, "rank"])``
    layers_ : list of str
    jacobian_info_ : dict of str to JacobianInfo

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> est = JacobianFlatness(net, layers=["1", "output"], progress=False).fit(torch.randn(6, 4))
    >>> est.trace_.shape, est.layers_
    ((6, 2), ['1', 'output'])
    """

    _measure = "jacobian"

    def __init__(
        self,
        model: Any,
        *,
        layers: Any = None,
        n_eigenvalues: int | None = 10,
        variance_fraction: float = 0.9,
        dtype: Any = None,
        method: str = "auto",
        chunk_size: int | None = None,
        device: Any = None,
        eval_mode: bool = True,
        progress: bool = True,
    ):
        self.model = model
        self.layers = layers
        self.n_eigenvalues = n_eigenvalues
        self.variance_fraction = variance_fraction
        self.dtype = dtype
        self.method = method
        self.chunk_size = chunk_size
        self.device = device
        self.eval_mode = eval_mode
        self.progress = progress

    def _layers(self):
        from .probe.recorder import resolve_layers

        if self.layers is None:
            return [None]
        names = [self.layers] if isinstance(self.layers, str) else self.layers
        if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
            if len(set(names)) != len(names):
                raise ValueError(f"layers contains duplicate names: {list(names)}.")
            inner = [n for n in names if n not in (OUTPUT, "")]
            if inner:
                resolve_layers(self.model, inner)  # unknown names -> ValueError with close matches
            return [None if n in (OUTPUT, "") else n for n in names]
        return resolve_layers(self.model, self.layers)

    def _set_attributes(self) -> None:
        super()._set_attributes()
        self.singular_values_ = np.sqrt(self.eigenvalues_)
