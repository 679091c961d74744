"""Weight kurtosis: how heavy-tailed a layer's weights are.

Nayebi & Ganguli 2017 ("Biologically inspired protection of deep networks
from adversarial attacks", arXiv:1703.09202) use the excess kurtosis of all
weights of a layer (Fisher's definition, ``scipy.stats.kurtosis(w.ravel(),
fisher=True)``): Gaussian 0, Laplace 3, uniform -1.2. For a linear score
w . x, an FGSM step eps * sign(w) moves the score by eps ||w||_1, against
eps ||w||_2 for the worst L2 step of the same size; so heavy-tailed weights
(small ||w||_1 / ||w||_2) are harder to attack. Both numbers are reported,
the l1/l2 ratio also normalized by sqrt(n) (1 for constant magnitudes;
sqrt(2/pi) ~ 0.798 Gaussian, 1/sqrt(2) ~ 0.707 Laplace, sqrt(3)/2 ~ 0.866
uniform).

This module needs no torch: a model is only asked for ``named_modules()``.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import as_float_array, to_numpy

__all__ = ["excess_kurtosis", "l1_l2_ratio", "weight_kurtosis", "pooled_weight_kurtosis", "WeightKurtosis"]


def excess_kurtosis(weights: Any, *, fisher: bool = True, bias: bool = True) -> float:
    """Kurtosis of all entries of a weight array (any shape), in float64.

    Parameters
    ----------
    weights : array-like or torch.Tensor of any shape
        Flattened before use.
    fisher : bool, default=True
        Excess kurtosis (Gaussian 0); ``False`` gives Pearson's (Gaussian 3).
    bias : bool, default=True
        As in :func:`scipy.stats.kurtosis`: ``False`` corrects for
        statistical bias.

    Returns
    -------
    float
        NaN, with a warning, when all entries are equal.

    Examples
    --------
    >>> round(excess_kurtosis([-1.0, 1.0]), 6)
    -2.0
    """
    w = as_float_array(weights, "weights").ravel()
    if np.ptp(w) == 0:
        warnings.warn(
            f"all {w.size} weights are equal ({w[0]}); their kurtosis is undefined (NaN).",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    from scipy import stats  # imported here: scipy.stats takes seconds to import

    return float(stats.kurtosis(w, fisher=fisher, bias=bias))


def l1_l2_ratio(weights: Any, *, normalized: bool = False) -> float:
    """||w||_1 / ||w||_2 of all entries (divided by sqrt(n) when ``normalized``).

    The FGSM sensitivity of a linear score w . x relative to the worst L2
    step of the same size.

    Parameters
    ----------
    weights : array-like or torch.Tensor of any shape
        Flattened before use.
    normalized : bool, default=False
        Divide by sqrt(n_entries), so that the ratio lies in [1/sqrt(n), 1]
        (1: all entries of equal magnitude).

    Returns
    -------
    float
        NaN when all entries are zero.

    Examples
    --------
    >>> l1_l2_ratio([3.0, 4.0])
    1.4
    """
    w = as_float_array(weights, "weights").ravel()
    l2 = float(np.linalg.norm(w))
    if l2 == 0:
        return float("nan")
    ratio = float(np.abs(w).sum()) / l2
    return ratio / np.sqrt(w.size) if normalized else ratio


def _row(name: str, kind: str, w: np.ndarray) -> dict[str, Any]:
    return {
        "layer": name,
        "module": kind,
        "n_weights": int(w.size),
        "kurtosis": excess_kurtosis(w),
        "l1_l2_ratio": l1_l2_ratio(w),
        "l1_l2_normalized": l1_l2_ratio(w, normalized=True),
    }


def _weight_modules(model: Any) -> dict[str, Any]:
    """Modules owning a parameter ``weight`` with >= 2 dimensions (Linear, Conv, Embedding...)."""
    found = {}
    for name, module in model.named_modules():
        w = getattr(module, "_parameters", {}).get("weight")
        if w is not None and w.ndim >= 2:
            found[name] = module
    return found


def _layer_weights(model: Any, layers: Any, include_bias: bool) -> dict[str, tuple[str, np.ndarray]]:
    """Each selected layer's module type and its weights (with the bias if asked), flat, float64."""
    if isinstance(model, dict):
        arrays = {str(k): (type(v).__name__, [to_numpy(v, f"model[{k!r}]")]) for k, v in model.items()}
    elif hasattr(model, "named_modules"):
        arrays = {}
        for name, module in _weight_modules(model).items():
            tensors = [module.weight]
            bias = getattr(module, "_parameters", {}).get("bias")
            if include_bias and bias is not None:
                tensors.append(bias)
            arrays[name] = (type(module).__name__, [to_numpy(t, f"weights of layer {name!r}") for t in tensors])
    else:
        raise TypeError(
            "model must be a torch.nn.Module or a dict of named weight arrays; got "
            f"{type(model).__name__}. For one array use excess_kurtosis or WeightKurtosis."
        )
    if layers is not None:
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in names if n not in arrays]
        if unknown:
            hints = [
                f"{n!r} (closest: {difflib.get_close_matches(n, list(arrays), n=3, cutoff=0.5) or 'none'})"
                for n in unknown
            ]
            raise ValueError(
                f"unknown weight layer(s): {'; '.join(hints)}. Layers with weights: {list(arrays)}."
            )
        arrays = {n: arrays[n] for n in names}
    if not arrays:
        raise ValueError("the model has no layer with a weight matrix (a 'weight' of >= 2 dims).")
    return {
        n: (kind, np.concatenate([a.astype(np.float64).ravel() for a in ws]))
        for n, (kind, ws) in arrays.items()
    }


def weight_kurtosis(model: Any, *, layers: Any = None, include_bias: bool = False):
    """Excess kurtosis and l1/l2 ratio of each layer's weights, one row per layer.

    The value over all layers' weights together is a different quantity (it
    mixes layers of different scales) and comes from
    :func:`pooled_weight_kurtosis`, so that every row of this table is a layer.

    Parameters
    ----------
    model : torch.nn.Module or dict of str to array-like
        A model (its modules with a weight of two or more dimensions: Linear,
        Conv, Embedding, ...), or named weight arrays.
    layers : None, str or list of str, default=None
        Module names to include; ``None``: all weight layers.
    include_bias : bool, default=False
        Pool each layer's bias with its weights (biases are excluded by
        default, as in Nayebi & Ganguli 2017).

    Returns
    -------
    pandas.DataFrame
        One row per layer; columns ``layer``, ``module``, ``n_weights``,
        ``kurtosis`` (excess, Fisher), ``l1_l2_ratio``, ``l1_l2_normalized``.

    See Also
    --------
    pooled_weight_kurtosis : the same statistics over all included weights together.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(50, 40), torch.nn.ReLU(), torch.nn.Linear(40, 3))
    >>> table = weight_kurtosis(net)
    >>> list(table["layer"])
    ['0', '2']
    """
    import pandas as pd

    flat = _layer_weights(model, layers, include_bias)
    return pd.DataFrame([_row(n, kind, w) for n, (kind, w) in flat.items()])


def pooled_weight_kurtosis(model: Any, *, layers: Any = None, include_bias: bool = False):
    """Excess kurtosis and l1/l2 ratio of all included layers' weights pooled together.

    Parameters
    ----------
    model : torch.nn.Module or dict of str to array-like
        As in :func:`weight_kurtosis`.
    layers : None, str or list of str, default=None
        Module names to pool; ``None``: all weight layers.
    include_bias : bool, default=False
        Pool each layer's bias with its weights.

    Returns
    -------
    pandas.Series
        ``layer="pooled"``, ``module="all"``, ``n_weights``, ``kurtosis``,
        ``l1_l2_ratio``, ``l1_l2_normalized`` and ``layers`` (the pooled
        layers' names, comma-separated).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(50, 40), torch.nn.ReLU(), torch.nn.Linear(40, 3))
    >>> pooled = pooled_weight_kurtosis(net)
    >>> int(pooled["n_weights"]), pooled["layers"]
    (2120, '0,2')
    """
    import pandas as pd

    flat = _layer_weights(model, layers, include_bias)
    row = _row("pooled", "all", np.concatenate([w for _, w in flat.values()]))
    row["layers"] = ",".join(flat)
    return pd.Series(row, name="pooled")


class WeightKurtosis(BaseEstimator):
    """Kurtosis and l1/l2 ratio of a weight array, as a scikit-learn estimator.

    Works on anything: a weight matrix, a conv kernel (any number of
    dimensions), a weight vector. All entries are pooled.

    Parameters
    ----------
    fisher : bool, default=True
        Excess kurtosis (Gaussian 0, Laplace 3, uniform -1.2); ``False``:
        Pearson's (add 3).
    bias : bool, default=True
        ``False`` corrects for statistical bias (:func:`scipy.stats.kurtosis`).

    Attributes
    ----------
    kurtosis_ : float
    l1_l2_ratio_ : float
        ||w||_1 / ||w||_2.
    l1_l2_normalized_ : float
        ``l1_l2_ratio_ / sqrt(n_weights_)``.
    n_weights_ : int
    n_features_in_ : int
        ``X.shape[1]`` for arrays of two or more dimensions (absent for 1-D).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> est = WeightKurtosis().fit(rng.laplace(size=(300, 300)))
    >>> round(est.kurtosis_)
    3
    """

    def __init__(self, *, fisher: bool = True, bias: bool = True):
        self.fisher = fisher
        self.bias = bias

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    def _validate(self, X, reset: bool) -> np.ndarray:
        W = validate_data(
            self, X, reset=reset, ensure_2d=False, allow_nd=True, dtype=np.float64,
            ensure_min_samples=1,
        )
        # validate_data skips the feature count when ensure_2d=False: do it here, for n-d only.
        width = W.shape[1] if W.ndim >= 2 else None
        if reset:
            if width is None:
                self.__dict__.pop("n_features_in_", None)
            else:
                self.n_features_in_ = width
        elif hasattr(self, "n_features_in_") and width != self.n_features_in_:
            raise ValueError(
                f"X has {width if width is not None else 'no'} features, but "
                f"{type(self).__name__} is expecting {self.n_features_in_} features as input "
                f"(the trailing shape seen in fit); got shape {W.shape}."
            )
        return W

    def fit(self, X: Any, y: Any = None):
        """Compute the statistics of all entries of X.

        Parameters
        ----------
        X : array-like of any shape
            The weights.
        y : ignored

        Returns
        -------
        self
        """
        W = self._validate(X, reset=True)
        self.kurtosis_ = excess_kurtosis(W, fisher=self.fisher, bias=self.bias)
        self.l1_l2_ratio_ = l1_l2_ratio(W)
        self.l1_l2_normalized_ = l1_l2_ratio(W, normalized=True)
        self.n_weights_ = int(W.size)
        return self

    def score(self, X: Any, y: Any = None) -> float:
        """Kurtosis of the entries of X (higher = heavier tails).

        Heavier-tailed weights give a linear readout a smaller FGSM
        sensitivity ||w||_1 / ||w||_2 (Nayebi & Ganguli 2017). X must have
        the trailing shape seen in :meth:`fit` (e.g. held-out rows of the
        same weight matrix).

        Parameters
        ----------
        X : array-like
            Weights with the trailing shape seen in :meth:`fit`.
        y : ignored

        Returns
        -------
        float
            The excess kurtosis (or Pearson's, with ``fisher=False``).
        """
        check_is_fitted(self, "kurtosis_")
        W = self._validate(X, reset=False)
        return excess_kurtosis(W, fisher=self.fisher, bias=self.bias)
