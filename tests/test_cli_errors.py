"""Every expected failure of the command line is one line on stderr naming the file or option and the
problem, with exit status 2; a study writes its outputs only when complete and refuses foreign folders."""

import dataclasses
import gzip
import logging
import os
import stat
import struct
import subprocess
import sys

import numpy as np
import pytest

from geomkit import _study_output, study
from geomkit.cli import main
from geomkit.datasets import read_idx


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geomkit: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- data files
def _idx(shape, payload: bytes) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + struct.pack(">" + "I" * len(shape), *shape) + payload


def _mnist_folder(folder, images: bytes, gz=False):
    folder.mkdir()
    labels = _idx((2,), bytes([1, 2]))
    for name, data in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels),
                       ("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        if gz:
            (folder / (name + ".gz")).write_bytes(data)
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("content, gz, problem", [
    (bytes([0, 0, 8, 3, 0, 0]), False, "truncated IDX header: 3 dimensions need 16 header bytes, the file holds 6"),
    (gzip.compress(_idx((2, 28, 28), bytes(2 * 784)))[:40], True, "is a damaged or truncated gzip file"),
    (b"\x1f\x8b" + b"garbage" * 10, True, "is a damaged or truncated gzip file"),
    (_idx((2, 28, 28), bytes(2 * 784)), True, "is named .gz but is not gzip data"),
    (_idx((2, 28, 28), bytes(100)), False, "header announces shape (2, 28, 28) (1568 bytes) but the file holds 100"),
])
def test_bad_idx_files_are_one_line(tmp_path, capsys, content, gz, problem):
    folder = _mnist_folder(tmp_path / "mnist", content, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    assert main(["study", "--data", str(folder), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    _one_line_error(capsys, str(folder / name), problem)
    with pytest.raises(ValueError, match="truncated|header announces|gzip"):
        read_idx(folder / name)
    assert not (tmp_path / "out" / "results.nc").exists()
    assert not list(tmp_path.glob(".*geomkit-partial"))  # a run that failed before writing leaves no staging


def test_idx_reader_ground_truth(tmp_path):
    # a gzipped file is read by its content, whatever its name
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(gzip.compress(_idx(images.shape, images.tobytes())))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), images)


# ----------------------------------------------------------------------------- report
def _netcdf_files(tmp_path):
    import xarray as xr

    xr.Dataset({"a": ("x", np.arange(1000.0))}).to_netcdf(tmp_path / "foreign.nc")
    whole = (tmp_path / "foreign.nc").read_bytes()
    (tmp_path / "truncated.nc").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.nc").write_text("not a netCDF file\n")
    ds = xr.Dataset({"accuracy": ("model", [0.9])}, coords={"model": ["mlp"]}, attrs={"geomkit_version": "0"})
    ds.to_netcdf(tmp_path / "partial.nc")


@pytest.mark.parametrize("name, problem", [
    ("text.nc", "cannot read {} as a study's results: it is not a netCDF file."),
    ("truncated.nc", "cannot read {} as a study's results: it is damaged or truncated"),
    ("foreign.nc", "{} is a netCDF file but not the results of `geomkit study` (no 'model' dimension or "
                   "'accuracy' variable; its variables: a)."),
    ("partial.nc", "{} is a study's results without the variables ['alpha', 'eigenvalues', 'robust_accuracy']"),
    ("missing.nc", "results file {} does not exist; run `geomkit study` first."),
])
def test_report_on_a_file_that_is_no_study_is_one_line(tmp_path, capsys, name, problem):
    _netcdf_files(tmp_path)
    assert main(["report", str(tmp_path / name)]) == 2
    _one_line_error(capsys, problem.format(repr(str(tmp_path / name))))
    assert not (tmp_path / "report.html").exists()


def test_report_error_from_the_console_has_no_traceback(tmp_path):
    (tmp_path / "results.nc").write_text("hello\n")
    run = subprocess.run([sys.executable, "-m", "geomkit", "report", str(tmp_path / "results.nc")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"geomkit: error: cannot read {str(tmp_path / 'results.nc')!r} as a study's results: it is not a netCDF file."]


# ----------------------------------------------------------------------------- output folder
@pytest.fixture()
def read_only(monkeypatch):
    """Make folders read-only; as root (whom permissions do not stop) the write probe honours the mode bits."""
    def make(folder):
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
        made.append(folder)
    made = []
    if os.geteuid() == 0:
        real = _study_output._try_write

        def probe(folder):
            if not folder.stat().st_mode & stat.S_IWUSR:
                raise PermissionError(13, "Permission denied", str(folder))
            real(folder)
        monkeypatch.setattr(_study_output, "_try_write", probe)
    yield make
    for folder in made:
        folder.chmod(0o755)


def _no_work(monkeypatch):
    """Fail the test if the study starts loading data or training."""
    import geomkit.datasets

    def refuse(*a, **k):
        raise AssertionError("the study started working before checking its output folder")
    monkeypatch.setattr(geomkit.datasets, "load_dataset", refuse)
    monkeypatch.setattr(study, "_train_or_load", refuse)


def test_read_only_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, read_only):
    out = tmp_path / "ro"
    out.mkdir()
    read_only(out)
    _no_work(monkeypatch)
    assert main(["study", "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, f"--out: output folder {str(out)!r} is not writable (Permission denied)")
    with pytest.raises(PermissionError, match="is not writable"):
        study.run(out=out, progress=False)


def test_read_only_models_is_refused_before_training(tmp_path, capsys, monkeypatch, read_only):
    out = tmp_path / "run"
    (out / "models" / "mlp").mkdir(parents=True)
    (out / _study_output.MARKER).write_text("{}")
    read_only(out / "models")
    _no_work(monkeypatch)
    assert main(["study", "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, f"folder {str(out / 'models')!r} is not writable (Permission denied); "
                            "a study would fail there after training")


def test_foreign_out_is_refused_without_overwrite(tmp_path, capsys, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.csv").write_text("my,own\n1,2\n")
    (out / "thesis.tex").write_text("...")
    _no_work(monkeypatch)
    assert main(["study", "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, f"--out: output folder {str(out)!r} is not empty and was not written by geomkit "
                            "study (it holds thesis.tex); choose a new or empty folder, or pass --overwrite")
    with pytest.raises(ValueError, match="not written by geomkit study"):
        study.run(out=out, progress=False)
    assert (out / "summary.csv").read_text() == "my,own\n1,2\n"
    # empty folders, new folders and folders of earlier runs (before the marker) are fine
    for ok in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        _study_output.check_output(ok)
    (tmp_path / "empty").mkdir()
    _study_output.check_output(tmp_path / "empty")
    old = tmp_path / "old"
    (old / "models").mkdir(parents=True)
    (old / "models" / "mlp.study.json").write_text("{}")
    (old / "results.nc").write_bytes(b"")
    _study_output.check_output(old)


def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["study", "--out", str(tmp_path / "f")]) == 2
    _one_line_error(capsys, f"--out: output folder {str(tmp_path / 'f')!r} exists and is not a folder.")


# ----------------------------------------------------------------------------- devices
def test_missing_cuda_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _no_work(monkeypatch)
    assert main(["study", "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "--device 'cuda': no CUDA device is available here", "use --device cpu")
    assert main(["study", "--device", "gpu0", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "--device 'gpu0' is not a torch device")
    with pytest.raises(ValueError, match="device='cuda', but this machine has 0 usable CUDA device"):
        study.run(out=tmp_path / "o2", device="cuda", progress=False)


# ----------------------------------------------------------------------------- a real (tiny) run
TINY = dataclasses.replace(
    study.StudyConfig.make(quick=True), n_hidden=64, epochs=3, n_train=600, n_eval=200, n_attack=20,
    n_bootstraps=3, n_pairs=50, n_tuning_units=2, tuning_resolution=8, eps=(0.01, 0.3), pgd_steps=2,
    n_bisect=2, n_noise_draws=1, surrogate_epochs=1)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`geomkit study --overwrite` of the mlp alone at TINY sizes into a folder that holds a user's files."""
    import torch

    out = tmp_path_factory.mktemp("cli") / "out"
    out.mkdir()
    (out / "summary.csv").write_text("a user's table\n")
    (out / "thesis.tex").write_text("kept")
    mp = pytest.MonkeyPatch()
    mp.setattr(study.StudyConfig, "make", classmethod(lambda cls, quick: TINY))
    mp.setattr(study, "ZOO", ("mlp",))
    threads = torch.get_num_threads()
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(["study", "--data", "digits", "--out", str(out), "--no-progress", "--overwrite"])
    finally:
        mp.undo()
        torch.set_num_threads(threads)
    return out, code, err.getvalue()


def test_cli_run_writes_its_outputs_and_logs_its_notes(cli_run):
    out, code, err = cli_run
    assert code == 0
    assert (out / "thesis.tex").read_text() == "kept"
    # two tidy tables; a summary.csv that geomkit did not write (no marker) stays as it was
    assert (out / "summary_models.csv").read_text().startswith("seed,model,")
    assert (out / "summary_layers.csv").read_text().startswith("seed,model,layer,")
    assert (out / "summary.csv").read_text() == "a user's table\n"
    assert (out / _study_output.MARKER).is_file()
    models = out / "models" / "seed0"  # checkpoints are per seed
    assert (models / "mlp" / "state_dict.pt").is_file() and (models / "mlp.study.json").is_file()
    # the notes go through logging ("[geomkit] ..." lines on stderr), not print
    notes = [line for line in err.splitlines() if line.startswith("[geomkit] ")]
    assert notes[0] == "[geomkit] data 'digits': 600 training and 200 held-out images of 64 pixels"
    assert any(line.startswith("[geomkit] seed 0: mlp: test accuracy") for line in notes)
    assert not any("Jacobian of" in line for line in notes)  # other modules' INFO records stay out
    assert logging.getLogger("geomkit").handlers == []  # main() leaves logging as it found it
    assert not list(out.parent.glob(".*geomkit-partial"))  # the staging folder is gone


def _snapshot(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_interrupted_rerun_leaves_out_unchanged_and_is_resumed(cli_run, monkeypatch, caplog, capsys):
    out, code, _ = cli_run
    assert code == 0
    before = _snapshot(out)

    def interrupt(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(study, "_measure", interrupt)
    with pytest.raises(KeyboardInterrupt):  # jobs=1: the patched _measure runs in this process
        study.run(data="digits", out=out, models=["mlp"], config=dataclasses.replace(TINY, epochs=2),
                  progress=False, jobs=1)
    # the command line says so in one line, exit status 130 (as a shell reports SIGINT)
    monkeypatch.setattr(study, "run", interrupt)
    assert main(["study", "--out", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err == (f"geomkit: interrupted; {out} is as it was (the checkpoints trained so "
                                       "far are reused by the next run)\n")
    # Ctrl-C after retraining: the old report still sits beside the old checkpoint, nothing half-written
    assert _snapshot(out) == before
    staged = out.parent / f".{out.name}.geomkit-partial" / "models" / "seed0"
    assert (staged / "mlp" / "state_dict.pt").is_file() and (staged / "mlp.study.json").is_file()
    monkeypatch.undo()

    with caplog.at_level(logging.INFO, logger="geomkit"):
        ds = study.run(data="digits", out=out, models=["mlp"], config=dataclasses.replace(TINY, epochs=2),
                       progress=False)
    notes = ds.attrs["notes"]
    assert "an interrupted run left the checkpoints of seed0/mlp" in notes
    assert f"seed 0: mlp: reusing the checkpoint in {staged / 'mlp'}" in notes
    assert [r.name for r in caplog.records if "reusing the checkpoint" in r.message] == ["geomkit.study"]
    after = _snapshot(out)
    assert after["models/seed0/mlp/state_dict.pt"] != before["models/seed0/mlp/state_dict.pt"]
    assert json_epochs(out) == 2
    assert not staged.parent.parent.exists()


def json_epochs(out):
    import json

    return json.loads((out / "models" / "seed0" / "mlp.study.json").read_text())["params"]["epochs"]


def test_commit_moves_this_runs_checkpoints_and_keeps_the_others_waiting(tmp_path):
    out = tmp_path / "out"
    (out / "models" / "a").mkdir(parents=True)
    (out / "models" / "a" / "w").write_text("old a")
    (out / "models" / "a.study.json").write_text("old stamp")
    (out / "results.nc").write_text("old results")
    output, left = _study_output.prepare_output(out)
    assert left == [] and not output.staging.exists()
    for name in ("a", "b"):  # b: left by an interrupted run, not part of this run's report
        (output.staged_models / name).mkdir(parents=True)
        (output.staged_models / name / "w").write_text(f"new {name}")
        (output.staged_models / f"{name}.study.json").write_text(f"new stamp {name}")
    output.staged("results.nc").write_text("new results")
    output.commit(["a"])
    assert (out / "models" / "a" / "w").read_text() == "new a"
    assert (out / "models" / "a.study.json").read_text() == "new stamp a"
    assert (out / "results.nc").read_text() == "new results"
    assert not (out / "models" / "b").exists()
    assert sorted(p.name for p in output.staging.rglob("*")) == ["b", "b.study.json", "models", "w"]
    output.release()
    # the next run finds b and commits it with its report; then the staging folder is gone
    output, left = _study_output.prepare_output(out)
    assert left == ["b"]
    output.staged("results.nc").write_text("newer results")
    output.commit(["a", "b"])
    assert (out / "models" / "b" / "w").read_text() == "new b"
    assert (out / "models" / "a" / "w").read_text() == "new a"  # not staged this time: kept
    assert not output.staging.exists()


def test_commit_removes_the_single_summary_of_an_earlier_version(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("seed,model,layer,alpha,accuracy\n")  # the one wide table of before
    (out / "report.html").write_text("<title>geomkit study report</title>")
    (out / _study_output.MARKER).write_text("{}")
    output, _ = _study_output.prepare_output(out)
    output.staged("summary_models.csv").write_text("seed,model,accuracy\n")
    output.staged("summary_layers.csv").write_text("seed,model,layer,alpha\n")
    output.commit([])
    assert sorted(p.name for p in out.glob("summary*.csv")) == ["summary_layers.csv", "summary_models.csv"]
    assert (out / "report.html").is_file()


# ----------------------------------------------------------------------------- one run per folder
def test_a_second_run_on_the_same_out_is_refused_and_leaves_the_first_ones_work(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    first, _ = _study_output.prepare_output(out)
    first.staged("results.nc").write_text("the first run's, half written")
    (first.staged_models / "mlp").mkdir(parents=True)
    (first.staged_models / "mlp.study.json").write_text("{}")
    lock = out / _study_output.LOCK
    assert f"pid {os.getpid()}" in lock.read_text()
    _no_work(monkeypatch)
    assert main(["study", "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, f"another geomkit study is writing to {str(out)!r} (pid {os.getpid()} on ",
                    "wait for it to finish or choose another output folder")
    with pytest.raises(BlockingIOError, match="another geomkit study is writing"):
        study.run(out=out, progress=False)
    # nothing of the first run was cleaned away by the refused ones
    assert first.staged("results.nc").read_text() == "the first run's, half written"
    assert (first.staged_models / "mlp.study.json").is_file()
    first.release()
    assert not lock.exists()
    second, left = _study_output.prepare_output(out)  # free again: the next run resumes the checkpoint
    assert left == ["mlp"]
    second.release()


def test_the_lock_of_a_run_that_died_does_not_block_the_next(tmp_path):
    out = tmp_path / "run"
    code = ("import os, sys\n"
            "from geomkit import _study_output\n"
            "_study_output.prepare_output(sys.argv[1])\n"
            "os._exit(9)  # killed: no release, no clean-up\n")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    assert (out / _study_output.LOCK).is_file()  # left behind, but the OS dropped the lock with the process
    output, _ = _study_output.prepare_output(out)
    assert f"pid {os.getpid()}" in (out / _study_output.LOCK).read_text()
    output.release()
    # a left-over lock file alone does not make the folder foreign
    (out / _study_output.LOCK).write_text("stale")
    _study_output.check_output(out)


def test_a_folder_that_cannot_be_locked_runs_unguarded_with_a_warning(tmp_path, monkeypatch):
    import errno

    def no_locks(fh):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(_study_output, "_lock_file", no_locks)
    with pytest.warns(RuntimeWarning, match=r"cannot lock the output folder .*No locks available"):
        output, _ = _study_output.prepare_output(tmp_path / "nfs")
    assert not (tmp_path / "nfs" / _study_output.LOCK).exists()
    output.release()  # nothing held: a no-op
