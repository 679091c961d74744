"""Figures of the training submodule: histories, Hebbian convergence, receptive fields, spectra."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._params import check_random_state
from ._style import get_ax, with_defaults

__all__ = ["plot_training_history", "plot_hebbian_convergence", "plot_receptive_fields",
           "plot_spectral_targets"]


def plot_training_history(history: Any, metrics: Sequence[str] | None = None, *, ax: Any = None, log: bool = True,
                          **kwargs: Any):
    """Per-epoch curves of a classifier's ``history_``.

    Parameters
    ----------
    history : pandas.DataFrame
        ``history_`` of :class:`~geomkit.train.NetClassifier` /
        :class:`~geomkit.train.HebbianClassifier` (column ``epoch``).
    metrics : list of str, optional
        Columns to draw; default ``task_loss`` and every ``reg_*`` column.
    ax : matplotlib Axes, optional
    log : bool, default=True
        Logarithmic y axis (loss terms span decades).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot` for each metric's line
        (e.g. ``linewidth``, ``marker``).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> history = pd.DataFrame({"epoch": [1, 2, 3], "task_loss": [2.0, 0.9, 0.5],
    ...                         "reg_spectral": [0.3, 0.1, 0.05]})
    >>> ax = plot_training_history(history)
    >>> [t.get_text() for t in ax.get_legend().get_texts()], ax.get_yscale()
    (['task_loss', 'reg_spectral'], 'log')
    """
    from matplotlib.lines import Line2D

    ax = get_ax(ax)
    if metrics is None:
        metrics = ["task_loss"] + [c for c in history.columns if c.startswith("reg_")]
    missing = [m for m in metrics if m not in history.columns]
    if missing:
        raise ValueError(f"history has no column(s) {missing}; it has {list(history.columns)}.")
    style = with_defaults({"marker": "o", "markersize": 3}, kwargs, Line2D)
    for m in metrics:
        ax.plot(history["epoch"], history[m], label=m, **style)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss term (per sample, weighted)")
    ax.legend(frameon=False)
    return ax


def plot_hebbian_convergence(history: Any, *, ax: Any = None, label: str | None = None, **kwargs: Any):
    """Convergence of a Hebbian layer: weight-norm distance to R and fraction of units that won.

    Parameters
    ----------
    history : pandas.DataFrame
        ``history_`` of :meth:`~geomkit.train.hebbian.CompetitiveLayer.fit_unsupervised`
        (or ``HebbianClassifier.unsup_history_``).
    ax : matplotlib Axes, optional
        The norm distance goes on it (log scale); the fraction of units that
        ever won on a twin axis on the right.
    label : str, optional
        Prefix for the legend entries.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot` for both curves, the
        distance and the fraction (e.g. ``linewidth``, ``marker``); a ``color``
        given here replaces both default colours.

    Returns
    -------
    matplotlib.axes.Axes
        The left Axes (the twin is ``ax.right_ax``).

    Examples
    --------
    >>> import pandas as pd
    >>> history = pd.DataFrame({"epoch": [1, 2, 3], "norm_distance": [0.8, 0.1, 0.01],
    ...                         "frac_ever_won": [0.4, 0.9, 1.0]})
    >>> ax = plot_hebbian_convergence(history)
    >>> ax.get_ylabel(), ax.right_ax.get_ylabel()
    ('mean distance of unit norms to R', 'fraction of units that ever won')
    """
    from matplotlib.lines import Line2D

    ax = get_ax(ax)
    prefix = f"{label}: " if label else ""
    (l1,) = ax.plot(history["epoch"], history["norm_distance"], label=f"{prefix}mean | ||w||_p - R |",
                    **with_defaults({"color": "C0"}, kwargs, Line2D))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean distance of unit norms to R")
    right = ax.twinx()
    (l2,) = right.plot(history["epoch"], history["frac_ever_won"], label=f"{prefix}units that ever won",
                       **with_defaults({"color": "C1", "linestyle": "--"}, kwargs, Line2D))
    right.set_ylim(0, 1.02)
    right.set_ylabel("fraction of units that ever won")
    ax.legend(handles=[l1, l2], frameon=False, loc="upper center", bbox_to_anchor=(0.5, 1.15), ncol=2,
              fontsize="small")
    ax.right_ax = right
    return ax


def plot_receptive_fields(weights: Any, image_shape: tuple[int, int] = (28, 28), n: int = 25, *,
                          units: Any = None, ax: Any = None, random_state: int | None = 0, **kwargs: Any):
    """A mosaic of hidden units' weight vectors shown as images (blue < 0 < red).

    Parameters
    ----------
    weights : array-like or torch.Tensor of shape (n_hidden, n_features), or a Hebbian layer
        ``n_features`` must equal ``image_shape[0] * image_shape[1]``.
    image_shape : (int, int), default=(28, 28)
    n : int, default=25
        Number of units shown (a random subset, on a square grid).
    units : sequence of int, optional
        Show these units instead of a random subset.
    ax : matplotlib Axes, optional
    random_state : int, optional
        Which units are shown.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow` (e.g. ``cmap``,
        ``interpolation``); they replace the defaults (``"bwr"``, symmetric
        about 0).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).normal(size=(40, 64))
    >>> ax = plot_receptive_fields(W, image_shape=(8, 8), n=16)
    >>> ax.get_title()
    '16 of 40 units'
    """
    from .._validation import as_float_array

    W = getattr(weights, "weight", weights)
    W = as_float_array(W, "weights", ndim=2)
    h, w = image_shape
    if W.shape[1] != h * w:
        raise ValueError(f"weights have {W.shape[1]} features; image_shape {image_shape} needs {h * w}.")
    if units is None:
        rng = check_random_state(random_state)
        chosen = rng.choice(W.shape[0], size=min(n, W.shape[0]), replace=False)
    else:
        chosen = np.asarray(units, dtype=int).ravel()
    side = int(np.ceil(np.sqrt(chosen.size)))
    mosaic = np.full((side * (h + 1) - 1, side * (w + 1) - 1), np.nan)
    for i, unit in enumerate(chosen):
        r, c = divmod(i, side)
        mosaic[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = W[unit].reshape(h, w)
    ax = get_ax(ax, figsize=(4.5, 4.5))
    vmax = np.nanmax(np.abs(mosaic))
    im = ax.imshow(mosaic, **with_defaults({"cmap": "bwr", "vmin": -vmax, "vmax": vmax}, kwargs))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{chosen.size} of {W.shape[0]} units")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label="synaptic weight")
    return ax


def plot_spectral_targets(spectra: Mapping[str, Any], targets: Mapping[str, float] | None = None, *,
                          ax: Any = None, fit_range: tuple[int, int] = (11, 500), **kwargs: Any):
    """Eigenspectra of a layer under several regularizers, with the target power laws.

    Parameters
    ----------
    spectra : dict of str to array-like
        Label -> descending eigenvalues (e.g. from
        :func:`geomkit.measures.spectrum.eigenspectrum`).
    targets : dict of str to float, optional
        Label -> target alpha; drawn as a dashed line ``c n^-alpha`` through
        that spectrum at the first rank of ``fit_range``.
    ax : matplotlib Axes, optional
    fit_range : (int, int), default=(11, 500)
        Shaded: the ranks over which the exponent is measured (the upper end
        clipped to half the usable eigenvalues, as the default fit does).
        Numerically zero eigenvalues are not drawn.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.loglog` for each spectrum (e.g.
        ``linewidth``, ``alpha``); not to the target lines, which take the
        spectrum's colour.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> n = np.arange(1, 201)
    >>> ax = plot_spectral_targets({"alpha = 1": n ** -1.0, "alpha = 2": n ** -2.0},
    ...                            targets={"alpha = 2": 2.0}, fit_range=(11, 100))
    >>> ax.get_xscale(), ax.get_yscale()
    ('log', 'log')
    """
    from matplotlib.lines import Line2D

    ax = get_ax(ax)
    targets = dict(targets or {})
    n_usable = 0
    for i, (label, lam) in enumerate(spectra.items()):
        lam = np.asarray(lam, dtype=float)
        # numerically zero eigenvalues (as power_law_exponent counts them) are not drawn
        lam = lam[lam > lam[0] * lam.size * np.finfo(float).eps]
        n_usable = max(n_usable, lam.size)
        n = np.arange(1, lam.size + 1)
        (line,) = ax.loglog(n, lam / lam[0], label=label, **with_defaults({"color": f"C{i}"}, kwargs, Line2D))
        if label in targets and lam.size >= fit_range[0]:
            lo = fit_range[0]
            ref = lam[lo - 1] / lam[0] * (n / lo) ** (-targets[label])
            ax.loglog(n, ref, color=line.get_color(), ls="--", lw=1, label=f"target n^-{targets[label]:g}")
    # the fit range as power_law_exponent clips it: at most half the usable eigenvalues
    ax.axvspan(fit_range[0], min(fit_range[1], max(n_usable // 2, fit_range[0] + 1)), color="0.92", zorder=0,
               label="fit range")
    ax.set_xlabel("rank n")
    ax.set_ylabel("eigenvalue / largest eigenvalue")
    ax.legend(frameon=False, fontsize="small")
    return ax
