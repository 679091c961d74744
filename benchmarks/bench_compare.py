"""Side-by-side timings of geomkit's representation comparisons against their peers, in one run.

* Linear CKA, 10 000 stimuli x 4096 vs 4096 units (float32 in, float64
  accumulation): :func:`geomkit.measures.cka` vs the n x n Gram formula as
  commonly written (Kornblith et al.'s reference code, thingsvision):
  ``K = X X^T``, centring with ``H = I - 11^T / n`` through matrix products,
  ``HSIC = tr(K H L H)`` (written out below, also in float64). Goal: ratio
  <= 0.5. Memory: tracemalloc's peak of ours on a tall input (10 000 x 256),
  where an n x n float64 matrix (800 MB) would dwarf the data (20 MB): it
  must stay below one n x n matrix.
* RDM (correlation distance) of two 1000-stimulus representations and their
  Spearman comparison vs rsatoolbox 0.3's ``calc_rdm`` + ``compare``. Goal:
  ratio <= 1.0.
* :func:`geomkit.measures.compare_layers` over 6 x 6 layer pairs: the number of
  per-layer preparations (centring / Gram; 6, not 36), and its time against
  36 independent :func:`cka` calls.

Each timing is the minimum over interleaved repetitions (the machine may be
shared). Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_compare.py           # full sizes
    PYTHONPATH=. python benchmarks/bench_compare.py --quick   # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import tracemalloc
import warnings

import numpy as np
from bench_spectrum import interleave  # minimum of interleaved repetitions (the script's folder is on the path)


def report(ours: float, peer_name: str, peer: float, goal: str) -> None:
    print(f"  geomkit {ours:8.3f} s | {peer_name} {peer:8.3f} s | ratio {ours / peer:6.3f} ({goal})",
          flush=True)


def gram_formula_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA as commonly written: n x n Grams, H = I - 11^T/n, HSIC = tr(K H L H)."""
    X = X.astype(np.float64)
    Y = Y.astype(np.float64)
    n = X.shape[0]
    K = X @ X.T
    L = Y @ Y.T
    H = np.eye(n) - np.ones((n, n)) / n
    KH = K @ H
    LH = L @ H

    def hsic(AH, BH):
        return np.sum(AH * BH.T)  # tr(A H B H) without a further n^3 product

    return float(hsic(KH, LH) / np.sqrt(hsic(KH, KH) * hsic(LH, LH)))


def bench_cka(n: int, p: int, repeats: int) -> None:
    from geomkit.measures import cka

    print(f"Linear CKA, {n} stimuli x {p} vs {p} units (float32 input)", flush=True)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p), dtype=np.float32)
    Y = (X[:, : p // 2] @ rng.standard_normal((p // 2, p), dtype=np.float32) / np.sqrt(p)
         + rng.standard_normal((n, p), dtype=np.float32))
    res = interleave({"ours": lambda: cka(X, Y), "gram": lambda: gram_formula_cka(X, Y)}, repeats)
    (t_ours, v_ours), (t_gram, v_gram) = res["ours"], res["gram"]
    report(t_ours, "n x n Gram formula", t_gram, "goal <= 0.5")
    print(f"  values: {v_ours:.12f} vs {v_gram:.12f} (|diff| {abs(v_ours - v_gram):.1e})", flush=True)

    tall = rng.standard_normal((n, 256), dtype=np.float32)
    tracemalloc.start()
    cka(tall, tall[:, ::-1] + 0.5 * rng.standard_normal((n, 256), dtype=np.float32))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gram_bytes = 8 * n * n
    print(f"  memory, {n} x 256 vs 256: peak {peak / 2**20:.1f} MiB, one n x n float64 matrix "
          f"{gram_bytes / 2**20:.1f} MiB", flush=True)
    assert peak < gram_bytes, "cka formed an n x n matrix on a tall input"


def bench_rsa(n: int, p: int, repeats: int) -> None:
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    from geomkit.measures import compare_rdms, rdm

    print(f"RDM (correlation) x 2 + Spearman comparison, {n} stimuli x {p} units", flush=True)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, p)) / np.sqrt(p) + rng.standard_normal((n, p))

    def ours():
        return compare_rdms(rdm(X), rdm(Y), method="spearman")

    def toolbox():
        a = calc_rdm(Dataset(X), method="correlation")
        b = calc_rdm(Dataset(Y), method="correlation")
        return float(compare(a, b, method="spearman")[0, 0])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = interleave({"ours": ours, "rsatoolbox": toolbox}, repeats)
    (t_ours, v_ours), (t_peer, v_peer) = res["ours"], res["rsatoolbox"]
    report(t_ours, "rsatoolbox", t_peer, "goal <= 1.0")
    print(f"  values: {v_ours:.12f} vs {v_peer:.12f} (|diff| {abs(v_ours - v_peer):.1e})", flush=True)


def bench_compare_layers(n: int, repeats: int) -> None:
    import geomkit.measures.compare as compare_module
    from geomkit.measures import cka, compare_layers

    widths = (64, 128, 256, 256, 128, 32)
    print(f"compare_layers, 6 x 6 layer pairs, {n} stimuli, widths {widths}", flush=True)
    rng = np.random.default_rng(2)
    layers, h = {}, rng.standard_normal((n, 32))
    for k, w in enumerate(widths):
        h = np.maximum(h @ rng.standard_normal((h.shape[1], w)) / np.sqrt(h.shape[1]), 0) + 0.1
        layers[f"layer{k}"] = h.astype(np.float32)

    calls = []
    original = compare_module._prepare

    def counting(X, **kw):
        calls.append(kw["name"])
        return original(X, **kw)

    compare_module._prepare = counting
    try:
        compare_layers(layers, progress=False)
    finally:
        compare_module._prepare = original
    print(f"  per-layer preparations (centring / Gram + self-HSIC): {len(calls)} for 36 pairs",
          flush=True)

    def naive():
        return [[cka(a, b) for b in layers.values()] for a in layers.values()]

    res = interleave({"ours": lambda: compare_layers(layers, progress=False), "naive": naive}, repeats)
    report(res["ours"][0], "36 cka() calls", res["naive"][0], "reuse")
    diff = np.max(np.abs(res["ours"][1]["value"].values - np.array(res["naive"][1])))
    print(f"  max |diff| {diff:.1e}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=("cka", "rsa", "layers"), action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or ("cka", "rsa", "layers"))
    if args.quick:
        sizes = {"cka": (2000, 512), "rsa": (300, 100), "layers": (500,)}
    else:
        sizes = {"cka": (10_000, 4096), "rsa": (1000, 500), "layers": (5000,)}
    if "cka" in parts:
        bench_cka(*sizes["cka"], args.repeats)
    if "rsa" in parts:
        bench_rsa(*sizes["rsa"], max(args.repeats, 3))
    if "layers" in parts:
        bench_compare_layers(*sizes["layers"], max(args.repeats, 3))


if __name__ == "__main__":
    main()
