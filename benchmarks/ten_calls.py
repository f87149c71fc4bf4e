"""The toy-2D samplers at 10 model calls against DDPM-1000, over several sampling seeds.

    python benchmarks/ten_calls.py moons 0,1,2,3,4 [--no-ddpm]

For each seed: the same x_T ~ N(0, I) (4000 points, ``default_rng([seed, 5])``) through each
configuration below with exactly 10 model calls, and 4000 DDPM-1000 samples (``generate``,
seed ``seed``); each scored by ``toy2d_metrics(..., seed=seed)`` (sliced W2 over the data-vs-data
floor, 5 reference pairs). Prints per-seed ratios, their mean and sd, and the ratio to DDPM's.
Writes benchmarks/results/ten_calls_DATASET_SEEDS.json. Results: docs/diffusion.md#sample-quality-against-model-evaluations.

``dpmpp_2m_sde`` is only measured here (it did not pay, so it is not in tinydiff.samplers): the
stochastic DPM-Solver++(2M) of Lu et al. 2022 (arXiv 2211.01095, sec. 4 / appendix), in
k-diffusion's ``sample_dpmpp_2m_sde`` form (midpoint correction, eta = 1).

Depends on tinydiff (runs/toy2d-DATASET must exist: ``tinydiff train toy2d --dataset DATASET``).
"""
from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import numpy as np

from autograd.tensor import no_grad
from tinydiff import samplers as S
from tinydiff.evaluate import toy2d_metrics
from tinydiff.run import load_run
from tinydiff.sampling import generate, model_fn_for

N, CALLS = 4000, 10


def dpmpp_2m_sde(denoise, x, sigmas, noise, eta=1.0):
    """SDE-DPM-Solver++(2M) in x_bar coordinates (lambda = -log sigma, h = lambda_{i+1} - lambda_i)."""
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        d = denoise(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = d
            continue
        h = math.log(sigmas[i] / sigmas[i + 1])
        eta_h = eta * h
        x = sigmas[i + 1] / sigmas[i] * math.exp(-eta_h) * x - math.expm1(-h - eta_h) * d
        if old is not None:
            x = x - 0.5 * math.expm1(-h - eta_h) * (h / h_last) * (d - old)
        if eta:
            x = x + noise() * sigmas[i + 1] * math.sqrt(-math.expm1(-2 * eta_h))
        old, h_last = d, h
    return x


def configurations(ac: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (sampler, noise levels ending at 0), each spending exactly CALLS model calls."""
    grid = S.sigmas_from_alphas_cumprod(ac)
    trailing = np.append(grid[S.spaced_timesteps(len(grid), CALLS, "trailing")], 0.0)
    expo = S.get_sigmas_exponential(CALLS, grid[0], grid[-1])
    few = S.get_sigmas(ac, CALLS, None, "few_step")[0]
    return {
        "dpmpp_2m trailing": ("dpmpp_2m", trailing),
        "dpmpp_2m exponential": ("dpmpp_2m", expo),
        "dpmpp_2m karras": ("dpmpp_2m", S.get_sigmas_karras(CALLS, grid[0], grid[-1])),
        "euler_ancestral trailing": ("euler_ancestral", trailing),
        "dpmpp_2m_sde trailing": ("dpmpp_2m_sde", trailing),
        "dpmpp_3m trailing": ("dpmpp_3m", trailing),
        "dpmpp_3m exponential": ("dpmpp_3m", expo),
        "unipc trailing": ("unipc", trailing),
        "unipc exponential": ("unipc", expo),
        "dpmpp_2m few_step": ("dpmpp_2m", few),
        "dpmpp_3m few_step": ("dpmpp_3m", few),
        "unipc few_step": ("unipc", few),
    }


def run_configuration(fn, ac: np.ndarray, seed: int, config: tuple[str, np.ndarray]) -> np.ndarray:
    """x_0 from the seed's x_T ~ N(0, I) (``default_rng([seed, 5])``, which then draws the
    stochastic samplers' noise) through one configuration; asserts the CALLS model calls."""
    sampler, levels = config
    rng = np.random.default_rng([seed, 5])
    x_T = rng.standard_normal((N, 2))
    levels = [float(s) for s in levels]
    den = S.Denoiser(fn, ac, "eps", False, fractional=True)
    x = x_T * math.sqrt(1 + levels[0] ** 2)
    noise = functools.partial(rng.standard_normal, x_T.shape)
    with no_grad():
        if sampler == "euler_ancestral":
            x = S.sample_euler_ancestral(den, x, levels, noise)
        elif sampler == "dpmpp_2m_sde":
            x = dpmpp_2m_sde(den, x, levels, noise)
        else:
            x = S.SAMPLER_FUNCTIONS[sampler](den, x, levels)
    assert den.calls == CALLS, (sampler, den.calls)
    return x


def main(dataset: str, seeds: list[int], ddpm: bool) -> None:
    run = load_run(f"runs/toy2d-{dataset}/checkpoint.npz")
    ac = run.diffusion.alphas_cumprod
    fn = model_fn_for(run.model)
    configs = configurations(ac)
    res: dict[str, list[float]] = {k: [] for k in configs}
    res["ddpm 1000"] = []
    for seed in seeds:
        for name, config in configs.items():
            x = run_configuration(fn, ac, seed, config)
            res[name].append(toy2d_metrics(x, dataset, seed=seed).sw_ratio)
        if ddpm:
            samples = generate(run.model, run.diffusion, N, (2,), sampler="ddpm", seed=seed, batch_size=N).samples
            res["ddpm 1000"].append(toy2d_metrics(samples, dataset, seed=seed).sw_ratio)
    out = Path("benchmarks/results") / f"ten_calls_{dataset}_{'-'.join(map(str, seeds))}.json"
    out.write_text(json.dumps({"dataset": dataset, "seeds": seeds, "n": N, "ratios": res}, indent=2) + "\n")
    ref = res["ddpm 1000"]
    for name, v in res.items():
        if not v:
            continue
        line = f"{dataset:10s} {name:26s} " + " ".join(f"{a:.2f}" for a in v)
        line += f"   mean {np.mean(v):.2f} sd {np.std(v, ddof=1) if len(v) > 1 else 0.0:.2f}"
        if ref and name != "ddpm 1000":
            line += f"   / ddpm-1000 {np.mean(v) / np.mean(ref):.2f}"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")], "--no-ddpm" not in sys.argv[3:])
