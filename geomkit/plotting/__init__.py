"""Seaborn figures of every geomkit result type.

One module per result type (``spectrum``, ``sensitivity``, ``categorization``,
``topology``, ``training``, ``robustness``, ``study``); every public function is
re-exported here and returns the matplotlib ``Axes`` (or ``Figure``) it drew on;
``study_figures`` returns every figure of a study's report with its caption.
"""

from .robustness import plot_critical_eps, plot_robust_accuracy
from .spectrum import plot_spectrum, plot_weight_spectra
from .sensitivity import plot_flatness, plot_flatness_spectrum, plot_weight_kurtosis
from .categorization import plot_categorization_by_layer, plot_morph_profile, plot_selectivity
from .topology import (
    plot_betti_curves,
    plot_contour_signature,
    plot_persistence_diagram,
    plot_tuning_map,
)
from .training import (
    plot_hebbian_convergence,
    plot_receptive_fields,
    plot_spectral_targets,
    plot_training_history,
)
from .study import study_figures
# comparing representations
from .compare import plot_layer_similarity

__all__: list[str] = [
    "plot_spectrum",
    "plot_weight_spectra",
    "plot_flatness",
    "plot_flatness_spectrum",
    "plot_weight_kurtosis",
    "plot_robust_accuracy",
    "plot_critical_eps",
    "plot_categorization_by_layer",
    "plot_morph_profile",
    "plot_selectivity",
    "plot_persistence_diagram",
    "plot_betti_curves",
    "plot_contour_signature",
    "plot_tuning_map",
    "plot_training_history",
    "plot_hebbian_convergence",
    "plot_receptive_fields",
    "plot_spectral_targets",
    "study_figures",
    # comparing representations
    "plot_layer_similarity",
]
