"""Spiking nets: LIF layers trained with surrogate gradients (BPTT) on rate-coded inputs.

:class:`SpikingMLP` is a feed-forward net of leaky integrate-and-fire (LIF)
layers, run for ``n_steps`` time steps; :class:`SpikingClassifier` trains it
with Adam on the cross-entropy by backpropagation through time, the
Heaviside spike differentiated through a *surrogate gradient* (Neftci, Mostafa
& Zenke 2019). :class:`MembranePerturbation` is the stability regularizer of
Ding et al. (2024, "Robust stable spiking neural networks", ICML): the mean
square of the simplified membrane-potential perturbation dynamics (MPPD);
with oscillating neurons (``omega != 0``) it is the MPPD of those neurons.

The neuron, per unit and time step ``t`` (the convention of snntorch's
``Leaky``, ``reset_mechanism="subtract"``, so that the two agree to the bit)::

    reset_t = S_{t-1}                        (detached: no gradient through the reset)
    U_t     = beta * U_{t-1} + g_t * I_t - reset_t * threshold
    S_t     = Heaviside(U_t - threshold)     (forward; surrogate derivative backward)

``g_t`` is 1, or a learned gain per time step with ``dynamic_gain=True``
(Ding et al.'s DLIF neuron). With ``omega != 0`` the membrane is a damped
oscillator (a resonate-and-fire neuron, Izhikevich 2001): ``U + iW`` is
multiplied by ``beta * exp(i omega)`` every step and the neuron fires on its
real part.

Why an own LIF layer rather than snntorch's: snntorch's surrogate spikes are
autograd functions without vmap support, so geomkit's Jacobians
(:mod:`torch.func`) would fall back to slow autograd; their ``Leaky`` keeps its
membrane as module state between calls, which a probe must not change. Here the
spike is ``H(x) + (s(x) - s(x).detach())`` with ``s`` a primitive of the
surrogate derivative: the forward value is exactly the Heaviside step, the
derivative exactly the surrogate, and the layer is a pure function of its
input (vmap, double backward and float64 all work). tests/test_spiking.py
checks spikes, membranes and gradients against snntorch's ``Leaky``.

Encodings: ``"bernoulli"`` (a spike with probability ``x`` in every step,
snntorch's ``spikegen.rate``), ``"poisson"`` (a Poisson count of mean ``x``
per step) or ``"current"`` (``x`` itself as a constant input current). The
sampled encodings are drawn in training mode only: in eval mode the net sees
their expected value ``x`` as a constant current, so its forward is
deterministic and differentiable — what attacks need (a random forward
would call for expectation over transformation, and the
``deterministic_forward`` check of :class:`~geomkit.AdversarialRobustness`
would warn). ``sample_in_eval=True`` keeps the sampling in eval mode.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from sklearn.utils.validation import validate_data

from .._params import RANDOM_STATE, Boolean, InstanceOf, Integer, Options, Real, validate_params
from . import classifiers as _classifiers
from .classifiers import _seeded, _TorchClassifier, _to_tensors
from .hebbian import _seed_from
from .models import register_model
from .regularizers import BatchContext, Regularizer, as_regularizer_list

__all__ = [
    "SURROGATES",
    "ENCODINGS",
    "spike",
    "LIF",
    "SpikeCount",
    "SpikingMLP",
    "SpikingClassifier",
    "MembranePerturbation",
    "membrane_perturbation",
    "with_surrogate",
]


# ---------------------------------------------------------------------------
# Surrogate gradients
# ---------------------------------------------------------------------------

def _fast_sigmoid(x: torch.Tensor, k: float) -> torch.Tensor:
    return x / (1.0 + k * x.abs())  # d/dx = 1 / (1 + k|x|)^2 (SuperSpike, Zenke & Ganguli 2018)


def _atan(x: torch.Tensor, k: float) -> torch.Tensor:
    return torch.atan(0.5 * math.pi * k * x) / math.pi  # d/dx = (k/2) / (1 + (pi k x / 2)^2)


def _sigmoid(x: torch.Tensor, k: float) -> torch.Tensor:
    return torch.sigmoid(k * x)  # d/dx = k s (1 - s)


def _triangle(x: torch.Tensor, k: float) -> torch.Tensor:
    z = (k * x).clamp(-1.0, 1.0)
    return z - 0.5 * z * z.abs()  # d/dx = k max(0, 1 - k|x|) (Bellec et al. 2018)


#: Surrogate-gradient shapes: name -> (primitive of the derivative, default steepness).
#: The steepness defaults are snntorch's (``fast_sigmoid(slope=25)``, ``atan(alpha=2)``,
#: ``sigmoid(slope=25)``).
SURROGATES: dict[str, tuple[Any, float]] = {
    "fast_sigmoid": (_fast_sigmoid, 25.0),
    "atan": (_atan, 2.0),
    "sigmoid": (_sigmoid, 25.0),
    "triangle": (_triangle, 1.0),
}

#: Input encodings of :class:`SpikingMLP`.
ENCODINGS = ("bernoulli", "poisson", "current")


def spike(x: torch.Tensor, surrogate: str = "fast_sigmoid", scale: float | None = None) -> torch.Tensor:
    """The Heaviside step ``x > 0`` with a surrogate derivative.

    Parameters
    ----------
    x : torch.Tensor
        Membrane potential minus threshold, any shape.
    surrogate : str, default="fast_sigmoid"
        One of :data:`SURROGATES`: ``"fast_sigmoid"`` (``1 / (1 + k|x|)^2``),
        ``"atan"`` (``(k/2) / (1 + (pi k x / 2)^2)``), ``"sigmoid"``
        (``k s(kx) (1 - s(kx))``), ``"triangle"`` (``k max(0, 1 - k|x|)``).
    scale : float or None, default=None
        The steepness ``k``; ``None``: the surrogate's default (25, 2, 25, 1).

    Returns
    -------
    torch.Tensor
        0 / 1 values (the dtype of ``x``); their gradient is the surrogate's.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    >>> s = spike(x, "fast_sigmoid", scale=1.0)
    >>> s.tolist()
    [0.0, 0.0, 1.0]
    >>> s.sum().backward(); [round(g, 4) for g in x.grad.tolist()]
    [0.4444, 1.0, 0.4444]
    """
    if surrogate not in SURROGATES:
        _check_surrogate(surrogate, scale, "spike")
    primitive, default = SURROGATES[surrogate]
    soft = primitive(x, default if scale is None else float(scale))
    # value: exactly the step (soft - soft == 0 in floating point); derivative: the surrogate's
    return (x > 0).to(x.dtype) + (soft - soft.detach())


def _check_surrogate(surrogate: Any, scale: Any, caller: str) -> None:
    validate_params({"surrogate": surrogate, "surrogate_scale": scale},
                    {"surrogate": [Options(*SURROGATES)],
                     "surrogate_scale": [None, Real(0, None, closed="neither")]}, caller=caller)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

class LIF(nn.Module):
    """A layer of leaky integrate-and-fire neurons, run for ``n_steps`` steps.

    Parameters
    ----------
    n_units : int
        Neurons in the layer.
    n_steps : int, default=8
        Time steps.
    beta : float, default=0.9
        Membrane decay per step, in [0, 1].
    threshold : float, default=1.0
        Firing threshold (also the amount a spike subtracts).
    surrogate : str, default="fast_sigmoid"
        Surrogate-gradient shape (:func:`spike`).
    surrogate_scale : float or None, default=None
        Its steepness; ``None``: the shape's default.
    omega : float, default=0.0
        Rotation per step of an oscillating membrane (radians); 0: plain LIF.
    dynamic_gain : bool, default=False
        Learn an input gain per time step (Ding et al.'s DLIF neuron).

    Notes
    -----
    Input: currents of shape (batch, n_units) (the same in every step) or
    (batch, n_steps, n_units). Output: spikes (0 / 1) of shape (batch,
    n_steps, n_units); :func:`geomkit.probe.extract` names these axes
    ``time`` and ``neuron`` (the attribute ``feature_dims``).

    Examples
    --------
    >>> import torch
    >>> lif = LIF(2, n_steps=4, beta=1.0, threshold=1.0)
    >>> lif(torch.tensor([[0.6, 1.5]]))[0].T.tolist()
    [[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    """

    feature_dims = ("time", "neuron")

    def __init__(self, n_units: int, n_steps: int = 8, beta: float = 0.9, threshold: float = 1.0,
                 surrogate: str = "fast_sigmoid", surrogate_scale: float | None = None,
                 omega: float = 0.0, dynamic_gain: bool = False):
        super().__init__()
        validate_params(
            {"n_units": n_units, "n_steps": n_steps, "beta": beta, "threshold": threshold,
             "omega": omega, "dynamic_gain": dynamic_gain},
            {"n_units": [Integer(1, None)], "n_steps": [Integer(1, None)], "beta": [Real(0, 1)],
             "threshold": [Real(0, None, closed="neither")], "omega": [Real(-math.pi, math.pi)],
             "dynamic_gain": [Boolean()]}, caller="LIF")
        _check_surrogate(surrogate, surrogate_scale, "LIF")
        self.n_units, self.n_steps = int(n_units), int(n_steps)
        self.beta, self.threshold, self.omega = float(beta), float(threshold), float(omega)
        self.surrogate, self.surrogate_scale = surrogate, surrogate_scale
        self.gain = nn.Parameter(torch.ones(self.n_steps)) if dynamic_gain else None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        constant = current.ndim == 2
        if not constant and (current.ndim != 3 or current.shape[1] != self.n_steps):
            raise ValueError(f"LIF expects currents of shape (batch, {self.n_units}) or (batch, "
                             f"{self.n_steps}, {self.n_units}); got {tuple(current.shape)}.")
        first = current if constant else current[:, 0]
        mem = torch.zeros_like(first)
        other = torch.zeros_like(first) if self.omega else None  # the imaginary part
        spk = torch.zeros_like(first)
        cos, sin = math.cos(self.omega), math.sin(self.omega)
        out = []
        for t in range(self.n_steps):
            drive = current if constant else current[:, t]
            if self.gain is not None:
                drive = drive * self.gain[t]
            reset = spk.detach() * self.threshold
            if other is None:
                mem = self.beta * mem + drive - reset
            else:
                mem, other = (self.beta * (cos * mem - sin * other) + drive - reset,
                              self.beta * (sin * mem + cos * other))
            spk = spike(mem - self.threshold, self.surrogate, self.surrogate_scale)
            out.append(spk)
        return torch.stack(out, dim=1)

    def extra_repr(self) -> str:
        return (f"n_units={self.n_units}, n_steps={self.n_steps}, beta={self.beta}, threshold={self.threshold}, "
                f"surrogate={self.surrogate!r}, omega={self.omega}, dynamic_gain={self.gain is not None}")


class SpikeCount(nn.Module):
    """Spike counts: the sum over the time axis (axis 1) of (batch, n_steps, n_units) spikes.

    Examples
    --------
    >>> import torch
    >>> SpikeCount()(torch.ones(2, 5, 3)).tolist()[0]
    [5.0, 5.0, 5.0]
    """

    def __init__(self) -> None:
        super().__init__()

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return spikes.sum(dim=1)


def _encode(x: torch.Tensor, n_steps: int, encoding: str, generator: Any = None) -> torch.Tensor:
    """(batch, features) -> (batch, n_steps, features) samples of mean ``x``, straight-through in ``x``."""
    shape = (x.shape[0], n_steps, x.shape[1])
    if encoding == "bernoulli":
        u = torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)
        drawn = (u < x.clamp(0.0, 1.0).unsqueeze(1)).to(x.dtype)
    else:
        rates = x.clamp_min(0.0).unsqueeze(1).expand(shape).contiguous()
        drawn = torch.poisson(rates, generator=generator)
    # the value is the sample; the gradient w.r.t. x that of its mean (straight-through)
    return drawn + (x - x.detach()).unsqueeze(1)


class SpikingMLP(nn.Module):
    """A feed-forward spiking net: ``[Linear -> LIF -> spike count] * k -> Linear`` on rates.

    Layer names: ``flatten``; per hidden layer ``i`` (1-based) ``fc<i>`` (input
    currents), ``lif<i>`` (spikes, (batch, n_steps, n_units)) and
    ``count<i>`` (spike counts, (batch, n_units)); ``out`` (logits: a linear
    readout of the last layer's firing rates, ``count / n_steps``).

    Parameters
    ----------
    sizes : sequence of int, default=(784, 256, 10)
        Input size, hidden widths, number of classes.
    n_steps : int, default=8
        Time steps (>= 1).
    beta, threshold, surrogate, surrogate_scale, omega, dynamic_gain
        Of every :class:`LIF` layer.
    encoding : {"bernoulli", "poisson", "current"}, default="bernoulli"
        How inputs become spikes in training (see the module docstring);
        in eval mode the net sees the expected value ``x``.
    sample_in_eval : bool, default=False
        Sample the encoding in eval mode too (a randomized forward).

    Examples
    --------
    >>> import torch
    >>> net = SpikingMLP((4, 8, 3), n_steps=5).eval()
    >>> [name for name, _ in net.named_children()]
    ['flatten', 'fc1', 'lif1', 'count1', 'out']
    >>> tuple(net(torch.rand(2, 4)).shape)
    (2, 3)
    """

    def __init__(self, sizes: Any = (784, 256, 10), n_steps: int = 8, beta: float = 0.9,
                 threshold: float = 1.0, surrogate: str = "fast_sigmoid",
                 surrogate_scale: float | None = None, encoding: str = "bernoulli", omega: float = 0.0,
                 dynamic_gain: bool = False, sample_in_eval: bool = False):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 3 or min(sizes) < 1:
            raise ValueError(f"sizes must hold the input size, at least one hidden width and the number of "
                             f"classes, all >= 1; got {sizes}.")
        validate_params({"n_steps": n_steps, "encoding": encoding, "sample_in_eval": sample_in_eval},
                        {"n_steps": [Integer(1, None)], "encoding": [Options(*ENCODINGS)],
                         "sample_in_eval": [Boolean()]}, caller="SpikingMLP")
        self.n_steps, self.encoding, self.sample_in_eval = int(n_steps), encoding, bool(sample_in_eval)
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        for i, (a, b) in enumerate(zip(sizes[:-2], sizes[1:-1]), start=1):
            layers[f"fc{i}"] = nn.Linear(a, b)
            layers[f"lif{i}"] = LIF(b, n_steps, beta, threshold, surrogate, surrogate_scale, omega, dynamic_gain)
            layers[f"count{i}"] = SpikeCount()
        layers["out"] = nn.Linear(sizes[-2], sizes[-1])
        for name, module in layers.items():
            self.add_module(name, module)
        self.n_hidden = len(sizes) - 2
        self.config = {"kind": "SpikingMLP", "sizes": sizes, "n_steps": self.n_steps, "beta": float(beta),
                       "threshold": float(threshold), "surrogate": surrogate, "surrogate_scale": surrogate_scale,
                       "encoding": encoding, "omega": float(omega), "dynamic_gain": bool(dynamic_gain),
                       "sample_in_eval": self.sample_in_eval}

    def lif_layers(self) -> list[LIF]:
        """The LIF layers, input side first.

        Returns
        -------
        list of LIF
            ``[lif1, lif2, ...]``.
        """
        return [getattr(self, f"lif{i}") for i in range(1, self.n_hidden + 1)]

    def simulate(self, x: torch.Tensor, generator: Any = None) -> dict[str, Any]:
        """Run the net and return its internals.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, ...)
            Inputs (flattened).
        generator : torch.Generator, optional
            Draws the encoding (two calls with equally seeded generators see
            the same random numbers: common random numbers).

        Returns
        -------
        dict
            ``currents`` and ``spikes``: lists with one tensor per LIF layer
            (currents (batch, n_units) when constant over time, else (batch,
            n_steps, n_units); spikes (batch, n_steps, n_units)); ``logits``
            (batch, n_classes).
        """
        currents, spikes = [], []
        for current, h, counts in self._layers(x, generator):
            currents.append(current)
            spikes.append(h)
        return {"currents": currents, "spikes": spikes, "logits": self.out(counts / self.n_steps)}

    def _layers(self, x: torch.Tensor, generator: Any = None):
        """The LIF layers in turn, lazily: per layer (input current, spikes, spike counts), so that a
        caller that needs only the first layers stops there."""
        h = self.flatten(x)
        if (self.training or self.sample_in_eval) and self.encoding != "current":
            h = _encode(h, self.n_steps, self.encoding, generator)
        for i in range(1, self.n_hidden + 1):
            current = getattr(self, f"fc{i}")(h)
            h = getattr(self, f"lif{i}")(current)
            yield current, h, getattr(self, f"count{i}")(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.simulate(x)["logits"]


register_model("SpikingMLP", SpikingMLP)


def with_surrogate(module: nn.Module, surrogate: str, scale: float | None = None) -> nn.Module:
    """A copy of a spiking net whose LIF layers use another surrogate gradient.

    The forward pass (spikes, logits) is unchanged; only the gradients
    differ. Attacking the copy and evaluating on the original is the
    second-surrogate check for masked surrogate gradients.

    Parameters
    ----------
    module : torch.nn.Module
        A net holding :class:`LIF` layers (left unchanged).
    surrogate : str
        One of :data:`SURROGATES`.
    scale : float or None, default=None
        Its steepness; ``None``: the shape's default.

    Returns
    -------
    torch.nn.Module
        The deep copy.

    Examples
    --------
    >>> import torch
    >>> net = SpikingMLP((4, 8, 3), n_steps=4).eval()
    >>> other = with_surrogate(net, "atan")
    >>> x = torch.rand(5, 4)
    >>> other.lif1.surrogate, bool(torch.equal(net(x), other(x)))
    ('atan', True)
    """
    _check_surrogate(surrogate, scale, "with_surrogate")
    lifs = [m for m in module.modules() if isinstance(m, LIF)]
    if not lifs:
        raise TypeError(f"module must hold LIF layers (a spiking net); {type(module).__name__} has none.")
    twin = copy.deepcopy(module)
    for m in twin.modules():
        if isinstance(m, LIF):
            m.surrogate, m.surrogate_scale = surrogate, scale
    if isinstance(getattr(twin, "config", None), dict):
        twin.config = {**twin.config, "surrogate": surrogate, "surrogate_scale": scale}
    return twin


# ---------------------------------------------------------------------------
# The membrane-perturbation stability regularizer (Ding et al. 2024)
# ---------------------------------------------------------------------------

def membrane_perturbation(delta: torch.Tensor, beta: float, *, omega: float = 0.0,
                          gain: torch.Tensor | None = None) -> torch.Tensor:
    """Mean square of the simplified membrane-potential perturbation dynamics (MS-MPPD).

    The perturbation ``delta_t`` of a layer's input currents drives
    ``Y_t = beta * exp(i omega) * Y_{t-1} + g_t * delta_t`` (``Y_0 = 0``): the
    membrane dynamics without spikes and reset, whose input-output stability
    Ding et al. (2024) prove; the term is ``mean |Y_t|^2`` over inputs, steps
    and units. ``omega = 0`` is the LIF neuron's (real) dynamics.

    Parameters
    ----------
    delta : torch.Tensor of shape (batch, n_steps, n_units)
        Clean minus perturbed input currents.
    beta : float
        Membrane decay per step.
    omega : float, default=0.0
        Rotation per step of an oscillating membrane.
    gain : torch.Tensor of shape (n_steps,), optional
        Input gain per step (DLIF neurons).

    Returns
    -------
    torch.Tensor
        A scalar, in the autograd graph of ``delta`` (and ``gain``).

    Examples
    --------
    For a constant perturbation ``d``, ``Y_t = d (1 - beta^t) / (1 - beta)``:

    >>> import torch
    >>> float(membrane_perturbation(torch.ones(1, 2, 1), 0.5))  # (1 + 1.5^2) / 2
    1.625
    """
    if delta.ndim != 3:
        raise ValueError(f"delta must have shape (batch, n_steps, n_units); got {tuple(delta.shape)}.")
    cos, sin = math.cos(omega), math.sin(omega)
    re = torch.zeros_like(delta[:, 0])
    im = torch.zeros_like(re)
    total = delta.new_zeros(())
    for t in range(delta.shape[1]):
        drive = delta[:, t] if gain is None else delta[:, t] * gain[t]
        re, im = beta * (cos * re - sin * im) + drive, beta * (sin * re + cos * im)
        total = total + (re.square() + im.square()).mean()
    return total / delta.shape[1]


class MembranePerturbation(Regularizer):
    """Ding et al.'s (2024) stability term: the MS-MPPD of Gaussian input noise.

    Per batch, the inputs ``x`` and ``x + noise_std * N(0, 1)`` run through
    the net with the same encoding draws (common random numbers); the
    difference of the input currents of ``layer`` drives
    :func:`membrane_perturbation` with that layer's ``beta``, ``omega`` and
    gain, so on a net of oscillating neurons it is the oscillating variant.
    As in the authors' code, the clean pass is detached: the gradient flows
    through the perturbed one. The term is ``strength * MS-MPPD``.

    Parameters
    ----------
    strength : float, default=1.0
    noise_std : float, default=0.1
        Standard deviation of the Gaussian input perturbation.
    layer : str or None, default=None
        The LIF layer whose input perturbation is penalized; ``None``: the
        last (the authors' choice).

    Examples
    --------
    >>> from geomkit.datasets import load_digits
    >>> X_train, X_test, y_train, y_test = load_digits(test_size=0.3)
    >>> clf = SpikingClassifier(hidden_sizes=(64,), n_steps=4, epochs=3, random_state=0, progress=False,
    ...                         regularizers=MembranePerturbation(strength=0.1)).fit(X_train, y_train)
    >>> list(clf.history_.columns[:4])
    ['epoch', 'loss', 'task_loss', 'reg_mppd']
    """

    name = "mppd"

    def __init__(self, strength: float = 1.0, noise_std: float = 0.1, layer: str | None = None):
        self.strength = strength
        self.noise_std = noise_std
        self.layer = layer

    def setup(self, model: nn.Module, X: torch.Tensor, *, batch_size: int, n_epochs: int) -> None:
        validate_params(self.get_params(), {"strength": [Real(0, None)], "noise_std": [Real(0, None)],
                                            "layer": [None, InstanceOf(str)]}, caller="MembranePerturbation")
        if not isinstance(model, SpikingMLP):
            raise TypeError(f"MembranePerturbation needs a SpikingMLP; got {type(model).__name__}.")
        names = [f"lif{i}" for i in range(1, model.n_hidden + 1)]
        if self.layer is not None and self.layer not in names:
            raise ValueError(f"layer must be one of the net's LIF layers {names} or None; got {self.layer!r}.")
        self._index = names.index(self.layer) if self.layer is not None else len(names) - 1

    def term(self, ctx: BatchContext) -> torch.Tensor:
        model, x = ctx.model, ctx.x.detach()
        k = getattr(self, "_index", model.n_hidden - 1)
        seed = int(torch.randint(0, 2**62, (1,)))  # from the seeded global stream: reproducible

        def currents(inputs):
            gen = torch.Generator(device=inputs.device).manual_seed(seed)
            # the input current of LIF layer k: the layers after it are not run
            current = next(itertools.islice(model._layers(inputs, gen), k, None))[0]
            return current if current.ndim == 3 else current.unsqueeze(1).expand(-1, model.n_steps, -1)

        with torch.no_grad():
            clean = currents(x)
        noisy = currents(x + float(self.noise_std) * torch.randn_like(x))
        lif = model.lif_layers()[k]
        return membrane_perturbation(clean - noisy, lif.beta, omega=lif.omega, gain=lif.gain)


# a saved SpikingClassifier's regularizers are rebuilt by class name
_classifiers._REGULARIZERS.setdefault("MembranePerturbation", MembranePerturbation)


# ---------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------

class SpikingClassifier(_TorchClassifier):
    """A spiking MLP trained by BPTT with surrogate gradients, as a scikit-learn classifier.

    Trains a :class:`SpikingMLP` with Adam on the cross-entropy of its
    logits (a linear readout of the last layer's firing rates) plus the terms
    of ``regularizers``, through :func:`~geomkit.train.train_module` (the loop
    of :class:`~geomkit.train.NetClassifier`).

    Parameters
    ----------
    hidden_sizes : tuple of int, default=(256,)
        Widths of the LIF layers.
    n_steps : int, default=8
        Time steps (>= 1).
    beta : float, default=0.9
        Membrane decay per step, in [0, 1].
    threshold : float, default=1.0
        Firing threshold.
    surrogate : str, default="fast_sigmoid"
        Surrogate-gradient shape: ``"fast_sigmoid"``, ``"atan"``,
        ``"sigmoid"`` or ``"triangle"`` (:func:`spike`).
    surrogate_scale : float or None, default=None
        Its steepness; ``None``: the shape's default.
    encoding : {"bernoulli", "poisson", "current"}, default="bernoulli"
        Rate coding of the inputs in training (``X`` must lie in [0, 1] for
        ``"bernoulli"``, be >= 0 for ``"poisson"``); predictions see the
        expected value.
    omega : float, default=0.0
        Rotation per step of oscillating (resonate-and-fire) neurons; 0: LIF.
    dynamic_gain : bool, default=False
        Learn an input gain per time step (DLIF, Ding et al. 2024).
    regularizers : Regularizer, list of Regularizer or None
        E.g. :class:`MembranePerturbation`.
    epochs : int, default=10
    lr : float, default=2e-3
        Adam's learning rate.
    batch_size : int, default=128
    device : str or torch.device, optional
        Where to train; default: the CPU.
    random_state : int, RandomState, Generator or None
        Seeds the initial weights, the shuffling and the encoding draws.
    progress : bool, default=True
        Show a tqdm bar over epochs.

    Attributes
    ----------
    module_ : SpikingMLP
        The trained net (eval mode): layers ``fc1``, ``lif1``, ``count1``, ..., ``out``.
    classes_ : ndarray of shape (n_classes,)
    history_ : pandas.DataFrame
        One row per epoch (``loss``, ``task_loss``, ``reg_<name>``, ``accuracy``, ``seconds``).
    regularizers_ : list of Regularizer
    n_features_in_ : int

    Raises
    ------
    TrainingDiverged
        If a loss term becomes NaN / inf (``module_`` keeps the last good weights).

    Examples
    --------
    >>> from geomkit.datasets import load_digits
    >>> X_train, X_test, y_train, y_test = load_digits(test_size=0.3)
    >>> clf = SpikingClassifier(hidden_sizes=(128,), n_steps=8, epochs=15, random_state=0, progress=False)
    >>> clf.fit(X_train, y_train).score(X_test, y_test) > 0.9
    True
    >>> SpikingClassifier(n_steps=0).fit(X_train, y_train)
    Traceback (most recent call last):
    ...
    ValueError: SpikingClassifier: n_steps must be an integer >= 1; got 0.
    """

    _parameter_constraints = {
        "n_steps": [Integer(1, None)],
        "beta": [Real(0, 1)],
        "threshold": [Real(0, None, closed="neither")],
        "surrogate": [Options(*SURROGATES)],
        "surrogate_scale": [None, Real(0, None, closed="neither")],
        "encoding": [Options(*ENCODINGS)],
        "omega": [Real(-math.pi, math.pi)],
        "dynamic_gain": [Boolean()],
        "epochs": [Integer(1, None)],
        "lr": [Real(0, None, closed="neither")],
        "batch_size": [Integer(1, None)],
        "random_state": [RANDOM_STATE],
        "progress": [Boolean()],
    }

    def __init__(self, hidden_sizes: tuple[int, ...] = (256,), n_steps: int = 8, beta: float = 0.9,
                 threshold: float = 1.0, surrogate: str = "fast_sigmoid", surrogate_scale: float | None = None,
                 encoding: str = "bernoulli", omega: float = 0.0, dynamic_gain: bool = False,
                 regularizers: Any = None, epochs: int = 10, lr: float = 2e-3, batch_size: int = 128,
                 device: Any = None, random_state: Any = None, progress: bool = True):
        self.hidden_sizes = hidden_sizes
        self.n_steps = n_steps
        self.beta = beta
        self.threshold = threshold
        self.surrogate = surrogate
        self.surrogate_scale = surrogate_scale
        self.encoding = encoding
        self.omega = omega
        self.dynamic_gain = dynamic_gain
        self.regularizers = regularizers
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def fit(self, X: Any, y: Any) -> "SpikingClassifier":
        """Train the spiking net.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs (firing probabilities in [0, 1] for the Bernoulli encoding).
        y : array-like of shape (n_samples,)
            Labels.

        Returns
        -------
        self
        """
        validate_params(self.get_params(deep=False), self._parameter_constraints, caller=type(self).__name__)
        X, y = validate_data(self, X, y, dtype=np.float32)
        hidden = [int(h) for h in np.atleast_1d(self.hidden_sizes)]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden_sizes must be a non-empty tuple of ints >= 1; got {self.hidden_sizes!r}.")
        if self.encoding != "current" and (X.min() < 0 or (self.encoding == "bernoulli" and X.max() > 1)):
            accepted = "[0, 1]" if self.encoding == "bernoulli" else ">= 0"
            raise ValueError(f"X must lie in {accepted} for encoding={self.encoding!r} (firing rates); got values "
                             f"in [{X.min():.4g}, {X.max():.4g}]. Rescale X or use encoding='current'.")
        regs = [copy.deepcopy(r) for r in as_regularizer_list(self.regularizers)]
        seed = _seed_from(self.random_state, type(self).__name__)
        device = self._device()
        targets = self._prepare_targets(y, None)
        with _seeded(seed, device):
            module = SpikingMLP((X.shape[1], *hidden, self.classes_.size), n_steps=self.n_steps, beta=self.beta,
                                threshold=self.threshold, surrogate=self.surrogate,
                                surrogate_scale=self.surrogate_scale, encoding=self.encoding, omega=self.omega,
                                dynamic_gain=self.dynamic_gain).to(device)
            Xt, yt = _to_tensors(X, targets, device)
            self._train(module, Xt, yt, regs, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=seed)
        self.module_ = module.eval()
        return self
