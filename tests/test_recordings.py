"""make_recording's ground truth, and load_recording round trips through every format."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import numpy as np
import pytest
import xarray as xr

from geomkit.datasets import load_recording, make_recording

DIMS = ("repeat", "stimulus", "unit")


# ------------------------------------------------------------------------------ make_recording


def test_signal_spectrum_linear_map_and_noise_are_as_stated():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
    rec, W = make_recording(F, n_units=30, n_repeats=3, alpha=1.5, noise=0.7, explained=0.8,
                            random_state=1, return_weights=True)
    assert rec.dims == DIMS and rec.shape == (3, 400, 30)
    S = rec["signal"].values
    # signal covariance spectrum: exactly the stated power law (k = rank of F = 8 components)
    eig = np.linalg.eigvalsh(np.cov(S.T, bias=True))[::-1][:8]
    lam = np.arange(1, 9) ** -1.5
    np.testing.assert_allclose(eig, lam * 30 / lam.sum(), rtol=1e-10)
    np.testing.assert_allclose(rec.attrs["eigenvalues"], eig, rtol=1e-10)
    assert rec["signal_variance"].mean() == pytest.approx(1.0)
    # the linear part: the projection of the signal on F's column space is (F - mean) @ W
    Fc = F - F.mean(axis=0)
    proj = Fc @ np.linalg.lstsq(Fc, S, rcond=None)[0]
    np.testing.assert_allclose(proj, Fc @ W, atol=1e-9)
    np.testing.assert_allclose((proj**2).mean(axis=0), 0.8 * rec["signal_variance"], rtol=1e-9)
    # noise: independent, of the stated size
    residual = rec.values - S
    assert residual.std() == pytest.approx(0.7, rel=0.02)
    # the stated truth follows from the stated variances
    v = rec["signal_variance"].values
    np.testing.assert_allclose(rec["true_ceiling"], v / (v + 0.49 / 3))
    np.testing.assert_allclose(rec["true_predictivity"], np.sqrt(0.8 * v / (v + 0.49 / 3)))


def test_make_recording_is_seeded_and_checks_its_arguments():
    a = make_recording(n_stimuli=50, n_units=4, random_state=3)
    b = make_recording(n_stimuli=50, n_units=4, random_state=3)
    xr.testing.assert_identical(a, b)
    with pytest.raises(ValueError, match="explained must be"):
        make_recording(explained=1.5)
    with pytest.raises(ValueError, match="n_stimuli - 1 - rank"):
        make_recording(np.random.default_rng(0).normal(size=(10, 8)), explained=0.5)
    with pytest.raises(ValueError, match="zero variance"):
        make_recording(np.ones((10, 3)))
    bad = np.random.default_rng(0).normal(size=(10, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="representation contains 1 NaN"):
        make_recording(bad)


# ------------------------------------------------------------------------------ load_recording


@pytest.fixture
def rec():
    return make_recording(n_stimuli=12, n_units=5, n_repeats=3, random_state=0)


def _check(loaded, rec, coords=True):
    assert loaded.dims == DIMS
    np.testing.assert_allclose(loaded.values, rec.values)
    if coords:
        for d in ("stimulus", "unit"):
            np.testing.assert_array_equal(loaded[d].values, rec[d].values)


def test_npy_three_and_two_dims(tmp_path, rec):
    np.save(tmp_path / "r.npy", rec.values)
    _check(load_recording(tmp_path / "r.npy"), rec)
    np.save(tmp_path / "m.npy", rec.values[0])
    two = load_recording(tmp_path / "m.npy")
    assert two.sizes == {"repeat": 1, "stimulus": 12, "unit": 5}
    # named dims in another order
    np.save(tmp_path / "t.npy", rec.values.transpose(2, 1, 0))
    _check(load_recording(str(tmp_path / "t.npy"), dims=("unit", "stimulus", "repeat")), rec)


def test_npz_with_dims_and_coordinates(tmp_path, rec):
    stim = np.array([f"img{i}" for i in range(12)])
    np.savez(tmp_path / "r.npz", spikes=rec.values.transpose(1, 0, 2), dims=["stimulus", "repeat", "unit"],
             stimulus=stim, unit=np.arange(100, 105))
    loaded = load_recording(tmp_path / "r.npz")
    np.testing.assert_allclose(loaded.values, rec.values)
    assert loaded["stimulus"].values.tolist() == stim.tolist()
    assert loaded["unit"].values.tolist() == list(range(100, 105))


def test_hdf5_round_trip(tmp_path, rec):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "r.h5", "w") as f:
        ds = f.create_dataset("rates", data=rec.values.transpose(2, 0, 1))
        ds.attrs["dims"] = ["unit", "repeat", "stimulus"]
        f.create_dataset("stimulus", data=rec["stimulus"].values)
    _check(load_recording(tmp_path / "r.h5"), rec)


def test_zarr_round_trip(tmp_path, rec):
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "r.zarr"), mode="w")
    arr = group.create_array("responses", shape=rec.shape, dtype="f8")
    arr[...] = rec.values
    arr.attrs["dims"] = list(DIMS)
    _check(load_recording(tmp_path / "r.zarr"), rec)
    # an xarray-written store (dims in _ARRAY_DIMENSIONS)
    swapped = rec.drop_vars(["signal"]).transpose("unit", "repeat", "stimulus")
    swapped.to_dataset(name="responses").to_zarr(tmp_path / "x.zarr", consolidated=False)
    _check(load_recording(tmp_path / "x.zarr"), rec)


def test_netcdf_round_trip(tmp_path, rec):
    rec.to_netcdf(tmp_path / "r.nc")
    _check(load_recording(tmp_path / "r.nc"), rec)


def _nwbfile():
    pynwb = pytest.importorskip("pynwb")
    return pynwb, pynwb.NWBFile(session_description="test", identifier="geomkit-test",
                                session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))


def _write(pynwb, nwbfile, path):
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def test_nwb_units_and_trials_give_spike_counts(tmp_path):
    pynwb, nwbfile = _nwbfile()
    rng = np.random.default_rng(0)
    n_units, stimuli, n_rep = 3, [5, 7, 9, 11], 2
    nwbfile.add_trial_column(name="stimulus", description="image id")
    trials = [(s, r) for r in range(n_rep) for s in rng.permutation(stimuli)]
    expected = np.zeros((n_rep, len(stimuli), n_units))
    spikes = [[] for _ in range(n_units)]
    for t, (s, r) in enumerate(trials):
        start, stop = 2.0 * t, 2.0 * t + 1.0
        nwbfile.add_trial(start_time=start, stop_time=stop, stimulus=int(s))
        for u in range(n_units):
            k = int(rng.integers(0, 6))
            spikes[u] += list(start + np.sort(rng.uniform(0, 1, size=k)))
            spikes[u] += [stop + 0.5]  # between trials: never counted
            expected[r, stimuli.index(s), u] = k
    for u in range(n_units):
        nwbfile.add_unit(spike_times=np.sort(spikes[u]))
    _write(pynwb, nwbfile, tmp_path / "s.nwb")
    loaded = load_recording(tmp_path / "s.nwb")
    assert loaded.dims == DIMS
    np.testing.assert_array_equal(loaded.values, expected)
    assert loaded["stimulus"].values.tolist() == stimuli


def test_nwb_trial_aligned_array(tmp_path, rec):
    pynwb, nwbfile = _nwbfile()
    from pynwb.core import ScratchData

    nwbfile.add_scratch(ScratchData(name="responses", data=rec.values.transpose(1, 0, 2),
                                    description="stimulus repeat unit"))
    _write(pynwb, nwbfile, tmp_path / "a.nwb")
    _check(load_recording(tmp_path / "a.nwb"), rec, coords=False)


def test_nwb_without_the_expected_table_is_a_clear_error(tmp_path):
    pynwb, nwbfile = _nwbfile()
    _write(pynwb, nwbfile, tmp_path / "empty.nwb")
    with pytest.raises(ValueError, match="no units table with spike_times and no trial-aligned"):
        load_recording(tmp_path / "empty.nwb")
    pynwb, nwbfile = _nwbfile()
    nwbfile.add_unit(spike_times=[0.1, 0.2])
    _write(pynwb, nwbfile, tmp_path / "units_only.nwb")
    with pytest.raises(ValueError, match="needs a trials table.*no trials table"):
        load_recording(tmp_path / "units_only.nwb")


def test_nwb_unequal_repeats_is_a_clear_error(tmp_path):
    pynwb, nwbfile = _nwbfile()
    nwbfile.add_trial_column(name="stimulus", description="image id")
    for t, s in enumerate([1, 2, 1]):
        nwbfile.add_trial(start_time=float(t), stop_time=t + 0.5, stimulus=s)
    nwbfile.add_unit(spike_times=[0.1, 1.1, 2.1])
    _write(pynwb, nwbfile, tmp_path / "u.nwb")
    with pytest.raises(ValueError, match="repeats of unequal shape: stimulus 2 has 1 trial"):
        load_recording(tmp_path / "u.nwb")


def test_bad_paths_and_dims(tmp_path, rec, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recording(tmp_path / "missing.npy")
    (tmp_path / "r.csv").write_text("1,2")
    with pytest.raises(ValueError, match="suffix '.csv'; accepted"):
        load_recording(tmp_path / "r.csv")
    np.save(tmp_path / "r.npy", rec.values)
    with pytest.raises(ValueError, match="dims must name each axis"):
        load_recording(tmp_path / "r.npy", dims=("repeat", "stimulus", "neuron"))
    np.savez(tmp_path / "two.npz", a=rec.values, b=rec.values)
    with pytest.raises(ValueError, match="name the response array with variable="):
        load_recording(tmp_path / "two.npz")
    with pytest.raises(KeyError, match="has no array 'c'"):
        load_recording(tmp_path / "two.npz", variable="c")
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    (tmp_path / "r.h5").write_bytes(b"")
    with pytest.raises(ImportError, match="needs h5py.*pip install"):
        load_recording(tmp_path / "r.h5")
