"""Sphinx configuration: numpydoc API reference and a sphinx-gallery of the examples."""

import os
import re
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gallery_order, api_homes
os.environ.setdefault("MPLBACKEND", "Agg")
# The gallery executes every example. Small mode (the sizes the test suite uses) keeps a docs build
# on a laptop CPU to a few minutes; GEOMKIT_SMALL=0 sphinx-build ... runs the examples at full size.
os.environ.setdefault("GEOMKIT_SMALL", "1")

project = "geomkit"
author = "geomkit developers"
copyright = "2026, geomkit developers"

try:
    from geomkit import __version__ as release
except Exception:  # pragma: no cover
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
# Methods a class inherits from a private base of ours (fit / score of the flatness estimators)
# are part of its API and are shown; those of scikit-learn, torch and Python bases are not.
autodoc_default_options = {
    "members": True,
    "inherited-members": "BaseEstimator,TransformerMixin,ClassifierMixin,RegressorMixin,Module,"
    "Sequential,ModuleList,ModuleDict,Warning,Exception,BaseException,object,"
    # the private scikit-learn bases that define get_metadata_routing and set_output
    "_MetadataRequester,_SetOutputMixin",
}
# A method without a docstring of its own (a torch ``forward``) is not shown with its parent's.
autodoc_inherit_docstrings = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Docstring checks run on every documented object; a failure is a build warning. The same codes
# are asserted by tests/test_docs.py, which reads this set. Left out, on purpose: ES01 / SA01
# (extended summary, See Also: optional), EX01 (tested on the re-exported names only),
# PR03 / PR04 / PR07 (the code base documents related parameters together, "model, X, y : As in
# pgd"), SS05 (its heuristic flags noun phrases such as "Eigenvalues of ..."), GL01 / GL02 (layout).
numpydoc_validation_checks = {
    "GL03", "GL05", "GL06", "GL07", "GL08", "GL09", "GL10",
    "SS01", "SS02", "SS03", "SS04",
    "PR01", "PR02", "PR05", "PR06", "PR10",
    "RT01", "YD01",
}
# Members inherited from scikit-learn / torch and dataclass boilerplate are not ours to document.
numpydoc_validation_exclude = {r"\.__init__$", r"\.set_\w+_request$", r"\.__repr__$"}

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.StoryOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    # "Examples using X" under each API entry: sphinx-gallery records which names each
    # tutorial uses; _add_minigallery appends the list to the entry's docstring.
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("geomkit",),
}


def _online(host: str = "docs.python.org", port: int = 443, timeout: float = 2.0) -> bool:
    if os.environ.get("GEOMKIT_DOCS_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


# Links to the Python, NumPy, ... docs need their inventories from the network. Offline (or with
# GEOMKIT_DOCS_OFFLINE=1) intersphinx is given nothing to fetch, so the build does not print one
# "failed to reach any of the inventories" warning per project; such references stay plain text.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "xarray": ("https://docs.xarray.dev/en/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "torch": ("https://pytorch.org/docs/stable", None),
} if _online() else {}

html_theme = "pydata_sphinx_theme"
html_title = "geomkit"
html_static_path = ["_static"]
exclude_patterns = ["_build", "generated", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]


def _write_if_changed(path: Path, text: str) -> None:
    # Sphinx re-reads the pages that include a file whose time stamp changed.
    path.parent.mkdir(exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _write_cli_help(path: Path) -> None:
    """Write ``geomkit --help`` and each subcommand's help, for api.rst to include."""
    import argparse

    from geomkit.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width; fix it
    parser = build_parser()
    parts = ["$ geomkit --help", parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"$ geomkit {name} --help", sub.format_help()]
    _write_if_changed(path, "\n".join(parts))


def _write_reexports(folder: Path) -> None:
    """Write, per package, an autosummary table of the classes and functions in its ``__all__``,
    each linked to its entry under the defining module (the tables cannot go stale)."""
    import importlib
    import inspect

    for package in ("geomkit", "geomkit.probe", "geomkit.measures", "geomkit.plotting", "geomkit.train"):
        module = importlib.import_module(package)
        rows = []
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and home(obj, name):
                # relative to the package: the table is read with it as the current module, and
                # autosummary refuses names that repeat the current module
                rows.append(f"   ~{home(obj, name).removeprefix(package + '.')}")
        title = "the top-level package" if package == "geomkit" else package
        text = f".. rubric:: Importable from {title}\n\n.. autosummary::\n\n" + "\n".join(rows) + "\n"
        _write_if_changed(folder / f"reexports_{package}.rst", text if rows else "")


from api_homes import home, minigallery_lines  # noqa: E402  (needs the sys.path entry above)

_GENERATED = Path(__file__).parent / "generated"
_write_cli_help(_GENERATED / "cli_help.txt")
_write_reexports(_GENERATED)


def _resolve_reexport(app, env, node, contnode):
    """Resolve a reference to a re-exported name (``geomkit.probe.extract``, the function, or
    ``geomkit.FisherFlatness``) to the object's entry under its defining module."""
    import importlib

    target = node.get("reftarget", "")
    if node.get("refdomain") != "py":
        return None
    if not target.startswith("geomkit."):
        # A bare name in a package's docstring or table: look it up in that package.
        module = node.get("py:module") or ""
        if not module.startswith("geomkit"):
            return None
        target = f"{module}.{target}"
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        break
    real = home(obj, parts[-1])
    if not real or real == target:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], real, node, contnode)


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn generates set_{fit,score,...}_request on every estimator class: not ours.
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def _add_minigallery(app, what, name, obj, options, lines):
    if what in ("function", "class") and name.startswith("geomkit."):
        backreferences = os.path.join(app.srcdir, sphinx_gallery_conf["backreferences_dir"])
        lines.extend(minigallery_lines(obj, name, backreferences))


def setup(app):
    app.connect("autodoc-process-docstring", _add_minigallery)
    app.connect("missing-reference", _resolve_reexport)
    app.connect("autodoc-skip-member", _skip_member)
