"""Shared figure helpers: one look for every geomkit plot."""

from __future__ import annotations

from typing import Any


def get_ax(ax: Any = None, figsize: tuple[float, float] = (5.0, 3.8)):
    """Return ``ax``, or a new Axes on a new figure of ``figsize`` inches."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def with_defaults(defaults: dict[str, Any], kwargs: dict[str, Any], artist: Any = None) -> dict[str, Any]:
    """``defaults`` overridden by the user's ``kwargs``: the user's value wins.

    With ``artist`` (a matplotlib Artist class), aliases are resolved first
    (``lw`` -> ``linewidth``, ``ms`` -> ``markersize``...), so a user's ``lw=3``
    replaces a default ``linewidth`` instead of matplotlib refusing both.
    """
    if artist is not None:
        from matplotlib.cbook import normalize_kwargs

        defaults, kwargs = normalize_kwargs(defaults, artist), normalize_kwargs(kwargs, artist)
    return {**defaults, **kwargs}
