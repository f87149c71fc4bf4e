"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, arXiv 2011.13456,
eq. 39 and appendix D.2: the instantaneous change of variables of neural ODEs).

In the coordinates of ``tinydiff.samplers`` the ODE is d x_bar / d sigma = f(x_bar, sigma) with

    f = (x_bar - D) / sigma = eps_theta(x_t, t(sigma)),     x_t = x_bar / sqrt(1 + sigma^2),

and along a solution d log p_sigma(x_bar(sigma)) / d sigma = -div f, where
div f = tr(d eps_theta / d x_t) / sqrt(1 + sigma^2). Integrating from the data at sigma_min up to
sigma_max:

    log p_{sigma_min}(x_0) = log N(x_bar(sigma_max); 0, (1 + sigma_max^2) I)
                             + int_{sigma_min}^{sigma_max} tr(d eps / d x_t) / sqrt(1 + sigma^2) d sigma,

the prior being the samplers' (x_T ~ N(0, I)). sigma_min is the schedule's smallest noise level
sigma(0), so this is the density of the data convolved with N(0, sigma_min^2 I) (for the linear
schedule sigma_min = 0.01). The trace is exact in low dimension (one vector-Jacobian product
through the engine per coordinate: two for 2-D points), and Hutchinson's unbiased estimate
E_v[v^T J v] = tr J (Rademacher v, one probe held fixed along the path) for images. Heun's method
in sigma on Karras' rho = 7 grid integrates both.

Depends on the autograd engine (the model is called on Tensors to get its VJPs).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from autograd.backend import get_array_module
from autograd.tensor import Tensor
from tinydiff.data.toy2d import sample_toy2d, toy2d_mixture
from tinydiff.samplers import get_sigmas_karras, sigma_to_t, sigmas_from_alphas_cumprod

Array = Any
EpsFn = Callable[[Tensor, Array], Tensor]  # (x_t Tensor (B, ...), t float64 (B,)) -> eps Tensor
EXACT_TRACE_MAX_DIM = 16                    # above this many dimensions, Hutchinson by default


def trace_exact(eps_fn: EpsFn, x: Array, t: Array) -> tuple[Array, Array]:
    """(eps, tr(d eps / d x)) per sample, the trace by one VJP per coordinate e_i: the i-th
    output's gradient, read at the i-th input (samples do not mix, so one backward per i)."""
    xt = Tensor(x, requires_grad=True)
    out = eps_fn(xt, t)
    xp = get_array_module(x)
    flat_dim = int(np.prod(x.shape[1:]))
    trace = xp.zeros(x.shape[0], dtype=x.dtype)
    for i in range(flat_dim):
        e = xp.zeros((x.shape[0], flat_dim), dtype=x.dtype)
        e[:, i] = 1
        xt.grad = None
        out.backward(e.reshape(x.shape), retain_graph=i + 1 < flat_dim)
        trace = trace + xt.grad.reshape(x.shape[0], -1)[:, i]
    return out.data, trace


def trace_hutchinson(eps_fn: EpsFn, x: Array, t: Array, v: Array) -> tuple[Array, Array]:
    """(eps, v^T (d eps / d x) v) per sample: one VJP; unbiased for tr J when E[v v^T] = I."""
    xt = Tensor(x, requires_grad=True)
    out = eps_fn(xt, t)
    out.backward(v)
    return out.data, (xt.grad * v).reshape(x.shape[0], -1).sum(1)


def ode_log_likelihood(eps_fn: EpsFn, alphas_cumprod: np.ndarray, x0: Array, steps: int = 100,
                       hutchinson: bool | None = None, rng: Any = None,
                       progress: bool = False) -> dict[str, Array]:
    """log p(x_0) per sample (nats) by the probability-flow ODE; see the module docstring.

    ``hutchinson``: None picks the exact trace up to ``EXACT_TRACE_MAX_DIM`` dimensions.
    Returns {"logp", "prior_logp", "delta_logp"} (each (B,)), "x_T" (the ODE's encoding of x_0,
    in the samplers' convention) and "evaluations" (2 ``steps`` model calls, each with its VJPs).
    The prior N(0, I) for x_T is itself an approximation: for data of mean mu it misses
    log p(x_T) by about x_bar . mu / sigma_max^2 (~0.005 nats for |mu| = 0.45, sigma_max = 157).
    """
    if steps < 1:
        raise ValueError(f"ode_log_likelihood: steps must be >= 1; got {steps}")
    xp = get_array_module(x0)
    dim = int(np.prod(x0.shape[1:]))
    if hutchinson is None:
        hutchinson = dim > EXACT_TRACE_MAX_DIM
    grid = sigmas_from_alphas_cumprod(alphas_cumprod)
    log_sigmas = np.log(grid)
    # steps + 1 increasing noise levels from sigma_min to sigma_max (the trailing 0 dropped)
    sigmas = get_sigmas_karras(steps + 1, float(grid[0]), float(grid[-1]))[:-1][::-1]
    probe = None
    if hutchinson:
        rng = rng if rng is not None else np.random.default_rng(0)
        probe = xp.asarray((rng.integers(0, 2, size=x0.shape) * 2 - 1).astype(x0.dtype))

    def field(x_bar: Array, sigma: float) -> tuple[Array, Array]:
        """(f, div f) at (x_bar, sigma)."""
        scale = 1.0 / math.sqrt(1.0 + sigma * sigma)
        t = xp.full((x_bar.shape[0],), float(sigma_to_t(sigma, log_sigmas)), dtype=xp.float64)
        if hutchinson:
            eps, tr = trace_hutchinson(eps_fn, x_bar * scale, t, probe)
        else:
            eps, tr = trace_exact(eps_fn, x_bar * scale, t)
        return eps, tr * scale

    iterator = range(len(sigmas) - 1)
    if progress:
        from tqdm.auto import tqdm  # only needed for the bar
        iterator = tqdm(iterator, desc="ODE likelihood")
    x = x0 * 1.0                          # x_bar at sigma_min: the data
    delta = xp.zeros(x0.shape[0], dtype=xp.float64)
    f, div = field(x, sigmas[0])
    for i in iterator:                    # Heun in sigma, upwards (Karras Alg. 1, reversed)
        h = float(sigmas[i + 1] - sigmas[i])
        x_pred = x + h * f
        f_next, div_next = field(x_pred, sigmas[i + 1])
        x = x + h * (f + f_next) / 2
        delta = delta + h * (div + div_next).astype(xp.float64) / 2
        f, div = field(x, sigmas[i + 1]) if i + 2 < len(sigmas) else (f_next, div_next)
    var = 1.0 + float(sigmas[-1]) ** 2
    flat = x.reshape(x.shape[0], -1).astype(xp.float64)
    prior = -0.5 * dim * math.log(2 * math.pi * var) - (flat * flat).sum(1) / (2 * var)
    return {"logp": prior + delta, "prior_logp": prior, "delta_logp": delta,
            "x_T": x * (1.0 / math.sqrt(var)), "evaluations": 2 * steps}


# --------------------------------------------------------------------------- trained models

def eps_fn_for_model(model: Any, alphas_cumprod: np.ndarray, parameterization: str = "eps",
                     labels: Any = None) -> EpsFn:
    """An ``EpsFn`` from an autograd model ``model(x, t, y)``: its output converted to eps at the
    (fractional) t with alpha_bar = 1 / (1 + sigma(t)^2) (x0: eps = (x_t - sqrt(a) x0) / sqrt(1-a);
    v: eps = sqrt(1 - a) x_t + sqrt(a) v). The weights are frozen while it runs: only x needs a
    gradient, so the VJPs skip the weight gradients."""
    log_sigmas = np.log(sigmas_from_alphas_cumprod(alphas_cumprod))
    params = list(model.parameters())

    def eps_fn(x: Tensor, t: Array) -> Tensor:
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad = False
        try:
            out = model(x, t, labels)
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad = flag
        if parameterization == "eps":
            return out
        t0 = float(np.asarray(t if get_array_module(t) is np else t.get()).reshape(-1)[0])
        sigma = float(np.exp(np.interp(t0, np.arange(len(log_sigmas)), log_sigmas)))
        a = 1.0 / (1.0 + sigma * sigma)
        if parameterization == "x0":
            return (x - out * math.sqrt(a)) * (1.0 / math.sqrt(1.0 - a))
        if parameterization == "v":
            return x * math.sqrt(1.0 - a) + out * math.sqrt(a)
        raise ValueError(f"unknown parameterization {parameterization!r}; valid ones are eps, x0, v")
    return eps_fn


def toy2d_ode_nll(run: Any, n: int = 1000, steps: int = 100, seed: int = 0,
                  progress: bool = False) -> dict[str, Any]:
    """Mean -log p(x) (nats per point and bits per dimension) of ``n`` fresh data points under a
    toy run, the trace exact; for the mixture datasets also the true -log p of the same points."""
    cfg = run.config
    x0 = sample_toy2d(cfg.dataset, n, np.random.default_rng([seed, 424242])).astype(np.float32)
    fn = eps_fn_for_model(run.model, run.diffusion.alphas_cumprod, cfg.parameterization)
    res = ode_log_likelihood(fn, run.diffusion.alphas_cumprod, x0, steps=steps, progress=progress)
    nll = -np.asarray(res["logp"], dtype=np.float64)
    out = {"n": n, "steps": steps, "evaluations": res["evaluations"], "nll_nats": float(nll.mean()),
           "nll_sem": float(nll.std(ddof=1) / math.sqrt(n)), "bits_per_dim": float(nll.mean() / (2 * math.log(2)))}
    try:
        truth = -toy2d_mixture(cfg.dataset).log_prob(x0.astype(np.float64))
        out["true_nll_nats"] = float(truth.mean())
    except ValueError:  # not a mixture: no closed-form density
        pass
    return out


def mnist_ode_bpd(run: Any, images: Any, labels: Any = None, steps: int = 50, seed: int = 0,
                  batch_size: int = 50, progress: bool = False) -> dict[str, Any]:
    """Bits/dim of MNIST images through the ODE, Hutchinson's trace (one Rademacher probe per image).

    Pixels k in 0..255 sit at x = k / 127.5 - 1, bins 2/255 wide; with uniform dequantisation
    x + u, u ~ U(-1/255, 1/255), -log P(k) <= -E_u log p(x + u) - D log(2/255) (Theis et al. 2016;
    Song et al. 2021 App. D.2), so bpd = (-log p(x + u) - D log(2/255)) / (D log 2) bounds the
    discrete NLL from above (up to the ODE's integration error), as DDPM's VLB does.
    """
    rng = np.random.default_rng(seed)
    fn = eps_fn_for_model(run.model, run.diffusion.alphas_cumprod, run.config.parameterization, labels)
    images = np.asarray(images, dtype=np.float32)
    dim = int(np.prod(images.shape[1:]))
    bpds = []
    for lo in range(0, len(images), batch_size):
        x = images[lo: lo + batch_size]
        x = x + rng.uniform(-1 / 255, 1 / 255, size=x.shape).astype(np.float32)
        if labels is not None:
            fn = eps_fn_for_model(run.model, run.diffusion.alphas_cumprod, run.config.parameterization,
                                  np.asarray(labels[lo: lo + batch_size]))
        res = ode_log_likelihood(fn, run.diffusion.alphas_cumprod, x, steps=steps, hutchinson=True,
                                 rng=rng, progress=progress)
        logp = np.asarray(res["logp"], dtype=np.float64)
        bpds.append((-logp - dim * math.log(2 / 255)) / (dim * math.log(2)))
    bpd = np.concatenate(bpds)
    return {"bpd": float(bpd.mean()), "bpd_sem": float(bpd.std(ddof=1) / math.sqrt(len(bpd)))
            if len(bpd) > 1 else float("nan"), "n": int(len(bpd)), "steps": steps,
            "evaluations": 2 * steps}
