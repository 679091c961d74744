"""Chunk-wise sums on dask in which no partial sum waits or travels between tasks.

A streamed spectrum adds, over the chunks of an array, a float64 product of
``n_units^2`` numbers (32 MB at 2048 units). Returned as ordinary dask
results, these partial sums wait in a worker's memory until the task that
adds them runs, and travel between workers to meet. Here each chunk task
adds its chunk into an accumulator that stays in the process that runs it,
one per worker thread (kept on the ``distributed.Worker`` object, or in this
module under dask's local schedulers), and returns only ``(where, start)``.
After the pass one task per worker hands its accumulators over, and those
are added in a tree, ``SPLIT_EVERY`` at a time. A worker thus holds its
accumulator and the chunk being read and reduced (reading is fused into the
task through ``blockwise``); how many chunk tasks a worker is given at once
is left to dask (the distributed scheduler queues root tasks and hands a
worker about one per thread).

The result does not depend on where the tasks ran: every chunk's start is
recorded with the accumulator it went into, and the total must hold each
chunk exactly once. A worker lost mid-pass (whose tasks dask reruns
elsewhere) would leave a gap or a repeat; that is reported, never summed.

Schedulers whose worker processes cannot be reached afterwards
(``scheduler="processes"``) return each chunk's sums as task results,
added in a tree.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable

import numpy as np

__all__ = ["fold", "remote", "add", "SPLIT_EVERY"]

# Partial sums added per tree node.
SPLIT_EVERY = 4
# Where a distributed worker keeps this process's accumulators.
_ATTRIBUTE = "_geomkit_accumulators"
# This process's accumulators under dask's threaded and synchronous schedulers.
_LOCAL: dict = {}


# ---------------------------------------------------------------------------------------
# Adding partial sums
# ---------------------------------------------------------------------------------------
def _add_two(a: Any, b: Any) -> Any:
    """``a + b`` for arrays / numbers, key by key for dicts, item by item for lists.

    Tuples (chunk starts) and lists of ``(start, values)`` pieces (the Gram
    route's unit means) are joined; None is the empty sum.
    """
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        for key, value in b.items():
            a[key] = _add_two(a.get(key), value)
        return a
    if isinstance(a, tuple):
        return a + b
    if isinstance(a, list):
        if a and isinstance(a[0], tuple):
            return a + b
        return [_add_two(x, y) for x, y in zip(a, b)]
    if isinstance(a, np.ndarray):
        a += b  # in place: no second n_units^2 matrix
        return a
    return a + b


def add(*parts: Any) -> Any:
    """Sum the parts into the first."""
    out = parts[0]
    for part in parts[1:]:
        out = _add_two(out, part)
    return out


def remote(function):
    """``function`` as the workers should receive it: by value, so that they never import geomkit.

    A worker importing ``geomkit.measures`` would import the whole package,
    torch included (~250 MB per process). Registered modules' functions are
    pickled by value by cloudpickle, and the wrapper (a lambda, which the
    standard pickle refuses) makes distributed fall back to cloudpickle.
    """
    import sys

    import cloudpickle

    for name in ("_dask_fold", "_dask_moments", "_spectral_moments"):
        module = sys.modules.get(f"{__package__}.{name}")
        if module is not None and module.__name__ not in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.register_pickle_by_value(module)
    return lambda *args: function(*args)


# ---------------------------------------------------------------------------------------
# Accumulators where the tasks run
# ---------------------------------------------------------------------------------------
def _accumulators(worker: Any = None) -> tuple[dict, str]:
    """(this process's accumulators, the name of where they are): a worker's or the local ones."""
    if worker is None:
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):
            return _LOCAL, "local"
    return vars(worker).setdefault(_ATTRIBUTE, {}), worker.address


def _step(kernel, token: str | None, blocks: list, start: int, args: tuple) -> Any:
    """Add one chunk into this thread's accumulator; without a token, return the chunk's sums."""
    if token is None:
        return kernel(None, *blocks, start, *args)
    store, where = _accumulators()
    # One accumulator per thread: threads of one worker never add into the same matrix.
    entry = store.setdefault((token, where, threading.get_ident()),
                             {"sums": None, "starts": (), "scratch": {}})
    entry["sums"] = kernel(entry["sums"], *blocks, start, *args, scratch=entry["scratch"])
    entry["starts"] += (start,)
    return where, start


def _hand_over(token: str) -> dict:
    """This worker's (or process's) accumulators of one pass, summed and removed."""
    store, where = _accumulators()
    keys = [key for key in list(store) if key[0] == token and key[1] == where]
    entries = [store.pop(key) for key in keys]
    for entry in entries:
        del entry["scratch"]  # work space, not a sum
    return add({"sums": None, "starts": ()}, *entries)


def _discard(token: str, dask_worker: Any = None) -> None:
    """Drop what a failed pass left behind (``client.run`` passes the worker)."""
    store, _ = _accumulators(dask_worker)
    for key in [key for key in list(store) if key[0] == token]:
        store.pop(key, None)


# ---------------------------------------------------------------------------------------
# The pass
# ---------------------------------------------------------------------------------------
def _scheduler() -> tuple[str, Any]:
    """("client", client), ("local", get), ("default", None) or ("other", get)."""
    import dask.local
    import dask.threaded
    from dask.base import get_scheduler

    get = get_scheduler()
    if get is None:
        return "default", None
    client = getattr(get, "__self__", get)  # dask hands over a Client or its bound get
    if "Client" in type(client).__name__:
        return "client", client
    if get in (dask.threaded.get, dask.local.get_sync):
        return "local", get
    return "other", get


def _starts(chunks: tuple[int, ...]) -> list[int]:
    return [int(s) for s in np.cumsum((0,) + tuple(chunks))[:-1]]


def _tasks(kernel, arrays: list, axis: int, token: str | None, args: tuple):
    """One task per chunk along ``axis``: read the chunk of every array and add it.

    The 2-d arrays share their chunks along ``axis`` and have one chunk along
    the other. ``blockwise`` fuses reading a chunk (e.g. from zarr) into the
    task when the array comes straight from a reader (``xr.open_zarr``,
    ``da.from_array``, ``da.from_zarr``); a sliced or rechunked array keeps
    its reading tasks apart.
    """
    import dask.array as da

    starts = np.asarray(_starts(arrays[0].chunks[axis]), dtype=np.int64)
    pairs: list = []
    for m, A in enumerate(arrays):
        other = "jkl"[m]
        pairs += [A, "i" + other if axis == 0 else other + "i"]
    remote(kernel)  # registers the modules, so that the tasks travel by value

    def call(*blocks):
        *data, start = blocks
        out = np.empty(1, dtype=object)
        out[0] = _step(kernel, token, data, int(start[0]), args)
        return out

    return da.blockwise(
        call, "i", *pairs, da.from_array(starts, chunks=1), "i", dtype=object,
        concatenate=True, align_arrays=False, adjust_chunks={"i": 1},
        meta=np.empty((0,), dtype=object),
    )


def _tree(parts: list, plus: Callable | None = None) -> Any:
    """The sum of ``parts`` added ``SPLIT_EVERY`` at a time by ``plus`` (default: a delayed ``add``;
    the parts are then delayed objects)."""
    if plus is None:
        from dask import delayed

        plus = delayed(remote(add), pure=False)
    while len(parts) > 1:
        parts = [plus(*parts[i : i + SPLIT_EVERY]) if len(parts[i : i + SPLIT_EVERY]) > 1
                 else parts[i] for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


def _collect(client: Any, token: str, wheres: set[str]) -> dict:
    """Each worker's accumulators, added in a tree on the workers, then brought here."""
    if wheres == {"local"}:
        return _hand_over(token)
    hand_over, plus = remote(_hand_over), remote(add)
    futures = [client.submit(hand_over, token, workers=[w], allow_other_workers=True, pure=False)
               for w in sorted(wheres)]
    root = _tree(futures, lambda *group: client.submit(plus, *group, pure=False))
    total = root.result()
    del futures, root
    return total


def fold(kernel, arrays: list, axis: int, *args: Any) -> Any:
    """Sum over the chunks along ``axis`` of what ``kernel`` adds, computed with dask.

    ``kernel(sums, *blocks, start, *args, scratch=...)`` adds the chunks
    ``blocks`` (one per array, starting at index ``start`` along ``axis``)
    into ``sums`` in place and returns it; given ``sums=None`` it makes a new
    one. ``scratch`` is a dict the kernel may keep work arrays in: the same
    for all the chunks a worker thread adds in one pass (so a float64 block
    is not allocated, page-faulted and unmapped again for every chunk), None
    where chunk sums are task results.
    """
    import dask

    how, get = _scheduler()
    if how == "other":  # its workers are out of reach afterwards: results added in a tree
        parts = list(_tasks(kernel, arrays, axis, None, args).to_delayed().ravel())
        from dask import delayed

        first = delayed(lambda part: part[0], pure=True)
        return dask.compute(_tree([first(p) for p in parts]))[0]
    token = uuid.uuid4().hex
    tasks = _tasks(kernel, arrays, axis, token, args)
    try:
        if how == "default":
            # No cluster and no scheduler chosen: one chunk at a time, BLAS on every core (as
            # in memory), rather than a chunk per core each asking BLAS for every core.
            done = tasks.compute(scheduler="threads", num_workers=1)
        else:
            done = tasks.compute()
        total = _collect(get if how == "client" else None, token, {w for w, _ in done})
    except BaseException:
        _discard(token)
        if how == "client":
            remote(_discard)  # registers this module: the function below travels by value
            get.run(lambda token, dask_worker=None: _discard(token, dask_worker), token)
        raise
    expected = _starts(arrays[0].chunks[axis])
    if sorted(total["starts"]) != expected:
        raise RuntimeError(
            f"the streamed pass added chunks starting at {sorted(total['starts'])[:8]}... but "
            f"the data's chunks start at {expected[:8]}...: a worker was lost or a task ran "
            "twice while it ran. Run it again."
        )
    return total["sums"]
