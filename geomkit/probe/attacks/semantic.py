"""Differentiable semantic image transformations: the components of the composite attack.

Each function takes a batch of images of shape (n, channels, height, width)
and one parameter per image (a number for all, or a tensor of shape (n,);
translation takes (n, 2)), and is differentiable in the images and in the
parameter, so that an attack can ascend the loss in parameter space
(:class:`~geomkit.probe.attacks.composite.CompositeAttack`, Hsiung et al.
2023). Plain torch, no kornia: the geometric ones share a bilinear sampler
written in pixel coordinates, so that each component at its identity
parameter returns its input *exactly* (bit for bit), and a rotation by 90
degrees or an integer translation lands on pixel centres.

* :func:`rotate` — by an angle in degrees, counter-clockwise as displayed
  (row 0 at the top), about the image centre; zero fill;
* :func:`translate` — by (dx, dy) pixels, right and down; zero fill;
* :func:`adjust_brightness` — ``x + delta``, clipped to the bounds;
* :func:`adjust_contrast` — ``mean + factor (x - mean)`` (the image's own
  mean, as PIL / torchvision), clipped to the bounds;
* :func:`gaussian_blur` — a separable Gaussian of standard deviation
  ``sigma`` pixels, borders replicated.

:data:`IDENTITY` holds each component's identity parameter and
:data:`DEFAULT_RANGES` the parameter ranges of the attack (the CIFAR-10
ranges of Hsiung et al. for rotation, brightness and contrast).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["rotate", "translate", "adjust_brightness", "adjust_contrast", "gaussian_blur",
           "SEMANTIC_COMPONENTS", "IDENTITY", "DEFAULT_RANGES", "apply_component"]

#: The semantic components, in the attack's default order.
SEMANTIC_COMPONENTS = ("rotation", "translation", "brightness", "contrast", "blur")
#: The parameter at which each component is the identity.
IDENTITY = {"rotation": 0.0, "translation": 0.0, "brightness": 0.0, "contrast": 1.0, "blur": 0.0}
#: Default parameter ranges (low, high): degrees, pixels (each of dx and dy), intensity, factor,
#: pixels of standard deviation.
DEFAULT_RANGES = {"rotation": (-10.0, 10.0), "translation": (-2.0, 2.0), "brightness": (-0.2, 0.2),
                  "contrast": (0.7, 1.3), "blur": (0.0, 1.0)}
# parameters per image: translation moves along x and y
N_PARAMS = {"rotation": 1, "translation": 2, "brightness": 1, "contrast": 1, "blur": 1}


def _check_images(images: Any):
    import torch

    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.ndim != 4:
        got = (f"shape {tuple(images.shape)}, dtype {images.dtype}" if isinstance(images, torch.Tensor)
               else type(images).__name__)
        raise ValueError("images must be a floating-point tensor of shape (n, channels, height, width); "
                         f"got {got}.")
    return images


def _per_image(value: Any, images, name: str, n_params: int = 1):
    """``value`` as a tensor of shape (n,) ((n, 2) for two parameters) on the images' device."""
    import torch

    n = images.shape[0]
    t = torch.as_tensor(value, dtype=images.dtype, device=images.device)
    if n_params == 1 and t.ndim == 0:
        t = t.expand(n)
    elif n_params > 1 and t.ndim == 1 and t.shape[0] == n_params:
        t = t.expand(n, n_params)
    want = (n,) if n_params == 1 else (n, n_params)
    if tuple(t.shape) != want:
        accepted = "a number or shape (n,)" if n_params == 1 else f"shape ({n_params},) or (n, {n_params})"
        raise ValueError(f"{name} must be {accepted} for n = {n} images; got shape {tuple(t.shape)}.")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return t


def _sample(images, sx, sy, fill: float):
    """Bilinear sampling of ``images`` at source pixel coordinates ``sx``, ``sy`` (n, H, W).

    Pixel centres sit at integer coordinates; a neighbour outside the image reads ``fill``.
    At integer coordinates the interpolation weights are exactly 1 and 0, so the result is
    the source pixel itself, bit for bit.
    """
    import torch

    n, c, h, w = images.shape
    # a border of `fill` around the image: every neighbour outside reads it (indices clamped onto it)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), value=fill).reshape(n, c, (h + 2) * (w + 2))
    x0f, y0f = sx.floor(), sy.floor()
    wx, wy = sx - x0f, sy - y0f  # carries the gradient with respect to the coordinates
    xs = [(x0f + k).clamp(-1, w).long() + 1 for k in (0, 1)]
    ys = [(y0f + k).clamp(-1, h).long() + 1 for k in (0, 1)]
    index = torch.stack([ys[0] * (w + 2) + xs[0], ys[0] * (w + 2) + xs[1],
                         ys[1] * (w + 2) + xs[0], ys[1] * (w + 2) + xs[1]], dim=1)  # (n, 4, h, w)
    values = padded.gather(2, index.reshape(n, 1, 4 * h * w).expand(n, c, 4 * h * w)).reshape(n, c, 4, h, w)
    weights = torch.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy], dim=1)
    return (values * weights[:, None]).sum(2)


def _grid(images):
    import torch

    _, _, h, w = images.shape
    ys = torch.arange(h, dtype=images.dtype, device=images.device)
    xs = torch.arange(w, dtype=images.dtype, device=images.device)
    return torch.meshgrid(ys, xs, indexing="ij")


def rotate(images: Any, angle: Any, *, fill: float = 0.0):
    """Rotate images counter-clockwise (as displayed) by ``angle`` degrees about their centre.

    Output pixel ``(i, j)`` reads the input, bilinearly interpolated, at
    ``c + R(angle)^T (p - c)`` in display coordinates, ``c`` the image centre
    ``((W - 1) / 2, (H - 1) / 2)``; pixels that come from outside the image
    get ``fill``. A rotation by 90 degrees of a square image is
    ``torch.rot90(images, 1, dims=(2, 3))`` (up to rounding of cos 90).

    Parameters
    ----------
    images : torch.Tensor of shape (n, channels, height, width)
    angle : float or torch.Tensor of shape (n,)
        Degrees, per image or one for all; differentiable.
    fill : float, default=0.0
        Value of the pixels rotated in from outside.

    Returns
    -------
    torch.Tensor of shape (n, channels, height, width)

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> rotate(x, 90.0).round().tolist()
    [[[[1.0, 3.0], [0.0, 2.0]]]]
    """
    import torch

    images = _check_images(images)
    theta = _per_image(angle, images, "angle") * (math.pi / 180.0)
    _, _, h, w = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ii, jj = _grid(images)
    du, dv = jj - cx, ii - cy  # exact: half-integers
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    sx = cos * du - sin * dv + cx
    sy = sin * du + cos * dv + cy
    return _sample(images, sx, sy, fill)


def translate(images: Any, shift: Any, *, fill: float = 0.0):
    """Shift images by ``(dx, dy)`` pixels: right and down for positive values.

    Output pixel ``(i, j)`` reads the input at ``(i - dy, j - dx)``,
    bilinearly interpolated; pixels shifted in from outside get ``fill``. An
    integer shift is ``torch.roll`` with the wrapped pixels set to ``fill``.

    Parameters
    ----------
    images : torch.Tensor of shape (n, channels, height, width)
    shift : array-like of shape (2,) or torch.Tensor of shape (n, 2)
        ``(dx, dy)`` in pixels, one pair for all images or one per image; differentiable.
    fill : float, default=0.0
        Value of the pixels shifted in from outside.

    Returns
    -------
    torch.Tensor of shape (n, channels, height, width)

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    >>> translate(x, [1.0, 0.0]).tolist()
    [[[[0.0, 1.0], [0.0, 3.0]]]]
    """
    images = _check_images(images)
    d = _per_image(shift, images, "shift", 2)
    ii, jj = _grid(images)
    sx = jj - d[:, 0, None, None]
    sy = ii - d[:, 1, None, None]
    return _sample(images, sx, sy, fill)


def _clip(x, bounds):
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def adjust_brightness(images: Any, delta: Any, *, bounds: tuple[float, float] | None = (0.0, 1.0)):
    """Add ``delta`` to every pixel, then clip to ``bounds``.

    Parameters
    ----------
    images : torch.Tensor of shape (n, channels, height, width)
    delta : float or torch.Tensor of shape (n,)
        Intensity added, per image or one for all; differentiable.
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid pixel range; ``None``: no clipping.

    Returns
    -------
    torch.Tensor of shape (n, channels, height, width)

    Examples
    --------
    >>> import torch
    >>> adjust_brightness(torch.tensor([[[[0.5, 0.9]]]]), 0.2).tolist()
    [[[[0.699999988079071, 1.0]]]]
    """
    images = _check_images(images)
    d = _per_image(delta, images, "delta")
    return _clip(images + d[:, None, None, None], bounds)


def adjust_contrast(images: Any, factor: Any, *, bounds: tuple[float, float] | None = (0.0, 1.0)):
    """Scale each image's deviations from its mean by ``factor``, then clip to ``bounds``.

    ``x + (factor - 1) (x - mean)``, the mean over the image's channels and
    pixels: ``factor = 1`` leaves the image exactly as it is, 0 makes it
    uniform grey at its mean, > 1 sharpens the contrast.

    Parameters
    ----------
    images : torch.Tensor of shape (n, channels, height, width)
    factor : float or torch.Tensor of shape (n,)
        Contrast factor (>= 0 is meaningful), per image or one for all; differentiable.
    bounds : (float, float) or None, default=(0.0, 1.0)
        Valid pixel range; ``None``: no clipping.

    Returns
    -------
    torch.Tensor of shape (n, channels, height, width)

    Examples
    --------
    >>> import torch
    >>> adjust_contrast(torch.tensor([[[[0.25, 0.75]]]]), 0.5).tolist()
    [[[[0.375, 0.625]]]]
    """
    images = _check_images(images)
    f = _per_image(factor, images, "factor")
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return _clip(images + (f[:, None, None, None] - 1) * (images - mean), bounds)


def _blur_matrices(sigma, length: int, radius: int):
    """Per image, the (length x length) matrix of a 1-D Gaussian blur with replicated borders."""
    import torch

    offsets = torch.arange(-radius, radius + 1, device=sigma.device)
    # sigma -> 0: the weights of every offset but 0 underflow to exactly 0 (an exact identity)
    var = (sigma * sigma).clamp_min(1e-30)[:, None]
    weights = torch.exp(-(offsets.to(sigma.dtype) ** 2)[None, :] / (2 * var))
    weights = weights / weights.sum(1, keepdim=True)
    source = (torch.arange(length, device=sigma.device)[:, None] + offsets[None, :]).clamp(0, length - 1)
    onehot = torch.nn.functional.one_hot(source, length).to(sigma.dtype)  # (length, taps, length)
    return torch.einsum("nk,ikj->nij", weights, onehot)


def gaussian_blur(images: Any, sigma: Any, *, radius: int | None = None):
    """Blur images with a Gaussian of standard deviation ``sigma`` pixels (borders replicated).

    Separable: rows and columns are each convolved with the sampled,
    normalized kernel ``exp(-k^2 / (2 sigma^2))``, ``|k| <= radius``.
    ``sigma = 0`` returns the images exactly.

    Parameters
    ----------
    images : torch.Tensor of shape (n, channels, height, width)
    sigma : float or torch.Tensor of shape (n,)
        Standard deviation in pixels (>= 0), per image or one for all; differentiable.
    radius : int or None, default=None
        Kernel half-width; ``None``: ``ceil(3 max(sigma))`` (at least 1). Fix
        it when the same images must blur alike in batches of other sigmas.

    Returns
    -------
    torch.Tensor of shape (n, channels, height, width)

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(1, 1, 1, 5)
    >>> x[..., 2] = 1.0
    >>> [round(v, 4) for v in gaussian_blur(x, 1.0, radius=1).squeeze().tolist()]  # e^-0.5, 1, e^-0.5
    [0.0, 0.2741, 0.4519, 0.2741, 0.0]
    """
    from ..._validation import check_int

    images = _check_images(images)
    s = _per_image(sigma, images, "sigma")
    if bool((s < 0).any()):
        raise ValueError(f"sigma must be >= 0; got minimum {float(s.min()):g}.")
    if radius is None:
        radius = max(1, math.ceil(3 * float(s.detach().max())))
    radius = check_int(radius, "radius", low=0)
    _, _, h, w = images.shape
    rows = _blur_matrices(s, h, radius)
    cols = _blur_matrices(s, w, radius)
    import torch

    # rows @ image @ cols^T, for every channel of every image
    return torch.einsum("nij,ncjk,nlk->ncil", rows, images, cols)


def apply_component(name: str, images: Any, param: Any, *, bounds: tuple[float, float] | None = (0.0, 1.0),
                    blur_radius: int | None = None):
    """Apply the semantic component ``name`` with per-image parameters ``param``.

    The output is clipped to ``bounds``: the geometric components fill with
    0 and interpolate, which can only leave a box that excludes 0.

    Parameters
    ----------
    name : {"rotation", "translation", "brightness", "contrast", "blur"}
    images : torch.Tensor of shape (n, channels, height, width)
    param : torch.Tensor of shape (n,) ((n, 2) for translation) or a number
    bounds : (float, float) or None, default=(0.0, 1.0)
    blur_radius : int or None, default=None
        ``radius`` of :func:`gaussian_blur`.

    Returns
    -------
    torch.Tensor of shape (n, channels, height, width)

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 1, 4, 4)
    >>> bool((apply_component("contrast", x, 1.0) == x).all())
    True
    """
    if name == "rotation":
        out = rotate(images, param)
    elif name == "translation":
        out = translate(images, param)
    elif name == "brightness":
        return adjust_brightness(images, param, bounds=bounds)
    elif name == "contrast":
        return adjust_contrast(images, param, bounds=bounds)
    elif name == "blur":
        out = gaussian_blur(images, param, radius=blur_radius)
    else:
        raise ValueError(f"name must be one of {', '.join(map(repr, SEMANTIC_COMPONENTS))}; got {name!r}.")
    return _clip(out, bounds)
