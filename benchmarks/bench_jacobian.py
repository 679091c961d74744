"""Per-input Jacobians and Fisher traces: geomkit's batched path against its peers.

Model: MLP 784-1000-1000-10 (ReLU), float32, 1000 random inputs in [0, 1].
Measured side by side in one run (best of ``--repeats``):

* geomkit ``jacobian`` (vmap + jacrev over chunks of inputs);
* a per-input loop of ``torch.autograd.functional.jacobian`` (the plain-autograd
  peer; goal: geomkit >= 10x faster);
* the raw cost of C batched backward passes: one batched forward and C calls of
  ``torch.autograd.grad`` on the summed k-th logit (goal: geomkit within 2x);
* geomkit ``fisher_trace`` against the same C backward passes (goal: about 1x)
  and against D backward passes (what forming G column by column in input
  space would cost), timed on ``--d-sample`` passes and scaled to D = 784.

Run: ``PYTHONPATH=. python benchmarks/bench_jacobian.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from geomkit.probe.jacobian import jacobian, jacobian_norm
from geomkit.sensitivity import fisher_trace


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def raw_backward_passes(net, X, n_passes: int, cotangents=None):
    """One batched forward, then ``n_passes`` batched backward passes to the input."""
    x = X.clone().requires_grad_(True)
    z = net(x)
    grads = []
    for k in range(n_passes):
        v = cotangents[k] if cotangents is not None else None
        out = z[:, k].sum() if v is None else (z * v).sum()
        grads.append(torch.autograd.grad(out, x, retain_graph=k < n_passes - 1)[0])
    return torch.stack(grads, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-inputs", type=int, default=1000)
    parser.add_argument("--loop-inputs", type=int, default=None,
                        help="inputs timed in the per-input loop (default: all), scaled to --n-inputs")
    parser.add_argument("--d-sample", type=int, default=50,
                        help="backward passes timed to extrapolate the cost of D passes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 loop inputs, 1 repeat of the loop")
    args = parser.parse_args()

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10)
    ).eval()
    for p in net.parameters():
        p.requires_grad_(False)  # the peers differentiate w.r.t. the input only, like geomkit
    n, C, D = args.n_inputs, 10, 784
    X = torch.rand(n, D)
    n_loop = args.loop_inputs or (200 if args.quick else n)
    print(f"MLP 784-1000-1000-10, {n} inputs, float32, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)")

    t_batched, (J, info) = best_time(
        lambda: jacobian(net, X, progress=False, return_info=True), args.repeats
    )
    t_raw, J_raw = best_time(lambda: raw_backward_passes(net, X, C), args.repeats)
    assert torch.allclose(J, J_raw, atol=1e-5), "batched and raw Jacobians differ"

    f = lambda x: net(x[None])[0]  # noqa: E731
    t0 = time.perf_counter()
    for i in range(n_loop):
        torch.autograd.functional.jacobian(f, X[i])
    t_loop = (time.perf_counter() - t0) * n / n_loop

    t_fisher, _ = best_time(lambda: fisher_trace(net, X, progress=False), args.repeats)
    t_fisher64, _ = best_time(lambda: fisher_trace(net, X, dtype=torch.float64, progress=False), 1)
    V = torch.randn(args.d_sample, n, C)
    t_sample, _ = best_time(lambda: raw_backward_passes(net, X, args.d_sample, V), args.repeats)
    t_forward, _ = best_time(lambda: net(X), args.repeats)
    t_D = t_forward + (t_sample - t_forward) * D / args.d_sample
    t_proj1, _ = best_time(lambda: jacobian_norm(net, X, n_projections=1, progress=False), args.repeats)
    t_norm, _ = best_time(lambda: jacobian_norm(net, X, progress=False), args.repeats)

    scaled = "" if n_loop == n else f" (timed on {n_loop}, scaled to {n})"
    print(f"geomkit jacobian [{info.path}/{info.method}, {info.n_chunks} chunk(s)]: {t_batched:8.3f} s")
    print(f"raw C={C} batched backward passes:                {t_raw:8.3f} s")
    print(f"per-input autograd.functional.jacobian loop:      {t_loop:8.3f} s{scaled}")
    print(f"geomkit fisher_trace (float32):                   {t_fisher:8.3f} s")
    print(f"geomkit fisher_trace (float64):                   {t_fisher64:8.3f} s")
    print(f"D={D} batched backward passes:                    {t_D:8.3f} s "
          f"(timed on {args.d_sample}, scaled to {D})")
    print(f"geomkit jacobian_norm exact:                      {t_norm:8.3f} s")
    print(f"geomkit jacobian_norm, 1 projection (Hoffman):    {t_proj1:8.3f} s")
    print()
    print(f"ratio loop / batched jacobian        = {t_loop / t_batched:7.2f}  (goal >= 10)")
    print(f"ratio batched jacobian / raw C passes = {t_batched / t_raw:7.2f}  (goal <= 2)")
    print(f"ratio fisher_trace / raw C passes     = {t_fisher / t_raw:7.2f}  (goal ~ 1: C passes)")
    print(f"ratio D passes / fisher_trace         = {t_D / t_fisher:7.2f}  (D/C = {D / C:.1f})")
    print(f"ratio exact norm / 1-projection norm  = {t_norm / t_proj1:7.2f}")


if __name__ == "__main__":
    main()
