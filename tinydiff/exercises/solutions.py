"""tinydiff's own implementation of every exercise, with the learner's signatures.

Each solution calls the engine or the library (so the grader's tests check tinydiff itself
against the grader's independent properties); chapter 5's steps are written out here because the
full samplers live in ``tinydiff/samplers.py``. ``tinydiff exercises check --show-solution``
points at the code these call.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import autograd.functional as F
from autograd.tensor import Tensor
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.losses import simple_loss
from tinydiff.models.embeddings import timestep_embedding as _timestep_embedding
from tinydiff.schedules import ddim_timesteps as _ddim_timesteps
from tinydiff.schedules import make_beta_schedule


def _vjp(forward: Callable[..., Tensor], arrays: Sequence[np.ndarray], grad: np.ndarray) -> tuple:
    """The engine's gradients of sum(forward(*arrays) * grad) with respect to every array."""
    leaves = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = forward(*leaves)
    (out * Tensor(np.asarray(grad, dtype=np.float64))).sum().backward()
    return tuple(leaf.grad if leaf.grad is not None else np.zeros(leaf.shape) for leaf in leaves)


# --------------------------------------------------------------------------- chapter 1

def mul_backward(a, b, grad):
    return _vjp(lambda p, q: p * q, [a, b], grad)


def div_backward(a, b, grad):
    return _vjp(lambda p, q: p / q, [a, b], grad)


def tanh_backward(x, y, grad):
    return _vjp(lambda p: p.tanh(), [x], grad)[0]


def exp_backward(x, y, grad):
    return _vjp(lambda p: p.exp(), [x], grad)[0]


def log_backward(x, grad):
    return _vjp(lambda p: p.log(), [x], grad)[0]


def sigmoid_backward(x, y, grad):
    return _vjp(lambda p: p.sigmoid(), [x], grad)[0]


def sum_backward(x, grad, axis, keepdims):
    return _vjp(lambda p: p.sum(axis=axis, keepdims=keepdims), [x], grad)[0]


def mean_backward(x, grad, axis, keepdims):
    return _vjp(lambda p: p.mean(axis=axis, keepdims=keepdims), [x], grad)[0]


def matmul_backward(a, b, grad):
    return _vjp(lambda p, q: p @ q, [a, b], grad)


def softmax_backward(x, y, grad, axis):
    return _vjp(lambda p: F.softmax(p, dim=axis), [x], grad)[0]


def log_softmax_backward(x, y, grad, axis):
    return _vjp(lambda p: F.log_softmax(p, dim=axis), [x], grad)[0]


def logsumexp_backward(x, y, grad, axis):
    # logsumexp(x) = x_k - log_softmax(x)_k for any k; sum over the axis of softmax-weighted terms
    # is simpler to write with the engine's ops: log(sum(exp(x - m))) + m.
    def lse(p: Tensor) -> Tensor:
        m = np.max(p.data, axis=axis, keepdims=True)
        return (p - Tensor(m)).exp().sum(axis=axis).log() + Tensor(np.squeeze(m, axis=axis))
    return _vjp(lse, [x], grad)[0]


def mse_backward(pred, target, grad):
    return _vjp(lambda p, q: F.mse_loss(p, q), [pred, target], grad)


# --------------------------------------------------------------------------- chapter 2

def linear_backward(x, W, b, grad):
    return _vjp(lambda x_, w_, b_: F.linear(x_, w_, b_), [x, W, b], grad)


def silu_backward(x, grad):
    return _vjp(F.silu, [x], grad)[0]


def conv2d_forward(x, W, b, stride, padding):
    return F.conv2d(Tensor(np.asarray(x, dtype=np.float64)), Tensor(np.asarray(W, dtype=np.float64)),
                    Tensor(np.asarray(b, dtype=np.float64)), stride=stride, padding=padding).data


def conv2d_backward(x, W, b, grad, stride, padding):
    return _vjp(lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride=stride, padding=padding), [x, W, b], grad)


def group_norm_backward(x, num_groups, gamma, beta, grad, eps):
    return _vjp(lambda x_, g_, b_: F.group_norm(x_, num_groups, g_, b_, eps=eps), [x, gamma, beta], grad)


def attention_backward(q, k, v, grad):
    return _vjp(F.scaled_dot_product_attention, [q, k, v], grad)


def timestep_embedding(t, dim, max_period=10000.0):
    return _timestep_embedding(np.asarray(t, dtype=np.float64), dim, max_period, dtype=np.float64).data


# --------------------------------------------------------------------------- chapter 3

def _process(betas) -> GaussianDiffusion:
    return GaussianDiffusion(np.asarray(betas, dtype=np.float64))


def alpha_bar(betas):
    return _process(betas).alphas_cumprod.copy()


def linear_betas(T):
    return make_beta_schedule("linear", T)


def cosine_betas(T, s=0.008, max_beta=0.999):
    return make_beta_schedule("cosine", T)


def q_mean_variance(x0, t, betas):
    return _process(betas).q_mean_variance(np.asarray(x0, dtype=np.float64), t)


def q_sample(x0, t, noise, betas):
    return _process(betas).q_sample(np.asarray(x0, dtype=np.float64), t, np.asarray(noise, dtype=np.float64))


def posterior_variance(t, betas):
    return float(_process(betas).posterior_variance[t])


def posterior_mean(x0, xt, t, betas):
    return _process(betas).q_posterior_mean_variance(x0, xt, t)[0]


def predict_x0_from_eps(xt, t, eps, betas):
    return _process(betas).predict_x0_from_eps(xt, t, eps)


def predict_eps_from_x0(xt, t, x0, betas):
    return _process(betas).predict_eps_from_x0(xt, t, x0)


def get_v(x0, eps, t, betas):
    return _process(betas).get_v(x0, eps, t)


def predict_x0_from_v(xt, t, v, betas):
    return _process(betas).predict_x0_from_v(xt, t, v)


# --------------------------------------------------------------------------- chapter 4

def ddpm_loss(eps_model, x0, t, noise, betas):
    xt, target = _process(betas).training_targets(x0, np.asarray(t), noise)
    return float(simple_loss(eps_model(xt, np.asarray(t)), target).mean())


def ddpm_step(eps, xt, t, noise, betas, variance):
    kind = {"beta": "fixed_large", "beta_tilde": "fixed_small"}[variance]
    return _process(betas).p_sample_step(eps, xt, t, noise, variance=kind)


def ddim_step(eps, xt, t, t_prev, betas, eta, noise):
    return _process(betas).ddim_step(eps, xt, t, t_prev, eta=eta, noise=noise)


def ddim_timesteps(T, steps):
    return _ddim_timesteps(T, steps)


def ddim_sample(eps_model, x_T, betas, steps):
    return _process(betas).sample(eps_model, x_T.shape, sampler="ddim", steps=steps, x_T=x_T)


def ddpm_sample(eps_model, x_T, betas, rng):
    return _process(betas).sample(eps_model, x_T.shape, sampler="ddpm", x_T=x_T, rng=rng)


# --------------------------------------------------------------------------- chapter 5
# The full samplers are tinydiff/samplers.py (euler, heun, dpmpp_2m); these are their single steps.

def euler_step(denoiser, x, sigma, sigma_next):
    """d = (x - D(x, sigma)) / sigma; x_next = x + (sigma_next - sigma) d  (Karras eqs. 3-4, Alg. 1)."""
    d = (x - denoiser(x, sigma)) / sigma
    return x + (sigma_next - sigma) * d


def heun_step(denoiser, x, sigma, sigma_next):
    """Euler, then the trapezoidal correction with the slope at (x_e, sigma_next)  (Karras Alg. 1 lines 4-8)."""
    d = (x - denoiser(x, sigma)) / sigma
    x_euler = x + (sigma_next - sigma) * d
    if sigma_next == 0:
        return x_euler
    d_next = (x_euler - denoiser(x_euler, sigma_next)) / sigma_next
    return x + (sigma_next - sigma) * 0.5 * (d + d_next)


def karras_sigmas(n, sigma_min, sigma_max, rho=7.0):
    """sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, then 0 (eq. 5)."""
    ramp = np.linspace(0.0, 1.0, n)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return np.append((hi + ramp * (lo - hi)) ** rho, 0.0)
