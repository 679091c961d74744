"""Level-set topology: every number checked against a closed form or an independent computation.

References used here: ``scipy.ndimage.label`` (brute-force components at each
level), ``ripser.lower_star_img`` (H0), GUDHI's cubical complex (H0 and H1,
skipped when GUDHI is absent) and contourpy's marching squares (contours).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from geomkit.measures.topology import (
    LevelSetTopology,
    betti_curves,
    contour_signature,
    level_set_persistence,
    peak_count,
    persistence_diagrams,
)

EIGHT = np.ones((3, 3), dtype=bool)
FOUR = ndimage.generate_binary_structure(2, 1)
# The same neighbourhoods stacked over levels, with no link between levels.
EIGHT_3D = np.zeros((3, 3, 3), dtype=bool)
EIGHT_3D[1] = EIGHT
FOUR_3D = np.zeros((3, 3, 3), dtype=bool)
FOUR_3D[1] = FOUR


def smooth_maps(n, shape=(20, 22), sigma=2.0, seed=0, quantize=None):
    rng = np.random.default_rng(seed)
    maps = ndimage.gaussian_filter(rng.standard_normal((n, *shape)), (0, sigma, sigma))
    if quantize is not None:  # many ties: the hard case for any pairing rule
        maps = np.round(maps / maps.std() * quantize)
    return maps


def bumps(centres, heights, size=48, width=3.0):
    y, x = np.mgrid[:size, :size]
    return sum(h * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
               for (cy, cx), h in zip(centres, heights))


def rows(pairs):
    """Diagram rows in a canonical order (by birth, then death)."""
    pairs = np.asarray(pairs, dtype=float).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _per_slice(labels):
    """Components per level slice of a 3-D labelling (labels run in raster order, so each
    slice holds a consecutive range) and how many of them touch the slice's border."""
    top = np.maximum.accumulate(labels.reshape(len(labels), -1).max(axis=1))
    n_comp = np.diff(top, prepend=0)
    border = np.sort(np.concatenate(
        [labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]], axis=1), axis=1)
    n_border = (border[:, 0] > 0) + ((border[:, 1:] != border[:, :-1]) & (border[:, 1:] > 0)).sum(1)
    return n_comp, n_border


def brute_betti(img, levels):
    """(2, n_levels): 8-connected components of {img >= t} and bounded 4-connected components
    of {img < t}, one ``ndimage.label`` call for all levels."""
    X = img[None] >= np.asarray(levels)[:, None, None]
    n_x, _ = _per_slice(ndimage.label(X, EIGHT_3D)[0])
    n_y, n_y_border = _per_slice(ndimage.label(~X, FOUR_3D)[0])
    return np.array([n_x, n_y - n_y_border])


def brute_counts(img, level):
    """(b0, b1, inner X components, all complement components) by labelling at one level."""
    X = img >= level
    lx, nx = ndimage.label(X, EIGHT)
    ly, ny = ndimage.label(~X, FOUR)
    border = lambda lab: np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    bx = np.count_nonzero(border(lx))
    by = np.count_nonzero(border(ly))
    return nx, ny - by, nx - bx, ny


# -- closed forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_k_bumps_give_k_long_lived_h0_bars_and_k_components(k):
    rng = np.random.default_rng(k)
    centres = [(10 + 28 * (i % 2), 6 + 9 * i) for i in range(k)]
    heights = np.sort(rng.uniform(1.0, 2.0, k))[::-1]
    img = bumps(centres, heights) + 1e-3 * rng.standard_normal((48, 48))
    table = level_set_persistence(img)
    h0 = table[table.dim == 0]
    assert (h0.persistence > 0.5).sum() == k
    assert peak_count(img, min_persistence=0.2) == k
    # The long bars are born at the bump heights (up to the noise).
    np.testing.assert_allclose(np.sort(h0.birth[h0.persistence > 0.5])[::-1], heights, atol=0.01)
    # At a level below the lowest bump but above the background: exactly k components.
    level = 0.5 * heights.min()
    assert betti_curves(img, levels=[level]).sel(dim=0).item() == k


def test_annulus_has_one_h1_bar():
    y, x = np.mgrid[:48, :48]
    ring = np.exp(-((np.hypot(x - 24, y - 24) - 12) ** 2) / 8)
    ring += 1e-3 * np.random.default_rng(0).standard_normal(ring.shape)
    h0, h1 = persistence_diagrams(ring, min_persistence=0.5)
    assert len(h0) == 1 and len(h1) == 1
    # The hole closes when the ring does (near its crest) and fills at the lowest value inside.
    inside = np.hypot(x - 24, y - 24) < 10
    assert h1[0, 1] == ring[inside].min()
    assert h1[0, 0] > 0.9
    assert betti_curves(ring, levels=[0.5]).sel(dim=1).item() == 1


def test_constant_map_is_one_component_without_holes():
    flat = np.full((16, 12), 3.5)
    h0, h1 = persistence_diagrams(flat)
    np.testing.assert_array_equal(h0, [[3.5, -np.inf]])
    assert h1.shape == (0, 2)
    curves = betti_curves(flat, n_levels=7)
    np.testing.assert_array_equal(curves.sel(dim=0), 1)
    np.testing.assert_array_equal(curves.sel(dim=1), 0)
    np.testing.assert_array_equal(contour_signature(flat, n_levels=7), 0)


@pytest.mark.parametrize("transform", [np.exp, lambda v: v**3 + 2 * v, np.arctan])
def test_monotone_transform_keeps_the_pairing(transform):
    maps = smooth_maps(10, seed=3)
    before = persistence_diagrams(maps)
    after = persistence_diagrams(transform(maps))
    for (b0, b1), (a0, a1) in zip(before, after):
        for ref, got in ((b0, a0), (b1, a1)):
            expected = np.where(np.isinf(ref), ref, transform(ref))  # the essential death stays -inf
            np.testing.assert_allclose(rows(got), rows(expected), rtol=1e-12)


# -- brute force and well-kept libraries -------------------------------------------------------


@pytest.mark.parametrize("quantize", [None, 2.0])
def test_betti_numbers_equal_labelling_at_every_level(quantize):
    """b0 = 8-connected components, b1 = bounded 4-connected complement components, on
    100 random smooth maps, at every level where the topology can change (each value)."""
    maps = smooth_maps(100, shape=(14, 15), seed=11, quantize=quantize)
    for img in maps:
        levels = np.append(np.unique(img), img.max() + 1.0)
        np.testing.assert_array_equal(betti_curves(img, levels=levels).values, brute_betti(img, levels))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (2, 5), (5, 3)])
def test_tiny_and_thin_maps_equal_labelling(shape):
    rng = np.random.default_rng(sum(shape))
    maps = np.concatenate([rng.normal(size=(20, *shape)), rng.integers(0, 3, size=(20, *shape))])
    curves = betti_curves(maps, levels=np.arange(-3.0, 3.5, 0.25))
    signature = contour_signature(maps, levels=np.arange(-3.0, 3.5, 0.25))
    for img, c, sig in zip(maps, curves.values, signature.values):
        levels = np.arange(-3.0, 3.5, 0.25)
        np.testing.assert_array_equal(c, brute_betti(img, levels))
        for j, level in enumerate(levels):
            b0, b1, inner, n_y = brute_counts(img, level)
            assert sig[:, j].tolist() == [inner + b1, b0 + n_y - 1 - inner - b1]


def test_lockstep_kruskal_alone_gives_the_same_pairs(monkeypatch):
    """The leaf contraction usually settles every basin; force the lockstep path instead."""
    import functools

    from geomkit.measures import _merge_tree

    maps = np.concatenate([smooth_maps(30, seed=12), smooth_maps(10, seed=13, quantize=1.0)])
    expected = level_set_persistence(maps)
    monkeypatch.setattr(_merge_tree, "_contract_leaves",
                        functools.partial(_merge_tree._contract_leaves, min_fraction=2.0))
    got = level_set_persistence(maps)
    assert len(got) == len(expected)
    for m in range(len(maps)):
        for dim in (0, 1):
            a = got[(got["map"] == m) & (got.dim == dim)][["birth", "death"]]
            b = expected[(expected["map"] == m) & (expected.dim == dim)][["birth", "death"]]
            np.testing.assert_array_equal(rows(a.to_numpy()), rows(b.to_numpy()))


def test_h0_equals_ripser_lower_star():
    ripser = pytest.importorskip("ripser")
    # ripser computes in float32: use values that float32 holds exactly.
    maps = smooth_maps(12, shape=(18, 18), sigma=1.5, seed=5).astype(np.float32).astype(float)
    ours = persistence_diagrams(maps)
    for img, (h0, _) in zip(maps, ours):
        ref = ripser.lower_star_img(-img)
        ref = ref[ref[:, 1] > ref[:, 0]]
        # ripser: (-peak, -saddle), essential death +inf; here (peak, saddle), -inf.
        np.testing.assert_allclose(rows(h0), rows(-ref), rtol=1e-12)


def test_h0_and_h1_equal_gudhi_cubical_complex():
    gudhi = pytest.importorskip("gudhi")
    maps = np.concatenate([smooth_maps(15, seed=7), smooth_maps(5, seed=8, quantize=1.5)])
    for img, (h0, h1) in zip(maps, persistence_diagrams(maps)):
        pairs = gudhi.CubicalComplex(top_dimensional_cells=-img).persistence()
        for dim, got in ((0, h0), (1, h1)):
            ref = [(-b, -d) for k, (b, d) in pairs if k == dim and d > b]
            np.testing.assert_allclose(rows(got), rows(ref), rtol=1e-12)


def test_contour_signature_equals_marching_squares():
    """Loops / lines counted by contourpy (closed polylines vs open ones), at levels where
    no grid cell is an ambiguous saddle (where marching squares has to pick a side)."""
    contourpy = pytest.importorskip("contourpy")
    maps = smooth_maps(30, shape=(24, 24), sigma=2.5, seed=9)
    signature = contour_signature(maps, n_levels=21)
    checked = 0
    for i, img in enumerate(maps):
        gen = contourpy.contour_generator(z=img, name="serial", corner_mask=False)
        for j, level in enumerate(signature.threshold.values[i]):
            X = img >= level
            a, b, c, d = X[:-1, :-1], X[:-1, 1:], X[1:, :-1], X[1:, 1:]
            if np.any((a & d & ~b & ~c) | (~a & ~d & b & c)) or j in (0, 20):
                continue
            lines = gen.lines(level)
            loops = sum(len(p) > 2 and np.array_equal(p[0], p[-1]) for p in lines)
            assert signature.values[i, :, j].tolist() == [loops, len(lines) - loops]
            checked += 1
    assert checked > 400


def test_contour_signature_equals_component_counts():
    maps = smooth_maps(20, shape=(16, 17), seed=21, quantize=3.0)
    signature = contour_signature(maps, n_levels=21)
    for img, sig, thr in zip(maps, signature.values, signature.threshold.values):
        for j, level in enumerate(thr):
            b0, b1, inner, n_y = brute_counts(img, level)
            loops = inner + b1
            assert sig[:, j].tolist() == [loops, b0 + n_y - 1 - loops]


# -- levels, tables, the estimator -------------------------------------------------------------


def test_levels_range_and_fraction_of_max():
    maps = smooth_maps(4, seed=1) + 5.0  # positive maxima
    rng_curves = betti_curves(maps, n_levels=11)
    lo, hi = maps.min(axis=(1, 2)), maps.max(axis=(1, 2))
    np.testing.assert_allclose(rng_curves.threshold, np.linspace(lo, hi, 11).T)
    np.testing.assert_allclose(rng_curves.fraction_of_max, np.linspace(lo, hi, 11).T / hi[:, None])
    frac = betti_curves(maps, n_levels=11, levels="fraction")
    np.testing.assert_allclose(frac.threshold, np.outer(hi, np.linspace(0, 1, 11)))
    # Level = max keeps the top pixel(s): one component; below the min: the whole map.
    assert (rng_curves.sel(dim=0, level=10) == 1).all() and (frac.sel(dim=0, level=0) == 1).all()
    with pytest.raises(ValueError, match="maximum <= 0"):
        betti_curves(-maps, levels="fraction")


def test_relative_min_persistence_scales_with_the_map():
    maps = smooth_maps(6, seed=4)
    a = level_set_persistence(maps, min_persistence=0.1, relative=True)
    b = level_set_persistence(maps * 1000.0, min_persistence=0.1, relative=True)
    assert len(a) == len(b) > 6
    rng = (maps.max(axis=(1, 2)) - maps.min(axis=(1, 2)))[a["map"].to_numpy()]
    assert np.all(a.persistence > 0.1 * rng)


def test_tidy_table_round_trips_the_diagrams():
    maps = smooth_maps(5, seed=2)
    table = level_set_persistence(maps)
    dgms = persistence_diagrams(maps)
    for m, (h0, h1) in enumerate(dgms):
        for dim, d in ((0, h0), (1, h1)):
            rows = table[(table["map"] == m) & (table.dim == dim)]
            np.testing.assert_array_equal(rows[["birth", "death"]].to_numpy(), d)
    assert np.isinf(table.persistence).sum() == 5  # one essential bar per map


def test_bad_input_messages():
    with pytest.raises(ValueError, match="maps must have 2 or 3 dimension"):
        persistence_diagrams(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        betti_curves(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="levels must be"):
        betti_curves(np.zeros((4, 4)), levels="log")
    with pytest.raises(ValueError, match="min_persistence must be >= 0"):
        level_set_persistence(np.zeros((4, 4)), min_persistence=-1)
    topo = LevelSetTopology(map_shape=(3, 3))
    with pytest.raises(ValueError, match="map_shape"):
        topo.fit(np.zeros((4, 10)))
    topo = LevelSetTopology().fit(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="fitted on maps of shape"):
        topo.transform(np.zeros((2, 5, 6)))


def test_estimator_attributes_transform_and_score():
    one = bumps([(24, 24)], [1.0])
    two = bumps([(24, 12), (24, 36)], [1.0, 0.8])
    maps = np.stack([one, two, one * 2, two * 3])
    topo = LevelSetTopology(n_levels=9).fit(maps)
    np.testing.assert_array_equal(topo.peak_counts_, [1, 2, 1, 2])
    signatures = topo.transform(maps)
    np.testing.assert_array_equal(signatures, contour_signature(maps, n_levels=9).values.reshape(4, -1))
    np.testing.assert_array_equal(topo.betti_curves_.values, betti_curves(maps, n_levels=9).values)
    expected = -np.mean(np.abs(signatures - signatures.mean(axis=0)))
    assert topo.score(maps) == pytest.approx(expected)
    assert topo.score(maps[[0, 2]]) == pytest.approx(-np.mean(np.abs(signatures[0] - signatures.mean(axis=0))))
    # Flat rows with map_shape read as the same maps.
    flat = LevelSetTopology(n_levels=9, map_shape=(48, 48)).fit(maps.reshape(4, -1))
    np.testing.assert_array_equal(flat.transform(maps.reshape(4, -1)), signatures)


def test_pipeline_separates_one_peak_from_two():
    rng = np.random.default_rng(0)
    maps, labels = [], []
    for i in range(40):
        k = 1 + i % 2
        centres = [(rng.integers(12, 36), rng.integers(8, 20) + 20 * j) for j in range(k)]
        maps.append(bumps(centres, rng.uniform(0.6, 1.0, k)) + 0.01 * rng.standard_normal((48, 48)))
        labels.append(k)
    pipe = make_pipeline(LevelSetTopology(n_levels=11), LogisticRegression())
    pipe.fit(np.stack(maps[:20]), labels[:20])
    assert pipe.score(np.stack(maps[20:]), labels[20:]) == 1.0


def test_torch_and_xarray_inputs_equal_numpy():
    torch = pytest.importorskip("torch")
    import xarray as xr

    maps = smooth_maps(3, shape=(12, 14), seed=4)
    ref = LevelSetTopology(n_levels=7).fit(maps)
    inputs = [torch.tensor(maps, requires_grad=True), xr.DataArray(maps, dims=("map", "y", "x"))]
    if torch.cuda.is_available():
        inputs.append(torch.tensor(maps, device="cuda"))
    for X in inputs:
        topo = LevelSetTopology(n_levels=7).fit(X)
        np.testing.assert_array_equal(topo.betti_curves_.values, ref.betti_curves_.values)
        np.testing.assert_array_equal(topo.peak_counts_, ref.peak_counts_)
        assert topo.diagrams_.equals(ref.diagrams_)
        np.testing.assert_array_equal(topo.transform(X), ref.transform(maps))
        assert topo.score(X) == ref.score(maps)


def test_plot_betti_curves_draws_the_betti_numbers():
    import matplotlib.pyplot as plt

    from geomkit.plotting import plot_betti_curves

    maps = np.stack([bumps([(12, 12), (30, 34)], [1.0, 0.7]), bumps([(24, 24)], [1.0]),
                     smooth_maps(1, shape=(48, 48), seed=2)[0]])
    for curves in (betti_curves(maps[0], n_levels=9), betti_curves(maps, n_levels=9)):
        ax = plot_betti_curves(curves)
        lines = [line for line in ax.lines if len(line.get_xdata())]  # not the legend handles
        assert len(lines) == 2
        values = curves.values if curves.ndim == 3 else curves.values[None]
        for dim, line in enumerate(lines):  # b0 first, then b1; several maps: their mean
            np.testing.assert_allclose(line.get_ydata(), values[:, dim].mean(axis=0), rtol=1e-12)
            np.testing.assert_allclose(line.get_xdata(), curves["fraction"].values, rtol=1e-12)
        plt.close(ax.figure)
    assert betti_curves(maps[0], n_levels=9).sel(dim=0).values.max() == 2  # the two bumps


@parametrize_with_checks([LevelSetTopology()])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.slow
@pytest.mark.parametrize("sigma", [4.0, 0.0])
def test_full_size_batch_equals_gudhi(sigma):
    """The benchmark's setting: 64 x 64 maps, smooth and white noise, all at once."""
    gudhi = pytest.importorskip("gudhi")
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((200, 64, 64))
    if sigma:
        maps = ndimage.gaussian_filter(maps, (0, sigma, sigma), mode="wrap")
    for img, (h0, h1) in zip(maps, persistence_diagrams(maps)):
        pairs = gudhi.CubicalComplex(top_dimensional_cells=-img).persistence()
        for dim, got in ((0, h0), (1, h1)):
            ref = [(-b, -d) for k, (b, d) in pairs if k == dim and d > b]
            np.testing.assert_allclose(rows(got), rows(ref), rtol=1e-12)


def test_feature_names_and_pandas_output_match_the_signature():
    import pandas as pd

    y, x = np.mgrid[:16, :16]
    maps = np.stack([np.exp(-((x - c) ** 2 + (y - 8) ** 2) / 10) for c in (4, 8, 12)])
    topo = LevelSetTopology(n_levels=11).fit(maps)
    names = topo.get_feature_names_out()
    assert names.tolist() == [f"loop_level{k:02d}" for k in range(11)] + [f"line_level{k:02d}" for k in range(11)]
    frame = topo.set_output(transform="pandas").transform(maps)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == names.tolist()
    # Column "loop_level<k>" holds the loop count at level k of signatures_ (one bump: one loop).
    np.testing.assert_array_equal(frame.filter(like="loop_").values, topo.signatures_.sel(kind="loop").values)
    np.testing.assert_array_equal(frame.filter(like="line_").values, topo.signatures_.sel(kind="line").values)
