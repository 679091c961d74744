"""geomkit: the geometry of neural representations, in models and in brains.

The public face: estimators are re-exported here; submodules hold the rest
(:mod:`geomkit.datasets`, :mod:`geomkit.probe`, :mod:`geomkit.measures`,
:mod:`geomkit.train`, :mod:`geomkit.plotting`).
"""

from importlib.metadata import PackageNotFoundError, version

from . import datasets
from .moments import MomentAccumulator, Moments

try:
    __version__ = version("geomkit")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = [
    "__version__",
    "datasets",
    "Moments",
    "MomentAccumulator",
    "NetClassifier",
    "HebbianClassifier",
]

# torch-backed estimators load on first access, so that `import geomkit` stays light
_LAZY = {"NetClassifier": "train", "HebbianClassifier": "train"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'geomkit' has no attribute {name!r}")
