"""Shared test fixtures: the backends to run on, and the real MNIST files beside the checkout."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from autograd.backend import cuda_available, cuda_unavailable_reason

# One hypothesis profile for everyone: no deadline (2 shared cores are noisy), few examples by
# default so the whole suite stays under a few minutes; `HYPOTHESIS_PROFILE=thorough` for more.
settings.register_profile("default", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

requires_cuda = pytest.mark.skipif(not cuda_available(), reason=cuda_unavailable_reason())

# Backends as a parameter: tests taking `xp` run on NumPy, and on CuPy where a GPU exists.
BACKENDS = [pytest.param("numpy", id="numpy"),
            pytest.param("cupy", id="cupy", marks=[pytest.mark.cuda, requires_cuda])]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module under test: numpy, or cupy when a CUDA device is present."""
    if request.param == "cupy":
        import cupy
        return cupy
    return np


def _find_mnist() -> Path | None:
    env = os.environ.get("TINYDIFF_TEST_MNIST")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent.parent
    candidates += [here.parent / "shared" / "data" / "mnist", here / "shared" / "data" / "mnist"]
    for c in candidates:
        if (c / "SHA256SUMS").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST IDX files shipped beside the checkout (never downloaded in tests)."""
    path = _find_mnist()
    if path is None:
        pytest.skip("real MNIST files not found beside the checkout (../shared/data/mnist)")
    return path
