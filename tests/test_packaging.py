"""Every hard dependency is used by geomkit's own code; test-only peers are extras."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Distribution name -> import name, where they differ.
IMPORT_NAMES = {"scikit-learn": "sklearn", "netCDF4": "netCDF4"}
# Used without an import statement of ours: xarray loads it as the engine of to_netcdf /
# open_dataset (netCDF-4 files keep int64 and long variable names; scipy's netCDF-3 does not).
USED_THROUGH_ANOTHER_PACKAGE = {"netCDF4": "xarray's netCDF-4 engine"}


def _requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_hard_dependency_is_imported_by_the_package():
    source = "\n".join(p.read_text() for p in (ROOT / "geomkit").rglob("*.py"))
    unused = []
    for spec in _project()["dependencies"]:
        name = _requirement_name(spec)
        if name in USED_THROUGH_ANOTHER_PACKAGE:
            continue
        module = IMPORT_NAMES.get(name, name)
        if not re.search(rf"^\s*(import|from)\s+{re.escape(module)}\b", source, re.MULTILINE):
            unused.append(name)
    assert not unused, f"hard dependencies geomkit never imports (make them extras): {unused}"


def test_test_peers_are_in_the_test_extra_not_the_dependencies():
    project = _project()
    hard = {_requirement_name(s) for s in project["dependencies"]}
    test = {_requirement_name(s) for s in project["optional-dependencies"]["test"]}
    for peer in ("powerlaw", "ripser", "torchattacks"):
        assert peer in test and peer not in hard, peer
