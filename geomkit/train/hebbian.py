"""Hebbian winner-take-all layers: Krotov-Hopfield and SoftHebb.

Both are :class:`torch.nn.Module` layers whose weights are a buffer (no
gradient): they learn without labels through :meth:`fit_unsupervised`, and
their forward pass returns the input currents ``h = x @ W.T`` of shape
(batch, n_hidden), so that they drop into a network (see
:class:`geomkit.train.HebbianClassifier`) and :func:`geomkit.probe.extract`
can record them.

References
----------
Krotov, D. & Hopfield, J. J. (2019). Unsupervised learning by competing hidden
units. PNAS 116(16), 7723-7731.

Moraitis, T. et al. (2022). SoftHebb: Bayesian inference in unsupervised
Hebbian soft winner-take-all networks. Neuromorphic Computing and Engineering.

Journé, A., Rodriguez, H. G., Guo, Q. & Moraitis, T. (2023). Hebbian deep
learning without feedback. ICLR.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .._backend import resolve_device
from .._params import RANDOM_STATE, validate_params
from .._progress import progress_bar
from .._validation import as_float_array, check_float, check_int, check_option

__all__ = ["KrotovHopfield", "SoftHebb", "CompetitiveLayer"]


def _seed_from(random_state: Any, caller: str = "geomkit.train") -> int:
    """An int seed from None / int / numpy RandomState or Generator; anything else raises."""
    validate_params({"random_state": random_state}, {"random_state": [RANDOM_STATE]},
                    caller=caller)
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return int(random_state.integers(2**31 - 1) if hasattr(random_state, "integers")
                   else random_state.randint(2**31 - 1))
    return check_int(random_state, "random_state", low=0)


def _flush_subnormal_(t: torch.Tensor) -> torch.Tensor:
    """Set the subnormal entries of ``t`` to 0, in place.

    The rules' updates let weights on inputs that are always 0 (MNIST's border) decay geometrically,
    and a low softmax temperature underflows most responses: both end up as subnormal floats, which
    make every later product with them many times slower on a CPU (measured: 25x for a SoftHebb
    step, 5x for a Krotov-Hopfield forward pass), while their share of any sum is below rounding.
    """
    return t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0.0)


class CompetitiveLayer(nn.Module):
    """Shared machinery of the winner-take-all layers (not used directly).

    Subclasses implement :meth:`step` (one update on one batch, returning the
    index of the winning unit of every sample) and :meth:`unit_norms`.

    Parameters
    ----------
    n_features : int
        Input dimension D.
    n_hidden : int
        Number of competing units.
    lr : float
        Initial learning rate (> 0).
    radius : float
        Target norm R of the weight vectors (> 0).
    norm_p : float
        Order of the norm the rule drives to R (>= 1).
    random_state : int, numpy Generator or None
        Seed of the initial weights.
    device : None, str or torch.device
        Where the weights live (None: the CPU).
    init_std : float
        Standard deviation of the Gaussian initial weights.
    """

    #: default learning-rate schedule over epochs: "linear" (to 0) or "constant"
    _default_schedule = "linear"

    def __init__(self, n_features: int, n_hidden: int, *, lr: float, radius: float,
                 norm_p: float, random_state: Any, device: Any, init_std: float):
        super().__init__()
        self.n_features = check_int(n_features, "n_features", low=1)
        self.n_hidden = check_int(n_hidden, "n_hidden", low=1)
        self.lr = check_float(lr, "lr", low=0.0, low_inclusive=False)
        self.radius = check_float(radius, "radius", low=0.0, low_inclusive=False)
        self.norm_p = check_float(norm_p, "norm_p", low=1.0)
        self.random_state = random_state
        if torch.get_default_device().type == "meta":
            # built only to read its shapes (the checkpoint loader's size check): no values, no memory
            weight = torch.empty(self.n_hidden, self.n_features)
        else:
            gen = torch.Generator().manual_seed(_seed_from(random_state, type(self).__name__))
            weight = (torch.randn(self.n_hidden, self.n_features, generator=gen) * init_std).to(
                resolve_device(device))
        self.register_buffer("weight", weight)
        self.history_: pd.DataFrame | None = None

    # -- inference -------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Input currents of the units.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, ...)
            Inputs, flattened to (batch, n_features).

        Returns
        -------
        torch.Tensor of shape (batch, n_hidden)
            ``h = x @ W.T``.
        """
        return x.reshape(x.shape[0], -1).to(self.weight.dtype) @ self.weight.T

    def unit_norms(self) -> torch.Tensor:
        """The ``norm_p``-norm of every unit's weight vector.

        Returns
        -------
        torch.Tensor of shape (n_hidden,)
        """
        return torch.linalg.vector_norm(self.weight, ord=self.norm_p, dim=1)

    def step(self, x: torch.Tensor, lr: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serializable), for saving."""
        raise NotImplementedError

    # -- learning --------------------------------------------------------------
    def fit_unsupervised(
        self,
        X: Any,
        epochs: int = 100,
        *,
        batch_size: int = 100,
        lr: float | None = None,
        schedule: str | None = None,
        random_state: Any = None,
        progress: bool = True,
    ) -> "CompetitiveLayer":
        """Learn the weights from unlabeled data with the layer's rule.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Inputs (any trailing shape is flattened).
        epochs : int, default=100
        batch_size : int, default=100
        lr : float, optional
            Initial learning rate; the layer's ``lr`` if None.
        schedule : {"linear", "constant"}, optional
            ``"linear"``: the rate falls linearly from ``lr`` to 0 over the
            epochs (``lr * (1 - epoch / epochs)``, as Krotov & Hopfield).
            Default: the layer's own (linear for Krotov-Hopfield, constant for
            SoftHebb, whose per-unit rate adapts by itself).
        random_state : int, optional
            Seed of the shuffling; the layer's ``random_state`` if None.
        progress : bool, default=True
            Show a tqdm bar over epochs.

        Returns
        -------
        self
            With ``history_``: a DataFrame, one row per epoch, columns
            ``epoch``, ``lr``, ``norm_distance`` (mean over units of
            ``| ||w||_p - R |``), ``frac_won_epoch`` (fraction of units that won
            at least one sample this epoch), ``frac_ever_won`` (... in any
            epoch so far), ``seconds``.
        """
        epochs = check_int(epochs, "epochs", low=1)
        batch_size = check_int(batch_size, "batch_size", low=1)
        lr = self.lr if lr is None else check_float(lr, "lr", low=0.0, low_inclusive=False)
        schedule = check_option(schedule or self._default_schedule, "schedule", ("linear", "constant"))
        X = self._as_input(X)
        seed = _seed_from(self.random_state if random_state is None else random_state,
                          type(self).__name__)
        gen = torch.Generator().manual_seed(seed)
        ever_won = torch.zeros(self.n_hidden, dtype=torch.bool, device=self.weight.device)
        rows = []
        bar = _epoch_bar(epochs, progress, type(self).__name__)
        for epoch in bar:
            t0 = time.perf_counter()
            rate = lr * (1.0 - epoch / epochs) if schedule == "linear" else lr
            won = torch.zeros_like(ever_won)
            order = torch.randperm(X.shape[0], generator=gen).to(X.device)
            for start in range(0, X.shape[0], batch_size):
                winners = self.step(X[order[start : start + batch_size]], rate)
                won[winners] = True
            ever_won |= won
            rows.append({
                "epoch": epoch,
                "lr": rate,
                "norm_distance": float((self.unit_norms() - self.radius).abs().mean()),
                "frac_won_epoch": float(won.float().mean()),
                "frac_ever_won": float(ever_won.float().mean()),
                "seconds": time.perf_counter() - t0,
            })
            if progress:
                bar.set_postfix(dist=f"{rows[-1]['norm_distance']:.3g}", won=f"{rows[-1]['frac_ever_won']:.2f}")
        self.history_ = pd.DataFrame(rows)
        return self

    def _as_input(self, X: Any) -> torch.Tensor:
        if isinstance(X, torch.Tensor):
            if not torch.isfinite(X).all():
                raise ValueError("X contains NaN or infinite values; remove or replace them first.")
            X = X.detach().reshape(X.shape[0], -1)
        else:
            X = as_float_array(X, "X", min_samples=1)
            X = torch.from_numpy(X.reshape(X.shape[0], -1))
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features per sample; this layer was built for "
                f"n_features={self.n_features}."
            )
        return X.to(device=self.weight.device, dtype=self.weight.dtype)


def _epoch_bar(epochs: int, progress: bool, desc: str):
    return progress_bar(range(epochs), progress=progress, desc=desc, unit="epoch")


class KrotovHopfield(CompetitiveLayer):
    """Krotov & Hopfield's (2019) competing hidden units, batched in torch.

    For a batch of inputs v, unit mu receives the current
    ``I_mu = <W_mu, v>_mu = sum_i sign(W_mu,i) |W_mu,i|^(p-1) v_i``; per sample
    the unit ranked first gets ``g = 1``, the unit ranked k-th ``g = -delta``
    (anti-Hebbian), all others 0, and

        dW = R^p g^T v - (sum_batch g * I)[:, None] * W,
        W <- W + lr * dW / max|dW|,

    with ``lr`` annealed linearly to 0 over the epochs. The weight vectors of
    units that keep winning converge to the Lp sphere of radius R.

    Parameters
    ----------
    n_features : int
        Input dimension.
    n_hidden : int, default=2000
    p : float, default=3.0
        Lebesgue exponent (>= 2).
    k : int, default=7
        Rank of the anti-Hebbian unit (2 <= k <= n_hidden).
    delta : float, default=0.4
        Strength of the anti-Hebbian update.
    R : float, default=1.0
        Radius the weight vectors converge to.
    lr : float, default=0.1
        Initial learning rate (maximal change of a weight in one step).
    init_std : float, optional
        Standard deviation of the normal initial weights. Default: such that
        the initial Lp norms are about 3 R (0.28 for MNIST's 784 pixels). The
        authors' code uses 1.0 (norms ~11 on MNIST) and lr 0.02 for 60000
        images and hundreds of epochs; on MNIST-5k in 50 epochs such units stay
        far from the sphere (mean ``| ||w||_3 - R |`` 7.9 of an initial 10.8:
        the features are mostly random). Starting at ~3 R with lr 0.1, about
        half of the 2000 units win and reach the sphere within ~20 epochs with
        digit-like receptive fields, and the readout improves (0.942 vs 0.932).
        Starting too close to R (~1.4 R) lets a few units win everything.
    random_state : int, optional
        Seed of the initial weights (standard normal, as in the authors'
        code) and of the shuffling.
    device : str or torch.device, optional
        Where the weights live (a GPU runs the rule there).
    dtype : torch.dtype, default=torch.float32

    Attributes
    ----------
    weight : torch.Tensor of shape (n_hidden, n_features)
    history_ : pandas.DataFrame
        Per-epoch diagnostics from :meth:`fit_unsupervised`.

    Notes
    -----
    Only the units ranked first or k-th by some sample of the batch have a
    non-zero update, so the update is computed on those rows only; the cost of
    a step is one (batch x n_features) @ (n_features x n_hidden) product plus
    work proportional to the batch.

    :meth:`forward` returns the plain currents ``x @ W.T``, which Krotov &
    Hopfield feed to the readout ``ReLU(h)^n``; :meth:`currents` returns the
    p-weighted currents used for the ranking.

    Examples
    --------
    >>> import torch
    >>> from geomkit.train import KrotovHopfield
    >>> layer = KrotovHopfield(4, n_hidden=3, k=2, random_state=0)
    >>> X = torch.rand(20, 4)
    >>> layer.fit_unsupervised(X, epochs=2, batch_size=10, progress=False).history_.shape
    (2, 6)
    """

    def __init__(self, n_features: int, n_hidden: int = 2000, *, p: float = 3.0, k: int = 7,
                 delta: float = 0.4, R: float = 1.0, lr: float = 0.1, init_std: float | None = None,
                 random_state: Any = None, device: Any = None, dtype: torch.dtype = torch.float32):
        p = check_float(p, "p", low=2.0)
        if init_std is None:
            # E|z|^p of a standard normal z; initial Lp norms then average ~3 R
            moment = 2 ** (p / 2) * math.gamma((p + 1) / 2) / math.sqrt(math.pi)
            init_std = 3.0 * float(R) / (check_int(n_features, "n_features", low=1) * moment) ** (1 / p)
        init_std = check_float(init_std, "init_std", low=0.0, low_inclusive=False)
        super().__init__(n_features, n_hidden, lr=lr, radius=R, norm_p=p,
                         random_state=random_state, device=device, init_std=init_std)
        self.init_std = init_std
        self.weight = self.weight.to(dtype)
        self.p = p
        self.k = check_int(k, "k", low=2, high=self.n_hidden)
        self.delta = check_float(delta, "delta", low=0.0)
        self.R = self.radius
        self._wp: torch.Tensor | None = None  # cache of sign(W)|W|^(p-1)

    def get_config(self) -> dict[str, Any]:
        return {"kind": "KrotovHopfield", "n_features": self.n_features, "n_hidden": self.n_hidden,
                "p": self.p, "k": self.k, "delta": self.delta, "R": self.R, "lr": self.lr,
                "init_std": self.init_std}

    def _signed_power(self, W: torch.Tensor) -> torch.Tensor:
        return W.abs().pow_(self.p - 2.0).mul_(W) if self.p != 2.0 else W.clone()

    def currents(self, x: torch.Tensor) -> torch.Tensor:
        """The p-weighted currents ``I_mu = sum_i sign(W_mu,i) |W_mu,i|^(p-1) x_i``.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_features)
            Inputs (further dimensions are flattened).

        Returns
        -------
        torch.Tensor of shape (batch, n_hidden)
            The currents, one per sample and hidden unit.
        """
        return x.reshape(x.shape[0], -1).to(self.weight.dtype) @ self._signed_power(self.weight).T

    def _apply(self, fn, recurse=True):  # .to(device) etc.: the cache must follow
        self._wp = None
        return super()._apply(fn, recurse)

    @torch.no_grad()
    def step(self, x: torch.Tensor, lr: float) -> torch.Tensor:
        """One update of the rule on a batch, in place.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_features)
            The batch.
        lr : float
            Learning rate of this step (the largest weight change).

        Returns
        -------
        torch.Tensor of shape (batch,)
            Index of the winning (top-ranked) unit for each sample.
        """
        W = self.weight
        if self._wp is None or self._wp.shape != W.shape:
            self._wp = self._signed_power(W)
        current = x @ self._wp.T  # (batch, n_hidden): the rule's only large product
        ranked = torch.topk(current, self.k, dim=1).indices
        first, kth = ranked[:, 0], ranked[:, -1]
        # rows that change: units ranked first or k-th by some sample
        active, inverse = torch.unique(torch.cat([first, kth]), return_inverse=True)
        n = x.shape[0]
        rows = torch.arange(n, device=x.device)
        g = torch.zeros(n, active.numel(), dtype=W.dtype, device=W.device)
        g.index_put_((rows, inverse[:n]), torch.ones(n, dtype=W.dtype, device=W.device), accumulate=True)
        g.index_put_((rows, inverse[n:]), torch.full((n,), -self.delta, dtype=W.dtype, device=W.device),
                     accumulate=True)
        drive = (g * current[:, active]).sum(0)  # sum over the batch of g * I
        ds = torch.mm(g.T, x).mul_(self.R**self.p)
        ds.addcmul_(drive[:, None], W[active], value=-1.0)
        scale = ds.abs().max().clamp_min(1e-30)
        updated = _flush_subnormal_(W[active] + ds * (lr / scale))
        W[active] = updated
        self._wp[active] = self._signed_power(updated)
        return first


class SoftHebb(CompetitiveLayer):
    """SoftHebb: soft winner-take-all Hebbian learning (Moraitis et al. 2022; Journé et al. 2023).

    For a batch x: ``u = x @ W.T``, ``y = softmax(u / temperature)`` across
    units, and for every unit k

        dw_k = sum_batch y_k (x - u_k w_k),   dW <- dW / max|dW|,
        w_k <- w_k + eta_k dw_k,   eta_k = lr (| ||w_k||_2 - 1 | + 1e-10)^power_lr,

    the per-unit rate shrinking as the unit's norm approaches 1. With
    ``anti_hebbian=True`` every unit but the sample's winner gets ``-y_k``
    (soft anti-Hebbian plasticity, Journé et al.'s "softkrotov" rule).

    Parameters
    ----------
    n_features : int
    n_hidden : int, default=2000
    temperature : float, default=1/12
        Softmax temperature T (Journé et al.: 1/T = 12 on MNIST).
    lr : float, default=0.045
    power_lr : float, default=0.5
        Exponent of the adaptive per-unit rate.
    anti_hebbian : bool, default=False
    init_norm : float, default=5.0
        Initial L2 norm of every weight vector (random directions).
    random_state, device, dtype
        As for :class:`KrotovHopfield`.

    Examples
    --------
    >>> import torch
    >>> from geomkit.train import SoftHebb
    >>> layer = SoftHebb(4, n_hidden=3, random_state=0)
    >>> _ = layer.fit_unsupervised(torch.rand(20, 4), epochs=3, progress=False)
    >>> bool(layer.history_["frac_ever_won"].iloc[-1] > 0)
    True
    """

    _default_schedule = "constant"

    def __init__(self, n_features: int, n_hidden: int = 2000, *, temperature: float = 1 / 12,
                 lr: float = 0.045, power_lr: float = 0.5, anti_hebbian: bool = False,
                 init_norm: float = 5.0, random_state: Any = None, device: Any = None,
                 dtype: torch.dtype = torch.float32):
        init_norm = check_float(init_norm, "init_norm", low=0.0, low_inclusive=False)
        super().__init__(n_features, n_hidden, lr=lr, radius=1.0, norm_p=2.0,
                         random_state=random_state, device=device, init_std=1.0)
        W = self.weight
        self.weight = (W * (init_norm / torch.linalg.vector_norm(W, dim=1, keepdim=True))).to(dtype)
        self.temperature = check_float(temperature, "temperature", low=0.0, low_inclusive=False)
        self.power_lr = check_float(power_lr, "power_lr", low=0.0)
        self.anti_hebbian = bool(anti_hebbian)
        self.init_norm = init_norm

    def get_config(self) -> dict[str, Any]:
        return {"kind": "SoftHebb", "n_features": self.n_features, "n_hidden": self.n_hidden,
                "temperature": self.temperature, "lr": self.lr, "power_lr": self.power_lr,
                "anti_hebbian": self.anti_hebbian, "init_norm": self.init_norm}

    def unit_rates(self, lr: float) -> torch.Tensor:
        """Adaptive per-unit rates ``eta_k = lr (|‖w_k‖ - 1| + 1e-10)^power_lr``.

        Parameters
        ----------
        lr : float
            The base rate.

        Returns
        -------
        torch.Tensor of shape (n_hidden,)
            One rate per unit.
        """
        return lr * ((self.unit_norms() - 1.0).abs() + 1e-10).pow(self.power_lr)

    @torch.no_grad()
    def step(self, x: torch.Tensor, lr: float) -> torch.Tensor:
        """One SoftHebb update on a batch, in place.

        Parameters
        ----------
        x : torch.Tensor of shape (batch, n_features)
            The batch.
        lr : float
            Base learning rate of this step (scaled per unit by :meth:`unit_rates`).

        Returns
        -------
        torch.Tensor of shape (batch,)
            Index of the winning unit (largest ``u``) for each sample.
        """
        W = self.weight
        u = x @ W.T
        y = torch.softmax(u / self.temperature, dim=1)
        # at a low temperature most of y underflows to subnormal floats, which make the CPU's matmul
        # ~25x slower; their share of dw is below float rounding, so they are set to 0
        _flush_subnormal_(y)
        winners = u.argmax(dim=1)
        if self.anti_hebbian:
            rows = torch.arange(x.shape[0], device=x.device)
            sign = -torch.ones_like(y)
            sign[rows, winners] = 1.0
            y = y * sign
        dw = torch.mm(y.T, x)
        dw.addcmul_((y * u).sum(0)[:, None], W, value=-1.0)
        dw /= dw.abs().max().clamp_min(1e-30)
        W += self.unit_rates(lr)[:, None] * dw
        _flush_subnormal_(W)
        return winners


def build_layer(config: dict[str, Any]) -> CompetitiveLayer:
    """Rebuild a Hebbian layer from its :meth:`~CompetitiveLayer.get_config` (weights not included)."""
    kinds = {"KrotovHopfield": KrotovHopfield, "SoftHebb": SoftHebb}
    kind = config.get("kind")
    if kind not in kinds:
        raise ValueError(f"config['kind'] must be one of {sorted(kinds)}; got {kind!r}.")
    return kinds[kind](**{k: v for k, v in config.items() if k != "kind"})
