"""Seaborn figures of every geomkit result type.

One module per result type (``spectrum``, ``sensitivity``, ``categorization``,
``topology``, ``training``, ``robustness``, ``study``); every public function is
re-exported here and returns the matplotlib ``Axes`` (or ``Figure``) it drew on.
"""

from .robustness import plot_critical_eps, plot_robust_accuracy
from .sensitivity import plot_flatness, plot_flatness_spectrum, plot_weight_kurtosis

__all__: list[str] = [
    "plot_flatness",
    "plot_flatness_spectrum",
    "plot_weight_kurtosis",
    "plot_robust_accuracy",
    "plot_critical_eps",
]
