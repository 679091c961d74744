"""
Fragile explanations: same prediction, different saliency map
=============================================================

Ghorbani, Abid & Zou (2019) showed that a perturbation too small to change a
network's decision can move the map that explains the decision.
:mod:`geomkit.probe.attribution` computes attribution maps through captum,
attacks them while keeping every label, and compares the attack with random
noise of the same size. The same is done for a concept explanation (TCAV,
Kim et al. 2018).
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from geomkit.probe.attacks import train_surrogate
from geomkit.probe.attribution import (
    attribute,
    attribution_fragility,
    concept_activation_vector,
    fragility_attack,
    tcav_attack,
    tcav_score,
    topk_intersection,
)

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"

# %%
# A small classifier
# ------------------
# MNIST-5k (28 x 28, pixels in [0, 1]); scikit-learn's 8 x 8 digits in small
# mode. A one-hidden-layer ReLU MLP (``Flatten``, ``Linear`` "1", ``ReLU``,
# ``Linear`` "3").
if SMALL:
    from geomkit.datasets import load_digits

    X_train, X_test, y_train, y_test = load_digits(test_size=0.25)
    side, hidden, epochs, n_eval = 8, (32,), 15, 40
else:
    from geomkit.datasets import load_mnist5k

    X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2)
    side, hidden, epochs, n_eval = 28, (256,), 10, 50

net = train_surrogate(X_train, y_train, hidden=hidden, epochs=epochs, random_state=0)
with torch.no_grad():
    correct = net(torch.as_tensor(X_test)).argmax(1).numpy() == y_test
X_eval, y_eval = X_test[correct][:n_eval], y_test[correct][:n_eval]
print(f"test accuracy {correct.mean():.3f}")

# %%
# Three attribution methods
# -------------------------
# Saliency (the input gradient of the predicted logit), integrated gradients
# and DeepLIFT, each of the input's shape.
fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
axes[0].imshow(X_eval[0].reshape(side, side), cmap="gray")
axes[0].set_title(f"input (class {y_eval[0]})")
for ax, method in zip(axes[1:], ("saliency", "integrated_gradients", "deeplift")):
    a = attribute(net, X_eval[:1], method=method)[0].reshape(side, side)
    lim = np.abs(a).max()
    ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(method.replace("_", " "))
for ax in axes:
    ax.axis("off")
fig.tight_layout()

# %%
# The fragility attack
# --------------------
# Sign-gradient steps inside an L-inf ball of radius eps that lower the share
# of the saliency held by the 10 % most important pixels, rejecting any step
# that changes the label. ReLU networks have zero second derivatives, so the
# attack differentiates a softplus-smoothed copy of the forward pass, as
# Ghorbani et al. do.
eps = 0.1
k = side * side // 10
x = torch.as_tensor(X_eval)
x_adv = fragility_attack(net, x, eps, k=k, shape=(side, side), steps=20)
noise = (x + eps * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))).clamp(0, 1)
labels = net(x).argmax(1).numpy()
print("labels kept by the attack:", bool((net(x_adv).argmax(1).numpy() == labels).all()))

before = attribute(net, x, labels, method="saliency")
after = attribute(net, x_adv, labels, method="saliency")
noisy = attribute(net, noise, labels, method="saliency")
print(f"top-{k} intersection: attack {topk_intersection(before, after, k).mean():.2f}, "
      f"noise {topk_intersection(before, noisy, k).mean():.2f}")

fig, axes = plt.subplots(2, 3, figsize=(7, 4.8))
for row, i in enumerate((0, 1)):
    for ax, maps, title in zip(axes[row], (before, noisy, after), ("original", "noise", "attack")):
        ax.imshow(np.abs(maps[i]).reshape(side, side), cmap="magma")
        ax.set_title(f"{title}: class {labels[i]}")
        ax.axis("off")
fig.suptitle(f"|saliency|, L-inf eps = {eps}: the label stays, the map moves")
fig.tight_layout()

# %%
# Attack against noise, over eps
# ------------------------------
# :func:`~geomkit.probe.attribution.attribution_fragility` returns a tidy table:
# the three distances (top-k intersection, Spearman rank correlation,
# centre-of-mass shift) per eps, for the attack and for noise.
table = attribution_fragility(net, X_eval, [0.02, 0.05, 0.1], k=k, shape=(side, side), steps=20,
                              random_state=0)
print(table.round(3).to_string())
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for kind, group in table.groupby("perturbation"):
    axes[0].plot(group["eps"], group["topk_intersection"], "o-", label=kind)
    axes[1].plot(group["eps"], group["rank_correlation"], "o-", label=kind)
axes[0].set(xlabel="L-inf eps", ylabel=f"top-{k} intersection", ylim=(0, 1.05))
axes[1].set(xlabel="L-inf eps", ylabel="Spearman rank correlation")
axes[0].legend()
fig.tight_layout()

# %%
# Concept explanations, and their attack
# --------------------------------------
# TCAV (Kim et al. 2018) asks which concepts a class rests on. A concept here
# is "looks like the digit c", a CAV at the hidden pre-activations (module
# "1"): the normal of a linear classifier between the activations to images of
# c and to other images. Its TCAV score for the class 0 is the fraction of
# zeros whose class-0 logit rises along it.
with torch.no_grad():
    acts = net[1](torch.as_tensor(X_train)).numpy()
cavs = {c: concept_activation_vector(acts[y_train == c], acts[y_train != c][:300]) for c in range(10)}
zeros = torch.as_tensor(X_test[correct & (y_test == 0)][:n_eval])
scores = {c: tcav_score(net, zeros, "1", cav) for c, cav in cavs.items()}
print({c: round(v, 2) for c, v in scores.items()})

# %%
# The TCAV attack takes the other digit the zeros lean on most, short of all
# of them (a score of 1 is the hardest to move), and lowers every zero's
# sensitivity to it, inside an L-inf ball and without changing any
# prediction: the concept explanation changes, the classifier does not.
concept = max((c for c in scores if c != 0 and scores[c] < 1), key=scores.get)
after = {}
for e in (0.05, 0.1):
    adv = tcav_attack(net, zeros, "1", cavs[concept], eps=e, steps=20)
    assert (net(adv).argmax(1) == net(zeros).argmax(1)).all()
    after[e] = tcav_score(net, adv, "1", cavs[concept])
print(f"TCAV score of concept '{concept}' for class 0: {scores[concept]:.2f}, after the attack "
      + ", ".join(f"{v:.2f} (eps {e})" for e, v in after.items()))

fig, axes = plt.subplots(1, 2, figsize=(9, 3), gridspec_kw={"width_ratios": [2, 1]})
axes[0].bar([str(c) for c in scores], list(scores.values()), color="grey")
axes[0].axhline(0.5, ls=":", color="k")
axes[0].set(xlabel="concept: looks like digit", ylabel="TCAV score for class 0", ylim=(0, 1.05))
axes[1].bar(["original", *(f"eps {e}" for e in after)], [scores[concept], *after.values()],
            color=["grey", "tab:orange", "tab:red"])
axes[1].set(title=f"concept '{concept}' under attack", ylim=(0, 1.05))
fig.tight_layout()
