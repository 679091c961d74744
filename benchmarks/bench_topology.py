"""Benchmark: level-set persistence of 1000 maps of 64 x 64, geomkit vs GUDHI (and ripser).

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_topology.py [--n-maps 1000] [--size 64] [--repeats 3]

Prints, measured side by side in one run:

* persistence (H0 + H1 of the superlevel filtration) of the whole batch with
  :func:`geomkit.measures.topology.persistence_diagrams` and with GUDHI's
  ``CubicalComplex(top_dimensional_cells=-map).persistence()`` map by map,
  their ratio (goal <= 1.0), and whether the diagrams are equal;
* ripser's ``lower_star_img`` (H0 only) on a subset, per map, for scale;
* the absolute time of the whole signature (persistence + Betti curves +
  contour signature) through :class:`geomkit.LevelSetTopology`.

Two kinds of maps: smooth random fields (Gaussian-filtered white noise, like
tuning maps; the headline case) and rough ones (white noise, hundreds of
local maxima per map: the worst case for the batched union-find).
GUDHI is a benchmark-only peer (``pip install gudhi``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage


def make_maps(n_maps: int, size: int, smoothing: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_maps, size, size))
    if smoothing > 0:
        noise = ndimage.gaussian_filter(noise, (0, smoothing, smoothing), mode="wrap")
    return noise


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def gudhi_diagrams(maps: np.ndarray):
    import gudhi

    out = []
    for m in maps:
        cc = gudhi.CubicalComplex(top_dimensional_cells=-m)
        out.append(cc.persistence())
    return out


def same_diagrams(ours, theirs) -> bool:
    """GUDHI works on -f (sublevel): (b, d) there is (-b, -d) here."""
    for (h0, h1), pairs in zip(ours, theirs):
        for dim, mine in ((0, h0), (1, h1)):
            ref = np.array(sorted((-b, -d) for k, (b, d) in pairs if k == dim and d > b))
            got = np.array(sorted(map(tuple, mine)))
            if ref.shape != got.shape or not np.allclose(ref, got):
                return False
    return True


def main() -> None:
    from geomkit.measures.topology import LevelSetTopology, persistence_diagrams

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-maps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ripser-maps", type=int, default=20)
    args = parser.parse_args()

    for label, smoothing in (("smooth (sigma=4 px)", 4.0), ("rough (white noise)", 0.0)):
        maps = make_maps(args.n_maps, args.size, smoothing)
        print(f"\n== {args.n_maps} maps of {args.size}x{args.size}, {label} ==")
        t_ours, ours = best_of(lambda: persistence_diagrams(maps), args.repeats)
        t_gudhi, theirs = best_of(lambda: gudhi_diagrams(maps), args.repeats)
        n_bars = sum(len(h0) + len(h1) for h0, h1 in ours)
        print(f"geomkit persistence (H0+H1, batched): {t_ours:8.3f} s  "
              f"({1e3 * t_ours / len(maps):.3f} ms/map, {n_bars} bars)")
        print(f"GUDHI cubical complex (H0+H1):        {t_gudhi:8.3f} s  "
              f"({1e3 * t_gudhi / len(maps):.3f} ms/map)")
        print(f"ratio geomkit / GUDHI:                {t_ours / t_gudhi:8.3f}   (goal <= 1.0)")
        print(f"diagrams equal to GUDHI's:            {same_diagrams(ours, theirs)}")
        if args.ripser_maps > 0:
            from ripser import lower_star_img

            sub = maps[: args.ripser_maps]
            t_rip, _ = best_of(lambda: [lower_star_img(-m) for m in sub], 1)
            print(f"ripser lower_star_img (H0 only):      {1e3 * t_rip / len(sub):8.3f} ms/map "
                  f"(on {len(sub)} maps)")
        topo = LevelSetTopology(n_levels=21)
        t_sig, _ = best_of(lambda: topo.fit(maps), args.repeats)
        print(f"whole signature (persistence + Betti + contours, LevelSetTopology.fit): "
              f"{t_sig:.3f} s ({1e3 * t_sig / len(maps):.3f} ms/map)")


if __name__ == "__main__":
    main()
