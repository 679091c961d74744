"""Everything that runs a PyTorch model: recording, Jacobians, attacks, tuning maps."""

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
from .extract import extract, iter_batches, layer_activations, layer_moments, unit_dim
from .recorder import Recorder, default_layer_filter, resolve_layers

__all__ = [
    "Recorder",
    "resolve_layers",
    "default_layer_filter",
    "extract",
    "layer_moments",
    "layer_activations",
    "iter_batches",
    "unit_dim",
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
]
