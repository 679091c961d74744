"""Streaming first and second moments of activations, in float64.

:class:`MomentAccumulator` takes batches of shape (batch, n_units) one at a
time and keeps only the running count, mean and centred sum of squares
(Chan, Golub & LeVeque's pairwise update), so memory does not grow with the
number of stimuli. The result, :class:`Moments`, is what the spectrum
estimators accept instead of raw activations.

When units far outnumber stimuli the stimulus Gram matrix (n x n) is the
cheaper object; its route keeps the (float32) rows until :meth:`~MomentAccumulator.finalize`,
which is still smaller than the n_units x n_units covariance it replaces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._backend import eigvalsh
from ._validation import check_int, check_option, to_numpy

__all__ = ["Moments", "MomentAccumulator", "moments_from_array"]


@dataclass
class Moments:  # numpydoc ignore=PR01
    """Count, mean and second moment of a set of activations.

    Attributes
    ----------
    n_samples : int
        Number of stimuli accumulated.
    mean : ndarray of shape (n_units,)
        Mean activation per unit (float64).
    covariance : ndarray of shape (n_units, n_units) or None
        Sample covariance, normalized by ``n_samples - 1``.
    gram : ndarray of shape (n_samples, n_samples) or None
        Gram matrix of the centred stimuli, normalized by ``n_samples - 1``; it
        has the same non-zero eigenvalues as ``covariance``.
    layer : str or None
        The layer the moments were recorded from, if any.
    attrs : dict
        Free-form metadata, kept through :meth:`to_xarray` / :meth:`from_xarray`.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.moments import moments_from_array
    >>> m = moments_from_array(np.random.default_rng(0).normal(size=(200, 3)))
    >>> m.kind, m.n_samples, m.n_units, m.eigenvalues().shape
    ('covariance', 200, 3, (3,))
    """

    n_samples: int
    mean: np.ndarray
    covariance: np.ndarray | None = None
    gram: np.ndarray | None = None
    layer: str | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        """Number of units (the length of ``mean``)."""
        return int(self.mean.shape[0])

    @property
    def kind(self) -> str:
        """``"covariance"`` or ``"gram"``: which second moment is held."""
        return "covariance" if self.covariance is not None else "gram"

    def eigenvalues(self, device: Any = None) -> np.ndarray:
        """Eigenvalues of the second moment held, descending, in float64.

        The covariance and the Gram matrix have the same non-zero eigenvalues.

        Parameters
        ----------
        device : None, str or torch.device, optional
            Where to compute the eigendecomposition (torch); ``None``: numpy on
            the CPU, where the moments are (see :ref:`devices`).

        Returns
        -------
        ndarray of shape (n_units,) or (n_samples,)
            One eigenvalue per row of the matrix held (covariance: n_units;
            Gram: n_samples).
        """
        matrix = self.covariance if self.covariance is not None else self.gram
        return eigvalsh(matrix, device=device)

    def to_xarray(self):
        """Return the moments as an :class:`xarray.Dataset` (round-trips through netCDF).

        Returns
        -------
        xarray.Dataset
            Variables ``mean`` (dim ``unit``) and ``covariance``
            (``unit``, ``unit_b``) or ``gram`` (``stimulus``, ``stimulus_b``);
            ``n_samples``, ``layer`` and the entries of ``attrs`` as attributes.
        """
        import xarray as xr

        data_vars = {"mean": (("unit",), self.mean)}
        if self.covariance is not None:
            data_vars["covariance"] = (("unit", "unit_b"), self.covariance)
        if self.gram is not None:
            data_vars["gram"] = (("stimulus", "stimulus_b"), self.gram)
        attrs = dict(self.attrs)
        attrs.update(n_samples=int(self.n_samples), layer=self.layer or "")
        return xr.Dataset(data_vars, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds) -> "Moments":
        """Inverse of :meth:`to_xarray`.

        Parameters
        ----------
        ds : xarray.Dataset
            As written by :meth:`to_xarray` (possibly read back from netCDF).

        Returns
        -------
        Moments
            The moments it holds.
        """
        attrs = dict(ds.attrs)
        n = int(attrs.pop("n_samples"))
        layer = attrs.pop("layer", "") or None
        return cls(
            n_samples=n,
            mean=np.asarray(ds["mean"].values),
            covariance=np.asarray(ds["covariance"].values) if "covariance" in ds else None,
            gram=np.asarray(ds["gram"].values) if "gram" in ds else None,
            layer=layer,
            attrs=attrs,
        )


class MomentAccumulator:
    """Accumulate the mean and covariance (or Gram matrix) of batches.

    Parameters
    ----------
    method : {"covariance", "gram"}, default="covariance"
        ``"covariance"`` keeps an (n_units, n_units) float64 matrix and its
        memory does not depend on the number of stimuli; ``"gram"`` keeps the
        rows (in their own precision, at least float32) and forms the
        (n_samples, n_samples) Gram matrix at the end.
    device : None, str or torch.device
        Where to accumulate (torch). ``None``: where the data already are —
        the device of the first batch if it is a tensor, else the CPU (see
        :ref:`devices`).
    max_bytes : int, optional
        Largest covariance (``method="covariance"``) to allocate, in bytes.
        The running (n_units, n_units) float64 matrix and the update's
        temporary of the same size are checked against it on the first
        batch, before anything is allocated. Default: the memory available
        now (free physical memory on the CPU, free memory of a CUDA device).

    Raises
    ------
    MemoryError
        From :meth:`update`, when the covariance would not fit: 20 000 units
        need 2 x 3.2 GB. The message suggests ``method="gram"``, whose size
        grows with the number of stimuli instead.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.moments import MomentAccumulator
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> acc = MomentAccumulator()
    >>> for batch in np.array_split(X, 7):
    ...     acc.update(batch)
    >>> m = acc.finalize()
    >>> bool(np.allclose(m.covariance, np.cov(X, rowvar=False)))
    True
    """

    def __init__(self, method: str = "covariance", device: Any = None, *,
                 max_bytes: int | None = None):
        self.method = check_option(method, "method", ("covariance", "gram"))
        self.device = device
        self.max_bytes = None if max_bytes is None else check_int(max_bytes, "max_bytes", low=1)
        self._n = 0
        self._n_batches = 0
        self._mean = None
        self._m2 = None
        self._rows: list = []

    def update(self, batch: Any) -> None:
        """Add a batch of activations.

        Parameters
        ----------
        batch : ndarray or torch.Tensor of shape (batch, n_units) or (batch, ...)
            Real numbers (any float, integer or bool dtype); trailing axes are
            flattened into units. An empty batch is ignored.

        Raises
        ------
        TypeError
            For complex or non-numeric data.
        ValueError
            For a 1-D batch (ambiguous: one stimulus or one unit?), NaN or
            infinite values, a masked array with masked entries, or a unit
            count that differs from earlier batches.
        MemoryError
            When the covariance would not fit in ``max_bytes`` (see above).
        """
        import torch

        if isinstance(batch, torch.Tensor):
            t = batch.detach()
            device = self.device if self.device is not None else t.device
            if t.is_complex():
                raise TypeError(
                    f"batch must be real-valued; got complex dtype {t.dtype}. Take .real or "
                    ".abs() explicitly if that is what you mean."
                )
        else:
            arr = to_numpy(batch, "batch")  # refuses complex and masked entries, orders DataArrays
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise TypeError(f"batch must be numeric; got dtype {arr.dtype}.")
            t = torch.as_tensor(arr)
            device = self.device if self.device is not None else "cpu"
        if t.ndim < 2:
            raise ValueError(
                f"batch must have shape (batch, n_units) or (batch, ...); got shape "
                f"{tuple(t.shape)}. For one stimulus pass batch[None, :], for one unit "
                "batch[:, None]."
            )
        t = t.reshape(t.shape[0], -1)
        if t.shape[0] == 0:
            return
        if t.device.type != "meta" and not bool(torch.isfinite(t).all()):  # meta holds no values
            n_bad = int((~torch.isfinite(t)).sum())
            raise ValueError(
                f"batch contains {n_bad} NaN or infinite value(s) (batch #{self._n_batches} "
                "fed to the accumulator, counting from 0); geomkit does not impute: remove or replace them first."
            )
        if self._mean is None and self.method == "covariance":
            self._check_memory(t.shape[1], device)
        self._n_batches += 1
        if self._mean is not None and t.shape[1] != self._mean.shape[0]:
            raise ValueError(
                f"batch has {t.shape[1]} units but earlier batches had {self._mean.shape[0]}."
            )
        if self.method == "gram":
            # Rows keep their own precision (float32 activations stay float32, float64 data float64).
            keep = torch.float64 if t.dtype == torch.float64 else torch.float32
            self._rows.append(t.to(device=device, dtype=keep))
        t = t.to(device=device, dtype=torch.float64)
        n_b = t.shape[0]
        mean_b = t.mean(dim=0)
        if self._mean is None:
            self._n, self._mean = n_b, mean_b
            if self.method == "covariance":
                centred = t - mean_b
                self._m2 = centred.T @ centred
            return
        n_a = self._n
        n = n_a + n_b
        delta = mean_b - self._mean
        if self.method == "covariance":
            centred = t - mean_b
            self._m2 += centred.T @ centred
            self._m2 += torch.outer(delta, delta) * (n_a * n_b / n)
        self._mean = self._mean + delta * (n_b / n)
        self._n = n

    def _check_memory(self, n_units: int, device: Any) -> None:
        """Refuse a covariance that would not fit, before allocating it."""
        need = 2 * n_units * n_units * 8  # the running matrix and the update's product
        limit, where = self.max_bytes, "max_bytes"
        if limit is None:
            limit, where = _available_bytes(device)
        if limit is not None and need > limit:
            raise MemoryError(
                f"MomentAccumulator(method='covariance'): {n_units} units need a "
                f"({n_units}, {n_units}) float64 covariance and an update of the same size, "
                f"{_size(need)}, more than the {_size(limit)} of {where}. "
                "Use method='gram' (an (n_stimuli, n_stimuli) matrix; layer_moments(..., "
                "method='gram')), fewer units, or pass max_bytes to override."
            )

    def finalize(self, layer: str | None = None) -> Moments:
        """Return the accumulated :class:`Moments` (float64 numpy arrays).

        Parameters
        ----------
        layer : str, optional
            Stored as ``Moments.layer``.

        Returns
        -------
        Moments
            With ``covariance`` or ``gram`` set, according to ``method``.
        """
        import torch

        if self._n < 2:
            raise ValueError(
                f"at least 2 stimuli are needed for a covariance; {self._n} were accumulated."
            )
        mean = self._mean.cpu().numpy()
        if self.method == "covariance":
            cov = self._m2 / (self._n - 1)
            cov = ((cov + cov.T) / 2).cpu().numpy()
            return Moments(self._n, mean, covariance=cov, layer=layer)
        X = torch.cat(self._rows).to(torch.float64) - self._mean
        gram = ((X @ X.T) / (self._n - 1)).cpu().numpy()
        return Moments(self._n, mean, gram=(gram + gram.T) / 2, layer=layer)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.1f} MB"


def _available_bytes(device: Any) -> tuple[int | None, str]:
    """Free memory where the accumulation happens (None if it cannot be told)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free), f"free memory on {dev}"
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available memory"
    except (ValueError, OSError, AttributeError):  # not POSIX: no check
        return None, "available memory"


def moments_from_array(X: Any, method: str = "auto", device: Any = None, *,
                       max_bytes: int | None = None) -> Moments:
    """Moments of an in-memory array of shape (n_samples, n_units).

    ``method="auto"`` picks the Gram matrix when units outnumber stimuli and
    the covariance otherwise — the cheaper eigenproblem either way.

    Parameters
    ----------
    X : ndarray or torch.Tensor of shape (n_samples, n_units)
        The activations.
    method : {"auto", "covariance", "gram"}, default="auto"
        The second moment to form, as in :class:`MomentAccumulator`.
    device : None, str or torch.device, optional
        Where to accumulate, as in :class:`MomentAccumulator`.
    max_bytes : int, optional
        Largest covariance to allocate, as in :class:`MomentAccumulator`.

    Returns
    -------
    Moments
        Count, mean and covariance or Gram matrix of ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> m = moments_from_array(np.random.default_rng(0).normal(size=(5, 40)))
    >>> m.kind, m.gram.shape
    ('gram', (5, 5))
    """
    import torch

    check_option(method, "method", ("auto", "covariance", "gram"))
    if not isinstance(X, torch.Tensor):
        X = to_numpy(X, "X")
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_units); got shape {tuple(X.shape)}. For one "
            "stimulus pass X[None, :], for one unit X[:, None]."
        )
    n, d = X.shape
    if method == "auto":
        method = "gram" if d > n else "covariance"
    acc = MomentAccumulator(method=method, device=device, max_bytes=max_bytes)
    acc.update(X)
    return acc.finalize()
