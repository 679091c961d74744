"""Progress bars: one helper, so that ``progress=False`` and ``TQDM_DISABLE`` mean the same everywhere.

tqdm reads ``TQDM_DISABLE`` only as the default of its ``disable`` argument, so a call that passes
``disable=not progress`` shows the bar in spite of the variable; :func:`progress_bar` combines both.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

_FALSE = ("", "0", "false", "no", "off")


def progress_enabled(progress: bool) -> bool:
    """Whether to draw a bar: ``progress`` is true and the ``TQDM_DISABLE`` variable is unset or false."""
    return bool(progress) and os.environ.get("TQDM_DISABLE", "").strip().lower() in _FALSE


def progress_bar(iterable: Iterable[Any] | None = None, *, progress: bool, desc: str | None = None,
                 total: int | None = None, unit: str = "it", leave: bool = True):
    """A tqdm bar over ``iterable``, disabled (a silent pass-through) unless :func:`progress_enabled`.

    Always a tqdm object, so ``set_postfix`` / ``update`` / ``with`` work either way.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, disable=not progress_enabled(progress))
