"""numpy / torch dispatch: devices and symmetric eigendecompositions.

Eigendecompositions run in float64. With ``device=None`` they run in scipy's
LAPACK on the CPU (the library whose BLAS computes geomkit's covariances: numpy
and scipy ship separate OpenBLAS builds, and alternating between their thread
pools slows both); with a torch device (``"cuda"``, ``"cuda:1"``,
``torch.device``) they run with ``torch.linalg`` on that device and come back
as numpy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

__all__ = ["resolve_device", "check_device", "model_device", "eigvalsh", "eigh", "symmetrize"]


def resolve_device(device: Any = None, model: Any = None):
    """Return the torch device to compute on.

    ``device=None`` means "where the model already is" (its first parameter or
    buffer), or the CPU for a model without parameters / no model.
    """
    import torch

    if device is not None:
        return _parse_device(device, "device")
    if model is not None:
        return model_device(model)
    return torch.device("cpu")


def _parse_device(device: Any, name: str):
    """``torch.device(device)``, or a ValueError that names the parameter and what is accepted."""
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(
            f"{name} must be None, a string such as 'cpu' or 'cuda:0', or a torch.device; got "
            f"{device!r} ({err})."
        ) from None


def check_device(device: Any, name: str = "device"):
    """Validate an array estimator's ``device`` parameter: ``None`` (numpy) or a usable torch device.

    Parameters
    ----------
    device : None, str or torch.device
        ``None`` stays ``None`` (numpy and scipy on the CPU, torch is not imported).
    name : str, default="device"
        The parameter's name, for error messages.

    Returns
    -------
    None or torch.device

    Raises
    ------
    ValueError
        For a string torch cannot parse, or a CUDA / MPS device this machine
        does not have.
    TypeError
        For anything else (a number, a list, ...).
    """
    if device is None:
        return None
    import torch

    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"{name} must be None, a string such as 'cpu' or 'cuda:0', or a torch.device; got "
            f"{type(device).__name__} {device!r}."
        )
    dev = _parse_device(device, name)
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index is not None and dev.index >= n):
            raise ValueError(
                f"{name}={device!r}, but this machine has {n} usable CUDA device(s). Use "
                f"{name}=None (numpy) or 'cpu'" + (f", or 'cuda:0'..'cuda:{n - 1}'." if n else ".")
            )
    elif dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ValueError(f"{name}={device!r}, but MPS is not available here; use None or 'cpu'.")
    return dev


def model_device(model: Any):
    """The device of a module's first parameter or buffer (CPU if it has none)."""
    import torch

    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def symmetrize(C: np.ndarray) -> np.ndarray:
    """Return ``(C + C.T) / 2`` (rounding makes computed covariances slightly asymmetric)."""
    return (C + C.T) / 2.0


def _torch_sym(C: Any, device: Any, symmetric: bool = False):
    """C as a float64 tensor on ``device``, symmetrized unless ``symmetric``."""
    import torch

    t = torch.as_tensor(np.asarray(C) if not isinstance(C, torch.Tensor) else C)
    t = t.to(device=torch.device(device), dtype=torch.float64)
    return t if symmetric else (t + t.T) / 2.0


def eigvalsh(C: Any, device: Any = None, *, symmetric: bool = False) -> np.ndarray:
    """Eigenvalues of a symmetric matrix in float64, sorted descending.

    Parameters
    ----------
    C : array-like or torch.Tensor of shape (n, n)
        Symmetric matrix (symmetrized here: rounding leaves computed products
        slightly asymmetric).
    device : None, str or torch.device
        ``None``: scipy (LAPACK) on the CPU. Otherwise ``torch.linalg.eigvalsh`` on it.
    symmetric : bool, default=False
        C is exactly symmetric already (mirrored from one triangle): skip the
        symmetrization, which costs as much as a pass over C.

    Returns
    -------
    ndarray of shape (n,)
    """
    if device is None and not type(C).__module__.startswith("torch"):
        C = np.asarray(C, dtype=np.float64)
        values = scipy.linalg.eigvalsh(C if symmetric else symmetrize(C),
                                       overwrite_a=not symmetric, check_finite=False,
                                       driver="evd")
    else:
        import torch

        dev = device if device is not None else C.device
        values = torch.linalg.eigvalsh(_torch_sym(C, dev, symmetric)).cpu().numpy()
    return values[::-1].copy()


def eigh(C: Any, device: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric matrix.

    Same dispatch as :func:`eigvalsh`. Returns float64 numpy arrays of shapes
    (n,) and (n, n).
    """
    if device is None and not type(C).__module__.startswith("torch"):
        values, vectors = scipy.linalg.eigh(symmetrize(np.asarray(C, dtype=np.float64)),
                                            overwrite_a=True, check_finite=False, driver="evd")
    else:
        import torch

        dev = device if device is not None else C.device
        values_t, vectors_t = torch.linalg.eigh(_torch_sym(C, dev))
        values, vectors = values_t.cpu().numpy(), vectors_t.cpu().numpy()
    return values[::-1].copy(), vectors[:, ::-1].copy()
