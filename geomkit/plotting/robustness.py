"""Figures of adversarial robustness: accuracy-vs-eps curves and critical-eps distributions."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._style import get_ax, with_defaults

__all__ = ["plot_robust_accuracy", "plot_critical_eps"]

_BLACK_BOX = ("noise", "transfer")


def _robust_accuracy(result: Any):
    da = getattr(result, "robust_accuracy_", result)
    if getattr(da, "dims", None) != ("attack", "eps"):
        raise TypeError(
            "result must be a fitted AdversarialRobustness or its robust_accuracy_ DataArray "
            f"with dims ('attack', 'eps'); got {type(result).__name__}."
        )
    return da


def plot_robust_accuracy(result: Any, ax: Any = None, *, attacks: Any = None, **kwargs: Any):
    """Robust accuracy against eps (log axis), one curve per attack.

    White-box attacks are drawn solid, gradient-free ones (noise, transfer)
    dashed: a dashed curve below a solid one is the signature of gradient
    masking.

    Parameters
    ----------
    result : AdversarialRobustness or xarray.DataArray
        A fitted estimator or its ``robust_accuracy_`` (dims ``("attack", "eps")``).
    ax : matplotlib Axes, optional
    attacks : sequence of str, optional
        The attacks to draw (default: all).
    **kwargs
        Passed to :func:`seaborn.lineplot` (e.g. ``linewidth``, ``palette``;
        ``markers=False`` drops the default markers).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import xarray as xr
    >>> da = xr.DataArray([[1.0, 0.5, 0.0]], dims=("attack", "eps"),
    ...                   coords={"attack": ["pgd"], "eps": [1e-3, 1e-2, 1e-1]})
    >>> ax = plot_robust_accuracy(da)
    >>> ax.get_xscale()
    'log'
    """
    import seaborn as sns
    from matplotlib.lines import Line2D

    da = _robust_accuracy(result)
    if attacks is not None:
        da = da.sel(attack=list(attacks))
    df = da.to_dataframe(name="robust accuracy").reset_index()
    df["attack type"] = np.where(
        df["attack"].str.split("-").str[0].isin(_BLACK_BOX), "gradient-free", "white-box"
    )
    ax = get_ax(ax)
    sns.lineplot(data=df, x="eps", y="robust accuracy", hue="attack", style="attack type",
                 style_order=["white-box", "gradient-free"], ax=ax,
                 **with_defaults({"markers": True}, kwargs, Line2D))
    ax.set_xscale("log")
    norm = da.attrs.get("norm", "")
    ax.set_xlabel(f"eps ({'L-inf' if norm == 'linf' else 'L2' if norm == 'l2' else 'perturbation'}"
                  " norm, input units)")
    n = da.attrs.get("n_correct")
    ax.set_ylabel("robust accuracy" + (f" (of {n} correct inputs)" if n else ""))
    ax.set_ylim(-0.02, 1.02)
    # Curves start at 1 on the left: the lower-left corner is free.
    sns.move_legend(ax, "lower left", fontsize="small")
    return ax


def plot_critical_eps(result: Any, ax: Any = None, *, bins: int = 30, **kwargs: Any):
    """Histogram of the per-input critical eps on a log axis.

    Inputs never flipped (critical eps ``inf``) are counted in the title.

    Parameters
    ----------
    result : AdversarialRobustness or xarray.DataArray or array-like
        A fitted estimator (its ``critical_eps_``) or the critical eps values.
    ax : matplotlib Axes, optional
    bins : int, default=30
    **kwargs
        Passed to :func:`seaborn.histplot` (e.g. ``color``, ``element``).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = plot_critical_eps([0.01, 0.02, 0.05, float("inf")])
    >>> ax.get_title()
    '3 inputs flipped, 1 never'
    """
    import seaborn as sns

    values = getattr(result, "critical_eps_", result)
    if values is None:
        raise ValueError("the estimator was fitted with compute_critical_eps=False.")
    attrs = getattr(values, "attrs", {})
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values) & (values > 0)]
    n_never = int(np.isposinf(values).sum())
    ax = get_ax(ax)
    if finite.size:
        sns.histplot(finite, ax=ax, **with_defaults({"bins": bins, "log_scale": True}, kwargs))
        ax.axvline(float(np.median(finite)), color="k", ls="--", lw=1,
                   label=f"median {np.median(finite):.3g}")
        ax.legend()
    norm = attrs.get("norm", "")
    attack = attrs.get("attack")
    ax.set_xlabel(f"critical eps ({'L-inf' if norm == 'linf' else 'L2' if norm == 'l2' else ''}"
                  f" norm{', ' + attack if attack else ''})".replace("( ", "("))
    ax.set_ylabel("number of inputs")
    ax.set_title(f"{finite.size} inputs flipped, {n_never} never")
    return ax
