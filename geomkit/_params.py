"""Declarative parameter constraints, checked once per public call.

In the spirit of scikit-learn's ``_parameter_constraints``, with geomkit's
wording: every error names the parameter, what was received and what is
accepted. An estimator declares

>>> class Est:
...     _parameter_constraints = {
...         "n_bootstraps": [Integer(0, None)],
...         "confidence_level": [Real(0, 1, closed="neither")],
...         "kernel": [Options("linear", "rbf")],
...         "random_state": [RANDOM_STATE],
...     }

and calls ``validate_params(self.get_params(), self._parameter_constraints,
caller="Est")`` at the start of ``fit``; a plain function calls
:func:`validate_params` with a dict of its arguments. A parameter is valid if
it satisfies any one of its constraints (``None`` in the list admits None).

Renamed parameters keep working for one release through
:func:`renamed_parameter`, which warns with a ``DeprecationWarning``.
"""

from __future__ import annotations

import difflib
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Integer",
    "Real",
    "Options",
    "Boolean",
    "RandomStateConstraint",
    "RANDOM_STATE",
    "InstanceOf",
    "validate_params",
    "check_random_state",
    "random_seed",
    "renamed_parameter",
    "DEPRECATED",
]

_INT_SEED_MAX = 2**63 - 1  # what numpy's SeedSequence and torch's manual_seed both accept


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Integer:
    """An integer in ``[low, high]`` (a bound of None is open-ended)."""

    low: int | None = None
    high: int | None = None

    def is_satisfied_by(self, value: Any) -> bool:
        if not _is_int(value):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer in [{self.low}, {self.high}]"
        if self.low is not None:
            return f"an integer >= {self.low}"
        if self.high is not None:
            return f"an integer <= {self.high}"
        return "an integer"


@dataclass(frozen=True)
class Real:
    """A finite real number between ``low`` and ``high``.

    ``closed`` is one of ``"both"``, ``"left"``, ``"right"``, ``"neither"``
    and says which bounds are included. Integers count as reals.
    """

    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def is_satisfied_by(self, value: Any) -> bool:
        if not _is_real(value) or not np.isfinite(float(value)):
            return False
        v = float(value)
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (v < self.low or (not left and v == self.low)):
            return False
        if self.high is not None and (v > self.high or (not right and v == self.high)):
            return False
        return True

    def __str__(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        lb = "[" if self.closed in ("both", "left") and self.low is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        if self.low is None and self.high is None:
            return "a finite real number"
        return f"a finite real number in {lb}{lo}, {hi}{rb}"


class Options:
    """One of a fixed set of values (compared with ``==``, strings exactly)."""

    def __init__(self, *options: Any) -> None:
        self.options = tuple(options)

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return any(type(value) is type(o) and value == o for o in self.options) or (
                not isinstance(value, str) and value in self.options
            )
        except TypeError:  # unhashable / incomparable values
            return False

    def closest(self, value: Any) -> list[str]:
        if not isinstance(value, str):
            return []
        names = [o for o in self.options if isinstance(o, str)]
        return difflib.get_close_matches(value, names, n=3, cutoff=0.5)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


class Boolean:
    """``True`` or ``False`` (numpy bools too; not 0 / 1)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def __str__(self) -> str:
        return "True or False"


class RandomStateConstraint:
    """None, an integer in [0, 2**63 - 1], a numpy Generator or RandomState."""

    def is_satisfied_by(self, value: Any) -> bool:
        if value is None or isinstance(value, (np.random.Generator, np.random.RandomState)):
            return True
        return _is_int(value) and 0 <= value <= _INT_SEED_MAX

    def __str__(self) -> str:
        return "None, an integer in [0, 2**63 - 1], a numpy.random.Generator or RandomState"


RANDOM_STATE = RandomStateConstraint()


class InstanceOf:
    """An instance of one of ``types``."""

    def __init__(self, *types: type, description: str | None = None) -> None:
        self.types = types
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def __str__(self) -> str:
        if self.description:
            return self.description
        return "an instance of " + " or ".join(t.__name__ for t in self.types)


def _describe(constraints: Sequence[Any]) -> str:
    parts = ["None" if c is None else str(c) for c in constraints]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def validate_params(
    params: Mapping[str, Any], constraints: Mapping[str, Sequence[Any]], *, caller: str
) -> None:
    """Check every parameter named in ``constraints`` against its constraints.

    Parameters
    ----------
    params : mapping of str to object
        The parameter values (``est.get_params(deep=False)`` or a function's
        arguments). Names absent from ``params`` are not checked.
    constraints : mapping of str to list
        For each parameter, the accepted constraints (any one suffices);
        ``None`` admits the value None.
    caller : str
        The estimator or function name, used in the message.

    Raises
    ------
    TypeError
        When the value has a wrong type for every constraint.
    ValueError
        When its type is right for some constraint but its value is not.

    Examples
    --------
    >>> validate_params({"k": 3}, {"k": [Integer(1, None)]}, caller="f")
    >>> validate_params({"k": 0}, {"k": [Integer(1, None)]}, caller="f")
    Traceback (most recent call last):
    ...
    ValueError: f: k must be an integer >= 1; got 0.
    """
    for name, accepted in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if any((c is None and value is None) or (c is not None and c.is_satisfied_by(value))
               for c in accepted):
            continue
        message = f"{caller}: {name} must be {_describe(accepted)}; got {value!r}"
        hints = [h for c in accepted if isinstance(c, Options) for h in c.closest(value)]
        if hints:
            message += f" (did you mean {' or '.join(repr(h) for h in hints)}?)"
        raise _error_type(value, accepted)(message + ".")


def _error_type(value: Any, accepted: Sequence[Any]) -> type[Exception]:
    """TypeError for a wrong kind of value, ValueError for a right kind out of range."""
    for c in accepted:
        if isinstance(c, Integer) and _is_int(value):
            return ValueError
        if isinstance(c, Real) and _is_real(value):
            return ValueError
        if isinstance(c, RandomStateConstraint) and _is_int(value):
            return ValueError
        if isinstance(c, Options) and isinstance(value, type(next(iter(c.options), None))):
            return ValueError
    return TypeError


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """Return a numpy Generator for ``random_state``, or raise naming ``name``.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        None draws fresh entropy; an integer in [0, 2**63 - 1] seeds a new
        Generator; a Generator is used as it is; a RandomState seeds a new
        Generator from one draw (so it advances, as scikit-learn's do).
    name : str, default="random_state"
        The parameter's name in the error.

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> bool(check_random_state(0).integers(10) == check_random_state(0).integers(10))
    True
    >>> check_random_state(-1)
    Traceback (most recent call last):
    ...
    ValueError: random_state must be None, an integer in [0, 2**63 - 1], a numpy.random.Generator or RandomState; got -1.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if not RANDOM_STATE.is_satisfied_by(random_state):
        kind = ValueError if _is_int(random_state) else TypeError
        raise kind(f"{name} must be {RANDOM_STATE}; got {random_state!r}.")
    return np.random.default_rng(random_state)


def random_seed(random_state: Any, name: str = "random_state") -> int:
    """An integer seed (for torch) from ``random_state``: the int itself, else one draw.

    Examples
    --------
    >>> random_seed(7)
    7
    """
    if _is_int(random_state) and RANDOM_STATE.is_satisfied_by(random_state):
        return int(random_state)
    return int(check_random_state(random_state, name).integers(2**62))


DEPRECATED = "deprecated"
"""Default of a renamed parameter's old name (a string, so that ``clone`` and ``get_params`` keep it)."""


def renamed_parameter(
    old_name: str, old_value: Any, new_name: str, new_value: Any, *, caller: str,
    new_default: Any = None, stacklevel: int = 3,
) -> Any:
    """Resolve a renamed parameter: the new one's value, or the old one's with a warning.

    The old name's default is :data:`DEPRECATED`. When the caller passed the
    old name, its value is returned with a ``DeprecationWarning``; passing
    both names (the new one differing from ``new_default``) raises a
    ``TypeError``.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     renamed_parameter("n_bootstrap", 50, "n_bootstraps", 0, caller="f", new_default=0)
    50
    >>> w[0].category.__name__
    'DeprecationWarning'
    >>> renamed_parameter("n_bootstrap", DEPRECATED, "n_bootstraps", 20, caller="f", new_default=0)
    20
    """
    if isinstance(old_value, str) and old_value == DEPRECATED:
        return new_value
    if not (new_value is new_default or new_value == new_default):
        raise TypeError(
            f"{caller}: got both {old_name}= and {new_name}=; {old_name} is the old name of "
            f"{new_name}, pass only {new_name}."
        )
    warnings.warn(
        f"{caller}: {old_name}= is deprecated and will be removed in the next release; "
        f"use {new_name}= instead.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
    return old_value
