"""Reverse steps (DDPM Algorithm 2, DDIM eq. 12) and the full-chain samplers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_diffusion_reference import (batch_shapes, beta_schedules, dtypes, gaussian_oracle,
                                      ref_alpha_bar, ref_posterior, seeds, tolerance)
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import ddim_timesteps, make_beta_schedule

variances = st.sampled_from(["fixed_large", "fixed_small"])


def _setup(betas, shape, dtype, seed, t0=None):
    d = GaussianDiffusion(betas)
    rng = np.random.default_rng(seed)
    xt, eps, z = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    t = rng.integers(0, len(betas), size=shape[0])
    t[0] = 0 if t0 is None else t0  # always exercise the last step
    return d, xt, eps, z, t


def _rows(x):
    return (-1,) + (1,) * (x.ndim - 1)


def point_mass_oracle(alpha_bar, x_star):
    """Data = a point mass at x_star: then eps given x_t is exactly (x_t - sqrt(ab) x_star) / sqrt(1 - ab)."""
    alpha_bar = np.asarray(alpha_bar)

    def model_fn(x, t):
        ab = alpha_bar[t].reshape(_rows(x))
        return ((x - np.sqrt(ab) * x_star) / np.sqrt(1 - ab)).astype(x.dtype)

    return model_fn


@given(beta_schedules(), batch_shapes, dtypes, seeds, variances)
def test_p_sample_step_is_algorithm2_line4(betas, shape, dtype, seed, variance):
    """x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z, z only for
    t > 0 (code index; the paper's t > 1), sigma_t^2 = beta_t or Bayes' posterior variance."""
    d, xt, eps, z, t = _setup(betas, shape, dtype, seed)
    ab = ref_alpha_bar(betas)
    out = d.p_sample_step(eps, xt, t, z, variance=variance)
    assert out.dtype == dtype and out.shape == shape
    for i in range(shape[0]):
        ti = int(t[i])
        alpha = 1 - betas[ti]
        sigma2 = betas[ti] if variance == "fixed_large" else ref_posterior(betas, ti, 0.0, 0.0)[1]
        noise = math.sqrt(sigma2) * z[i] if ti > 0 else 0.0
        x64, e64 = xt[i].astype(np.float64), eps[i].astype(np.float64)
        expected = (x64 - (1 - alpha) / math.sqrt(1 - ab[ti]) * e64) / math.sqrt(alpha) + noise
        np.testing.assert_allclose(out[i], expected, rtol=10 * tolerance(dtype), atol=10 * tolerance(dtype))


@given(beta_schedules(), batch_shapes, dtypes, seeds)
def test_fixed_small_step_is_the_posterior_around_the_predicted_x0(betas, shape, dtype, seed):
    """DDPM sec. 3.2: p(x_{t-1}|x_t) = q(x_{t-1} | x_t, x0_hat), x0_hat from eq. 15, sigma^2 = beta_tilde."""
    d, xt, eps, z, t = _setup(betas, shape, dtype, seed)
    x0_hat = d.predict_x0_from_eps(xt, t, eps)
    mean, var = d.q_posterior_mean_variance(x0_hat, xt, t)
    via_posterior = mean + np.sqrt(var) * z  # var = 0 at t = 0: no noise there either
    step = d.p_sample_step(eps, xt, t, z, variance="fixed_small")
    # x0_hat divides by sqrt(alpha_bar) before the posterior multiplies it back: its conditioning;
    # tolerance() covers the cancellation in 1 - alpha_bar for small betas.
    cond = 1 / np.sqrt(d.alphas_cumprod[t]).reshape(_rows(xt))
    tol = tolerance(dtype) * cond * (1 + np.abs(xt) + np.abs(eps) + np.abs(z))
    assert np.all(np.abs(step.astype(np.float64) - via_posterior) <= tol)


@given(beta_schedules(), seeds, variances, st.booleans())
def test_last_step_adds_no_noise(betas, seed, variance, clip):
    """Algorithm 2 line 3: z = 0 when t = 1 (code t = 0), for int and array t alike; rows with t > 0
    in the same batch still get their noise."""
    d, xt, eps, z, t = _setup(betas, (4, 3), np.float64, seed)
    mean = d.p_sample_step(eps, xt, 0, None, variance=variance, clip_x0=clip)
    np.testing.assert_array_equal(d.p_sample_step(eps, xt, 0, z, variance=variance, clip_x0=clip), mean)
    t = np.array([0, 0, len(betas) - 1, 0])
    out = d.p_sample_step(eps, xt, t, z, variance=variance, clip_x0=clip)
    np.testing.assert_array_equal(out[[0, 1, 3]], mean[[0, 1, 3]])
    if len(betas) > 1:
        assert not np.allclose(out[2], d.p_sample_step(eps, xt, t, None, variance=variance, clip_x0=clip)[2])


@given(beta_schedules(), seeds)
def test_clip_x0_uses_the_clipped_prediction(betas, seed):
    d, xt, eps, z, t = _setup(betas, (5, 2), np.float64, seed)
    x0_hat = np.clip(d.predict_x0_from_eps(xt, t, eps), -1, 1)
    mean, _ = d.q_posterior_mean_variance(x0_hat, xt, t)
    np.testing.assert_allclose(d.p_sample_step(eps, xt, t, None, clip_x0=True), mean, rtol=1e-12, atol=1e-12)


@given(beta_schedules(), batch_shapes, dtypes, seeds, st.floats(0, 1), st.data())
def test_ddim_step_is_eq12(betas, shape, dtype, seed, eta, data):
    """DDIM eq. 12 written out with alpha_bar from the composed betas (alpha_bar_{-1} = 1):
    sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps + sigma z,
    sigma^2 = eta^2 (1 - a_prev) / (1 - a_t) (1 - a_t / a_prev)  (eq. 16)."""
    d, xt, eps, z, _ = _setup(betas, shape, dtype, seed)
    T = len(betas)
    t = data.draw(st.integers(0, T - 1))
    t_prev = data.draw(st.integers(-1, t - 1))
    a = [1.0] + ref_alpha_bar(betas)  # a[k + 1] is alpha_bar at code index k
    a_t, a_prev = a[t + 1], a[t_prev + 1]
    x64, e64 = xt.astype(np.float64), eps.astype(np.float64)
    x0_hat = (x64 - math.sqrt(1 - a_t) * e64) / math.sqrt(a_t)
    sigma2 = eta ** 2 * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    expected = (math.sqrt(a_prev) * x0_hat + math.sqrt(max(1 - a_prev - sigma2, 0.0)) * e64
                + math.sqrt(sigma2) * z)
    out = d.ddim_step(eps, xt, t, t_prev, eta=eta, noise=z)
    assert out.dtype == dtype
    cond = math.sqrt(a_prev / a_t)  # x0_hat's 1/sqrt(a_t), scaled back by sqrt(a_prev)
    np.testing.assert_allclose(out, expected, rtol=10 * tolerance(dtype) * cond,
                               atol=10 * tolerance(dtype) * (1 + cond))


@given(beta_schedules(), seeds)
def test_ddim_eta0_ignores_noise(betas, seed):
    d, xt, eps, z, t = _setup(betas, (3, 4), np.float64, seed)
    t_prev = t - 1
    np.testing.assert_array_equal(d.ddim_step(eps, xt, t, t_prev, 0.0, z), d.ddim_step(eps, xt, t, t_prev))


@given(beta_schedules(), batch_shapes, seeds)
def test_ddim_eta1_with_every_step_is_ddpm_fixed_small(betas, shape, seed):
    """DDIM sec. 4.1: eta = 1 over t -> t-1 makes sigma^2 = beta_tilde_t and the mean the posterior
    mean, i.e. DDPM's ancestral step with sigma^2 = beta_tilde (including the last step, t_prev = -1)."""
    d, xt, eps, z, t = _setup(betas, shape, np.float64, seed)
    ddim = d.ddim_step(eps, xt, t, t - 1, eta=1.0, noise=z)
    ddpm = d.p_sample_step(eps, xt, t, z, variance="fixed_small")
    cond = 1 / np.sqrt(d.alphas_cumprod[t]).reshape(_rows(xt))
    scale = 1 + np.abs(xt) + np.abs(eps) + np.abs(z)
    assert np.all(np.abs(ddim - ddpm) <= tolerance(np.float64) * cond * scale)
    # and the noise scale alone: switching the noise on adds exactly sigma z with sigma^2 = beta_tilde_t
    added = d.ddim_step(eps, xt, t, t - 1, 1.0, z) - d.ddim_step(eps, xt, t, t - 1, 1.0, 0 * z)
    expected = np.sqrt(d.posterior_variance[t]).reshape(_rows(xt)) * z
    np.testing.assert_allclose(added, expected, rtol=1e-6, atol=1e-12 * cond.max() * (1 + np.abs(xt).max()))


@given(beta_schedules(), seeds, st.data())
def test_ddim_ode_step_inverts_exactly_with_the_same_eps(betas, seed, data):
    """Eta = 0 maps (x0_hat, eps) -> x_prev linearly and keeps both, so stepping t -> s and back
    s -> t with the same eps returns x_t (DDIM sec. 4.3: the ODE can be encoded and decoded)."""
    T = len(betas)
    t, s = data.draw(st.integers(0, T - 1)), data.draw(st.integers(0, T - 1))
    d, xt, eps, _, _ = _setup(betas, (4, 3), np.float64, seed)
    back = d.ddim_step(eps, d.ddim_step(eps, xt, t, s), s, t)
    cond = math.sqrt(d.alphas_cumprod[max(t, s)] / d.alphas_cumprod[min(t, s)]) ** -1
    np.testing.assert_allclose(back, xt, rtol=1e-12 * cond, atol=1e-12 * cond)


def test_ddim_inversion_round_trip_error_shrinks_with_the_step():
    """Encode along the DDIM ODE (t -> t+k, eps evaluated at the start of each step, DDIM sec. 4.3)
    and decode back, with the exact eps of Gaussian data. The two directions evaluate eps at
    different points, so a round trip of one step errs by O(k^2) and a whole chain by O(k): halving
    k must divide the errors by about 4 and 2 (measured 0.25 and 0.50). With k = 1 from t = 100 the
    chain returns within 5.2e-3 (measured); 1e-2 leaves room."""
    betas = make_beta_schedule("linear", 1000)
    d = GaussianDiffusion(betas)
    oracle = gaussian_oracle(ref_alpha_bar(betas), 0.3, 0.5)
    rng = np.random.default_rng(0)
    start = d.q_sample(0.3 + 0.5 * rng.standard_normal(500), 100, rng.standard_normal(500))
    tb = lambda t: np.full(start.shape[0], t)  # noqa: E731

    def round_trip(seq):
        x = start
        for a, b in zip(seq, seq[1:]):
            x = d.ddim_step(oracle(x, tb(a)), x, a, b)
        for a, b in zip(seq[::-1], seq[::-1][1:]):
            x = d.ddim_step(oracle(x, tb(a)), x, a, b)
        return np.abs(x - start).max()

    single = [round_trip([100, 100 + k]) for k in (1, 2, 4)]
    chain = [round_trip(list(range(100, 1000, k))) for k in (1, 2, 4)]
    for small, big in zip(single, single[1:]):
        assert 0.2 < small / big < 0.3
    for small, big in zip(chain, chain[1:]):
        assert 0.45 < small / big < 0.55
    assert chain[0] < 1e-2 and single[0] < 1e-4


@pytest.mark.parametrize("sampler,steps,eta,variance", [
    ("ddpm", None, 0.0, "fixed_large"), ("ddpm", None, 0.0, "fixed_small"),
    ("ddim", None, 0.0, None), ("ddim", 7, 0.0, None), ("ddim", 1, 0.0, None), ("ddim", 30, 1.0, None)])
def test_point_mass_data_is_recovered_exactly(sampler, steps, eta, variance):
    """If the data are a single point x*, the exact eps makes every x0 prediction equal x*. The chain
    must then land exactly on x*: this fails if the last step adds noise, if DDIM's last step does not
    use alpha_bar_prev = 1 (t_prev = -1), or if any coefficient uses the wrong timestep."""
    betas = make_beta_schedule("cosine", 50)
    d = GaussianDiffusion(betas)
    x_star = np.array([0.7, -0.2, 0.1])
    oracle = point_mass_oracle(ref_alpha_bar(betas), x_star)
    kwargs = dict(variance=variance) if variance else {}
    out = d.sample(oracle, (6, 3), sampler=sampler, steps=steps, eta=eta, rng=np.random.default_rng(0),
                   **kwargs)
    np.testing.assert_allclose(out, np.broadcast_to(x_star, (6, 3)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sampler,steps", [("ddpm", None), ("ddim", 7)])
@pytest.mark.parametrize("parameterization", ["x0", "v"])
def test_point_mass_is_recovered_by_x0_and_v_models(sampler, steps, parameterization):
    """The same exact model predicting x_0 (always x*) or v = sqrt(ab) eps - sqrt(1 - ab) x*."""
    betas = make_beta_schedule("cosine", 50)
    d = GaussianDiffusion(betas)
    ab = np.array(ref_alpha_bar(betas))
    x_star = np.array([0.7, -0.2, 0.1])
    eps_model = point_mass_oracle(ab, x_star)

    def model(x, t):
        if parameterization == "x0":
            return np.broadcast_to(x_star, x.shape).copy()
        a = ab[t].reshape(_rows(x))
        return np.sqrt(a) * eps_model(x, t) - np.sqrt(1 - a) * x_star

    out = d.sample(model, (6, 3), sampler=sampler, steps=steps, rng=np.random.default_rng(0),
                   parameterization=parameterization)
    np.testing.assert_allclose(out, np.broadcast_to(x_star, (6, 3)), rtol=1e-9, atol=1e-9)


def test_samplers_visit_the_right_timesteps():
    T = 40
    d = GaussianDiffusion(make_beta_schedule("cosine", T))
    seen = []

    def spy(x, t):
        assert t.shape == (x.shape[0],) and t.dtype == np.int64 and np.all(t == t[0])
        seen.append(int(t[0]))
        return np.zeros_like(x)

    d.sample(spy, (2, 3), rng=np.random.default_rng(0))
    assert seen == list(range(T - 1, -1, -1))
    seen.clear()
    d.sample(spy, (2, 3), sampler="ddim", steps=6, rng=np.random.default_rng(0))
    assert seen == list(ddim_timesteps(T, 6))[::-1] and seen[0] == T - 1 and seen[-1] == 0
    seen.clear()
    d.sample(spy, (2, 3), sampler="ddim", timesteps=[3, 20, 39], rng=np.random.default_rng(0))
    assert seen == [39, 20, 3]


def test_sample_options():
    d = GaussianDiffusion(make_beta_schedule("linear", 30))
    zero = lambda x, t: np.zeros_like(x)  # noqa: E731
    x_T = np.random.default_rng(5).standard_normal((3, 2)).astype(np.float32)
    out, traj = d.sample(zero, (3, 2), "ddim", steps=5, rng=np.random.default_rng(0), x_T=x_T,
                         return_trajectory=True)
    assert out.dtype == np.float32 and len(traj) == 6 and traj[0] is x_T and traj[-1] is out
    # eta = 0 is deterministic: the generator does not matter once x_T is fixed
    again = d.sample(zero, (3, 2), "ddim", steps=5, rng=np.random.default_rng(1), x_T=x_T)
    np.testing.assert_array_equal(out, again)
    a = d.sample(zero, (3, 2), rng=np.random.default_rng(7), progress=True)
    b = d.sample(zero, (3, 2), rng=np.random.default_rng(7))
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)  # seeded: reproducible
    with pytest.raises(ValueError, match="all T=30"):
        d.sample(zero, (3, 2), "ddpm", steps=10)
    with pytest.raises(ValueError, match="ddpm, ddim"):
        d.sample(zero, (3, 2), "rk4")  # euler is one now (tinydiff.samplers)
    with pytest.raises(ValueError, match="strictly increasing"):
        d.sample(zero, (3, 2), "ddim", timesteps=[5, 5, 9])
    with pytest.raises(ValueError, match="x_T has shape"):
        d.sample(zero, (4, 2), x_T=x_T)
