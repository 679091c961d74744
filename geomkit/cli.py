"""The ``geomkit`` command line.

- ``geomkit study``: train the model zoo, measure everything, write a report.
- ``geomkit report DIR/results.nc``: rebuild the report page without recomputing.
- ``geomkit info``: versions, the torch device and the data sets found.
"""

from __future__ import annotations

import argparse
import contextlib
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
    """Print ``geomkit: error: <message>`` as one line on stderr; return the exit status 2.

    Every expected failure (bad input, unreadable or foreign files, unwritable folders, a device this
    machine lacks) ends this way, never with a traceback.
    """
    print(f"geomkit: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _describe(err: BaseException) -> str:
    """One line for an expected error: an OSError by its file and reason, anything else by its message."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err) or type(err).__name__


@contextlib.contextmanager
def _study_logging(quiet: bool):
    """While the study runs: its notes (logger ``geomkit.study``, INFO) and every geomkit warning as
    ``[geomkit] ...`` lines on stderr; as it was afterwards (``main`` may be called in-process)."""
    import logging

    root, notes = logging.getLogger("geomkit"), logging.getLogger("geomkit.study")
    saved = root.level, notes.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[geomkit] %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    notes.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        notes.setLevel(saved[1])


def _device_problem(device: str | None) -> str | None:
    """None if torch can run on ``device`` here, else the one-line reason."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        return f"--device {device!r} is not a torch device; use cpu, cuda, cuda:N or mps"
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            return (f"--device {device!r}: no CUDA device is available here (torch {torch.__version__}); "
                    "use --device cpu, or leave --device out")
        if dev.index is not None and dev.index >= n:
            return f"--device {device!r}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}"
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return f"--device {device!r}: the MPS backend is not available here; use --device cpu"
    return None


def _study(args: argparse.Namespace) -> int:
    import os

    if args.data not in ("mnist5k", "digits") and not os.path.isdir(args.data):
        return _fail(
            f"--data {args.data!r} is neither 'mnist5k', 'digits' nor an existing folder of MNIST "
            "IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, ...)"
        )
    from geomkit._study_output import check_output

    try:  # before any work: a refused folder must not cost a minute of training
        check_output(args.out, overwrite=args.overwrite)
    except (OSError, ValueError) as err:
        return _fail(f"--out: {_describe(err)}")
    problem = _device_problem(args.device)
    if problem:
        return _fail(problem)
    import dataclasses

    from geomkit import study

    config = None
    if args.seeds is not None:
        if args.seeds < 1:
            return _fail(f"--seeds must be >= 1; got {args.seeds}")
        config = dataclasses.replace(study.StudyConfig.make(args.quick), n_seeds=args.seeds)
    if args.jobs is not None and args.jobs < 1:
        return _fail(f"--jobs must be >= 1; got {args.jobs}")
    try:
        with _study_logging(args.quiet):
            study.run(
                data=args.data,
                out=args.out,
                quick=args.quick,
                device=args.device,
                random_state=args.random_state,
                retrain=args.retrain,
                progress=not args.no_progress,
                overwrite=args.overwrite,
                config=config,
                jobs=args.jobs,
            )
    except (OSError, ValueError) as err:  # files and input named in the message; bugs still show a traceback
        return _fail(_describe(err))
    except KeyboardInterrupt:
        print(f"geomkit: interrupted; {args.out} is as it was (the checkpoints trained so far are reused "
              "by the next run)", file=sys.stderr)
        return 130
    print(f"report: {os.path.join(args.out, 'report.html')}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from geomkit.report import build_report

    try:
        page = build_report(args.results, args.out, figures_dir=args.figures)
    except (OSError, ValueError) as err:
        return _fail(_describe(err))
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
        "and write DIR/results.nc, DIR/summary_models.csv, DIR/summary_layers.csv, DIR/figures/*.png and DIR/report.html. "
        "Checkpoints in DIR/models/ are reused on a re-run unless --retrain. The outputs are moved "
        "into DIR only when complete: an interrupted run leaves DIR as it was. Notes go to stderr.",
    )
    p_study.add_argument("--data", default="mnist5k",
                         help="'mnist5k' (bundled, default), 'digits', or a folder of MNIST IDX files")
    p_study.add_argument("--out", default="geomkit-study", help="output folder (default: geomkit-study)")
    p_study.add_argument("--quick", action="store_true", help="fewer epochs and inputs: a fast look")
    p_study.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    p_study.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0,
                         help="the data split's seed and the first training seed (default: 0; "
                              "--seed is its old name)")
    p_study.add_argument("--retrain", action="store_true", help="ignore saved checkpoints")
    p_study.add_argument("--seeds", type=int, default=None,
                         help="training seeds per model (default: 3, or 2 with --quick)")
    p_study.add_argument("--jobs", type=int, default=None,
                         help="processes over which the (seed, model) tasks are spread (default: one per CPU "
                              "core; 1 on a GPU)")
    p_study.add_argument("--overwrite", action="store_true",
                         help="write into a non-empty --out that a study did not write (its files named "
                              "like the outputs are replaced); refused without it")
    p_study.add_argument("--no-progress", action="store_true", help="no progress bars (also: TQDM_DISABLE=1)")
    p_study.add_argument("-q", "--quiet", action="store_true", help="no notes, only warnings and errors")
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
        no data set or holds damaged files, an unwritable or foreign
        ``--out``, a ``--device`` this machine lacks, a missing, damaged or
        foreign results file), with one line on stderr naming the file or
        option and the problem.

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
