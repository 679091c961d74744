"""Where the API reference documents each public object (shared by docs/conf.py and tests).

An object is documented under the module that defines it. A name defined in a private module
(``geomkit.measures._powerlaw.PowerLawFit``) is documented under the first public module that
lists it in ``__all__`` (``geomkit.measures.spectrum``), because ``automodule :members:``
documents what ``__all__`` lists.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache


def is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


@lru_cache(maxsize=1)
def public_modules() -> tuple[str, ...]:
    """Every public module of geomkit, packages first, then by name."""
    import geomkit

    names = [m.name for m in pkgutil.walk_packages(geomkit.__path__, "geomkit.") if not is_private(m.name)]
    return ("geomkit", *sorted(names))


def home(obj, name: str | None = None) -> str | None:
    """Dotted path under which ``obj`` (exported as ``name``) is documented, or None."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname:
        return None
    if not is_private(module):
        return f"{module}.{qualname}"
    name = name or qualname
    packages = {"geomkit", *(m for m in public_modules() if hasattr(importlib.import_module(m), "__path__"))}
    for candidate in public_modules():
        if candidate in packages:
            continue  # packages re-export; their pages do not document members
        mod = importlib.import_module(candidate)
        if name in getattr(mod, "__all__", ()) and getattr(mod, name, None) is obj:
            return f"{candidate}.{name}"
    return None


def public_aliases(obj, name: str) -> list[str]:
    """Every dotted name under which users import ``obj``: its home and each package re-export.

    The tutorials write ``from geomkit.probe import extract``; sphinx-gallery records the
    name as written, so the API entry of ``geomkit.probe.extract.extract`` must ask for
    ``geomkit.probe.extract`` too to list the tutorials that use it.
    """
    short = name.rsplit(".", 1)[-1]
    names = [name]
    for module in public_modules():
        mod = importlib.import_module(module)
        if short in getattr(mod, "__all__", ()) and getattr(mod, short, None) is obj:
            names.append(f"{module}.{short}")
    return list(dict.fromkeys(names))


def minigallery_lines(obj, name: str, backreferences: str) -> list[str]:
    """reST lines that list the tutorials using ``obj`` (none when no tutorial does).

    ``backreferences`` is sphinx-gallery's ``backreferences_dir``: it holds one
    ``<dotted name>.examples`` file per name the tutorials use, empty when unused.
    """
    import os

    def is_used(alias: str) -> bool:
        path = os.path.join(backreferences, f"{alias}.examples")
        return os.path.isfile(path) and os.path.getsize(path) > 0

    used = [alias for alias in public_aliases(obj, name) if is_used(alias)]
    if not used:
        return []
    short = name.rsplit(".", 1)[-1]
    return ["", f".. rubric:: Examples using ``{short}``", "", f".. minigallery:: {' '.join(used)}", ""]
