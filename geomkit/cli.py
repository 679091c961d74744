"""The ``geomkit`` command line.

- ``geomkit study``: train the model zoo, measure everything, write a report.
- ``geomkit report DIR/results.nc``: rebuild the report page without recomputing.
- ``geomkit info``: versions, the torch device and the data sets found.
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


def _fail(message: str) -> int:
    print(f"geomkit: error: {message}", file=sys.stderr)
    return 2


def _check_out_dir(out: str) -> str | None:
    """None if ``out`` can be created and written, else the reason it cannot."""
    import os
    from pathlib import Path

    path = Path(out)
    if path.exists() and not path.is_dir():
        return f"--out {out!r} exists and is not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"--out {out!r} cannot be created: {err.strerror or err}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"--out {out!r} is not writable"
    return None


def _study(args: argparse.Namespace) -> int:
    import os

    if args.data not in ("mnist5k", "digits") and not os.path.isdir(args.data):
        return _fail(
            f"--data {args.data!r} is neither 'mnist5k', 'digits' nor an existing folder of MNIST "
            "IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, ...)"
        )
    problem = _check_out_dir(args.out)
    if problem:
        return _fail(problem)
    import dataclasses

    from geomkit import study

    config = None
    if args.seeds is not None:
        if args.seeds < 1:
            return _fail(f"--seeds must be >= 1; got {args.seeds}")
        config = dataclasses.replace(study.StudyConfig.make(args.quick), n_seeds=args.seeds)
    if args.jobs < 1:
        return _fail(f"--jobs must be >= 1; got {args.jobs}")
    try:
        study.run(
            data=args.data,
            out=args.out,
            quick=args.quick,
            device=args.device,
            seed=args.seed,
            retrain=args.retrain,
            progress=not args.no_progress,
            config=config,
            jobs=args.jobs,
        )
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    print(f"report: {os.path.join(args.out, 'report.html')}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from geomkit.report import build_report

    try:
        page = build_report(args.results, args.out, figures_dir=args.figures)
    except FileNotFoundError as err:
        return _fail(str(err))
    print(f"report: {page}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the ``geomkit`` command and its subcommands.

    Returns
    -------
    argparse.ArgumentParser
        With subcommands ``study``, ``report`` and ``info``.

    Examples
    --------
    >>> args = build_parser().parse_args(["study", "--quick", "--out", "run1"])
    >>> args.command, args.quick, args.out, args.data
    ('study', True, 'run1', 'mnist5k')
    """
    parser = argparse.ArgumentParser(
        prog="geomkit",
        description="Measure the geometry of neural representations and train the models the "
        "robustness literature argues about.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_study = sub.add_parser(
        "study",
        help="train the model zoo, measure everything and write a report",
        description="Train the model zoo on a stratified split, measure every model on held-out data "
        "and write DIR/results.nc, DIR/summary.csv, DIR/figures/*.png and DIR/report.html. "
        "Checkpoints in DIR/models/ are reused on a re-run unless --retrain.",
    )
    p_study.add_argument("--data", default="mnist5k",
                         help="'mnist5k' (bundled, default), 'digits', or a folder of MNIST IDX files")
    p_study.add_argument("--out", default="geomkit-study", help="output folder (default: geomkit-study)")
    p_study.add_argument("--quick", action="store_true", help="fewer epochs and inputs: a fast look")
    p_study.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    p_study.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p_study.add_argument("--retrain", action="store_true", help="ignore saved checkpoints")
    p_study.add_argument("--seeds", type=int, default=None,
                         help="training seeds per model (default: 3, or 2 with --quick)")
    p_study.add_argument("--jobs", type=int, default=1, help="processes running the seeds in parallel (default: 1)")
    p_study.add_argument("--no-progress", action="store_true", help="no progress bars")
    p_study.set_defaults(func=_study)
    p_report = sub.add_parser("report", help="rebuild the HTML report from a results.nc")
    p_report.add_argument("results", help="path to a study's results.nc")
    p_report.add_argument("--out", default=None, help="page to write (default: report.html beside results)")
    p_report.add_argument("--figures", default=None, help="also save the figures as PNGs in this folder")
    p_report.set_defaults(func=_report)
    p_info = sub.add_parser("info", help="versions, torch device and data sets found")
    p_info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geomkit`` command line (the console script's entry point).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``geomkit``; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input (a ``--data`` that is
        no data set, an unwritable ``--out``, a missing results file), with a
        message on stderr.

    Examples
    --------
    >>> main(["study", "--data", "no/such/folder"])  # the message goes to stderr
    2
    """
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
