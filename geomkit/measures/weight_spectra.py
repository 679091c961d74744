"""Weight spectra of a network's layers (Martin & Mahoney; the WeightWatcher convention).

For each weight matrix ``W`` (a Linear layer's (out, in) weight; a convolution's
(out, in / groups, k1, ...) kernel reshaped to (out, in / groups * k1 * ...)),
the eigenvalues of ``W' W`` are the squared singular values of ``W``. Their
density's tail is fitted as ``p(lambda) ~ lambda ** -a`` by maximum likelihood
with ``x_min`` chosen by the smallest Kolmogorov-Smirnov distance (Clauset et
al. 2009; the ``powerlaw`` package's estimator, which WeightWatcher uses).

This module only reads parameters: it needs torch for the module types (and for
the eigenvalues off the CPU), and no geomkit model code. On the CPU the default
``solver="eigh"`` runs in numpy (BLAS symmetric rank-k product, LAPACK
``eigvalsh``), which is faster there than torch's CPU kernels (measured).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .._backend import resolve_device
from .._progress import progress_bar
from .._validation import check_option, to_numpy
from ._powerlaw import MIN_TAIL, SMALL_SAMPLE, SpectrumWarning, clauset_fit, small_sample_fit, usable_count

__all__ = ["weight_spectra", "WEIGHT_SPECTRA_COLUMNS"]

WEIGHT_SPECTRA_COLUMNS = (
    "layer",
    "module",
    "shape",
    "weight_shape",
    "n_rows",
    "n_cols",
    "n_eigenvalues",
    "eigenvalues",
    "lambda_max",
    "alpha",
    "alpha_rank",
    "xmin",
    "ks_distance",
    "n_tail",
    "fit_rule",
    "stable_rank",
    "alpha_weighted",
    "log_norm",
)


def _weight_layers(model: Any, layers: Any) -> list[tuple[str, str, Any]]:
    """``(name, kind, weight tensor)`` of the layers to measure, from a module or a dict."""
    import torch
    import torch.nn as nn

    if isinstance(model, dict):
        # Named arrays (e.g. weights kept in buffers, or not in a torch model at all).
        found = [(str(k), type(v).__name__, torch.as_tensor(to_numpy(v, name=f"model[{k!r}]")))
                 for k, v in model.items()]
        bad = [name for name, _, W in found if W.ndim < 2]
        if bad or not found:
            raise ValueError(
                "a dict model must map layer names to weight arrays of 2 or more dimensions "
                f"(out, in, ...); got {'no arrays' if not found else f'fewer dimensions for {bad}'}."
            )
    else:
        kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
        found = [(name, type(m).__name__, m.weight) for name, m in model.named_modules()
                 if isinstance(m, kinds) and getattr(m, "weight", None) is not None]
        complex_ = [name for name, _, W in found if W.is_complex()]
        if complex_:
            raise TypeError(
                f"the weights of layer(s) {complex_} are complex; weight spectra are defined "
                "here for real weights. Pass a dict of .real (or .abs()) arrays explicitly."
            )
    if not found:
        # As weight_kurtosis: an empty table would hide a wrong model or a typo.
        raise ValueError(
            f"{type(model).__name__} has no Linear / Conv1d / Conv2d / Conv3d layer with a "
            "weight; weight_spectra needs at least one weight layer."
        )
    if layers is None:
        return found
    names = [name for name, _, _ in found]
    wanted = [layers] if isinstance(layers, str) else list(layers)
    if not wanted:
        raise ValueError(
            f"layers is empty; pass None for all weight layers or some of {names}."
        )
    missing = [w for w in wanted if w not in names]
    if missing:
        import difflib

        hints = {w: difflib.get_close_matches(w, names, n=3) for w in missing}
        raise ValueError(
            f"layers {missing} are not Linear / Conv weight layers of the model. Available: "
            f"{names}. Closest matches: {hints}."
        )
    return [entry for entry in found if entry[0] in wanted]


def _fit_row(lam: np.ndarray, name: str) -> dict:
    row = {"alpha": math.nan, "alpha_rank": math.nan, "xmin": math.nan,
           "ks_distance": math.nan, "n_tail": 0, "fit_rule": "none"}
    positive = lam[: usable_count(lam)]
    if positive.size < MIN_TAIL:
        warnings.warn(
            f"layer {name!r}: only {positive.size} non-zero eigenvalue(s); a power-law tail needs at "
            f"least {MIN_TAIL}, so its alpha is NaN.",
            SpectrumWarning,
            stacklevel=3,
        )
        return row
    small = positive.size < SMALL_SAMPLE
    a, xmin, ks, n_tail = small_sample_fit(positive) if small else clauset_fit(positive)
    row["fit_rule"] = "small-sample" if small else "clauset"
    if n_tail < MIN_TAIL:
        # A tail of 2-3 values gives any exponent at all (a rank-3 matrix gave 25.5).
        warnings.warn(
            f"layer {name!r}: the best power-law tail has only {n_tail} eigenvalues (fewer than "
            f"{MIN_TAIL}); its alpha is NaN.",
            SpectrumWarning,
            stacklevel=3,
        )
        return {**row, "xmin": xmin, "ks_distance": ks, "n_tail": n_tail}
    row.update(alpha=a, alpha_rank=1.0 / (a - 1.0), xmin=xmin, ks_distance=ks, n_tail=n_tail)
    return row


def _squared_singular_values(W: Any, solver: str) -> np.ndarray:
    """Eigenvalues of W' W, float64 on the host, in no particular order."""
    import torch

    if solver == "svd":
        sv = torch.linalg.svdvals(W).cpu().numpy().astype(np.float64)
        return sv * sv
    if W.device.type == "cpu":
        # numpy runs A @ A.T as a symmetric rank-k update (half a general product) and
        # LAPACK's eigenvalue-only solver: faster than torch's on a CPU (measured).
        Wn = W.numpy()
        G = Wn @ Wn.T if Wn.shape[0] <= Wn.shape[1] else Wn.T @ Wn
        lam = np.linalg.eigvalsh(G).astype(np.float64)
    else:
        G = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
        lam = torch.linalg.eigvalsh(G).cpu().numpy().astype(np.float64)
    # W' W is positive semi-definite: negative values are rounding (|lam| ~ lam_max * eps).
    return np.maximum(lam, 0.0)


def weight_spectra(
    model: Any,
    *,
    layers: Any = None,
    device: Any = None,
    dtype: str = "float64",
    solver: str = "eigh",
    progress: bool = True,
):
    """One row per weight layer: spectrum of ``W' W``, its power-law tail, norms.

    Parameters
    ----------
    model : torch.nn.Module or dict of str to array-like
        A module (read only; its parameters, modes and gradients are left
        untouched), or named weight arrays of shape (out, in, ...), as
        :func:`~geomkit.measures.kurtosis.weight_kurtosis` takes them: for
        weights a module keeps outside Linear / Conv layers (e.g. in a buffer).
    layers : str or list of str, optional
        Names (as in ``model.named_modules()``, or the dict's keys) of the
        layers to measure; default: all.
    device : None, str or torch.device
        Where the eigenvalues are computed; ``None``: the model's device (the
        CPU for a dict; see :ref:`devices`). On
        the CPU, ``solver="eigh"`` runs in numpy; elsewhere (e.g. ``"cuda"``)
        in torch.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the computation (float32 is faster on GPUs).
    solver : {"eigh", "svd"}, default="eigh"
        ``"eigh"``: the eigenvalues of the smaller Gram matrix (``W W'`` or
        ``W' W``, same non-zero eigenvalues) — numpy's product and
        ``numpy.linalg.eigvalsh`` on the CPU, ``torch.linalg.eigvalsh`` on
        other devices — several times faster than an SVD on a CPU; its
        eigenvalues are exact to about ``lambda_max * n * eps``, so only those
        far below the tail (which the fits never reach) lose relative
        accuracy. ``"svd"``: the squares of ``torch.linalg.svdvals`` (on any
        device), accurate relative to each singular value.
    progress : bool, default=True
        Progress bar over layers.

    Returns
    -------
    pandas.DataFrame
        Columns: ``layer``, ``module`` (class name; the array's for a dict),
        ``shape`` (of the matrix, "rows x cols"), ``weight_shape`` (tuple of int: the parameter's own
        shape, e.g. ``(out, in / groups, kh, kw)`` for a Conv2d kernel),
        ``n_rows``, ``n_cols``, ``n_eigenvalues``,
        ``eigenvalues`` (descending ndarray, ``min(rows, cols)`` squared
        singular values), ``lambda_max``, ``alpha`` (density exponent ``a`` of
        the powerlaw MLE), ``alpha_rank`` (``1 / (a - 1)``), ``xmin``,
        ``ks_distance``, ``n_tail`` (eigenvalues >= xmin), ``fit_rule``
        (``"clauset"``: the KS-minimizing MLE of the ``powerlaw`` package;
        ``"small-sample"``: fewer than 20 non-zero eigenvalues, WeightWatcher
        0.7.7's rule, bias-corrected MLE over tails of >= 8 values chosen by
        ``D_KS - 0.868 / sqrt(n_tail)``, see
        :func:`geomkit.measures._powerlaw.small_sample_fit`; ``"none"``), ``stable_rank``
        (``sum(lambda) / lambda_max``), ``alpha_weighted``
        (``a * log10(lambda_max)``) and ``log_norm`` (``log10`` of the squared
        Frobenius norm). Layers with fewer than 4 non-zero eigenvalues, or
        whose best tail has fewer than 4, get NaN fits and a
        :class:`~geomkit.measures.spectrum.SpectrumWarning`: such tails give any
        exponent at all.

    Raises
    ------
    ValueError
        When the model has no weight layer, a name in ``layers`` is not one,
        or a layer's weights contain NaN or infinite values.

    Examples
    --------
    >>> import torch
    >>> from geomkit.measures.weight_spectra import weight_spectra
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(50, 40), torch.nn.ReLU(), torch.nn.Linear(40, 3))
    >>> table = weight_spectra(net, progress=False)
    >>> table[["layer", "shape", "n_eigenvalues"]].values.tolist()
    [['0', '40 x 50', 40], ['2', '3 x 40', 3]]
    >>> conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5))
    >>> weight_spectra(conv, progress=False).loc[0, ["shape", "weight_shape"]].tolist()
    ['8 x 75', (8, 3, 5, 5)]
    """
    import pandas as pd
    import torch

    check_option(dtype, "dtype", ("float64", "float32"))
    check_option(solver, "solver", ("eigh", "svd"))
    if not isinstance(model, (torch.nn.Module, dict)):
        raise TypeError(
            f"model must be a torch.nn.Module or a dict of named weight arrays; got {type(model).__name__}."
        )
    dev = resolve_device(device, model if isinstance(model, torch.nn.Module) else None)
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    rows = []
    for name, kind, weight in progress_bar(_weight_layers(model, layers), desc="weight spectra",
                                           progress=progress):
        with torch.no_grad():
            W = weight.detach()
            weight_shape = tuple(int(k) for k in W.shape)
            if not bool(torch.isfinite(W).all()):
                n_bad = int((~torch.isfinite(W)).sum())
                raise ValueError(
                    f"layer {name!r} ({kind}) has {n_bad} NaN or infinite "
                    f"weight(s) of {W.numel()}; its spectrum is undefined. Repair the weights "
                    "or leave the layer out with layers=[...]."
                )
            W = W.reshape(W.shape[0], -1).to(device=dev, dtype=torch_dtype)
            lam = _squared_singular_values(W, solver)
        lam = np.sort(lam)[::-1]
        lam_max = float(lam[0])
        row = {
            "layer": name,
            "module": kind,
            "shape": f"{W.shape[0]} x {W.shape[1]}",
            "weight_shape": weight_shape,
            "n_rows": int(W.shape[0]),
            "n_cols": int(W.shape[1]),
            "n_eigenvalues": int(lam.size),
            "eigenvalues": lam,
            "lambda_max": lam_max,
        }
        row.update(_fit_row(lam, name))
        total = float(lam.sum())
        row["stable_rank"] = total / lam_max if lam_max > 0 else math.nan
        row["alpha_weighted"] = (row["alpha"] * math.log10(lam_max)) if lam_max > 0 else math.nan
        row["log_norm"] = math.log10(total) if total > 0 else -math.inf
        rows.append(row)
    return pd.DataFrame(rows, columns=list(WEIGHT_SPECTRA_COLUMNS))
