"""Everything that runs a PyTorch model: recording, Jacobians, attacks, tuning maps."""

from .jacobian import JacobianFallbackWarning, JacobianInfo, SaturationWarning, jacobian, jacobian_norm
from .attacks import (
    critical_eps,
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
from .extract import (
    extract,
    iter_batches,
    layer_activations,
    layer_moments,
    store_progress,
    unit_dim,
    unstack_units,
)
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
    "unstack_units",
    "iter_batches",
    "unit_dim",
    "store_progress",
    "jacobian",
    "jacobian_norm",
    "JacobianInfo",
    "SaturationWarning",
    "JacobianFallbackWarning",
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
