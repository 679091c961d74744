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
