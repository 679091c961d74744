"""Repeated presentations: split-half averages for cross-validated estimators.

Recordings often hold more than two repeats of each stimulus, while cvPCA
(Stringer et al. 2019) needs exactly two independent estimates of the
response. Averaging two disjoint halves of the repeats gives them: the signal
is the same in both halves, and independent trial noise of variance
``sigma^2`` per repeat has variance ``sigma^2 / (n_repeats // 2)`` in each half
and does not correlate across them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._params import check_random_state
from .._validation import to_numpy

__all__ = ["split_half"]


def split_half(responses: Any, *, random_state: Any = None) -> np.ndarray:
    """Average two random disjoint halves of the repeats into a two-repeat array.

    Parameters
    ----------
    responses : array-like of shape (n_repeats, n_stimuli, n_units)
        Numpy, torch or xarray; an :class:`xarray.DataArray` is read by its
        dimension names (``repeat``, ``stimulus``, ``unit``) in any order.
        ``n_repeats >= 2``. With an odd number of repeats, one repeat (drawn at
        random) is left out, with a warning, so both halves average the same
        number of repeats and carry the same noise.
    random_state : None, int or numpy.random.Generator, default=None
        Which repeats go into which half.

    Returns
    -------
    ndarray of shape (2, n_stimuli, n_units), float64
        The mean of each half; ready for ``PowerLawSpectrum(method="cvpca")``
        or :func:`~geomkit.measures.spectrum.cvpca_spectrum`.

    Examples
    --------
    >>> from geomkit.datasets import make_powerlaw_data
    >>> from geomkit.measures import PowerLawSpectrum
    >>> X, _ = make_powerlaw_data(2000, 300, alpha=1.0, noise=0.2, n_repeats=6, random_state=0)
    >>> halves = split_half(X, random_state=0)
    >>> halves.shape
    (2, 2000, 300)
    >>> est = PowerLawSpectrum(method="cvpca", fit_range=(5, 100), random_state=0).fit(halves)
    >>> bool(abs(est.alpha_ - 1.0) < 0.1)
    True
    """
    if type(responses).__module__.startswith("xarray") and hasattr(responses, "dims"):
        missing = {"repeat", "stimulus", "unit"} - set(responses.dims)
        if missing:
            raise ValueError(
                f"responses must have dims ('repeat', 'stimulus', 'unit'); got {responses.dims} "
                f"(missing {sorted(missing)})."
            )
        responses = responses.transpose("repeat", "stimulus", "unit")
    X = to_numpy(responses, "responses")
    if X.ndim != 3:
        raise ValueError(
            f"responses must be (n_repeats, n_stimuli, n_units); got shape {X.shape}."
        )
    if not np.issubdtype(X.dtype, np.number):  # (complex input is refused by to_numpy)
        raise TypeError(f"responses must hold real numbers; got dtype {X.dtype}.")
    n_repeats = X.shape[0]
    if n_repeats < 2:
        raise ValueError(f"responses must hold at least 2 repeats; got {n_repeats}.")
    if not np.all(np.isfinite(X)):
        raise ValueError("responses contain NaN or infinity; drop or impute those trials first.")
    order = check_random_state(random_state).permutation(n_repeats)
    half = n_repeats // 2
    if n_repeats % 2:
        warnings.warn(
            f"split_half: {n_repeats} repeats is odd; repeat {int(order[-1])} is left out so "
            f"that both halves average {half}.",
            UserWarning,
            stacklevel=2,
        )
    first = X[np.sort(order[:half])].mean(axis=0, dtype=np.float64)
    second = X[np.sort(order[half : 2 * half])].mean(axis=0, dtype=np.float64)
    return np.stack([first, second])
