"""
Co-training a network with a (model) recording
===============================================

Networks whose representations are pulled towards those of visual cortex
while they learn their task have been reported to resist adversarial
perturbations better (Li et al. 2019, with mouse V1 data; Safarani et al.
2021, with monkey V1). :mod:`geomkit.train.cotraining` has the two forms of
such co-training: a representational-similarity term (CKA, RSA or CCA between
a layer and the recording, on the same stimuli) and a neural-prediction head
(a readout from a layer to the recorded neurons, trained beside the
classifier).

This tutorial has no recording of real neurons; it uses a model of V1,
:class:`geomkit.datasets.GaborV1`: complex cells of a random Gabor bank whose
population spectrum is set to the power law ``n^-1`` that Stringer et al.
(2019) measured in mouse V1. It co-trains an MLP to it, checks on held-out
images that the hidden layer became more V1-like, and compares the two
networks' robustness.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from geomkit import AdversarialRobustness
from geomkit.datasets import GaborV1
from geomkit.measures import cka
from geomkit.probe.extract import extract, layer_activations
from geomkit.train import NetClassifier, NeuralPredictionHead, RepresentationalSimilarity

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"

if SMALL:
    from geomkit.datasets import load_digits

    X_train, X_test, y_train, y_test = load_digits(test_size=0.25, random_state=0)
    hidden, epochs, n_neurons, n_eval = 64, 10, 100, 150
else:
    from geomkit.datasets import load_mnist5k

    X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2, random_state=0)
    hidden, epochs, n_neurons, n_eval = 256, 10, 300, 300

# %%
# The recording: a model of V1
# ----------------------------
# ``fit`` draws the filters and sets the population spectrum on the training
# images; ``transform`` gives the responses to any image. Each model neuron
# has a quadrature pair of Gabor filters (its even filters are drawn below).
v1 = GaborV1(n_neurons=n_neurons, alpha=1.0, random_state=0).fit(X_train)
side = int(np.sqrt(X_train.shape[1]))
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, f in zip(axes.ravel(), v1.filters_[0].T):
    ax.imshow(f.reshape(side, side), cmap="RdBu_r")
    ax.axis("off")
fig.suptitle("even filters of 16 model V1 neurons")

lam = np.linalg.eigvalsh(np.cov(v1.transform(X_train).T))[::-1]
print("top eigenvalues of the model recording, relative:", (lam[:5] / lam[0]).round(3))

# %%
# Co-training by CKA
# ------------------
# The recording is indexed by stimulus: row ``i`` answers ``X_train[i]``, and
# every batch picks its rows. Passing the unfitted ``GaborV1`` itself works
# too: the regularizer fits a copy on the training inputs.
recording = v1.transform(X_train)
settings = dict(hidden_sizes=(hidden,), epochs=epochs, lr=2e-3, batch_size=128, random_state=0, progress=False)
plain = NetClassifier(**settings).fit(X_train, y_train)
cotrained = NetClassifier(regularizers=RepresentationalSimilarity(recording, similarity="cka", strength=1.0),
                          **settings).fit(X_train, y_train)
print(cotrained.history_[["epoch", "task_loss", "reg_similarity", "accuracy"]].round(3).tail(3))

# %%
# Did it work on images the network never saw? The held-out CKA with the
# model V1's responses, and the test accuracy:
truth = v1.transform(X_test)


def v1_likeness(clf):
    acts = layer_activations(extract(clf.module_, X_test, layers=["act1"], progress=False), "act1").values
    return cka(acts, truth)


for name, clf in (("plain", plain), ("cotrained", cotrained)):
    print(f"{name:10s} CKA with V1 {v1_likeness(clf):.3f}   test accuracy {clf.score(X_test, y_test):.3f}")

# %%
# A neural-prediction head instead
# --------------------------------
# Multi-task co-training: a linear readout from ``act1`` predicts the
# neurons, here spike counts drawn from rates ``softplus(responses)``, with
# a Poisson loss. The readout is the regularizer's own parameter.
rng = np.random.default_rng(0)
counts = rng.poisson(np.log1p(np.exp(recording)))
head = NetClassifier(regularizers=NeuralPredictionHead(counts, loss="poisson"), **settings).fit(X_train, y_train)
print(f"{'head':10s} CKA with V1 {v1_likeness(head):.3f}   test accuracy {head.score(X_test, y_test):.3f}")

# %%
# The head predicts the neurons but hardly moves the layer's CKA with V1
# (measured on MNIST-5k: 0.59 plain, 0.59 with the head, 0.85 with the CKA
# term): a linear readout can be fitted to a layer whose geometry is not
# V1's. The similarity term shapes the geometry itself.

# %%
# Robustness
# ----------
# PGD (L-inf) robust accuracy over eps for the three networks. Whether the
# more V1-like net is the more robust one is what ``geomkit study`` judges,
# over seeds, in its claims table.
fig, ax = plt.subplots(figsize=(5, 3.5))
for name, clf in (("plain", plain), ("cotrained (CKA)", cotrained), ("prediction head", head)):
    rob = AdversarialRobustness(clf.module_, attacks=("pgd",), n_eps=8, steps=10, progress=False)
    rob.fit(X_test[:n_eval], y_test[:n_eval])
    ra = rob.robust_accuracy_.sel(attack="pgd")
    ax.semilogx(ra["eps"], ra, marker="o", label=name)
ax.set_xlabel("eps (L-inf)")
ax.set_ylabel("robust accuracy")
ax.legend()
plt.show()
