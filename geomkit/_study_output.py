"""The output folder of ``geomkit study``: checked before any work, written only when complete.

A run writes into a staging folder beside ``DIR`` (``.DIR.geomkit-partial`` in ``DIR``'s parent, or
``DIR/.geomkit-partial`` when the parent is not writable) and moves the results in when everything is
written. So an interrupted run leaves ``DIR`` as it was (the old report beside the checkpoints it was
made from), and the checkpoints it finished wait in the staging folder, where the next run finds and
reuses them. ``DIR`` is ours when it holds the marker file ``.geomkit-study``; a non-empty folder that
is not ours is refused unless ``overwrite``, so that no user file called ``report.html`` is replaced
unasked.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ._atomic import atomic_write_text

try:  # the lock of the output folder: flock on POSIX, msvcrt's byte locks on Windows
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

#: What a study writes into its output folder.
OUTPUTS = ("models", "figures", "results.nc", "summary_models.csv", "summary_layers.csv", "report.html")
#: Outputs of earlier geomkit versions: still ours, and removed when a run commits (a stale
#: ``summary.csv`` beside the new tables would contradict them).
LEGACY_OUTPUTS = ("summary.csv",)
MARKER = ".geomkit-study"
_INSIDE = ".geomkit-partial"  # the staging folder's name when it must live inside DIR
LOCK = ".geomkit-study.lock"  # held by the run writing to DIR (a second one would delete its staged work)


def _try_write(folder: Path) -> None:
    """Create and remove a file in ``folder``: the only check that also holds for root and read-only mounts."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".geomkit-write-test.")
    os.close(fd)
    os.unlink(name)


def _unwritable(folder: Path) -> str | None:
    """None if files can be created (and renamed) in ``folder``, else why not."""
    try:
        _try_write(folder)
    except OSError as err:
        return err.strerror or str(err)
    return None


def _staging_path(out: Path) -> Path:
    return out.parent / f".{out.name}.geomkit-partial"


def _entries(out: Path) -> set[str]:
    """Names in ``out`` that count: not the marker, not our staging folder, not an atomic write's leftover."""
    return {p.name for p in out.iterdir()
            if p.name not in (MARKER, _INSIDE, LOCK) and not (p.name.startswith(".") and p.name.endswith(".tmp"))}


def _is_ours(out: Path) -> bool:
    """Whether geomkit wrote ``out``: the marker, or (runs from before the marker) only our outputs,
    with a checkpoint stamp or our report among them."""
    if (out / MARKER).is_file():
        return True
    if not _entries(out) <= {*OUTPUTS, *LEGACY_OUTPUTS}:
        return False
    if any((out / "models").rglob("*.study.json")):  # models/<name> or models/seed<N>/<name>
        return True
    try:
        with open(out / "report.html", encoding="utf-8", errors="replace") as fh:
            return "<title>geomkit study report</title>" in fh.read(4096)
    except OSError:
        return False


def check_output(out: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Raise if a study cannot write to ``out``; create nothing.

    Raises
    ------
    ValueError
        ``out`` is a file, or a non-empty folder that geomkit did not write (without ``overwrite``).
    PermissionError
        ``out`` (or its ``models/`` / ``figures/``, or the parent that will hold the staging folder)
        cannot be written; the message names the folder.
    """
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a folder.")
    existing = out if out.is_dir() else next((p for p in out.parents if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise ValueError(f"output folder {str(out)!r} cannot be created: {str(existing)!r} is not a folder.")
    if out.is_dir():
        foreign = sorted(_entries(out) - {*OUTPUTS, *LEGACY_OUTPUTS}) or sorted(_entries(out))
        if _entries(out) and not overwrite and not _is_ours(out):
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ValueError(
                f"output folder {str(out)!r} is not empty and was not written by geomkit study (it holds "
                f"{shown}); choose a new or empty folder, or pass --overwrite (overwrite=True) to replace "
                f"its {', '.join(OUTPUTS)}."
            )
    folders = [existing]
    for sub in ("models", "figures"):
        if (out / sub).is_dir():
            folders += [out / sub, *(p for p in (out / sub).iterdir() if p.is_dir())]
    for folder in folders:
        reason = _unwritable(folder)
        if reason:
            what = "output folder" if folder == existing else "folder"
            raise PermissionError(f"{what} {str(folder)!r} is not writable ({reason}); a study would "
                                  "fail there after training")


class OutputLocked(BlockingIOError):
    """Another study is writing to the same output folder (an OSError: the folder is busy)."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` (a lock file in it), released by the OS if the process dies.

    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows. The file holds the owner's pid, host and
    start time, for the refusal's message; it is removed on :meth:`release`.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        self._fh = None

    def acquire(self) -> "FolderLock":
        while True:
            fh = open(self.path, "a+", encoding="utf-8")
            try:
                _lock_file(fh)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                fh.close()
                raise OutputLocked(
                    f"another geomkit study is writing to {str(self.path.parent)!r} ({holder}); wait for "
                    f"it to finish or choose another output folder. If no such run exists, delete "
                    f"{str(self.path)!r}.") from None
            except OSError as err:  # a file system without locks (some network mounts): run unguarded
                fh.close()
                with contextlib.suppress(OSError):
                    self.path.unlink()
                warnings.warn(f"cannot lock the output folder {str(self.path.parent)!r} ({err.strerror or err}); "
                              "a second study started on it meanwhile would interfere with this one.",
                              RuntimeWarning, stacklevel=3)
                return self
            # the file may have been removed (and re-created) by the previous owner between our open and
            # our lock: then we hold a lock on a name nobody else sees, so try again
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}, started "
                 f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still held: a waiting run then finds no stale name
        _unlock_file(self._fh)
        self._fh.close()
        self._fh = None


def _lock_file(fh) -> None:
    """Lock ``fh`` without waiting; BlockingIOError if another process holds it."""
    if fcntl is not None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    fh.seek(0)
    try:
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
    except PermissionError as err:  # the byte is locked by another process
        raise BlockingIOError(err.errno, err.strerror) from err


def _unlock_file(fh) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        else:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)


@dataclass
class StudyOutput:
    """Where a run writes (``staging``) and where the results end up (``out``), and the lock on ``out``
    that the run holds until :meth:`release`."""

    out: Path
    staging: Path
    lock: FolderLock | None = None

    def release(self) -> None:
        """Let other runs write to ``out``."""
        if self.lock is not None:
            self.lock.release()

    @property
    def models(self) -> Path:
        """The checkpoints of earlier, completed runs."""
        return self.out / "models"

    @property
    def staged_models(self) -> Path:
        """The checkpoints this run trains (and those an interrupted run left); created by the first save."""
        return self.staging / "models"

    def staged(self, name: str) -> Path:
        """Where to write the output ``name`` (the staging folder is made on first use, so a run that
        fails before it writes anything leaves no folder behind)."""
        self.staging.mkdir(exist_ok=True)
        return self.staging / name

    def commit(self, models: list[str]) -> None:
        """Move the staged outputs into ``out`` (checkpoints first, the marker last).

        Only the checkpoints of ``models`` (those of this run's report; names relative to
        ``models/``, such as ``"seed0/mlp"``) move; others an interrupted run left keep waiting in
        the staging folder, which is removed once nothing is left in it.
        """
        replaced = self.staging / ".replaced"
        replaced.mkdir(parents=True, exist_ok=True)
        self.models.mkdir(exist_ok=True)
        for name in models:
            folder, stamp = self.staged_models / name, self.staged_models / f"{name}.study.json"
            if folder.is_dir() and stamp.is_file():
                target = self.models / name
                target.parent.mkdir(parents=True, exist_ok=True)
                old = name.replace("/", "-")
                (target.parent / stamp.name).unlink(missing_ok=True)  # no stamp beside half-moved files
                _replace(folder, target, replaced / f"models-{old}")
                _replace(stamp, target.parent / stamp.name, replaced / f"models-{old}.study.json")
        for name in OUTPUTS[1:]:
            if (self.staging / name).exists():
                _replace(self.staging / name, self.out / name, replaced / name)
        for name in LEGACY_OUTPUTS:
            if (self.out / name).is_file() and (self.out / MARKER).is_file():
                _move(self.out / name, replaced / name)
        atomic_write_text(self.out / MARKER, json.dumps({
            "written_by": "geomkit study", "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }, indent=1))
        shutil.rmtree(replaced, ignore_errors=True)
        if not any(self.staged_models.rglob("*.study.json")):
            shutil.rmtree(self.staging, ignore_errors=True)


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        shutil.move(src, dst)  # the staging folder is on another file system (DIR is a mount point)


def _replace(new: Path, target: Path, old_to: Path) -> None:
    """Put ``new`` at ``target``, moving what was there to ``old_to`` (deleted with the staging folder)."""
    if target.exists() or target.is_symlink():
        _move(target, old_to)
    _move(new, target)


def prepare_output(out: str | os.PathLike, *, overwrite: bool = False) -> tuple[StudyOutput, list[str]]:
    """Check ``out`` (:func:`check_output`) and create it; clean the staging folder an interrupted run left.

    Returns the :class:`StudyOutput` and the names of the checkpoints an interrupted run left in the
    staging folder (kept, for reuse; everything else there is stale and removed). The output holds
    the folder's lock until its ``release()``; :class:`OutputLocked` if another run holds it.
    """
    check_output(out, overwrite=overwrite)
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(out).acquire()  # before the staging folder is cleaned: it may be another run's
    try:
        staging = _staging_path(out) if _unwritable(out.parent) is None else out / _INSIDE
        left: list[str] = []
        if staging.is_dir():  # an interrupted run's: keep its checkpoints, drop its half-written outputs
            for item in staging.iterdir():
                if item.name != "models":
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            models = staging / "models"
            left = sorted(str(p.relative_to(models))[: -len(".study.json")] for p in models.rglob("*.study.json"))
    except BaseException:
        lock.release()
        raise
    return StudyOutput(out, staging, lock), left
