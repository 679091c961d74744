"""Out-of-core spectra on dask and activations streamed to zarr (issue 16).

Ground truth: the in-memory estimators on the same data (their own tests
check them against closed forms), brute-force weighted covariances, and the
exact Wishart law.
"""

import numpy as np
import pytest
import xarray as xr

da = pytest.importorskip("dask.array")
pytest.importorskip("zarr")

from geomkit import PowerLawSpectrum, eigenspectrum  # noqa: E402
from geomkit.datasets import make_powerlaw_data  # noqa: E402
from geomkit.measures import _dask_fold, _dask_moments  # noqa: E402
from geomkit.measures._dask_moments import StreamedPCA, plan_passes, poisson_weights  # noqa: E402
from geomkit.measures._streamed_fit import wishart_eigenvalues  # noqa: E402
from geomkit.measures.spectrum import cvpca_spectrum  # noqa: E402


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def wide_offset():
    """30 000 x 50 float32 with a large common offset (tests the shift)."""
    X, _ = make_powerlaw_data(30000, 50, alpha=1.0, random_state=0)
    return (X + 10.0).astype(np.float32)


@pytest.fixture(scope="module")
def repeats():
    X, _ = make_powerlaw_data(3000, 40, alpha=1.0, noise=0.5, n_repeats=2, random_state=1)
    return (X + 2.0).astype(np.float32)


def _repeat_store(tmp_path, X, chunk_rows):
    """Two repeats in a zarr store, opened lazily as a (repeat, stimulus, unit) DataArray."""
    path = tmp_path / "repeats.zarr"
    xr.Dataset({"resp": (("repeat", "stimulus", "unit"), X)}).to_zarr(
        path, encoding={"resp": {"chunks": (1, chunk_rows, X.shape[2])}}, consolidated=False
    )
    return xr.open_zarr(path, consolidated=False)["resp"]


# ---------------------------------------------------------------------------------------
# Spectra
# ---------------------------------------------------------------------------------------
def test_eigenspectrum_of_dask_array_equals_in_memory(wide_offset):
    X = da.from_array(wide_offset, chunks=(10000, -1))
    assert _dask_moments._row_chunks(X).numblocks == (3, 1)  # reduced as three chunks
    lam = eigenspectrum(X)
    assert lam.shape == (50,)
    np.testing.assert_allclose(lam, eigenspectrum(wide_offset), rtol=1e-9)


@pytest.fixture
def narrow_unit_chunks(monkeypatch):
    """Gram-route chunks of 7 units (40 float32 rows), so that several are added."""
    monkeypatch.setattr(_dask_moments, "_TARGET_CHUNK", 7 * 40 * 4)


def test_gram_route_of_dask_array_equals_in_memory(wide_offset, narrow_unit_chunks):
    Xw = wide_offset[:40]  # 40 stimuli x 50 units
    problem = StreamedPCA(da.from_array(Xw, chunks=(40, 50)))
    assert problem.route == "gram" and _dask_moments._col_chunks(problem.X).numblocks == (1, 8)
    lam = problem.eigenvalues()
    np.testing.assert_allclose(lam, eigenspectrum(Xw), rtol=1e-9, atol=1e-9 * lam[0])
    np.testing.assert_allclose(problem.mean, Xw.mean(axis=0, dtype=np.float64), rtol=1e-12)


def test_cvpca_from_zarr_equals_in_memory(tmp_path, repeats):
    lazy = _repeat_store(tmp_path, repeats, chunk_rows=1024)
    assert lazy.chunks is not None
    signal, noise = cvpca_spectrum(lazy, n_shuffles=4, random_state=3)
    ref_signal, ref_noise = cvpca_spectrum(repeats, n_shuffles=4, random_state=3)
    # Relative to the top: the low ranks' signal is near zero (noise-dominated).
    assert _rel(signal, ref_signal) < 1e-9
    np.testing.assert_allclose(noise, ref_noise, rtol=1e-9)


def test_cvpca_gram_route_from_dask_equals_in_memory(repeats, narrow_unit_chunks):
    wide = repeats[:, :30]  # 30 stimuli x 40 units
    lazy = da.from_array(wide, chunks=(1, 30, 9))
    signal, noise = cvpca_spectrum(lazy, n_shuffles=3, random_state=0)
    ref_signal, ref_noise = cvpca_spectrum(wide, n_shuffles=3, random_state=0)
    assert _rel(signal, ref_signal) < 1e-9
    assert _rel(noise, ref_noise) < 1e-9


@pytest.mark.parametrize("method", ["pca", "cvpca"])
def test_estimator_on_dask_equals_in_memory(method, repeats, wide_offset):
    data = wide_offset if method == "pca" else repeats
    chunks = (7000, -1) if method == "pca" else (1, 1024, -1)
    est = PowerLawSpectrum(method=method, fit_range=(3, 15), n_shuffles=3, random_state=0)
    ref = PowerLawSpectrum(**est.get_params()).fit(data)
    fitted = est.fit(da.from_array(data, chunks=chunks))
    assert _rel(fitted.eigenvalues_, ref.eigenvalues_) < 1e-9
    assert fitted.alpha_ == pytest.approx(ref.alpha_, rel=1e-9)
    assert fitted.n_stimuli_ == ref.n_stimuli_ and fitted.n_features_in_ == ref.n_features_in_


# ---------------------------------------------------------------------------------------
# Poisson bootstrap
# ---------------------------------------------------------------------------------------
def test_poisson_bootstrap_is_the_weighted_covariance(wide_offset):
    X = wide_offset[:5000]
    problem = StreamedPCA(da.from_array(X, chunks=(1200, -1)), n_bootstraps=2, seed=7)
    for r, (lam, W) in enumerate(problem.bootstrap_eigenvalues(), start=1):
        w = poisson_weights(7, r, 0, X.shape[0])
        assert W == w.sum()
        brute = np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False, fweights=w))[::-1]
        np.testing.assert_allclose(lam, brute, rtol=1e-9)


def test_poisson_weights_do_not_depend_on_chunking(wide_offset):
    X = wide_offset[:9000]
    fits = [
        PowerLawSpectrum(fit_range=(3, 15), n_bootstraps=4, random_state=5).fit(
            da.from_array(X, chunks=(rows, -1))
        )
        for rows in (9000, 2500)
    ]
    np.testing.assert_allclose(fits[0].alpha_bootstrap_, fits[1].alpha_bootstrap_, rtol=1e-9)
    assert np.all(np.isfinite(fits[0].alpha_ci_))
    pieces = [poisson_weights(1, 2, a, b) for a, b in [(0, 5000), (5000, 9000)]]
    np.testing.assert_array_equal(np.concatenate(pieces), poisson_weights(1, 2, 0, 9000))


def test_bootstrap_replicates_split_over_passes_are_the_same(monkeypatch, wide_offset):
    X = da.from_array(wide_offset[:4000], chunks=(2000, -1))
    whole = StreamedPCA(X, n_bootstraps=3, seed=2)
    assert whole.plan.n_passes == 1
    # A budget that fits two replicates per pass: the same replicates, in two passes.
    per = 8.0 * 50 * 50 * (_dask_moments._SPLIT_EVERY + 1)
    budget = (2 * per + 2.5 * 2000 * 50 * 12) / 0.8 + 1
    monkeypatch.setattr(_dask_moments, "worker_memory", lambda: (budget, 1, "test"))
    split = StreamedPCA(X, n_bootstraps=3, seed=2)
    assert split.plan.n_passes == 2
    for (a, wa), (b, wb) in zip(whole.bootstrap_moments, split.bootstrap_moments):
        assert wa == wb
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_wishart_eigenvalues_match_simulated_data():
    pop = np.array([4.0, 2.0, 1.0, 0.5])
    rng = np.random.default_rng(0)
    for n in (30, 3):  # Bartlett (n - 1 >= p) and the Gram matrix (n - 1 < p)
        direct = np.array([
            eigenspectrum(rng.standard_normal((n, 4)) * np.sqrt(pop))[: min(4, n - 1)]
            for _ in range(2000)
        ])
        drawn = np.array([wishart_eigenvalues(pop, n, rng) for _ in range(2000)])
        assert drawn.shape == direct.shape
        se = np.sqrt(direct.var(axis=0) / 1000)
        assert np.all(np.abs(drawn.mean(axis=0) - direct.mean(axis=0)) < 4 * se)


# ---------------------------------------------------------------------------------------
# Memory check
# ---------------------------------------------------------------------------------------
def test_memory_error_names_the_route_that_would_fit():
    with pytest.raises(MemoryError, match=r"covariance route needs 1 float64.*100000\^2.*gram "
                                          r"route .* would fit"):
        plan_passes(100_000, pieces=1, n_replicates=1, chunk_bytes=1e6, what="PCA",
                    other_size=1000, budget=4e9)
    with pytest.raises(MemoryError, match="does not fit either"):
        plan_passes(100_000, pieces=1, n_replicates=1, chunk_bytes=1e6, what="PCA",
                    other_size=200_000, budget=4e9)


def test_estimator_raises_before_computing(monkeypatch, wide_offset):
    monkeypatch.setattr(_dask_moments, "worker_memory", lambda: (1e5, 1, "test"))
    computed = []
    monkeypatch.setattr(_dask_moments, "_fold", lambda *args: computed.append(1))
    with pytest.raises(MemoryError, match="covariance route"):
        PowerLawSpectrum().fit(da.from_array(wide_offset, chunks=(10000, -1)))
    assert not computed


# ---------------------------------------------------------------------------------------
# extract(..., store=...)
# ---------------------------------------------------------------------------------------
class _Flaky:
    """Wraps a model; raises on the forward call number ``fail_at`` (counts every call)."""

    def __init__(self):
        import torch

        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(32, 5)
        )
        self.calls, self.fail_at = 0, None
        self.net.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("interrupted")


@pytest.fixture
def conv_inputs():
    import torch

    return torch.randn(23, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def test_extract_to_store_equals_in_memory(tmp_path, conv_inputs):
    from geomkit.probe import extract

    model = _Flaky()
    labels = np.arange(23) % 3
    ref = extract(model.net, conv_inputs, labels=labels, batch_size=5, progress=False)
    ds = extract(model.net, conv_inputs, labels=labels, batch_size=5, progress=False,
                 store=tmp_path / "acts.zarr")
    assert all(v.chunks is not None for v in ds.data_vars.values())  # dask-backed
    assert ds["0"].data.chunks[0] == (5, 5, 5, 5, 3)
    xr.testing.assert_identical(ds.compute(), ref)


def test_extract_to_store_of_token_outputs_equals_in_memory(tmp_path):
    import torch

    from geomkit.probe import extract

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 3))
    tokens = torch.randint(0, 11, (9, 6), generator=torch.Generator().manual_seed(2))
    ref = extract(net, tokens, batch_size=4, progress=False)
    ds = extract(net, tokens, batch_size=4, progress=False, store=tmp_path / "tokens.zarr")
    assert "1__token" in ref.coords  # (tokens, features) coordinates, kept in the store
    xr.testing.assert_identical(ds.compute(), ref)


def test_extract_to_store_resumes_after_the_last_complete_batch(tmp_path, conv_inputs):
    import zarr

    from geomkit.probe import extract, store_progress

    model = _Flaky()
    ref = extract(model.net, conv_inputs, batch_size=5, progress=False)
    store = tmp_path / "acts.zarr"
    model.calls, model.fail_at = 0, 4
    with pytest.raises(KeyboardInterrupt):
        extract(model.net, conv_inputs, batch_size=5, progress=False, store=store)
    assert store_progress(store) == {"rows": 15, "batches": 3, "finished": False,
                                     "batch_size": 5}
    # An append cut short: one array holds part of the next batch.
    group = zarr.open_group(store, mode="a")
    group["1"].resize((17, 32))
    model.calls, model.fail_at = 0, None
    ds = extract(model.net, conv_inputs, batch_size=5, progress=False, store=store)
    assert model.calls == 2  # only the two missing batches ran
    xr.testing.assert_identical(ds.compute(), ref)
    assert store_progress(store)["finished"]
    # A finished store is opened as it is; other inputs are refused.
    model.calls = 0
    xr.testing.assert_identical(
        extract(model.net, conv_inputs, batch_size=5, progress=False, store=store).compute(), ref
    )
    assert model.calls == 0
    with pytest.raises(ValueError, match="finished with 23 stimuli, but 10"):
        extract(model.net, conv_inputs[:10], batch_size=5, progress=False, store=store)


def test_extract_to_store_refuses_another_batch_size(tmp_path, conv_inputs):
    from geomkit.probe import extract

    model = _Flaky()
    store = tmp_path / "acts.zarr"
    model.fail_at = 2
    with pytest.raises(KeyboardInterrupt):
        extract(model.net, conv_inputs, batch_size=5, progress=False, store=store)
    with pytest.raises(ValueError, match="batch_size=5"):
        extract(model.net, conv_inputs, batch_size=4, progress=False, store=store)


def test_spectrum_of_an_extracted_store(tmp_path):
    import torch

    from geomkit.probe import extract, layer_activations

    net = torch.nn.Sequential(torch.nn.Linear(6, 40), torch.nn.Tanh())
    x = torch.randn(600, 6, generator=torch.Generator().manual_seed(0))
    ds = extract(net, x, layers=["1"], batch_size=128, progress=False, store=tmp_path / "a.zarr")
    acts = layer_activations(ds, "1")
    assert acts.chunks is not None
    mem = extract(net, x, layers=["1"], batch_size=128, progress=False)
    np.testing.assert_allclose(eigenspectrum(acts), eigenspectrum(mem["1"]), rtol=1e-9,
                               atol=1e-12)


# ---------------------------------------------------------------------------------------
# A real cluster
# ---------------------------------------------------------------------------------------
def test_local_cluster_with_two_processes(tmp_path, wide_offset, repeats):
    from distributed import LocalCluster

    from geomkit.cluster import dask_client

    lazy = _repeat_store(tmp_path, repeats, chunk_rows=1024)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        with dask_client(cluster.scheduler_address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            assert _dask_fold._scheduler()[0] == "client"  # accumulators kept on the workers
            lam = eigenspectrum(da.from_array(wide_offset, chunks=(10000, -1)))
            signal, _ = cvpca_spectrum(lazy, n_shuffles=3, random_state=1)
            imports_torch = client.run(lambda: "torch" in __import__("sys").modules)
            # Every worker handed its accumulators over: nothing is left behind.
            left = client.run(lambda dask_worker: len(vars(dask_worker).get(
                "_geomkit_accumulators", {})))
    assert set(left.values()) == {0}
    np.testing.assert_allclose(lam, eigenspectrum(wide_offset), rtol=1e-9)
    assert _rel(signal, cvpca_spectrum(repeats, n_shuffles=3, random_state=1)[0]) < 1e-9
    # The kernels travel by value: the workers never import geomkit (and torch).
    assert not any(imports_torch.values())


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_any_dask_scheduler_gives_the_in_memory_spectrum(scheduler, wide_offset):
    """Threads (an accumulator per thread), sync, and processes (chunk sums added in a tree)."""
    import dask

    X = wide_offset[:8000]
    with dask.config.set(scheduler=scheduler, num_workers=2):
        lam = eigenspectrum(da.from_array(X, chunks=(2000, -1)))
    np.testing.assert_allclose(lam, eigenspectrum(X), rtol=1e-9)
    assert not _dask_fold._LOCAL


def test_a_failed_pass_leaves_nothing_behind(wide_offset):
    def fail_third(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise RuntimeError("unreadable chunk")
        return block

    X = da.from_array(wide_offset, chunks=(5000, -1)).map_blocks(fail_third, dtype=np.float32)
    with pytest.raises(RuntimeError, match="unreadable chunk"):
        eigenspectrum(X)
    assert not _dask_fold._LOCAL


def test_a_chunk_added_twice_is_reported(monkeypatch, wide_offset):
    """A pass whose accumulators hold a chunk twice (a task rerun) is refused, not summed."""
    collect = _dask_fold._collect

    def twice(*args):
        total = collect(*args)
        total["starts"] += total["starts"][:1]
        return total

    monkeypatch.setattr(_dask_fold, "_collect", twice)
    with pytest.raises(RuntimeError, match="a worker was lost or a task ran twice"):
        eigenspectrum(da.from_array(wide_offset, chunks=(5000, -1)))


# ---------------------------------------------------------------------------------------
# Coverage (slow)
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_poisson_bootstrap_covers_like_the_multinomial_one():
    """Both intervals cover the population exponent at the same rate (40 data sets)."""
    hits = {"memory": 0, "streamed": 0}
    n_sets = 40
    for seed in range(n_sets):
        X, _ = make_powerlaw_data(3000, 80, alpha=1.0, random_state=seed)
        for kind, data in (("memory", X), ("streamed", da.from_array(X, chunks=(1024, -1)))):
            est = PowerLawSpectrum(fit_range=(5, 30), n_bootstraps=40, random_state=seed)
            lo, hi = est.fit(data).alpha_ci_
            hits[kind] += lo <= 1.0 <= hi
    rates = {k: v / n_sets for k, v in hits.items()}
    # Binomial sd of a rate near 0.95 over 40 sets is ~0.035; the two share the data.
    assert abs(rates["memory"] - rates["streamed"]) <= 0.1, rates
    assert rates["streamed"] >= 0.8, rates
    print(f"coverage of the 95% intervals over {n_sets} data sets: {rates}")


@pytest.mark.parametrize("shape", [(200, 5), (5, 200)])  # covariance and Gram routes
def test_nan_in_dask_input_is_reported(shape):
    X = np.ones(shape)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        eigenspectrum(da.from_array(X, chunks=(50, 50)))


def test_score_after_a_streamed_fit_equals_in_memory(wide_offset, repeats):
    train, test = wide_offset[:20000], wide_offset[20000:]
    est = PowerLawSpectrum(fit_range=(3, 15), random_state=0)
    streamed = est.fit(da.from_array(train, chunks=(5000, -1))).score(test)
    assert streamed == pytest.approx(PowerLawSpectrum(**est.get_params()).fit(train).score(test),
                                     rel=1e-9)
    cv = PowerLawSpectrum(method="cvpca", fit_range=(3, 15), n_shuffles=2, random_state=0)
    streamed = cv.fit(da.from_array(repeats[:, :2000], chunks=(1, 500, -1))).score(repeats[:, 2000:])
    ref = PowerLawSpectrum(**cv.get_params()).fit(repeats[:, :2000]).score(repeats[:, 2000:])
    assert streamed == pytest.approx(ref, rel=1e-9)


def test_score_of_dask_held_out_data_equals_in_memory(wide_offset, repeats):
    """Held-out data on dask are projected chunk by chunk, never loaded whole."""
    train, test = wide_offset[:20000], wide_offset[20000:]
    est = PowerLawSpectrum(fit_range=(3, 15), random_state=0).fit(train)
    lazy = da.from_array(test, chunks=(3000, -1))
    assert est.score(lazy) == pytest.approx(est.score(test), rel=1e-9)
    assert est.held_out_alpha(lazy) == pytest.approx(est.held_out_alpha(test), rel=1e-9)
    cv = PowerLawSpectrum(method="cvpca", fit_range=(3, 15), n_shuffles=2, random_state=0)
    cv.fit(da.from_array(repeats[:, :2000], chunks=(1, 500, -1)))
    held = repeats[:, 2000:]
    ref = cv.score(held)
    assert cv.score(da.from_array(held, chunks=(1, 400, -1))) == pytest.approx(ref, rel=1e-9)
    assert cv.score(da.from_array(held[0], chunks=400), held[1]) == pytest.approx(ref, rel=1e-9)
    with pytest.raises(ValueError, match="fitted with 50 units"):
        est.score(lazy[:, :40])


def test_dask_repeat_with_an_in_memory_partner(repeats):
    signal, _ = cvpca_spectrum(da.from_array(repeats[0], chunks=(1024, -1)), repeats[1],
                               n_shuffles=2, random_state=4)
    ref, _ = cvpca_spectrum(repeats[0], repeats[1], n_shuffles=2, random_state=4)
    assert _rel(signal, ref) < 1e-9


@pytest.mark.parametrize("shape", [(3000, 40), (30, 40)])  # covariance and Gram routes
def test_a_streamed_fit_pickles_without_the_data(shape, wide_offset):
    import pickle

    X = wide_offset[: shape[0], : shape[1]]
    est = PowerLawSpectrum(fit_range=(3, 10), random_state=0).fit(da.from_array(X, chunks=1024))
    clone = pickle.loads(pickle.dumps(est))
    held_out = wide_offset[5000:6000, : shape[1]]
    assert clone.score(held_out) == pytest.approx(
        PowerLawSpectrum(fit_range=(3, 10), random_state=0).fit(X).score(held_out), rel=1e-9
    )


def test_cvpca_poisson_replicate_is_the_weighted_cvpca(repeats):
    """A replicate's signal spectrum, recomputed by brute force with its weights and masks."""
    from geomkit._backend import eigh
    from geomkit.measures._dask_moments import StreamedCVPCA

    A, B = (r.astype(np.float64) for r in repeats[:, :2500])
    problem = StreamedCVPCA(da.from_array(A, chunks=1024), da.from_array(B, chunks=1024),
                            n_shuffles=2, rng=np.random.default_rng(0), n_bootstraps=2)
    for r in (1, 2):
        w = poisson_weights(problem.seed, r, 0, A.shape[0])
        total = 0.0
        for s in problem.masks:
            Y = np.where(s[:, None] > 0, A, B)  # training repeat
            Z = np.where(s[:, None] > 0, B, A)
            Yc, Zc = Y - w @ Y / w.sum(), Z - w @ Z / w.sum()
            K = (Yc * w[:, None]).T @ Yc
            C = (Yc * w[:, None]).T @ Zc
            U = eigh(K)[1]
            total = total + np.einsum("ij,ij->j", U, (C + C.T) / 2 @ U)
        brute = total / 2 / (w.sum() - 1)
        signal, _, W = problem.streamed_spectrum(r)
        assert W == w.sum()
        assert _rel(signal, brute) < 1e-9


def test_cvpca_streamed_bootstrap_interval(repeats):
    est = PowerLawSpectrum(method="cvpca", fit_range=(3, 12), n_shuffles=2, n_bootstraps=3,
                           random_state=0)
    est.fit(da.from_array(repeats, chunks=(1, 1024, -1)))
    assert est.alpha_bootstrap_.size == 3 and np.isfinite(est.alpha_bias_)
    lo, hi = est.alpha_ci_
    assert lo < est.alpha_ - est.alpha_bias_ < hi
