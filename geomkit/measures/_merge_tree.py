"""Batched 0-dimensional sublevel persistence of many images at once (numpy / scipy only).

The core of :mod:`geomkit.measures.topology`. Every map of a batch is cut
into *basins*: each pixel points to its lowest neighbour (or to itself when it
is a local minimum of the strict order), and pointer jumping sends every
pixel to the minimum at the end of its steepest-descent path. A pixel and its
descent path are in the same sublevel set (values only go down along the
path), so the sublevel sets of the image are unions of (parts of) basins
glued along basin boundaries, and H0 persistence of the image equals H0
persistence of the small *basin graph*: nodes are basins (born at their
minimum), an edge joins two basins that touch, weighted by the lowest level
at which they touch (the minimum over touching pixel pairs of the larger
value). Kruskal's algorithm with the elder rule on that graph (the younger
component dies at the merge) gives the pairs.

All maps are processed together: the per-pixel passes are whole-batch numpy
operations, and Kruskal runs in lockstep -- step ``k`` handles the ``k``-th
edge of every map in one vectorized union-find update, so the Python loop
runs ``max_edges_per_map`` times, not ``n_maps * n_edges`` times.

Ties: values are replaced by their ranks within each map (``argsort``), a
strict total order that agrees with the values. Bars whose two ends have
equal values (zero persistence) come out with birth == death; callers drop
them, so the diagram does not depend on how ties were ordered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RankedMaps", "rank_maps", "sublevel_pairs"]

_OFFSETS = {
    4: ((-1, 0), (0, -1), (0, 1), (1, 0)),
    8: ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)),
}
# One of each pair of opposite offsets: every neighbouring pixel pair once.
_HALF_OFFSETS = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}


@dataclass(frozen=True)
class RankedMaps:
    """A batch of maps as within-map ranks (a strict order), shared by all filtrations.

    Attributes
    ----------
    rank : ndarray of shape (n_maps, H, W), int
        Rank of every pixel among the pixels of its map (0 = lowest).
    order : ndarray of shape (n_maps * H * W,), int
        Inverse permutation, in global pixel indices: ``order[m * H * W + r]``
        is the flat index (into ``maps.ravel()``) of the pixel of rank ``r`` of map ``m``.
    """

    rank: np.ndarray
    order: np.ndarray
    # Steepest-neighbour pointers per (connectivity, superlevel), shared by the
    # filtrations with and without the exterior node.
    _steepest: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.rank.shape  # type: ignore[return-value]


def _index_dtype(n_nodes: int):
    return np.int32 if n_nodes < np.iinfo(np.int32).max else np.int64


def rank_maps(maps: np.ndarray) -> RankedMaps:
    """Rank the pixels of every map of ``maps`` (n_maps, H, W) once, for all filtrations."""
    n, h, w = maps.shape
    hw = h * w
    it = _index_dtype(n * hw + n)
    order = np.argsort(maps.reshape(n, hw), axis=1).astype(it, copy=False)
    rank = np.empty((n, hw), dtype=it)
    np.put_along_axis(rank, order, np.arange(hw, dtype=it)[None, :], axis=1)
    order += (np.arange(n, dtype=it) * hw)[:, None]
    return RankedMaps(rank.reshape(n, h, w), order.reshape(-1))


def _neighbour_slices(dy: int, dx: int, h: int, w: int):
    """Slices (target, neighbour) such that target[y, x] has neighbour[y + dy, x + dx]."""
    ty = slice(max(0, -dy), h - max(0, dy))
    ny = slice(max(0, dy), h - max(0, -dy))
    tx = slice(max(0, -dx), w - max(0, dx))
    nx = slice(max(0, dx), w - max(0, -dx))
    return (slice(None), ty, tx), (slice(None), ny, nx)


def _steepest_pointers(ranked: RankedMaps, connectivity: int, exterior: bool,
                       superlevel: bool, it) -> np.ndarray:
    """Global index of the steepest neighbour-or-self of each pixel (+ exterior nodes).

    Steepest = lowest rank for a sublevel filtration, highest for a superlevel one.
    """
    rank = ranked.rank
    n, h, w = rank.shape
    hw = h * w
    n_pix = n * hw
    ptr = np.empty(n_pix + (n if exterior else 0), dtype=it)
    key = (connectivity, superlevel)
    if key in ranked._steepest:
        ptr[:n_pix] = ranked._steepest[key]
    else:
        pick = np.maximum if superlevel else np.minimum
        best = rank.copy()
        for dy, dx in _OFFSETS[connectivity]:
            target, neighbour = _neighbour_slices(dy, dx, h, w)
            pick(best[target], rank[neighbour], out=best[target])
        best += (np.arange(n, dtype=it) * hw)[:, None, None]
        # ``order`` maps a (global) rank back to its pixel.
        np.take(ranked.order, best.reshape(-1), out=ptr[:n_pix])
        ranked._steepest[key] = ptr[:n_pix].copy()
    if exterior:
        # One exterior node per map, older than every pixel and adjacent to the border:
        # border pixels flow into it directly.
        ext = n_pix + np.arange(n, dtype=it)
        ptr[n_pix:] = ext
        grid = ptr[:n_pix].reshape(n, h, w)
        grid[:, 0, :] = ext[:, None]
        grid[:, -1, :] = ext[:, None]
        grid[:, :, 0] = ext[:, None]
        grid[:, :, -1] = ext[:, None]
    return ptr


def _jump_to_roots(ptr: np.ndarray) -> np.ndarray:
    """Pointer jumping: ``ptr = ptr[ptr]`` until every node points to a root (log2 rounds).

    Dense passes over the whole batch beat bookkeeping of the unfinished nodes.
    """
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            return ptr
        ptr = nxt


def _basin_edges(labels: np.ndarray, rank: np.ndarray, connectivity: int, superlevel: bool):
    """Pixel pairs that straddle two basins: (basin_a, basin_b, rank at which they join).

    A pair joins when its later pixel enters: the higher rank of the two in a
    sublevel filtration, the lower one in a superlevel filtration. Works on the
    flat arrays (pixel ``p`` and ``p + dy * W + dx``), masking the pairs that
    would wrap around a row or into the next map.
    """
    n, h, w = rank.shape
    flat_labels, flat_rank = labels.reshape(-1), rank.reshape(-1)
    join = np.minimum if superlevel else np.maximum
    heads, tails, levels = [], [], []
    for dy, dx in _HALF_OFFSETS[connectivity]:
        shift = dy * w + dx
        if dy >= h or abs(dx) >= w:  # no such neighbour in maps this small
            continue
        valid = np.ones((n, h, w), dtype=bool)
        if dy:
            valid[:, h - dy :, :] = False
        if dx > 0:
            valid[:, :, w - dx :] = False
        elif dx < 0:
            valid[:, :, :-dx] = False
        cross = flat_labels[:-shift] != flat_labels[shift:]
        cross &= valid.reshape(-1)[:-shift]
        first = np.flatnonzero(cross)
        second = first + shift
        heads.append(flat_labels[first])
        tails.append(flat_labels[second])
        levels.append(join(flat_rank[first], flat_rank[second]))
    if not heads:
        empty = np.empty(0, dtype=labels.dtype)
        return empty, empty, np.empty(0, dtype=rank.dtype)
    return np.concatenate(heads), np.concatenate(tails), np.concatenate(levels)


def _lockstep_kruskal(a, b, level, edge_map, birth, n_maps, it):
    """Kruskal with the elder rule, one edge of every map per vectorized step.

    ``a``, ``b``: compact node ids of the edges; ``level``: their weights;
    ``edge_map``: the map each edge belongs to; ``birth``: rank at which each
    node is born (the exterior node: -1). Returns the dying nodes' maps,
    births and death levels.
    """
    # Edges of a map in increasing level; then position k of every map together.
    by_level = np.lexsort((level, edge_map))
    a, b, level, edge_map = a[by_level], b[by_level], level[by_level], edge_map[by_level]
    counts = np.bincount(edge_map, minlength=n_maps)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(a.size) - first[edge_map]
    by_position = np.argsort(position, kind="stable")
    a, b, level, edge_map = a[by_position], b[by_position], level[by_position], edge_map[by_position]
    bounds = np.concatenate(([0], np.cumsum(np.bincount(position))))
    parent = np.arange(birth.size, dtype=it)
    out_map, out_birth, out_death = [], [], []
    for k in range(bounds.size - 1):
        sl = slice(bounds[k], bounds[k + 1])
        ea, eb = a[sl], b[sl]
        ra, rb = _find(parent, ea), _find(parent, eb)
        parent[ea] = ra  # path compression of the edge ends
        parent[eb] = rb
        merge = ra != rb
        if not merge.any():
            continue
        ra, rb = ra[merge], rb[merge]
        a_older = birth[ra] < birth[rb]
        older = np.where(a_older, ra, rb)
        younger = np.where(a_older, rb, ra)
        parent[younger] = older
        out_map.append(edge_map[sl][merge])
        out_birth.append(birth[younger])
        out_death.append(level[sl][merge])
    if not out_map:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(out_map), np.concatenate(out_birth), np.concatenate(out_death)


def _find(parent: np.ndarray, x: np.ndarray) -> np.ndarray:
    root = parent[x]
    while True:
        up = parent[root]
        if np.array_equal(up, root):
            return root
        root = up


def sublevel_pairs(ranked: RankedMaps, connectivity: int, exterior: bool = False,
                   superlevel: bool = False):
    """Finite H0 pairs of the sublevel (or superlevel) filtration of every map, in ranks.

    Parameters
    ----------
    ranked : RankedMaps
        The maps as ranks (see :func:`rank_maps`).
    connectivity : {4, 8}
        Pixel adjacency.
    exterior : bool, default=False
        Add, per map, a node born before every pixel and adjacent to every
        border pixel (the unbounded outside). It never dies and is not
        reported; every other component dies when it reaches the border.
    superlevel : bool, default=False
        Filter from the top (the sublevel filtration of the negated maps).

    Returns
    -------
    map_index, birth, death : ndarray of shape (n_pairs,)
        One row per finite pair (zero-persistence pairs included), in *filtration
        ranks*: the rank of the pixel for a sublevel filtration, ``H*W - 1 - rank``
        for a superlevel one (so births < deaths either way). Without ``exterior``
        each map also has one essential class, born at filtration rank 0.
    """
    rank = ranked.rank
    n, h, w = rank.shape
    hw = h * w
    n_pix = n * hw
    it = _index_dtype(n_pix + n)
    ptr = _jump_to_roots(_steepest_pointers(ranked, connectivity, exterior, superlevel, it))
    labels = ptr[:n_pix].reshape(n, h, w)
    head, tail, level = _basin_edges(labels, rank, connectivity, superlevel)

    roots = np.flatnonzero(ptr == np.arange(ptr.size, dtype=it)).astype(it)
    compact = np.empty(ptr.size, dtype=it)
    compact[roots] = np.arange(roots.size, dtype=it)
    is_ext = roots >= n_pix
    root_map = np.where(is_ext, roots - n_pix, roots // hw)
    birth = rank.reshape(-1)[np.where(is_ext, 0, roots)]
    if superlevel:  # filtration order = reversed rank
        birth = hw - 1 - birth
        level = hw - 1 - level
    birth = np.where(is_ext, -1, birth)
    ca, cb = compact[head], compact[tail]
    lo, hi = np.minimum(ca, cb), np.maximum(ca, cb)
    lo, hi, level = _cheapest_per_pair(lo, hi, level, roots.size, hw)
    (lo, hi, level), dead, death = _contract_leaves(lo, hi, level, birth, hw, it)
    m, b, d = _lockstep_kruskal(lo, hi, level, root_map[lo], birth, n, it)
    return (np.concatenate([root_map[dead], m]), np.concatenate([birth[dead], b]),
            np.concatenate([death, d]))


def _contract_leaves(lo, hi, level, birth, hw, it, min_fraction=0.05):
    """Settle, in whole-graph rounds, every node whose cheapest edge leads to an older node.

    Such a node is still alone when that edge comes up in Kruskal's order (no
    cheaper edge touches it), and the other side holds an older node, so the
    elder rule kills it at that edge's level. It is then merged into its
    neighbour (its other edges now start there) and the next round looks again.
    Rounds stop when they settle fewer than ``min_fraction`` of the nodes left;
    the lockstep Kruskal finishes the (much smaller) rest.

    Returns the remaining edges, and the settled nodes with their death levels.
    """
    n_nodes = birth.size
    dead_parts, death_parts = [], []
    while lo.size:
        # Cheapest edge of every node in one pass: the minimum of level * n + neighbour.
        code = np.full(n_nodes, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(code, lo, level.astype(np.int64) * n_nodes + hi)
        np.minimum.at(code, hi, level.astype(np.int64) * n_nodes + lo)
        node = np.flatnonzero(code != np.iinfo(np.int64).max)
        level_of, target = np.divmod(code[node], n_nodes)
        dies = birth[target] < birth[node]
        if dies.sum() < min_fraction * node.size:
            break
        node, target = node[dies], target[dies]
        dead_parts.append(node)
        death_parts.append(level_of[dies])
        parent = np.arange(n_nodes, dtype=it)
        parent[node] = target
        parent = _jump_to_roots(parent)
        lo, hi = parent[lo], parent[hi]
        keep = lo != hi  # edges inside a merged node are spent
        lo, hi, level = lo[keep], hi[keep], level[keep]
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    lo, hi, level = _cheapest_per_pair(lo, hi, level, n_nodes, hw)
    if not dead_parts:
        return (lo, hi, level), np.empty(0, dtype=it), np.empty(0, dtype=np.int64)
    return (lo, hi, level), np.concatenate(dead_parts), np.concatenate(death_parts)


def _cheapest_per_pair(lo, hi, level, n_nodes, hw):
    """Keep, for every pair of touching basins, only the lowest crossing (the others are
    redundant in Kruskal, and dropping them shortens what follows).

    Sorts one packed int64 key ``lo | hi | level`` (bit fields: shifts and masks,
    no divisions); falls back to a lexsort when the fields do not fit in 63 bits.
    """
    if lo.size == 0:
        return lo, hi, level
    node_bits = max(int(n_nodes) - 1, 1).bit_length()
    level_bits = max(int(hw) - 1, 1).bit_length()
    if 2 * node_bits + level_bits <= 62:
        key = lo.astype(np.int64) << (node_bits + level_bits)
        key |= hi.astype(np.int64) << level_bits
        key |= level
        key.sort()
        pair = key >> level_bits
        keep = np.empty(key.size, dtype=bool)
        keep[0] = True
        np.not_equal(pair[1:], pair[:-1], out=keep[1:])
        key, pair = key[keep], pair[keep]
        node_mask = (1 << node_bits) - 1
        return ((pair >> node_bits).astype(lo.dtype), (pair & node_mask).astype(hi.dtype),
                key & ((1 << level_bits) - 1))
    by = np.lexsort((level, hi, lo))
    lo, hi, level = lo[by], hi[by], level[by]
    keep = np.ones(lo.size, dtype=bool)
    keep[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[keep], hi[keep], level[keep]
