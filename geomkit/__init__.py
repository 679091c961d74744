"""geomkit: the geometry of neural representations, in models and in brains.

The public face: estimators are re-exported here; submodules hold the rest
(:mod:`geomkit.datasets`, :mod:`geomkit.probe`, :mod:`geomkit.measures`,
:mod:`geomkit.train`, :mod:`geomkit.plotting`).
"""

from importlib.metadata import PackageNotFoundError, version

from . import datasets
from .cluster import dask_client
from .measures.kurtosis import WeightKurtosis, weight_kurtosis
from .measures.categorization import CategorizationIndex, CategorySelectivity
from .measures.topology import LevelSetTopology
from .measures.spectrum import (
    PowerLawSpectrum,
    eigenspectrum,
    power_law_exponent,
    smoothness_threshold,
)
from .measures.weight_spectra import weight_spectra
from .moments import MomentAccumulator, Moments
from .sensitivity import FisherFlatness, JacobianFlatness
from .robustness import AdversarialRobustness, GradientMaskingWarning
from .train import HebbianClassifier, NetClassifier

try:
    __version__ = version("geomkit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = [
    "__version__",
    "datasets",
    "dask_client",
    "Moments",
    "MomentAccumulator",
    "FisherFlatness",
    "JacobianFlatness",
    "WeightKurtosis",
    "weight_kurtosis",
    "AdversarialRobustness",
    "GradientMaskingWarning",
    "CategorizationIndex",
    "CategorySelectivity",
    "LevelSetTopology",
    "PowerLawSpectrum",
    "eigenspectrum",
    "power_law_exponent",
    "smoothness_threshold",
    "weight_spectra",
    "NetClassifier",
    "HebbianClassifier",
]
