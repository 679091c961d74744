"""
Fisher-information and Jacobian flatness of a classifier
=========================================================

How sensitive is a network's output to small changes of its input? Two
answers, both computed per input image:

* the **input Jacobian** J_l(x) of each layer, summarized by its squared
  Frobenius norm ||J_l||_F^2 (the quantity Jacobian regularization penalizes,
  Hoffman, Roberts & Yaida 2019) and its singular values;
* the **Fisher information metric** of the predicted distribution in input
  space, G(x) = J^T (diag p - p p^T) J. Its trace says how fast the
  prediction changes, its eigenvalues along which input directions. G has
  rank at most C - 1, so geomkit computes it in the small C x C space.

We compare a small MLP before and after training on the 8 x 8 digits.
"""

# %%
# Data and two networks
# ---------------------
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn as nn

from geomkit import FisherFlatness, JacobianFlatness
from geomkit.datasets import load_digits
from geomkit.plotting import plot_flatness, plot_flatness_spectrum

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
X_train, X_test, y_train, y_test = load_digits(test_size=0.25, random_state=0)
n_probe = 60 if SMALL else 400


def make_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 100), nn.Tanh(), nn.Linear(100, 100), nn.Tanh(), nn.Linear(100, 10))


nets = {"untrained": make_net(), "trained": make_net()}
opt = torch.optim.Adam(nets["trained"].parameters(), lr=2e-3)
Xt, yt = torch.from_numpy(X_train), torch.from_numpy(y_train)
for epoch in range(10 if SMALL else 40):
    for idx in torch.randperm(len(Xt)).split(64):
        opt.zero_grad()
        nn.functional.cross_entropy(nets["trained"](Xt[idx]), yt[idx]).backward()
        opt.step()
with torch.no_grad():
    acc = (nets["trained"](torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
print(f"test accuracy of the trained net: {acc:.3f}")

# %%
# Fisher information: how fast does the prediction change?
# --------------------------------------------------------
# ``score`` is the negative mean log trace: higher means flatter. After
# training the trace is larger (the prediction reacts to the input) and it
# is carried by fewer directions (a smaller participation ratio).
X_probe, y_probe = X_test[:n_probe], y_test[:n_probe]
fisher = {
    name: FisherFlatness(net, dtype=torch.float64, progress=False).fit(X_probe, y_probe)
    for name, net in nets.items()
}
for name, est in fisher.items():
    print(
        f"{name:9s}: score (-mean log tr G) = {est.score(X_probe):6.2f}, participation ratio "
        f"{np.mean(est.participation_ratio_):4.2f}, directions for 90 % of tr G "
        f"{np.mean(est.n_directions_):4.2f} (rank <= C - 1 = 9)"
    )

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
for name, est in fisher.items():
    plot_flatness_spectrum(est, label=name, ax=axes[0])
axes[0].set_title(r"eigenvalues of $G(x)$ (median, 25-75 % band)")
tidy = pd.concat([est.to_frame().assign(network=name) for name, est in fisher.items()])
plot_flatness(tidy, "log_trace", kind="box", x="network", ax=axes[1])
axes[1].set_title(r"$\mathrm{tr}\,G(x)$ over test images")

# %%
# Jacobians layer by layer
# ------------------------
# The squared Frobenius norm of the input Jacobian of each hidden layer and
# of the logits, for both networks.
jac = {
    name: JacobianFlatness(net, layers=["1", "3", "output"], progress=False).fit(X_probe, y_probe)
    for name, net in nets.items()
}
tidy = pd.concat([est.to_frame().assign(network=name) for name, est in jac.items()])
print(tidy.groupby(["network", "layer"])[["log_trace", "participation_ratio"]].mean())
# Modules "1" and "3" are the two tanh layers; name them on the axis.
tidy["layer"] = tidy["layer"].map({"1": "tanh 1", "3": "tanh 2", "output": "logits"})
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
plot_flatness(tidy, "log_trace", kind="box", hue="network", ax=axes[0])
axes[0].set_title(r"$\|J_l(x)\|_F^2$ per layer, over test images")
plot_flatness(tidy[tidy["network"] == "trained"], "participation_ratio", ax=axes[1])
axes[1].set_title("trained net: effective number of input directions")
sns.despine(fig)
plt.show()
