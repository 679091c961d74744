"""
Spiking nets: surrogate gradients, spike counts and honest attacks
==================================================================

A spiking net of leaky integrate-and-fire (LIF) neurons sees an MNIST digit
as spike trains (each pixel fires with its intensity as probability, in every
time step) and answers with the firing rates of its hidden layer. Its spikes
are steps, so it is trained, and attacked, through a *surrogate gradient*.

This tutorial trains one next to the ANN of the same width, records its
spikes with a ``time`` axis and its spike counts, attacks it through the
surrogate, checks that the surrogate does not mask the attack (other
surrogate shapes, Square, transfer from the ANN), and trains it with the
membrane-perturbation stability regularizer of Ding et al. (2024).
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from geomkit.datasets import load_mnist5k
from geomkit.probe import extract, layer_activations, unstack_units
from geomkit.robustness import AdversarialRobustness, surrogate_gradient_check
from geomkit.train import MLP, MembranePerturbation, NetClassifier, SpikingClassifier

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"
N_TRAIN, N_TEST, EPOCHS = (600, 200, 2) if SMALL else (1500, 400, 3)

X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2, random_state=0)
X_train, y_train, X_test, y_test = X_train[:N_TRAIN], y_train[:N_TRAIN], X_test[:N_TEST], y_test[:N_TEST]

# %%
# A spiking net and its ANN
# -------------------------
# ``SpikingClassifier`` runs ``n_steps`` time steps of ``fc1 -> lif1`` and
# reads the class out of the spike counts of ``lif1`` (``count1``) with a
# linear layer. In training every pixel is a Bernoulli spike train; for
# predictions (and attacks) the net sees its expected value, a constant
# current, so its forward pass is deterministic.

snn = SpikingClassifier(hidden_sizes=(128,), n_steps=8, epochs=EPOCHS, random_state=0, progress=False)
snn.fit(X_train, y_train)
ann = NetClassifier(module=MLP((784, 128, 10)), epochs=EPOCHS, lr=2e-3, random_state=0, progress=False)
ann.fit(X_train, y_train)
print(f"test accuracy: SNN {snn.score(X_test, y_test):.3f}, ANN {ann.score(X_test, y_test):.3f}")

# %%
# Spikes have a time axis
# -----------------------
# :func:`~geomkit.probe.extract` records the LIF layer's spikes, (stimulus,
# time x neuron) with ``time`` and ``neuron`` coordinates, which
# :func:`~geomkit.probe.unstack_units` turns into dimensions; ``count1`` holds
# their sum over time, the representation the measures see.

ds = extract(snn.module_, X_test[:50], ["lif1", "count1"], progress=False)
spikes = unstack_units(layer_activations(ds, "lif1"))
counts = layer_activations(ds, "count1")
print(spikes.dims, dict(spikes.sizes))
assert (spikes.sum("time").values == counts.values).all()

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
t, n = np.nonzero(spikes.isel(stimulus=0).values)
axes[0].scatter(t, n, marker="|", s=30)
axes[0].set(xlabel="time step", ylabel="neuron", title=f"spikes of lif1 (a '{y_test[0]}')")
axes[1].hist(counts.values.ravel(), bins=np.arange(10) - 0.5)
axes[1].set(xlabel="spike count over 8 steps", ylabel="neurons x stimuli", title="count1", yscale="log")

# %%
# Attacks through the surrogate, and the masking check
# ----------------------------------------------------
# Every geomkit attack works on the spiking module: it differentiates the
# forward pass, whose spikes pass the surrogate gradient back through time.
# A robust-looking result could come from a surrogate that hides the
# gradient, so :func:`~geomkit.robustness.surrogate_gradient_check` also
# attacks through other surrogate shapes (same spikes, other gradients), with
# the gradient-free Square attack and by transfer from the ANN, and warns
# when one of them beats PGD through the training surrogate.

eps = [0.03, 0.1, 0.2]
check = surrogate_gradient_check(snn.module_, X_test[:100], y_test[:100], eps=eps, ann=ann.module_,
                                 steps=10, n_queries=50 if SMALL else 200)
print(check.pivot(index="attack", columns="eps", values="robust_accuracy").round(2))

# %%
# The robustness estimator's own checks (deterministic forward, zero
# gradients, white-box vs gradient-free) run on it as on any classifier.

est = AdversarialRobustness(snn.module_, attacks=("fgsm", "pgd", "square", "transfer"), eps=eps, steps=10,
                            surrogate=ann.module_, compute_critical_eps=False, progress=False,
                            attack_params={"square": {"n_queries": 50 if SMALL else 200}})
est.fit(X_test[:100], y_test[:100])
print(est.diagnostics_[["check", "status"]].to_string(index=False))

# %%
# The membrane-perturbation regularizer
# -------------------------------------
# Ding et al. (2024) bound how far an input perturbation moves the membrane
# potentials by the spike-free perturbation dynamics
# ``Y_t = beta Y_{t-1} + delta_t`` of the input currents, and penalize its mean
# square for Gaussian input noise. With oscillating neurons (``omega``) the
# same term follows their rotating membrane.

regularized = {
    "LIF": snn,
    "LIF + MPPD": SpikingClassifier(hidden_sizes=(128,), n_steps=8, epochs=EPOCHS, random_state=0, progress=False,
                                    regularizers=MembranePerturbation(strength=0.05, noise_std=0.2)),
    "oscillating + MPPD": SpikingClassifier(hidden_sizes=(128,), n_steps=8, epochs=EPOCHS, omega=0.5,
                                            random_state=0, progress=False,
                                            regularizers=MembranePerturbation(strength=0.05, noise_std=0.2)),
}
fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
for name, clf in regularized.items():
    if name != "LIF":
        clf.fit(X_train, y_train)
    curve = surrogate_gradient_check(clf.module_, X_test[:100], y_test[:100], eps=eps, other_surrogates=("atan",),
                                     steps=10, n_queries=50)
    worst = curve.groupby("eps")["robust_accuracy"].min()
    ax.plot(worst.index, worst.values, "o-", label=f"{name} (clean {clf.score(X_test, y_test):.2f})")
# The worst case over PGD through the training surrogate and through atan: on the regularized nets
# the atan surrogate is the stronger attack (the check warns), so a robustness curve drawn with the
# training surrogate alone would flatter them.
ax.set(xlabel="eps (L-inf)", ylabel="robust accuracy, strongest attack", ylim=(0, 1))
ax.legend()
plt.show()
