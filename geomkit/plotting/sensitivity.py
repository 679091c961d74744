"""Figures of Fisher / Jacobian flatness and of weight kurtosis."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._style import get_ax, with_defaults

__all__ = ["plot_flatness", "plot_flatness_spectrum", "plot_weight_kurtosis"]

_LABELS = {
    "trace": "trace of the metric",
    "log_trace": "log trace (natural log)",
    "participation_ratio": "participation ratio (directions)",
    "n_directions": "input directions for {pct} % of the trace",
}


def _dataset(result: Any):
    import xarray as xr

    ds = getattr(result, "results_", result)
    if not isinstance(ds, xr.Dataset) or "trace" not in ds:
        raise TypeError(
            "result must be a fitted FisherFlatness / JacobianFlatness or its results_ Dataset; "
            f"got {type(result).__name__}."
        )
    return ds


def _ylabel(attrs: dict, quantity: str) -> str:
    pct = round(100 * float(attrs.get("variance_fraction", 0.9)))
    label = _LABELS[quantity].format(pct=pct)
    if quantity not in ("trace", "log_trace") or "measure" not in attrs:
        return label
    what = "Fisher information G(x)" if attrs["measure"] == "fisher" else "J(x)^T J(x)"
    return f"{label} of {what}"


def plot_flatness(
    result: Any,
    quantity: str = "log_trace",
    *,
    kind: str = "violin",
    x: str = "layer",
    hue: str | None = None,
    ax: Any = None,
    **kwargs: Any,
):
    """Distributions over stimuli of a flatness summary, one per layer (or per ``x`` value).

    Parameters
    ----------
    result : FisherFlatness, JacobianFlatness, xarray.Dataset or pandas.DataFrame
        A fitted estimator, its ``results_``, or a tidy table from
        :func:`geomkit.sensitivity.flatness_frame` (possibly several
        concatenated, with extra columns such as ``network``).
    quantity : {"log_trace", "trace", "participation_ratio", "n_directions"}
    kind : {"violin", "box", "strip"}, default="violin"
    x : str, default="layer"
        Column on the horizontal axis.
    hue : str, optional
        Column splitting each group (e.g. ``"label"`` or ``"network"``).
    ax : matplotlib Axes, optional
    **kwargs
        Passed to the seaborn function of ``kind`` (:func:`seaborn.violinplot`,
        :func:`~seaborn.boxplot` or :func:`~seaborn.stripplot`), e.g.
        ``palette``, ``linewidth``; ``cut`` replaces the violins' default 0.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import torch
    >>> from geomkit import FisherFlatness
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> est = FisherFlatness(net, progress=False).fit(torch.randn(20, 4))
    >>> ax = plot_flatness(est)
    >>> ax.get_title()
    'Fisher information: 20 stimuli'
    """
    import pandas as pd
    import seaborn as sns

    from .._validation import check_option
    from ..sensitivity import flatness_frame

    check_option(quantity, "quantity", tuple(_LABELS))
    check_option(kind, "kind", ("violin", "box", "strip"))
    if isinstance(result, pd.DataFrame):
        df, attrs = result, dict(result.attrs)
    else:
        ds = _dataset(result)
        df, attrs = flatness_frame(ds), dict(ds.attrs)
    for name, column in (("quantity", quantity), ("x", x), ("hue", hue)):
        if column is not None and column not in df:
            raise ValueError(f"{name}={column!r} is not a column of the results; available: {list(df)}.")
    df = df.replace([np.inf, -np.inf], np.nan).dropna(subset=[quantity])
    ax = get_ax(ax)
    plot = {"violin": sns.violinplot, "box": sns.boxplot, "strip": sns.stripplot}[kind]
    defaults = {"cut": 0} if kind == "violin" else {}
    plot(data=df, x=x, y=quantity, hue=hue, ax=ax, **with_defaults(defaults, kwargs))
    if quantity == "trace":
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(_ylabel(attrs, quantity))
    n = df["stimulus"].nunique() if "stimulus" in df else len(df)
    title = {"fisher": "Fisher information", "jacobian": "input Jacobian"}.get(attrs.get("measure"), "flatness")
    ax.set_title(f"{title}: {n} stimuli")
    if hue is not None:
        ax.legend(title=hue)
    return ax


def plot_flatness_spectrum(result: Any, *, layers: Any = None, label: str | None = None, ax: Any = None,
                           **kwargs: Any):
    """Eigenvalue spectrum of the metric per layer: median over stimuli and interquartile band.

    Parameters
    ----------
    result : FisherFlatness, JacobianFlatness or xarray.Dataset
    layers : None or list of str
        Which layers (default: all).
    label : str, optional
        Legend prefix, e.g. the network's name when several are overlaid.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot` for each layer's median
        line (e.g. ``linewidth``, ``marker``); a ``color`` given here also
        colours the bands.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import torch
    >>> from geomkit import JacobianFlatness
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> est = JacobianFlatness(net, layers=["1", "output"], progress=False).fit(torch.randn(20, 4))
    >>> ax = plot_flatness_spectrum(est)
    >>> ax.get_yscale(), [t.get_text() for t in ax.get_legend().get_texts()]
    ('log', ['1', 'output'])
    """
    from matplotlib.lines import Line2D

    ds = _dataset(result)
    names = list(ds["layer"].values) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    ax = get_ax(ax)
    for name in names:
        lam = ds["eigenvalues"].sel(layer=name).values  # (stimulus, rank)
        keep = ~np.isnan(lam).all(axis=0)
        ranks = ds["rank"].values[keep]
        lo, med, hi = np.nanpercentile(np.where(lam[:, keep] > 0, lam[:, keep], np.nan), [25, 50, 75], axis=0)
        text = str(name) if label is None else (label if len(names) == 1 else f"{label}: {name}")
        (line,) = ax.plot(ranks, med, label=text,
                          **with_defaults({"marker": "o", "markersize": 3}, kwargs, Line2D))
        ax.fill_between(ranks, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("rank n of the eigenvalue")
    what = "Fisher information G(x)" if ds.attrs.get("measure") == "fisher" else "J(x)^T J(x)"
    ax.set_ylabel(f"eigenvalue of {what}")
    ax.set_title("median over stimuli, band: 25-75 %")
    ax.legend(title="layer" if label is None else None)
    return ax


def plot_weight_kurtosis(table: Any, *, pooled: Any = None, ax: Any = None, **kwargs: Any):
    """Excess kurtosis of each layer's weights, with the Gaussian / Laplace / uniform references.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`geomkit.measures.weight_kurtosis` (or rows with
        ``layer`` and ``kurtosis`` columns).
    pooled : pandas.Series or float, optional
        :func:`geomkit.measures.pooled_weight_kurtosis` (or its kurtosis),
        drawn as a grey bar after the layers.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`seaborn.barplot` (e.g. ``color``, ``alpha``, ``width``).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import torch
    >>> from geomkit import weight_kurtosis
    >>> from geomkit.measures import pooled_weight_kurtosis
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))
    >>> ax = plot_weight_kurtosis(weight_kurtosis(net), pooled=pooled_weight_kurtosis(net))
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['0', '2', 'pooled']
    """
    import pandas as pd
    import seaborn as sns

    if not hasattr(table, "columns") or not {"layer", "kurtosis"} <= set(table.columns):
        raise TypeError(
            "table must be a DataFrame with 'layer' and 'kurtosis' columns (the output of "
            f"weight_kurtosis); got {type(table).__name__}."
        )
    df = table[["layer", "kurtosis"]].copy()
    df["layer"] = df["layer"].replace("", "(model)").astype(str)
    colors = ["C0"] * len(df)
    if pooled is not None:
        value = float(pooled) if np.isscalar(pooled) else float(pooled["kurtosis"])
        df = pd.concat([df, pd.DataFrame({"layer": ["pooled"], "kurtosis": [value]})], ignore_index=True)
        colors.append("0.55")
    ax = get_ax(ax)
    if "color" in kwargs:
        colors = [kwargs.pop("color")] * len(df)
    sns.barplot(data=df, x="layer", y="kurtosis", hue="layer", palette=colors, legend=False, ax=ax,
                **kwargs)
    for value, name, style in ((0.0, "Gaussian (0)", "-"), (3.0, "Laplace (3)", "--"), (-1.2, "uniform (-1.2)", ":")):
        ax.axhline(value, color="k", ls=style, lw=1, label=name)
    ax.set_xlabel("layer")
    ax.set_ylabel("excess kurtosis of the weights")
    ax.set_title("weight kurtosis (Nayebi & Ganguli 2017)")
    ax.legend(title="reference law", fontsize="small")
    return ax
