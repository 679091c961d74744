"""
Weight kurtosis and the FGSM sensitivity of a linear readout
============================================================

Nayebi & Ganguli (2017) measured the **excess kurtosis** of each layer's
weights: 0 for Gaussian weights, 3 for Laplace, -1.2 for uniform ones. Their
argument: for a linear score w . x, the fast-gradient-sign step
eps * sign(w) changes the score by eps ||w||_1, so among weight vectors of
the same Euclidean norm, heavy-tailed ones (small ||w||_1 / ||w||_2) are
harder to attack.

geomkit reports both numbers per layer (``weight_kurtosis``) and for any
weight array (``WeightKurtosis``, a scikit-learn estimator).
"""

# %%
# Reference laws
# --------------
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from geomkit import WeightKurtosis, weight_kurtosis
from geomkit.measures import pooled_weight_kurtosis
from geomkit.datasets import load_digits
from geomkit.plotting import plot_weight_kurtosis

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
rng = np.random.default_rng(0)
n = 10**5 if SMALL else 10**6
laws = {
    "uniform": rng.uniform(-1, 1, n),
    "Gaussian": rng.standard_normal(n),
    "Laplace": rng.laplace(size=n),
    "Student t (df=5)": rng.standard_t(5, n),
}
rows = []
for name, w in laws.items():
    est = WeightKurtosis().fit(w)
    rows.append({"law": name, "kurtosis": est.kurtosis_, "l1/l2 / sqrt(n)": est.l1_l2_normalized_})
print(pd.DataFrame(rows).round(3))

# %%
# A network before and after training
# -----------------------------------
# PyTorch initializes Linear weights uniformly: every layer starts at -1.2.
# The pooled value is higher: layers of different widths have different
# weight scales, and a mixture of scales has heavier tails than each part.
# Training moves the weights away from the uniform law.
X, y = load_digits()
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10))
before = weight_kurtosis(net).assign(network="initial")
pooled_before = pooled_weight_kurtosis(net)
opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=0.0)
Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
for epoch in range(5 if SMALL else 30):
    for idx in torch.randperm(len(Xt)).split(64):
        opt.zero_grad()
        nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
        opt.step()
after = weight_kurtosis(net).assign(network="trained")
pooled_after = pooled_weight_kurtosis(net)
print(pd.concat([before, after])[["network", "layer", "n_weights", "kurtosis", "l1_l2_normalized"]].round(3))
print(f"pooled over layers: {pooled_before['kurtosis']:.3f} initial, {pooled_after['kurtosis']:.3f} trained")

# Name the Linear modules ("0", "2", "4") by their shapes on the axis.
names = {"0": "fc1\n64→200", "2": "fc2\n200→200", "4": "fc3\n200→10"}
before["layer"], after["layer"] = before["layer"].map(names), after["layer"].map(names)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
plot_weight_kurtosis(before, pooled=pooled_before, ax=axes[0])
axes[0].set_title("at initialization (uniform weights)")
plot_weight_kurtosis(after, pooled=pooled_after, ax=axes[1])
axes[1].set_title("after training on the digits")

# %%
# Kurtosis and the l1 / l2 ratio
# -------------------------------
# Over Student-t weights of decreasing degrees of freedom (heavier tails),
# the kurtosis grows and the normalized l1/l2 ratio — the FGSM sensitivity
# of a linear readout per unit of weight norm — falls. Across families the
# two are not one number: Laplace weights have a smaller ratio than Student-t
# weights of higher kurtosis, which is why geomkit reports both.
dfs = [5, 6, 8, 12, 20, 50, 200]
stats_t = [WeightKurtosis().fit(rng.standard_t(df, n)) for df in dfs]
fig, ax = plt.subplots(figsize=(5, 3.8), layout="constrained")
ax.plot([e.kurtosis_ for e in stats_t], [e.l1_l2_normalized_ for e in stats_t], "o-",
        label="Student t, df = 200 … 5")
for name, w in list(laws.items())[:3]:
    e = WeightKurtosis().fit(w)
    ax.plot(e.kurtosis_, e.l1_l2_normalized_, "s", label=name)
ax.set_xlabel("excess kurtosis of the weights")
ax.set_ylabel(r"$\|w\|_1 \,/\, (\sqrt{n}\, \|w\|_2)$")
ax.set_title("heavier tails, smaller FGSM step effect")
ax.legend()
plt.show()
