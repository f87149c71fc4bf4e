"""Exact denoisers: the Bayes-optimal model, to separate a sampler's error from the network's.

For data x_0 ~ p and x_t = sqrt(a) x_0 + sqrt(1 - a) eps (a = alpha_bar_t, DDPM eq. 4), the
model that minimises the training loss is E[x_0 | x_t] (equivalently E[eps | x_t]). Tweedie's
formula writes it through the score of the noised marginal p_t:

    E[x_0 | x_t] = (x_t + (1 - a) grad log p_t(x_t)) / sqrt(a)          (Song et al. 2021, eq. 13 via
                                                                         Efron 2011, Tweedie)

and it is closed form in two cases:

- a Gaussian mixture (the toy ``gmm`` and ``8gaussians``): p_t is again a mixture
  (``GaussianMixture2D.noised``), so its score is exact;
- a finite training set {x^(i)}: p_t is a mixture of N(sqrt(a) x^(i), (1 - a) I), and
  E[x_0 | x_t] = sum_i softmax_i(-|x_t - sqrt(a) x^(i)|^2 / (2 (1 - a))) x^(i): the optimum a
  network reaches if it memorises its training set (its samples are training points).

``oracle_model`` turns either into a ``model_fn(x_t, t) -> eps`` for any sampler, at integer or
fractional t (alpha_bar between the grid's by the samplers' log-sigma interpolation). Host
NumPy, float64 inside; the output keeps x_t's dtype. ``mixture_eps_tensor`` is the mixture's eps
written in the engine's ops, for the likelihood's vector-Jacobian products.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import logsumexp

import autograd.functional as F
from autograd.tensor import Tensor
from tinydiff.data.toy2d import GaussianMixture2D
from tinydiff.samplers import sigmas_from_alphas_cumprod, t_to_sigma

Denoiser = Callable[[np.ndarray, float], np.ndarray]  # (x_t (B, ...), alpha_bar) -> E[x_0 | x_t]


def alpha_bar_at(alphas_cumprod: np.ndarray, t: Any) -> np.ndarray:
    """alpha_bar at integer or fractional t: 1 / (1 + sigma(t)^2), sigma interpolated in log."""
    log_sigmas = np.log(sigmas_from_alphas_cumprod(alphas_cumprod))
    sigma = t_to_sigma(np.asarray(t, dtype=np.float64), log_sigmas)
    return 1.0 / (1.0 + sigma * sigma)


def mixture_denoiser(mix: GaussianMixture2D) -> Denoiser:
    """E[x_0 | x_t] for data from ``mix``, by Tweedie's formula on the exact noised mixture."""
    def denoise(xt: np.ndarray, a: float) -> np.ndarray:
        score = mix.noised(math.sqrt(a), 1.0 - a).score(xt)
        return (xt + (1.0 - a) * score) / math.sqrt(a)
    return denoise


def training_set_denoiser(points: np.ndarray, chunk: int = 1024) -> Denoiser:
    """E[x_0 | x_t] when the data is exactly ``points`` (N, ...): the posterior weights of the
    training points are a softmax of -|x_t - sqrt(a) x^(i)|^2 / (2 (1 - a))."""
    data = np.asarray(points, dtype=np.float64).reshape(len(points), -1)

    def denoise(xt: np.ndarray, a: float) -> np.ndarray:
        flat = np.asarray(xt, dtype=np.float64).reshape(len(xt), -1)
        out = np.empty_like(flat)
        for lo in range(0, len(flat), chunk):  # (chunk, N) logits at a time
            x = flat[lo: lo + chunk]
            sq = (x * x).sum(1)[:, None] - 2 * math.sqrt(a) * x @ data.T + a * (data * data).sum(1)
            logits = -sq / (2.0 * (1.0 - a))
            w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
            out[lo: lo + chunk] = w @ data
        return out.reshape(np.shape(xt))
    return denoise


def oracle_model(denoise: Denoiser, alphas_cumprod: np.ndarray) -> Callable[[Any, Any], np.ndarray]:
    """``model_fn(x_t, t) -> eps``: the exact eps = (x_t - sqrt(a) E[x_0 | x_t]) / sqrt(1 - a)
    (DDPM eq. 4 solved for eps), for t of shape (B,), int or float."""
    def model_fn(xt: Any, t: Any) -> np.ndarray:
        x = np.asarray(xt, dtype=np.float64)
        a_all = alpha_bar_at(alphas_cumprod, np.asarray(t).reshape(-1))
        eps = np.empty_like(x)
        for a in np.unique(a_all):  # the samplers pass one t for the whole batch
            rows = a_all == a
            eps[rows] = (x[rows] - math.sqrt(a) * denoise(x[rows], float(a))) / math.sqrt(1.0 - a)
        return eps.astype(np.asarray(xt).dtype, copy=False)
    return model_fn


def mixture_eps_tensor(mix: GaussianMixture2D, alphas_cumprod: np.ndarray) -> Callable[[Any, Any], Any]:
    """The exact eps of ``mix`` written with the engine's ops, so that its Jacobian comes from the
    engine's VJPs (for ``tinydiff.likelihood``): eps = -sqrt(1 - a) grad log p_t(x_t), with
    grad log p_t = -sum_k r_k(x) P_k (x - m_k), P_k = C_k^{-1} of the noised component k and
    r = softmax_k(log w_k - log|C_k|/2 - (x - m_k)^T P_k (x - m_k) / 2). One t per batch."""
    def eps_fn(x: Any, t: Any) -> Any:
        ts = np.unique(np.asarray(t))
        if len(ts) != 1:
            raise ValueError("mixture_eps_tensor: one timestep per batch")
        a = float(alpha_bar_at(alphas_cumprod, ts[0]))
        noised = mix.noised(math.sqrt(a), 1.0 - a)
        dtype = x.data.dtype
        prec = np.linalg.inv(noised.covariances)                              # (K, 2, 2)
        bias = np.log(noised.weights) - 0.5 * np.log(np.linalg.det(noised.covariances))
        B, K = x.shape[0], noised.n_components
        diff = x.reshape(B, 1, 2) - Tensor(noised.means.astype(dtype))        # (B, K, 2)
        pulled = (diff.reshape(B, K, 1, 2) * Tensor(prec.astype(dtype))).sum(-1)   # P_k (x - m_k)
        logits = (pulled * diff).sum(-1) * -0.5 + Tensor(bias.astype(dtype))
        r = F.softmax(logits, dim=-1)                                         # (B, K)
        score = -(r.reshape(B, K, 1) * pulled).sum(1)                         # (B, 2)
        return score * -math.sqrt(1.0 - a)
    return eps_fn
