"""Shared fixtures: small deterministic models and data."""

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def torch_seed():
    import torch

    torch.manual_seed(0)
    return 0
