"""Benchmark: geomkit's semantic components against kornia's, forward + backward in the parameter.

Rotation and translation (bilinear, zero fill; kornia with ``align_corners=True``,
which gives the same images to 1e-15), brightness, and the Gaussian blur
(geomkit: per-image sigma, separable, replicated borders; kornia:
``gaussian_blur2d`` with one sigma per image, ``border_type="replicate"``), on
``--n`` MNIST-shaped images (1 x 28 x 28), one parameter per image, each
timed as forward + the gradient with respect to the parameters, interleaved,
best of ``--repeats`` and the median, in process CPU time.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_composite.py [--n 500] [--repeats 7] [--threads 1]

Prints, per component, geomkit / kornia (< 1: geomkit faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from geomkit.probe.attacks import semantic as S


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        out.append(time.process_time() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import kornia

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, 1, 28, 28, generator=gen)
    angle = torch.full((args.n,), 7.0)
    shift = torch.full((args.n, 2), 0.6)
    delta = torch.full((args.n,), 0.1)
    sigma = torch.full((args.n,), 0.8)

    def grad(f, p):
        def run():
            q = p.clone().requires_grad_(True)
            torch.autograd.grad(f(q).sum(), q)
        return run

    def kornia_blur(s):
        sig = torch.stack([s, s], dim=1)
        return kornia.filters.gaussian_blur2d(x, (7, 7), sig, border_type="replicate")

    cases = {
        "rotation": (grad(lambda a: S.rotate(x, a), angle),
                     grad(lambda a: kornia.geometry.transform.rotate(x, a, align_corners=True), angle)),
        "translation": (grad(lambda d: S.translate(x, d), shift),
                        grad(lambda d: kornia.geometry.transform.translate(x, d, align_corners=True), shift)),
        "brightness": (grad(lambda b: S.adjust_brightness(x, b), delta),
                       grad(lambda b: kornia.enhance.adjust_brightness(x, b), delta)),
        "blur": (grad(lambda s: S.gaussian_blur(x, s, radius=3), sigma), grad(kornia_blur, sigma)),
    }
    print(f"{args.n} images 1 x 28 x 28, forward + parameter gradient, CPU time, {args.threads} thread(s)")
    for name, (ours, theirs) in cases.items():
        ours(), theirs()  # warm up
        a, b = [], []
        for _ in range(args.repeats):  # interleaved: the machine's load hits both alike
            a += timed(ours, 1)
            b += timed(theirs, 1)
        print(f"{name:>12}: geomkit {min(a) * 1e3:7.2f} ms (median {statistics.median(a) * 1e3:7.2f}), "
              f"kornia {min(b) * 1e3:7.2f} ms (median {statistics.median(b) * 1e3:7.2f}), "
              f"ratio best {min(a) / min(b):.2f}, median {statistics.median(a) / statistics.median(b):.2f}")


if __name__ == "__main__":
    main()
