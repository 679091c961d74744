"""Streamed spectrum of activations in zarr vs the physical floor of one float64 syrk pass.

Writes ``--rows`` x ``--units`` float32 synthetic activations (power-law
spectrum, default 500 000 x 2048, ~4 GB) to a zarr store in a temporary
directory (uncompressed: random floats do not compress, and decompression
would only add CPU time), then times :func:`geomkit.eigenspectrum` on the
lazily opened store with a LocalCluster of 1 and of 2 worker processes (one
thread each, one BLAS thread each: dask's nannies set OMP_NUM_THREADS=1 etc.
in the workers; the bench prints what the workers' BLAS reports). The
workers import scipy, xarray and zarr before the clock starts (~1 s of CPU
each on the first task otherwise). The store is deleted at the end.

Floor: one ``scipy.linalg.blas.dsyrk`` update of an in-memory float64 chunk
of ``--chunk-rows`` rows, timed ``--repeats`` times (the minimum), times the
number of chunks: the BLAS work of one pass, with no conversion, no reading
and no scheduling. Measured with BLAS on all cores (the machine's floor, the
reference of the <= 1.3x target) and on one core (the floor of one worker).

Peak memory: the sum of the resident set sizes (RSS) of every process of the
computation -- this process (client, scheduler and the final
eigendecomposition), the nannies and the workers (all its descendants) --
sampled together every 50 ms with psutil from the start of the pass to the
end of the eigendecomposition; the peak of that sum is reported (target
< 1.5 GB with 2 workers), with each process's own peak beside it.

Targets (issue 16), printed on the last line from one run: pass with 2
workers <= 1.3x the all-core floor, peak < 1.5 GB, 2 workers vs 1 >= 1.6x.
The timings need an otherwise idle machine; at 500 000 x 2048 the whole run
takes about 2-4 minutes on an idle 2-core machine (writing the store
included).

Usage::

    python benchmarks/bench_scale.py                 # 500 000 x 2048
    python benchmarks/bench_scale.py --rows 100000   # a smaller check
    taskset -c 0,1 python benchmarks/bench_scale.py  # two cores of a larger machine
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time

import numpy as np


class PeakRSS:
    """Peak of (this process + its children)'s resident memory, sampled in a thread."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self.proc = psutil.Process()
        # The worker processes, listed once: listing children scans every process of the
        # machine, too costly to repeat every 50 ms beside the workers.
        self.children = self.proc.children(recursive=True)
        self.interval = interval
        self.peak = 0
        self.peaks: dict = {}
        self._stop = threading.Event()

    def _total(self) -> int:
        rss = {"main": self.proc.memory_info().rss}
        for child in self.children:
            try:
                rss[child.pid] = child.memory_info().rss
            except Exception:  # a worker that exited (restarted workers are not followed)
                pass
        for key, value in rss.items():
            self.peaks[key] = max(self.peaks.get(key, 0), value)
        return sum(rss.values())

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(self.interval)

    def describe(self) -> str:
        """Peak of each process alone (MB); their sum can exceed the peak of the total."""
        return ", ".join(f"{k}: {v / 1e6:.0f}" for k, v in self.peaks.items() if v > 50e6)

    def __enter__(self):
        self.peak = self._total()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def write_store(path: str, rows: int, units: int, chunk_rows: int, seed: int = 0) -> None:
    """Synthetic activations with a power-law spectrum, written chunk by chunk."""
    import zarr

    scale = np.arange(1, units + 1, dtype=np.float64) ** -0.5  # lambda_n ~ 1/n
    rng = np.random.default_rng(seed)
    array = zarr.create_array(
        path, name="acts", shape=(rows, units), chunks=(chunk_rows, units), dtype="float32",
        compressors=None, dimension_names=("stimulus", "unit"),
    )
    for start in range(0, rows, chunk_rows):
        m = min(chunk_rows, rows - start)
        block = rng.standard_normal((m, units), dtype=np.float32)
        block *= scale.astype(np.float32)
        block += 1.0
        array[start : start + m] = block


def syrk_floor(rows: int, units: int, chunk_rows: int, repeats: int, threads: int | None):
    """(wall, CPU) seconds of one float64 dsyrk pass over ``rows`` rows, from the best chunk.

    ``threads``: BLAS threads (set explicitly, so that an OMP_NUM_THREADS=1
    in the environment does not lower the all-core floor).
    """
    from scipy.linalg import blas
    from threadpoolctl import threadpool_limits

    block = np.random.default_rng(1).standard_normal((chunk_rows, units))
    C = np.zeros((units, units), order="F")
    best, best_cpu = np.inf, np.inf
    with threadpool_limits(limits=threads):
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            C = blas.dsyrk(1.0, block.T, beta=1.0, c=C, trans=0, lower=0, overwrite_c=1)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
    return best * rows / chunk_rows, best_cpu * rows / chunk_rows


def _cores() -> int:
    """Cores this process may run on (``taskset -c 0,1`` makes a 2-core machine of a larger one)."""
    return len(os.sched_getaffinity(0))


def _warm_up() -> None:
    import scipy.linalg.blas  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=0)


def _cpu_seconds() -> dict:
    """CPU seconds (user + system) used so far by this process ("main") and by its children."""
    import psutil

    me = psutil.Process()
    out = {"main": sum(me.cpu_times()[:2]), "workers": 0.0}
    for child in me.children(recursive=True):
        try:
            out["workers"] += sum(child.cpu_times()[:2])
        except Exception:  # a child that just exited
            pass
    return out


def streamed(path: str, n_workers: int):
    """(seconds of the pass, seconds of the eigendecomposition, peak RSS, eigenvalues).

    What ``eigenspectrum(acts)`` does, in its two steps: the streamed pass
    (the float64 product reduced on the workers) and the eigendecomposition
    of the n_units x n_units result here.
    """
    import xarray as xr
    from threadpoolctl import threadpool_limits

    from geomkit import dask_client
    from geomkit.measures._dask_moments import StreamedPCA, as_dask

    with dask_client(n_workers=n_workers, threads_per_worker=1, dashboard_address=None,
                     memory_limit="1.5GB") as client:
        # Imports done before the clock starts, as in this process for the floor (a
        # deployment would preload them: distributed.worker.preload).
        client.run(_warm_up)
        blas = client.run(_blas_threads)
        print(f"  {n_workers} worker(s), BLAS threads per worker: {sorted(blas.values())}")
        acts = xr.open_zarr(path, consolidated=False)["acts"]
        with PeakRSS() as peak:
            cpu0 = _cpu_seconds()
            t0 = time.perf_counter()
            problem = StreamedPCA(as_dask(acts, "acts", (2,)))
            t1 = time.perf_counter()
            cpu1 = _cpu_seconds()
            with threadpool_limits(limits=_cores()):  # whatever OMP_NUM_THREADS says
                lam = problem.eigenvalues()
            t2 = time.perf_counter()
    print(f"  peak RSS per process (MB): {peak.describe()}")
    cpu = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
    return t1 - t0, t2 - t1, peak.peak, lam, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--chunk-rows", type=int, default=5_000)  # 41 MB of float32 at 2048 units
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the temporary store goes")
    args = parser.parse_args()

    print(f"load before: {os.getloadavg()}  cores: {_cores()}")
    tmp = tempfile.mkdtemp(prefix="geomkit-bench-scale-", dir=args.dir)
    path = os.path.join(tmp, "acts.zarr")
    try:
        t0 = time.perf_counter()
        write_store(path, args.rows, args.units, args.chunk_rows)
        gb = args.rows * args.units * 4 / 1e9
        print(f"wrote {args.rows} x {args.units} float32 ({gb:.2f} GB) in "
              f"{time.perf_counter() - t0:.1f} s")
        floor_all, _ = syrk_floor(args.rows, args.units, args.chunk_rows, args.repeats,
                                  _cores())
        floor_one, floor_one_cpu = syrk_floor(args.rows, args.units, args.chunk_rows,
                                              args.repeats, 1)
        print(f"floor, one dsyrk pass: {floor_all:.1f} s (BLAS on all cores), "
              f"{floor_one:.1f} s (one core)")
        results = {}
        for n_workers in (1, 2):
            t_pass, t_eig, peak, lam, cpu = streamed(path, n_workers)
            results[n_workers] = (t_pass, t_eig, peak, lam)
            print(f"{n_workers} worker(s): pass {t_pass:.1f} s + eigendecomposition {t_eig:.1f} s,"
                  f" peak RSS (process + workers) {peak / 1e9:.2f} GB, lambda_1 = {lam[0]:.4f};"
                  f" pass / floor: {t_pass / floor_all:.2f}x (all cores), "
                  f"{t_pass / floor_one:.2f}x (one core)")
            # CPU time does not grow with other jobs' load as wall time does: the work of the
            # pass (reading, conversion, dsyrk, scheduling) against the one-core dsyrk floor.
            print(f"  CPU of the pass: workers {cpu['workers']:.1f} s "
                  f"({cpu['workers'] / floor_one_cpu:.2f}x the one-core dsyrk CPU), "
                  f"this process (client + scheduler) {cpu['main']:.1f} s")
        assert np.allclose(results[1][3], results[2][3], rtol=1e-9)
        speedup = results[1][0] / results[2][0]
        total = results[2][0] + results[2][1]
        print(f"RATIO pass(2 workers) / floor(all cores) = {results[2][0] / floor_all:.2f}, "
              f"with the eigendecomposition {total / floor_all:.2f} (target <= 1.3); "
              f"peak RSS max {max(r[2] for r in results.values()) / 1e9:.2f} GB (target < 1.5); "
              f"pass speed-up 2 workers vs 1 {speedup:.2f}x (target >= 1.6)")
        print(f"load after: {os.getloadavg()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
