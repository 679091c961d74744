"""Everything that runs a PyTorch model: recording, Jacobians, attacks, tuning maps."""

from .jacobian import JacobianFallbackWarning, JacobianInfo, SaturationWarning, jacobian, jacobian_norm
from .attacks import (
    Attack,
    AutoAttack,
    NormalizedModel,
    critical_eps,
    make_attack,
    register_attack,
    fgsm,
    input_gradient,
    noise_attack,
    pgd,
    predict_labels,
    robust_accuracy,
    train_surrogate,
    transfer_attack,
    zero_gradient_fraction,
)
from .extract import extract, iter_batches, layer_activations, layer_moments, unit_dim
from .morph import categorization_by_layer, morph_profile, morph_profiles
from .recorder import Recorder, default_layer_filter, resolve_layers
from .tuning import pca_directions, stimulus_directions, tuning_map

__all__ = [
    "Recorder",
    "resolve_layers",
    "default_layer_filter",
    "extract",
    "layer_moments",
    "layer_activations",
    "iter_batches",
    "unit_dim",
    "jacobian",
    "jacobian_norm",
    "JacobianInfo",
    "SaturationWarning",
    "JacobianFallbackWarning",
    "Attack",
    "AutoAttack",
    "NormalizedModel",
    "make_attack",
    "register_attack",
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
    "categorization_by_layer",
    "morph_profile",
    "morph_profiles",
    "tuning_map",
    "stimulus_directions",
    "pca_directions",
]
