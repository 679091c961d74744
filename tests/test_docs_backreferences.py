"""API entries list the tutorials that use them ("Examples using X"), under every import path."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from api_homes import minigallery_lines, public_aliases  # noqa: E402


def test_aliases_cover_the_home_and_every_package_reexport():
    from geomkit.probe import extract

    assert public_aliases(extract, "geomkit.probe.extract.extract") == [
        "geomkit.probe.extract.extract", "geomkit.probe.extract"
    ]
    from geomkit.measures.spectrum import PowerLawSpectrum

    aliases = public_aliases(PowerLawSpectrum, "geomkit.measures.spectrum.PowerLawSpectrum")
    assert {"geomkit.PowerLawSpectrum", "geomkit.measures.PowerLawSpectrum"} <= set(aliases)


def test_minigallery_lists_only_names_a_tutorial_uses(tmp_path):
    from geomkit.probe import extract, layer_moments

    # sphinx-gallery writes one file per name it saw, empty when no tutorial uses the name.
    (tmp_path / "geomkit.probe.extract.examples").write_text(".. raw:: html\n\n   <div>plot_probe</div>\n")
    (tmp_path / "geomkit.probe.layer_moments.examples").write_text("")
    lines = minigallery_lines(extract, "geomkit.probe.extract.extract", str(tmp_path))
    assert ".. minigallery:: geomkit.probe.extract" in lines
    assert ".. rubric:: Examples using ``extract``" in lines
    assert minigallery_lines(layer_moments, "geomkit.probe.extract.layer_moments", str(tmp_path)) == []
    assert minigallery_lines(extract, "geomkit.probe.extract.extract", str(tmp_path / "absent")) == []


def test_conf_records_backreferences_for_the_package():
    text = (ROOT / "docs" / "conf.py").read_text()
    assert '"doc_module": ("geomkit",)' in text and '"backreferences_dir"' in text
    assert 'app.connect("autodoc-process-docstring", _add_minigallery)' in text
