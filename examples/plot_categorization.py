"""
Categorical perception across the layers of a network
=====================================================

Categorical perception: items of one category look more alike, items of
different categories more different, than their physical differences alone
would say. Bonnasse-Gahot & Nadal (2022) showed that learning to classify
builds it into every layer of a network, more so deeper:

* the **categoricality index** compares the distances within and between
  categories (a Kolmogorov-Smirnov statistic between the two samples);
* along a **morph continuum** from an item of one class to an item of
  another, the distance between neighbouring steps peaks at the boundary.

Keller, Gao & Welling (2021) measure the same thing unit by unit, with the
**category selectivity** d' of each unit for each class.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from sklearn.datasets import load_digits

from geomkit.measures.categorization import CategorySelectivity
from geomkit.plotting import plot_categorization_by_layer, plot_morph_profile, plot_selectivity
from geomkit.probe import categorization_by_layer, extract, layer_activations, morph_profiles

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
torch.set_num_threads(1)  # tiny models: one thread is fastest
torch.manual_seed(0)

digits = load_digits()
X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
y = torch.tensor(digits.target)


def make_net():
    return torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )


net = make_net()
hidden = ["1", "3"]  # the two ReLU layers
before = categorization_by_layer(net, X, y, layers=hidden, n_bootstraps=200, progress=False)

optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
for _ in range(60 if SMALL else 150):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(net(X), y).backward()
    optimizer.step()
print(f"training accuracy: {(net(X).argmax(1) == y).float().mean():.3f}")
after = categorization_by_layer(net, X, y, layers=hidden, n_bootstraps=200, progress=False)

# %%
# The categoricality index per layer
# ----------------------------------
# The same pairs are used for every layer and for the raw pixels (``"input"``).
# Before training the random layers roughly keep the input's geometry; after,
# the index grows with depth.

table = pd.concat([before.assign(model="untrained"), after.assign(model="trained")])
print(table.round(3))
# Module names "1" and "3" are the two ReLU layers: say so on the axis.
names = {"input": "input (pixels)", "1": "hidden 1 (ReLU)", "3": "hidden 2 (ReLU)"}
ax = plot_categorization_by_layer(table.assign(layer=table["layer"].map(names)), hue="model")
ax.set_title("categoricality index (95% bootstrap band)")

# %%
# Morph continua
# --------------
# Interpolate pixel-wise between a digit of one class and a digit of another,
# and record every layer along the 50 steps. Continua that pass through a third
# class, or whose boundary sits near an end, are set aside (the paper's rule);
# the others are aligned on the boundary and averaged.

rng = np.random.default_rng(0)
n_pairs = 100 if SMALL else 600
first = rng.integers(len(y), size=n_pairs)
second = np.array([rng.choice(np.flatnonzero(y.numpy() != y[i].item())) for i in first])
profiles = morph_profiles(net, X[first], X[second], layers=["0", *hidden, "4"], progress=False)
print(f"accepted continua: {profiles.attrs['n_accepted']} of {n_pairs} "
      f"({profiles.attrs['fraction_accepted']:.0%})")
# Name the recorded modules, and put both legends under the plot, off the curves.
profiles = profiles.assign_coords(layer=["0: linear 1", "1: ReLU 1", "3: ReLU 2", "4: logits"])
fig, ax = plt.subplots(figsize=(6.4, 4.8), layout="constrained")
plot_morph_profile(profiles, ax=ax)
twin = next(other for other in fig.axes if other is not ax)
sns.move_legend(ax, "upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, title="layer")
sns.move_legend(twin, "upper right", bbox_to_anchor=(1.0, -0.16), title="class probability (dashed)")

# %%
# The distance between neighbouring steps peaks where the classifier changes
# its mind, and the peak stands out more in the deeper layers (each curve is
# divided by its mean; layer ``"4"`` is the logits).
#
# Category-selective units
# ------------------------
# d' of each unit of the last hidden layer for each digit against the rest;
# a unit is selective when d' >= 0.85, mixed when it is selective for several.

acts = layer_activations(extract(net, X, ["3"], progress=False), "3")
selectivity = CategorySelectivity().fit(acts, y.numpy())
print(f"selective units: {selectivity.selective_fraction_:.0%}, "
      f"of which mixed: {selectivity.mixed_fraction_:.0%}")
plot_selectivity(selectivity, max_units=40)
plt.show()
