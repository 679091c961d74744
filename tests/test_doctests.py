"""Every docstring Examples section of the package runs, and prints what it says it prints.

DESIGN.md asks for a short Examples section that runs as a doctest; this test is what
keeps them honest. One test per module, so a failure names the module and the example.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import geomkit

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(geomkit.__path__, "geomkit.")
    if not info.name.endswith("__main__")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _own_examples(module_name: str) -> list[doctest.DocTest]:
    """Doctests defined in the module itself (re-exported names are tested at home)."""
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return [t for t in tests if t.examples]


def test_the_package_has_examples():
    # The parametrized test below would pass vacuously if discovery broke.
    assert sum(len(t.examples) for m in MODULES for t in _own_examples(m)) > 300


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that save files write here
    failures = []
    for test in _own_examples(module_name):
        report: list[str] = []
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        result = runner.run(test, out=report.append, clear_globs=True)
        if result.failed:
            failures.append("".join(report))
    assert not failures, "\n".join(failures)
