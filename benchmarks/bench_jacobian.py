"""Per-input Jacobians and Fisher traces: geomkit's batched path against its peers.

Model: MLP 784-1000-1000-10 (ReLU), float32, 1000 random inputs in [0, 1].
Contenders, measured side by side in one run:

* geomkit ``jacobian`` (torch.func: per-input ``vjp`` over the identity basis,
  vmapped over a chunk of inputs);
* a per-input loop of ``torch.autograd.functional.jacobian`` (the plain-autograd
  peer; goal: geomkit >= 10x faster);
* the raw cost of C batched backward passes: one batched forward and C calls of
  ``torch.autograd.grad`` on the summed k-th logit (goal: geomkit within 2x);
* geomkit ``fisher_trace`` against the same C backward passes (goal: about 1x)
  and against D backward passes (what forming G column by column in input
  space would cost), timed on ``--d-sample`` passes and scaled to D = 784.

The machine this runs on may be shared, so the contenders run interleaved in
``--rounds`` rounds; in each round the loop handles the next n / rounds inputs.
Times are medians over rounds (the loop's: median per-input time x n), with
the fastest round in brackets.

Run: ``PYTHONPATH=. python benchmarks/bench_jacobian.py [--rounds 5] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn

from geomkit.probe.jacobian import jacobian, jacobian_norm
from geomkit.sensitivity import fisher_trace


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def raw_backward_passes(net, X, n_passes: int, cotangents=None):
    """One batched forward, then ``n_passes`` batched backward passes to the input."""
    x = X.clone().requires_grad_(True)
    z = net(x)
    grads = []
    for k in range(n_passes):
        out = z[:, k].sum() if cotangents is None else (z * cotangents[k]).sum()
        grads.append(torch.autograd.grad(out, x, retain_graph=k < n_passes - 1)[0])
    return torch.stack(grads, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-inputs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--d-sample", type=int, default=50,
                        help="backward passes timed to extrapolate the cost of D passes")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every contender (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10)
    ).eval()
    for p in net.parameters():
        p.requires_grad_(False)  # every contender differentiates w.r.t. the input only
    n, C, D = args.n_inputs, 10, 784
    X = torch.rand(n, D)
    print(f"MLP 784-1000-1000-10, {n} inputs, float32, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {args.rounds} interleaved rounds")

    J, info = jacobian(net, X, progress=False, return_info=True)  # warm-up (imports torch._dynamo)
    assert torch.allclose(J, raw_backward_passes(net, X, C), atol=1e-5), "Jacobians differ"
    f = lambda x: net(x[None])[0]  # noqa: E731
    contenders = {
        "batched": lambda: jacobian(net, X, progress=False),
        "raw": lambda: raw_backward_passes(net, X, C),
        "fisher": lambda: fisher_trace(net, X, progress=False),
        "norm": lambda: jacobian_norm(net, X, progress=False),
        "proj1": lambda: jacobian_norm(net, X, n_projections=1, progress=False),
    }
    times: dict[str, list[float]] = {k: [] for k in [*contenders, "loop"]}
    per_round = -(-n // args.rounds)
    for r in range(args.rounds):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
        rows = range(r * per_round, min((r + 1) * per_round, n))
        t = timed(lambda: [torch.autograd.functional.jacobian(f, X[i]) for i in rows])
        times["loop"].append(t / max(len(rows), 1) * n)
    V = torch.randn(args.d_sample, n, C)
    t_sample = min(timed(lambda: raw_backward_passes(net, X, args.d_sample, V)) for _ in range(2))
    t_forward = min(timed(lambda: net(X)) for _ in range(3))
    t_D = t_forward + (t_sample - t_forward) * D / args.d_sample
    t_fisher64 = timed(lambda: fisher_trace(net, X, dtype=torch.float64, progress=False))

    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    show = lambda k: f"{med[k]:8.3f} s  [fastest {best[k]:7.3f}]"  # noqa: E731
    print(f"geomkit jacobian [{info.path}/{info.method}, {info.n_chunks} chunk(s)]: {show('batched')}")
    print(f"raw C={C} batched backward passes:                {show('raw')}")
    print(f"per-input autograd.functional.jacobian loop:      {show('loop')}")
    print(f"geomkit fisher_trace (float32):                   {show('fisher')}")
    print(f"geomkit fisher_trace (float64, once):             {t_fisher64:8.3f} s")
    print(f"D={D} batched backward passes:                    {t_D:8.3f} s "
          f"(timed on {args.d_sample}, scaled to {D})")
    print(f"geomkit jacobian_norm exact:                      {show('norm')}")
    print(f"geomkit jacobian_norm, 1 projection (Hoffman):    {show('proj1')}")
    print()
    ratio = lambda a, b: f"{med[a] / med[b]:7.2f} [fastest {best[a] / best[b]:6.2f}]"  # noqa: E731
    print(f"ratio loop / batched jacobian         = {ratio('loop', 'batched')}  (goal >= 10)")
    print(f"ratio batched jacobian / raw C passes = {ratio('batched', 'raw')}  (goal <= 2)")
    print(f"ratio fisher_trace / raw C passes     = {ratio('fisher', 'raw')}  (goal ~ 1: C passes)")
    print(f"ratio D passes / fisher_trace         = {t_D / med['fisher']:7.2f}  (D/C = {D / C:.1f})")
    print(f"ratio exact norm / 1-projection norm  = {ratio('norm', 'proj1')}")


if __name__ == "__main__":
    main()
