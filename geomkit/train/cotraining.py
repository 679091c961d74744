"""Co-training with recordings: loss terms that pull a layer towards neural data.

Two ways to make a network's layer "brain-like" while it learns its task
(both are :class:`~geomkit.train.regularizers.Regularizer` objects for
:class:`~geomkit.train.NetClassifier`, re-exported by
:mod:`geomkit.train.regularizers`):

- :class:`RepresentationalSimilarity`: ``strength * (1 - similarity)`` between
  the batch's layer activations and the recorded responses to the same
  stimuli, with a differentiable linear CKA, RSA (correlation of RDMs) or CCA
  (mean canonical correlation with a ridge, as deep CCA).
- :class:`NeuralPredictionHead`: a linear readout from the layer to the
  recorded neurons, trained beside the classifier with a Poisson or squared
  error loss (multi-task co-training: Li et al. 2019, Safarani et al. 2021).

**Which recording row belongs to which batch row.** The recording is indexed
by stimulus like the training set: row ``i`` of ``recording`` is the response
to training input ``X[i]``. The training loop passes every batch's row
indices (``BatchContext.index``), and the regularizer picks the same rows of
the recording, so shuffling never mismatches them. A recording may also be
given as a model of the recorded area (any object with ``transform``, such as
:class:`geomkit.datasets.GaborV1`): it is fitted on the training inputs (a
copy, when unfitted) and its responses to them are the recording.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .._params import Boolean, Integer, Options, Real, validate_params
from .._validation import as_float_array
from .regularizers import BatchContext, Regularizer, _flat

__all__ = [
    "SIMILARITIES",
    "differentiable_similarity",
    "RepresentationalSimilarity",
    "NeuralPredictionHead",
]

#: The similarities of :func:`differentiable_similarity` (and :class:`RepresentationalSimilarity`).
SIMILARITIES = ("cka", "rsa", "cca")
_LOSSES = ("poisson", "mse")
_TINY = 1e-12  # relative floor under norms: a constant batch must not give 0 / 0


# ---------------------------------------------------------------------------
# differentiable similarities (torch in, scalar tensor out)
# ---------------------------------------------------------------------------


def _centre(X: torch.Tensor) -> torch.Tensor:
    return X - X.mean(0, keepdim=True)


def _linear_cka(X: torch.Tensor, Y: torch.Tensor, debiased: bool) -> torch.Tensor:
    n = X.shape[0]
    Xc, Yc = _centre(X), _centre(Y)
    if not debiased:
        # ||Xc' Yc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F), in whichever space is smaller
        if n <= max(X.shape[1], Y.shape[1]):
            K, L = Xc @ Xc.T, Yc @ Yc.T
            hxy, hxx, hyy = (K * L).sum(), (K * K).sum(), (L * L).sum()
        else:
            hxy = (Xc.T @ Yc).square().sum()
            hxx, hyy = (Xc.T @ Xc).square().sum(), (Yc.T @ Yc).square().sum()
    else:
        # the unbiased HSIC of Song et al. (2012) on Gram matrices with zeroed diagonals
        def zeroed(A):
            G = A @ A.T
            return G - torch.diag_embed(torch.diagonal(G))

        K, L = zeroed(Xc), zeroed(Yc)

        def hsic(A, B):
            return ((A * B).sum() + A.sum() * B.sum() / ((n - 1) * (n - 2))
                    - 2.0 / (n - 2) * (A.sum(0) * B.sum(0)).sum()) / (n * (n - 3))

        hxy, hxx, hyy = hsic(K, L), hsic(K, K), hsic(L, L)
    floor = _TINY * (hxx.detach().abs() + hyy.detach().abs() + torch.finfo(X.dtype).tiny)
    return hxy / torch.sqrt((hxx * hyy).clamp_min(floor**2))


def _correlation_rdm_vector(X: torch.Tensor) -> torch.Tensor:
    """Upper triangle of the correlation-distance RDM ``1 - corr(x_i, x_j)`` of the rows."""
    Xc = X - X.mean(1, keepdim=True)
    norms = torch.linalg.vector_norm(Xc, dim=1, keepdim=True)
    Xn = Xc / norms.clamp_min(_TINY * float(norms.detach().max().clamp_min(1e-30)))
    iu = torch.triu_indices(X.shape[0], X.shape[0], offset=1, device=X.device)
    return (1.0 - Xn @ Xn.T)[iu[0], iu[1]]


def _rsa(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    a, b = _correlation_rdm_vector(X), _correlation_rdm_vector(Y)
    a, b = a - a.mean(), b - b.mean()
    floor = _TINY * float((a.detach().norm() * b.detach().norm()).clamp_min(1e-30))
    return (a * b).sum() / (a.norm() * b.norm()).clamp_min(floor)


def _cca(X: torch.Tensor, Y: torch.Tensor, ridge: float, n_components: int | None) -> torch.Tensor:
    n = X.shape[0]
    Xc, Yc = _centre(X), _centre(Y)

    def cov(A, B):
        return A.T @ B / (n - 1)

    def regularized(C):
        # ridge relative to the mean variance, so it does not depend on the units' scale
        scale = torch.diagonal(C).mean().clamp_min(torch.finfo(C.dtype).tiny)
        return C + ridge * scale * torch.eye(C.shape[0], dtype=C.dtype, device=C.device)

    # any whitening gives the same singular values; Cholesky's has a stable gradient (eigh's does not
    # when eigenvalues repeat)
    Lx = torch.linalg.cholesky(regularized(cov(Xc, Xc)))
    Ly = torch.linalg.cholesky(regularized(cov(Yc, Yc)))
    T = torch.linalg.solve_triangular(Lx, cov(Xc, Yc), upper=False)
    T = torch.linalg.solve_triangular(Ly, T.T, upper=False).T
    rho = torch.linalg.svdvals(T)
    k = rho.shape[0] if n_components is None else min(int(n_components), rho.shape[0])
    return rho[:k].mean()


_SIMILARITY_CONSTRAINTS = {
    "similarity": [Options(*SIMILARITIES)],
    "debiased": [Boolean()],
    "ridge": [Real(0, None)],
    "n_components": [None, Integer(1, None)],
}


def differentiable_similarity(X: torch.Tensor, Y: torch.Tensor, similarity: str = "cka", *,
                              debiased: bool = False, ridge: float = 1e-3,
                              n_components: int | None = None) -> torch.Tensor:
    """A similarity of two representations of the same stimuli, as a differentiable torch scalar.

    Parameters
    ----------
    X : torch.Tensor of shape (n_stimuli, n_units_x)
        First representation (e.g. a batch's layer activations, flattened).
    Y : torch.Tensor of shape (n_stimuli, n_units_y)
        Second representation of the same stimuli (e.g. the recording's rows).
    similarity : {"cka", "rsa", "cca"}, default="cka"
        ``"cka"``: linear CKA, equal to :func:`geomkit.measures.cka`
        (``kernel="linear"``, with the same ``debiased``). ``"rsa"``: the
        Pearson correlation of the two correlation-distance RDMs, equal to
        :func:`geomkit.measures.rsa` with ``metric="correlation",
        method="pearson"`` (Spearman's ranks have no gradient).
        ``"cca"``: the mean of the leading ``n_components`` canonical
        correlations of covariances with a ridge (deep CCA, Andrew et al.
        2013); with ``ridge=0`` and more stimuli than units it equals
        :func:`geomkit.measures.cca_similarity` (``method="mean"``).
    debiased : bool, default=False
        CKA only: the unbiased HSIC (Song et al. 2012), near 0 for unrelated
        representations (needs >= 4 stimuli).
    ridge : float, default=1e-3
        CCA only: ``ridge * mean variance`` is added to the diagonal of each
        covariance (a batch has fewer stimuli than a wide layer has units;
        without it every canonical correlation is 1).
    n_components : int, optional
        CCA only: average the leading canonical correlations only (all if None).

    Returns
    -------
    torch.Tensor
        A scalar in the autograd graph of ``X`` and ``Y``; higher is more similar.

    Raises
    ------
    ValueError
        For an unknown ``similarity`` (listing the accepted names), stimulus
        counts that differ, or too few stimuli.

    Examples
    --------
    >>> import torch
    >>> from geomkit.train.regularizers import differentiable_similarity
    >>> X = torch.randn(50, 8, dtype=torch.float64)
    >>> round(float(differentiable_similarity(X, 2 * X + 1, "cka")), 6)
    1.0
    >>> round(float(differentiable_similarity(X, X @ torch.randn(8, 8, dtype=torch.float64), "cca", ridge=0.0)), 6)
    1.0
    """
    validate_params(dict(similarity=similarity, debiased=debiased, ridge=ridge, n_components=n_components),
                    _SIMILARITY_CONSTRAINTS, caller="differentiable_similarity")
    for name, T in (("X", X), ("Y", Y)):
        if not isinstance(T, torch.Tensor) or T.ndim != 2:
            raise TypeError(f"{name} must be a 2-D torch.Tensor (n_stimuli, n_units); got "
                            f"{type(T).__name__} of shape {tuple(getattr(T, 'shape', ()))}.")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must hold the same stimuli: X has {X.shape[0]} rows, Y has {Y.shape[0]}.")
    need = 4 if (similarity == "cka" and debiased) else 3
    if X.shape[0] < need:
        raise ValueError(f"differentiable_similarity needs >= {need} stimuli; got {X.shape[0]}.")
    Y = Y.to(X.dtype)
    if similarity == "cka":
        return _linear_cka(X, Y, debiased)
    if similarity == "rsa":
        return _rsa(X, Y)
    return _cca(X, Y, float(ridge), n_components)


# ---------------------------------------------------------------------------
# the recording: an array indexed by stimulus, or a model of the recorded area
# ---------------------------------------------------------------------------


def _recording_array(recording: Any, X: torch.Tensor) -> np.ndarray:
    """The recording as (n_samples, n_neurons) float32, row i answering X[i]."""
    if recording is None:
        raise ValueError("recording is None; pass the (stimuli, neurons) responses to the training "
                         "inputs, or a model of them with a transform method.")
    if hasattr(recording, "transform") and not hasattr(recording, "shape"):
        from sklearn.base import clone
        from sklearn.exceptions import NotFittedError

        X_np = X.detach().cpu().numpy().reshape(X.shape[0], -1)
        try:
            responses = recording.transform(X_np)
        except NotFittedError:
            responses = clone(recording).fit(X_np).transform(X_np)
        source = f"{type(recording).__name__}.transform(X)"
    else:
        responses = recording
        if hasattr(recording, "dims") and "repeat" in recording.dims:  # an xarray recording
            responses = recording.mean("repeat").transpose("stimulus", ...)
        source = "recording"
    R = as_float_array(responses, "recording", ndim=(2, 3), dtype=np.float32)
    if R.ndim == 3:  # (repeat, stimulus, neuron): the trial mean
        R = R.mean(0)
    if R.shape[0] != X.shape[0]:
        raise ValueError(
            f"recording must hold one row per training input (row i = the response to X[i]); "
            f"{source} has {R.shape[0]} stimuli but X has {X.shape[0]} samples."
        )
    return R


class _RecordingRegularizer(Regularizer):
    """Shared parts: the recording, the layer, the batch's rows."""

    def _common_setup(self, model: nn.Module, X: torch.Tensor, batch_size: int) -> None:
        if not isinstance(self.layer, str):
            raise TypeError(f"layer must be a layer name (str); got {self.layer!r}.")
        Regularizer.setup(self, model, X, batch_size=batch_size, n_epochs=1)
        R = _recording_array(self.recording, X)
        self.recording_ = torch.from_numpy(np.ascontiguousarray(R)).to(X.device)
        self.n_neurons_ = int(R.shape[1])

    def layers_needed(self) -> list[str]:
        """The co-trained layer.

        Returns
        -------
        list of str
            ``[layer]``.
        """
        return [self.layer]

    def _rows(self, ctx: BatchContext) -> torch.Tensor:
        if ctx.index is None:
            raise ValueError(
                f"{type(self).__name__} needs the batch's row indices into the training set "
                "(BatchContext.index, set by geomkit.train.train_module) to pick the recording's rows."
            )
        return self.recording_[ctx.index.to(self.recording_.device)]


class RepresentationalSimilarity(_RecordingRegularizer):
    """Pull a layer's representation towards a recording: ``strength * (1 - similarity)``.

    On every batch the layer's activations (flattened per stimulus) are
    compared with the recording's rows of the same stimuli by
    :func:`differentiable_similarity`; the term is ``1 - similarity`` (0 when
    the two representations are the same up to what the similarity ignores:
    rotation and scale for CKA, and any invertible linear map for CCA).

    Parameters
    ----------
    recording : array-like of shape (n_samples, n_neurons), or a transformer
        Responses to the training inputs, row ``i`` to ``X[i]`` (a
        (repeat, stimulus, neuron) array or DataArray is averaged over
        repeats); or a model of them with ``transform`` (fitted on the
        training inputs first, as a copy, if it is not fitted).
    layer : str, default="act1"
        The co-trained module (its output).
    similarity : {"cka", "rsa", "cca"}, default="cka"
        See :func:`differentiable_similarity`.
    strength : float, default=1.0
        Weight of the term.
    debiased : bool, default=False
        CKA only: the unbiased HSIC.
    ridge : float, default=1e-3
        CCA only: the covariance ridge, relative to the mean variance.
    n_components : int, optional
        CCA only: average the leading canonical correlations only.

    Attributes
    ----------
    recording_ : torch.Tensor of shape (n_samples, n_neurons)
        The recording as used (float32, on the training device).
    n_neurons_ : int

    Notes
    -----
    Measured on MNIST-5k (the 784-1000-10 MLP, 10 epochs of batches of
    128, a :class:`~geomkit.datasets.GaborV1` recording of 500 neurons): see the
    training guide for the similarity reached on held-out images.

    References
    ----------
    Li, Z. et al. (2019). Learning from brains how to regularize machines. NeurIPS.

    Andrew, G., Arora, R., Bilmes, J. & Livescu, K. (2013). Deep canonical
    correlation analysis. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.datasets import load_digits
    >>> from geomkit.train import NetClassifier, RepresentationalSimilarity
    >>> X, _, y, _ = load_digits(test_size=0.5)
    >>> recording = np.random.default_rng(0).normal(size=(len(X), 30))
    >>> reg = RepresentationalSimilarity(recording, similarity="cka", strength=2.0)
    >>> clf = NetClassifier(hidden_sizes=(32,), regularizers=reg, epochs=2, random_state=0,
    ...                     progress=False).fit(X, y)
    >>> list(clf.history_.columns[:4])
    ['epoch', 'loss', 'task_loss', 'reg_similarity']
    """

    name = "similarity"

    def __init__(self, recording: Any = None, layer: str = "act1", similarity: str = "cka",
                 strength: float = 1.0, debiased: bool = False, ridge: float = 1e-3,
                 n_components: int | None = None):
        self.recording = recording
        self.layer = layer
        self.similarity = similarity
        self.strength = strength
        self.debiased = debiased
        self.ridge = ridge
        self.n_components = n_components

    def setup(self, model: nn.Module, X: torch.Tensor, *, batch_size: int, n_epochs: int) -> None:
        validate_params(dict(similarity=self.similarity, debiased=self.debiased, ridge=self.ridge,
                             n_components=self.n_components, strength=self.strength),
                        {**_SIMILARITY_CONSTRAINTS, "strength": [Real(0, None)]},
                        caller="RepresentationalSimilarity")
        need = 4 if (self.similarity == "cka" and self.debiased) else 3
        if batch_size < need:
            raise ValueError(f"RepresentationalSimilarity compares batches of stimuli: batch_size must be "
                             f">= {need}; got {batch_size}.")
        self._common_setup(model, X, batch_size)

    def term(self, ctx: BatchContext) -> torch.Tensor:
        acts = _flat(ctx.outputs[self.layer])
        sim = differentiable_similarity(acts, self._rows(ctx), self.similarity, debiased=self.debiased,
                                        ridge=self.ridge, n_components=self.n_components)
        return 1.0 - sim


class NeuralPredictionHead(_RecordingRegularizer):
    """Multi-task co-training: a linear readout from a layer predicts the recorded neurons.

    A readout ``r = W h + b`` (``h`` the layer's flattened output) is trained
    with the network, its loss added to the classification loss:

    ``"poisson"``
        The Poisson negative log-likelihood of the counts ``y`` under the
        rates ``softplus(r)``, ``mean(rate - y log rate)`` (spike counts;
        the recording must be >= 0).
    ``"mse"``
        ``mean((r - y)^2)`` (any responses; standardize them first so that
        every neuron counts alike).

    The readout is the regularizer's own parameter (``readout_``), optimized
    with the network's by the same Adam; the network gains no module.

    Parameters
    ----------
    recording : array-like of shape (n_samples, n_neurons), or a transformer
        As for :class:`RepresentationalSimilarity`.
    layer : str, default="act1"
        The layer the neurons are read out from.
    loss : {"poisson", "mse"}, default="poisson"
    strength : float, default=1.0
        Weight of the prediction loss.

    Attributes
    ----------
    readout_ : torch.nn.Linear
        The trained readout (layer width -> n_neurons).
    recording_ : torch.Tensor of shape (n_samples, n_neurons)
    n_neurons_ : int

    References
    ----------
    Li, Z. et al. (2019). Learning from brains how to regularize machines. NeurIPS.

    Safarani, S. et al. (2021). Towards robust vision by multi-task learning on
    monkey visual cortex. NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> from geomkit.datasets import load_digits
    >>> from geomkit.train import NetClassifier, NeuralPredictionHead
    >>> X, _, y, _ = load_digits(test_size=0.5)
    >>> counts = np.random.default_rng(0).poisson(2.0, size=(len(X), 20))
    >>> clf = NetClassifier(hidden_sizes=(32,), regularizers=NeuralPredictionHead(counts), epochs=2,
    ...                     random_state=0, progress=False).fit(X, y)
    >>> clf.regularizers_[0].readout_
    Linear(in_features=32, out_features=20, bias=True)
    """

    name = "neural_prediction"

    def __init__(self, recording: Any = None, layer: str = "act1", loss: str = "poisson",
                 strength: float = 1.0):
        self.recording = recording
        self.layer = layer
        self.loss = loss
        self.strength = strength

    def setup(self, model: nn.Module, X: torch.Tensor, *, batch_size: int, n_epochs: int) -> None:
        validate_params(dict(loss=self.loss, strength=self.strength),
                        {"loss": [Options(*_LOSSES)], "strength": [Real(0, None)]},
                        caller="NeuralPredictionHead")
        self._common_setup(model, X, batch_size)
        if self.loss == "poisson" and float(self.recording_.min()) < 0:
            raise ValueError(
                f"loss='poisson' needs non-negative responses (counts or rates); the recording's minimum "
                f"is {float(self.recording_.min()):.3g}. Use loss='mse' for signed responses."
            )
        width = _layer_width(model, X, self.layer)
        self.readout_ = nn.Linear(width, self.n_neurons_).to(device=X.device)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The readout's weight and bias, optimized with the network's.

        Returns
        -------
        list of torch.nn.Parameter
        """
        return list(self.readout_.parameters())

    def predict(self, activations: torch.Tensor) -> torch.Tensor:
        """The predicted responses (rates for ``"poisson"``) from the layer's activations.

        Parameters
        ----------
        activations : torch.Tensor of shape (n_stimuli, ...)
            The layer's output.

        Returns
        -------
        torch.Tensor of shape (n_stimuli, n_neurons)
        """
        r = self.readout_(_flat(activations))
        return F.softplus(r) if self.loss == "poisson" else r

    def term(self, ctx: BatchContext) -> torch.Tensor:
        pred = self.predict(ctx.outputs[self.layer])
        target = self._rows(ctx)
        if self.loss == "poisson":
            return F.poisson_nll_loss(pred, target, log_input=False, eps=1e-6)
        return F.mse_loss(pred, target)


@torch.no_grad()
def _layer_width(model: nn.Module, X: torch.Tensor, layer: str) -> int:
    from ..probe.recorder import Recorder

    was = model.training
    model.eval()
    try:
        with Recorder(model, [layer]) as rec:
            model(X[:2])
    finally:
        model.train(was)
    return int(_flat(rec.records[layer][0]).shape[1])
