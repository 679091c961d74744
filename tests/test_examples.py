"""Every tutorial in examples/ runs, in its small mode, so a broken tutorial fails CI."""

import os
import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_in_small_mode(path, monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("GEOMKIT_SMALL", "1")
    monkeypatch.chdir(tmp_path)
    try:
        namespace = runpy.run_path(str(path), run_name="__main__")
    finally:
        n_figures = len(plt.get_fignums())
        plt.close("all")
    # A tutorial tells its story with figures.
    assert n_figures >= 1, f"{path.name} drew no figure"
    assert namespace  # the script ran to its end
