"""The figures of a study, drawn from its results Dataset alone (see :mod:`geomkit.study`)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["study_figures"]

_FIGSIZE = (6.0, 4.2)

# Report text is readable in print: nothing under 9 pt, whatever the caller's rcParams
# (the figures are drawn in this context; tick labels, made lazily at draw time, get it explicitly).
_SMALL = 9.0
_REPORT_RC = {
    "font.size": 10.0, "axes.titlesize": 11.0, "axes.labelsize": 10.0, "figure.titlesize": 11.0,
    "xtick.labelsize": 10.0, "ytick.labelsize": 10.0, "legend.fontsize": _SMALL,
    "legend.title_fontsize": _SMALL,
}


def _models_palette(models: list[str]) -> dict[str, Any]:
    import seaborn as sns

    return dict(zip(models, sns.color_palette("tab10", n_colors=max(len(models), 3))))


def _new(figsize=_FIGSIZE, ncols: int = 1):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(figsize[0] * ncols, figsize[1]), layout="constrained", squeeze=False)
    return fig, axes[0]


def _spectra(ds, palette):
    fig, (ax,) = _new((6.5, 4.6))
    layer = "hidden"
    for model in ds.model.values:
        lam = ds["eigenvalues"].sel(model=model, layer=layer).values
        lam = lam[np.isfinite(lam) & (lam > 0)]
        if lam.size == 0:
            continue
        ranks = np.arange(1, lam.size + 1)
        alpha = float(ds["alpha"].sel(model=model, layer=layer))
        ax.loglog(ranks, lam / lam[0], color=palette[model], lw=1.4, label=f"{model} (α={alpha:.2f})")
    lo = int(np.nanmin(ds["fit_rank_low"].sel(layer=layer).values))
    hi = int(np.nanmax(ds["fit_rank_high"].sel(layer=layer).values))
    # below the fit range the tail falls to rounding noise (1e-50 and less); showing it squashes the
    # fitted part into a sliver, so the axis stops two decades under the lowest fitted eigenvalue
    lam_all = ds["eigenvalues"].sel(layer=layer).values
    with np.errstate(invalid="ignore", divide="ignore"):
        rel_at_hi = lam_all[:, min(hi, lam_all.shape[1]) - 1] / lam_all[:, 0]
    rel_at_hi = rel_at_hi[np.isfinite(rel_at_hi) & (rel_at_hi > 0)]
    ax.axvspan(lo, hi, color="0.9", zorder=0, label=f"fit range {lo}–{hi}")
    bound = float(ds.attrs.get("smoothness_bound", np.nan))
    if np.isfinite(bound):
        n = np.array([1.0, float(ds.sizes["rank"])])
        ax.loglog(n, 0.5 * n ** -bound, "k--", lw=1, label=f"slope 1+2/d = {bound:.2f} (d={ds.attrs.get('intrinsic_dim', float('nan')):.1f})")
        ax.loglog(n, 0.05 * n ** -1.0, "k:", lw=1, label="slope 1 (mouse V1)")
    if rel_at_hi.size:
        ax.set_ylim(1e-2 * rel_at_hi.min(), 3.0)
    ax.set_xlabel("rank n")
    ax.set_ylabel("eigenvalue λ_n / λ_1 (hidden layer)")
    ax.set_title("Hidden-layer spectra on held-out data")
    ax.legend(fontsize=_SMALL, loc="lower left")
    return fig, "Covariance eigenspectra of each model's hidden layer (test images), normalized to λ_1. " \
                "Shaded: ranks used for the fit. Dashed: Stringer et al.'s smoothness bound 1+2/d with d " \
                "the inputs' intrinsic dimension (TwoNN); dotted: α = 1. The axis stops two decades " \
                "below the last fitted eigenvalue: the tail beyond is rounding noise."


def _tidy(ds, names: list[str], dims: tuple[str, ...]):
    df = ds[names].to_dataframe().reset_index()
    return df[[*dims, *names]]


def _kurtosis(ds, palette):
    import seaborn as sns

    fig, axes = _new(ncols=2)
    df = _tidy(ds, ["weight_kurtosis", "weight_alpha"], ("model", "layer"))
    df = df[df["layer"] != "input"]
    sns.barplot(df, x="weight_kurtosis", y="model", hue="layer", ax=axes[0], orient="h")
    axes[0].axvline(0, color="k", lw=0.8)
    axes[0].set_xlabel("excess kurtosis of weights (Gaussian = 0, Laplace = 3)")
    axes[0].set_ylabel("")
    axes[0].set_title("Weight kurtosis")
    sns.barplot(df, x="weight_alpha", y="model", hue="layer", ax=axes[1], orient="h")
    axes[1].set_xlabel("tail exponent of W^T W spectrum (powerlaw MLE)")
    axes[1].set_ylabel("")
    axes[1].set_title("Weight spectra")
    return fig, "Left: excess kurtosis of each layer's weights (Nayebi & Ganguli 2017). Right: power-law " \
                "exponent of the tail of each weight matrix's eigenvalue density (Martin & Mahoney)."


def _flatness(ds, palette):
    import seaborn as sns

    fig, axes = _new(ncols=2)
    df = _tidy(ds, ["fisher_log_trace"], ("model",))
    sns.barplot(df, x="fisher_log_trace", y="model", hue="model", palette=palette, ax=axes[0], legend=False)
    axes[0].set_xlabel("mean log trace of the input-space Fisher metric")
    axes[0].set_ylabel("")
    axes[0].set_title("Fisher flatness (lower = flatter)")
    jac = _tidy(ds, ["jacobian_fro2"], ("model", "layer"))
    jac = jac[jac["layer"] != "input"]
    sns.barplot(jac, x="jacobian_fro2", y="model", hue="layer", ax=axes[1])
    axes[1].set_xscale("log")
    axes[1].set_xlabel("mean ‖∂layer/∂input‖²_F (log scale)")
    axes[1].set_ylabel("")
    axes[1].set_title("Jacobian sensitivity")
    return fig, "Sensitivity of each model to its input on test images: the trace of the Fisher " \
                "information metric G(x) = Jᵀ(diag p − ppᵀ)J and the squared Frobenius norm of the layer Jacobians."


def _robustness(ds, palette):
    fig, axes = _new(ncols=2)
    eps = ds["eps"].values
    for ax, attack in zip(axes, ("pgd", "fgsm")):
        if attack not in ds["attack"].values:
            continue
        for model in ds.model.values:
            acc = ds["robust_accuracy"].sel(model=model, attack=attack).values
            ax.semilogx(eps, acc, marker="o", ms=3, color=palette[model], label=model)
        ax.set_xlabel("ε (L∞, pixel scale [0, 1])")
        ax.set_ylabel("robust accuracy (correctly classified inputs)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{attack.upper()} (L∞)")
    axes[0].legend(fontsize=_SMALL)
    return fig, "Accuracy under attack as ε grows, on inputs each model classifies correctly. " \
                "PGD with random start (left) and single-step FGSM (right)."


def _categoricality(ds, palette):
    fig, (ax,) = _new()
    layers = list(ds["layer"].values)
    x = np.arange(len(layers))
    for model in ds.model.values:
        ci = ds["categoricality"].sel(model=model).values
        lo = ds["categoricality_ci_low"].sel(model=model).values
        hi = ds["categoricality_ci_high"].sel(model=model).values
        # interval drawn from its own ends: a bootstrap percentile interval of a biased statistic
        # need not contain the estimate, and errorbar's yerr cannot show that
        ax.vlines(x, lo, hi, color=palette[model], lw=1.5)
        ax.plot(x, ci, marker="o", color=palette[model], label=model)
    ax.set_xticks(x, layers)
    ax.set_xlabel("layer (depth →)")
    ax.set_ylabel("categoricality index (KS statistic)")
    ax.set_ylim(0, 1)
    ax.set_title("Categoricality by depth")
    ax.legend(fontsize=_SMALL)
    return fig, "Bonnasse-Gahot & Nadal's categoricality: KS distance between within- and between-category " \
                "cosine distances, with 95% bootstrap intervals; 'input' is the pixel-space baseline."


_TOPOLOGY_ROWS = {"hidden": "hidden units", "output": "output logits"}


def _betti(ds, palette):
    import matplotlib.pyplot as plt

    b0, b1, peaks = ds["betti0"], ds["betti1"], ds["n_peaks"] if "n_peaks" in ds else None
    if "layer" not in b0.dims:  # results of geomkit < per-layer topology: hidden units only
        b0, b1 = b0.expand_dims(layer=["hidden"]), b1.expand_dims(layer=["hidden"])
        peaks = None if peaks is None else peaks.expand_dims(layer=["hidden"])
    layers = [str(l) for l in b0["layer"].values if np.isfinite(b0.sel(layer=l).values).any()]
    layers = layers or [str(l) for l in b0["layer"].values]  # nothing measured: empty panels, not no figure
    frac = ds["level_fraction"].values
    fig, axes = plt.subplots(len(layers), 2, figsize=(11.0, 0.6 + 3.2 * len(layers)), sharex=True,
                             sharey="col", squeeze=False, layout="constrained")
    for row, layer in zip(axes, layers):
        for ax, da, symbol, what in zip(row, (b0, b1), ("b₀", "b₁"), ("components", "holes")):
            values = da.sel(layer=layer)
            for model in ds.model.values:
                ax.plot(frac, values.sel(model=model).values, color=palette[model], marker=".", ms=4,
                        lw=1.3, label=str(model))
            # identical flat curves hide one another; say how many there are rather than show one colour
            flat = [float(c[0]) for c in values.values if np.isfinite(c).all() and np.all(c == c[0])]
            common = max(set(flat), key=flat.count) if flat else None
            if common is not None and flat.count(common) >= 2:
                n_same, n_all = flat.count(common), values.sizes["model"]
                who = f"all {n_all}" if n_same == n_all else f"{n_same} of {n_all}"
                ax.text(0.5, 0.9, f"{who} models: {symbol} = {common:g} at every level (lines overlap)",
                        transform=ax.transAxes, ha="center", va="top", fontsize=_SMALL)
            ax.set_title(f"{_TOPOLOGY_ROWS.get(layer, layer)}: {symbol} ({what})", fontsize=10)
            ax.set_ylabel(f"mean {symbol} of {{f ≥ t}}")
    for ax, da, low in zip(axes[0], (b0, b1), (0.0, -0.1)):  # sharey="col": sets the whole column
        finite = da.values[np.isfinite(da.values)]
        ax.set_ylim(low, 1.15 * max(float(finite.max()) if finite.size else 0.0, 1.0) + 0.1)
    for ax in axes[-1]:
        ax.set_xlabel("level t (fraction of the way from map min to max)")
    handles, labels = axes[-1][0].get_legend_handles_labels()
    last = layers[-1]
    if peaks is not None and "layer" in peaks.dims and last in peaks["layer"].values:
        labels = [f"{m} ({float(peaks.sel(model=m, layer=last)):.1f})" for m in labels]
        title = f"model (mean peaks,\n{_TOPOLOGY_ROWS.get(last, last)})"
    else:
        title = "model"
    fig.legend(handles, labels, loc="outside right center", fontsize=_SMALL, title=title, title_fontsize=_SMALL)
    caption = ("Level-set topology (Wang & Ponce 2022) of tuning maps over the plane of the data's first two "
               "principal components: the mean Betti numbers of the superlevel sets {f ≥ t} at 21 levels from "
               "each map's minimum to its maximum; b₀ counts components (separate high regions), b₁ holes. "
               "Hidden units (sampled): a monotone function (the ReLU or sigmoid of the backprop nets, ReLU(h)ⁿ "
               "of the plain currents h = Wx in both Hebbian nets) of one linear projection of the input is a "
               "ramp on any plane, its superlevel sets are half-planes, so b₀ = 1 and b₁ = 0 at every level by "
               "construction: a check of the pipeline, not a finding.")
    if "output" in layers:
        caption += (" Output logits (every class): weighted sums of many hidden ramps (piecewise linear in "
                    "the ReLU nets), not monotone in any one projection, so their maps need not be ramps. b₀ > 1 "
                    "at a level means a class's score has several separate high regions on the plane, b₁ > 0 a "
                    "high region enclosing a low one: the class-boundary "
                    "structure the net draws on this plane. The legend gives each model's mean peak count per "
                    "logit (peaks with persistence above 5% of the map's range).")
        out0, out1 = b0.sel(layer="output").values, b1.sel(layer="output").values
        # what this run shows, in numbers: one-hidden-layer logits can be near-unimodal on the plane too
        above = int(np.sum(out0 > 1))
        caption += (f" In this run the output b₀ exceeds 1 at {above} of {np.isfinite(out0).sum()} "
                    f"(model, level) points, the largest mean b₁ is {np.nanmax(out1):.2g}")
        if peaks is not None and "layer" in peaks.dims and "output" in peaks["layer"].values:
            per_model = peaks.sel(layer="output").values
            caption += f"; the mean peak count per logit ranges {np.nanmin(per_model):.2g}–{np.nanmax(per_model):.2g}"
        caption += "."
    return fig, caption


def _alpha_vs_robustness(ds, palette):
    fig, (ax,) = _new()
    alpha = ds["alpha"].sel(layer="hidden").values
    auc = ds["pgd_auc"].values
    for m, a, r in zip(ds.model.values, alpha, auc):
        ax.scatter(a, r, color=palette[m], s=40, label=m)
    ax.set_xlabel("hidden-layer power-law exponent α")
    ax.set_ylabel("PGD score: area under the PGD curve (log ε)")
    ax.set_title("Spectrum vs robustness")
    ax.legend(fontsize=_SMALL)
    return fig, "Each model's hidden-layer exponent against its PGD score: the normalized area under the " \
                "robust-accuracy curve of the stronger PGD attack (cross-entropy or margin loss) on a log-ε " \
                "axis. The worst case over every attack, noise and transfer included, is worst_auc in the results."


def _model_similarity(ds, palette):
    import xarray as xr

    from .compare import plot_layer_similarity

    n = ds.sizes["model_a"]
    fig, (ax,) = _new((1.6 + 1.0 * n, 1.0 + 0.8 * n))
    sim = xr.Dataset({"value": ds["hidden_cka"], "ci_low": ds["hidden_cka_ci_low"],
                      "ci_high": ds["hidden_cka_ci_high"]}, attrs={"metric": "debiased linear CKA"})
    plot_layer_similarity(sim, ax=ax)
    ax.set_title("Hidden layers, model x model")
    return fig, "Debiased linear CKA (Nguyen, Raghu & Kornblith 2021) between the hidden layers of every " \
                "two models on the held-out images (1: the same representation up to rotation and scale; " \
                "0: unrelated). Below each value: its 95 % paired-bootstrap interval over images. The " \
                "biased CKA would sit far above 0 even for unrelated layers here, as the layers have about " \
                "as many units as there are images."


def study_figures(ds: Any) -> dict[str, tuple[Any, str]]:
    """Draw every study figure from a results Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        A study's results (:func:`geomkit.study.run` or :func:`geomkit.report.load_results`).

    Returns
    -------
    dict of str to (matplotlib.figure.Figure, str)
        Figure name (used as the PNG file name) to the figure and its caption.
        A figure whose variables are absent from ``ds`` is skipped.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import xarray as xr
    >>> from geomkit.plotting import study_figures
    >>> cat = [[0.2, 0.5, 0.8]]
    >>> ds = xr.Dataset(
    ...     {"categoricality": (("model", "layer"), cat),
    ...      "categoricality_ci_low": (("model", "layer"), [[0.1, 0.4, 0.7]]),
    ...      "categoricality_ci_high": (("model", "layer"), [[0.3, 0.6, 0.9]])},
    ...     coords={"model": ["mlp"], "layer": ["input", "hidden", "output"]})
    >>> figures = study_figures(ds)  # only the figure whose variables are there
    >>> list(figures)
    ['categoricality']
    >>> fig, caption = figures["categoricality"]
    >>> plt.close(fig)
    """
    import matplotlib as mpl

    palette = _models_palette(list(ds.model.values))
    makers = {
        "spectra": (_spectra, ["eigenvalues", "alpha"]),
        "kurtosis": (_kurtosis, ["weight_kurtosis", "weight_alpha"]),
        "flatness": (_flatness, ["fisher_log_trace", "jacobian_fro2"]),
        "robustness": (_robustness, ["robust_accuracy"]),
        "categoricality": (_categoricality, ["categoricality"]),
        "betti_curves": (_betti, ["betti0", "betti1"]),
        "alpha_vs_robustness": (_alpha_vs_robustness, ["alpha", "pgd_auc"]),
        # comparing representations
        "model_similarity": (_model_similarity, ["hidden_cka", "hidden_cka_ci_low", "hidden_cka_ci_high"]),
    }
    figures = {}
    for name, (maker, needs) in makers.items():
        if all(v in ds for v in needs):
            with mpl.rc_context(_REPORT_RC):
                fig, caption = maker(ds, palette)
            for ax in fig.axes:
                ax.tick_params(labelsize=_REPORT_RC["xtick.labelsize"])
            figures[name] = fig, caption
    return figures
