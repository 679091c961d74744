"""The thin training submodule: models, Hebbian layers, regularizers, classifiers."""

__all__: list[str] = []
