"""Array in, numbers out: scikit-learn estimators that need no torch model."""

from .kurtosis import WeightKurtosis, excess_kurtosis, l1_l2_ratio, pooled_weight_kurtosis, weight_kurtosis
from .categorization import (
    CategorizationIndex,
    CategorySelectivity,
    categoricality_index,
    category_selectivity,
)
from .spectrum import (
    PowerLawFit,
    PowerLawSpectrum,
    SpectrumWarning,
    cvpca_spectrum,
    eigenspectrum,
    power_law_exponent,
    smoothness_threshold,
)
from .weight_spectra import weight_spectra
from .repeats import split_half
from .topology import (
    LevelSetTopology,
    betti_curves,
    contour_signature,
    level_set_persistence,
    peak_count,
    persistence_diagrams,
)
# comparing representations
from .cka import CKA, cka
from .rsa import RSA, compare_rdms, rdm, rsa
from .compare import compare_layers
from .shape import ShapeMetric, shape_distance
from .cca import canonical_correlations, cca_similarity
from .encoding import EncodingModel, encoding_similarity, noise_ceiling, pearson_per_unit

__all__: list[str] = [
    "PowerLawSpectrum",
    "PowerLawFit",
    "SpectrumWarning",
    "eigenspectrum",
    "cvpca_spectrum",
    "power_law_exponent",
    "smoothness_threshold",
    "weight_spectra",
    "split_half",
    "WeightKurtosis",
    "weight_kurtosis",
    "pooled_weight_kurtosis",
    "excess_kurtosis",
    "l1_l2_ratio",
    "CategorizationIndex",
    "CategorySelectivity",
    "categoricality_index",
    "category_selectivity",
    "LevelSetTopology",
    "level_set_persistence",
    "persistence_diagrams",
    "betti_curves",
    "contour_signature",
    "peak_count",
    # comparing representations
    "CKA",
    "cka",
    "RSA",
    "rsa",
    "rdm",
    "compare_rdms",
    "compare_layers",
    "ShapeMetric",
    "shape_distance",
    "cca_similarity",
    "canonical_correlations",
    "EncodingModel",
    "encoding_similarity",
    "noise_ceiling",
    "pearson_per_unit",
]
