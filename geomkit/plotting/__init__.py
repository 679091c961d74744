"""Seaborn figures of every geomkit result type.

One module per result type (``spectrum``, ``sensitivity``, ``categorization``,
``topology``, ``training``, ``robustness``); every public function is
re-exported here and returns the matplotlib ``Axes`` (or ``Figure``) it drew on.
"""

from .robustness import plot_critical_eps, plot_robust_accuracy

__all__: list[str] = [
    "plot_robust_accuracy",
    "plot_critical_eps",
]
