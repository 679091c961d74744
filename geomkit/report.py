"""A single self-contained HTML page from a study's results.

Everything on the page is derived from the results Dataset (``results.nc``):
the figures are redrawn from it and embedded as base64 PNGs, the summary
table and the "what the papers claim / what this run measured" table are
computed from it. So ``geomkit report DIR/results.nc`` rebuilds the page
without recomputing anything.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_text

__all__ = ["build_report", "load_results", "claims_table", "summary_table", "diagnostics_table"]


def load_results(path: str | os.PathLike):
    """Open a study's ``results.nc`` fully into memory.

    Parameters
    ----------
    path : str or path-like
        The results file written by :func:`geomkit.study.run`.

    Returns
    -------
    xarray.Dataset
        Loaded, so the file is closed again.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        Naming the file, if it is no netCDF file, is truncated or damaged, or
        is a netCDF file that ``geomkit study`` did not write.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist; run `geomkit study` first.")
    ds = _read_netcdf(path)
    _check_study_results(ds, path)
    return ds


# what every results.nc of `geomkit study` holds, and what the report cannot do without
_STUDY_VARIABLES = ("accuracy", "alpha", "eigenvalues", "robust_accuracy")


def _read_netcdf(path: Path):
    """The whole file as a Dataset, or a ValueError naming the file and what is wrong with it."""
    import xarray as xr

    try:
        with xr.open_dataset(path) as ds:
            return ds.load()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, IndexError, EOFError) as err:
        # xarray says "did not find a match in any of xarray's currently installed IO backends" for a
        # file that is no netCDF, netCDF4 says "HDF error" for a truncated one: neither names the file
        reason = "it is not a netCDF file" if "IO backends" in str(err) else (
            f"it is damaged or truncated ({str(err).splitlines()[0] if str(err) else type(err).__name__})")
        raise ValueError(f"cannot read {str(path)!r} as a study's results: {reason}.") from None


def _check_study_results(ds: Any, path: Path) -> None:
    """Refuse a netCDF file that `geomkit study` did not write (or that lost variables on the way)."""
    if "model" not in ds.dims or "accuracy" not in ds:
        found = ", ".join(list(ds.data_vars)[:8]) or "none"
        raise ValueError(f"{str(path)!r} is a netCDF file but not the results of `geomkit study` (no "
                         f"'model' dimension or 'accuracy' variable; its variables: {found}).")
    missing = [v for v in _STUDY_VARIABLES if v not in ds]
    if missing:
        raise ValueError(f"{str(path)!r} is a study's results without the variables {missing}; "
                         "it cannot be reported (rerun `geomkit study`).")


def _value(ds: Any, var: str, **sel: Any) -> float:
    """A scalar from ``ds[var].sel(**sel)``, NaN when the variable or label is absent."""
    if var not in ds:
        return float("nan")
    try:
        return float(ds[var].sel(**sel).values)
    except (KeyError, ValueError):
        return float("nan")


def _present(ds: Any, *models: str) -> bool:
    return all(m in ds["model"].values for m in models)


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("holds" if ok else "does not hold")


def _judge(test: Any, *numbers: float) -> str:
    """``_verdict(test())``, or "not measured" when any of the numbers it compares is NaN.

    A NaN compares False, so without this guard a missing measurement would
    read as a claim that does not hold.
    """
    return _verdict(bool(test()) if all(math.isfinite(v) for v in numbers) else None)


def summary_table(ds: Any):
    """One tidy row per model x layer with every scalar measure of the study.

    Parameters
    ----------
    ds : xarray.Dataset
        A study's results.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``layer``, one per (model, layer) or per-model
        variable and one per coordinate of ``model`` (the study's
        ``description``); ``n_peaks``, the mean peak count of the layer's
        tuning maps, is NaN for ``input``.
    """
    names = [v for v in ds.data_vars if set(ds[v].dims) == {"model", "layer"}]
    per_model = [v for v in ds.data_vars if ds[v].dims == ("model",)]
    table = ds[names].to_dataframe().reset_index()
    if per_model:
        # the model's coordinates (its description) are in the table already: merged twice they
        # would come back as description_x and description_y
        table = table.merge(ds[per_model].reset_coords(drop=True).to_dataframe().reset_index(), on="model")
    return table


def diagnostics_table(ds: Any):
    """Per model: the robustness scores and the verdict of every gradient-masking check.

    Parameters
    ----------
    ds : xarray.Dataset
        A study's results, with ``diagnostic`` over ``(model, check)``.

    Returns
    -------
    pandas.DataFrame
        One row per model; columns ``model``, then ``pgd_auc`` (PGD score),
        ``worst_auc`` and ``worst_attack`` (the smallest area over every
        attack and that attack) where present, then one column per check
        holding ``"pass"``, ``"warn"`` or ``"n/a"``
        (:class:`geomkit.robustness.AdversarialRobustness`'s
        ``diagnostics_``). Empty when ``ds`` has no ``diagnostic``.
    """
    import pandas as pd

    if "diagnostic" not in ds:
        return pd.DataFrame(columns=["model"])
    table = pd.DataFrame({"model": [str(m) for m in ds["model"].values]})
    for var in ("pgd_auc", "worst_auc", "worst_attack"):
        if var in ds and ds[var].dims == ("model",):
            values = ds[var].values
            table[var] = [str(v) for v in values] if values.dtype.kind in "USO" else values.astype(float)
    for check in ds["check"].values:
        table[str(check)] = [str(v) for v in ds["diagnostic"].sel(check=check).values]
    return table


def claims_table(ds: Any):
    """The "what the papers claim / what this run measured" table.

    One row per claim, with the numbers measured on held-out data and a
    verdict (``"holds"``, ``"does not hold"`` or ``"not measured"``) by the
    criterion stated in the row.

    Parameters
    ----------
    ds : xarray.Dataset
        A study's results; claims whose models or variables are absent are
        left out or marked ``"not measured"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``claim``, ``source``, ``measured``, ``criterion``, ``verdict``.
    """
    import numpy as np
    import pandas as pd

    rows = []
    bound = float(ds.attrs.get("smoothness_bound", np.nan))

    # 1. Hebbian WTA learns a power-law hidden code (Holzhausen et al. studied Krotov-Hopfield units).
    hebb = [m for m in ("krotov_hopfield", "softhebb") if _present(ds, m)]
    if hebb:
        parts = []
        for m in hebb:
            a = _value(ds, "alpha", model=m, layer="hidden")
            r2 = _value(ds, "alpha_r2", model=m, layer="hidden")
            lo, hi = _value(ds, "fit_rank_low", model=m, layer="hidden"), _value(ds, "fit_rank_high", model=m, layer="hidden")
            parts.append(f"{m}: α = {a:.2f}, r² = {r2:.3f} over ranks {lo:.0f}–{hi:.0f}")
        parts.append(f"mouse V1 α ≈ 1; smoothness bound 1 + 2/d = {bound:.2f}")
        # judged on the Krotov-Hopfield net by name: SoftHebb's r² says nothing about this criterion
        r2_kh = _value(ds, "alpha_r2", model="krotov_hopfield", layer="hidden")
        rows.append(dict(
            claim="Hebbian winner-take-all learning gives a power-law hidden code (a straight log-log spectrum)",
            source="Holzhausen et al. 2024",
            measured="; ".join(parts),
            criterion="r² of the log-log fit ≥ 0.95 for the Krotov-Hopfield net",
            verdict=_judge(lambda: r2_kh >= 0.95, r2_kh),
        ))

    # 2. Spectral regularization sets the exponent.
    targets = {"spectral_a1": 1.0, "spectral_a2.5": 2.5}
    got = {m: _value(ds, "alpha", model=m, layer="hidden") for m in targets if _present(ds, m)}
    if got:
        base = _value(ds, "alpha", model="mlp", layer="hidden")
        measured = ", ".join(f"{m}: α = {a:.2f} (target {targets[m]})" for m, a in got.items())
        rows.append(dict(
            claim="Spectral regularization sets the hidden layer's power-law exponent",
            source="Nassar et al. 2020",
            measured=f"{measured}; unregularized mlp: α = {base:.2f}",
            criterion="|α − target| ≤ 0.15 for every target",
            verdict=_judge(lambda: all(abs(a - targets[m]) <= 0.15 for m, a in got.items()),
                           *got.values()),
        ))
        # judged against the unregularized mlp (does regularizing change robustness?) and against α = 1
        aucs = {m: _value(ds, "pgd_auc", model=m) for m in ("mlp", "spectral_a1", "spectral_a2.5")}
        measured = ", ".join(f"{m}: {v:.3f}" for m, v in aucs.items() if np.isfinite(v))
        verdict = _verdict(None)
        if all(np.isfinite(v) for v in aucs.values()):
            above = {m: aucs["spectral_a2.5"] > aucs[m] for m in ("mlp", "spectral_a1")}
            if all(above.values()) or not any(above.values()):
                verdict = _verdict(all(above.values()))
            else:
                yes, no = [m for m, v in above.items() if v], [m for m, v in above.items() if not v]
                verdict = f"partly: above {', '.join(yes)}, not above {', '.join(no)}"
        rows.append(dict(
            claim="Spectral regularization changes robustness; α ≈ 2–3 is better than brain-like α ≈ 1 for dense nets",
            source="Nassar et al. 2020; Gerum et al. 2022",
            measured=f"PGD score (area under the PGD curve over log ε): {measured or 'not measured'}",
            criterion="PGD score of spectral_a2.5 above the unregularized mlp's and above spectral_a1's",
            verdict=verdict,
        ))

    # 3. Saturated nets: kurtotic weights, resist gradient attacks — or gradient masking?
    if _present(ds, "sigmoid_saturated", "mlp"):
        k_sat = _value(ds, "weight_kurtosis", model="sigmoid_saturated", layer="hidden")
        k_mlp = _value(ds, "weight_kurtosis", model="mlp", layer="hidden")
        # "resist gradient-based attacks": the PGD score, not the worst case over noise and transfer too
        auc_sat = _value(ds, "pgd_auc", model="sigmoid_saturated")
        auc_mlp = _value(ds, "pgd_auc", model="mlp")
        sat = _value(ds, "saturation_fraction", model="sigmoid_saturated")
        rows.append(dict(
            claim="Saturated networks have heavy-tailed (kurtotic) weights and resist gradient-based attacks",
            source="Nayebi & Ganguli 2017",
            measured=f"hidden-weight kurtosis {k_sat:.2f} vs {k_mlp:.2f} (mlp); PGD score {auc_sat:.3f} vs "
                     f"{auc_mlp:.3f}; {sat:.0%} of hidden pre-activations in the flat tails",
            criterion="kurtosis and PGD score both above the plain mlp's",
            verdict=_judge(lambda: k_sat > k_mlp and auc_sat > auc_mlp, k_sat, k_mlp, auc_sat, auc_mlp),
        ))
        if "diagnostic" in ds:
            diag = ds["diagnostic"].sel(model="sigmoid_saturated")
            warned = [str(c) for c, v in zip(diag["check"].values, diag.values) if str(v) == "warn"]
            rows.append(dict(
                claim="The saturated nets' robustness is an artefact of vanishing gradients (gradient masking)",
                source="Brendel & Bethge 2017",
                measured="masking diagnostics that warn: " + (", ".join(warned) if warned else "none"),
                criterion="at least one gradient-masking diagnostic warns for the saturated net",
                verdict=_verdict(bool(warned)),
            ))

    # 4. Categoricality grows with depth.
    if "categoricality" in ds:
        layers = list(ds["layer"].values)
        parts, oks = [], []
        for m in ds["model"].values:
            values = [_value(ds, "categoricality", model=m, layer=l) for l in layers]
            parts.append(f"{m}: " + " → ".join(f"{v:.2f}" for v in values))
            oks.append(all(b > a for a, b in zip(values, values[1:])))
        rows.append(dict(
            claim="Categoricality grows with depth",
            source="Bonnasse-Gahot & Nadal 2022",
            measured="; ".join(parts) + f" ({' → '.join(layers)})",
            criterion="strictly increasing with depth in every model",
            verdict=_verdict(all(oks)) if all(oks) or not any(oks) else f"holds in {sum(oks)} of {len(oks)} models",
        ))

    # 5. SoftHebb is more robust than backprop.
    if _present(ds, "softhebb", "mlp"):
        a_sh, a_bp = _value(ds, "pgd_auc", model="softhebb"), _value(ds, "pgd_auc", model="mlp")
        c_sh, c_bp = _value(ds, "critical_eps_median", model="softhebb"), _value(ds, "critical_eps_median", model="mlp")
        rows.append(dict(
            claim="SoftHebb networks are more robust to adversarial attacks than backprop networks",
            source="Moraitis et al. 2022; Journé et al. 2023",
            measured=f"PGD score {a_sh:.3f} vs {a_bp:.3f} (mlp); median critical ε {c_sh:.4f} vs {c_bp:.4f}",
            criterion="PGD score above the plain mlp's",
            verdict=_judge(lambda: a_sh > a_bp, a_sh, a_bp),
        ))
    return pd.DataFrame(rows, columns=["claim", "source", "measured", "criterion", "verdict"])


def _figure_to_base64(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.holds { background: #e3f4e3; } td.fails { background: #fbe3e3; } td.mixed { background: #fff6d8; }
figure { display: inline-block; margin: .5em; vertical-align: top; max-width: 520px; }
figure img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
.meta { color: #555; font-size: .9em; }
.warn { color: #a15c00; }
"""


def _table_html(df: Any, classes: dict[int, str] | None = None, verdict_col: str | None = None) -> str:
    """A plain HTML table; rows may get a CSS class from a verdict column."""
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    rows = []
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            value = row[c]
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            css = ""
            if verdict_col is not None and c == verdict_col:
                css = {"holds": "holds", "does not hold": "fails"}.get(str(value), "mixed")
                css = f' class="{css}"'
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def build_report(results: Any, out: str | os.PathLike | None = None, *, figures_dir: str | os.PathLike | None = None) -> Path:
    """Write the HTML report of a study.

    Parameters
    ----------
    results : xarray.Dataset or path
        The study's results (``geomkit.study.run``'s return value or its
        ``results.nc``).
    out : path, optional
        Where to write the page; default ``report.html`` beside the results
        file (or in the current folder for a Dataset).
    figures_dir : path, optional
        Also save each figure there as a PNG.

    Returns
    -------
    pathlib.Path
        The page written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .plotting.study import study_figures

    if isinstance(results, (str, os.PathLike)):
        default_out = Path(results).with_name("report.html")
        ds = load_results(results)
    else:
        default_out = Path("report.html")
        ds = results
    out = Path(out) if out is not None else default_out
    out.parent.mkdir(parents=True, exist_ok=True)

    figures = study_figures(ds)
    blocks = []
    for name, (fig, caption) in figures.items():
        if figures_dir is not None:
            Path(figures_dir).mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(figures_dir) / f"{name}.png", dpi=110, bbox_inches="tight")
        blocks.append(
            f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{_figure_to_base64(fig)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        plt.close(fig)

    claims = claims_table(ds)
    summary = summary_table(ds)
    diagnostics = diagnostics_table(ds)
    masking = ""
    if len(diagnostics):
        masking = (
            "<h2>Robustness scores and gradient-masking diagnostics</h2>\n"
            "<p>PGD score: area under the robust-accuracy curve over log ε of the stronger PGD attack "
            "(cross-entropy or margin loss), the attack the claims about gradient attacks are judged on. "
            "Worst case: the smallest area over every attack, noise and transfer baselines included. "
            "A check that warns means the gradient attacks may be weaker than the model's true "
            "vulnerability (see the robustness guide).</p>\n"
            + _table_html(diagnostics)
        )
    attrs = ds.attrs
    meta = ", ".join(
        f"{k}: {html.escape(str(attrs[k]))}"
        for k in ("data", "n_train", "n_test", "quick", "seed", "device", "wall_time_s", "geomkit_version", "created")
        if k in attrs
    )
    accuracy = ""
    if "accuracy" in ds:
        acc = ds["accuracy"].to_dataframe().reset_index()[["model", "accuracy"]]
        accuracy = _table_html(acc)
    notes = ""
    if "notes" in attrs and str(attrs["notes"]).strip():
        items = "".join(f"<li>{html.escape(n)}</li>" for n in str(attrs["notes"]).split("\n") if n.strip())
        notes = f"<h2>Notes from the run</h2><ul class='warn'>{items}</ul>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>geomkit study report</title>
<style>{_CSS}</style></head><body>
<h1>geomkit study</h1>
<p class="meta">{meta}</p>
<h2>What the papers claim / what this run measured</h2>
<p>Each row states a claim from the literature, the numbers this run measured on held-out data, and
whether the claim holds on this data. Verdicts use the thresholds stated in the row.</p>
{_table_html(claims, verdict_col="verdict")}
<h2>Test accuracy</h2>
{accuracy}
{masking}
<h2>Figures</h2>
{''.join(blocks)}
<h2>Summary (one row per model and layer)</h2>
{_table_html(summary)}
{notes}
<p class="meta">Rebuild this page without recomputing: <code>geomkit report results.nc</code>.</p>
</body></html>
"""
    atomic_write_text(out, page)  # a page cut short never replaces the old one
    return out
