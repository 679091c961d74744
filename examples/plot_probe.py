"""
Probing a PyTorch model layer by layer
======================================

:func:`geomkit.probe.extract` records the outputs of any modules of any PyTorch
model through forward hooks and returns them as an :class:`xarray.Dataset`:
one variable per layer, with the stimulus labels and, for convolutional maps,
the channel / y / x of every unit as coordinates. The model is left exactly as
it was found. For activation sets too large for memory,
:func:`geomkit.probe.layer_moments` streams the mean and covariance instead.

Here we train a tiny convolutional net on scikit-learn's digits for a few
seconds, record every layer, and look at how the classes separate with depth.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from geomkit.datasets import load_digits
from geomkit.probe import extract, layer_activations, layer_moments

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
torch.manual_seed(0)
torch.set_num_threads(1)

X_train, X_test, y_train, y_test = load_digits(flatten=False, test_size=0.3, random_state=0)

# %%
# A small convolutional net with named layers
# -------------------------------------------
model = nn.Sequential()
model.add_module("conv", nn.Conv2d(1, 8, kernel_size=3, padding=1))
model.add_module("relu1", nn.ReLU(inplace=True))  # in place: the probe still records conv's output intact
model.add_module("pool", nn.MaxPool2d(2))
model.add_module("flatten", nn.Flatten())
model.add_module("hidden", nn.Linear(8 * 4 * 4, 64))
model.add_module("relu2", nn.ReLU())
model.add_module("out", nn.Linear(64, 10))

optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
xb, yb = torch.from_numpy(X_train), torch.from_numpy(y_train)
for epoch in range(5 if SMALL else 30):
    for idx in torch.randperm(len(xb)).split(64):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb[idx]), yb[idx]).backward()
        optimizer.step()
model.eval()
accuracy = (model(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
print(f"test accuracy: {accuracy:.3f}")

# %%
# Record every layer
# ------------------
# ``layers=None`` records every Linear / Conv layer and activation. Each layer
# has its own unit dimension (``"<layer>__unit"``); the conv layer's units carry
# their channel and position.
ds = extract(model, X_test, labels=y_test, progress=False)
print(ds)
conv = layer_activations(ds, "conv")  # plain dims ("stimulus", "unit") with channel / y / x coordinates
print(conv.coords)

# %%
# The recorded conv output equals the module's own output, although the next
# module (``ReLU(inplace=True)``) overwrites that tensor during the forward pass:
with torch.no_grad():
    direct = model.conv(torch.from_numpy(X_test)).reshape(len(X_test), -1).numpy()
print("max |recorded - direct| =", float(np.abs(conv.values - direct).max()))

# %%
# Feature maps, addressed by coordinates
# --------------------------------------
# Selecting by the ``channel`` coordinate gives back a channel's map of one stimulus.
fig, axes = plt.subplots(1, 5, figsize=(10, 2.4), layout="constrained")
axes[0].imshow(X_test[0, 0], cmap="gray_r")
axes[0].set_title(f"input (label {y_test[0]})")
for c, ax in zip(range(4), axes[1:]):
    unit_mask = conv["channel"].values == c
    fmap = conv.values[0, unit_mask].reshape(8, 8)
    ax.imshow(fmap, cmap="magma")
    ax.set_title(f"conv channel {c}")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("One test digit and four channels of the conv layer's output (8 x 8 positions; "
             "bright = high, each map on its own colour scale)", fontsize="medium")

# %%
# How well the classes separate, layer by layer
# ---------------------------------------------
# The ratio of between-class to within-class variance (Fisher's criterion,
# summed over units) grows with depth in a trained net.
def separation(acts: np.ndarray, labels: np.ndarray) -> float:
    grand = acts.mean(axis=0)
    between = sum((labels == c).sum() * ((acts[labels == c].mean(0) - grand) ** 2).sum() for c in np.unique(labels))
    within = sum(((acts[labels == c] - acts[labels == c].mean(0)) ** 2).sum() for c in np.unique(labels))
    return between / within


names = ["input", *ds.data_vars]
values = [separation(X_test.reshape(len(X_test), -1), y_test)]
values += [separation(ds[name].values.astype(np.float64), y_test) for name in ds.data_vars]
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.plot(names, values, marker="o")
ax.set_xlabel("layer (depth →)")
ax.set_ylabel("between / within class variance")
ax.set_title("Class separation grows with depth")

# %%
# Streaming moments for large data
# --------------------------------
# ``layer_moments`` keeps only a running mean and covariance (float64) per
# layer; its eigenvalues are the spectrum of the layer's representation.
#
# Units that never fire on these digits have zero variance, hence zero
# eigenvalues; a log axis cannot show them, so the plot stops at the last
# non-zero one.
moments = layer_moments(model, X_test, ["relu2"], progress=False)["relu2"]
eigenvalues = moments.eigenvalues()
nonzero = eigenvalues[eigenvalues > 1e-10 * eigenvalues[0]]
fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
ax.loglog(np.arange(1, nonzero.size + 1), nonzero, marker=".")
ax.set_xlabel("rank n")
ax.set_ylabel(r"eigenvalue $\lambda_n$ of the covariance")
ax.set_title(f"Spectrum of the hidden layer (relu2): {nonzero.size} of {eigenvalues.size} non-zero",
             fontsize="medium")
plt.show()
