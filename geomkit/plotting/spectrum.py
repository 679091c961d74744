"""Figures of power-law spectra: activation eigenspectra and weight spectra."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._style import get_ax, with_defaults

__all__ = ["plot_spectrum", "plot_weight_spectra"]


def _spectrum_dataset(result: Any):
    import xarray as xr

    if hasattr(result, "to_xarray") and hasattr(result, "alpha_"):
        return result.to_xarray()
    if isinstance(result, xr.Dataset) and "eigenvalue" in result and "rank" in result.coords:
        return result
    raise TypeError(
        "result must be a fitted PowerLawSpectrum or its to_xarray() Dataset; "
        f"got {type(result).__name__}."
    )


def _darker(color: Any, factor: float = 0.6) -> tuple[float, float, float]:
    """``color`` with its RGB scaled towards black (same hue, so a fit line matches its data)."""
    from matplotlib.colors import to_rgb

    return tuple(factor * c for c in to_rgb(color))


def _alpha_label(attrs: dict, label: str | None) -> str:
    text = f"α = {float(attrs['alpha']):.2f}"
    ci = np.asarray(attrs.get("alpha_ci", [np.nan, np.nan]), dtype=float)
    if np.all(np.isfinite(ci)):
        pct = round(100 * float(attrs.get("confidence_level", 0.95)))
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}] ({pct} % CI)"
    return f"{label}: {text}" if label else text


def plot_spectrum(
    result: Any,
    *,
    ax: Any = None,
    label: str | None = None,
    color: Any = None,
    show_fit: bool = True,
    show_noise: bool = True,
    shade: bool = True,
    floor: float = 1e-12,
    **kwargs: Any,
):
    """Log-log eigenspectrum with the fitted power law and the fit range shaded.

    Parameters
    ----------
    result : PowerLawSpectrum or xarray.Dataset
        A fitted estimator or its :meth:`~geomkit.PowerLawSpectrum.to_xarray`.
    ax : matplotlib Axes, optional
        Draw on it (several spectra can share one Axes).
    label : str, optional
        Prefix of the legend entry (e.g. the layer); the entry states alpha and its CI.
    color : matplotlib color, optional
    show_fit : bool, default=True
        Dashed line ``exp(b) * n ** -alpha`` over the fitted ranks.
    show_noise : bool, default=True
        cvPCA: the noise spectrum, dotted.
    shade : bool, default=True
        Shade the fitted ranks.
    floor : float, default=1e-12
        The y axis starts no lower than ``floor * lambda_1``: eigenvalues
        below that are rounding residue of a rank-deficient covariance (float64
        resolves about 1e-16 of lambda_1), and would stretch the axis to 1e-20.
        ``0`` shows everything.
    **kwargs
        Passed to :func:`seaborn.lineplot` for the eigenvalue line (e.g.
        ``linewidth``, ``alpha``, ``linestyle``).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from geomkit.datasets import make_powerlaw_data
    >>> from geomkit.measures.spectrum import PowerLawSpectrum
    >>> from geomkit.plotting import plot_spectrum
    >>> X, _ = make_powerlaw_data(1000, 100, alpha=1.0, random_state=0)
    >>> ax = plot_spectrum(PowerLawSpectrum(fit_range=(5, 50)).fit(X), label="synthetic")
    >>> ax.get_xscale(), ax.get_yscale()
    ('log', 'log')
    """
    import seaborn as sns

    ds = _spectrum_dataset(result)
    ax = get_ax(ax)
    attrs = dict(ds.attrs)
    rank = ds["rank"].values
    lam = ds["eigenvalue"].values
    positive = lam > 0
    if color is None:
        color = sns.color_palette()[len(ax.get_lines()) % 10]
    what = "signal (cvPCA)" if attrs.get("method") == "cvpca" else "eigenvalues"
    sns.lineplot(x=rank[positive], y=lam[positive], ax=ax, color=color,
                 label=f"{label}: {what}" if label else what, **{"linewidth": 1.5, **kwargs})
    lo, hi = (int(v) for v in np.asarray(attrs["fit_range"]).ravel())
    if shade:
        ax.axvspan(lo, hi, color=color, alpha=0.08, linewidth=0)
    if show_fit:
        fitted = ds["fitted"].values
        ok = np.isfinite(fitted)
        # The series' own colour, darker: several spectra on one Axes keep their fits apart.
        ax.plot(rank[ok], fitted[ok], "--", color=_darker(color), linewidth=1.2,
                label=f"fit {lo}..{hi}, " + _alpha_label(attrs, label))
    if show_noise and "noise_eigenvalue" in ds:
        noise = ds["noise_eigenvalue"].values
        ax.plot(rank[noise > 0], noise[noise > 0], ":", color=color, linewidth=1.2,
                label=f"{label}: noise" if label else "noise")
    n_neg = int(np.count_nonzero(~positive))
    if n_neg:
        ax.text(0.02, 0.02, f"{n_neg} non-positive values not shown", transform=ax.transAxes,
                fontsize="small", color="0.4")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if positive.any() and floor > 0:
        shown = lam[positive]
        # Several spectra on one Axes: the lowest of their floors.
        bottom = min(getattr(ax, "_geomkit_spectrum_bottom", np.inf),
                     max(shown.min(), floor * shown.max()) / 2)
        ax._geomkit_spectrum_bottom = bottom
        ax.set_ylim(bottom=bottom)
    ax.set_xlabel("rank n (principal component)")
    ax.set_ylabel("variance λ_n (eigenvalue)")
    ax.legend(fontsize="small", frameon=False)
    return ax


def plot_weight_spectra(table: Any, *, ax: Any = None, layers: Any = None, **kwargs: Any):
    """Empirical CCDF of each layer's W'W eigenvalues with its fitted power-law tail.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`geomkit.measures.weight_spectra.weight_spectra`.
    ax : matplotlib Axes, optional
    layers : list of str, optional
        Rows to draw (default: all with a fit).
    **kwargs
        Passed to :func:`seaborn.lineplot` for each layer's CCDF (e.g.
        ``linewidth``, ``alpha``); a ``color`` given here colours every layer
        and its tail fit.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import torch
    >>> from geomkit.measures.weight_spectra import weight_spectra
    >>> from geomkit.plotting import plot_weight_spectra
    >>> net = torch.nn.Sequential(torch.nn.Linear(200, 100), torch.nn.ReLU(), torch.nn.Linear(100, 50))
    >>> ax = plot_weight_spectra(weight_spectra(net, progress=False))
    >>> ax.get_xlabel()
    "eigenvalue λ of W'W"
    """
    import pandas as pd
    import seaborn as sns
    from matplotlib.lines import Line2D

    if not isinstance(table, pd.DataFrame) or "eigenvalues" not in table:
        raise TypeError(
            f"table must be the DataFrame returned by weight_spectra; got {type(table).__name__}."
        )
    rows = table if layers is None else table[table["layer"].isin(list(layers))]
    ax = get_ax(ax)
    palette = sns.color_palette(n_colors=max(len(rows), 1))
    for color, row in zip(palette, rows.itertuples()):
        lam = np.sort(np.asarray(row.eigenvalues, dtype=float))[::-1]
        lam = lam[lam > 0]
        if lam.size == 0:
            continue
        ccdf = np.arange(1, lam.size + 1) / lam.size  # fraction of eigenvalues >= lambda
        style = with_defaults({"color": color, "drawstyle": "steps-post"}, kwargs, Line2D)
        color = style["color"]
        sns.lineplot(x=lam, y=ccdf, ax=ax, estimator=None, label=f"{row.layer} ({row.shape})", **style)
        if np.isfinite(row.alpha):
            x = np.geomspace(row.xmin, lam[0], 50)
            tail = row.n_tail / lam.size * (x / row.xmin) ** (1.0 - row.alpha)
            ax.plot(x, tail, "--", color=color, linewidth=1.2,
                    label=f"tail fit: a = {row.alpha:.2f}, x_min = {row.xmin:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue λ of W'W")
    ax.set_ylabel("fraction of eigenvalues ≥ λ (CCDF)")
    ax.legend(fontsize="small", frameon=False)
    return ax
