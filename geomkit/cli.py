"""The ``geomkit`` command line.

``geomkit info`` prints versions, the torch device and the data sets found.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def _info(args: argparse.Namespace) -> int:
    import importlib.metadata as md
    import platform

    import geomkit

    print(f"geomkit {geomkit.__version__}  (Python {platform.python_version()}, {platform.machine()})")
    print("packages:")
    for name in ("numpy", "scipy", "scikit-learn", "torch", "xarray", "pandas", "powerlaw",
                 "ripser", "seaborn", "matplotlib", "tqdm", "mlxtend", "netCDF4"):
        try:
            v = md.version(name)
        except md.PackageNotFoundError:
            v = "not installed"
        print(f"  {name:<13} {v}")
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"torch device: cuda ({names})")
    else:
        print(f"torch device: cpu ({torch.get_num_threads()} threads); no CUDA device found")
    print("data sets:")
    from geomkit import datasets

    for name, loader in (("digits", datasets.load_digits), ("mnist5k", datasets.load_mnist5k)):
        try:
            X, y = loader()
            print(f"  {name:<8} found: {X.shape[0]} images of {X.shape[1]} pixels, {len(set(y.tolist()))} classes")
        except Exception as err:  # report, do not crash: info is a diagnostic
            print(f"  {name:<8} NOT available: {err}")
    print("  PATH     a folder of MNIST IDX files (geomkit.datasets.load_mnist)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geomkit",
        description="Measure the geometry of neural representations and train the models the "
        "robustness literature argues about.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="versions, torch device and data sets found")
    p_info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import geomkit

        print(geomkit.__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
