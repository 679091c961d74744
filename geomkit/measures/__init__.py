"""Array in, numbers out: scikit-learn estimators that need no torch model."""

__all__: list[str] = []
