"""geomkit: the geometry of neural representations, in models and in brains.

The public face: estimators are re-exported here; submodules hold the rest
(:mod:`geomkit.datasets`, :mod:`geomkit.probe`, :mod:`geomkit.measures`,
:mod:`geomkit.train`, :mod:`geomkit.plotting`).

The names are imported on first use (a module-level ``__getattr__``), so that
``import geomkit`` and ``geomkit --help`` do not pay for torch, scikit-learn
and xarray; ``from geomkit import PowerLawSpectrum`` works as usual.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("geomkit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

# public name -> the module that defines it (imported when the name is first looked up)
_LAZY = {
    "dask_client": ".cluster",
    "WeightKurtosis": ".measures.kurtosis",
    "weight_kurtosis": ".measures.kurtosis",
    "CategorizationIndex": ".measures.categorization",
    "CategorySelectivity": ".measures.categorization",
    "LevelSetTopology": ".measures.topology",
    "PowerLawSpectrum": ".measures.spectrum",
    "eigenspectrum": ".measures.spectrum",
    "power_law_exponent": ".measures.spectrum",
    "smoothness_threshold": ".measures.spectrum",
    "weight_spectra": ".measures.weight_spectra",
    "MomentAccumulator": ".moments",
    "Moments": ".moments",
    "FisherFlatness": ".sensitivity",
    "JacobianFlatness": ".sensitivity",
    "AdversarialRobustness": ".robustness",
    "GradientMaskingWarning": ".robustness",
    "HebbianClassifier": ".train",
    "NetClassifier": ".train",
    "SpikingClassifier": ".train",
}
# subpackages and modules reachable as attributes of ``geomkit`` after ``import geomkit``
_SUBMODULES = ("datasets", "probe", "measures", "train", "plotting", "study", "report", "cli",
               "moments", "sensitivity", "robustness", "cluster")

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from . import datasets
    from .cluster import dask_client
    from .measures.categorization import CategorizationIndex, CategorySelectivity
    from .measures.kurtosis import WeightKurtosis, weight_kurtosis
    from .measures.spectrum import PowerLawSpectrum, eigenspectrum, power_law_exponent, smoothness_threshold
    from .measures.topology import LevelSetTopology
    from .measures.weight_spectra import weight_spectra
    from .moments import MomentAccumulator, Moments
    from .robustness import AdversarialRobustness, GradientMaskingWarning
    from .sensitivity import FisherFlatness, JacobianFlatness
    from .train import HebbianClassifier, NetClassifier, SpikingClassifier


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'geomkit' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


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
    "SpikingClassifier",
]
