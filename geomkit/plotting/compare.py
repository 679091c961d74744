"""Heat map of a layer x layer (or model x model) similarity with its intervals."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._style import get_ax

__all__ = ["plot_layer_similarity"]


def plot_layer_similarity(
    similarity: Any,
    *,
    annotate: bool = True,
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    cmap: str = "viridis",
    ax: Any = None,
    **kwargs: Any,
):
    """Draw a similarity matrix as a heat map, each cell annotated with value and interval.

    Parameters
    ----------
    similarity : xarray.Dataset or xarray.DataArray
        :func:`geomkit.measures.compare_layers`' Dataset (``value``, and
        ``value_corrected``, ``ci_low`` / ``ci_high`` when bootstrapped: then
        the bias-corrected value, the centre of the interval, is drawn) or a
        2-D DataArray. Its
        first dimension runs down the rows, its second along the columns
        (e.g. ``("layer_a", "layer_b")`` or ``("model_a", "model_b")``).
    annotate : bool, default=True
        Write the value in each cell, with ``[low, high]`` below where finite.
    vmin, vmax : float or None, default=0.0, 1.0
        Colour range (None: the data's range).
    cmap : str, default="viridis"
        Matplotlib colour map.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow` (e.g. ``alpha``,
        ``interpolation``).

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]`` (its array holds the values drawn),
        the annotations are ``ax.texts``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> sim = xr.DataArray([[1.0, 0.4], [0.4, 1.0]], dims=("layer_a", "layer_b"),
    ...                    coords={"layer_a": ["fc1", "fc2"], "layer_b": ["fc1", "fc2"]})
    >>> ax = plot_layer_similarity(sim)
    >>> ax.images[0].get_array().tolist(), [t.get_text() for t in ax.texts]
    ([[1.0, 0.4], [0.4, 1.0]], ['1.00', '0.40', '0.40', '1.00'])
    """
    if hasattr(similarity, "data_vars"):
        values = similarity["value"]
        if "value_corrected" in similarity:  # the estimate that lies inside its interval
            values = similarity["value_corrected"].where(np.isfinite(similarity["value_corrected"]), values)
        low = similarity["ci_low"].values if "ci_low" in similarity else None
        high = similarity["ci_high"].values if "ci_high" in similarity else None
        metric = similarity.attrs.get("metric", "similarity")
    else:
        values, low, high, metric = similarity, None, None, similarity.name or "similarity"
    if values.ndim != 2:
        raise ValueError(f"similarity must be 2-D (rows x columns); got dims {values.dims}.")
    row_dim, col_dim = values.dims
    data = np.asarray(values.values, dtype=float)
    n_rows, n_cols = data.shape
    ax = get_ax(ax, figsize=(1.0 + 0.9 * n_cols, 0.8 + 0.75 * n_rows))
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, **{"aspect": "auto", **kwargs})
    ax.figure.colorbar(image, ax=ax, label=str(metric).upper() if metric in ("cka", "rsa") else str(metric))
    ax.set_xticks(range(n_cols), [str(v) for v in values[col_dim].values], rotation=30, ha="right")
    ax.set_yticks(range(n_rows), [str(v) for v in values[row_dim].values])
    ax.set_xlabel(col_dim)
    ax.set_ylabel(row_dim)
    if annotate:
        lo, hi = (np.full(data.shape, np.nan) if b is None else np.asarray(b, float) for b in (low, high))
        span = (vmax if vmax is not None else np.nanmax(data)) - (vmin if vmin is not None else np.nanmin(data))
        middle = (vmin if vmin is not None else np.nanmin(data)) + 0.5 * span
        for i in range(n_rows):
            for j in range(n_cols):
                text = f"{data[i, j]:.2f}"
                if np.isfinite(lo[i, j]) and np.isfinite(hi[i, j]):
                    text += f"\n[{lo[i, j]:.2f}, {hi[i, j]:.2f}]"
                # dark text on the bright end of viridis, light on the dark end
                color = "black" if np.isfinite(data[i, j]) and data[i, j] > middle else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    return ax
