"""Is a spiking net's robustness an artefact of its surrogate gradient?

A spiking net has no true input gradient: white-box attacks follow the
surrogate gradient it was trained with. A surrogate that is too narrow or
too flat can hide adversarial directions the way saturated units do
(Athalye, Carlini & Wagner 2018). :func:`surrogate_gradient_check` attacks the
net with PGD through its training surrogate and, as references that do not
trust that surrogate, with PGD through other surrogate shapes (the same
forward pass, other gradients: :func:`geomkit.train.spiking.with_surrogate`),
the gradient-free Square attack and, when given, a transfer attack from a
non-spiking net (an ANN of the same widths). When a reference leaves fewer
inputs correct than the training surrogate's PGD, the check warns with a
:class:`~geomkit.robustness.GradientMaskingWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_float, check_int

__all__ = ["surrogate_gradient_check"]


def surrogate_gradient_check(
    model: Any,
    X: Any,
    y: Any,
    eps: float | Sequence[float],
    *,
    other_surrogates: Sequence[str] = ("atan", "triangle"),
    ann: Any = None,
    steps: int = 20,
    n_queries: int = 300,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    tolerance: float = 0.02,
    batch_size: int | None = 256,
    random_state: Any = 0,
    progress: bool = False,
):
    """Robust accuracy under the training surrogate's PGD and under attacks that bypass it.

    On the inputs ``model`` classifies correctly, per eps (L-inf): PGD
    through the training surrogate (``"pgd"``); PGD computed on a copy with
    each surrogate of ``other_surrogates`` and evaluated on ``model``
    (``"pgd/<surrogate>"``); Square (``"square"``); PGD on ``ann`` evaluated on
    ``model`` (``"transfer/ann"``). An attack *beats* the training surrogate
    when its robust accuracy is lower than PGD's by more than
    ``max(tolerance, 2 / n_correct)``; each such attack is named in one
    :class:`~geomkit.robustness.GradientMaskingWarning`.

    Parameters
    ----------
    model : torch.nn.Module
        A spiking net with :class:`~geomkit.train.spiking.LIF` layers,
        returning logits (deterministic in eval mode).
    X : array-like or torch.Tensor of shape (n_inputs, ...)
        Inputs inside ``bounds``.
    y : array-like of int of shape (n_inputs,)
        True class indices.
    eps : float or sequence of float
        Radii of the L-inf ball.
    other_surrogates : sequence of str, default=("atan", "triangle")
        Surrogate shapes (:data:`geomkit.train.spiking.SURROGATES`) other
        than the net's own; the net's own shape is skipped.
    ann : torch.nn.Module, optional
        A non-spiking classifier over the same classes (transfer source).
    steps : int, default=20
        PGD steps (step size ``2.5 eps / steps``).
    n_queries : int, default=300
        Square's queries per input.
    bounds : (float, float) or None, default=(0.0, 1.0)
    tolerance : float, default=0.02
    batch_size : int or None, default=256
    random_state : int or None, default=0
        Seeds the random starts and Square.
    progress : bool, default=False
        A bar over attacks x eps.

    Returns
    -------
    pandas.DataFrame
        One row per attack x eps: ``attack``, ``kind`` ("training surrogate",
        "other surrogate", "gradient-free", "transfer"), ``eps``,
        ``robust_accuracy`` (fraction of the correctly classified inputs not
        flipped), ``gap`` (PGD's robust accuracy minus this one; > 0: this
        attack is stronger) and ``beats_training_surrogate`` (bool).

    Examples
    --------
    >>> from geomkit.datasets import load_digits
    >>> from geomkit.train import SpikingClassifier
    >>> X, _, y, _ = load_digits(test_size=0.5)
    >>> net = SpikingClassifier(hidden_sizes=(32,), n_steps=4, epochs=5, random_state=0,
    ...                         progress=False).fit(X, y).module_
    >>> table = surrogate_gradient_check(net, X[:40], y[:40], eps=0.1, steps=5, n_queries=20)
    >>> sorted(table["attack"])
    ['pgd', 'pgd/atan', 'pgd/triangle', 'square']
    """
    import pandas as pd
    import torch

    from .._progress import progress_bar
    from ..probe import attacks as _atk
    from ..probe.attacks.evaluate import _correct_subset
    from ..train.spiking import LIF, SURROGATES, with_surrogate
    from .estimator import GradientMaskingWarning

    lifs = [m for m in model.modules() if isinstance(m, LIF)] if isinstance(model, torch.nn.Module) else []
    if not lifs:
        raise TypeError(f"model must be a spiking net with LIF layers; got {type(model).__name__}.")
    own = lifs[0].surrogate
    unknown = [s for s in other_surrogates if s not in SURROGATES]
    if isinstance(other_surrogates, str) or unknown:
        raise ValueError(f"other_surrogates must be a sequence of names from {sorted(SURROGATES)}; got "
                         f"{other_surrogates!r}.")
    steps = check_int(steps, "steps", low=1)
    n_queries = check_int(n_queries, "n_queries", low=1)
    tolerance = check_float(tolerance, "tolerance", low=0.0, high=1.0)
    grid = np.atleast_1d(np.asarray(eps, dtype=float))
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or (grid <= 0).any():
        raise ValueError(f"eps must be a positive number or a sequence of them; got {eps!r}.")
    xc, yc = _correct_subset(model, X, y, _atk._check_bounds(bounds), batch_size)
    common = dict(bounds=bounds, batch_size=batch_size, random_state=random_state)
    pgd = _atk.make_attack("pgd", steps=steps, **common)
    # name -> (kind, model the attack differentiates or queries, attack)
    plan: dict[str, tuple[str, Any, Any]] = {"pgd": ("training surrogate", model, pgd)}
    for name in dict.fromkeys(s for s in other_surrogates if s != own):
        plan[f"pgd/{name}"] = ("other surrogate", with_surrogate(model, name), pgd)
    plan["square"] = ("gradient-free", model, _atk.make_attack("square", n_queries=n_queries, **common))
    if ann is not None:
        plan["transfer/ann"] = ("transfer", ann, pgd)
    rows = []
    bar = progress_bar(total=len(plan) * grid.size, desc="surrogate check", progress=progress)
    with bar:
        for name, (kind, source, attack) in plan.items():
            for e in grid:
                adv = attack.perturb(source, xc, yc, eps=float(e)).to(xc.device)
                kept = _atk.predict_labels(model, adv, batch_size=batch_size) == yc
                rows.append({"attack": name, "kind": kind, "eps": float(e),
                             "robust_accuracy": float(kept.double().mean())})
                bar.update()
    table = pd.DataFrame(rows)
    reference = table[table["attack"] == "pgd"].set_index("eps")["robust_accuracy"]
    table["gap"] = table["eps"].map(reference) - table["robust_accuracy"]
    slack = max(tolerance, 2.0 / int(yc.numel()))
    table["beats_training_surrogate"] = (table["attack"] != "pgd") & (table["gap"] > slack)
    for name, rows_ in table[table["beats_training_surrogate"]].groupby("attack", sort=False):
        worst = rows_.loc[rows_["gap"].idxmax()]
        warnings.warn(
            f"surrogate_gradient: '{name}' ({worst['kind']}) leaves {worst['robust_accuracy']:.1%} robust vs "
            f"{worst['robust_accuracy'] + worst['gap']:.1%} for PGD through the training surrogate ({own!r}) at "
            f"eps={worst['eps']:.3g}: the training surrogate's gradient hides adversarial directions, so its "
            "robust accuracy overstates the net's robustness. Report the stronger attack.",
            GradientMaskingWarning, stacklevel=2)
    return table
