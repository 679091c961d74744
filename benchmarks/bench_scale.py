"""Streamed spectrum of activations in zarr vs the physical floor of one float64 syrk pass.

Writes ``--rows`` x ``--units`` float32 synthetic activations (power-law
spectrum, default 500 000 x 2048, ~4 GB) to a zarr store in a temporary
directory (uncompressed: random floats do not compress, and decompression
would only add CPU time), then times :func:`geomkit.eigenspectrum` on the
lazily opened store with a LocalCluster of 1 and of 2 worker processes (one
thread each; dask's nannies give each worker a one-thread BLAS). The store is
deleted at the end.

Floor: one ``scipy.linalg.blas.dsyrk`` update of an in-memory float64 chunk
of ``--chunk-rows`` rows, timed ``--repeats`` times (the minimum), times the
number of chunks: the BLAS work of one pass, with no conversion, no reading
and no scheduling. Measured with BLAS on all cores (the machine's floor) and
on one core (the floor of one worker).

Peak memory: the resident set of this process plus all its child processes
(the workers), sampled every 50 ms while the spectra run.

Usage::

    python benchmarks/bench_scale.py                 # 500 000 x 2048
    python benchmarks/bench_scale.py --rows 100000   # a smaller trial
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
        self.interval = interval
        self.peak = 0
        self.peaks: dict = {}
        self._stop = threading.Event()

    def _total(self) -> int:
        rss = {"main": self.proc.memory_info().rss}
        for child in self.proc.children(recursive=True):
            try:
                rss[child.pid] = child.memory_info().rss
            except Exception:  # a child that just exited
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
    """Seconds of one float64 dsyrk pass over ``rows`` rows, from the best timing of one chunk."""
    from scipy.linalg import blas
    from threadpoolctl import threadpool_limits

    block = np.random.default_rng(1).standard_normal((chunk_rows, units))
    C = np.zeros((units, units), order="F")
    best = np.inf
    with threadpool_limits(limits=threads):
        for _ in range(repeats):
            t0 = time.perf_counter()
            C = blas.dsyrk(1.0, block.T, beta=1.0, c=C, trans=0, lower=0, overwrite_c=1)
            best = min(best, time.perf_counter() - t0)
    return best * rows / chunk_rows


def streamed(path: str, n_workers: int):
    """(seconds of the pass, seconds of the eigendecomposition, peak RSS, eigenvalues).

    What ``eigenspectrum(acts)`` does, in its two steps: the streamed pass
    (the float64 product reduced on the workers) and the eigendecomposition
    of the n_units x n_units result here.
    """
    import xarray as xr

    from geomkit import dask_client
    from geomkit.measures._dask_moments import StreamedPCA, as_dask

    with dask_client(n_workers=n_workers, threads_per_worker=1, dashboard_address=None,
                     memory_limit="1.5GB"):
        acts = xr.open_zarr(path, consolidated=False)["acts"]
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            problem = StreamedPCA(as_dask(acts, "acts", (2,)))
            t1 = time.perf_counter()
            lam = problem.eigenvalues()
            t2 = time.perf_counter()
    print(f"  peak RSS per process (MB): {peak.describe()}")
    return t1 - t0, t2 - t1, peak.peak, lam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--chunk-rows", type=int, default=5_000)  # 41 MB of float32 at 2048 units
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the temporary store goes")
    args = parser.parse_args()

    print(f"load before: {os.getloadavg()}  cores: {os.cpu_count()}")
    tmp = tempfile.mkdtemp(prefix="geomkit-bench-scale-", dir=args.dir)
    path = os.path.join(tmp, "acts.zarr")
    try:
        t0 = time.perf_counter()
        write_store(path, args.rows, args.units, args.chunk_rows)
        gb = args.rows * args.units * 4 / 1e9
        print(f"wrote {args.rows} x {args.units} float32 ({gb:.2f} GB) in "
              f"{time.perf_counter() - t0:.1f} s")
        floor_all = syrk_floor(args.rows, args.units, args.chunk_rows, args.repeats, None)
        floor_one = syrk_floor(args.rows, args.units, args.chunk_rows, args.repeats, 1)
        print(f"floor, one dsyrk pass: {floor_all:.1f} s (BLAS on all cores), "
              f"{floor_one:.1f} s (one core)")
        results = {}
        for n_workers in (1, 2):
            t_pass, t_eig, peak, lam = streamed(path, n_workers)
            results[n_workers] = (t_pass, t_eig, peak, lam)
            print(f"{n_workers} worker(s): pass {t_pass:.1f} s + eigendecomposition {t_eig:.1f} s,"
                  f" peak RSS (process + workers) {peak / 1e9:.2f} GB, lambda_1 = {lam[0]:.4f};"
                  f" pass / floor: {t_pass / floor_all:.2f}x (all cores), "
                  f"{t_pass / floor_one:.2f}x (one core)")
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
