"""Array in, numbers out: scikit-learn estimators that need no torch model."""

from .kurtosis import WeightKurtosis, excess_kurtosis, l1_l2_ratio, weight_kurtosis

__all__: list[str] = [
    "WeightKurtosis",
    "weight_kurtosis",
    "excess_kurtosis",
    "l1_l2_ratio",
]
