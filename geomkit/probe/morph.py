"""Categorical perception probes of a model (Bonnasse-Gahot & Nadal 2022).

* :func:`categorization_by_layer`: the categoricality index of every layer,
  with the raw inputs as the baseline layer ``"input"``, as a tidy table.
* :func:`morph_profile` / :func:`morph_profiles`: interpolate between an item
  of one class and an item of another (in input space, or in the latent space
  of a decoder), record every layer along the path, and measure the distance
  between consecutive steps. Categorical perception shows as a peak of that
  distance at the category boundary, sharper deeper in the net.

The acceptance rule and alignment follow the paper's code
(github.com/l-bg/categorical_perception_ann_neco): a continuum is kept when
the two end classes hold more than ``min_total`` (0.95) of the probability at
every step and the boundary -- the step where the first class's probability
is closest to 0.5 -- is at least ``margin`` (10) steps from either end;
profiles are aligned on that step.

Reference: Bonnasse-Gahot, L. & Nadal, J.-P. (2022). Categorical perception:
a groundwork for deep learning. Neural Computation 34(2), 437-475.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._backend import model_device
from .._params import DEPRECATED, check_random_state, renamed_parameter, validate_params
from .._validation import check_float, check_int, check_option, to_numpy
from .extract import extract, iter_batches, layer_activations
from .recorder import ModelState, resolve_layers

__all__ = ["categorization_by_layer", "morph_profile", "morph_profiles"]


# ---------------------------------------------------------------------------
# per-layer categoricality
# ---------------------------------------------------------------------------


class _RecordedInputs:
    """Batches of an iterable, passed on unchanged while their flattened inputs are kept.

    The "input" baseline then comes from the very pass that yields the labels, so a
    shuffled DataLoader cannot pair inputs and labels from two different orders.
    """

    def __init__(self, inputs: Any, batch_size: int):
        self.inputs = inputs
        self.batch_size = batch_size
        self.flat: list[np.ndarray] = []

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        self.flat = []
        for x, y in iter_batches(self.inputs, self.batch_size):
            arr = to_numpy(x)
            self.flat.append(arr.reshape(arr.shape[0], -1))
            yield x, y

    def array(self) -> np.ndarray:
        return np.concatenate(self.flat)


class _SizedRecordedInputs(_RecordedInputs):
    """The same, for inputs with a length (a DataLoader): the progress bar keeps its total."""

    def __len__(self) -> int:
        return len(self.inputs)


def categorization_by_layer(
    model: Any,
    inputs: Any,
    labels: Any = None,
    layers: Any = None,
    *,
    n_pairs: int = 1000,
    metric: Any = "cosine",
    n_bootstraps: int = 1000,
    confidence_level: float = 0.95,
    random_state: Any = 0,
    batch_size: int = 256,
    device: Any = None,
    progress: bool = True,
    n_bootstrap: Any = DEPRECATED,
    confidence: Any = DEPRECATED,
):
    """Categoricality index of the inputs and of every recorded layer, on the same pairs.

    Parameters
    ----------
    model : torch.nn.Module
        Left exactly as found.
    inputs : ndarray, torch.Tensor, DataLoader or iterable of batches
        The items, shape (n_items, ...). A DataLoader or iterable is read once:
        the ``"input"`` baseline is recorded in the same pass as the layers and
        labels, so a shuffled DataLoader keeps inputs and labels paired.
    labels : array-like of shape (n_items,), optional
        Categories; default: the labels a DataLoader yields.
    layers : see :func:`geomkit.probe.extract`
    n_pairs, metric, n_bootstraps, confidence_level
        As in :class:`geomkit.measures.categorization.CategorizationIndex`;
        checked before the model runs.
    random_state : None, int, numpy.random.Generator or RandomState, default=0
        One seed is drawn from it, so every layer is measured on the same pairs.
    batch_size, device, progress
        As in :func:`geomkit.probe.extract`.
    n_bootstrap, confidence : deprecated
        Old names of ``n_bootstraps`` and ``confidence_level`` (one more
        release, with a ``DeprecationWarning``).

    Returns
    -------
    pandas.DataFrame
        One row per layer, the inputs first: ``layer`` (``"input"``, then the
        recorded names), ``depth`` (0, 1, ...), ``n_units``, ``index``,
        ``index_corrected`` (bias-corrected, NaN without bootstraps), ``ci_low``,
        ``ci_high`` (the interval, around ``index_corrected``), ``pvalue``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> x, y = torch.randn(60, 6), torch.arange(60) % 3
    >>> table = categorization_by_layer(net, x, y, n_bootstraps=0, progress=False)
    >>> table["layer"].tolist()
    ['input', '0', '1', '2']
    """
    import pandas as pd

    from ..measures.categorization import CategorizationIndex

    import torch

    check_int(batch_size, "batch_size", low=1)
    caller = "categorization_by_layer"
    n_bootstraps = renamed_parameter("n_bootstrap", n_bootstrap, "n_bootstraps", n_bootstraps,
                                     caller=caller, new_default=1000)
    confidence_level = renamed_parameter("confidence", confidence, "confidence_level",
                                         confidence_level, caller=caller, new_default=0.95)
    validate_params({"n_pairs": n_pairs, "n_bootstraps": n_bootstraps,
                     "confidence_level": confidence_level, "random_state": random_state},
                    CategorizationIndex._parameter_constraints, caller=caller)
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        recorded = None
        source = inputs
    else:
        wrap = _SizedRecordedInputs if hasattr(inputs, "__len__") else _RecordedInputs
        recorded = source = wrap(inputs, batch_size)
    ds = extract(model, source, layers, labels=labels, batch_size=batch_size, device=device,
                 progress=progress)
    if "label" not in ds.coords:
        raise ValueError(
            "labels are needed: pass labels=..., or inputs that yield (x, y) batches."
        )
    y = ds["label"].values
    seed = int(check_random_state(random_state).integers(2**32))
    if recorded is None:
        flat = to_numpy(inputs)
        flat = flat.reshape(flat.shape[0], -1)
    else:
        flat = recorded.array()
    spaces = [("input", flat)]
    spaces += [(name, layer_activations(ds, name).values) for name in ds.data_vars]
    rows = []
    for depth, (name, X) in enumerate(spaces):
        est = CategorizationIndex(n_pairs=n_pairs, metric=metric, n_bootstraps=n_bootstraps,
                                  confidence_level=confidence_level,
                                  random_state=seed).fit(X, y)
        rows.append({"layer": name, "depth": depth, "n_units": X.shape[1], "index": est.index_,
                     "index_corrected": est.index_corrected_, "ci_low": est.ci_[0],
                     "ci_high": est.ci_[1], "pvalue": est.pvalue_})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# morph continua
# ---------------------------------------------------------------------------


class _Paths:
    """Batches of the interpolated inputs of many continua, made on the fly."""

    def __init__(self, starts, ends, n_steps: int, decoder, batch_size: int, device):
        self.starts, self.ends = starts, ends
        self.lam = np.linspace(0.0, 1.0, n_steps)
        self.decoder = decoder
        self.batch_size = batch_size
        self.device = device
        self.n_items = starts.shape[0] * n_steps

    def __len__(self) -> int:
        return -(-self.n_items // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        import torch

        n_steps = self.lam.size
        for first in range(0, self.n_items, self.batch_size):
            idx = np.arange(first, min(first + self.batch_size, self.n_items))
            pair, step = np.divmod(idx, n_steps)
            lam = torch.as_tensor(self.lam[step], dtype=self.starts.dtype,
                                  device=self.starts.device)
            lam = lam.reshape(-1, *([1] * (self.starts.ndim - 1)))
            points = (1 - lam) * self.starts[pair] + lam * self.ends[pair]
            if self.decoder is not None:
                if isinstance(self.decoder, torch.nn.Module):
                    points = points.to(model_device(self.decoder))
                with torch.no_grad():
                    points = self.decoder(points)
            yield points


def _as_tensor_batch(x: Any, name: str, n_expected: int | None = None):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(to_numpy(x)))
    if not t.is_floating_point():
        t = t.float()
    if n_expected is not None and t.shape[0] != n_expected:
        raise ValueError(
            f"{name} holds {t.shape[0]} items but the other end holds {n_expected}; "
            "they must pair up."
        )
    return t.detach()


def _probabilities(out: np.ndarray, output: Any) -> np.ndarray:
    if callable(output):
        return np.asarray(output(out), dtype=np.float64)
    if output == "logits":
        shifted = out - out.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)
    return np.asarray(out, dtype=np.float64)


def morph_profiles(
    model: Any,
    X_a: Any,
    X_b: Any,
    layers: Any = None,
    *,
    n_steps: int = 50,
    decoder: Callable | None = None,
    classes: Any = None,
    output: Any = "logits",
    metric: Any = "cosine",
    min_total: float = 0.95,
    margin: int = 10,
    batch_size: int = 256,
    device: Any = None,
    progress: bool = True,
):
    """Distance profiles along many morph continua, aligned on the category boundary.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier; left exactly as found.
    X_a, X_b : array-like of shape (n_pairs, ...)
        The two ends of each continuum: inputs, or latent codes when ``decoder``
        is given.
    layers : see :func:`geomkit.probe.extract`
    n_steps : int, default=50
        Points per continuum, ends included (``lambda = 0 ... 1``); at least 3
        and at least ``2 * margin + 1`` (else no continuum could be accepted:
        ``ValueError``).
    decoder : callable, optional
        Maps a batch of latent codes to model inputs (e.g. a VAE decoder). The
        continuum is then ``decoder((1 - lambda) z_a + lambda z_b)``, as in the
        paper. A torch module is run in eval mode and left as found.
    classes : array-like of shape (n_pairs, 2), optional
        Class indices of the two ends; default: the model's prediction at each end.
    output : {"logits", "probabilities"} or callable, default="logits"
        What the model returns; logits go through a softmax. A callable maps
        the output array to probabilities.
    metric : str or callable, default="cosine"
        Distance between the activations of consecutive steps (see
        :func:`geomkit.measures.categorization.paired_distances`).
    min_total : float, default=0.95
        Acceptance: the two end classes must hold more than this probability
        at every step ("both end classes dominate").
    margin : int, default=10
        Acceptance: the boundary step must be at least ``margin`` steps from
        either end; also the half-width of the aligned window.
    batch_size, device, progress
        As in :func:`geomkit.probe.extract`.

    Returns
    -------
    xarray.Dataset
        * ``distance`` (pair, layer, interval): distance between steps k and k+1;
        * ``probability`` (pair, step, class): class probabilities along the path;
        * ``p_a``, ``p_b`` (pair, step): probabilities of the two end classes;
        * ``class_a``, ``class_b``, ``boundary_step`` (pair): the end classes and
          the step where ``p_a`` is closest to 0.5; ``crossing`` (pair): the
          interpolated ``lambda`` where ``p_a`` first crosses 0.5 (nan if never);
        * ``accepted`` (pair): the acceptance rule;
        * ``distance_aligned`` (layer, offset) and ``p_a_aligned`` /
          ``p_b_aligned`` (offset_step): means over accepted pairs on the window
          of ``margin`` steps either side of the boundary (``offset`` in units
          of lambda, intervals at half steps);
        * attrs ``fraction_accepted``, ``n_accepted``, ``n_steps``, ``margin``.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.randn(8, 2)); _ = net[2].weight.copy_(torch.randn(2, 8))
    >>> a, b = torch.tensor([[-3.0, 0.0]]), torch.tensor([[3.0, 0.0]])
    >>> prof = morph_profiles(net, a, b, n_steps=21, margin=3, progress=False)
    >>> prof["distance"].sizes["interval"], prof["layer"].values.tolist()
    (20, ['0', '1', '2'])
    """
    import torch
    import xarray as xr

    from ..measures.categorization import paired_distances

    n_steps = check_int(n_steps, "n_steps", low=3)
    margin = check_int(margin, "margin", low=0)
    if n_steps < 2 * margin + 1:
        # The boundary step must lie in [margin, n_steps - margin): empty below this size, and
        # every continuum would be rejected with NaN means and nothing said.
        raise ValueError(
            f"n_steps={n_steps} is too small for margin={margin}: a continuum is accepted only "
            f"when its boundary is at least margin steps from either end, which needs "
            f"n_steps >= 2 * margin + 1 = {2 * margin + 1}. Raise n_steps or lower margin."
        )
    min_total = check_float(min_total, "min_total", low=0.0, high=1.0)
    if not callable(output):
        check_option(output, "output", ("logits", "probabilities"))
    starts = _as_tensor_batch(X_a, "X_a")
    ends = _as_tensor_batch(X_b, "X_b", starts.shape[0])
    if starts.shape != ends.shape:
        raise ValueError(f"X_a and X_b must have the same shape; got {tuple(starts.shape)} "
                         f"and {tuple(ends.shape)}.")
    n_pairs = starts.shape[0]
    names = resolve_layers(model, layers)
    state = ModelState(decoder) if isinstance(decoder, torch.nn.Module) else None
    try:
        if state is not None:
            decoder.eval()
        paths = _Paths(starts, ends, n_steps, decoder, batch_size, device)
        ds = extract(model, paths, [*names, ""], batch_size=batch_size, device=device,
                     progress=progress)
    finally:
        if state is not None:
            state.restore()

    probs = _probabilities(ds["output"].values.astype(np.float64), output)
    n_classes = probs.shape[1]
    probs = probs.reshape(n_pairs, n_steps, n_classes)
    if classes is None:
        cls = np.stack([probs[:, 0].argmax(axis=1), probs[:, -1].argmax(axis=1)], axis=1)
    else:
        cls = np.asarray(to_numpy(classes)).astype(np.int64).reshape(n_pairs, 2)
        if cls.min() < 0 or cls.max() >= n_classes:
            raise ValueError(f"classes must be in [0, {n_classes}); got {cls.min()}..{cls.max()}.")
    rows = np.arange(n_pairs)
    p_a = probs[rows, :, cls[:, 0]]
    p_b = probs[rows, :, cls[:, 1]]
    boundary = np.argmin(np.abs(p_a - 0.5), axis=1)
    accepted = (
        (cls[:, 0] != cls[:, 1])
        & np.all(p_a + p_b > min_total, axis=1)
        & (boundary >= margin)
        & (boundary < n_steps - margin)
    )
    lam = np.linspace(0.0, 1.0, n_steps)
    layer_names = [v for v in ds.data_vars if v != "output"]
    consecutive = np.stack([np.arange(n_steps - 1), np.arange(1, n_steps)], axis=1)
    distance = np.empty((n_pairs, len(layer_names), n_steps - 1))
    for j, name in enumerate(layer_names):
        acts = layer_activations(ds, name).values.reshape(n_pairs, n_steps, -1)
        for i in range(n_pairs):
            distance[i, j] = paired_distances(acts[i], consecutive, metric)

    # Aligned window: steps boundary - margin .. boundary + margin (accepted pairs only).
    offsets = np.arange(-margin, margin + 1)
    step_idx = np.clip(boundary[:, None] + offsets[None, :], 0, n_steps - 1)
    interval_idx = np.clip(boundary[:, None] + offsets[None, :-1], 0, n_steps - 2)
    if accepted.any():
        dist_mean = np.take_along_axis(
            distance[accepted], interval_idx[accepted][:, None, :], axis=2).mean(axis=0)
        pa_mean = np.take_along_axis(p_a[accepted], step_idx[accepted], axis=1).mean(axis=0)
        pb_mean = np.take_along_axis(p_b[accepted], step_idx[accepted], axis=1).mean(axis=0)
    else:  # nothing to average: say so with NaN rather than a misleading number
        dist_mean = np.full((len(layer_names), 2 * margin), np.nan)
        pa_mean = pb_mean = np.full(offsets.size, np.nan)
    step_width = 1.0 / (n_steps - 1)
    return xr.Dataset(
        {
            "distance": (("pair", "layer", "interval"), distance),
            "probability": (("pair", "step", "class"), probs),
            "p_a": (("pair", "step"), p_a),
            "p_b": (("pair", "step"), p_b),
            "class_a": ("pair", cls[:, 0]),
            "class_b": ("pair", cls[:, 1]),
            "boundary_step": ("pair", boundary),
            "crossing": ("pair", _crossings(p_a, lam)),
            "accepted": ("pair", accepted),
            "distance_aligned": (("layer", "offset"), dist_mean),
            "p_a_aligned": ("offset_step", pa_mean),
            "p_b_aligned": ("offset_step", pb_mean),
        },
        coords={
            "pair": rows,
            "layer": layer_names,
            "step": np.arange(n_steps),
            "lambda": ("step", lam),
            "interval": np.arange(n_steps - 1),
            "lambda_mid": ("interval", (lam[:-1] + lam[1:]) / 2),
            "class": np.arange(n_classes),
            "offset": (offsets[:-1] + 0.5) * step_width,
            "offset_step": offsets * step_width,
        },
        attrs={
            "fraction_accepted": float(accepted.mean()),
            "n_accepted": int(accepted.sum()),
            "n_steps": n_steps,
            "margin": margin,
            "min_total": min_total,
            "metric": metric if isinstance(metric, str) else getattr(metric, "__name__", "callable"),
            "decoder": "none" if decoder is None else type(decoder).__name__,
        },
    )


def _crossings(p_a: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """lambda where p_a - 0.5 first changes sign, by linear interpolation (nan if never)."""
    g = p_a - 0.5
    change = (g[:, :-1] > 0) != (g[:, 1:] > 0)
    out = np.full(p_a.shape[0], np.nan)
    has = change.any(axis=1)
    k = change.argmax(axis=1)[has]
    g0, g1 = g[has, k], g[has, k + 1]
    out[has] = lam[k] + (lam[k + 1] - lam[k]) * g0 / (g0 - g1)
    return out


def morph_profile(
    model: Any,
    x_a: Any,
    x_b: Any,
    layers: Any = None,
    *,
    n_steps: int = 50,
    decoder: Callable | None = None,
    **kwargs: Any,
):
    """Distance profile and class probabilities along one morph continuum.

    Parameters
    ----------
    model : torch.nn.Module
    x_a, x_b : array-like
        The two ends: single inputs (no batch axis), or latent codes when
        ``decoder`` is given.
    layers, n_steps, decoder
        As in :func:`morph_profiles`.
    **kwargs
        Passed on to :func:`morph_profiles` (``classes`` as a pair, ``output``,
        ``metric``, ``min_total``, ``margin``, ``batch_size``, ``device``,
        ``progress``).

    Returns
    -------
    xarray.Dataset
        :func:`morph_profiles`' variables for this one pair (no ``pair`` dim),
        plus ``aligned`` (step) = ``lambda`` minus ``lambda`` at the boundary step
        and ``aligned_mid`` (interval), the same at interval midpoints.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, 1.0]]))
    ...     _ = net[0].bias.zero_()
    >>> prof = morph_profile(net, [-4.0, 1.0], [4.0, 1.0], n_steps=41)
    >>> int(prof.class_a), int(prof.class_b), float(prof.crossing)
    (0, 1, 0.5)
    """
    kwargs.setdefault("progress", False)
    if "classes" in kwargs and kwargs["classes"] is not None:
        kwargs["classes"] = np.asarray(kwargs["classes"]).reshape(1, 2)
    a = _as_tensor_batch(x_a, "x_a")[None]
    b = _as_tensor_batch(x_b, "x_b")[None]
    if a.shape != b.shape:
        raise ValueError(f"x_a and x_b must have the same shape; got {tuple(a.shape[1:])} and "
                         f"{tuple(b.shape[1:])}.")
    prof = morph_profiles(model, a, b, layers, n_steps=n_steps, decoder=decoder, **kwargs)
    one = prof.drop_vars(["distance_aligned", "p_a_aligned", "p_b_aligned"]).isel(pair=0)
    lam = one["lambda"].values
    at = lam[int(one["boundary_step"])]
    one = one.assign_coords(aligned=("step", lam - at),
                            aligned_mid=("interval", one["lambda_mid"].values - at))
    one.attrs["accepted"] = bool(one["accepted"])
    return one
