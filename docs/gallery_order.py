"""Reading order of the tutorial gallery (sphinx-gallery's ``within_subsection_order``).

The order of issue 8's list of tutorials: data first, then a model layer by layer, the measures,
the training submodule, robustness, and the whole study. Files not listed follow, by name.
"""

from pathlib import Path

ORDER = (
    "plot_spectrum_cvpca.py",
    "plot_probe.py",
    "plot_weight_spectra.py",
    "plot_weight_kurtosis.py",
    "plot_flatness.py",
    "plot_categorization.py",
    "plot_topology.py",
    "plot_hebbian.py",
    "plot_spectral_sweep.py",
    "plot_cotraining.py",
    "plot_robustness.py",
    "plot_composite_attack.py",
    "plot_spiking.py",
    "plot_attribution.py",
    "plot_study.py",
)


class StoryOrder:
    """Sort key: position in :data:`ORDER`, then file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename) -> tuple[int, str]:
        name = Path(filename).name
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self) -> str:  # sphinx-gallery compares configs through repr
        return "StoryOrder"
