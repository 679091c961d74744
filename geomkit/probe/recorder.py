"""Forward-hook recorder that leaves the model exactly as it found it.

:class:`Recorder` is a context manager: on entry it resolves the requested
layers, snapshots the model's train/eval flags and ``requires_grad`` flags and
registers forward hooks; on exit — also when the forward pass raised — it
removes every hook and restores the flags.

What a hook records is a *clone* of the module's output, taken before any
later in-place operation (``ReLU(inplace=True)``) can overwrite it.
Tuple and dict outputs are recorded element by element (``"name[0]"``,
``"name[key]"``); a module called more than once in one forward pass is
recorded once per call (``"name#0"``, ``"name#1"``), never only the last.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

__all__ = ["Recorder", "resolve_layers", "default_layer_filter", "ModelState"]


def default_layer_filter(name: str, module: Any) -> bool:
    """True for the modules :func:`~geomkit.probe.extract.extract` records by default.

    Leaf modules that are Linear or Conv layers, or activation functions
    (everything in ``torch.nn.modules.activation``).

    Parameters
    ----------
    name : str
        The module's name in ``model.named_modules()`` (unused; part of the
        filter signature ``f(name, module)``).
    module : torch.nn.Module
        The module to test.

    Returns
    -------
    bool
        Whether the module is recorded by default.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Dropout())
    >>> [name for name, m in net.named_modules() if name and default_layer_filter(name, m)]
    ['0', '1']
    """
    import torch.nn as nn

    if any(True for _ in module.children()):
        return False
    if isinstance(module, (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)):
        return True
    return type(module).__module__ == "torch.nn.modules.activation"


def resolve_layers(model: Any, layers: Any = None) -> list[str]:
    """Turn a ``layers`` argument into a list of module names of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
    layers : None, str, sequence of str, module type(s) or callable
        ``None``: :func:`default_layer_filter`. A string or list of strings:
        module names as in ``model.named_modules()`` (``""`` is the model
        itself; its output is recorded under the key ``"output"``). A type or
        tuple of types: every module of that type. A callable
        ``f(name, module) -> bool``: a filter.

    Returns
    -------
    list of str
        Module names, in the order given (names) or of ``model.named_modules()``
        (types, filters).

    Raises
    ------
    ValueError
        For an unknown name, listing the available names and the closest
        matches; for a filter that selects nothing.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> resolve_layers(net), resolve_layers(net, torch.nn.Linear)
    (['0', '1', '2'], ['0', '2'])
    """
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    named = dict(model.named_modules())
    if layers is None:
        chosen = [n for n, m in named.items() if n and default_layer_filter(n, m)]
        what = "the default filter (Linear / Conv layers and activations)"
    elif isinstance(layers, str) or (
        isinstance(layers, (list, tuple)) and layers and all(isinstance(x, str) for x in layers)
    ):
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in names if n not in named]
        if unknown:
            available = [n for n in named if n]
            hints = []
            for n in unknown:
                close = difflib.get_close_matches(n, available, n=3, cutoff=0.5)
                hints.append(f"{n!r} (closest: {', '.join(map(repr, close)) or 'none'})")
            raise ValueError(
                f"unknown layer name(s): {'; '.join(hints)}. Available layers of "
                f"{type(model).__name__}: {', '.join(map(repr, available))}."
            )
        if len(set(names)) != len(names):
            raise ValueError(f"layers contains duplicate names: {names}.")
        if "" in names and "output" in names:
            # The model itself is stored under "output": both would land on the same key.
            raise ValueError(
                f"layers asks for the whole model ('') and for its submodule 'output', but the "
                f"model's own output is recorded under the key 'output'; got {names}. Record one "
                "of them, or the model's output through its last submodule instead."
            )
        return names
    elif isinstance(layers, type) or (
        isinstance(layers, tuple) and all(isinstance(t, type) for t in layers)
    ):
        chosen = [n for n, m in named.items() if n and isinstance(m, layers)]
        what = f"type {layers}"
    elif callable(layers):
        chosen = [n for n, m in named.items() if n and layers(n, m)]
        what = "the given filter"
    else:
        raise TypeError(
            "layers must be None, a module name, a list of names, a module type or a "
            f"callable filter(name, module); got {layers!r}."
        )
    if not chosen:
        raise ValueError(
            f"{what} selects no module of {type(model).__name__}; its modules are: "
            f"{', '.join(repr(n) for n in named if n) or '(none)'}."
        )
    return chosen


class ModelState:
    """Snapshot of a module's train/eval flags and ``requires_grad`` flags (and buffers).

    Parameters
    ----------
    model : torch.nn.Module
        The module whose flags (and its submodules' and parameters') are saved.
    buffers : bool, default=False
        Also save every buffer (batch-norm running statistics, ...): the buffer
        objects and a clone of their values, both put back by :meth:`restore`,
        bitwise. Costs one copy of the buffers.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> state = ModelState(net)
    >>> _ = net.eval().requires_grad_(False)
    >>> state.restore()
    >>> net.training, net.weight.requires_grad
    (True, True)
    """

    def __init__(self, model: Any, *, buffers: bool = False):
        self.model = model
        self.training = {name: m.training for name, m in model.named_modules()}
        self.requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
        # (module, buffer name, buffer object, clone of its values)
        self.buffers: list[tuple[Any, str, Any, Any]] = []
        if buffers:
            for module in model.modules():
                for bname, buf in module.named_buffers(recurse=False):
                    self.buffers.append((module, bname, buf, buf.detach().clone()))

    def restore(self) -> None:
        """Put the saved flags (and buffers) back; modules or parameters added since are left alone."""
        import torch

        for name, module in self.model.named_modules():
            if name in self.training:
                module.training = self.training[name]
        for name, param in self.model.named_parameters():
            if name in self.requires_grad:
                param.requires_grad_(self.requires_grad[name])
        with torch.no_grad():
            for module, bname, buf, saved in self.buffers:
                # The original object (a device move or an assignment may have replaced it),
                # holding its original values (an in-place update may have changed them).
                if getattr(module, bname, None) is not buf:
                    setattr(module, bname, buf)
                buf.copy_(saved)


def _flatten_output(output: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(suffix, tensor) pairs of a module output: a tensor, or tuples / lists / dicts of them, nested."""
    import torch

    if isinstance(output, torch.Tensor):
        return [(prefix, output)]
    if isinstance(output, (tuple, list)):
        items = enumerate(output)
    elif isinstance(output, dict):
        items = output.items()
    else:
        return []
    pieces = []
    for key, value in items:
        pieces.extend(_flatten_output(value, f"{prefix}[{key}]"))
    return pieces


class Recorder:
    """Record the outputs of named modules during forward passes.

    Parameters
    ----------
    model : torch.nn.Module
    layers : None, str, sequence of str, module type(s) or callable, default=None
        Which modules to record, as in :func:`resolve_layers`.
    detach : bool, default=True
        Record detached clones. With ``detach=False`` the recorded tensors stay
        in the autograd graph (for Jacobians of hidden layers).
    to_cpu : bool, default=False
        Move recorded tensors to the CPU right away (bounded GPU memory).

    Attributes
    ----------
    layers : list of str
        The resolved module names.
    records : dict of str to list of torch.Tensor
        Per recorded key, one tensor per forward pass since the last
        :meth:`clear`. Keys are layer names, with ``"[i]"`` / ``"[key]"`` for
        tuple / dict outputs and ``"#k"`` for the k-th call of a module that
        runs several times in one forward pass.
    called : set of str
        The names in ``layers`` whose module ran in a completed forward pass
        since the last :meth:`clear`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(inplace=True))
    >>> with Recorder(net, ["0"]) as rec:
    ...     _ = net(torch.ones(2, 4))
    >>> rec.records["0"][0].shape
    torch.Size([2, 3])
    """

    def __init__(self, model: Any, layers: Any = None, *, detach: bool = True, to_cpu: bool = False):
        self.model = model
        self.layers = resolve_layers(model, layers)
        self.detach = detach
        self.to_cpu = to_cpu
        self.records: dict[str, list] = {}
        self._handles: list = []
        self._state: ModelState | None = None
        self._pending: dict[str, list[list[tuple[str, Any]]]] = {}
        self.called: set[str] = set()

    # -- hooks ---------------------------------------------------------------
    def _make_hook(self, name: str) -> Callable:
        def hook(module, inputs, output):
            pieces = []
            for suffix, tensor in _flatten_output(output):
                t = tensor.detach().clone() if self.detach else tensor.clone()
                if self.to_cpu:
                    t = t.cpu()
                pieces.append((suffix, t))
            if not pieces:
                raise TypeError(
                    f"layer {name!r} returned {type(output).__name__}, which holds no tensor to record."
                )
            self._pending.setdefault(name, []).append(pieces)

        return hook

    def _root_pre_hook(self, module, inputs):
        self._pending = {}

    def _root_post_hook(self, module, inputs, output):
        self._commit()

    def _commit(self) -> None:
        made: dict[str, str] = {}
        for name, calls in self._pending.items():
            self.called.add(name)
            layer = name or "output"  # the model itself: "" is no valid variable name
            multi = len(calls) > 1
            for k, pieces in enumerate(calls):
                for suffix, t in pieces:
                    key = f"{layer}#{k}{suffix}" if multi else f"{layer}{suffix}"
                    if key in made:
                        # Two modules' records would be merged under one key; refuse.
                        raise ValueError(
                            f"layers {made[key]!r} and {name!r} both produce the record key "
                            f"{key!r}; record only one of them."
                        )
                    made[key] = name
                    self.records.setdefault(key, []).append(t)
        self._pending = {}

    # -- context manager -------------------------------------------------------
    def __enter__(self) -> "Recorder":
        self._state = ModelState(self.model)
        modules = dict(self.model.named_modules())
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._root_pre_hook))
            for name in self.layers:
                self._handles.append(modules[name].register_forward_hook(self._make_hook(name)))
            # Registered last so that it runs after a hook on the root module itself.
            self._handles.append(self.model.register_forward_hook(self._root_post_hook))
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._state is not None:
            self._state.restore()

    def __exit__(self, exc_type, exc, tb) -> None:
        self._pending = {}
        self._remove()

    def clear(self) -> None:
        """Forget what was recorded (and which layers ran)."""
        self.records = {}
        self._pending = {}
        self.called = set()

    @property
    def n_hooks(self) -> int:
        """Number of hooks currently registered by this recorder."""
        return len(self._handles)
