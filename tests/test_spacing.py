"""``spaced_timesteps``: diffusers' leading / trailing / linspace lists, checked against exact
rational arithmetic (an independent derivation) and pinned examples from Lin et al. 2024 and
diffusers issue #2585; DDIM walks the same list."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import DEFAULT_SPACING, SPACINGS, ddim_timesteps, make_beta_schedule, spaced_timesteps


def exact_grid(T: int, n: int, spacing: str) -> list[Fraction]:
    """The real-valued timesteps each spacing rounds (diffusers' definitions, in exact arithmetic)."""
    if spacing == "linspace":
        return [Fraction(T - 1) * i / (n - 1) for i in range(n - 1, -1, -1)]
    if spacing == "leading":
        return [Fraction(i * (T // n)) for i in range(n - 1, -1, -1)]
    return [Fraction(T) - Fraction(T) * i / n - 1 for i in range(n)]


T_AND_STEPS = st.integers(2, 3000).flatmap(lambda T: st.tuples(st.just(T), st.integers(2, T)))


@given(T_AND_STEPS, st.sampled_from(SPACINGS))
def test_each_entry_is_the_exact_grid_value_rounded(T_steps, spacing):
    T, n = T_steps
    seq = spaced_timesteps(T, n, spacing)
    assert seq.dtype == np.int64 and seq.shape == (n,)
    assert np.all(np.diff(seq) < 0) and seq[-1] >= 0 and seq[0] <= T - 1
    for got, exact in zip(seq.tolist(), exact_grid(T, n, spacing)):
        if exact.denominator == 2:  # a tie: float rounding error decides, in diffusers too
            assert abs(got - exact) == Fraction(1, 2)
        else:
            assert got == round(exact)


def test_pinned_lists():
    # Lin et al. 2024 (arXiv 2305.08891) Table 2, T = 1000, 10 steps, shifted to 0-indexed timesteps
    np.testing.assert_array_equal(spaced_timesteps(1000, 10, "linspace"),
                                  [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
    np.testing.assert_array_equal(spaced_timesteps(1000, 10, "leading"), np.arange(900, -1, -100))
    np.testing.assert_array_equal(spaced_timesteps(1000, 10, "trailing"), np.arange(999, 98, -100))
    # diffusers #2585: 50 leading steps start at 980, not at the last timestep 999
    assert spaced_timesteps(1000, 50, "leading")[0] == 980
    assert spaced_timesteps(1000, 50, "trailing")[0] == spaced_timesteps(1000, 50, "linspace")[0] == 999
    # diffusers' float arange makes 62 entries here, the last -1; the list has exactly 61
    seq = spaced_timesteps(1000, 61, "trailing")
    assert len(seq) == 61 and seq[-1] == 15
    # the whole grid, and one step from pure noise
    for spacing in SPACINGS:
        np.testing.assert_array_equal(spaced_timesteps(7, 7, spacing), np.arange(6, -1, -1))
        np.testing.assert_array_equal(spaced_timesteps(1000, 1, spacing), [999])


@pytest.mark.parametrize("bad", [0, 11, -1, 2.0, True])
def test_bad_step_counts(bad):
    with pytest.raises(ValueError, match="1..10"):
        spaced_timesteps(10, bad, "trailing")


def test_unknown_spacing():
    with pytest.raises(ValueError, match="leading, trailing, linspace"):
        spaced_timesteps(10, 3, "uniform")


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddim_walks_the_same_list(spacing):
    T = 50
    d = GaussianDiffusion(make_beta_schedule("cosine", T))
    seen = []

    def spy(x, t):
        seen.append(int(t[0]))
        return np.zeros_like(x)

    d.sample(spy, (2, 3), sampler="ddim", steps=7, spacing=spacing, x_T=np.ones((2, 3)))
    assert seen == spaced_timesteps(T, 7, spacing).tolist()
    np.testing.assert_array_equal(ddim_timesteps(T, 7, spacing), spaced_timesteps(T, 7, spacing)[::-1])


def test_default_spacing_keeps_the_old_ddim_list():
    # the list DDIM used before spacings existed: floor(linspace(0, T-1, n) + 1/2) (round half up)
    assert DEFAULT_SPACING == "linspace"
    for n in (2, 5, 10, 20, 50, 100, 200, 1000):
        old = np.floor(np.linspace(0, 999, n) + 0.5).astype(np.int64)
        np.testing.assert_array_equal(ddim_timesteps(1000, n), old)
