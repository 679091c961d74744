"""Everything that runs a PyTorch model: recording, Jacobians, attacks, tuning maps."""

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
    "categorization_by_layer",
    "morph_profile",
    "morph_profiles",
    "tuning_map",
    "stimulus_directions",
    "pca_directions",
]
