"""Array in, numbers out: scikit-learn estimators that need no torch model."""

from .topology import (
    LevelSetTopology,
    betti_curves,
    contour_signature,
    level_set_persistence,
    peak_count,
    persistence_diagrams,
)

__all__: list[str] = [
    "LevelSetTopology",
    "level_set_persistence",
    "persistence_diagrams",
    "betti_curves",
    "contour_signature",
    "peak_count",
]
