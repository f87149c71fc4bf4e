"""eps / x0 / v conversions (DDPM eq. 4 solved each way; Salimans & Ho 2022) and training targets."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from test_diffusion_reference import batch_shapes, beta_schedules, dtypes, ref_alpha_bar, seeds
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.losses import mean_flat, sample_timesteps, simple_loss


def _draw(betas, shape, dtype, seed):
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(shape).astype(dtype)
    eps = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, len(betas), size=shape[0])
    return d, x0, eps, t


def _close(actual, expected, dtype, condition):
    """Float round trips: relative error ~ a few ulps times the conversion's condition number,
    ``condition`` (broadcast per row), e.g. 1 / sqrt(alpha_bar_t) when x_0 is recovered from x_t."""
    ulp = np.finfo(dtype).eps
    scale = 1.0 + np.abs(expected).max()
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = 64 * ulp * scale * condition.reshape((-1,) + (1,) * (actual.ndim - 1))
    assert np.all(err <= bound), f"max error {err.max():.3g}, bound {bound.min():.3g}"


@given(beta_schedules(), batch_shapes, dtypes, seeds)
# Found by hypothesis: alpha_bar within 1e-6 of 1, where 1/a - 1 lost 1e-10 relative to the 1 - a of q_sample.
@example(betas=np.array([1e-6]), shape=(1,), dtype=np.float64, seed=9229)
def test_round_trips_through_x0_eps_and_v(betas, shape, dtype, seed):
    d, x0, eps, t = _draw(betas, shape, dtype, seed)
    ab = np.array(ref_alpha_bar(betas))[t]
    xt = d.q_sample(x0, t, eps)
    # x0 <- eps divides by sqrt(alpha_bar), eps <- x0 by sqrt(1 - alpha_bar): their conditioning.
    c_x0, c_eps = 1 / np.sqrt(ab), 1 / np.sqrt(1 - ab)
    _close(d.predict_x0_from_eps(xt, t, eps), x0, dtype, c_x0)
    _close(d.predict_eps_from_x0(xt, t, x0), eps, dtype, c_eps)
    _close(d.predict_eps_from_x0(xt, t, d.predict_x0_from_eps(xt, t, eps)), eps, dtype, c_x0 * c_eps)
    v = d.get_v(x0, eps, t)
    # v is a rotation of (x0, eps) by the angle phi with cos(phi) = sqrt(alpha_bar): well conditioned.
    _close(d.predict_x0_from_v(xt, t, v), x0, dtype, np.ones_like(ab))
    _close(d.predict_eps_from_v(xt, t, v), eps, dtype, np.ones_like(ab))
    assert d.predict_v(x0, eps, t).dtype == dtype


@given(beta_schedules(), batch_shapes, seeds)
def test_v_is_the_angular_velocity(betas, shape, seed):
    """With x_t = cos(phi) x_0 + sin(phi) eps, v = d x_t / d phi = cos(phi) eps - sin(phi) x_0
    (Salimans & Ho 2022, sec. 4); here phi = arccos(sqrt(alpha_bar_t)) from the composed betas."""
    d, x0, eps, t = _draw(betas, shape, np.float64, seed)
    phi = np.arccos(np.sqrt(np.array(ref_alpha_bar(betas))[t])).reshape((-1,) + (1,) * (len(shape) - 1))
    expected = np.cos(phi) * eps - np.sin(phi) * x0
    np.testing.assert_allclose(d.get_v(x0, eps, t), expected, rtol=1e-8, atol=1e-8)


@given(beta_schedules(), batch_shapes, seeds)
def test_loss_scales_between_parameterizations(betas, shape, seed):
    """For a fixed x_t, an error delta in eps is an error -sqrt((1-ab)/ab) delta in x_0 and
    delta / sqrt(ab) in v, so the three simple losses differ by the factors (1-ab)/ab and 1/ab
    (the SNR weighting of Salimans & Ho 2022, sec. 4)."""
    d, x0, eps, t = _draw(betas, shape, np.float64, seed)
    ab = np.array(ref_alpha_bar(betas))[t]
    eps_hat = eps + 0.1 * np.random.default_rng(seed + 1).standard_normal(shape)
    losses = {}
    for p in ("eps", "x0", "v"):
        xt, target = d.training_targets(x0, t, eps, p)
        np.testing.assert_array_equal(xt, d.q_sample(x0, t, eps))
        output = {"eps": eps_hat, "x0": d.predict_x0_from_eps(xt, t, eps_hat),
                  "v": d.get_v(d.predict_x0_from_eps(xt, t, eps_hat), eps_hat, t)}[p]
        losses[p] = simple_loss(output, target)
        np.testing.assert_allclose(d.eps_from_model_output(output, xt, t, p), eps_hat,
                                   rtol=1e-6, atol=1e-6 / np.sqrt(ab).min())
    tol = dict(rtol=1e-6, atol=1e-9 / ab.min())
    np.testing.assert_allclose(losses["x0"], (1 - ab) / ab * losses["eps"], **tol)
    np.testing.assert_allclose(losses["v"], losses["eps"] / ab, **tol)


def test_training_targets_select_the_right_quantity():
    d = GaussianDiffusion(np.linspace(1e-3, 0.2, 20))
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 3, 4))
    t = np.array([0, 7, 19])
    assert d.training_targets(x0, t, eps, "eps")[1] is eps
    assert d.training_targets(x0, t, eps, "x0")[1] is x0
    np.testing.assert_array_equal(d.training_targets(x0, t, eps, "v")[1], d.get_v(x0, eps, t))
    with pytest.raises(ValueError, match="eps, x0, v"):
        d.training_targets(x0, t, eps, "score")


def test_mean_flat_and_simple_loss():
    x = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(mean_flat(x), [5.5, 17.5])
    np.testing.assert_array_equal(mean_flat(np.array([1.0, 2.0])), [1.0, 2.0])
    out = np.zeros((2, 3), dtype=np.float32)
    target = np.array([[1, 2, 2], [0, 0, 3]], dtype=np.float32)
    loss = simple_loss(out, target)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss, [3.0, 3.0])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        simple_loss(out, target.T)


@given(st.integers(1, 1000), seeds)
def test_sample_timesteps_cover_0_to_T_minus_1(T, seed):
    t = sample_timesteps(np.random.default_rng(seed), 4096, T)
    assert t.dtype == np.int64 and t.shape == (4096,)
    assert t.min() >= 0 and t.max() <= T - 1
    if T <= 8:  # 4096 draws hit every value with overwhelming probability
        assert set(t.tolist()) == set(range(T))


def test_uniform_timestep_mean_is_algorithm1_uniform():
    """t ~ Uniform{0..T-1}: mean (T-1)/2 within 5 standard errors sqrt((T^2-1)/12 / N)."""
    T, N = 1000, 100_000
    t = sample_timesteps(np.random.default_rng(1), N, T)
    assert abs(t.mean() - (T - 1) / 2) < 5 * math.sqrt((T * T - 1) / 12 / N)
