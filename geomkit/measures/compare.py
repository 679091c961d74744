"""Every layer against every layer: CKA or RSA over all pairs of two extracted Datasets.

:func:`compare_layers` takes two :func:`geomkit.probe.extract` Datasets (one
variable per layer, dims ``("stimulus", "<layer>__unit")``), or one Dataset
against itself, and returns the similarity of every layer pair with its
paired-bootstrap interval and permutation p-value as an :class:`xarray.Dataset`
over ``(layer_a, layer_b)``. The interval is the basic bootstrap interval,
centred on the bias-corrected ``value_corrected`` (see
:mod:`geomkit.measures._resampling`).

Each layer is prepared once per (re)sample: centred (and, where it has more
units than stimuli, turned into its Gram matrix) with its self-HSIC for CKA,
its RDM ranked / centred for RSA. A resample of a linear Gram is the
sub-matrix of the full one (no new n x n x units product). A pair then costs one cross product, so
6 x 6 layers take 6 preparations (12 for two different Datasets), not 36.
Every pair of one resample uses the same stimuli, so the intervals of
different pairs are comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._params import RANDOM_STATE, Integer, Options, Real, check_random_state, validate_params
from .._validation import as_float_array
from ._resampling import basic_interval, permutation_p_value
from .cka import _CONSTRAINTS as _CKA_CONSTRAINTS
from .cka import _cross_hsic, _prepare, _range, _ratio, _subset
from .rsa import METHODS, METRICS, RANGE, _comparable, _pair, _rdm_arrays

__all__ = ["compare_layers"]

_GRAM_MAX = 2048


def _layers(acts: Any, name: str, layers: Any) -> dict[str, np.ndarray]:
    """{layer: (n_stimuli, n_units) float64} from an extract() Dataset or a mapping of arrays."""
    if isinstance(acts, Mapping):
        items = dict(acts)
    elif hasattr(acts, "data_vars"):
        items = {}
        for key, da in acts.data_vars.items():
            if "stimulus" not in da.dims:
                raise ValueError(
                    f"{name}: variable {key!r} has dims {da.dims}, without 'stimulus'; expected an "
                    "extract() Dataset (dims ('stimulus', '<layer>__unit'))."
                )
            items[str(key)] = da.transpose("stimulus", ...).values
    else:
        raise TypeError(
            f"{name} must be an xarray.Dataset from geomkit.probe.extract or a mapping "
            f"{{layer: array of shape (n_stimuli, n_units)}}; got {type(acts).__name__}."
        )
    if layers is not None:
        missing = [layer for layer in layers if layer not in items]
        if missing:
            import difflib

            close = {m: difflib.get_close_matches(m, list(items), n=3) for m in missing}
            raise ValueError(f"{name}: layers {missing} not found; it holds {list(items)} "
                             f"(closest: {close}).")
        items = {layer: items[layer] for layer in layers}
    if not items:
        raise ValueError(f"{name} holds no layers.")
    out = {}
    for key, value in items.items():
        arr = as_float_array(value, f"{name}[{key!r}]", min_samples=3)
        out[key] = arr.reshape(arr.shape[0], -1)
    return out


class _Metric:
    """How one metric prepares a layer (once per resample) and scores a prepared pair."""

    def __init__(self, metric: str, params: dict[str, Any]) -> None:
        self.metric = metric
        self.params = params

    def prepare(self, X: np.ndarray, name: str, idx: np.ndarray | None = None,
                full: Any = None) -> Any:
        """Layer ``X`` (rows ``idx`` of it, if given) ready for pairing; ``full``: its full-sample state."""
        if self.metric == "cka":
            if idx is not None and full is not None and full.K is not None and full.linear:
                return _subset(full, idx)  # a resampled Gram is a sub-matrix of the full one
            return _prepare(X if idx is None else X[idx], name=name, gram=self._gram(X), **self.params)
        method = self.params["method"]
        keep = None
        if idx is not None and np.unique(idx).size < idx.size:  # a bootstrap draw
            if method == "whitened_cosine":
                idx = np.unique(idx)  # whitening needs every pair: each drawn stimulus once
            else:
                iu = np.triu_indices(idx.size, k=1)
                keep = idx[iu[0]] != idx[iu[1]]  # a stimulus with its own copy is no pair
        if idx is not None:
            X = X[idx]
        return _comparable(_rdm_arrays(X, self.params["metric"], None), method, keep)

    def _gram(self, X: np.ndarray) -> bool | None:
        """Whether a linear layer is held as its Gram matrix (None: cka's own rule, n <= units).

        With many pairs and resamples the Gram pays off earlier than for one
        pair: a pair then costs n^2 instead of n * p * q, and a resample is a
        sub-matrix. Up to _GRAM_MAX stimuli (32 MB per layer) a layer of p
        units is held as its Gram when n <= p^2.
        """
        n, p = X.shape
        if self.params["kernel"] != "linear" or n > _GRAM_MAX:
            return None
        return n <= p * p or None

    def pair(self, a: Any, b: Any) -> float:
        if self.metric == "cka":
            return _ratio(_cross_hsic(a, b), a.self_hsic, b.self_hsic)
        return _pair(a, b, self.params["method"])


def _metric(metric: str, metric_params: Mapping[str, Any] | None) -> _Metric:
    params = dict(metric_params or {})
    if metric == "cka":
        defaults = {"kernel": "linear", "debiased": False, "sigma": 1.0}
        constraints = {k: v for k, v in _CKA_CONSTRAINTS.items() if k in defaults}
    else:
        defaults = {"metric": "correlation", "method": "spearman"}
        constraints = {"metric": [Options(*METRICS[:2])], "method": [Options(*METHODS)]}
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(
            f"compare_layers: metric_params {sorted(unknown)} are not parameters of "
            f"metric={metric!r}; accepted: {sorted(defaults)}."
        )
    params = {**defaults, **params}
    validate_params(params, constraints, caller=f"compare_layers (metric={metric!r})")
    if metric == "cka":
        params["debiased"] = bool(params["debiased"])
    return _Metric(metric, params)


def _matrix(m: _Metric, prep_a: list, prep_b: list, symmetric: bool) -> np.ndarray:
    out = np.empty((len(prep_a), len(prep_b)))
    for i, a in enumerate(prep_a):
        for j, b in enumerate(prep_b):
            if symmetric and j < i:
                out[i, j] = out[j, i]
                continue
            try:
                out[i, j] = m.pair(a, b)
            except ValueError:  # undefined on this resample (e.g. debiased self-HSIC <= 0)
                out[i, j] = np.nan
    return out


def _prepare_all(m: _Metric, layers: dict[str, np.ndarray], idx: np.ndarray | None,
                 strict: bool, full: list | None = None) -> list:
    prepared = []
    for k, (key, X) in enumerate(layers.items()):
        try:
            prepared.append(m.prepare(X, key, idx, None if full is None else full[k]))
        except ValueError:
            if strict:
                raise
            prepared.append(None)  # undefined on this resample; its pairs become NaN
    return prepared


def _safe_matrix(m: _Metric, prep_a: list, prep_b: list, symmetric: bool) -> np.ndarray:
    if all(p is not None for p in prep_a + prep_b):
        return _matrix(m, prep_a, prep_b, symmetric)
    out = np.full((len(prep_a), len(prep_b)), np.nan)
    ok_a = [i for i, p in enumerate(prep_a) if p is not None]
    ok_b = [j for j, p in enumerate(prep_b) if p is not None]
    sub = _matrix(m, [prep_a[i] for i in ok_a], [prep_b[j] for j in ok_b], False)
    out[np.ix_(ok_a, ok_b)] = sub
    return out


def compare_layers(
    acts_a: Any,
    acts_b: Any = None,
    metric: str = "cka",
    *,
    metric_params: Mapping[str, Any] | None = None,
    layers_a: Any = None,
    layers_b: Any = None,
    n_bootstraps: int = 0,
    n_permutations: int = 0,
    confidence_level: float = 0.95,
    random_state: Any = None,
    progress: bool = True,
):
    """Similarity of every layer of ``acts_a`` to every layer of ``acts_b`` (or of itself).

    Parameters
    ----------
    acts_a : xarray.Dataset or mapping of str to array-like
        An :func:`geomkit.probe.extract` Dataset (one variable per layer,
        dims ``("stimulus", "<layer>__unit")``), or ``{layer: array of shape
        (n_stimuli, n_units, ...)}`` (trailing axes are flattened).
    acts_b : xarray.Dataset or mapping, optional
        The same stimuli through another model; None compares ``acts_a``
        with itself (each pair computed once, the matrix is symmetric).
    metric : {"cka", "rsa"}, default="cka"
        The similarity: :func:`geomkit.measures.cka` or
        :func:`geomkit.measures.rsa`.
    metric_params : dict, optional
        Its options: for "cka" ``kernel`` ("linear"), ``debiased`` (False),
        ``sigma`` (1.0); for "rsa" ``metric`` ("correlation" or
        "euclidean") and ``method`` ("spearman").
    layers_a, layers_b : list of str, optional
        The layers to compare, in this order (default: all, as stored).
    n_bootstraps : int, default=0
        Paired bootstrap resamples of the stimuli (the same draw for every
        pair); 0 gives NaN bounds and a NaN ``value_corrected``.
    n_permutations : int, default=0
        Shuffles of side b's stimulus order for one-sided p-values; 0 gives
        NaN.
    confidence_level : float, default=0.95
        Nominal coverage of the intervals.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the resampling.
    progress : bool, default=True
        Show a progress bar over the resamples.

    Returns
    -------
    xarray.Dataset
        Variables ``value`` (the plug-in similarity), ``value_corrected``
        (``value + r - median`` of the bootstrap replicates, with ``r`` the
        value itself, or for the debiased CKA the biased one, which the
        resamples scatter around: the value to report with the interval),
        ``ci_low``, ``ci_high`` (the basic bootstrap interval ``value + r -
        q_high .. value + r - q_low``, clipped to the metric's range; it
        contains ``value_corrected``), ``p_value``, each with
        dims ``("layer_a", "layer_b")`` and the layer names as coordinates;
        attributes ``metric``, ``metric_params`` (as a string),
        ``n_stimuli``, ``confidence_level``, ``n_bootstraps``,
        ``n_permutations``. Round-trips through netCDF.

    Raises
    ------
    ValueError
        Different stimulus counts, fewer than 3 stimuli, NaN / inf, a
        constant layer (CKA undefined), unknown layers or options.

    See Also
    --------
    geomkit.plotting.plot_layer_similarity : the heat map.

    Examples
    --------
    >>> import torch
    >>> from geomkit.probe import extract
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> acts = extract(net, torch.randn(100, 5), progress=False)
    >>> sim = compare_layers(acts, n_bootstraps=50, random_state=0, progress=False)
    >>> sim["value"].dims, sim.layer_a.values.tolist()
    (('layer_a', 'layer_b'), ['0', '1', '2'])
    >>> round(float(sim["value"].sel(layer_a="0", layer_b="0")), 12)
    1.0
    """
    import xarray as xr

    validate_params(
        {"metric": metric, "n_bootstraps": n_bootstraps, "n_permutations": n_permutations,
         "confidence_level": confidence_level, "random_state": random_state},
        {"metric": [Options("cka", "rsa")], "n_bootstraps": [Integer(0, None)],
         "n_permutations": [Integer(0, None)], "confidence_level": [Real(0, 1, closed="neither")],
         "random_state": [RANDOM_STATE]},
        caller="compare_layers",
    )
    m = _metric(metric, metric_params)
    symmetric = acts_b is None and layers_b is None
    layers_a_ = _layers(acts_a, "acts_a", layers_a)
    layers_b_ = layers_a_ if symmetric else _layers(acts_a if acts_b is None else acts_b,
                                                    "acts_b", layers_b)
    sizes = {f"acts_a[{k!r}]": v.shape[0] for k, v in layers_a_.items()}
    sizes.update({f"acts_b[{k!r}]": v.shape[0] for k, v in layers_b_.items()})
    if len(set(sizes.values())) > 1:
        raise ValueError(f"compare_layers: every layer must hold the same stimuli; got stimulus "
                         f"counts {sizes}.")
    n = next(iter(sizes.values()))

    prep_a = _prepare_all(m, layers_a_, None, strict=True)
    prep_b = prep_a if symmetric else _prepare_all(m, layers_b_, None, strict=True)
    value = _matrix(m, prep_a, prep_b, symmetric)

    boot_rng, perm_rng = check_random_state(random_state).spawn(2)
    shape = value.shape
    ci_low = ci_high = corrected = p_value = np.full(shape, np.nan)
    steps = _progress(n_bootstraps + n_permutations, progress)
    if n_bootstraps:
        reps = np.empty((n_bootstraps, *shape))
        for b in range(n_bootstraps):
            idx = boot_rng.integers(0, n, size=n)
            pa = _prepare_all(m, layers_a_, idx, strict=False, full=prep_a)
            pb = pa if symmetric else _prepare_all(m, layers_b_, idx, strict=False, full=prep_b)
            reps[b] = _safe_matrix(m, pa, pb, symmetric)
            steps()
        bounds = _range(m.params["debiased"], "none") if metric == "cka" else RANGE
        reference = None
        if metric == "cka" and m.params["debiased"]:
            # resamples scatter around the empirical distribution's CKA, the biased one
            m_ref = _metric("cka", {**m.params, "debiased": False})
            ref_a = _prepare_all(m_ref, layers_a_, None, strict=True)
            ref_b = ref_a if symmetric else _prepare_all(m_ref, layers_b_, None, strict=True)
            reference = _matrix(m_ref, ref_a, ref_b, symmetric)
        ci_low, corrected, ci_high = basic_interval(reps, value, confidence_level, bounds,
                                                    reference=reference)
    if n_permutations:
        null = np.empty((n_permutations, *shape))
        for b in range(n_permutations):
            perm = perm_rng.permutation(n)
            shuffled = _prepare_all(m, layers_b_, perm, strict=False, full=prep_b)
            null[b] = _safe_matrix(m, prep_a, shuffled, False)
            steps()
        p_value = permutation_p_value(null, value)
    steps(close=True)

    coords = {"layer_a": list(layers_a_), "layer_b": list(layers_b_)}
    dims = ("layer_a", "layer_b")
    return xr.Dataset(
        {"value": (dims, value), "value_corrected": (dims, np.asarray(corrected, dtype=float)),
         "ci_low": (dims, np.asarray(ci_low, dtype=float)),
         "ci_high": (dims, np.asarray(ci_high, dtype=float)),
         "p_value": (dims, np.asarray(p_value, dtype=float))},
        coords=coords,
        attrs={"metric": metric, "metric_params": repr(m.params), "n_stimuli": n,
               "confidence_level": confidence_level, "n_bootstraps": n_bootstraps,
               "n_permutations": n_permutations},
    )


def _progress(total: int, show: bool) -> Callable[..., None]:
    """A step callback on a progress bar (a no-op when hidden or nothing to resample)."""
    if not show or total == 0:
        return lambda close=False: None
    from .._progress import progress_bar

    bar = progress_bar(total=total, desc="compare_layers", progress=show)

    def step(close: bool = False) -> None:
        bar.close() if close else bar.update()

    return step
