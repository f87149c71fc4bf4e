"""Bad input fails loudly, naming what was wrong and what would be right."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import make_beta_schedule

T = 50


@pytest.fixture(scope="module")
def d():
    return GaussianDiffusion(make_beta_schedule("cosine", T))


@pytest.mark.parametrize("betas", [[[0.1, 0.2]], [0.1, 0.0], [0.2, 1.0], [0.1, -0.3], [0.1, np.inf], []])
def test_betas_outside_open_unit_interval_or_not_1d(betas):
    with pytest.raises(ValueError, match=r"1-D|\(0, 1\)"):
        GaussianDiffusion(np.array(betas, dtype=np.float64))


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=T)))
def test_int_t_out_of_range_names_the_valid_range(t):
    d = GaussianDiffusion(make_beta_schedule("cosine", T))
    with pytest.raises(ValueError, match=rf"q_sample: t={t} is outside the valid range 0\.\.{T - 1}"):
        d.q_sample(np.zeros((2, 3)), t, np.zeros((2, 3)))


@pytest.mark.parametrize("t", [np.array([0, T]), np.array([-1, 3]), np.array([[1, 2]]).T.ravel() + T])
def test_array_t_out_of_range_is_caught_not_wrapped(d, t):
    """NumPy would read index -1 as T-1 and CuPy wraps any out-of-range index silently."""
    with pytest.raises(ValueError, match=rf"outside the valid range 0\.\.{T - 1}"):
        d.q_mean_variance(np.zeros((2, 3)), t)


@pytest.mark.parametrize("t", [3.0, np.float32(2), np.array([1.0, 2.0]), True, np.array([True, False])])
def test_non_integer_t_is_rejected(d, t):
    with pytest.raises(TypeError, match="t must"):
        d.q_sample(np.zeros((2, 3)), t, np.zeros((2, 3)))


def test_t_shape_must_match_the_batch(d):
    with pytest.raises(ValueError, match=r"predict_x0_from_eps: t must have shape \(B,\) = \(2,\).*\(3,\)"):
        d.predict_x0_from_eps(np.zeros((2, 4)), np.array([1, 2, 3]), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(2, 1\)"):
        d.q_sample(np.zeros((2, 4)), np.array([[1], [2]]), np.zeros((2, 4)))


def test_x0_and_noise_shapes_must_match(d):
    with pytest.raises(ValueError, match=r"q_sample: noise has shape \(2, 4\) but x0 has shape \(2, 3\)"):
        d.q_sample(np.zeros((2, 3)), 1, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"p_sample_step: noise has shape"):
        d.p_sample_step(np.zeros((2, 3)), np.zeros((2, 3)), 4, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"q_posterior_mean_variance: xt has shape"):
        d.q_posterior_mean_variance(np.zeros((2, 3)), np.zeros((2,)), 4)


def test_dtypes_must_match_and_be_floating(d):
    with pytest.raises(TypeError, match="noise has dtype float32 but x0 has dtype float64"):
        d.q_sample(np.zeros((2, 3)), 1, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="floating"):
        d.q_sample(np.zeros((2, 3), dtype=np.uint8), 1, np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape \\(B, ...\\)"):
        d.q_sample(np.float64(1.0) * np.ones(()), 1, np.ones(()))


def test_ddim_step_arguments(d):
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=rf"t_prev=-2 is outside the valid range -1\.\.{T - 1}"):
        d.ddim_step(x, x, 5, -2)
    with pytest.raises(ValueError, match="eta must be in"):
        d.ddim_step(x, x, 5, 4, eta=1.5)
    with pytest.raises(ValueError, match="needs noise"):
        d.ddim_step(x, x, 5, 4, eta=0.5)
    with pytest.raises(ValueError, match="t_prev < t"):
        d.ddim_step(x, x, 5, 7, eta=0.5, noise=x)


def test_unknown_variance_and_parameterization(d):
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="fixed_large, fixed_small"):
        d.p_sample_step(x, x, 3, x, variance="learned")
    with pytest.raises(ValueError, match="eps, x0, v"):
        d.eps_from_model_output(x, x, 3, "score")


def test_sampler_rng_must_match_backend(d):
    with pytest.raises(TypeError, match="Generator"):
        d.sample(lambda x, t: x, (2, 3), rng=np.random.RandomState(0))
