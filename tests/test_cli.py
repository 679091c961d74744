import subprocess
import sys

from geomkit import __version__
from geomkit.cli import main


def test_info_reports_versions_device_and_data(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    import torch

    assert f"geomkit {__version__}" in out
    assert f"torch         {torch.__version__}" in out
    assert "torch device: cpu" in out or "torch device: cuda" in out
    assert "mnist5k  found: 5000 images of 784 pixels, 10 classes" in out
    assert "digits   found: 1797 images of 64 pixels, 10 classes" in out


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "geomkit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "info" in out and "usage: geomkit" in out


def _console_script():
    import os
    import shutil

    import pytest

    # The venv's bin folder may not be on PATH when pytest is started as .venv/bin/python -m pytest.
    found = shutil.which("geomkit") or shutil.which("geomkit", path=os.path.dirname(sys.executable))
    if found is None:
        pytest.skip("the geomkit console script is not installed")
    return found


def test_installed_console_script_help_and_info():
    script = _console_script()
    help_out = subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout
    assert help_out.startswith("usage: geomkit")
    for command in ("study", "report", "info"):
        assert command in help_out
    info = subprocess.run([script, "info"], capture_output=True, text=True, check=True, timeout=120)
    assert f"geomkit {__version__}" in info.stdout
    assert "digits   found: 1797 images of 64 pixels, 10 classes" in info.stdout
    assert "mnist5k  found: 5000 images of 784 pixels, 10 classes" in info.stdout


def test_help_imports_no_heavy_library():
    # `geomkit --help` took 1.8 s when geomkit/__init__ imported torch, scikit-learn and xarray eagerly
    # (0.04 s lazily, measured on the 2-core dev machine); the import set, unlike a time, is deterministic
    code = ("import sys; from geomkit.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'xarray', 'numpy', 'scipy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_public_names_import_lazily():
    import geomkit

    for name in geomkit.__all__:
        assert getattr(geomkit, name) is not None, name
    from geomkit import NetClassifier, PowerLawSpectrum
    from geomkit.measures import PowerLawSpectrum as same
    from geomkit.train import NetClassifier as same_net

    assert PowerLawSpectrum is same and NetClassifier is same_net
    assert geomkit.probe.extract is __import__("geomkit.probe", fromlist=["extract"]).extract
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        geomkit.nonexistent
