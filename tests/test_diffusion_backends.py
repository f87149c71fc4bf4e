"""Every public operation keeps the backend (NumPy / CuPy) and dtype (float32 / float64) of its inputs,
and agrees with the float64 NumPy result. CuPy cases run only where a GPU exists (``xp`` fixture)."""
from __future__ import annotations

import numpy as np
import pytest

from autograd.backend import get_array_module, to_numpy
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.losses import mean_flat, sample_timesteps, simple_loss
from tinydiff.schedules import make_beta_schedule
from tinydiff.vlb import discretized_gaussian_log_likelihood, normal_kl, standard_normal_cdf

T = 100
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(make_beta_schedule("linear", T))


def _inputs(xp, dtype):
    rng = np.random.default_rng(0)
    host = {name: rng.standard_normal((4, 3, 2)) for name in ("x0", "xt", "eps", "noise", "v")}
    host["x0"] = np.round((np.clip(host["x0"], -1, 1) + 1) * 127.5) / 127.5 - 1  # 8-bit levels
    host["eps"] = host["noise"] + 0.05 * host["eps"]  # a decent model: the decoder is not in a far tail
    t = np.array([0, 1, 57, T - 1])
    return host, {k: xp.asarray(v.astype(dtype)) for k, v in host.items()}, t


def _same(result, expected, xp, dtype):
    assert get_array_module(result) is xp, f"result moved to {get_array_module(result).__name__}"
    assert result.dtype == dtype, f"dtype {result.dtype}, expected {np.dtype(dtype)}"
    rtol = 2e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(to_numpy(result), expected, rtol=rtol, atol=rtol * 10)


CALLS = {
    "q_sample": lambda d, a, t: d.q_sample(a["x0"], t, a["noise"]),
    "q_mean_variance": lambda d, a, t: d.q_mean_variance(a["x0"], t),
    "q_posterior_mean_variance": lambda d, a, t: d.q_posterior_mean_variance(a["x0"], a["xt"], t),
    "predict_x0_from_eps": lambda d, a, t: d.predict_x0_from_eps(a["xt"], t, a["eps"]),
    "predict_eps_from_x0": lambda d, a, t: d.predict_eps_from_x0(a["xt"], t, a["x0"]),
    "get_v": lambda d, a, t: d.get_v(a["x0"], a["eps"], t),
    "predict_x0_from_v": lambda d, a, t: d.predict_x0_from_v(a["xt"], t, a["v"]),
    "predict_eps_from_v": lambda d, a, t: d.predict_eps_from_v(a["xt"], t, a["v"]),
    "training_targets": lambda d, a, t: d.training_targets(a["x0"], t, a["noise"], "v"),
    "p_sample_step": lambda d, a, t: d.p_sample_step(a["eps"], a["xt"], t, a["noise"]),
    "p_sample_step_clipped": lambda d, a, t: d.p_sample_step(a["eps"], a["xt"], t, a["noise"],
                                                             "fixed_small", clip_x0=True),
    "ddim_step": lambda d, a, t: d.ddim_step(a["eps"], a["xt"], t, 0),
    "vb_terms_bpd": lambda d, a, t: d.vb_terms_bpd(a["eps"], a["x0"], d.q_sample(a["x0"], t, a["noise"]), t),
    "prior_bpd": lambda d, a, t: d.prior_bpd(a["x0"]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t_kind", ["int", "host array", "backend array"])
@pytest.mark.parametrize("name", list(CALLS))
def test_public_operations(xp, dtype, t_kind, name, diffusion):
    host, dev, t_host = _inputs(xp, dtype)
    if name == "ddim_step":
        t_host = t_host[1:].repeat([2, 1, 1])  # t > t_prev = 0 for the (default) eta = 0 step
    t_dev = {"int": 57, "host array": t_host, "backend array": xp.asarray(t_host)}[t_kind]
    got = CALLS[name](diffusion, dev, t_dev)
    expected = CALLS[name](diffusion, host, 57 if t_kind == "int" else t_host)
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    for g, e in zip(got, expected):
        _same(g, e, xp, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ddim_step_with_eta_and_t_prev_minus1(xp, dtype, diffusion):
    host, dev, t = _inputs(xp, dtype)
    t_prev = t - 1  # includes -1: alpha_bar_prev = 1
    got = diffusion.ddim_step(dev["eps"], dev["xt"], xp.asarray(t), xp.asarray(t_prev), 0.7, dev["noise"])
    _same(got, diffusion.ddim_step(host["eps"], host["xt"], t, t_prev, 0.7, host["noise"]), xp, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vlb_helpers_and_losses(xp, dtype):
    host, dev, _ = _inputs(xp, dtype)
    _same(normal_kl(dev["x0"], dev["xt"], dev["eps"], dev["v"]),
          normal_kl(host["x0"], host["xt"], host["eps"], host["v"]), xp, dtype)
    _same(standard_normal_cdf(dev["xt"]), standard_normal_cdf(host["xt"]), xp, dtype)
    means = host["x0"] + 0.01 * host["v"]
    log_scales = np.full_like(means, -4.0)
    got = discretized_gaussian_log_likelihood(dev["x0"], xp.asarray(means.astype(dtype)),
                                              xp.asarray(log_scales.astype(dtype)))
    assert get_array_module(got) is xp and got.dtype == dtype
    expected = discretized_gaussian_log_likelihood(host["x0"], means, log_scales)
    np.testing.assert_allclose(to_numpy(got), expected,
                               rtol=1e-3 if dtype == np.float32 else 1e-10)
    _same(mean_flat(dev["x0"]), mean_flat(host["x0"]), xp, dtype)
    _same(simple_loss(dev["eps"], dev["noise"]), simple_loss(host["eps"], host["noise"]), xp, dtype)
    t = sample_timesteps(xp.random.default_rng(0), 16, T)
    assert get_array_module(t) is xp and int(t.min()) >= 0 and int(t.max()) < T


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_and_bpd_loop_stay_on_the_backend(xp, dtype, sampler, diffusion):
    def model(x, t):
        assert get_array_module(x, t) is xp and x.dtype == dtype
        return 0.5 * x

    out, traj = diffusion.sample(model, (3, 2), sampler, steps=None if sampler == "ddpm" else 10,
                                 eta=0.5 if sampler == "ddim" else 0.0, rng=xp.random.default_rng(0),
                                 dtype=dtype, return_trajectory=True)
    assert get_array_module(out) is xp and out.dtype == dtype
    assert all(get_array_module(x) is xp and x.dtype == dtype for x in traj)
    x0 = xp.asarray(np.linspace(-1, 1, 6).reshape(3, 2).astype(dtype))
    bpd = diffusion.calc_bpd_loop(model, x0, rng=xp.random.default_rng(0))
    for key, value in bpd.items():
        assert get_array_module(value) is xp and value.dtype == dtype, key
    assert bool(xp.all(xp.isfinite(bpd["total_bpd"])))
