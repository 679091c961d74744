"""scikit-learn classifiers around torch modules: backprop nets and Hebbian nets.

:class:`NetClassifier` trains any classification module (default: an
:class:`~geomkit.train.MLP`) by backprop with Adam on the cross-entropy plus
the terms of its regularizers. :class:`HebbianClassifier` learns a
Krotov-Hopfield or SoftHebb hidden layer without labels, then trains the
``ReLU(h)^n`` + linear readout by backprop.

Both follow scikit-learn's conventions (``fit`` / ``predict`` /
``predict_proba`` / ``score``, ``get_params`` / ``set_params``, ``clone``,
``GridSearchCV``), expose the trained torch module as ``module_`` (layers named
as in :mod:`geomkit.train.models`, so :func:`geomkit.probe.extract` can
record them) and the per-epoch history as the DataFrame ``history_``.

Why not skorch: skorch's ``NeuralNetClassifier`` is the ecosystem's wrapper,
but it would be a new dependency, and what this module needs sits across its
grain: regularizers that read hidden layers with gradients and recompute
eigenvectors over the training set between epochs, double-backward Jacobian
terms, one history column per loss term, stopping on a NaN term with the last
good weights, a ``random_state`` that makes a CPU run bit-for-bit
reproducible, an unsupervised phase before the supervised one, and saving
without pickles. The loop below is ~100 lines.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._atomic import atomic_path, atomic_write_text
from .._backend import resolve_device
from .._params import DEPRECATED, renamed_parameter
from .._validation import check_float, check_int, check_option
from ..probe.recorder import Recorder
from .hebbian import KrotovHopfield, SoftHebb, _epoch_bar, _seed_from, build_layer
from .models import MLP, build_model, register_model
from .regularizers import (
    BatchContext,
    JacobianRegularizer,
    NeuralPredictionHead,
    RepresentationalSimilarity,
    Regularizer,
    SaturationPenalty,
    SpectralRegularizer,
    WeightDecay,
    as_regularizer_list,
)

__all__ = ["NetClassifier", "HebbianClassifier", "HebbianNet", "RectifiedPower", "TrainingDiverged",
           "train_module"]


class TrainingDiverged(FloatingPointError):
    """A loss term became NaN or infinite; the estimator keeps the last good weights."""


# ---------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------


def _term_names(regs: list[Regularizer]) -> list[str]:
    names, seen = [], {}
    for r in regs:
        seen[r.name] = seen.get(r.name, 0) + 1
        names.append(r.name if seen[r.name] == 1 else f"{r.name}{seen[r.name]}")
    return names


def train_module(
    module: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    regularizers: list[Regularizer] = (),
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 128,
    random_state: Any = 0,
    progress: bool = False,
    desc: str = "training",
    seed: Any = DEPRECATED,
) -> pd.DataFrame:
    """Train ``module`` in place with Adam on cross-entropy + regularizer terms.

    The loop under :class:`NetClassifier` (and the readout of
    :class:`HebbianClassifier`), usable on its own for tensors.

    Parameters
    ----------
    module : torch.nn.Module
        Maps (batch, ...) inputs to (batch, C) logits.
    X : torch.Tensor of shape (n_samples, ...)
        Training inputs, on the module's device.
    y : torch.Tensor of shape (n_samples,)
        Integer class indices 0..C-1 (int64).
    regularizers : list of Regularizer, default=()
        Terms added to the loss (already copied: they are fitted in place).
    epochs : int, default=20
    lr : float, default=1e-3
        Adam's learning rate.
    batch_size : int, default=128
        The n samples are split into ``ceil(n / batch_size)`` batches of nearly
        equal size.
    random_state : None, int, numpy Generator or RandomState, default=0
        Seeds the shuffling order.
    progress : bool, default=False
        Show a tqdm bar over epochs.
    desc : str, default="training"
        Label of the progress bar.
    seed : deprecated
        Old name of ``random_state`` (one more release, with a ``DeprecationWarning``).

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch``, ``loss``, ``task_loss``, ``reg_<name>``
        per regularizer, ``accuracy`` (training), ``seconds`` and, with a
        spectral regularizer, ``<name>_alpha_train``.

    Raises
    ------
    TrainingDiverged
        On a non-finite loss term, naming the epoch and the term, after
        restoring the weights of the last epoch that ended with finite losses;
        the partial history is attached to the exception as ``.history``.

    Examples
    --------
    >>> import torch
    >>> from geomkit.train import MLP, train_module
    >>> X, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    >>> history = train_module(MLP((4, 8, 2)), X, y, epochs=3, batch_size=32)
    >>> list(history["epoch"])
    [0, 1, 2]
    """
    regs = list(regularizers)
    names = _term_names(regs)
    random_state = renamed_parameter("seed", seed, "random_state", random_state,
                                     caller="train_module", new_default=0)
    gen = torch.Generator().manual_seed(_seed_from(random_state, "train_module"))
    n = X.shape[0]
    for reg in regs:
        # the smallest batch the regularizers will see
        reg.setup(module, X, batch_size=n // -(-n // batch_size), n_epochs=epochs)
    # the regularizers' own parameters (a neural readout) are optimized with the module's
    params = [p for p in module.parameters() if p.requires_grad]
    params += [p for reg in regs for p in reg.trainable_parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    layers = sorted({name for reg in regs for name in reg.layers_needed()})
    input_grad = any(reg.needs_input_grad for reg in regs)
    good_state = copy.deepcopy(module.state_dict())
    rows: list[dict[str, Any]] = []
    n_batches = -(-n // batch_size)
    bar = _epoch_bar(epochs, progress, desc)
    with Recorder(module, layers, detach=False) if layers else _NoRecorder() as rec:
        for epoch in bar:
            t0 = time.perf_counter()
            module.eval()  # epoch-start passes over the training set see the eval-mode net
            for reg in regs:
                reg.on_epoch_start(module, X, epoch, epochs)
            module.train()
            order = torch.randperm(n, generator=gen).to(X.device)
            sums = dict.fromkeys(["loss", "task_loss", *names], 0.0)
            correct = 0
            # ceil(n / batch_size) batches of nearly equal size: no tiny last batch
            for idx in torch.tensor_split(order, n_batches):
                xb, yb = X[idx], y[idx]
                if input_grad:  # X[idx] is a fresh tensor (a gather): no clone needed
                    xb.requires_grad_(True)
                rec.clear()
                logits = module(xb)
                terms = {"task_loss": F.cross_entropy(logits, yb)}
                if regs:
                    ctx = BatchContext(module, xb, logits, {k: rec.records[k][0] for k in layers},
                                       epoch, epochs, index=idx)
                    terms.update({name: reg(ctx) for name, reg in zip(names, regs)})
                bad = [name for name, t in terms.items() if not torch.isfinite(t.detach())]
                if bad:
                    module.load_state_dict(good_state)
                    err = TrainingDiverged(
                        f"training diverged in epoch {epoch} (0-based): the term(s) {', '.join(map(repr, bad))} became NaN or infinite. "
                        f"The weights of the last good epoch ({epoch - 1 if epoch else 'initial'}) "
                        "were kept. Lower lr or the regularizer strength."
                    )
                    err.history = pd.DataFrame(rows).rename(columns={n: f"reg_{n}" for n in names})
                    err.epoch, err.terms = epoch, bad
                    raise err
                loss = sum(terms.values())
                optimizer.zero_grad(set_to_none=True)
                # gradients of the parameters only: no wasted pass back to the inputs
                loss.backward(inputs=params)
                optimizer.step()
                weight = idx.numel() / n
                sums["loss"] += float(loss.detach()) * weight
                for name, t in terms.items():
                    sums[name] += float(t.detach()) * weight
                correct += int((logits.detach().argmax(1) == yb).sum())
            good_state = copy.deepcopy(module.state_dict())
            row = {"epoch": epoch, **sums, "accuracy": correct / n}
            for name, reg in zip(names, regs):
                if hasattr(reg, "fit_alpha_"):
                    row[f"{name}_alpha_train"] = reg.fit_alpha_
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if progress:
                bar.set_postfix(loss=f"{row['loss']:.4g}", acc=f"{row['accuracy']:.3f}")
    module.eval()
    return pd.DataFrame(rows).rename(columns={name: f"reg_{name}" for name in names})


class _NoRecorder:
    records: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def clear(self):
        pass


# ---------------------------------------------------------------------------
# Shared classifier machinery
# ---------------------------------------------------------------------------

_REGULARIZERS = {cls.__name__: cls for cls in
                 (SpectralRegularizer, JacobianRegularizer, WeightDecay, SaturationPenalty,
                  RepresentationalSimilarity, NeuralPredictionHead)}


def _json_param(value: Any) -> Any:
    """A regularizer parameter in JSON: estimators (a recording's model) by class and parameters;
    arrays (a recording) by their shape only, since config.json holds no data."""
    if isinstance(value, dict):
        return {k: _json_param(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_param(v) for v in value]
    if isinstance(value, BaseEstimator):
        return {"class": type(value).__name__, "params": _json_param(value.get_params(deep=False))}
    if isinstance(value, torch.Tensor) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        return {"array_shape": [int(n) for n in value.shape]}
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _param_from_json(params: dict[str, Any], path: Path) -> dict[str, Any]:
    """Inverse of :func:`_json_param` for the known recording models; arrays come back as None."""
    from ..datasets import GaborV1

    out = {}
    for key, value in params.items():
        if isinstance(value, dict) and value.get("class") == "GaborV1":
            value = GaborV1(**{k: tuple(v) if isinstance(v, list) else v for k, v in value["params"].items()})
        elif isinstance(value, dict) and "array_shape" in value:
            warnings.warn(f"{path}: the regularizer's {key} (an array of shape {tuple(value['array_shape'])}) "
                          f"is not saved in a checkpoint; the loaded regularizer has {key}=None.",
                          UserWarning, stacklevel=4)
            value = None
        out[key] = value
    return out


class _TorchClassifier(ClassifierMixin, BaseEstimator):
    """predict / predict_proba / save / load shared by the two classifiers."""

    def _device(self, module: nn.Module | None = None):
        return resolve_device(self.device, module)

    def _prepare_targets(self, y: np.ndarray, n_outputs: int | None) -> np.ndarray:
        """Set ``classes_`` and ``columns_``; return y as output-unit indices."""
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        direct = n_outputs is not None and np.issubdtype(self.classes_.dtype, np.integer)
        if direct:
            # integer labels name the output units of a given module: they must exist
            out = [int(c) for c in self.classes_ if c < 0 or c >= n_outputs]
            if out:
                raise ValueError(
                    f"y contains label(s) {out[:10]} outside 0..{n_outputs - 1}: the module has "
                    f"{n_outputs} outputs, and integer labels index them. Relabel y to 0..C-1."
                )
            self.columns_ = self.classes_.astype(np.int64)
            return y.astype(np.int64)
        if n_outputs is not None and self.classes_.size > n_outputs:
            raise ValueError(
                f"y has {self.classes_.size} classes but the module has only {n_outputs} outputs."
            )
        self.columns_ = np.arange(self.classes_.size)
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _logits(self, X: Any, batch_size: int = 1024) -> torch.Tensor:
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        device = self._device(self.module_)
        self.module_.eval()
        out = []
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                xb = torch.from_numpy(X[start : start + batch_size]).to(device)
                out.append(self.module_(xb).float().cpu())
        return torch.cat(out)[:, torch.as_tensor(self.columns_)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, the softmax of the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        return torch.softmax(self._logits(X).double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels: the class with the largest logit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        best = self._logits(X).argmax(1).numpy()
        return self.classes_[best]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples in the mean.

        Returns
        -------
        float
            The fraction of correct predictions, in [0, 1]; higher is better.
        """
        return super().score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    # -- saving ----------------------------------------------------------------
    def _json_params(self) -> dict[str, Any]:
        params = {}
        for key, value in self.get_params(deep=False).items():
            if key == "module" and isinstance(value, nn.Module):
                # a module instance is stored by its config, or marked custom
                value = dict(value.config) if isinstance(getattr(value, "config", None), dict) else "custom"
            elif key == "regularizers" and value is not None:
                value = [{"class": type(r).__name__, "params": _json_param(r.get_params(deep=False))}
                         for r in as_regularizer_list(value)]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, torch.device):
                value = str(value)
            elif isinstance(value, (np.random.RandomState, np.random.Generator)):
                value = None  # a generator's state is not kept; the weights are
            params[key] = value
        return params

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted estimator to the directory ``path``.

        Writes ``config.json`` (parameters, module config, classes, the
        training histories at full float precision) and ``state_dict.pt``
        (the module's tensors, ``torch.save``); no pickled objects.

        Parameters
        ----------
        path : str or path-like
            The directory (created if missing).

        Returns
        -------
        pathlib.Path
            The directory.
        """
        check_is_fitted(self, "module_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        module_config = getattr(self.module_, "config", None)
        config = {
            "estimator": type(self).__name__,
            "params": self._json_params(),
            "module_config": module_config,
            "classes": self.classes_.tolist(),
            "columns": self.columns_.tolist(),
            "n_features_in": int(self.n_features_in_),
            "history": _frame_records(self.history_),
            **self._extra_config(),
        }
        state = {k: v.detach().cpu() for k, v in self.module_.state_dict().items()}
        # each file is replaced atomically: an interrupted save leaves the old file or the new one
        with atomic_path(path / "state_dict.pt") as tmp:
            torch.save(state, tmp)
        atomic_write_text(path / "config.json", json.dumps(config, indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, module: nn.Module | None = None, device: Any = None):
        """Load an estimator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The directory given to :meth:`save`.
        module : torch.nn.Module, optional
            A module of the saved architecture, needed when the saved module
            was a custom one (it has no JSON config). Its weights are replaced.
        device : optional
            Where to put the module (default: the CPU).

        Returns
        -------
        estimator
            Fitted, on ``device``.

        Raises
        ------
        FileNotFoundError
            If ``config.json`` or ``state_dict.pt`` is missing.
        ValueError
            Naming the file, for any checkpoint that :meth:`save` did not
            write as it stands: damaged or truncated files, a ``config.json``
            with missing or malformed entries, tensors whose shapes disagree
            with the config (checked before any memory is allocated, so a
            crafted config cannot request terabytes), or a ``state_dict.pt``
            that ``weights_only`` loading refuses (it refers to code).

        Notes
        -----
        The weights are read with ``torch.load(..., weights_only=True)``: no
        code is unpickled.
        """
        path = Path(path)
        config = _read_checkpoint_config(path / "config.json")
        try:
            est = cls._from_checkpoint(config, path, module, device)
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"{str(path / 'config.json')!r} is malformed ({type(err).__name__}: {err}); "
                             "it was not written by save() or was edited.") from None
        return est

    @classmethod
    def _from_checkpoint(cls, config: dict[str, Any], path: Path, module: nn.Module | None, device: Any):
        if config.get("estimator") != cls.__name__:
            raise ValueError(f"{path} holds a {config.get('estimator')}, not a {cls.__name__}.")
        params = dict(config["params"])
        if params.get("regularizers") is not None:
            regs = []
            for item in params["regularizers"]:
                if item["class"] not in _REGULARIZERS:
                    raise ValueError(f"unknown regularizer class {item['class']!r} in {path}.")
                regs.append(_REGULARIZERS[item["class"]](**_param_from_json(item["params"], path)))
            params["regularizers"] = regs
        for key in ("hidden_sizes",):
            if isinstance(params.get(key), list):
                params[key] = tuple(params[key])
        state = _read_checkpoint_state(path / "state_dict.pt")
        if module is None:
            if config["module_config"] is None:
                raise ValueError(
                    f"{path} holds a custom module without a JSON config; pass module=<an instance "
                    "of the same architecture> to load()."
                )
            module = _build_for_state(config["module_config"], state, path)
        try:
            module.load_state_dict(state)
        except RuntimeError as err:  # missing / unexpected keys, shape mismatch
            raise ValueError(f"the weights in {str(path / 'state_dict.pt')!r} do not fit the module: "
                             f"{str(err).splitlines()[0]} ...") from None
        if params.get("module") == "custom":
            params["module"] = copy.deepcopy(module)
        est = cls(**params)
        est.module_ = module.to(resolve_device(device)).eval()
        est.classes_ = np.asarray(config["classes"])
        est.columns_ = np.asarray(config["columns"], dtype=np.int64)
        est.n_features_in_ = config["n_features_in"]
        est.history_ = pd.DataFrame(config["history"])
        est._restore_extra(config, path)
        return est

    def _train(self, module: nn.Module, Xt: torch.Tensor, yt: torch.Tensor, regs: list[Regularizer], *,
               epochs: int, lr: float, batch_size: int, seed: int) -> None:
        """:func:`train_module` into ``history_`` / ``regularizers_``; on divergence keep the last good
        weights in ``module_`` and the epochs before in ``history_``, then re-raise."""
        self.regularizers_ = regs
        try:
            self.history_ = train_module(module, Xt, yt, regularizers=regs, epochs=epochs, lr=lr,
                                         batch_size=batch_size, random_state=seed, progress=self.progress,
                                         desc=type(self).__name__)
        except TrainingDiverged as err:
            self.module_, self.history_ = module.eval(), err.history
            raise

    def _extra_config(self) -> dict[str, Any]:
        """Estimator-specific JSON entries of ``config.json``."""
        return {}

    def _restore_extra(self, config: dict[str, Any], path: Path) -> None:
        """Set the attributes that :meth:`_extra_config` saved."""


def _read_checkpoint_config(file: Path) -> dict[str, Any]:
    """``config.json`` as a dict, or a ValueError naming the file."""
    text = file.read_text(encoding="utf-8", errors="replace")
    try:
        config = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{str(file)!r} is not valid JSON ({err}); the checkpoint is damaged or truncated.") from None
    if not isinstance(config, dict):
        raise ValueError(f"{str(file)!r} holds a JSON {type(config).__name__}, not a checkpoint config.")
    return config


def _read_checkpoint_state(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``state_dict.pt`` (``weights_only=True``), or a ValueError naming the file."""
    import pickle
    import re

    if not file.is_file():
        raise FileNotFoundError(f"checkpoint file {str(file)!r} does not exist.")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        code = re.search(r"GLOBAL ([\w.]+)", str(err))
        reason = (f"it refers to code ({code.group(1)})" if code else "it is no tensor file geomkit wrote")
        raise ValueError(f"refused to load {str(file)!r}: {reason}, which weights_only loading does not run. "
                         "Delete it, or retrain.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        # torch's first sentence says what failed; the rest is advice about torch.load
        first = str(err).splitlines()[0].split(". ")[0] if str(err) else "the file ended early"
        raise ValueError(f"{str(file)!r} is damaged or truncated ({first}).") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(file)!r} holds a {type(state).__name__}, not a dict of named tensors.")
    return state


def _build_for_state(module_config: Any, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """``build_model(module_config)``, after checking on the meta device (no memory) that its tensors
    have the shapes of ``state``: the sizes a config may request are bounded by the weights on disk."""
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(module_config).state_dict().items()}
    except (RuntimeError, NotImplementedError):  # a registered builder that cannot run on meta: unchecked
        return build_model(module_config)
    found = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != found:
        diff = sorted(k for k in set(shapes) | set(found) if shapes.get(k) != found.get(k))
        name = diff[0]
        raise ValueError(
            f"config.json and state_dict.pt in {str(path)!r} disagree: the config builds {len(shapes)} "
            f"tensors, the weights file holds {len(found)}; e.g. {name!r} has shape {shapes.get(name)} in "
            f"the config and {found.get(name)} on disk. Not loaded (the checkpoint is damaged or edited)."
        )
    return build_model(module_config)


def _frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a DataFrame as JSON-ready dicts: Python scalars (floats
    written by ``repr``, so they read back bit for bit), NaN as null."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """torch's global generator seeded with ``seed`` for a fit and restored afterwards (on a GPU, the
    device's generator too): a fit is reproducible and leaves the caller's random stream alone."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _to_tensors(X: np.ndarray, y: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(X)).to(device), torch.from_numpy(y).to(device)


# ---------------------------------------------------------------------------
# NetClassifier
# ---------------------------------------------------------------------------


class NetClassifier(_TorchClassifier):
    """A torch classification network trained by backprop, as a scikit-learn classifier.

    Parameters
    ----------
    module : torch.nn.Module, dict or None, default=None
        The network, mapping (batch, n_features) to (batch, C) logits. An
        instance is deep-copied at ``fit`` (training starts from its weights;
        the object you passed is never changed); a dict is a model config
        (``{"kind": "MLP", "sizes": [...], ...}``, see
        :func:`~geomkit.train.build_model`); None builds
        ``MLP((n_features, *hidden_sizes, n_classes), activation)``.
    regularizers : Regularizer, list of Regularizer or None
        Terms added to the cross-entropy (see :mod:`geomkit.train.regularizers`).
    epochs : int, default=20
    lr : float, default=1e-3
        Adam's learning rate.
    batch_size : int, default=128
    hidden_sizes : tuple of int, default=(1000,)
        Hidden widths of the default MLP (ignored when ``module`` is given).
    activation : {"relu", "tanh", "sigmoid"}, default="relu"
        Nonlinearity of the default MLP.
    device : str or torch.device, optional
        Where to train; default: where ``module`` is, else the CPU.
    random_state : int, optional
        Seeds the initial weights of a built module, the shuffling and every
        random draw during training: the same seed gives bit-for-bit the same
        weights on the CPU.
    progress : bool, default=True
        Show a tqdm bar over epochs.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (in eval mode).
    classes_ : ndarray of shape (n_classes,)
    history_ : pandas.DataFrame
        One row per epoch: ``epoch``, ``loss`` (total), ``task_loss``
        (cross-entropy), ``reg_<name>`` (each weighted regularizer term),
        ``accuracy`` (training accuracy over the epoch's batches),
        ``seconds``; with a spectral regularizer also
        ``spectral_alpha_train`` (exponent, over the penalized ranks, of the
        training-set eigenvalues at the epoch's eigenvector update: exact in
        the first epoch, Rayleigh quotients on the update rows after that).
    regularizers_ : list of Regularizer
        The fitted copies of the regularizers.
    n_features_in_ : int

    Raises
    ------
    TrainingDiverged
        If a loss term becomes NaN / inf (the message names the epoch and the
        term; ``module_`` keeps the last good weights, ``history_`` the epochs
        before).

    Examples
    --------
    >>> from geomkit.datasets import load_digits
    >>> from geomkit.train import NetClassifier
    >>> X_train, X_test, y_train, y_test = load_digits(test_size=0.3)
    >>> clf = NetClassifier(hidden_sizes=(64,), epochs=15, lr=3e-3, batch_size=64, random_state=0,
    ...                     progress=False)
    >>> clf.fit(X_train, y_train).score(X_test, y_test) > 0.95
    True
    """

    def __init__(self, module: Any = None, regularizers: Any = None, epochs: int = 20, lr: float = 1e-3,
                 batch_size: int = 128, hidden_sizes: tuple[int, ...] = (1000,), activation: str = "relu",
                 device: Any = None, random_state: Any = None, progress: bool = True):
        self.module = module
        self.regularizers = regularizers
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def _build_module(self, n_features: int, n_classes: int) -> nn.Module:
        if self.module is None:
            sizes = (n_features, *[check_int(h, "hidden_sizes", low=1) for h in self.hidden_sizes], n_classes)
            return MLP(sizes, activation=self.activation)
        if isinstance(self.module, dict):
            return build_model(self.module)
        if isinstance(self.module, nn.Module):
            return copy.deepcopy(self.module)
        raise TypeError(
            "module must be None (default MLP), a torch.nn.Module or a model config dict; got "
            f"{type(self.module).__name__}."
        )

    def fit(self, X: Any, y: Any) -> "NetClassifier":
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Labels; integer labels index the outputs of a given ``module``
            and must lie in 0..C-1.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        epochs = check_int(self.epochs, "epochs", low=1)
        batch_size = check_int(self.batch_size, "batch_size", low=1)
        lr = check_float(self.lr, "lr", low=0.0, low_inclusive=False)
        check_option(self.activation, "activation", ("relu", "tanh", "sigmoid"))
        regs = [copy.deepcopy(r) for r in as_regularizer_list(self.regularizers)]
        seed = _seed_from(self.random_state, type(self).__name__)
        given = self.module is not None
        n_classes = np.unique(y).size
        device = self._device(self.module if isinstance(self.module, nn.Module) else None)
        with _seeded(seed, device):
            module = self._build_module(X.shape[1], n_classes).to(device)
            n_outputs = _n_outputs(module, X[:1], device) if given else None
            targets = self._prepare_targets(y, n_outputs)
            Xt, yt = _to_tensors(X, targets, device)
            self._train(module, Xt, yt, regs, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        self.module_ = module
        return self


def _n_outputs(module: nn.Module, x: np.ndarray, device) -> int:
    was = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(x)).to(device))
    module.train(was)
    if out.ndim != 2:
        raise ValueError(f"module must return logits of shape (batch, n_classes); got shape {tuple(out.shape)}.")
    return int(out.shape[1])


# ---------------------------------------------------------------------------
# Hebbian networks
# ---------------------------------------------------------------------------


class RectifiedPower(nn.Module):
    """``ReLU(h)^n``, Krotov & Hopfield's readout nonlinearity.

    Parameters
    ----------
    power : float, default=4.5
        The exponent n.
    """

    def __init__(self, power: float = 4.5):
        super().__init__()
        self.power = float(power)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h).pow(self.power)

    def extra_repr(self) -> str:
        return f"power={self.power}"


class _Scale(nn.Module):
    """Multiply by a fixed (saved) factor."""

    def __init__(self, factor: float = 1.0):
        super().__init__()
        self.register_buffer("factor", torch.tensor(float(factor)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class HebbianNet(nn.Sequential):
    """Hebbian hidden layer + ``ReLU(h)^n`` + fixed feature scale + linear readout.

    Layer names: ``flatten``, ``hidden1`` (the Hebbian layer; its output is the
    currents ``x @ W.T``), ``act1`` (``ReLU(h)^n``), ``scale1`` (times the
    fixed factor ``scale1.factor``), ``out`` (logits).

    Parameters
    ----------
    layer : dict or torch.nn.Module
        The Hebbian layer (:class:`~geomkit.train.KrotovHopfield` or
        :class:`~geomkit.train.SoftHebb`), or its config (``get_config()``).
    readout_power : float, default=4.5
        n in ``ReLU(h)^n``.
    n_classes : int, default=10
        Outputs of the linear readout.
    scale : float, default=1.0
        The fixed factor applied to the features before the readout.

    Examples
    --------
    >>> from geomkit.train import HebbianNet, KrotovHopfield
    >>> net = HebbianNet(KrotovHopfield(64, 20, random_state=0), n_classes=3)
    >>> [name for name, _ in net.named_children()]
    ['flatten', 'hidden1', 'act1', 'scale1', 'out']
    """

    def __init__(self, layer: dict[str, Any] | nn.Module, readout_power: float = 4.5,
                 n_classes: int = 10, scale: float = 1.0):
        hebb = build_layer(layer) if isinstance(layer, dict) else layer
        super().__init__(OrderedDict(
            flatten=nn.Flatten(),
            hidden1=hebb,
            act1=RectifiedPower(readout_power),
            scale1=_Scale(scale),
            out=nn.Linear(hebb.n_hidden, n_classes),
        ))
        self.config = {"kind": "HebbianNet", "layer": hebb.get_config(), "readout_power": float(readout_power),
                       "n_classes": int(n_classes)}


register_model("HebbianNet", HebbianNet)

_LAYERS = {"krotov_hopfield": KrotovHopfield, "softhebb": SoftHebb}


class HebbianClassifier(_TorchClassifier):
    """Unsupervised Hebbian hidden layer + backprop-trained readout (Krotov & Hopfield 2019).

    ``fit`` first learns the hidden layer without labels
    (:meth:`~geomkit.train.hebbian.CompetitiveLayer.fit_unsupervised`), then
    computes the features ``ReLU(x @ W.T)^n``, divides them by one global
    scale (their standard deviation over the training set, by default) and
    trains a linear readout on them with Adam and cross-entropy.

    Parameters
    ----------
    layer : {"krotov_hopfield", "softhebb"}, default="krotov_hopfield"
    n_hidden : int, default=2000
    layer_params : dict, optional
        Further arguments of the layer (:class:`~geomkit.train.KrotovHopfield`:
        ``p``, ``k``, ``delta``, ``R``, ``lr``; :class:`~geomkit.train.SoftHebb`:
        ``temperature``, ``lr``, ``power_lr``, ``anti_hebbian``, ``init_norm``).
    unsup_epochs : int, default=50
        Epochs of the unsupervised phase.
    unsup_batch_size : int, default=100
    readout_power : float, default=4.5
        n in ``ReLU(h)^n`` (Krotov & Hopfield's MNIST value).
    feature_scale : {"std", "max", "none"}, default="std"
        How the features are scaled before the readout: divided by their
        standard deviation over all training samples and units (one number),
        by their maximum, or not at all. On MNIST-5k with 2000
        Krotov-Hopfield units (50 epochs), "std" gives 0.942 test accuracy
        and "max" 0.704 (the few largest features dwarf the rest, and the
        readout's gradients vanish).
    epochs : int, default=60
        Epochs of the readout.
    lr : float, default=1e-3
        Adam's learning rate for the readout.
    batch_size : int, default=100
        Batch size of the readout.
    device, random_state, progress
        As for :class:`NetClassifier`.

    Attributes
    ----------
    module_ : HebbianNet
        ``hidden1`` (Hebbian layer), ``act1``, ``scale1``, ``out``.
    unsup_history_ : pandas.DataFrame
        Per-epoch convergence diagnostics of the hidden layer
        (``norm_distance``, ``frac_won_epoch``, ``frac_ever_won``, ...).
    history_ : pandas.DataFrame
        Per-epoch readout history (``loss``, ``task_loss``, ``accuracy``, ...).
    classes_, n_features_in_

    Raises
    ------
    TrainingDiverged
        If the readout's loss becomes NaN / inf (the message names the
        epoch; ``module_`` keeps the learned hidden layer and the readout of
        the last good epoch, ``history_`` the epochs before).

    Examples
    --------
    >>> from geomkit.datasets import load_digits
    >>> from geomkit.train import HebbianClassifier
    >>> X_train, X_test, y_train, y_test = load_digits(test_size=0.3)
    >>> clf = HebbianClassifier(n_hidden=200, layer_params={"k": 3}, unsup_epochs=20,
    ...                         random_state=0, progress=False)
    >>> clf.fit(X_train, y_train).score(X_test, y_test) > 0.85
    True
    """

    def __init__(self, layer: str = "krotov_hopfield", n_hidden: int = 2000, layer_params: dict | None = None,
                 unsup_epochs: int = 50, unsup_batch_size: int = 100, readout_power: float = 4.5,
                 feature_scale: str = "std", epochs: int = 60, lr: float = 1e-3, batch_size: int = 100,
                 device: Any = None, random_state: Any = None, progress: bool = True):
        self.layer = layer
        self.n_hidden = n_hidden
        self.layer_params = layer_params
        self.unsup_epochs = unsup_epochs
        self.unsup_batch_size = unsup_batch_size
        self.readout_power = readout_power
        self.feature_scale = feature_scale
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def fit(self, X: Any, y: Any) -> "HebbianClassifier":
        """Learn the hidden layer from X without labels, then the readout from y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Labels (any sortable values).

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_option(self.layer, "layer", tuple(_LAYERS))
        check_option(self.feature_scale, "feature_scale", ("std", "max", "none"))
        power = check_float(self.readout_power, "readout_power", low=0.0, low_inclusive=False)
        n_hidden = check_int(self.n_hidden, "n_hidden", low=1)
        if self.layer_params is not None and not isinstance(self.layer_params, dict):
            raise TypeError(f"layer_params must be a dict or None; got {type(self.layer_params).__name__}.")
        seed = _seed_from(self.random_state, type(self).__name__)
        device = self._device()
        targets = self._prepare_targets(y, None)
        with _seeded(seed, device):
            hebb = _LAYERS[self.layer](X.shape[1], n_hidden, random_state=seed, device=device,
                                       **(self.layer_params or {}))
            Xt, yt = _to_tensors(X, targets, device)
            hebb.fit_unsupervised(Xt, self.unsup_epochs, batch_size=self.unsup_batch_size,
                                  progress=self.progress)
            self.unsup_history_ = hebb.history_
            net = HebbianNet(hebb, power, self.classes_.size).to(device)
            with torch.no_grad():
                feats = torch.cat([net.act1(hebb(Xt[i : i + 1024])) for i in range(0, len(Xt), 1024)])
                scale = {"std": feats.std(), "max": feats.abs().max(), "none": torch.tensor(1.0)}[self.feature_scale]
                if not torch.isfinite(scale) or scale <= 0:
                    raise ValueError(
                        f"the ReLU(h)^{power} features have scale {float(scale)}; all hidden units are "
                        "silent or overflow. Lower readout_power or check the inputs."
                    )
                net.scale1.factor.fill_(1.0 / float(scale))
                feats = feats * net.scale1.factor
            try:
                self.history_ = train_module(net.out, feats, yt, epochs=check_int(self.epochs, "epochs", low=1),
                                             lr=check_float(self.lr, "lr", low=0.0, low_inclusive=False),
                                             batch_size=check_int(self.batch_size, "batch_size", low=1),
                                             random_state=seed, progress=self.progress, desc="readout")
            except TrainingDiverged as err:
                # train_module restored the readout of the last good epoch
                self.module_, self.history_ = net.eval(), err.history
                raise
        self.module_ = net.eval()
        return self

    def _extra_config(self) -> dict[str, Any]:
        return {"unsup_history": _frame_records(self.unsup_history_)}

    def _restore_extra(self, config: dict[str, Any], path: Path) -> None:
        if "unsup_history" not in config:  # written before the unsupervised history was saved
            warnings.warn(f"{path} holds no unsupervised history; unsup_history_ is not set.",
                          UserWarning, stacklevel=3)
            return
        self.unsup_history_ = pd.DataFrame(config["unsup_history"])
