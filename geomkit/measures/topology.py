"""Level-set topology of 2-D tuning maps: persistence, Betti curves, contour signatures.

A map ``f`` (H x W pixels) is read through its superlevel sets
``X_t = {f >= t}``, from the highest level down: peaks are born, and merge at
saddles. Conventions (the digital topology of a union of closed pixel
squares, which is also GUDHI's cubical complex built on the pixels):

* superlevel sets are 8-connected (pixels touching at a corner are joined);
  their complements ``{f < t}`` are 4-connected;
* **H0** bars: a component is born at its peak value and dies at the saddle
  where it merges into a component with a higher peak (elder rule); the
  highest peak never dies (death ``-inf``). This equals
  ``ripser.lower_star_img(-f)`` with signs flipped.
* **H1** bars, by Alexander duality: a hole of ``X_t`` is a bounded
  component of the complement (one that does not touch the image border).
  It is born at the level where it gets closed off and dies at its lowest
  value, where it fills in.
* every bar is alive on ``death < t <= birth``: ``birth >= death``, and
  ``persistence = birth - death``. Bars of zero persistence (created by
  ties, equal pixel values) are dropped, so nothing depends on how ties are
  ordered; GUDHI drops them too.
* **Contour signature** (Wang & Ponce 2022): the level curves of ``X_t`` are
  the curves separating ``X_t`` from its complement. A curve is a closed loop
  when it stays inside the image, a line when it ends on the border. With
  ``n_X``, ``n_Y`` the components of ``X_t`` and of the complement, every
  curve cuts the image in two, so there are ``n_X + n_Y - 1`` curves;
  loops are in bijection with the components that do not touch the border
  (each is enclosed by exactly one loop), lines are the rest. The counts
  equal those of marching squares on the pixel grid (contourpy) wherever no
  grid cell is an ambiguous saddle; in such a cell the superlevel pixels are
  joined, as 8-connectivity says.

References
----------
Wang, B. & Ponce, C. R. (2022). Tuning landscapes of the ventral stream.
Cell Reports 41(6); NeurReps workshop, arXiv:2212.13285 -- level-set contours
of tuning maps at 21 levels, closed loops vs lines ending on the border.

Edelsbrunner, H. & Harer, J. (2010). Computational Topology -- persistence of
sublevel filtrations, elder rule.

The computation itself is batched over all maps at once (see
``geomkit.measures._merge_tree``): one ``argsort`` per map, then whole-
batch numpy passes and a lockstep union-find. Ripser and GUDHI are the
references the tests and the benchmark compare against.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import as_float_array, check_float, check_int, host_array
from ._merge_tree import rank_maps, sublevel_pairs

__all__ = [
    "LevelSetTopology",
    "level_set_persistence",
    "persistence_diagrams",
    "betti_curves",
    "contour_signature",
    "peak_count",
]

_KINDS = ("loop", "line")


# ---------------------------------------------------------------------------
# validation and the shared computation
# ---------------------------------------------------------------------------


def _as_maps(maps: Any, name: str = "maps") -> tuple[np.ndarray, bool]:
    """(n_maps, H, W) float64 and whether a single (H, W) map was given."""
    arr = as_float_array(maps, name, ndim=(2, 3))
    if arr.ndim == 2:
        return arr[None], True
    return arr, False


class _Bars:
    """Bars of one filtration of a batch, as intervals of pixel *positions*.

    Position ``p`` in ``1..H*W`` is the ``p``-th lowest pixel of the map,
    ``0`` stands for ``-inf`` and ``H*W + 1`` for ``+inf``. A bar is counted
    at level ``t`` iff ``lo < t <= hi`` in values, i.e. ``lo < q_t <= hi``
    in positions, where ``q_t`` is one plus the number of pixels below ``t``.
    """

    def __init__(self, map_index, lo, hi):
        self.map = np.asarray(map_index, dtype=np.int64)
        self.lo = np.asarray(lo, dtype=np.int64)
        self.hi = np.asarray(hi, dtype=np.int64)

    def counts(self, q: np.ndarray, hw: int) -> np.ndarray:
        """Number of bars alive at each threshold position ``q`` (n_maps, n_levels)."""
        # #alive(q) = #{hi >= q} - #{lo >= q}  (lo < hi, and lo >= q implies hi >= q);
        # each count is a difference of binary searches in the bars' sorted (map, end) keys.
        n = q.shape[0]
        size = hw + 2
        row_end = ((np.arange(n) + 1) * size)[:, None]
        queries = (np.arange(n) * size)[:, None] + q
        out = np.zeros(q.shape, dtype=np.int64)
        for ends, sign in ((self.hi, 1), (self.lo, -1)):
            keys = np.sort(self.map * size + ends)
            out += sign * (np.searchsorted(keys, row_end) - np.searchsorted(keys, queries))
        return out


def _superlevel_bars(ranked, hw: int, connectivity: int, exterior: bool) -> _Bars:
    """Bars of the superlevel filtration (sublevel of -f): born at a peak, die at a saddle."""
    m, b, d = sublevel_pairs(ranked, connectivity, exterior, superlevel=True)
    # Filtration rank r (from the top) is the pixel at position hw - r of f.
    return _Bars(m, hw - d, hw - b)


def _sublevel_bars(ranked, connectivity: int, exterior: bool) -> _Bars:
    """Bars of the sublevel filtration of f: born at a minimum, die at a saddle."""
    m, b, d = sublevel_pairs(ranked, connectivity, exterior)
    return _Bars(m, b + 1, d + 1)


def _with_essential(bars: _Bars, n: int, lo: int, hi: int) -> _Bars:
    maps = np.arange(n)
    return _Bars(
        np.concatenate([bars.map, maps]),
        np.concatenate([bars.lo, np.full(n, lo)]),
        np.concatenate([bars.hi, np.full(n, hi)]),
    )


class _LevelSets:
    """Everything about a batch of maps that the public functions need, computed lazily."""

    def __init__(self, maps: np.ndarray):
        self.maps = maps
        self.n, h, w = maps.shape
        self.hw = h * w
        self.ranked = rank_maps(maps)
        self._flat = maps.reshape(-1)
        self._sorted: np.ndarray | None = None
        self._cache: dict[str, _Bars] = {}

    @property
    def sorted_values(self) -> np.ndarray:
        """(n_maps, H*W): the values of each map in increasing order (computed once, lazily)."""
        if self._sorted is None:
            self._sorted = self._flat[self.ranked.order].reshape(self.n, self.hw)
        return self._sorted

    def bars(self, which: str) -> _Bars:
        if which not in self._cache:
            n, hw, r = self.n, self.hw, self.ranked
            if which == "h0":  # components of {f >= t}, 8-connected; the top peak never dies
                bars = _with_essential(_superlevel_bars(r, hw, 8, False), n, 0, hw)
            elif which == "h1":  # bounded components of {f < t}, 4-connected
                bars = _sublevel_bars(r, 4, True)
            elif which == "x_inner":  # components of {f >= t} not touching the border
                bars = _superlevel_bars(r, hw, 8, True)
            elif which == "y_all":  # all components of {f < t}, 4-connected
                bars = _with_essential(_sublevel_bars(r, 4, False), n, 1, hw + 1)
            else:  # pragma: no cover - internal
                raise KeyError(which)
            self._cache[which] = bars
        return self._cache[which]

    def values(self, positions: np.ndarray, map_index: np.ndarray) -> np.ndarray:
        """Values at pixel positions (0 -> -inf, H*W + 1 -> +inf)."""
        inside = np.clip(positions, 1, self.hw) - 1 + map_index * self.hw
        out = self._flat[self.ranked.order[inside]]
        out[positions == 0] = -np.inf
        out[positions == self.hw + 1] = np.inf
        return out

    def thresholds(self, levels: np.ndarray) -> np.ndarray:
        """Position thresholds q_t (n_maps, n_levels) for per-map levels (n_maps, n_levels)."""
        q = np.empty(levels.shape, dtype=np.int64)
        for m in range(self.n):  # n cheap binary searches
            q[m] = np.searchsorted(self.sorted_values[m], levels[m], side="left") + 1
        return q

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-map minimum and maximum."""
        order = self.ranked.order.reshape(self.n, self.hw)
        return self._flat[order[:, 0]], self._flat[order[:, -1]]

    def persistence_threshold(self, min_persistence: float, relative: bool) -> np.ndarray:
        if not relative:
            return np.full(self.n, min_persistence)
        lo, hi = self.extremes()
        return min_persistence * (hi - lo)


def _check_persistence(min_persistence: Any, relative: Any) -> tuple[float, bool]:
    value = check_float(min_persistence, "min_persistence", low=0.0)
    if not isinstance(relative, (bool, np.bool_)):
        raise TypeError(f"relative must be True or False; got {relative!r}.")
    if relative and value > 1:
        raise ValueError(
            f"min_persistence is a fraction of each map's range when relative=True; "
            f"got {value}, expected a value in [0, 1]."
        )
    return value, bool(relative)


def _bar_table(ls: _LevelSets, min_persistence: float, relative: bool):
    """Flat arrays (map, dim, birth, death) of the bars above the threshold."""
    keep_above = ls.persistence_threshold(min_persistence, relative)
    parts = []
    for dim, which in ((0, "h0"), (1, "h1")):
        bars = ls.bars(which)
        birth = ls.values(bars.hi, bars.map)
        death = ls.values(bars.lo, bars.map)
        keep = (birth - death) > keep_above[bars.map]
        parts.append((bars.map[keep], np.full(keep.sum(), dim), birth[keep], death[keep]))
    map_index, dim, birth, death = (np.concatenate(col) for col in zip(*parts))
    # Per map, H0 then H1, longest bar first (a float sort, then a stable integer one).
    order = np.argsort(death - birth)
    order = order[np.argsort((map_index * 2 + dim)[order], kind="stable")]
    return map_index[order], dim[order], birth[order], death[order]


def _levels(ls: _LevelSets, n_levels: Any, levels: Any) -> tuple[np.ndarray, str]:
    lo, hi = ls.extremes()
    if isinstance(levels, str):
        n_levels = check_int(n_levels, "n_levels", low=2)
        frac = np.linspace(0.0, 1.0, n_levels)
        if levels == "range":
            return lo[:, None] + frac[None, :] * (hi - lo)[:, None], levels
        if levels == "fraction":
            if np.any(hi <= 0):
                bad = np.flatnonzero(hi <= 0)[:5].tolist()
                raise ValueError(
                    "levels='fraction' takes levels as fractions of each map's maximum, which "
                    f"must be positive; maps {bad} have a maximum <= 0. Use levels='range' or "
                    "shift the maps."
                )
            return frac[None, :] * hi[:, None], levels
        raise ValueError(
            f"levels must be 'range', 'fraction' or an array of levels; got {levels!r}."
        )
    arr = as_float_array(levels, "levels", ndim=1)
    return np.broadcast_to(arr, (ls.n, arr.size)).copy(), "absolute"


def _level_coords(ls: _LevelSets, thresholds: np.ndarray, mode: str) -> dict[str, Any]:
    n_levels = thresholds.shape[1]
    coords: dict[str, Any] = {
        "map": np.arange(ls.n),
        "level": np.arange(n_levels),
        "threshold": (("map", "level"), thresholds),
    }
    top = ls.extremes()[1]
    if np.all(top > 0):
        coords["fraction_of_max"] = (("map", "level"), thresholds / top[:, None])
    if mode in ("range", "fraction"):
        coords["fraction"] = ("level", np.linspace(0.0, 1.0, n_levels))
    return coords


def _betti(ls: _LevelSets, q: np.ndarray) -> np.ndarray:
    return np.stack([ls.bars("h0").counts(q, ls.hw), ls.bars("h1").counts(q, ls.hw)], axis=1)


def _contours(ls: _LevelSets, q: np.ndarray) -> np.ndarray:
    """(n_maps, 2, n_levels): closed loops and border-ending lines at each threshold."""
    b0 = ls.bars("h0").counts(q, ls.hw)
    b1 = ls.bars("h1").counts(q, ls.hw)
    inner = ls.bars("x_inner").counts(q, ls.hw)
    n_y = ls.bars("y_all").counts(q, ls.hw)
    loops = inner + b1  # one loop around each component that does not touch the border
    lines = b0 + n_y - 1 - loops  # every curve cuts the image in two: n_X + n_Y - 1 curves
    return np.stack([loops, lines], axis=1)


# ---------------------------------------------------------------------------
# plain functions
# ---------------------------------------------------------------------------


def level_set_persistence(maps: Any, *, min_persistence: float = 0.0, relative: bool = False):
    """Persistence of the superlevel filtration of each map, as a tidy table.

    Parameters
    ----------
    maps : array-like of shape (n_maps, H, W) or (H, W)
        The maps (numpy, torch or xarray).
    min_persistence : float, default=0.0
        Keep bars with ``persistence > min_persistence`` (the default drops only
        zero-length bars, as GUDHI does).
    relative : bool, default=False
        Read ``min_persistence`` as a fraction of each map's range (max - min).

    Returns
    -------
    pandas.DataFrame
        One row per bar: ``map``, ``dim`` (0 or 1), ``birth``, ``death``,
        ``persistence`` (``birth - death``; ``inf`` for the essential H0 bar,
        whose death is ``-inf``). Sorted by map, dim, decreasing persistence.

    Notes
    -----
    Conventions (connectivity, duality, ties): see :mod:`geomkit.measures.topology`.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:32, :32]
    >>> two_peaks = np.exp(-((x - 8) ** 2 + (y - 16) ** 2) / 20) + 0.5 * np.exp(
    ...     -((x - 24) ** 2 + (y - 16) ** 2) / 20)
    >>> table = level_set_persistence(two_peaks, min_persistence=0.1)
    >>> table[["dim", "birth"]].round(2).values.tolist()
    [[0.0, 1.0], [0.0, 0.5]]
    """
    import pandas as pd

    arr, _ = _as_maps(maps)
    min_persistence, relative = _check_persistence(min_persistence, relative)
    map_index, dim, birth, death = _bar_table(_LevelSets(arr), min_persistence, relative)
    return pd.DataFrame(
        {"map": map_index, "dim": dim, "birth": birth, "death": death, "persistence": birth - death}
    )


def persistence_diagrams(maps: Any, *, min_persistence: float = 0.0, relative: bool = False):
    """Persistence diagrams as arrays, ripser-style.

    Parameters
    ----------
    maps : array-like of shape (n_maps, H, W) or (H, W)
    min_persistence, relative
        As in :func:`level_set_persistence`.

    Returns
    -------
    list of [ndarray of shape (k0, 2), ndarray of shape (k1, 2)]
        Per map, the H0 and H1 diagrams, columns ``(birth, death)`` with
        ``birth >= death`` (superlevel convention; the essential H0 bar has
        death ``-inf``). For a single (H, W) map, just its ``[H0, H1]``.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:32, :32]
    >>> ring = np.exp(-(np.hypot(x - 16, y - 16) - 8) ** 2 / 4)
    >>> h0, h1 = persistence_diagrams(ring, min_persistence=0.5)
    >>> len(h0), len(h1)
    (1, 1)
    """
    arr, single = _as_maps(maps)
    min_persistence, relative = _check_persistence(min_persistence, relative)
    map_index, dim, birth, death = _bar_table(_LevelSets(arr), min_persistence, relative)
    pairs = np.stack([birth, death], axis=1)
    key = map_index * 2 + dim
    bounds = np.searchsorted(key, np.arange(2 * arr.shape[0] + 1))
    out = [
        [pairs[bounds[2 * m] : bounds[2 * m + 1]], pairs[bounds[2 * m + 1] : bounds[2 * m + 2]]]
        for m in range(arr.shape[0])
    ]
    return out[0] if single else out


def peak_count(maps: Any, *, min_persistence: float = 0.05, relative: bool = True):
    """Number of peaks: H0 bars longer than ``min_persistence`` (the highest peak included).

    Parameters
    ----------
    maps : array-like of shape (n_maps, H, W) or (H, W)
    min_persistence : float, default=0.05
        Persistence a peak needs (strictly more) to count.
    relative : bool, default=True
        Read ``min_persistence`` as a fraction of each map's range.

    Returns
    -------
    ndarray of shape (n_maps,) of int, or int for a single map

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 2 * np.pi, 200)
    >>> peak_count(np.sin(x)[None, :] ** 2)     # one (1 x 200) map: a tuning curve
    2
    """
    arr, single = _as_maps(maps)
    min_persistence, relative = _check_persistence(min_persistence, relative)
    ls = _LevelSets(arr)
    h0 = ls.bars("h0")
    persistence = ls.values(h0.hi, h0.map) - ls.values(h0.lo, h0.map)
    above = persistence > ls.persistence_threshold(min_persistence, relative)[h0.map]
    counts = np.bincount(h0.map[above], minlength=arr.shape[0])
    return int(counts[0]) if single else counts


def betti_curves(maps: Any, *, n_levels: int = 21, levels: Any = "range"):
    """Betti numbers b0(t), b1(t) of the superlevel sets ``{f >= t}`` at a grid of levels.

    Parameters
    ----------
    maps : array-like of shape (n_maps, H, W) or (H, W)
    n_levels : int, default=21
        Number of levels (Wang & Ponce use 21).
    levels : {"range", "fraction"} or array-like of shape (n_levels,), default="range"
        ``"range"``: per map, ``n_levels`` evenly spaced levels from its min to
        its max. ``"fraction"``: per map, ``q * max`` for ``q`` evenly spaced in
        [0, 1] (maps must have a positive maximum). An array: the same absolute
        levels for every map (``n_levels`` is then ignored).

    Returns
    -------
    xarray.DataArray of shape (n_maps, 2, n_levels), int
        Dims ``("map", "dim", "level")``; coords ``threshold`` (map, level), the
        absolute levels; ``fraction_of_max`` (map, level) where every maximum is
        positive; ``fraction`` (level) for the two string modes. b0 counts
        8-connected components, b1 holes (bounded 4-connected components of the
        complement). For a single map the ``map`` dim is dropped.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:32, :32]
    >>> ring = np.exp(-(np.hypot(x - 16, y - 16) - 8) ** 2 / 4)
    >>> curves = betti_curves(ring, n_levels=5)
    >>> curves.sel(dim=1).values.tolist()
    [0, 1, 1, 1, 0]
    """
    import xarray as xr

    arr, single = _as_maps(maps)
    ls = _LevelSets(arr)
    thresholds, mode = _levels(ls, n_levels, levels)
    counts = _betti(ls, ls.thresholds(thresholds))
    coords = _level_coords(ls, thresholds, mode)
    coords["dim"] = [0, 1]
    da = xr.DataArray(counts, dims=("map", "dim", "level"), coords=coords, name="betti",
                      attrs={"levels": mode})
    return da.isel(map=0) if single else da


def contour_signature(maps: Any, *, n_levels: int = 21, levels: Any = "range"):
    """Wang & Ponce's contour signature: closed loops and border-ending lines per level.

    Parameters
    ----------
    maps : array-like of shape (n_maps, H, W) or (H, W)
    n_levels, levels
        As in :func:`betti_curves`.

    Returns
    -------
    xarray.DataArray of shape (n_maps, 2, n_levels), int
        Dims ``("map", "kind", "level")`` with ``kind = ["loop", "line"]``;
        ``.values.reshape(n_maps, -1)`` is the signature
        ``[n_loop(levels), n_line(levels)]``. Coordinates as in
        :func:`betti_curves`.

    Notes
    -----
    At level ``t`` the contours are the curves between ``{f >= t}``
    (8-connected) and ``{f < t}`` (4-connected). Loops = components of either
    set that do not touch the border; lines = (components of both sets) - 1 -
    loops. See :mod:`geomkit.measures.topology`.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:32, :32]
    >>> bump = np.exp(-((x - 16) ** 2 + (y - 16) ** 2) / 30)   # one hill in the middle
    >>> contour_signature(bump, n_levels=3).values.tolist()     # [loops, lines]
    [[0, 1, 1], [0, 0, 0]]
    """
    import xarray as xr

    arr, single = _as_maps(maps)
    ls = _LevelSets(arr)
    thresholds, mode = _levels(ls, n_levels, levels)
    counts = _contours(ls, ls.thresholds(thresholds))
    coords = _level_coords(ls, thresholds, mode)
    coords["kind"] = list(_KINDS)
    da = xr.DataArray(counts, dims=("map", "kind", "level"), coords=coords,
                      name="contours", attrs={"levels": mode})
    return da.isel(map=0) if single else da


# ---------------------------------------------------------------------------
# estimator
# ---------------------------------------------------------------------------


class LevelSetTopology(TransformerMixin, BaseEstimator):
    """Level-set topology of tuning maps: persistence, Betti curves and contour signatures.

    ``transform`` returns Wang & Ponce's contour signature (loops and lines at
    ``n_levels`` levels, concatenated), so the estimator can sit in a
    :class:`~sklearn.pipeline.Pipeline` before a classifier or an embedding.

    Parameters
    ----------
    n_levels : int, default=21
        Levels of the Betti curves and signatures.
    levels : {"range", "fraction"} or array-like, default="range"
        How the levels are placed (see :func:`betti_curves`).
    min_persistence : float, default=0.05
        Bars at or below this persistence are left out of ``diagrams_`` and of
        the peak counts.
    relative : bool, default=True
        Read ``min_persistence`` as a fraction of each map's range.
    map_shape : (int, int) or None, default=None
        How to read a 2-D ``X`` of shape (n_maps, n_features): as maps of shape
        ``map_shape`` (``H * W == n_features``). ``None``: each row is a map of
        height 1 (a 1-D tuning curve). A 3-D ``X`` (n_maps, H, W) is used as is.

    Attributes
    ----------
    diagrams_ : pandas.DataFrame
        Bars of the training maps (see :func:`level_set_persistence`).
    betti_curves_ : xarray.DataArray of shape (n_maps, 2, n_levels)
    signatures_ : xarray.DataArray of shape (n_maps, 2, n_levels)
        Contour counts of the training maps (see :func:`contour_signature`).
    signature_mean_ : ndarray of shape (2 * n_levels,)
        Mean training signature, the reference of :meth:`score`.
    peak_counts_ : ndarray of shape (n_maps,)
        Long-lived H0 bars per training map.
    map_shape_ : (int, int)
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[:24, :24]
    >>> maps = np.stack([np.exp(-((x - c) ** 2 + (y - 12) ** 2) / 20) for c in (6, 12, 18)])
    >>> topo = LevelSetTopology(n_levels=5).fit(maps)
    >>> topo.peak_counts_.tolist(), topo.transform(maps).shape
    ([1, 1, 1], (3, 10))
    """

    def __init__(
        self,
        n_levels: int = 21,
        levels: Any = "range",
        min_persistence: float = 0.05,
        relative: bool = True,
        map_shape: tuple[int, int] | None = None,
    ):
        self.n_levels = n_levels
        self.levels = levels
        self.min_persistence = min_persistence
        self.relative = relative
        self.map_shape = map_shape

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    def _maps(self, X: Any, reset: bool) -> np.ndarray:
        X = validate_data(self, host_array(X), reset=reset, allow_nd=True, dtype=np.float64)
        if X.ndim == 3:
            shape = X.shape[1:]
        elif X.ndim == 2:
            if self.map_shape is None:
                shape = (1, X.shape[1])
            else:
                shape = tuple(self.map_shape)
                if (
                    len(shape) != 2
                    or not all(isinstance(s, numbers.Integral) and s > 0 for s in shape)
                    or shape[0] * shape[1] != X.shape[1]
                ):
                    raise ValueError(
                        f"map_shape must be two positive ints with H * W == n_features "
                        f"({X.shape[1]}); got {self.map_shape!r}."
                    )
        else:
            raise ValueError(
                f"X must be (n_maps, H, W) or (n_maps, n_features); got shape {X.shape}."
            )
        if reset:
            self.map_shape_ = tuple(int(s) for s in shape)
        elif tuple(shape) != self.map_shape_:
            raise ValueError(
                f"X holds maps of shape {tuple(shape)}, but {type(self).__name__} was fitted on "
                f"maps of shape {self.map_shape_}."
            )
        return X.reshape(X.shape[0], *shape)

    def _signature(self, ls: _LevelSets) -> tuple[np.ndarray, np.ndarray, str]:
        thresholds, mode = _levels(ls, self.n_levels, self.levels)
        return thresholds, ls.thresholds(thresholds), mode

    def fit(self, X: Any, y: Any = None) -> LevelSetTopology:
        """Compute diagrams, Betti curves, signatures and peak counts of the maps ``X``.

        Parameters
        ----------
        X : array-like of shape (n_maps, H, W) or (n_maps, n_features)
        y : ignored

        Returns
        -------
        self
        """
        import pandas as pd
        import xarray as xr

        min_persistence, relative = _check_persistence(self.min_persistence, self.relative)
        maps = self._maps(X, reset=True)
        ls = _LevelSets(maps)
        map_index, dim, birth, death = _bar_table(ls, min_persistence, relative)
        self.diagrams_ = pd.DataFrame(
            {"map": map_index, "dim": dim, "birth": birth, "death": death,
             "persistence": birth - death}
        )
        thresholds, q, mode = self._signature(ls)
        coords = _level_coords(ls, thresholds, mode)
        self.betti_curves_ = xr.DataArray(
            _betti(ls, q), dims=("map", "dim", "level"), coords={**coords, "dim": [0, 1]},
            name="betti", attrs={"levels": mode},
        )
        self.signatures_ = xr.DataArray(
            _contours(ls, q), dims=("map", "kind", "level"),
            coords={**coords, "kind": list(_KINDS)}, name="contours", attrs={"levels": mode},
        )
        self.signature_mean_ = self.signatures_.values.reshape(ls.n, -1).mean(axis=0)
        self.peak_counts_ = np.bincount(map_index[dim == 0], minlength=ls.n)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Contour signatures ``[n_loop(levels), n_line(levels)]`` of the maps ``X``.

        Parameters
        ----------
        X : array-like of shape (n_maps, H, W) or (n_maps, n_features)

        Returns
        -------
        ndarray of shape (n_maps, 2 * n_levels), float64
        """
        check_is_fitted(self)
        ls = _LevelSets(self._maps(X, reset=False))
        _, q, _ = self._signature(ls)
        return _contours(ls, q).reshape(ls.n, -1).astype(np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the ``transform`` columns: ``"<kind>_level<k>"``, loops first, then lines.

        ``k`` runs over the ``n_levels`` levels (0 = lowest). With
        ``set_output(transform="pandas")`` they become the DataFrame's columns.

        Parameters
        ----------
        input_features : ignored
            Present for scikit-learn's API; the output columns do not depend on
            the input's (the pixels of a map).

        Returns
        -------
        ndarray of str of shape (2 * n_levels,)

        Examples
        --------
        >>> import numpy as np
        >>> maps = np.random.default_rng(0).random((4, 8, 8))
        >>> LevelSetTopology(n_levels=2).fit(maps).get_feature_names_out().tolist()
        ['loop_level0', 'loop_level1', 'line_level0', 'line_level1']
        """
        check_is_fitted(self)
        n_levels = self.signatures_.sizes["level"]
        width = len(str(n_levels - 1))
        return np.asarray(
            [f"{kind}_level{k:0{width}d}" for kind in _KINDS for k in range(n_levels)], dtype=object
        )

    def score(self, X: Any, y: Any = None) -> float:
        """Similarity of the maps' topology to the training maps' topology.

        Returns minus the mean absolute difference between the contour
        signatures of ``X`` and the mean training signature
        (``signature_mean_``), averaged over maps and signature entries: 0 when
        every map of ``X`` has, at every level, the average numbers of loops and
        lines seen in training; more negative the more contours differ.

        Parameters
        ----------
        X : array-like of shape (n_maps, H, W) or (n_maps, n_features)
            Maps of the shape seen in :meth:`fit`.
        y : ignored

        Returns
        -------
        float
            At most 0; higher = closer to the training maps' topology.
        """
        signatures = self.transform(X)
        return float(-np.mean(np.abs(signatures - self.signature_mean_)))
