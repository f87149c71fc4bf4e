"""benchmarks/toy_structure.py against what the data's own definition says its shape is.

Moons: two unit half circles plus N(0, 0.05^2 I) noise, so the root mean square distance to the
arcs is 0.05 (the noise across the arc; along it the distance does not change), the radial
offset is Gaussian (kurtosis 3), about 1/2 of the points lie nearer each arc, and extra noise
of sd h makes the arcs sqrt(0.05^2 + h^2) thick. 8gaussians: every mode is N(mu_k, s^2 I) with
s = EIGHT_GAUSSIANS_STD, standardised by the per-axis sd sqrt(1/2 + s^2).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import toy_structure  # noqa: E402

from tinydiff.data.toy2d import EIGHT_GAUSSIANS_STD, MOONS_NOISE, sample_toy2d  # noqa: E402

N = 40_000


def _moons_with_extra_noise(h: float) -> np.ndarray:
    x = sample_toy2d("moons", N, np.random.default_rng(1))
    raw = toy_structure._unstandardise_moons(x) + h * np.random.default_rng(2).standard_normal(x.shape)
    v = MOONS_NOISE**2
    return (raw - np.array([0.5, 0.25])) / np.sqrt([0.75 + v, 9 / 16 - 1 / math.pi + v])


@pytest.mark.parametrize("h", [0.0, 0.03])
def test_moons_figures_match_the_definition(h):
    s = toy_structure.moons_structure(_moons_with_extra_noise(h))
    assert s["thickness"] == pytest.approx(math.hypot(MOONS_NOISE, h), rel=0.02)
    assert s["kurtosis"] == pytest.approx(3.0, abs=0.15)
    assert s["upper share"] == pytest.approx(0.5, abs=0.01)
    if h == 0.0:
        assert s["strays %"] < 0.05  # 4 noise sd: 6e-5 of the points


def test_eight_gaussians_figures_match_the_definition():
    s = toy_structure.eight_gaussians_structure(sample_toy2d("8gaussians", N, np.random.default_rng(3)))
    sd = EIGHT_GAUSSIANS_STD / math.sqrt(0.5 + EIGHT_GAUSSIANS_STD**2)
    assert s["tangential sd"] == pytest.approx(sd, rel=0.02)
    assert s["radial sd"] == pytest.approx(sd, rel=0.02)
    assert s["largest share error %"] < 0.6  # multinomial sd of a share: 0.17 points at N
