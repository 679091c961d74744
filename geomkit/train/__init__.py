"""The thin training submodule: models, Hebbian layers, regularizers, classifiers.

- :mod:`~geomkit.train.models`: :class:`MLP`, :class:`SmallCNN` (named layers).
- :mod:`~geomkit.train.hebbian`: :class:`KrotovHopfield`, :class:`SoftHebb`.
- :mod:`~geomkit.train.regularizers`: :class:`SpectralRegularizer`,
  :class:`JacobianRegularizer`, :class:`WeightDecay`, :class:`SaturationPenalty`.
- :mod:`~geomkit.train.cotraining`: :class:`RepresentationalSimilarity`,
  :class:`NeuralPredictionHead` (co-training with recordings).
- :mod:`~geomkit.train.classifiers`: :class:`NetClassifier`,
  :class:`HebbianClassifier` (scikit-learn classifiers).
- :mod:`~geomkit.train.surrogate`: :func:`train_surrogate` (the transfer attack's surrogate).
- :mod:`~geomkit.train.spiking`: :class:`SpikingClassifier` (LIF nets trained with surrogate
  gradients), :class:`MembranePerturbation` (Ding et al.'s stability regularizer).
"""

from .classifiers import HebbianClassifier, HebbianNet, NetClassifier, TrainingDiverged, train_module
from .hebbian import KrotovHopfield, SoftHebb
from .models import MLP, SmallCNN, build_model
from .surrogate import train_surrogate
from .spiking import (
    LIF,
    MembranePerturbation,
    SpikeCount,
    SpikingClassifier,
    SpikingMLP,
    membrane_perturbation,
    spike,
    with_surrogate,
)
from .regularizers import (
    JacobianRegularizer,
    NeuralPredictionHead,
    RepresentationalSimilarity,
    differentiable_similarity,
    Regularizer,
    SaturationPenalty,
    SpectralRegularizer,
    WeightDecay,
    flat_fraction,
    spectral_penalty,
)

__all__ = [
    "MLP",
    "SmallCNN",
    "build_model",
    "KrotovHopfield",
    "SoftHebb",
    "Regularizer",
    "SpectralRegularizer",
    "JacobianRegularizer",
    "WeightDecay",
    "SaturationPenalty",
    "flat_fraction",
    "spectral_penalty",
    "RepresentationalSimilarity",
    "NeuralPredictionHead",
    "differentiable_similarity",
    "NetClassifier",
    "HebbianClassifier",
    "HebbianNet",
    "TrainingDiverged",
    "train_module",
    "train_surrogate",
    "LIF",
    "SpikeCount",
    "SpikingMLP",
    "SpikingClassifier",
    "MembranePerturbation",
    "membrane_perturbation",
    "spike",
    "with_surrogate",
]
