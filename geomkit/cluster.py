"""Run geomkit's streamed spectra on a dask.distributed cluster.

Every estimator that accepts dask-backed data (:class:`~geomkit.PowerLawSpectrum`,
:func:`~geomkit.eigenspectrum`, :func:`~geomkit.measures.spectrum.cvpca_spectrum`)
computes with ``dask.compute``, which uses the active
:class:`distributed.Client` when there is one and dask's threaded scheduler
otherwise. :func:`dask_client` makes one active for a ``with`` block: it
connects to an existing scheduler (``scheduler_address``) or starts a
:class:`distributed.LocalCluster` (``n_workers``), and closes what it started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._validation import check_int

__all__ = ["dask_client"]


@contextlib.contextmanager
def dask_client(
    scheduler_address: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | float = "auto",
    processes: bool = True,
    **cluster_kwargs: Any,
) -> Iterator[Any]:
    """Make a dask.distributed client the active scheduler for a ``with`` block.

    Parameters
    ----------
    scheduler_address : str, optional
        Address of a running scheduler (e.g. ``"tcp://10.0.0.5:8786"``, as
        printed by ``dask scheduler``); the client connects to it and the
        cluster is left running afterwards.
    n_workers : int, optional
        Without ``scheduler_address``: start a :class:`distributed.LocalCluster`
        of this many worker processes (default: one per core, as dask decides),
        closed at the end of the block.
    threads_per_worker : int, default=1
        Threads per local worker. One: dask's nannies start each worker
        process with one BLAS thread (``OMP_NUM_THREADS=1``), so one worker
        per core with one thread each keeps every core on a chunk product,
        and each worker holds one chunk and one accumulator.
    memory_limit : str or float, default="auto"
        Per local worker (dask's syntax, e.g. ``"2GB"``); the streamed spectra
        size their passes to it and raise a ``MemoryError`` when one chunk's
        accumulators cannot fit.
    processes : bool, default=True
        Local workers as processes (False: threads of this process).
    **cluster_kwargs
        Passed on to :class:`distributed.LocalCluster`.

    Yields
    ------
    distributed.Client
        The active client.

    Examples
    --------
    >>> import dask.array as da
    >>> from geomkit import eigenspectrum
    >>> from geomkit.cluster import dask_client
    >>> X = da.random.default_rng(0).standard_normal((20000, 3), chunks=(5000, 3)) * [3.0, 2.0, 1.0]
    >>> with dask_client(n_workers=1, processes=False, dashboard_address=None):
    ...     eigenspectrum(X).round(1).tolist()
    [9.0, 4.0, 1.0]
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - the 'large' extra is missing
        raise ImportError(
            "dask_client needs dask.distributed: pip install 'geomkit[large]'"
        ) from err
    if scheduler_address is not None:
        if not isinstance(scheduler_address, str):
            raise TypeError(
                "scheduler_address must be a string such as 'tcp://host:8786'; got "
                f"{type(scheduler_address).__name__}."
            )
        with Client(scheduler_address) as client:
            yield client
        return
    if n_workers is not None:
        n_workers = check_int(n_workers, "n_workers", low=1)
    threads_per_worker = check_int(threads_per_worker, "threads_per_worker", low=1)
    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        memory_limit=memory_limit,
        processes=processes,
        **cluster_kwargs,
    ) as cluster, Client(cluster) as client:
        yield client
