"""Peak memory of streaming layer moments does not grow with the number of stimuli.

Runs ``geomkit.probe.layer_moments`` on 10k and on 100k stimuli through an MLP
784-2048-10 (inputs generated batch by batch, so they are never all in memory),
each in a fresh subprocess, and prints the peak resident set size of both, side
by side with what keeping the activations would have cost (``extract``-style:
n_stimuli x 2048 float32).

Usage: python benchmarks/bench_moments.py
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from geomkit.probe import layer_moments
torch.manual_seed(0)
torch.set_num_threads(2)
n = int(sys.argv[1])
model = torch.nn.Sequential(torch.nn.Linear(784, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 10))
batch = 1000
def batches():
    g = torch.Generator().manual_seed(1)
    for start in range(0, n, batch):
        yield torch.rand(min(batch, n - start), 784, generator=g)
t0 = time.perf_counter()
m = layer_moments(model, batches(), ["1"], method="covariance", progress=False)["1"]
dt = time.perf_counter() - t0
assert m.n_samples == n
print(json.dumps({"n": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": dt}))
"""


def run(n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    results = [run(n) for n in (10_000, 100_000)]
    for r in results:
        kept = r["n"] * 2048 * 4 / 2**20
        print(f"{r['n']:>7} stimuli: peak RSS {r['peak_rss_mib']:7.1f} MiB  ({r['seconds']:.1f} s); "
              f"keeping the activations would need {kept:7.1f} MiB more")
    ratio = results[1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
    print(f"peak RSS ratio 100k / 10k stimuli: {ratio:.3f} (flat memory: ~1.0; stimuli grew 10x)")


if __name__ == "__main__":
    main()
