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
