"""The variational bound of DDPM (eq. 5) in bits per dimension, and the discretised decoder (sec. 3.3).

L = L_T + sum_{t>1} L_{t-1} + L_0 with
  L_T     = KL(q(x_T | x_0) || N(0, I))                       (the prior term; no parameters),
  L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))     (two Gaussians: closed form),
  L_0     = -log p(x_0 | x_1)                                 (a Gaussian discretised into pixel bins).
Dividing nats by D log 2 gives bits/dim, the unit of DDPM Table 1. Data are images scaled from
{0, ..., 255} to [-1, 1], so pixel bins have width 2/255.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from autograd.backend import get_array_module
from tinydiff.losses import mean_flat

Array = Any  # numpy.ndarray or cupy.ndarray

LOG2 = math.log(2.0)


def normal_kl(mean1: Array, logvar1: Array, mean2: Array, logvar2: Array) -> Array:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element, in nats:
    (1/2) (-1 + logvar2 - logvar1 + e^(logvar1 - logvar2) + (mean1 - mean2)^2 e^(-logvar2))."""
    xp = get_array_module(mean1, logvar1, mean2, logvar2)
    return 0.5 * (-1.0 + logvar2 - logvar1 + xp.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * xp.exp(-logvar2))


def _erfc(xp):
    """erfc of the array module: SciPy's on NumPy arrays, cupyx's on CuPy arrays."""
    if xp.__name__ == "numpy":
        from scipy.special import erfc
    else:
        from cupyx.scipy.special import erfc
    return erfc


def standard_normal_cdf(x: Array) -> Array:
    """Phi(x) = erfc(-x / sqrt(2)) / 2, exact to floating point (erfc keeps the lower tail accurate)."""
    return 0.5 * _erfc(get_array_module(x))(-x / math.sqrt(2.0))


def approx_standard_normal_cdf(x: Array) -> Array:
    """Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2, the approximation DDPM's and
    improved-diffusion's code use (absolute error below 3.1e-4); kept to compare with their numbers."""
    xp = get_array_module(x)
    return 0.5 * (1.0 + xp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x: Array, means: Array, log_scales: Array,
                                        num_levels: int = 256) -> Array:
    """log P(x) per element, where P puts on each pixel value x in [-1, 1] the mass of
    N(means, exp(log_scales)^2) over [x - delta, x + delta], delta = 1 / (num_levels - 1), and the
    two outermost bins extend to -inf and +inf (DDPM eq. 13), so the masses sum to exactly 1.

    Masses below the dtype's smallest normal number (1e-38 in float32) are floored there, so a bin
    far in a tail reads about -87 nats in float32 rather than its true, lower, value.
    """
    xp = get_array_module(x, means)
    erfc = _erfc(xp)
    delta = 1.0 / (num_levels - 1)
    root2 = math.sqrt(2.0)
    inv_scale = xp.exp(-log_scales)
    upper = (x - means + delta) * inv_scale  # standardised bin edges
    lower = (x - means - delta) * inv_scale
    # Phi(upper) - Phi(lower), written with the tail in which both terms are small: subtracting two
    # numbers near 1 would lose every digit when the bin lies far in the right tail.
    mass_right_tail = 0.5 * (erfc(lower / root2) - erfc(upper / root2))
    mass_left_tail = 0.5 * (erfc(-upper / root2) - erfc(-lower / root2))
    mass = xp.where(lower > 0, mass_right_tail, mass_left_tail)
    mass = xp.where(x < -1.0 + delta, 0.5 * erfc(-upper / root2),         # Phi(upper)
                    xp.where(x > 1.0 - delta, 0.5 * erfc(lower / root2),  # 1 - Phi(lower)
                             mass))
    return xp.log(xp.maximum(mass, xp.finfo(mass.dtype).tiny))


def prior_bpd(diffusion, x0: Array) -> Array:
    """L_T = KL(q(x_T | x_0) || N(0, I)) in bits/dim, shape (B,)  (DDPM eq. 5). Near 0 for a good schedule."""
    xp = get_array_module(x0)
    mean, variance = diffusion.q_mean_variance(x0, diffusion.num_timesteps - 1)
    zeros = xp.zeros_like(x0)
    return mean_flat(normal_kl(mean, xp.log(variance), zeros, zeros)) / LOG2


def vb_terms_bpd(diffusion, eps_pred: Array, x0: Array, xt: Array, t: int | Array,
                 variance: str = "fixed_large", clip_x0: bool = False) -> Array:
    """One term of eq. 5 per example, in bits/dim, shape (B,): L_{t-1} = KL(q(x_{t-1}|x_t,x_0) ||
    p(x_{t-1}|x_t)) where t > 0 (code index) and the decoder NLL L_0 = -log p(x_0|x_1) where t == 0.

    p's mean comes from ``eps_pred`` (eq. 11) and its variance from ``variance`` (sec. 3.2).
    """
    xp = get_array_module(x0)
    t = diffusion.check_timesteps(t, x0, "vb_terms_bpd")
    mean, _, log_variance = diffusion.p_mean_variance(eps_pred, xt, t, variance, clip_x0)

    def kl() -> Array:
        true_mean, _, true_log_variance = diffusion.q_posterior(x0, xt, t, "vb_terms_bpd")
        return mean_flat(normal_kl(true_mean, true_log_variance, mean, log_variance)) / LOG2

    def decoder_nll() -> Array:
        return -mean_flat(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance)) / LOG2

    if isinstance(t, int):  # one timestep for the whole batch: compute only the term it needs
        return decoder_nll() if t == 0 else kl()
    return xp.where(t == 0, decoder_nll(), kl())


def calc_bpd_loop(diffusion, model_fn: Callable[[Array, Array], Array], x0: Array, rng: Any = None,
                  variance: str = "fixed_large", clip_x0: bool = False, progress: bool = False,
                  parameterization: str = "eps") -> dict[str, Array]:
    """The full bound of eq. 5 for each example of ``x0`` (B, ...), one fresh x_t ~ q(x_t|x_0) per t.

    Returns a dict of arrays: ``total_bpd`` (B,) = ``prior_bpd`` (B,) + ``vb``.sum(1), where ``vb``
    (B, T) holds L_0 (column 0) and L_1..L_{T-1}; also ``x0_mse`` and ``eps_mse`` (B, T), the model's
    errors at each t. An unbiased single-sample estimate of the bound (DDPM Table 1's NLL).
    """
    xp = get_array_module(x0)
    if rng is None:
        rng = xp.random.default_rng()
    batch = x0.shape[0]
    vb, x0_mse, eps_mse = [], [], []
    steps = range(diffusion.num_timesteps)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="bits/dim")
    for t in steps:
        t_batch = xp.full((batch,), t, dtype=xp.int64)
        noise = rng.standard_normal(x0.shape, dtype=x0.dtype)
        xt = diffusion.q_sample(x0, t, noise)
        eps = diffusion.eps_from_model_output(model_fn(xt, t_batch), xt, t, parameterization)
        vb.append(vb_terms_bpd(diffusion, eps, x0, xt, t, variance=variance, clip_x0=clip_x0))
        x0_hat = diffusion.predict_x0_from_eps(xt, t, eps)
        if clip_x0:
            x0_hat = xp.clip(x0_hat, -1.0, 1.0)
        x0_mse.append(mean_flat((x0_hat - x0) ** 2))
        eps_mse.append(mean_flat((eps - noise) ** 2))
    vb_arr = xp.stack(vb, axis=1)
    prior = prior_bpd(diffusion, x0)
    return {"total_bpd": vb_arr.sum(axis=1) + prior, "prior_bpd": prior, "vb": vb_arr,
            "x0_mse": xp.stack(x0_mse, axis=1), "eps_mse": xp.stack(eps_mse, axis=1)}
