"""
Hebbian winner-take-all learning on MNIST
=========================================

Krotov & Hopfield (2019) showed that a single hidden layer trained *without
labels*, by a local Hebbian rule with competition between units, learns
features good enough for a linear readout to reach high accuracy on MNIST.
Each input excites the units in proportion to their p-weighted overlap with
it; the strongest unit moves towards the input (Hebbian), the k-th strongest
is pushed away (anti-Hebbian), and every weight vector drifts onto the Lp
sphere of radius R.

This tutorial learns such a layer on the 5000-image MNIST subset, watches it
converge, looks at the receptive fields, trains the ``ReLU(h)^n`` readout
with two choices of feature scaling, and compares with SoftHebb (Journé et
al. 2023), the soft winner-take-all variant.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from geomkit.datasets import load_mnist5k
from geomkit.plotting import plot_hebbian_convergence, plot_receptive_fields
from geomkit.train import HebbianClassifier, KrotovHopfield

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
N_HIDDEN = 200 if SMALL else 2000
EPOCHS = 5 if SMALL else 50

X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2, random_state=0)
if SMALL:
    X_train, y_train, X_test, y_test = X_train[:1000], y_train[:1000], X_test[:300], y_test[:300]

# %%
# The unsupervised phase
# ----------------------
# ``fit_unsupervised`` needs no labels. The history records, per epoch, how
# far the unit norms still are from R and which fraction of the units has
# ever won a sample (units that never win never learn).

layer = KrotovHopfield(784, N_HIDDEN, p=3.0, k=7, delta=0.4, R=1.0, random_state=0)
layer.fit_unsupervised(X_train, epochs=EPOCHS, batch_size=100, progress=False)
print(layer.history_.tail(3))

# %%
# A unit that wins moves towards the input and its norm shrinks towards R; its
# current then drops and other units get their turn. Units that reach the
# sphere have learned digit-like receptive fields; units that never win keep
# their random initial weights (here about a third of them).

norms = layer.unit_norms().numpy()
converged = np.argsort(np.abs(norms - layer.R))[:36]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
plot_hebbian_convergence(layer.history_, ax=axes[0], label="Krotov-Hopfield")
plot_receptive_fields(layer, units=converged, ax=axes[1])
axes[1].set_title("the 36 units closest to the sphere ||w||_3 = R")

# %%
# The readout and its feature scaling
# -----------------------------------
# The readout sees ``ReLU(W x)^n`` (n = 4.5). These features span many
# decades, so how they are scaled before the linear layer decides whether
# Adam can train it: one global factor, the features' standard deviation over
# the training set, works well; dividing by the maximum shrinks almost every
# feature to ~0 and the readout learns slowly.

scores = {}
for scale in ["std", "max"]:
    clf = HebbianClassifier(n_hidden=N_HIDDEN, layer_params={"k": 7, "delta": 0.4}, unsup_epochs=EPOCHS,
                            feature_scale=scale, random_state=0, progress=False)
    scores[f"Krotov-Hopfield, {scale} scaling"] = clf.fit(X_train, y_train).score(X_test, y_test)

soft = HebbianClassifier(layer="softhebb", n_hidden=N_HIDDEN, unsup_epochs=max(EPOCHS // 2, 1), random_state=0,
                         progress=False).fit(X_train, y_train)
scores["SoftHebb, std scaling"] = soft.score(X_test, y_test)
for name, acc in scores.items():
    print(f"{name:35s} test accuracy {acc:.3f}")

fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
ax.barh(list(scores), list(scores.values()), color=["C0", "C7", "C1"])
ax.set_xlim(0, 1)
ax.set_xlabel("test accuracy (MNIST-5k, 20 % held out)")
for i, acc in enumerate(scores.values()):
    ax.text(acc + 0.01, i, f"{acc:.3f}", va="center")

# %%
# SoftHebb converges differently: its per-unit rate shrinks as a unit's norm
# approaches 1, and only the units that win some softmax mass learn.

ax = plot_hebbian_convergence(soft.unsup_history_, label="SoftHebb")
plt.show()
