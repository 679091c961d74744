"""Everything that runs a PyTorch model: recording, Jacobians, attacks, tuning maps."""

from .jacobian import JacobianInfo, SaturationWarning, jacobian, jacobian_norm
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
    "jacobian",
    "jacobian_norm",
    "JacobianInfo",
    "SaturationWarning",
]
