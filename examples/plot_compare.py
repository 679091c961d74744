"""
Comparing representations layer by layer
========================================

Do two networks trained on the same task, from different random
initializations, learn the same representations? Is a layer like a recorded
population of neurons? :func:`geomkit.measures.compare_layers` answers the
first for every pair of layers at once, with centred kernel alignment (CKA)
or representational similarity analysis (RSA), bootstrap intervals and
permutation p-values; :class:`geomkit.measures.CKA` answers the second,
removing the trial noise of repeated recordings.

We train three small MLPs of the study's kind on scikit-learn's digits (two
ReLU nets that differ only in their seed, and a sigmoid net), compare them
layer by layer, and then compare a layer with a synthetic "recording" whose
noise we know.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from geomkit.datasets import load_digits
from geomkit.measures import CKA, cka, compare_layers, rsa
from geomkit.plotting import plot_layer_similarity
from geomkit.probe import extract
from geomkit.train import NetClassifier

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
torch.set_num_threads(1)
N_BOOT = 20 if SMALL else 200

X_train, X_test, y_train, y_test = load_digits(test_size=0.3, random_state=0)

# %%
# Three small nets
# ----------------
# Two hidden layers each; ``NetClassifier`` trains them with Adam. The two ReLU
# nets share everything but the seed of their initial weights and batches.
nets = {
    "relu_seed0": NetClassifier(hidden_sizes=(64, 32), activation="relu", random_state=0),
    "relu_seed1": NetClassifier(hidden_sizes=(64, 32), activation="relu", random_state=1),
    "sigmoid": NetClassifier(hidden_sizes=(64, 32), activation="sigmoid", random_state=2),
}
for name, net in nets.items():
    net.set_params(epochs=5 if SMALL else 40, lr=3e-3, batch_size=64, progress=False)
    net.fit(X_train, y_train)
    print(f"{name}: test accuracy {net.score(X_test, y_test):.3f}")

# %%
# Record every layer on the held-out digits
# -----------------------------------------
# :func:`geomkit.probe.extract` returns one variable per layer; the hidden
# layers' outputs (after the nonlinearity) and the logits are what we compare.
layers = ["act1", "act2", "out"]
acts = {name: extract(net.module_, X_test, layers, progress=False) for name, net in nets.items()}
print(acts["relu_seed0"])

# %%
# Every layer against every layer: CKA
# ------------------------------------
# ``debiased=True`` uses the unbiased HSIC (Song et al. 2012): with 540 test
# digits and up to 64 units, the ordinary (biased) CKA of two *unrelated*
# layers would already be around 0.1. Each layer is centred once, not once per
# pair; the intervals come from the same bootstrap draws of digits for every
# pair.
sim_seeds = compare_layers(acts["relu_seed0"], acts["relu_seed1"], metric="cka",
                           metric_params={"debiased": True}, n_bootstraps=N_BOOT,
                           random_state=0, progress=False)
sim_act = compare_layers(acts["relu_seed0"], acts["sigmoid"], metric="cka",
                         metric_params={"debiased": True}, n_bootstraps=N_BOOT,
                         random_state=0, progress=False)

fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
plot_layer_similarity(sim_seeds, ax=axes[0])
axes[0].set(title="ReLU seed 0 (rows) vs ReLU seed 1", ylabel="relu_seed0", xlabel="relu_seed1")
plot_layer_similarity(sim_act, ax=axes[1])
axes[1].set(title="ReLU seed 0 (rows) vs sigmoid", ylabel="relu_seed0", xlabel="sigmoid")
plt.show()

# %%
# On these simple 8 x 8 digits every layer of one net is much like every layer
# of the other; read the same depth (the diagonal) against the rest of its
# row. The Dataset carries the intervals, so a statement such as "act2 is more
# like its counterpart than like act1" can be checked against them; quote
# ``value_corrected``, the centre of the interval (``value`` is the plug-in).
print(sim_seeds["value_corrected"].to_pandas().round(2))
print(sim_seeds[["value_corrected", "ci_low", "ci_high"]].sel(layer_a="act2", layer_b="act2"))

# %%
# The same with RSA
# -----------------
# RSA compares the nets' dissimilarity matrices (correlation distance,
# Spearman's rho between them), in rsatoolbox's conventions.
sim_rsa = compare_layers(acts["relu_seed0"], acts["relu_seed1"], metric="rsa",
                         metric_params={"metric": "correlation", "method": "spearman"},
                         progress=False)
ax = plot_layer_similarity(sim_rsa)
ax.set_title("RSA (Spearman), ReLU seed 0 vs seed 1")
plt.show()

# %%
# Against a recording with trial noise
# ------------------------------------
# A synthetic population of 40 "neurons" that reads out ``act2`` of the first
# net linearly, recorded in 4 repeats with independent Gaussian noise. Its
# noise-free CKA with ``act2`` is known (the CKA with the signal itself). CKA
# of the repeat mean is deflated by the noise; the repeat-split estimate
# (``noise_correction="split"``, for an ``(n_repeats, n_stimuli, n_units)``
# array) is not.
rng = np.random.default_rng(0)
layer = acts["relu_seed0"]["act2"].values.astype(np.float64)
signal = layer @ rng.normal(size=(layer.shape[1], 40))
noise_sd = 1.5 * signal.std()
recording = signal + noise_sd * rng.normal(size=(4, *signal.shape))

noise_free = cka(layer, signal, debiased=True)
averaged = cka(recording, layer, debiased=True, noise_correction="none")
corrected = CKA(noise_correction="split", n_bootstraps=N_BOOT, n_permutations=N_BOOT - 1,
                random_state=0).fit(recording, layer)
print(f"noise-free CKA      {noise_free:.3f}")
print(f"repeats averaged    {averaged:.3f}")
print(f"noise-corrected     {corrected.value_:.3f} (bootstrap-corrected "
      f"{corrected.value_corrected_:.3f}, 95% CI [{corrected.ci_[0]:.3f}, "
      f"{corrected.ci_[1]:.3f}]), permutation p = {corrected.p_value_:.3f}")

# %%
# RSA has its own noise correction: cross-validated (crossnobis) distances
# between repeats are unbiased, where distances between repeat means are
# inflated by the noise.
clean = np.stack([layer, layer])  # the layer, noise-free: crossnobis = squared Euclidean / units
print("RSA (whitened cosine) with the layer: crossnobis",
      round(rsa(recording, clean, metric="crossnobis", method="whitened_cosine"), 3),
      "| Euclidean of repeat means",
      round(rsa(recording, clean, metric="euclidean", method="whitened_cosine"), 3))
print("RSA, noise-free recording:", round(rsa(signal, layer, metric="euclidean",
                                              method="whitened_cosine"), 3))
