"""
The whole study from Python
===========================

``geomkit study`` on the command line is :func:`geomkit.study.run` in Python:
it trains the model zoo (backprop MLPs with and without regularizers,
Hebbian winner-take-all nets), measures every model layer by layer on
held-out images, and writes ``results.nc``, two tidy tables (``summary_models.csv``, ``summary_layers.csv``), the figures and
a self-contained ``report.html``. The Dataset it returns carries every
number with its coordinates, so you can go on from there.

This tutorial runs a deliberately tiny study (scikit-learn's 8x8 digits, two
models, small budgets) so that it finishes in seconds; the real thing is::

    geomkit study --out geomkit-study            # MNIST-5k, every model
    geomkit study --quick --out geomkit-quick    # a few minutes
"""

# %%
# Choosing the sizes
# ------------------
# ``StudyConfig.make(quick)`` gives the sizes of ``--quick`` and of the
# default run; :func:`dataclasses.replace` changes any of them. A checkpoint
# in ``out/models`` is reused on a re-run only if everything that shaped its
# weights matches: the training data (a hash of it), the model's parameters,
# the seed and the geomkit version.
import dataclasses
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from geomkit.report import claims_table, summary_table
from geomkit.study import ZOO, StudyConfig, run

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"

config = StudyConfig.make(quick=True)
if SMALL:
    config = dataclasses.replace(
        config, n_hidden=64, n_hebbian=100, epochs=3, krotov_hopfield_epochs=2, softhebb_epochs=2,
        readout_epochs=3, n_train=600, n_eval=150,
        n_attack=30, n_bootstraps=5, n_pairs=100, n_tuning_units=2, tuning_resolution=12,
        eps=(0.01, 0.05, 0.2), pgd_steps=5, n_bisect=3, n_noise_draws=2, surrogate_epochs=2)
models = ["mlp", "softhebb"] if SMALL else list(ZOO)
print("zoo:", ", ".join(ZOO))
print(config)

# %%
# Running it
# ----------
out = Path(tempfile.mkdtemp()) / "study"
ds = run(data="digits" if SMALL else "mnist5k", out=out, models=models, config=config, progress=False)
print(sorted(p.name for p in out.iterdir()))
print(ds)

# %%
# One tidy row per model and layer
# --------------------------------
# ``summary_layers.csv`` is :func:`geomkit.report.summary_table` of the Dataset, one
# row per seed, model and layer (``summary_models.csv``, with ``level="model"``,
# holds what is measured once per model, such as accuracy): the bias-corrected power-law exponent with its
# interval (``alpha_plugin`` is the uncorrected fit), categoricality, weight
# statistics and flatness per layer (``input`` is the pixel baseline).
summary = summary_table(ds)
print(summary[["seed", "model", "layer", "alpha", "alpha_ci_low", "alpha_ci_high", "categoricality"]]
      .round(3).to_string(index=False))

# %%
# Tuning-map topology, layer by layer
# -----------------------------------
# ``betti0`` / ``betti1`` (over model, layer, level) are the mean Betti curves
# of tuning maps on the plane of the data's first two principal components:
# a few hidden units and every logit; ``n_peaks`` is their mean peak count.
# A hidden unit is a monotone function of one projection of the input, a ramp
# on any plane, so its row is one peak, one component and no hole by
# construction; the logits are not ramps, and their peaks show how many
# separate regions of the plane each class score rises towards.
print(ds["n_peaks"].sel(layer=["hidden", "output"]).mean("seed").to_pandas().round(2))

# %%
# What the papers claim, what this run measured
# ---------------------------------------------
# Each row names a claim, the numbers this run measured (mean ± sd over the
# seeds), the per-seed differences of the compared quantities, the 95 % t
# interval of their mean and a verdict: "holds", "does not hold" or
# "inconclusive" (the interval contains 0). With two models, two seeds and a
# few hundred 8x8 images most claims cannot be judged; the verdict says so.
claims = claims_table(ds)
for row in claims.itertuples(index=False):
    print(f"- {row.claim} ({row.source})\n    measured: {row.measured}\n"
          f"    per-seed differences {row.differences}; 95 % CI ({row.ci_low:.3g}, {row.ci_high:.3g})"
          f"\n    -> {row.verdict}")

# %%
# AutoAttack against the zoo
# --------------------------
# Every model is also attacked with the AutoAttack "standard" ensemble
# (APGD-CE, APGD-T, FAB-T and the black-box Square, worst case per input; a
# reduced budget: 15 steps, 2 targets, 200 queries, in quick mode 5 steps,
# 1 target, 50 queries), next to PGD: where AutoAttack falls far below PGD,
# PGD's gradients were misleading (gradient masking); at this reduced budget
# a PGD with more steps can also come out a little lower.
ra = ds["robust_accuracy"].mean("seed")
aa_vs_pgd = ra.sel(attack=["pgd", "autoattack"]).to_dataframe().unstack("attack")["robust_accuracy"]
print(aa_vs_pgd.round(3))

# %%
# The figures of the report
# -------------------------
# The same figures are in ``out/figures`` and embedded in ``report.html``;
# here are the spectra of every model on one log-log plot, with the
# smoothness bound 1 + 2/d of the data's intrinsic dimension d, the
# robustness curves and the Betti curves of the hidden units and the logits.
from geomkit.plotting import study_figures  # noqa: E402

figures = study_figures(ds.isel(seed=0))  # the first seed (the report draws the mean over seeds)
print("figures:", ", ".join(figures))
for name, (fig, caption) in figures.items():
    if name not in ("spectra", "robustness", "betti_curves"):
        plt.close(fig)
plt.show()
