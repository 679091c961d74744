"""Adversarial robustness of a classifier, with checks that catch gradient masking.

:class:`AdversarialRobustness` (in :mod:`geomkit.robustness.estimator`) sweeps
attacks x eps on the inputs a model classifies correctly; the checks of
:mod:`geomkit.robustness.diagnostics` read the numbers of the sweep the way
Carlini et al. (2019) and Athalye, Carlini & Wagner (2018) ask. The saturated
networks that once looked robust (Nayebi & Ganguli 2017) fail these checks:
their robustness came from numerically vanishing gradients (Brendel & Bethge
2017, arXiv 1704.01547).
"""

from .diagnostics import (  # noqa: F401  (the private checks, for tests of made-up curves)
    SweepResult,
    _check_black_box,
    _check_iterative,
    _check_monotone,
    _check_reaches_zero,
    _check_zero_gradient,
    _diagnostics,
    diagnose,
)
from .estimator import (  # noqa: F401
    ATTACKS,
    DEFAULT_ATTACKS,
    AdversarialRobustness,
    GradientMaskingWarning,
    _parse_attack,
    robustness_auc,
)
from .surrogate_check import surrogate_gradient_check

__all__ = ["AdversarialRobustness", "GradientMaskingWarning", "robustness_auc", "ATTACKS",
           "SweepResult", "diagnose", "surrogate_gradient_check"]
