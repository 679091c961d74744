"""Seaborn figures of every geomkit result type.

One module per result type (``spectrum``, ``sensitivity``, ``categorization``,
``topology``, ``training``, ``robustness``); every public function is
re-exported here and returns the matplotlib ``Axes`` (or ``Figure``) it drew on.
"""

from .training import (
    plot_hebbian_convergence,
    plot_receptive_fields,
    plot_spectral_targets,
    plot_training_history,
)

__all__: list[str] = [
    "plot_training_history",
    "plot_hebbian_convergence",
    "plot_receptive_fields",
    "plot_spectral_targets",
]
