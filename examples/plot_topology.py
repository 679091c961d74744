"""
Level-set topology of tuning maps
=================================

A unit's *tuning map* is its response over a plane of inputs. Wang & Ponce
(2022) read such maps through their level sets: cut the map at 21 levels from
its minimum to its maximum and count, at each level, the contours that close
on themselves (loops around a hill or a pit) and the lines that run into the
border. The counts change along the visual hierarchy: early units have simple,
open landscapes; later ones more peaks and closed contours.

This tutorial

1. checks the tools on maps whose topology we know (bumps and a ring),
2. computes tuning maps of the hidden units of a small network trained on
   handwritten digits, on the plane of the top two principal components,
3. compares the two hidden layers with :class:`geomkit.LevelSetTopology`, and
   uses its signatures as features in a scikit-learn pipeline.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from geomkit.measures.topology import (
    LevelSetTopology,
    betti_curves,
    contour_signature,
    level_set_persistence,
    peak_count,
)
from geomkit.plotting import (
    plot_betti_curves,
    plot_contour_signature,
    plot_persistence_diagram,
    plot_tuning_map,
)
from geomkit.probe import pca_directions, tuning_map

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
torch.set_num_threads(1)  # tiny models: one thread is fastest
torch.manual_seed(0)

# %%
# Maps with a known answer
# ------------------------
# Three Gaussian bumps of different heights on a ring-shaped ridge. Every bump
# is a component born at its height; the ring encloses a hole of the superlevel
# sets, born where the ring closes and filled at the lowest value inside.

size = 64
y, x = np.mgrid[:size, :size]
ring = np.exp(-((np.hypot(x - 32, y - 32) - 18) ** 2) / 18)
bumps = sum(h * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 12)
            for (cx, cy), h in zip([(32, 14), (50, 32), (32, 50)], [1.0, 0.8, 0.6]))
landscape = 0.5 * ring + bumps + 0.01 * np.random.default_rng(0).standard_normal((size, size))

table = level_set_persistence(landscape, min_persistence=0.05)
print(table.round(3))
print("peaks (persistence > 5% of the range):", peak_count(landscape))

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
plot_tuning_map(landscape, ax=axes[0])
axes[0].set_title("bumps on a ring")
plot_persistence_diagram(table, ax=axes[1])
plot_betti_curves(betti_curves(landscape), ax=axes[2])

# %%
# The long H0 bars are the three bumps (the highest never dies); the H1 bar is
# the ring's hole. The Betti curves show the same story level by level; the
# brief spike of b0 just above 0.3 is the ring's crest, roughened by the small
# noise, breaking into many short pieces as the level passes its top.
#
# Tuning maps of a trained network
# --------------------------------
# A network learns the scikit-learn digits. A unit's tuning map is its response
# on a plane through a class-mean digit, spanned by the two top principal
# components of the data. We compare the first hidden layer (a Tanh of a
# weighted sum: a smooth ridge on any plane) with the output layer (the class
# probabilities, which carve the plane into regions).

from sklearn.datasets import load_digits  # noqa: E402

digits = load_digits()
X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
labels = torch.tensor(digits.target)
net = torch.nn.Sequential(
    torch.nn.Linear(64, 64), torch.nn.Tanh(),
    torch.nn.Linear(64, 64), torch.nn.Tanh(),
    torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1),
)
optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
for _ in range(80 if SMALL else 200):
    optimizer.zero_grad()
    torch.nn.functional.nll_loss(torch.log(net(X) + 1e-9), labels).backward()
    optimizer.step()
print(f"training accuracy: {(net(X).argmax(1) == labels).float().mean():.3f}")

pc1, pc2 = pca_directions(X.numpy(), 2)
extent = 3.0 * float(np.std(X.numpy() @ pc1))
resolution = 32 if SMALL else 64
origins = [X[labels == c].mean(0).numpy() for c in (range(4) if SMALL else range(10))]
layers = {"1": "hidden (Tanh)", "5": "output (softmax)"}
maps = {
    layer: np.concatenate([
        tuning_map(net, layer, list(range(10)), origin, pc1, pc2, extent=extent,
                   resolution=resolution).values
        for origin in origins
    ])
    for layer in layers
}

# One map of each layer, as a DataArray whose coordinates are the coefficients
# of the two principal components (the plane's origin, the mean digit 0, is at 0, 0).
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
for ax, (layer, name) in zip(axes, layers.items()):
    one = tuning_map(net, layer, 3, origins[0], pc1, pc2, extent=extent, resolution=resolution)
    plot_tuning_map(one, ax=ax)
    ax.set_title(f"{name}, unit 3")
    ax.set_xlabel("coefficient of PC 1")
    ax.set_ylabel("coefficient of PC 2")
fig.suptitle("Tuning maps on the plane of the top two PCs through the mean digit 0", fontsize="medium")

# %%
# Contour signatures along the hierarchy
# --------------------------------------
# :class:`~geomkit.LevelSetTopology` computes, for every map, the persistence
# diagram, the Betti curves and the contour signature; ``transform`` returns
# the signature (loops at 21 levels, then lines at 21 levels).

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained", sharey=True)
for ax, (layer, name) in zip(axes, layers.items()):
    topo = LevelSetTopology().fit(maps[layer])
    plot_contour_signature(topo.signatures_, ax=ax)
    ax.set_title(f"{name}: {topo.peak_counts_.mean():.2f} peaks per map")

# %%
# Hidden units only ever draw lines across the plane; output units also close
# loops around the region of their class. The signatures are plain feature
# vectors, so the estimator sits in a pipeline: can a classifier tell from the
# topology alone which layer a tuning map came from?

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

all_maps = np.concatenate(list(maps.values()))
which = np.repeat([0, 1], len(all_maps) // 2)
pipe = make_pipeline(LevelSetTopology(), LogisticRegression(max_iter=1000))
scores = cross_val_score(pipe, all_maps, which, cv=4)
print(f"layer decoded from the contour signature: accuracy {scores.mean():.2f} (chance 0.50)")

# %%
# The counts are exact: the Betti numbers come from the persistence pairs, and
# loops = components of {f >= t} or of its complement that stay away from the
# border. See :mod:`geomkit.measures.topology` for the conventions
# (8-connected superlevel sets, 4-connected complements).

print(contour_signature(maps["5"][3], n_levels=6).to_pandas())
plt.show()
