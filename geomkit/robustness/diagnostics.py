"""Checks that catch gradient masking, run on the numbers of an attack sweep.

They follow Carlini et al. (2019, "On evaluating adversarial robustness") and
Athalye, Carlini & Wagner (2018, "Obfuscated gradients give a false sense of
security"): gradients must not vanish, iterative attacks must beat single-step
ones, no gradient-free or transfer attack (noise, transfer, Square) may beat the
white-box ones, accuracy must reach 0 at a large eps and must not rise with
eps, and the forward pass must be deterministic (else attacks need EOT). The
checks receive a :class:`SweepResult`, never the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SweepResult", "diagnose"]


@dataclass
class SweepResult:
    """The numbers the masking checks read.

    Parameters
    ----------
    specs : list of dict
        Per attack, its parsed name (``name``, ``kind``, ``loss``, ``dtype``, ``white_box``).
    eps : ndarray of shape (n_eps,)
        The eps grid.
    robust_accuracy : ndarray of shape (n_attacks, n_eps)
        Fraction of correctly classified inputs not flipped.
    n_correct : int
        Correctly classified inputs.
    zero_gradient_fraction : pandas.Series
        Indexed ``"ce/<dtype>"``, ``"ce/float64"``, ``"margin/<dtype>"``.
    native_dtype : str, default="float32"
        The model's dtype name.
    tolerance : float, default=0.02
        Slack before a check warns (at least two inputs' worth).
    zero_gradient_threshold : float, default=0.01
        Largest fraction of zero gradients that passes.
    randomized_forward : bool or None, default=None
        Whether two forward passes differed (None: not checked).

    Examples
    --------
    >>> SweepResult(specs=[], eps=np.array([0.1]), robust_accuracy=np.zeros((0, 1)),
    ...             n_correct=10, zero_gradient_fraction=None).tolerance
    0.02
    """

    specs: list
    eps: Any
    robust_accuracy: Any
    n_correct: int
    zero_gradient_fraction: Any
    native_dtype: str = "float32"
    tolerance: float = 0.02
    zero_gradient_threshold: float = 0.01
    randomized_forward: bool | None = None


_ROW = ("check", "status", "evidence", "advice")


def _fmt_eps(v: float) -> str:
    return f"{v:.3g}"


def _check_zero_gradient(res) -> tuple:
    zg = res.zero_gradient_fraction
    k_ce = f"ce/{res.native_dtype}"
    f_ce, f_64, f_m = zg[k_ce], zg["ce/float64"], zg[f"margin/{res.native_dtype}"]
    evidence = (
        f"{f_ce:.1%} of the {res.n_correct} correctly classified inputs have an exactly zero "
        f"input gradient ({k_ce}); in float64: {f_64:.1%}; with the margin loss: {f_m:.1%}."
    )
    if f_ce <= res.zero_gradient_threshold:
        return "zero_gradient", "pass", evidence, ""
    fixes = []
    if f_m < f_ce:
        fixes.append("the margin loss ('pgd-margin')")
    if f_64 < f_ce:
        fixes.append("float64 ('pgd-f64')")
    advice = (
        "Gradients vanish numerically, so cross-entropy attacks cannot move these inputs and "
        "their robustness is an artefact (Brendel & Bethge 2017). "
        + (f"{' and '.join(fixes).capitalize()} restore(s) the gradient: trust those attacks."
           if fixes else "Neither float64 nor the margin loss restores it: rely on gradient-free "
           "and transfer attacks, or attack a smoothed copy of the model.")
    )
    return "zero_gradient", "warn", evidence, advice


def _worst(pairs: list, acc, eps) -> tuple[float, str]:
    """Largest excess acc[a] - acc[b] over (a, b) pairs and eps, with a description."""
    best, text = -np.inf, ""
    for a, b, name_a, name_b in pairs:
        diff = acc[a] - acc[b]
        k = int(np.argmax(diff))
        if diff[k] > best:
            best = float(diff[k])
            text = (f"'{name_a}' leaves {acc[a][k]:.1%} robust vs {acc[b][k]:.1%} for '{name_b}' "
                    f"at eps={_fmt_eps(eps[k])}")
    return best, text


def _check_iterative(res, specs, acc, eps, slack) -> tuple:
    pairs = [(p, f, specs[p]["name"], specs[f]["name"])
             for f, sf in enumerate(specs) if sf["kind"] == "fgsm"
             for p, sp in enumerate(specs) if sp["kind"] == "pgd"
             and (sp["loss"], sp["dtype"]) == (sf["loss"], sf["dtype"])]
    name = "iterative_beats_single_step"
    if not pairs:
        return name, "n/a", "no FGSM / PGD pair with the same loss and dtype among the attacks.", ""
    excess, where = _worst(pairs, acc, eps)
    evidence = f"largest excess of PGD over FGSM robust accuracy: {excess:+.1%} ({where})."
    if excess <= slack:
        return name, "pass", evidence, ""
    return name, "warn", evidence, (
        "An iterative attack weaker than a single step means its gradient steps do not climb "
        "the loss: masked or noisy gradients, or too small a step (Carlini et al. 2019). Try "
        "more steps / restarts and the margin loss."
    )


def _check_black_box(res, specs, acc, eps, slack) -> tuple:
    pairs = [(w, b, specs[w]["name"], specs[b]["name"])
             for w, sw in enumerate(specs) if sw["white_box"]
             for b, sb in enumerate(specs) if not sb["white_box"]]
    name = "white_box_beats_black_box"
    if not pairs:
        return name, "n/a", "no white-box and gradient-free attack pair among the attacks.", ""
    excess, where = _worst(pairs, acc, eps)
    weaker = sorted({specs[w]["name"] for w, b, *_ in pairs if (acc[w] - acc[b]).max() > slack})
    evidence = ("largest excess of a white-box over a gradient-free robust accuracy: "
                f"{excess:+.1%} ({where}).")
    if not weaker:
        return name, "pass", evidence, ""
    return name, "warn", evidence, (
        f"Gradient-free or transfer attacks beat {', '.join(map(repr, weaker))}: the white-box "
        "gradients are masked (Athalye et al. 2018); the robustness those attacks report is "
        "not real. Use the margin loss / float64, or report the gradient-free attacks."
    )


def _check_reaches_zero(res, specs, acc, eps, slack) -> tuple:
    chosen = [a for a, s in enumerate(specs) if s["kind"] == "pgd"] or [
        a for a, s in enumerate(specs) if s["white_box"]]
    name = "reaches_zero"
    if not chosen:
        return name, "n/a", "no white-box attack among the attacks.", ""
    last = {specs[a]["name"]: float(acc[a][-1]) for a in chosen}
    evidence = "robust accuracy at the largest eps={}: {}.".format(
        _fmt_eps(eps[-1]), ", ".join(f"'{k}' {v:.1%}" for k, v in last.items()))
    stuck = [k for k, v in last.items() if v > slack]
    if not stuck:
        return name, "pass", evidence, ""
    return name, "warn", evidence, (
        f"{', '.join(map(repr, stuck))} do(es) not reach 0 although the largest eps should "
        "allow any change of class: the attack is failing (masked gradients, too few steps) "
        "or eps is too small (Carlini et al. 2019). Extend the eps grid, add steps / restarts."
    )


def _check_monotone(res, specs, acc, eps, slack) -> tuple:
    chosen = [a for a, s in enumerate(specs) if s["kind"] != "fgsm"]
    name = "monotone_in_eps"
    if eps.size < 2 or not chosen:
        return name, "n/a", "needs two eps values and an attack other than FGSM.", ""
    rises = {a: np.diff(acc[a]) for a in chosen}
    worst = max(chosen, key=lambda a: rises[a].max())
    k = int(np.argmax(rises[worst]))
    evidence = (f"largest rise of robust accuracy between consecutive eps: {rises[worst][k]:+.1%} "
                f"('{specs[worst]['name']}', eps {_fmt_eps(eps[k])} -> {_fmt_eps(eps[k + 1])}).")
    rising = [specs[a]["name"] for a in chosen if rises[a].max() > slack]
    if not rising:
        return name, "pass", evidence, ""
    return name, "warn", evidence, (
        f"Robust accuracy rises with eps for {', '.join(map(repr, rising))}: a larger ball "
        "contains the smaller one, so the attack is failing at large eps (step size, masked "
        "gradients; Carlini et al. 2019)."
    )


def _check_randomized(res) -> tuple:
    name = "deterministic_forward"
    if res.randomized_forward is None:
        return name, "n/a", "not checked.", ""
    if not res.randomized_forward:
        return name, "pass", "two forward passes on the same inputs gave the same logits.", ""
    return name, "warn", "two forward passes on the same inputs gave different logits.", (
        "The model's forward is randomized: a single gradient sample misleads gradient attacks "
        "(Athalye et al. 2018). Attack with expectation over transformation (eot=10 or more, "
        "via attack_params) and trust the worst case."
    )


def diagnose(res: SweepResult):
    """The checks of an evaluation: a DataFrame with one row per check.

    Parameters
    ----------
    res : SweepResult
        The sweep's numbers.

    Returns
    -------
    pandas.DataFrame
        Columns ``check``, ``status`` ("pass" / "warn" / "n/a"), ``evidence``, ``advice``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from geomkit.robustness.estimator import _parse_attack
    >>> res = SweepResult(specs=[_parse_attack("pgd")], eps=np.array([0.1, 0.3]),
    ...                   robust_accuracy=np.array([[0.5, 0.0]]), n_correct=100,
    ...                   zero_gradient_fraction=pd.Series({"ce/float32": 0.0, "ce/float64": 0.0,
    ...                                                     "margin/float32": 0.0}))
    >>> diagnose(res).set_index("check")["status"].to_dict()["reaches_zero"]
    'pass'
    """
    import pandas as pd

    specs, acc, eps = res.specs, np.asarray(res.robust_accuracy, dtype=float), np.asarray(res.eps)
    slack = max(float(res.tolerance), 2.0 / res.n_correct)
    rows = [_check_zero_gradient(res)]
    rows += [f(res, specs, acc, eps, slack) for f in (
        _check_iterative, _check_black_box, _check_reaches_zero, _check_monotone)]
    rows.append(_check_randomized(res))
    return pd.DataFrame(rows, columns=list(_ROW))


def _diagnostics(est):
    """The checks of a fitted estimator (or any object with its attributes)."""
    return diagnose(SweepResult(
        specs=est._specs, eps=est.eps_, robust_accuracy=est.robust_accuracy_.values,
        n_correct=est.n_correct_, zero_gradient_fraction=est.zero_gradient_fraction_,
        native_dtype=est._native_dtype, tolerance=float(est.tolerance),
        zero_gradient_threshold=float(est.zero_gradient_threshold),
        randomized_forward=getattr(est, "randomized_forward_", None)))
