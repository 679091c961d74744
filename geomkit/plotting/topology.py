"""Figures of level-set topology: persistence diagrams, Betti curves, contour counts, tuning maps."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._style import get_ax, with_defaults

__all__ = [
    "plot_persistence_diagram",
    "plot_betti_curves",
    "plot_contour_signature",
    "plot_tuning_map",
]


def _diagram_frame(diagrams: Any, map_index: int):
    """Bars of one map as a DataFrame (dim, birth, death) from a table or [H0, H1] arrays."""
    import pandas as pd

    if isinstance(diagrams, pd.DataFrame):
        rows = diagrams[diagrams["map"] == map_index] if "map" in diagrams else diagrams
        return rows[["dim", "birth", "death"]].reset_index(drop=True)
    if isinstance(diagrams, (list, tuple)) and len(diagrams) == 2 and all(
        np.ndim(d) == 2 for d in diagrams
    ):
        parts = [pd.DataFrame({"dim": k, "birth": np.asarray(d)[:, 0], "death": np.asarray(d)[:, 1]})
                 for k, d in enumerate(diagrams)]
        return pd.concat(parts, ignore_index=True)
    raise TypeError(
        "diagrams must be a table from level_set_persistence / LevelSetTopology.diagrams_ or "
        f"a [H0, H1] pair of (k, 2) arrays; got {type(diagrams).__name__}."
    )


def plot_persistence_diagram(diagrams: Any, map_index: int = 0, *, ax: Any = None, **kwargs: Any):
    """Scatter the bars of one map: birth (x) against death (y), H0 and H1 in two colours.

    Superlevel convention: births are above deaths, so points sit below the
    diagonal; their distance to it is the persistence. The essential H0 bar
    (death ``-inf``) is drawn on the bottom edge with a triangle.

    Parameters
    ----------
    diagrams : pandas.DataFrame or [ndarray, ndarray]
        :func:`geomkit.measures.topology.level_set_persistence` (or
        ``LevelSetTopology.diagrams_``), or one map's ``[H0, H1]`` diagrams.
    map_index : int, default=0
        Which map of a table to draw.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`seaborn.scatterplot` for the bars' points (e.g.
        ``s``, ``alpha``, ``palette``).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import level_set_persistence
    >>> y, x = np.mgrid[:32, :32]
    >>> two_peaks = np.exp(-((x - 8) ** 2 + (y - 16) ** 2) / 20) + 0.5 * np.exp(
    ...     -((x - 24) ** 2 + (y - 16) ** 2) / 20)
    >>> ax = plot_persistence_diagram(level_set_persistence(two_peaks, min_persistence=0.1))
    >>> len(ax.collections[0].get_offsets())  # the two peaks
    2
    """
    import seaborn as sns

    ax = get_ax(ax, figsize=(4.4, 4.0))
    bars = _diagram_frame(diagrams, map_index)
    if bars.empty:
        raise ValueError(f"map {map_index} has no bar to draw.")
    finite = np.isfinite(bars["death"])
    values = np.concatenate([bars["birth"], bars["death"][finite]])
    lo, hi = values.min(), values.max()
    pad = 0.05 * (hi - lo or 1.0)
    bottom = lo - pad
    bars = bars.assign(
        homology=bars["dim"].map({0: "H0 (components)", 1: "H1 (holes)"}),
        plotted_death=np.where(finite, bars["death"], bottom),
        kind=np.where(finite, "finite", "essential"),
    )
    style = {"markers": {"finite": "o", "essential": "v"}, "s": 36}
    sns.scatterplot(data=bars, x="birth", y="plotted_death", hue="homology", style="kind", ax=ax,
                    **with_defaults(style, kwargs))
    ax.plot([bottom, hi + pad], [bottom, hi + pad], color="0.5", lw=1, ls="--", zorder=0)
    ax.set_xlim(bottom, hi + pad)
    ax.set_ylim(bottom - pad, hi + pad)
    ax.set_xlabel("birth: level where it appears (map units)")
    ax.set_ylabel("death: level where it merges / fills (map units)")
    ax.set_title("superlevel persistence diagram")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def _level_frame(curves: Any, category: str, names: dict):
    """Tidy frame (map, category, x, count) of a Betti-curve / signature DataArray."""
    import pandas as pd

    da = curves if "map" in curves.dims else curves.expand_dims("map")
    if "fraction" in da.coords:
        x = np.broadcast_to(da["fraction"].values, (da.sizes["map"], da.sizes["level"]))
        label = ("level (fraction of the map's maximum)" if da.attrs.get("levels") == "fraction"
                 else "level (fraction of the map's range, min to max)")
    else:
        x = da["threshold"].values.reshape(da.sizes["map"], da.sizes["level"])
        label = "level (map units)"
    frames = []
    for key, name in names.items():
        counts = da.sel({category: key}).transpose("map", "level").values
        frames.append(pd.DataFrame({
            "map": np.repeat(np.arange(counts.shape[0]), counts.shape[1]),
            "curve": name, "level": x.reshape(-1), "count": counts.reshape(-1)}))
    return pd.concat(frames, ignore_index=True), label


def _level_lines(frame: Any, ax: Any, kwargs: dict) -> None:
    """Count against level, one line per curve, mean and 95% band over maps; the user's kwargs win."""
    import seaborn as sns
    from matplotlib.lines import Line2D

    style = with_defaults({"marker": "o", "errorbar": ("ci", 95)}, kwargs, Line2D)
    sns.lineplot(data=frame, x="level", y="count", hue="curve", ax=ax, **style)


def plot_betti_curves(curves: Any, *, ax: Any = None, **kwargs: Any):
    """Betti curves b0(t) and b1(t) against the level; over several maps, their mean with a 95% band.

    Parameters
    ----------
    curves : xarray.DataArray
        From :func:`geomkit.measures.topology.betti_curves` or
        ``LevelSetTopology.betti_curves_``.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`seaborn.lineplot` (e.g. ``linewidth``, ``palette``;
        ``errorbar=None`` drops the band).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import betti_curves
    >>> y, x = np.mgrid[:32, :32]
    >>> ring = np.exp(-((np.hypot(x - 16, y - 16) - 9) ** 2) / 8)
    >>> ax = plot_betti_curves(betti_curves(ring))
    >>> ax.get_ylabel()
    'Betti number of {f >= level}'
    """
    ax = get_ax(ax)
    frame, label = _level_frame(curves, "dim", {0: "b0 (components)", 1: "b1 (holes)"})
    _level_lines(frame, ax, kwargs)
    ax.set_xlabel(label)
    ax.set_ylabel("Betti number of {f >= level}")
    ax.legend(title=None)
    return ax


def plot_contour_signature(signature: Any, *, ax: Any = None, **kwargs: Any):
    """Closed loops and border-ending lines against the level (Wang & Ponce's signature).

    Parameters
    ----------
    signature : xarray.DataArray
        From :func:`geomkit.measures.topology.contour_signature` or
        ``LevelSetTopology.signatures_``; several maps give mean and 95% band.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`seaborn.lineplot` (e.g. ``linewidth``, ``palette``;
        ``errorbar=None`` drops the band).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import contour_signature
    >>> y, x = np.mgrid[:32, :32]
    >>> ax = plot_contour_signature(contour_signature(np.exp(-((x - 16) ** 2 + (y - 16) ** 2) / 50)))
    >>> ax.get_ylabel()
    'contours at the level'
    """
    ax = get_ax(ax)
    frame, label = _level_frame(signature, "kind", {"loop": "closed loops", "line": "lines to border"})
    _level_lines(frame, ax, kwargs)
    ax.set_xlabel(label)
    ax.set_ylabel("contours at the level")
    ax.legend(title=None)
    return ax


def plot_tuning_map(tuning: Any, *, n_levels: int = 8, ax: Any = None, **kwargs: Any):
    """A tuning map as an image with its level-set contours.

    Parameters
    ----------
    tuning : xarray.DataArray of shape (H, W) or array-like
        From :func:`geomkit.probe.tuning_map` (its ``x`` / ``y`` coefficients
        label the axes) or a plain 2-D array.
    n_levels : int, default=8
        Contour levels, evenly spaced between min and max.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.pcolormesh` for the map (e.g.
        ``cmap``, ``vmin``); not to the contours.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import torch
    >>> from geomkit.probe import tuning_map
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh())
    >>> m = tuning_map(net, "1", 0, [0.0, 0, 0], [1.0, 0, 0], [0.0, 1, 0], extent=2, resolution=9)
    >>> ax = plot_tuning_map(m)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('coefficient of direction 1', 'coefficient of direction 2')
    """
    ax = get_ax(ax, figsize=(4.4, 3.8))
    values = np.asarray(getattr(tuning, "values", tuning), dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"tuning must be one 2-D map; got shape {values.shape}.")
    dims = getattr(tuning, "dims", ())
    if dims == ("y", "x"):
        x, y = np.asarray(tuning["x"]), np.asarray(tuning["y"])
        xlabel, ylabel = "coefficient of direction 1", "coefficient of direction 2"
    else:
        y, x = np.arange(values.shape[0]), np.arange(values.shape[1])
        xlabel, ylabel = "x (pixel)", "y (pixel)"
    mesh = ax.pcolormesh(x, y, values, **with_defaults({"shading": "nearest", "cmap": "viridis"}, kwargs))
    levels = np.linspace(values.min(), values.max(), n_levels + 2)[1:-1]
    if values.max() > values.min():
        ax.contour(x, y, values, levels=levels, colors="white", linewidths=0.8,
                   linestyles="solid")
    ax.figure.colorbar(mesh, ax=ax, label="response")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal")
    return ax
