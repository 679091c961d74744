"""Every public plot function passes **kwargs to its data artist, the user's value winning over a default;
the study report's figures have no text under 9 pt."""

from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.text import Text  # noqa: E402

import geomkit.plotting as gp  # noqa: E402

ALPHA = 0.37


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _drawn_lines(ax):
    """Lines with data (seaborn adds empty ones as legend handles)."""
    return [line for line in ax.get_lines() if len(line.get_xdata())]


# -- tiny inputs, as the docstring examples build them ------------------------------------------


def _spectrum():
    from geomkit.datasets import make_powerlaw_data
    from geomkit.measures.spectrum import PowerLawSpectrum

    X, _ = make_powerlaw_data(300, 30, alpha=1.0, random_state=0)
    return PowerLawSpectrum(fit_range=(2, 10)).fit(X)


def _net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))


def _weight_spectra():
    from geomkit.measures.weight_spectra import weight_spectra

    return weight_spectra(_net(), progress=False)


def _weight_kurtosis():
    from geomkit import weight_kurtosis

    return weight_kurtosis(_net())


def _categorization_table():
    return pd.DataFrame({"layer": ["input", "fc", "out"], "depth": [0, 1, 2], "index": [0.1, 0.4, 0.8],
                         "ci_low": [0.05, 0.3, 0.7], "ci_high": [0.15, 0.5, 0.9]})


def _morph_profile():
    import torch

    from geomkit.probe import morph_profile

    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, 1.0]]))
        net[0].bias.zero_()
    return morph_profile(net, [-4.0, 1.0], [4.0, 1.0], n_steps=21)


def _selectivity():
    from geomkit.measures import CategorySelectivity

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    X = rng.normal(size=(60, 6)) + 2.0 * (y[:, None] == np.arange(6) % 3)
    return CategorySelectivity().fit(X, y)


def _robust_accuracy():
    return xr.DataArray([[1.0, 0.5, 0.0], [1.0, 0.8, 0.2]], dims=("attack", "eps"),
                        coords={"attack": ["pgd", "noise"], "eps": [1e-3, 1e-2, 1e-1]})


def _flatness_frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"layer": np.repeat(["1", "output"], 10), "stimulus": np.tile(np.arange(10), 2),
                         "log_trace": rng.normal(size=20)})


def _flatness_dataset():
    rng = np.random.default_rng(0)
    eig = np.sort(rng.exponential(size=(2, 8, 4)), axis=-1)[..., ::-1]  # (layer, stimulus, rank)
    return xr.Dataset({"trace": (("layer", "stimulus"), eig.sum(-1)),
                       "eigenvalues": (("layer", "stimulus", "rank"), eig)},
                      coords={"layer": ["1", "output"], "rank": np.arange(1, 5)},
                      attrs={"measure": "jacobian"})


def _diagrams():
    return [np.array([[1.0, -np.inf], [0.6, 0.2]]), np.array([[0.5, 0.1]])]


def _ring():
    y, x = np.mgrid[:24, :24]
    return np.exp(-((np.hypot(x - 12, y - 12) - 6) ** 2) / 8)


def _betti():
    from geomkit.measures import betti_curves

    return betti_curves(_ring())


def _signature():
    from geomkit.measures import contour_signature

    return contour_signature(_ring())


def _history():
    return pd.DataFrame({"epoch": [1, 2, 3], "task_loss": [2.0, 0.9, 0.5], "reg_spectral": [0.3, 0.1, 0.05]})


def _hebbian_history():
    return pd.DataFrame({"epoch": [1, 2, 3], "norm_distance": [0.8, 0.1, 0.01], "frac_ever_won": [0.4, 0.9, 1.0]})


def _spectra():
    n = np.arange(1, 101)
    return {"alpha = 1": n ** -1.0, "alpha = 2": n ** -2.0}


def _similarity():
    import xarray as xr

    return xr.DataArray([[1.0, 0.4], [0.4, 1.0]], dims=("layer_a", "layer_b"),
                        coords={"layer_a": ["fc1", "fc2"], "layer_b": ["fc1", "fc2"]})


# name -> (call with the user's kwargs, the data artists it must reach)
CASES = {
    "plot_spectrum": (lambda kw: gp.plot_spectrum(_spectrum(), show_fit=False, show_noise=False, **kw),
                      lambda ax: _drawn_lines(ax)),
    "plot_weight_spectra": (lambda kw: gp.plot_weight_spectra(_weight_spectra(), **kw),
                            lambda ax: [ln for ln in _drawn_lines(ax) if ln.get_drawstyle() == "steps-post"]),
    "plot_weight_kurtosis": (lambda kw: gp.plot_weight_kurtosis(_weight_kurtosis(), **kw),
                             lambda ax: list(ax.patches)),
    "plot_layer_similarity": (lambda kw: gp.plot_layer_similarity(_similarity(), **kw),
                              lambda ax: list(ax.images)),
    "plot_categorization_by_layer": (lambda kw: gp.plot_categorization_by_layer(_categorization_table(), **kw),
                                     lambda ax: _drawn_lines(ax)),
    "plot_morph_profile": (lambda kw: gp.plot_morph_profile(_morph_profile(), **kw),
                           lambda ax: [ln for ln in _drawn_lines(ax) if ln.get_linestyle() == "-"]),
    "plot_selectivity": (lambda kw: gp.plot_selectivity(_selectivity(), **kw),
                         lambda ax: [c for c in ax.collections if isinstance(c, QuadMesh)]),
    "plot_robust_accuracy": (lambda kw: gp.plot_robust_accuracy(_robust_accuracy(), **kw),
                             lambda ax: _drawn_lines(ax)),
    "plot_critical_eps": (lambda kw: gp.plot_critical_eps([0.01, 0.02, 0.05, 0.1, np.inf], **kw),
                          lambda ax: list(ax.patches)),
    "plot_flatness": (lambda kw: gp.plot_flatness(_flatness_frame(), **kw),
                      lambda ax: [c for c in ax.collections if isinstance(c, PolyCollection)]),
    "plot_flatness_spectrum": (lambda kw: gp.plot_flatness_spectrum(_flatness_dataset(), **kw),
                               lambda ax: _drawn_lines(ax)),
    "plot_persistence_diagram": (lambda kw: gp.plot_persistence_diagram(_diagrams(), **kw),
                                 lambda ax: [c for c in ax.collections if isinstance(c, PathCollection)]),
    "plot_betti_curves": (lambda kw: gp.plot_betti_curves(_betti(), **kw), lambda ax: _drawn_lines(ax)),
    "plot_contour_signature": (lambda kw: gp.plot_contour_signature(_signature(), **kw),
                               lambda ax: _drawn_lines(ax)),
    "plot_tuning_map": (lambda kw: gp.plot_tuning_map(_ring(), **kw),
                        lambda ax: [c for c in ax.collections if isinstance(c, QuadMesh)]),
    "plot_training_history": (lambda kw: gp.plot_training_history(_history(), **kw),
                              lambda ax: _drawn_lines(ax)),
    "plot_hebbian_convergence": (lambda kw: gp.plot_hebbian_convergence(_hebbian_history(), **kw),
                                 lambda ax: _drawn_lines(ax) + _drawn_lines(ax.right_ax)),
    "plot_receptive_fields": (
        lambda kw: gp.plot_receptive_fields(np.random.default_rng(0).normal(size=(10, 16)), (4, 4), n=4, **kw),
        lambda ax: list(ax.images)),
    "plot_spectral_targets": (lambda kw: gp.plot_spectral_targets(_spectra(), fit_range=(5, 50), **kw),
                              lambda ax: [ln for ln in _drawn_lines(ax) if ln.get_linestyle() == "-"]),
}

# study_figures draws seven figures of different kinds: there is no one data artist to pass kwargs to.
NO_KWARGS = {"study_figures"}


def test_every_public_plot_function_takes_and_documents_kwargs():
    public = set(gp.__all__) - NO_KWARGS
    assert public == set(CASES)
    for name in public:
        func = getattr(gp, name)
        kinds = [p.kind for p in inspect.signature(func).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD in kinds, name
        params = func.__doc__.split("Parameters\n    ----------")[1].split("Returns\n    -------")[0]
        assert "\n    **kwargs\n        Passed to " in params, name


def _drawn_alpha(artist):
    """The artist's alpha; seaborn's histplot bakes it into the bars' face colour instead."""
    if artist.get_alpha() is None and hasattr(artist, "get_facecolor"):
        return float(np.ravel(artist.get_facecolor())[3])
    return artist.get_alpha()


@pytest.mark.parametrize("name", sorted(CASES))
def test_kwargs_reach_the_drawn_artists(name):
    draw, artists = CASES[name]
    ax = draw({"alpha": ALPHA})
    drawn = artists(ax)
    assert drawn, f"{name} drew none of its data artists"
    assert [_drawn_alpha(a) for a in drawn] == [ALPHA] * len(drawn)


def _colors(artists):
    return {to_rgba(a.get_color()) for a in artists}


# name, the user's kwargs, what the drawn artists must then show (the function sets another default)
WINS = [
    ("plot_training_history", {"marker": "s"}, lambda a: a.get_marker() == "s"),                # default "o"
    ("plot_training_history", {"ms": 9}, lambda a: a.get_markersize() == 9),                    # alias of 3
    ("plot_flatness_spectrum", {"markersize": 8}, lambda a: a.get_markersize() == 8),           # default 3
    ("plot_morph_profile", {"lw": 0.5}, lambda a: a.get_linewidth() == 0.5),                    # default 2
    ("plot_betti_curves", {"marker": "x"}, lambda a: a.get_marker() == "x"),                    # default "o"
    ("plot_contour_signature", {"marker": "^"}, lambda a: a.get_marker() == "^"),
    ("plot_weight_spectra", {"color": "k"}, lambda a: to_rgba(a.get_color()) == to_rgba("k")),  # palette
    ("plot_spectral_targets", {"color": "m"}, lambda a: to_rgba(a.get_color()) == to_rgba("m")),  # C0, C1
    ("plot_hebbian_convergence", {"color": "k", "ls": ":"},
     lambda a: to_rgba(a.get_color()) == to_rgba("k") and a.get_linestyle() == ":"),           # C0 / C1 "--"
    ("plot_persistence_diagram", {"s": 100}, lambda a: set(a.get_sizes()) == {100}),           # default 36
    # (seaborn resamples the colormap around center=0: compare its ends)
    ("plot_selectivity", {"cmap": "viridis"},
     lambda a: np.allclose([a.get_cmap()(0.0), a.get_cmap()(1.0)], plt.get_cmap("viridis")([0.0, 1.0]))),
    ("plot_tuning_map", {"cmap": "gray"}, lambda a: a.get_cmap().name == "gray"),              # "viridis"
    ("plot_receptive_fields", {"cmap": "gray"}, lambda a: a.get_cmap().name == "gray"),        # "bwr"
]


@pytest.mark.parametrize(("name", "kwargs", "check"), WINS, ids=[f"{n}-{sorted(k)}" for n, k, _ in WINS])
def test_the_users_value_wins_over_the_default(name, kwargs, check):
    draw, artists = CASES[name]
    drawn = artists(draw(kwargs))
    assert drawn and all(check(a) for a in drawn)


def test_user_colour_carries_to_the_companion_lines():
    # the tail fits and target lines follow their data line's colour, whichever it is
    ax = gp.plot_spectral_targets(_spectra(), targets={"alpha = 2": 2.0}, fit_range=(5, 50), color="m")
    assert _colors(_drawn_lines(ax)) == {to_rgba("m")}
    ax = gp.plot_weight_spectra(_weight_spectra(), color="k")
    assert _colors(_drawn_lines(ax)) == {to_rgba("k")}


def test_defaults_hold_without_kwargs():
    # the merge keeps every default when the user gives nothing
    (line, *_) = _drawn_lines(gp.plot_training_history(_history()))
    assert (line.get_marker(), line.get_markersize()) == ("o", 3)
    (mesh,) = [c for c in gp.plot_tuning_map(_ring()).collections if isinstance(c, QuadMesh)]
    assert mesh.get_cmap().name == "viridis"
    assert gp.plot_critical_eps([0.01, 0.1, 1.0]).get_xscale() == "log"
    assert gp.plot_critical_eps([0.01, 0.1, 1.0], log_scale=False).get_xscale() == "linear"


# -- readable report figures --------------------------------------------------------------------


def _text_sizes(fig):
    fig.canvas.draw()  # ticks and their labels are made at draw time
    return {t.get_text(): t.get_fontsize() for t in fig.findobj(Text) if t.get_text() and t.get_visible()}


@pytest.mark.parametrize("base_size", [None, 6.0])
def test_study_figures_have_no_text_under_9_points(base_size):
    """Every figure of the report (legends, annotations, tick labels), at the default font size and when
    the caller's rcParams use a 6 pt base: the report sets its own."""
    from test_report import _results

    from geomkit.plotting.study import study_figures

    ds = _results()
    # a flat Betti curve shared by every model: the figure then writes its "lines overlap" note
    ds["betti0"].loc[dict(layer="hidden")] = 1.0
    rc = {} if base_size is None else {"font.size": base_size, "legend.fontsize": "small",
                                       "xtick.labelsize": "small", "ytick.labelsize": "small"}
    with matplotlib.rc_context(rc):
        figures = study_figures(ds)
        assert len(figures) == 7
        sizes = {name: _text_sizes(fig) for name, (fig, _) in figures.items()}
    assert any("lines overlap" in text for text in sizes["betti_curves"])
    for name, texts in sizes.items():
        assert len(texts) > 5, name  # titles, labels, ticks, legend entries were found
        small = {text: size for text, size in texts.items() if size < 9}
        assert not small, f"{name}: {small}"
