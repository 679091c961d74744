"""Adversarial attacks on PyTorch classifiers, and the baselines that expose gradient masking.

One module per family, each an :class:`~geomkit.probe.attacks.base.Attack`
subclass (parameters validated once, ``perturb(model, X, y) -> X_adv``) and,
for the original attacks, a function form:

* :mod:`~geomkit.probe.attacks.pgd` — FGSM (Goodfellow et al. 2015) and PGD
  (Madry et al. 2018), L-inf and L2, cross-entropy or logit-margin loss,
  untargeted or targeted;
* :mod:`~geomkit.probe.attacks.apgd` — APGD-CE, APGD-DLR and APGD-T (Croce & Hein 2020);
* :mod:`~geomkit.probe.attacks.fab` — FAB-T, the targeted minimal-norm attack;
* :mod:`~geomkit.probe.attacks.square` — Square, the query-based black-box attack;
* :mod:`~geomkit.probe.attacks.autoattack` — the AutoAttack "standard" ensemble;
* :mod:`~geomkit.probe.attacks.composite` — CAA, the composite semantic attack
  (Hsiung et al. 2023), whose differentiable rotation, translation, brightness,
  contrast and blur live in :mod:`~geomkit.probe.attacks.semantic`;
* :mod:`~geomkit.probe.attacks.noise`, :mod:`~geomkit.probe.attacks.transfer` —
  gradient-free baselines;
* :mod:`~geomkit.probe.attacks.wrappers` — :class:`NormalizedModel` (eps in
  pixel space for a model that normalizes its input) and the randomized-forward check;
* :mod:`~geomkit.probe.attacks.evaluate` — predictions, input gradients,
  robust accuracy, per-input critical eps;
* :mod:`~geomkit.probe.attacks.registry` — ``make_attack("apgd-ce")``.

White-box attacks follow the input gradient of a loss computed from the
model's **logits** (never from probabilities). Gradient-free baselines
(noise, transfer, Square) must never beat the white-box attacks; when they do,
the white-box gradients are masked (Athalye, Carlini, Wagner 2018; Carlini et
al. 2019). Every attack takes the model as it is and leaves it so: eval mode
and parameter gradients off during the attack, flags restored afterwards (also
on error). Attacks run on the model's device, in batches of ``batch_size``.
"""

from ..._backend import model_device  # noqa: F401  (kept for code that reached it here)
from ._checks import NORMS, _as_input, _as_labels, _check_bounds, _check_norm, _model_dtype, _seed  # noqa: F401
from ._checks import _check_batch_size, _Target  # noqa: F401
from ._losses import margin
from .apgd import APGD, APGDT
from .autoattack import AutoAttack
from .base import Attack, BatchContext
from .composite import CompositeAttack, composite_robust_accuracy
from .evaluate import _bisect, critical_eps, input_gradient, predict_labels, robust_accuracy  # noqa: F401
from .evaluate import zero_gradient_fraction
from .fab import FAB
from .noise import NoiseAttack, noise_attack
from .pgd import FGSM, PGD, STEP_FACTOR, fgsm, pgd
from .registry import attack_spec, available_attacks, make_attack, register_attack
from .square import Square
from .transfer import TransferAttack, train_surrogate, transfer_attack
from .wrappers import NormalizedModel, randomized_forward

LOSSES = ("ce", "margin")

__all__ = [
    "Attack",
    "BatchContext",
    "FGSM",
    "PGD",
    "APGD",
    "APGDT",
    "FAB",
    "Square",
    "AutoAttack",
    "CompositeAttack",
    "composite_robust_accuracy",
    "NoiseAttack",
    "TransferAttack",
    "NormalizedModel",
    "randomized_forward",
    "make_attack",
    "register_attack",
    "available_attacks",
    "attack_spec",
    "fgsm",
    "pgd",
    "noise_attack",
    "transfer_attack",
    "train_surrogate",
    "critical_eps",
    "robust_accuracy",
    "predict_labels",
    "input_gradient",
    "zero_gradient_fraction",
    "margin",
    "NORMS",
    "LOSSES",
    "STEP_FACTOR",
]

for _name, _cls, _defaults in [
    ("fgsm", FGSM, {}),
    ("fgsm-margin", FGSM, {"loss": "margin"}),
    ("fgsm-f64", FGSM, {"dtype": "float64"}),
    ("pgd", PGD, {}),
    ("pgd-margin", PGD, {"loss": "margin"}),
    ("pgd-f64", PGD, {"dtype": "float64"}),
    ("pgd-margin-f64", PGD, {"loss": "margin", "dtype": "float64"}),
    ("pgd-t", PGD, {"targeted": True}),
    ("pgd-margin-t", PGD, {"loss": "margin", "targeted": True}),
    ("apgd-ce", APGD, {"loss": "ce"}),
    ("apgd-dlr", APGD, {"loss": "dlr"}),
    ("apgd-t", APGDT, {}),
    ("fab-t", FAB, {}),
    ("square", Square, {}),
    ("autoattack", AutoAttack, {}),
    ("caa", CompositeAttack, {}),
    ("caa-fixed", CompositeAttack, {"order": "fixed", "rounds": 1}),
    ("caa-random", CompositeAttack, {"order": "random"}),
    ("noise", NoiseAttack, {}),
    ("noise-uniform", NoiseAttack, {"distribution": "uniform"}),
    ("noise-gaussian", NoiseAttack, {"distribution": "gaussian"}),
    ("transfer", TransferAttack, {}),
    ("transfer-margin", TransferAttack, {"loss": "margin"}),
]:
    register_attack(_name, _cls, **_defaults)
del _name, _cls, _defaults
