"""
Weight spectra of a trained network
===================================

Martin & Mahoney (2021, *JMLR* 22:165; *Nature Communications* 12:4122) look
at the eigenvalues of ``W' W`` of every weight matrix ``W`` of a trained
network (its empirical spectral density). For random weights the density is
the Marchenko-Pastur law, with a sharp edge; training grows a heavy,
power-law tail ``p(lambda) ~ lambda ** -a``, and a smaller exponent ``a`` goes
with stronger correlations learnt by the layer (well trained layers have ``a``
between 2 and 6 in their survey). Their WeightWatcher tool fits ``a`` by
maximum likelihood with the ``powerlaw`` package, the tail start ``x_min``
chosen by the smallest Kolmogorov-Smirnov distance (Clauset et al. 2009).

:func:`geomkit.measures.weight_spectra.weight_spectra` returns that fit, with
norms and the stable rank, as one tidy row per Linear / Conv layer. Here we
compare a small MLP before and after training on MNIST digits.
"""

import os

import matplotlib.pyplot as plt
import torch
from torch import nn

from geomkit.datasets import load_mnist5k
from geomkit.measures.weight_spectra import weight_spectra
from geomkit.plotting import plot_weight_spectra
from geomkit.train import MLP

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
torch.manual_seed(0)
torch.set_num_threads(1)  # a small model: one thread is fastest

X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2, random_state=0)
sizes = (784, 200, 150, 10) if SMALL else (784, 800, 400, 10)

# %%
# The same network at initialization and after training
# -----------------------------------------------------
initial = MLP(sizes)
trained = MLP(sizes)
trained.load_state_dict(initial.state_dict())

xb, yb = torch.from_numpy(X_train), torch.from_numpy(y_train)
optimizer = torch.optim.Adam(trained.parameters(), lr=1e-3)
for epoch in range(4 if SMALL else 40):
    for idx in torch.randperm(len(xb)).split(32):
        optimizer.zero_grad()
        nn.functional.cross_entropy(trained(xb[idx]), yb[idx]).backward()
        optimizer.step()
with torch.no_grad():
    accuracy = (trained(torch.from_numpy(X_test)).argmax(1).numpy() == y_test).mean()
print(f"test accuracy after training: {accuracy:.3f}")

# %%
# One row per weight layer
# ------------------------
# ``alpha`` is the density exponent ``a`` of the tail (WeightWatcher's
# ``alpha``), ``alpha_rank = 1 / (a - 1)`` the same tail as a rank exponent,
# ``n_tail`` the eigenvalues at or above ``xmin``, ``stable_rank`` is
# ``sum(lambda) / lambda_max``, ``alpha_weighted`` is ``a * log10(lambda_max)``
# and ``log_norm`` the ``log10`` of the squared Frobenius norm.
columns = ["layer", "shape", "alpha", "xmin", "ks_distance", "n_tail", "stable_rank",
           "alpha_weighted", "log_norm"]
before = weight_spectra(initial, progress=False)
after = weight_spectra(trained, progress=False)
print("at initialization:")
print(before[columns].round(3).to_string(index=False))
print("after training:")
print(after[columns].round(3).to_string(index=False))

# %%
# The output layer has only 10 eigenvalues, too few for a tail fit to mean
# much. At initialization the weights are random: their eigenvalues fill a
# Marchenko-Pastur bulk with a sharp upper edge, which the tail fit can only
# describe by a steep exponent and a large KS distance (there is no power law to
# find). Training spreads the largest eigenvalues far beyond that bulk:
# ``lambda_max`` and the norm grow, the stable rank falls, and the tail becomes
# a power law with a smaller exponent and a smaller KS distance.
hidden = after["layer"].str.startswith("hidden")
for (_, b), (_, a) in zip(before[hidden].iterrows(), after[hidden].iterrows()):
    print(f"{a['layer']}: lambda_max {b['lambda_max']:.2f} -> {a['lambda_max']:.2f}, "
          f"stable rank {b['stable_rank']:.1f} -> {a['stable_rank']:.1f}, "
          f"alpha {b['alpha']:.2f} -> {a['alpha']:.2f}")

# %%
# The figure draws each hidden layer's eigenvalues as a complementary CDF
# (the fraction of eigenvalues at or above ``lambda``; a power-law density
# ``lambda ** -a`` is a straight line of slope ``1 - a`` on log-log axes) and
# the fitted tail as a dashed line from ``x_min`` on.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
hidden_layers = list(after.loc[hidden, "layer"])
plot_weight_spectra(before, ax=axes[0], layers=hidden_layers)
axes[0].set_title("at initialization")
plot_weight_spectra(after, ax=axes[1], layers=hidden_layers)
axes[1].set_title(f"after training (test accuracy {accuracy:.2f})")
fig.tight_layout()
