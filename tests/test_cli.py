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
