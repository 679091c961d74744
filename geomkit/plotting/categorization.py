"""Figures of categorical perception: index per layer, morph profiles, d' heatmaps."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._style import get_ax, with_defaults

__all__ = ["plot_categorization_by_layer", "plot_morph_profile", "plot_selectivity"]


def plot_categorization_by_layer(table: Any, *, hue: str | None = None, ax: Any = None, **kwargs: Any):
    """Categoricality index against depth, with the bootstrap interval as a band.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`geomkit.probe.categorization_by_layer`; concatenate several
        (with a column naming each model) to compare them via ``hue``.
    hue : str, optional
        Column separating curves (e.g. ``"model"``). Models of different
        depths share the depth axis; a tick whose layers have different names
        in different models shows them all (``"1 / conv1"``).
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`seaborn.lineplot` (e.g. ``palette``, ``linewidth``).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import torch
    >>> from geomkit.probe import categorization_by_layer
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> x, y = torch.randn(60, 6), torch.arange(60) % 3
    >>> table = categorization_by_layer(net, x, y, n_bootstraps=20, progress=False)
    >>> ax = plot_categorization_by_layer(table)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['input', '0', '1', '2']
    """
    import seaborn as sns

    ax = get_ax(ax)
    sns.lineplot(data=table, x="depth", y="index", hue=hue, errorbar=None, ax=ax,
                 **{"marker": "o", **kwargs})
    groups = [(None, table)] if hue is None else list(table.groupby(hue, sort=False))
    # The bands take the colours seaborn gave the lines, whatever palette was asked for.
    # (seaborn also adds empty lines as legend handles: skip those.)
    drawn = [line for line in ax.get_lines() if len(line.get_xdata())]
    colors = [line.get_color() for line in drawn[-len(groups):]]
    for color, (_, rows) in zip(colors, groups):
        if rows["ci_low"].notna().any():
            ax.fill_between(rows["depth"], rows["ci_low"], rows["ci_high"], color=color, alpha=0.2,
                            lw=0)
    names = table.groupby("depth", sort=True)["layer"].agg(lambda s: " / ".join(dict.fromkeys(map(str, s))))
    ax.set_xticks(names.index, names.values, rotation=30, ha="right")
    ax.set_xlabel("layer (input first)")
    ax.set_ylabel("categoricality index (KS statistic)")
    ax.set_ylim(0, 1.02)
    return ax


def plot_morph_profile(profile: Any, *, normalize: bool = True, ax: Any = None, **kwargs: Any):
    """Distance between consecutive steps per layer, and the end-class probabilities.

    Parameters
    ----------
    profile : xarray.Dataset
        :func:`geomkit.probe.morph_profile` (one continuum, against ``lambda``
        minus its boundary) or :func:`geomkit.probe.morph_profiles` (the
        aligned means over accepted continua).
    normalize : bool, default=True
        Divide each layer's curve by its mean, so that layers of different
        scales share an axis and the height of the boundary peak compares.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`seaborn.lineplot` for the layers' distance curves
        (e.g. ``palette``, ``linewidth``); not to the probability curves.

    Returns
    -------
    matplotlib.axes.Axes
        The distance axes; the probabilities are on a twin axis.

    Examples
    --------
    >>> import torch
    >>> from geomkit.probe import morph_profile
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, 1.0]]))
    ...     _ = net[0].bias.zero_()
    >>> prof = morph_profile(net, [-4.0, 1.0], [4.0, 1.0], n_steps=41)
    >>> ax = plot_morph_profile(prof)
    >>> ax.get_ylabel()
    'step-to-step distance / layer mean'
    """
    import pandas as pd
    import seaborn as sns
    from matplotlib.lines import Line2D

    ax = get_ax(ax, figsize=(5.6, 3.8))
    if "pair" in profile.dims:
        dist = profile["distance_aligned"]
        x_mid, x_step = profile["offset"].values, profile["offset_step"].values
        p_a, p_b = profile["p_a_aligned"].values, profile["p_b_aligned"].values
        title = f"{profile.attrs['n_accepted']} accepted continua (of {profile.sizes['pair']})"
        dist_values = dist.transpose("layer", "offset").values
    else:
        x_mid, x_step = profile["aligned_mid"].values, profile["aligned"].values
        p_a, p_b = profile["p_a"].values, profile["p_b"].values
        title = f"continuum {int(profile['class_a'])} -> {int(profile['class_b'])}"
        dist_values = profile["distance"].transpose("layer", "interval").values
    if normalize:
        dist_values = dist_values / np.nanmean(dist_values, axis=1, keepdims=True)
    layers = [str(v) for v in profile["layer"].values]
    frame = pd.DataFrame({
        "layer": np.repeat(layers, x_mid.size),
        "position": np.tile(x_mid, len(layers)),
        "distance": dist_values.reshape(-1),
    })
    style = {"palette": sns.color_palette("rocket_r", n_colors=len(layers)), "linewidth": 2}
    sns.lineplot(data=frame, x="position", y="distance", hue="layer", ax=ax,
                 **with_defaults(style, kwargs, Line2D))
    ax.set_xlabel("position along the continuum, relative to the boundary (lambda)")
    ax.set_ylabel("step-to-step distance" + (" / layer mean" if normalize else ""))
    ax.axvline(0.0, color="0.6", lw=1, ls=":")
    twin = ax.twinx()
    twin.plot(x_step, p_a, ls="--", color="tab:blue", label="p(start class)")
    twin.plot(x_step, p_b, ls="--", color="tab:red", label="p(end class)")
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("class probability")
    twin.legend(loc="center right", fontsize="small")
    ax.legend(title="layer", loc="upper left", fontsize="small")
    ax.set_title(title)
    return ax


def plot_selectivity(selectivity: Any, *, max_units: int = 60, ax: Any = None, **kwargs: Any):
    """Heatmap of d' (units x classes), units sorted by preferred class then selectivity.

    Parameters
    ----------
    selectivity : CategorySelectivity or xarray.DataArray
        A fitted :class:`geomkit.measures.categorization.CategorySelectivity`
        or its ``d_prime_`` (dims ``("unit", "class")``).
    max_units : int, default=60
        Show the most selective units only (largest max d').
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`seaborn.heatmap` (e.g. ``cmap``, ``linewidths``);
        they replace its defaults (diverging ``"RdBu_r"`` centred on 0).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.measures import CategorySelectivity
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(90) % 3
    >>> X = rng.normal(size=(90, 12)) + 2.0 * (y[:, None] == np.arange(12) % 3)
    >>> ax = plot_selectivity(CategorySelectivity().fit(X, y))
    >>> ax.get_xlabel()
    'class'
    """
    import seaborn as sns

    d = getattr(selectivity, "d_prime_", selectivity)
    threshold = getattr(selectivity, "threshold", 0.85)
    values = d.transpose("unit", "class").values
    best = np.where(np.isfinite(values), values, np.sign(values) * 1e6).max(axis=1)
    keep = np.argsort(-best, kind="stable")[:max_units]
    preferred = values[keep].argmax(axis=1)
    keep = keep[np.lexsort((-best[keep], preferred))]
    shown = d.isel(unit=keep).to_pandas()
    finite = values[np.isfinite(values)]
    vmax = float(np.nanpercentile(np.abs(finite), 99)) if finite.size else 1.0
    ax = get_ax(ax, figsize=(0.5 * d.sizes["class"] + 2.5, 4.5))
    style = {"cmap": "RdBu_r", "center": 0, "vmin": -vmax, "vmax": vmax,
             "cbar_kws": {"label": f"d' (selective if >= {threshold:g})"}, "yticklabels": len(keep) <= 30}
    # no alias resolution: heatmap's own `linewidths` parameter must stay spelled so
    sns.heatmap(shown, ax=ax, **with_defaults(style, kwargs))
    ax.set_xlabel("class")
    ax.set_ylabel(f"unit ({len(keep)} most selective, by preferred class)")
    return ax
