"""How Algorithm 1 draws t: EDM's log-normal noise levels on DDPM's grid, and its wiring.

The distribution is checked against its closed form, P(t <= k) = Phi((ln sigma_k - mean) / std),
with sigma_k computed from the betas by the reference product (tests/test_diffusion_reference.py)
and Phi by math.erf: an independent path to the same numbers. The Dvoretzky-Kiefer-Wolfowitz
inequality bounds the empirical CDF's distance to the true one: with N draws,
P(sup |F_N - F| > e) <= 2 exp(-2 N e^2), so e = sqrt(ln(2 / 1e-9) / (2 N)) fails once in 1e9.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from test_diffusion_reference import ref_alpha_bar
from tinydiff.losses import sample_timesteps_lognormal
from tinydiff.run import TrainConfig
from tinydiff.schedules import make_beta_schedule
from tinydiff.train import Trainer

N = 100_000
DKW = math.sqrt(math.log(2 / 1e-9) / (2 * N))


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@pytest.mark.parametrize("schedule, T, mean, std", [
    ("linear", 1000, -1.2, 1.2),      # EDM's P_mean, P_std
    ("cosine", 1000, -1.2, 1.2),
    ("linear", 50, 0.0, 2.0),         # a coarse grid, wide spread: both ends of the grid hit
    ("linear", 1000, 4.5, 1.0),       # a third of the draws lie above sigma_{T-1}: all at T - 1
])
def test_lognormal_timesteps_have_the_closed_form_cdf(schedule, T, mean, std):
    betas = make_beta_schedule(schedule, T)
    alpha_bar = ref_alpha_bar(betas)
    sigma = [math.sqrt((1.0 - a) / a) for a in alpha_bar]
    t = sample_timesteps_lognormal(np.random.default_rng(7), N, np.log(sigma), mean, std)
    assert t.dtype == np.int64 and t.shape == (N,)
    assert t.min() >= 0 and t.max() <= T - 1
    counts = np.bincount(t, minlength=T)
    empirical = np.cumsum(counts) / N
    for k in range(T - 1):
        expected = _phi((math.log(sigma[k]) - mean) / std)
        assert abs(empirical[k] - expected) < DKW, (k, empirical[k], expected)
    assert empirical[T - 1] == 1.0


def test_lognormal_timesteps_refuse_a_bad_spread():
    log_sigmas = np.log(np.arange(1.0, 51.0))
    for mean, std in ((0.0, 0.0), (0.0, -1.0), (math.nan, 1.0), (0.0, math.inf)):
        with pytest.raises(ValueError, match="sample_timesteps_lognormal: expected a finite mean"):
            sample_timesteps_lognormal(np.random.default_rng(0), 4, log_sigmas, mean, std)


@pytest.mark.parametrize("field, value, valid", [
    ("t_sampling", "edm", "expected one of uniform, lognormal"),
    ("lognormal_std", 0.0, "expected a finite number > 0"),
    ("lognormal_std", math.inf, "expected a finite number > 0"),
    ("lognormal_mean", math.nan, "expected a finite number"),
])
def test_config_names_a_bad_t_sampling(field, value, valid):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}=.* is invalid: {valid}"):
        TrainConfig.toy2d("moons", **{field: value})


def _drawn_timesteps(tmp_path, **overrides) -> np.ndarray:
    cfg = TrainConfig.toy2d("moons", out_dir=str(tmp_path), progress=False, batch_size=4000,
                            **overrides)
    trainer = Trainer(cfg)
    return np.concatenate([trainer._draw()[1] for _ in range(5)])


def test_the_trainer_draws_t_as_configured(tmp_path):
    """Uniform t has median ~ (T - 1) / 2; lognormal(-1.2, 1.2) on the linear schedule has median
    at the first t with sigma_t >= exp(-1.2) (88), and a share above t = 500 of
    1 - Phi((ln sigma_500 + 1.2) / 1.2) (about 2%)."""
    uniform = _drawn_timesteps(tmp_path / "u", t_sampling="uniform")
    assert abs(np.median(uniform) - 499.5) < 15
    lognormal = _drawn_timesteps(tmp_path / "l", t_sampling="lognormal", lognormal_mean=-1.2,
                                 lognormal_std=1.2)
    alpha_bar = ref_alpha_bar(make_beta_schedule("linear", 1000))
    sigma = np.sqrt((1.0 - np.asarray(alpha_bar)) / np.asarray(alpha_bar))
    assert abs(np.median(lognormal) - np.searchsorted(sigma, math.exp(-1.2))) <= 2
    above = 1.0 - _phi((math.log(sigma[500]) + 1.2) / 1.2)
    assert abs(np.mean(lognormal > 500) - above) < 5 * math.sqrt(above / len(lognormal))
    shifted = _drawn_timesteps(tmp_path / "s", t_sampling="lognormal", lognormal_mean=0.5,
                               lognormal_std=1.2)
    assert np.median(shifted) > np.median(lognormal) + 100


def test_a_lognormal_run_resumes_bit_for_bit(tmp_path):
    from test_train import losses, tiny_config
    whole = losses(Trainer(tiny_config(tmp_path / "whole", t_sampling="lognormal")).train())
    first = Trainer(tiny_config(tmp_path / "split", t_sampling="lognormal"))
    part1 = losses(first.train(steps=10))
    part2 = losses(Trainer.resume(tmp_path / "split").train())
    assert part1 + part2 == whole
    uniform = losses(Trainer(tiny_config(tmp_path / "uniform")).train())
    assert uniform != whole  # the option changed the run
