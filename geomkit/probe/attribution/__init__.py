"""Attributions of a network's decisions to its inputs and concepts, and attacks on them.

* :mod:`~geomkit.probe.attribution.methods` — :func:`attribute`: saliency,
  integrated gradients and DeepLIFT through captum (``pip install
  geomkit[attribution]``);
* :mod:`~geomkit.probe.attribution.metrics` — how far two attribution maps
  are apart: top-k intersection, Spearman rank correlation, centre-of-mass shift;
* :mod:`~geomkit.probe.attribution.fragility` — the fragility attack of
  Ghorbani, Abid & Zou (2019): same label, different explanation, measured
  against random noise of the same size;
* :mod:`~geomkit.probe.attribution.concepts` — concept activation vectors, TCAV
  scores (Kim et al. 2018) and an attack that moves them.
"""

from .concepts import concept_activation_vector, concept_sensitivity, tcav_attack, tcav_score
from .fragility import DIFFERENTIABLE_METHODS, OBJECTIVES, attribution_fragility, fragility_attack, smoothed_relu
from .methods import METHODS, attribute
from .metrics import center_of_mass_shift, rank_correlation, topk_intersection

__all__ = [
    "attribute",
    "METHODS",
    "topk_intersection",
    "rank_correlation",
    "center_of_mass_shift",
    "fragility_attack",
    "attribution_fragility",
    "smoothed_relu",
    "DIFFERENTIABLE_METHODS",
    "OBJECTIVES",
    "concept_activation_vector",
    "concept_sensitivity",
    "tcav_score",
    "tcav_attack",
]
