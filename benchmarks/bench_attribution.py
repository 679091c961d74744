"""Attributions: geomkit's ``attribute`` and its own differentiable IG against captum, side by side.

Model: MLP 784-1000-10 (ReLU), float32, ``--n-inputs`` random inputs in [0, 1].
Contenders, interleaved over ``--rounds`` rounds (the machine may be shared):

* ``attribute(method=m)`` against captum's ``Saliency`` / ``IntegratedGradients`` /
  ``DeepLift`` called directly (goal: about 1x, the wrapper only validates and
  restores the model's flags);
* the fragility attack's own integrated gradients (midpoint Riemann sum, one
  batched backward per step, no graph kept) against captum's ``IntegratedGradients``
  with ``method="riemann_middle"`` and the same number of steps (goal: about 1x).

Times are medians over rounds, the fastest in brackets; the ratio is geomkit / captum.

Run: ``PYTHONPATH=. python benchmarks/bench_attribution.py [--rounds 5] [--n-inputs 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from geomkit.probe.attribution import attribute
from geomkit.probe.attribution.fragility import differentiable_attribution


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-inputs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n-steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from captum.attr import DeepLift, IntegratedGradients, Saliency

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 10)).eval()
    X = torch.rand(args.n_inputs, 784)
    t = net(X).argmax(1)
    steps = args.n_steps
    pairs = {
        "saliency": (lambda: attribute(net, X, t, method="saliency"),
                     lambda: Saliency(net).attribute(X.clone().requires_grad_(True), target=t, abs=False)),
        "integrated_gradients": (
            lambda: attribute(net, X, t, method="integrated_gradients", n_steps=steps),
            lambda: IntegratedGradients(net).attribute(X, target=t, n_steps=steps)),
        "deeplift": (lambda: attribute(net, X, t, method="deeplift"),
                     lambda: DeepLift(net).attribute(X.clone().requires_grad_(True), target=t)),
        "own IG (riemann_middle)": (
            lambda: differentiable_attribution(net, X.clone(), t, "integrated_gradients", n_steps=steps),
            lambda: IntegratedGradients(net).attribute(X, target=t, n_steps=steps, method="riemann_middle")),
    }
    times = {name: ([], []) for name in pairs}
    for _ in range(args.rounds):
        for name, (ours, theirs) in pairs.items():
            times[name][0].append(timed(ours))
            times[name][1].append(timed(theirs))
    print(f"{args.n_inputs} inputs, MLP 784-1000-10, {torch.get_num_threads()} thread(s), {args.rounds} rounds")
    for name, (ours, theirs) in times.items():
        ratio = [a / b for a, b in zip(ours, theirs)]
        print(f"{name:26s} geomkit {statistics.median(ours) * 1e3:8.1f} ms [{min(ours) * 1e3:.1f}]  "
              f"captum {statistics.median(theirs) * 1e3:8.1f} ms [{min(theirs) * 1e3:.1f}]  "
              f"ratio {statistics.median(ratio):.2f} (range {min(ratio):.2f}-{max(ratio):.2f})")


if __name__ == "__main__":
    main()
