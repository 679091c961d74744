"""Attacks by name: ``make_attack("apgd-ce", eps=0.1)``.

A name maps to an :class:`~geomkit.probe.attacks.base.Attack` subclass and
default parameters (``"pgd-margin"`` is :class:`PGD` with ``loss="margin"``).
The names are those of :class:`geomkit.AdversarialRobustness`'s ``attacks``;
a user subclass registered with :func:`register_attack` is available there too.
"""

from __future__ import annotations

import difflib
from typing import Any

from .base import Attack

__all__ = ["make_attack", "register_attack", "available_attacks", "attack_spec"]

_REGISTRY: dict[str, tuple[type, dict]] = {}


def register_attack(name: str, cls: type, *, overwrite: bool = False, **defaults: Any) -> None:
    """Make ``cls`` (an :class:`Attack` subclass) available as ``name``.

    Parameters
    ----------
    name : str
        The attack's name, lower case, modifiers joined by "-" ("pgd-margin").
    cls : type
        A subclass of :class:`~geomkit.probe.attacks.base.Attack`.
    overwrite : bool, default=False
        Replace an attack already registered under ``name``.
    **defaults
        Parameters this name sets (``loss="margin"``); the caller's override them.

    Examples
    --------
    >>> from geomkit.probe.attacks import PGD
    >>> register_attack("pgd-50", PGD, steps=50)
    >>> make_attack("pgd-50", eps=0.1).steps
    50
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string; got {name!r}.")
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise TypeError(f"cls must be a subclass of geomkit.probe.attacks.Attack; got {cls!r}.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"an attack named {name!r} is registered already; pass overwrite=True "
                         "to replace it.")
    _REGISTRY[name] = (cls, dict(defaults))


def available_attacks() -> list[str]:
    """The registered attack names, sorted.

    Returns
    -------
    list of str
        Every name :func:`make_attack` accepts.

    Examples
    --------
    >>> {"pgd", "apgd-ce", "square", "autoattack"} <= set(available_attacks())
    True
    """
    return sorted(_REGISTRY)


def attack_spec(name: Any, param: str = "name") -> tuple[type, dict]:
    """The class and default parameters registered under ``name`` (a clear error if none).

    Parameters
    ----------
    name : str
        A registered attack name.
    param : str, default="name"
        The parameter's name in the error message.

    Returns
    -------
    (type, dict)
        The :class:`Attack` subclass and the parameters the name sets.

    Examples
    --------
    >>> cls, params = attack_spec("pgd-margin")
    >>> cls.__name__, params
    ('PGD', {'loss': 'margin'})
    """
    if not isinstance(name, str):
        raise TypeError(f"{param} must hold attack names (strings); got {name!r}.")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{param} must be one of the registered attacks "
                         f"({', '.join(available_attacks())}); got unknown attack {name!r}.{hint}")
    cls, defaults = _REGISTRY[name]
    return cls, dict(defaults)


def make_attack(name: str, **params: Any) -> Attack:
    """The attack registered as ``name``, made with ``params``.

    Parameters
    ----------
    name : str
        A registered name (:func:`available_attacks`): ``"fgsm"``, ``"pgd"``,
        ``"pgd-margin"``, ``"pgd-f64"``, ``"pgd-t"`` (targeted), ``"apgd-ce"``,
        ``"apgd-dlr"``, ``"apgd-t"``, ``"fab-t"``, ``"square"``,
        ``"autoattack"``, ``"noise"``, ``"noise-gaussian"``, ``"transfer"``, ...
    **params
        Parameters of the attack's class (``eps``, ``norm``, ``steps``, ...);
        they override the name's defaults.

    Returns
    -------
    Attack
        A ready attack; call ``attack.perturb(model, X, y)``.

    Examples
    --------
    >>> make_attack("pgd-margin", eps=0.1)
    PGD(eps=0.1, norm='linf', loss='margin', targeted=False)
    >>> make_attack("pgd-margn")
    Traceback (most recent call last):
    ...
    ValueError: name must be one of the registered attacks (...); got unknown attack 'pgd-margn'. Did you mean 'pgd-margin'?
    """
    cls, defaults = attack_spec(name)
    return cls(**{**defaults, **params})
