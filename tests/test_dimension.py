import numpy as np
import pytest

from geomkit.measures.dimension import twonn_dimension


@pytest.mark.parametrize("d", [1, 3, 6])
def test_linear_subspace_dimension(d):
    rng = np.random.default_rng(d)
    X = rng.uniform(size=(4000, d)) @ rng.normal(size=(d, 20))
    assert abs(twonn_dimension(X) - d) < 0.1 * d + 0.1


def test_swiss_roll_is_two_dimensional():
    from sklearn.datasets import make_swiss_roll

    X, _ = make_swiss_roll(5000, random_state=0)
    assert abs(twonn_dimension(X) - 2.0) < 0.2


def test_errors():
    with pytest.raises(ValueError, match="3 distinct points"):
        twonn_dimension(np.ones((10, 3)))
    with pytest.raises(ValueError, match="X must have 2 dimension"):
        twonn_dimension(np.ones(10))
