"""The adversarial-robustness estimator: a sweep of registered attacks x eps.

:class:`AdversarialRobustness` runs any attack of the registry
(:func:`geomkit.probe.attacks.make_attack`: FGSM, PGD, APGD, FAB-T, Square,
AutoAttack, noise, transfer, user attacks) over an eps grid on the inputs a
model classifies correctly, finds each input's critical eps, and hands the
numbers to the masking checks of :mod:`geomkit.robustness.diagnostics`.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from types import SimpleNamespace
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .._validation import as_float_array, check_float, check_int
from ..probe import attacks as _atk
from ..probe.attacks.registry import attack_spec, available_attacks
from .diagnostics import SweepResult, diagnose

__all__ = ["AdversarialRobustness", "GradientMaskingWarning", "robustness_auc", "ATTACKS"]

#: Attack names understood by :class:`AdversarialRobustness`: those registered when geomkit was
#: imported (see :func:`geomkit.probe.attacks.available_attacks` for the current list, user
#: attacks included). Modifiers join with "-": ``margin`` (logit-margin loss), ``f64`` (float64
#: evaluation), ``t`` (targeted); ``noise`` takes ``uniform`` or ``gaussian``.
ATTACKS = tuple(available_attacks())

DEFAULT_ATTACKS = ("fgsm", "pgd", "pgd-margin", "noise", "transfer")


class GradientMaskingWarning(UserWarning):
    """A diagnostic of :class:`AdversarialRobustness` failed: the evaluation may be masked."""


@contextlib.contextmanager
def _quiet():
    """Silence the probabilities-not-logits warning: fit gave it once already."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the model's outputs are non-negative")
        yield


def _parse_attack(name: Any) -> dict:
    """What the estimator and its checks need to know of a registered attack name."""
    cls, params = attack_spec(name, "attacks")
    kind = name.split("-")[0]
    return {
        "name": name,
        "kind": kind,
        "cls": cls,
        "params": params,
        "loss": params.get("loss", "ce"),
        "dtype": "float64" if params.get("dtype") in ("float64", "double") else None,
        "distribution": params.get("distribution", "uniform"),
        "white_box": bool(getattr(cls, "white_box", True)),
    }


def robustness_auc(robust_accuracy: Any, eps: Any) -> np.ndarray:
    """Normalized area under robust-accuracy curves on a log-eps axis.

    ``AUC = integral acc d(log eps) / (log eps_max - log eps_min)`` by the
    trapezoidal rule: the mean robust accuracy over the eps decades, in [0, 1]
    (1: nothing flips up to ``eps_max``). With a single eps it is the accuracy there.

    Parameters
    ----------
    robust_accuracy : array-like of shape (..., n_eps)
    eps : array-like of shape (n_eps,), positive and increasing

    Returns
    -------
    ndarray of shape (...)

    Examples
    --------
    >>> float(robustness_auc([1.0, 0.5, 0.0], [1e-3, 1e-2, 1e-1]))
    0.5
    """
    acc = np.asarray(robust_accuracy, dtype=np.float64)
    log_eps = np.log(as_float_array(eps, "eps", ndim=1))
    if log_eps.size == 1:
        return acc[..., 0]
    return np.trapezoid(acc, log_eps, axis=-1) / (log_eps[-1] - log_eps[0])


class AdversarialRobustness(BaseEstimator):
    """Robust accuracy of a classifier under attacks x eps, with gradient-masking diagnostics.

    ``fit(X, y)`` keeps the inputs the model classifies correctly and, for each
    attack and each eps of the grid, the fraction of them still classified
    correctly: the robust accuracy. It then finds each input's critical eps
    (bisection with the strongest PGD attack) and runs the diagnostics; every
    failed diagnostic is also emitted as a :class:`GradientMaskingWarning`.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning logits (n, n_classes). Left untouched (eval mode
        during the attacks, flags restored).
    attacks : sequence of str, default=("fgsm", "pgd", "pgd-margin", "noise", "transfer")
        Registered attack names (:func:`geomkit.probe.attacks.available_attacks`;
        ``"autoattack"`` is the AutoAttack "standard" ensemble, ``"square"`` the
        black-box Square attack, ``"apgd-ce"``, ``"apgd-t"``, ``"fab-t"`` its
        members). White-box: ``fgsm`` (Goodfellow et al. 2015),
        ``pgd`` (Madry et al. 2018) with the cross-entropy, ``-margin`` for the
        logit-margin loss, ``-f64`` for float64. Gradient-free: ``noise``
        (random noise of norm eps, best of ``n_noise_draws``), ``transfer``
        (PGD on ``surrogate``).
    norm : {"linf", "l2"}, default="linf"
    eps : array-like of float or None
        The eps grid (positive). ``None``: ``n_eps`` values log-spaced from
        ``1e-3 * scale`` to ``scale``, where ``scale`` spans the input box:
        ``high - low`` (L-inf) or ``(high - low) * sqrt(n_features)`` (L2);
        with ``bounds=None`` the data's range replaces ``high - low``.
    n_eps : int, default=13
    steps : int, default=20
        PGD steps (step size ``2.5 eps / steps``).
    restarts : int, default=1
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid input range; inputs outside it are an error.
    surrogate : torch.nn.Module or None
        Model the transfer attack differentiates. ``None``: a ReLU MLP
        (:func:`geomkit.probe.attacks.train_surrogate`) trained on ``X`` with
        ``model``'s predicted labels; stored as ``surrogate_``.
    surrogate_params : dict or None
        Keyword arguments for that training (``hidden``, ``epochs``, ...).
    n_noise_draws : int, default=10
    compute_critical_eps : bool, default=True
    n_bisect : int, default=8
        Bisection rounds inside the grid bracket of each input.
    tolerance : float, default=0.02
        Slack in robust accuracy before a diagnostic warns; never less than
        two inputs' worth (``2 / n_correct_``).
    zero_gradient_threshold : float, default=0.01
        Warn when more than this fraction of inputs has an exactly zero
        input gradient (float32 cross-entropy).
    batch_size : int or None, default=512
    random_state : int, RandomState, Generator or None, default=0
        Seeds every random start, noise draw and the surrogate.
    progress : bool, default=True
    attack_params : dict or None
        Per attack name, parameters of its class that override the ones above
        (``{"autoattack": {"steps": 20, "n_queries": 500}}``: a reduced budget).

    Attributes
    ----------
    robust_accuracy_ : xarray.DataArray of shape (n_attacks, n_eps)
        Dims ``("attack", "eps")``; fraction of the correctly classified inputs
        that the attack does not flip.
    flipped_ : xarray.DataArray of bool, shape (n_attacks, n_eps, n_correct)
        Dims ``("attack", "eps", "stimulus")``: which inputs each attack flipped.
    critical_eps_ : xarray.DataArray of shape (n_correct,)
        Per correctly classified input (coords ``index`` into ``X`` and
        ``label``): smallest eps found to flip it (``inf``: not flipped at the
        largest eps); ``None`` if ``compute_critical_eps=False``.
    critical_attack_ : str
        The attack used for ``critical_eps_``: the PGD attack of smallest AUC.
    auc_ : pandas.Series
        Per attack, :func:`robustness_auc` of its curve.
    strongest_attack_ : str
        The attack of smallest AUC.
    zero_gradient_fraction_ : pandas.Series
        Fraction of inputs with an exactly zero input gradient, indexed
        ``"ce/<model dtype>"``, ``"ce/float64"`` and ``"margin/<model dtype>"``
        (cross-entropy as the model runs, in float64, and the margin loss).
    diagnostics_ : pandas.DataFrame
        One row per check (``check``, ``status`` "pass" / "warn" / "n/a",
        ``evidence``, ``advice``): :func:`geomkit.robustness.diagnostics.diagnose`.
    randomized_forward_ : bool
        Whether two forward passes on the same inputs differed (then attack
        with ``eot``, through ``attack_params``).
    eps_ : ndarray of shape (n_eps,)
    n_inputs_, n_correct_ : int
    clean_accuracy_ : float
    correct_ : ndarray of bool, shape (n_inputs,)
    surrogate_ : torch.nn.Module or None

    Examples
    --------
    >>> import torch
    >>> from geomkit.datasets import load_digits
    >>> from geomkit.probe.attacks import train_surrogate
    >>> X, y = load_digits()
    >>> net = train_surrogate(X[:300], y[:300], hidden=(16,), epochs=5)
    >>> est = AdversarialRobustness(net, attacks=("fgsm", "pgd"), n_eps=4, steps=5,
    ...                             compute_critical_eps=False, progress=False)
    >>> est = est.fit(X[:50], y[:50])
    >>> est.robust_accuracy_.dims
    ('attack', 'eps')
    >>> bool(est.score(X[:50], y[:50]) == est.auc_.min())
    True
    """

    def __init__(
        self,
        model: Any = None,
        *,
        attacks: Sequence[str] = DEFAULT_ATTACKS,
        norm: str = "linf",
        eps: Any = None,
        n_eps: int = 13,
        steps: int = 20,
        restarts: int = 1,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        surrogate: Any = None,
        surrogate_params: dict | None = None,
        n_noise_draws: int = 10,
        compute_critical_eps: bool = True,
        n_bisect: int = 8,
        tolerance: float = 0.02,
        zero_gradient_threshold: float = 0.01,
        batch_size: int | None = 512,
        random_state: Any = 0,
        progress: bool = True,
        attack_params: dict | None = None,
    ):
        self.model = model
        self.attacks = attacks
        self.norm = norm
        self.eps = eps
        self.n_eps = n_eps
        self.steps = steps
        self.restarts = restarts
        self.bounds = bounds
        self.surrogate = surrogate
        self.surrogate_params = surrogate_params
        self.n_noise_draws = n_noise_draws
        self.compute_critical_eps = compute_critical_eps
        self.n_bisect = n_bisect
        self.tolerance = tolerance
        self.zero_gradient_threshold = zero_gradient_threshold
        self.batch_size = batch_size
        self.random_state = random_state
        self.progress = progress
        self.attack_params = attack_params

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> SimpleNamespace:
        """The validated settings of one fit / score call (the estimator is not changed)."""
        import torch

        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(
                "model must be a torch.nn.Module returning logits; "
                f"got {type(self.model).__name__}."
            )
        if isinstance(self.attacks, str) or not len(self.attacks):
            raise ValueError(
                f"attacks must be a non-empty sequence of names from {available_attacks()}; "
                f"got {self.attacks!r}."
            )
        cfg = SimpleNamespace(specs=[_parse_attack(a) for a in self.attacks], attacks={})
        if len({s["name"] for s in cfg.specs}) != len(cfg.specs):
            raise ValueError(f"attacks contains duplicates: {list(self.attacks)}.")
        cfg.norm = _atk._check_norm(self.norm)
        cfg.bounds = _atk._check_bounds(self.bounds)
        check_int(self.n_eps, "n_eps", low=1)
        check_int(self.steps, "steps", low=1)
        check_int(self.restarts, "restarts", low=1)
        check_int(self.n_noise_draws, "n_noise_draws", low=1)
        check_int(self.n_bisect, "n_bisect", low=0)
        check_float(self.tolerance, "tolerance", low=0.0, high=1.0)
        check_float(self.zero_gradient_threshold, "zero_gradient_threshold", low=0.0, high=1.0)
        cfg.batch = _atk._check_batch_size(self.batch_size)
        cfg.seed = _atk._seed(self.random_state)
        extra = self.attack_params or {}
        if not isinstance(extra, dict) or any(k not in self.attacks for k in extra):
            raise ValueError("attack_params must be a dict from names in attacks to dicts of "
                             f"parameters; got {extra!r}.")
        cfg.attack_params = extra
        return cfg

    def _eps_grid(self, cfg, x) -> np.ndarray:
        if self.eps is not None:
            if isinstance(self.eps, numbers.Real):
                grid = np.array([check_float(self.eps, "eps", low=0.0, low_inclusive=False)])
            else:
                grid = as_float_array(self.eps, "eps", ndim=1)
            if (grid <= 0).any():
                raise ValueError(
                    "eps must be > 0 (the score integrates over log eps); "
                    f"got minimum {grid.min()}."
                )
            return np.unique(grid)
        if cfg.bounds is not None:
            width = cfg.bounds[1] - cfg.bounds[0]
        else:
            width = float(x.max() - x.min()) or 1.0
        scale = width if cfg.norm == "linf" else width * float(np.sqrt(x[0].numel()))
        return np.geomspace(1e-3, 1.0, check_int(self.n_eps, "n_eps", low=1)) * scale

    # ------------------------------------------------------------------ attacks
    def _attack(self, cfg, spec: dict):
        """The attack object of ``spec``, made once per fit / score call."""
        if spec["name"] not in cfg.attacks:
            kind = spec["kind"]
            params = dict(norm=cfg.norm, bounds=cfg.bounds, batch_size=cfg.batch)
            if kind != "fgsm":
                params["random_state"] = cfg.seed
            if kind in ("pgd", "transfer"):
                params.update(steps=self.steps, restarts=self.restarts)
            if kind == "noise":
                params["n_draws"] = self.n_noise_draws
            if kind == "transfer":
                params["surrogate"] = self.surrogate_
            params.update(spec["params"])
            params.update(cfg.attack_params.get(spec["name"], {}))
            cfg.attacks[spec["name"]] = spec["cls"](**params)
        return cfg.attacks[spec["name"]]

    def _flips(self, cfg, spec: dict, x, y, eps):
        adv = self._attack(cfg, spec).perturb(self.model, x, y, eps=eps)
        return _atk.predict_labels(self.model, adv, batch_size=cfg.batch) != y

    def _prepare_data(self, cfg, X, y) -> dict:
        """Validated tensors, predictions and the correctly classified subset."""
        import torch

        target = _atk._Target(self.model)
        x = _atk._as_input(X, "X", target.device, target.dtype, cfg.bounds)
        labels = _atk._as_labels(y, x.shape[0], target.device)
        with target:
            n_classes = target.check(x, labels)  # warns once if the outputs look like probabilities
        with _quiet():
            pred = _atk.predict_labels(self.model, x, batch_size=cfg.batch)
        correct = pred == labels
        if not bool(correct.any()):
            raise ValueError(
                "the model classifies none of the inputs correctly; robustness is measured on "
                "correctly classified inputs only."
            )
        idx = torch.nonzero(correct).flatten()
        return dict(x=x, labels=labels, pred=pred, correct=correct, idx=idx, n_classes=n_classes,
                    xc=x[idx], yc=labels[idx])

    def _sweep(self, cfg, x, y, eps_grid, desc: str):
        """flipped[a, e, i] for each attack a, eps e and input i (a numpy bool array)."""
        from .._progress import progress_bar

        out = np.zeros((len(cfg.specs), eps_grid.size, x.shape[0]), dtype=bool)
        bar = progress_bar(total=out.shape[0] * out.shape[1], desc=desc, progress=self.progress)
        with bar, _quiet():
            for a, spec in enumerate(cfg.specs):
                for e, eps in enumerate(eps_grid):
                    flips = self._flips(cfg, spec, x, y, float(eps))
                    out[a, e] = flips.cpu().numpy()
                    bar.update()
        return out

    # ------------------------------------------------------------------ fit / score
    def fit(self, X: Any, y: Any) -> "AdversarialRobustness":
        """Run the attack sweep, the critical-eps bisection and the diagnostics.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_inputs, ...)
            Inputs inside ``bounds``, shaped as the model expects.
        y : array-like of int of shape (n_inputs,)
            True class indices.

        Returns
        -------
        self
        """
        import pandas as pd
        import xarray as xr

        cfg = self._validate_params()
        data = self._prepare_data(cfg, X, y)
        x, idx, xc, yc = data["x"], data["idx"], data["xc"], data["yc"]
        self.n_inputs_ = int(x.shape[0])
        self.n_correct_ = int(idx.numel())
        self.correct_ = data["correct"].cpu().numpy()
        self.clean_accuracy_ = self.n_correct_ / self.n_inputs_
        self.eps_ = self._eps_grid(cfg, x)

        self.surrogate_ = self.surrogate
        if self.surrogate is None and any(s["kind"] == "transfer" for s in cfg.specs):
            # Black-box imitation: trained on all of X with the model's predicted labels.
            params = {"random_state": cfg.seed, "n_classes": data["n_classes"],
                      **(self.surrogate_params or {})}
            self.surrogate_ = _atk.train_surrogate(
                x, data["pred"].cpu().numpy(), device=_atk.model_device(self.model), **params
            )

        names = [s["name"] for s in cfg.specs]
        flipped = self._sweep(cfg, xc, yc, self.eps_, "attacks x eps")
        acc = 1.0 - flipped.mean(axis=2)
        attrs = {"norm": cfg.norm, "n_inputs": self.n_inputs_, "n_correct": self.n_correct_,
                 "steps": int(self.steps), "restarts": int(self.restarts)}
        coords = {"attack": names, "eps": self.eps_}
        self.robust_accuracy_ = xr.DataArray(acc, dims=("attack", "eps"), coords=coords,
                                             name="robust_accuracy", attrs=attrs)
        index = idx.cpu().numpy()
        self.flipped_ = xr.DataArray(
            flipped, dims=("attack", "eps", "stimulus"),
            coords={**coords, "index": ("stimulus", index),
                    "label": ("stimulus", yc.cpu().numpy())},
            name="flipped", attrs=attrs,
        )
        self.auc_ = pd.Series(robustness_auc(acc, self.eps_), index=pd.Index(names, name="attack"),
                              name="auc")
        self.strongest_attack_ = str(self.auc_.idxmin())

        self.zero_gradient_fraction_ = self._zero_gradients(cfg, xc, yc)
        self.critical_eps_ = None
        self.critical_attack_ = None
        if self.compute_critical_eps:
            self._critical(cfg, xc, yc, flipped, index)
        self.randomized_forward_ = _atk.randomized_forward(self.model, xc)
        self.diagnostics_ = diagnose(SweepResult(
            specs=cfg.specs, eps=self.eps_, robust_accuracy=acc, n_correct=self.n_correct_,
            zero_gradient_fraction=self.zero_gradient_fraction_, native_dtype=self._native_dtype,
            tolerance=float(self.tolerance), zero_gradient_threshold=float(self.zero_gradient_threshold),
            randomized_forward=self.randomized_forward_))
        for row in self.diagnostics_.itertuples():
            if row.status == "warn":
                warnings.warn(f"{row.check}: {row.evidence} {row.advice}", GradientMaskingWarning,
                              stacklevel=2)
        return self

    def _zero_gradients(self, cfg, xc, yc):
        import pandas as pd

        native = self._native_dtype = str(_atk._model_dtype(self.model)).replace("torch.", "")
        # One entry for the cross-entropy in float64 when the model already is float64.
        cases = {f"ce/{native}": ("ce", None), "ce/float64": ("ce", "float64"),
                 f"margin/{native}": ("margin", None)}
        with _quiet():
            values = {k: _atk.zero_gradient_fraction(self.model, xc, yc, loss=loss, dtype=dtype,
                                                     batch_size=cfg.batch)
                      for k, (loss, dtype) in cases.items()}
        return pd.Series(values, name="zero_gradient_fraction")

    def _critical(self, cfg, xc, yc, flipped, index) -> None:
        import torch
        import xarray as xr

        pgds = [a for a, s in enumerate(cfg.specs) if s["kind"] == "pgd"]
        if not pgds:
            return
        a = min(pgds, key=lambda k: self.auc_.iloc[k])
        spec = cfg.specs[a]
        self.critical_attack_ = spec["name"]
        first = np.where(flipped[a].any(0), flipped[a].argmax(0), -1)  # first flipping eps index
        crit = np.full(first.size, np.inf)
        todo = np.flatnonzero(first >= 0)
        if todo.size:
            dev, dt = xc.device, xc.dtype
            hi = torch.as_tensor(self.eps_[first[todo]], dtype=dt, device=dev)
            lo_np = np.where(first[todo] > 0, self.eps_[np.maximum(first[todo] - 1, 0)], 0.0)
            lo = torch.as_tensor(lo_np, dtype=dt, device=dev)
            sel = torch.as_tensor(todo, device=dev)
            xs, ys = xc[sel], yc[sel]
            with _quiet():
                found = _atk._bisect(lambda e: self._flips(cfg, spec, xs, ys, e), lo, hi,
                                     int(self.n_bisect))
            crit[todo] = found.double().cpu().numpy()
        self.critical_eps_ = xr.DataArray(
            crit, dims=("stimulus",),
            coords={"index": ("stimulus", index), "label": ("stimulus", yc.cpu().numpy())},
            name="critical_eps", attrs={"norm": cfg.norm, "attack": spec["name"]},
        )

    def score(self, X: Any, y: Any) -> float:
        """Area under the robust-accuracy curve of the strongest attack, on a log-eps axis.

        The attacks of the fit are run on ``(X, y)`` over ``eps_`` (the
        transfer attack reuses ``surrogate_``); for each, the robust accuracy
        (fraction of the correctly classified inputs of ``X`` not flipped) is
        integrated over ``log eps`` by the trapezoidal rule and divided by
        ``log(eps_max / eps_min)`` (:func:`robustness_auc`): the mean robust
        accuracy over the eps decades. The score is the smallest of these, that
        of the strongest attack; in [0, 1], higher is more robust. It ignores
        clean accuracy (multiply by the clean accuracy for the area under the
        accuracy of all inputs).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_inputs, ...)
            Inputs inside ``bounds``, shaped as the model expects.
        y : array-like of int of shape (n_inputs,)
            True class indices.

        Returns
        -------
        float
            The normalized area of the strongest attack, in [0, 1].
        """
        check_is_fitted(self, "robust_accuracy_")
        cfg = self._validate_params()
        data = self._prepare_data(cfg, X, y)
        flipped = self._sweep(cfg, data["xc"], data["yc"], self.eps_, "score")
        return float(robustness_auc(1.0 - flipped.mean(axis=2), self.eps_).min())
