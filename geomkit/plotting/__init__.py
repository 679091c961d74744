"""Seaborn figures of every geomkit result type.

One module per result type (``spectrum``, ``sensitivity``, ``categorization``,
``topology``, ``training``, ``robustness``); every public function is
re-exported here and returns the matplotlib ``Axes`` (or ``Figure``) it drew on.
"""

__all__: list[str] = []
