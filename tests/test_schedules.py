"""Beta schedules and DDIM timestep subsequences, checked against the papers' definitions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.schedules import SCHEDULES, ddim_timesteps, make_beta_schedule, validate_betas


def test_linear_T1000_is_exactly_ddpm():
    """DDPM sec. 4: betas increase linearly from 1e-4 to 0.02 over T = 1000 steps."""
    betas = make_beta_schedule("linear", 1000)
    assert betas.dtype == np.float64 and betas.shape == (1000,)
    np.testing.assert_array_equal(betas, np.linspace(1e-4, 0.02, 1000))


@given(st.integers(21, 4000))
def test_linear_other_T_scales_both_ends_by_1000_over_T(T):
    betas = make_beta_schedule("linear", T)
    assert math.isclose(betas[0] * T, 0.1, rel_tol=1e-12)
    assert math.isclose(betas[-1] * T, 20.0, rel_tol=1e-12)
    if T > 2:
        steps = np.diff(betas)
        np.testing.assert_allclose(steps, steps[0], rtol=1e-9)


def _cosine_f(tau: float, s: float = 0.008) -> float:
    return math.cos((tau + s) / (1 + s) * math.pi / 2) ** 2


@given(st.integers(1, 2000))
def test_cosine_cumprod_is_eq17(T):
    """Improved DDPM eq. 17: alpha_bar_t = f(t/T) / f(0); betas are clipped at 0.999, so the
    identity holds up to the first clipped beta."""
    betas = make_beta_schedule("cosine", T)
    assert betas.max() <= 0.999
    clipped = np.flatnonzero(betas >= 0.999)
    stop = int(clipped[0]) if clipped.size else T
    alpha_bar = 1.0
    for t in range(stop):  # code index t is the paper's t + 1
        alpha_bar *= 1.0 - betas[t]
        assert math.isclose(alpha_bar, _cosine_f((t + 1) / T) / _cosine_f(0.0), rel_tol=1e-9)
    assert T < 2 or betas[-1] == 0.999  # f(1) = cos^2(pi/2) ~ 0 makes the last ratio singular


@given(st.integers(21, 2000))
def test_quadratic_is_linear_in_sqrt_beta(T):
    root = np.sqrt(make_beta_schedule("quadratic", T))
    assert math.isclose(root[0], math.sqrt(0.1 / T), rel_tol=1e-12)
    assert math.isclose(root[-1], math.sqrt(20.0 / T), rel_tol=1e-12)
    if T > 2:
        np.testing.assert_allclose(np.diff(root), root[1] - root[0], rtol=1e-8)


@given(st.integers(21, 2000))
def test_sigmoid_is_point_symmetric_between_the_linear_ends(T):
    """sigmoid(-x) = 1 - sigmoid(x): beta_t + beta_{T-1-t} equals the sum of the two ends."""
    betas = make_beta_schedule("sigmoid", T)
    start, end = 0.1 / T, 20.0 / T
    np.testing.assert_allclose(betas + betas[::-1], start + end, rtol=1e-12)
    assert start < betas[0] and betas[-1] < end


@given(st.sampled_from(SCHEDULES), st.integers(21, 2000))
def test_every_named_schedule_is_valid_and_increasing(name, T):
    betas = make_beta_schedule(name, T)
    assert betas.shape == (T,) and betas.dtype == np.float64
    assert np.all((betas > 0) & (betas < 1))
    assert np.all(np.diff(betas) >= 0)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        make_beta_schedule("cosin", 1000)
    for name in SCHEDULES:
        assert name in str(info.value)


@pytest.mark.parametrize("name", ["linear", "quadratic"])
def test_too_few_steps_for_the_scaled_linear_ends_is_an_error(name):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        make_beta_schedule(name, 10)  # beta_end = 100 * 0.02 = 2


@pytest.mark.parametrize("T", [0, -3, 2.5, True])
def test_bad_number_of_steps(T):
    with pytest.raises(ValueError, match="num_timesteps"):
        make_beta_schedule("linear", T)


@pytest.mark.parametrize("betas", [[0.1, 0.0], [0.5, 1.0], [-0.1], [np.nan], [[0.1, 0.2]], []])
def test_validate_betas_rejects(betas):
    with pytest.raises(ValueError):
        validate_betas(np.array(betas, dtype=np.float64))


@given(st.integers(1, 3000).flatmap(lambda T: st.tuples(st.just(T), st.integers(1, T))))
def test_ddim_timesteps_are_evenly_spread_and_end_at_both_ends(T_steps):
    T, steps = T_steps
    seq = ddim_timesteps(T, steps)
    assert seq.dtype == np.int64 and seq.shape == (steps,)
    assert seq[-1] == T - 1          # the chain starts from pure noise at the last timestep
    assert steps == 1 or seq[0] == 0  # ... and its last step is 0 -> -1 (alpha_bar = 1)
    gaps = np.diff(seq)
    assert np.all(gaps >= 1)
    if steps > 1:
        assert gaps.max() - gaps.min() <= 1  # even up to rounding, never a fixed stride that overshoots
        exact = np.linspace(0, T - 1, steps)
        assert np.abs(seq - exact).max() <= 0.5


def test_ddim_timesteps_full_and_small_examples():
    np.testing.assert_array_equal(ddim_timesteps(10, 10), np.arange(10))
    np.testing.assert_array_equal(ddim_timesteps(1000, 5), [0, 250, 500, 749, 999])
    np.testing.assert_array_equal(ddim_timesteps(1000, 1), [999])


@pytest.mark.parametrize("steps", [0, 11])
def test_ddim_timesteps_rejects_bad_step_counts(steps):
    with pytest.raises(ValueError, match="1..10"):
        ddim_timesteps(10, steps)
