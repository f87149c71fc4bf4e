"""Why 10 model calls fall short of DDPM-1000 on toy 2D: the solver's error against the network's.

    python benchmarks/ten_calls_why.py 8gaussians 0,1,2,3,4 [--moons-points 10000] [--fine 400]

The oracle lab's exact denoiser (``tinydiff.oracle``: the 8gaussians mixture's E[x_0 | x_t] in
closed form; for moons the optimum on ``--moons-points`` fresh draws, a kernel estimate of the
density that only memorises below sigma ~ 0.01) stands in for a perfect network. For each seed,
the x_T draw of ``benchmarks/ten_calls.py`` goes through

- ``oracle 10``: a 10-call configuration with the exact denoiser: what is left is the solver's
  discretisation error (and the choice of noise levels);
- ``oracle ODE``: the exact denoiser with ``--fine`` (400) DPM-Solver++(2M) steps (uniform log sigma down to
  sigma(0)): the ODE's own answer, ~1 if the oracle is exact;
- ``net 10`` / ``net ODE`` / ``net DDPM-1000``: the same with the trained run;
- ``prefix k``: the 10-call sampler for its first k steps (with the network), then the exact
  ODE from sigma_k to 0 (the oracle, proportionally fewer steps): where in sigma the 10-call error enters.

Scores: ``toy2d_metrics(..., seed=seed).sw_ratio`` as in ten_calls.py. Prints a table of means
over the seeds; writes benchmarks/results/ten_calls_why_DATASET_SEEDS.json.

Depends on tinydiff (runs/toy2d-DATASET must exist) and benchmarks/ten_calls.py's configurations.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # ten_calls.py beside this file

from autograd.tensor import no_grad
from tinydiff import samplers as S
from tinydiff.evaluate import toy2d_metrics
from tinydiff.lab import MIXTURE_DATASETS, exact_model
from tinydiff.sampling import generate, model_fn_for
from ten_calls import CALLS, N, configurations, load_run, run_configuration  # load_run: as ten_calls finds it

FINE = 400  # default steps of the reference ODE solve over the whole range sigma(T-1)..sigma(0)
PREFIX_CONFIGS = ("dpmpp_2m trailing", "dpmpp_2m exponential", "unipc few_step")


def fine_levels(sigma_hi: float, sigma_lo: float, fine: int = FINE) -> list[float]:
    """Uniform log sigma from sigma_hi to sigma_lo with FINE steps over the whole range (fewer
    for a shorter one), then 0; just [sigma_hi, 0] if sigma_hi is already at sigma_lo."""
    if sigma_hi <= sigma_lo * (1 + 1e-9):
        return [sigma_hi, 0.0]
    n = max(20, round(fine * math.log(sigma_hi / sigma_lo) / math.log(157.4 / 0.0100005)))
    return [float(s) for s in S.get_sigmas_exponential(n, sigma_lo, sigma_hi)]


def main(dataset: str, seeds: list[int], moons_points: int, fine: int) -> None:
    run = load_run(f"runs/toy2d-{dataset}/checkpoint.npz")
    ac = run.diffusion.alphas_cumprod
    grid = S.sigmas_from_alphas_cumprod(ac)
    net = model_fn_for(run.model)
    if dataset in MIXTURE_DATASETS:
        oracle, what = exact_model(dataset, ac)
    else:
        oracle, what = exact_model(dataset, ac, train_points=moons_points, seed=12345)
    configs = configurations(ac)
    res: dict[str, list[float]] = {}

    def score(name: str, x: np.ndarray, seed: int) -> None:
        res.setdefault(name, []).append(toy2d_metrics(x, dataset, seed=seed).sw_ratio)

    def solve(fn, x_bar, levels, sampler="dpmpp_2m"):
        den = S.Denoiser(fn, ac, "eps", False, fractional=True)
        return S.SAMPLER_FUNCTIONS[sampler](den, x_bar, levels)

    for seed in seeds:
        x_T = np.random.default_rng([seed, 5]).standard_normal((N, 2))
        full = fine_levels(float(grid[-1]), float(grid[0]), fine)
        x_bar = x_T * math.sqrt(1 + full[0] ** 2)
        score("oracle ODE", solve(oracle, x_bar, full), seed)
        with no_grad():
            score("net ODE", solve(net, x_bar, full), seed)
            score("net DDPM-1000", generate(run.model, run.diffusion, N, (2,), sampler="ddpm", seed=seed,
                                            batch_size=N).samples, seed)
        for name, cfg in configs.items():
            score(f"oracle 10 {name}", run_configuration(oracle, ac, seed, cfg), seed)
            with no_grad():
                score(f"net 10 {name}", run_configuration(net, ac, seed, cfg), seed)
        for name in PREFIX_CONFIGS:
            sampler, levels = configs[name][0], [float(s) for s in configs[name][1]]
            for who, fn in (("oracle", oracle), ("net", net)):
                for k in range(1, CALLS):
                    den = S.Denoiser(fn, ac, "eps", False, fractional=True)
                    x = x_T * math.sqrt(1 + levels[0] ** 2)
                    with no_grad():
                        x = S.SAMPLER_FUNCTIONS[sampler](den, x, levels[: k + 1])  # k steps: to sigma_k
                    x = solve(oracle, x, fine_levels(levels[k], float(grid[0]), fine))
                    score(f"prefix {who} {name} k={k} (sigma_k={levels[k]:.3g})", x, seed)
        print(f"seed {seed} done", file=sys.stderr)
    out = Path("benchmarks/results") / f"ten_calls_why_{dataset}_{'-'.join(map(str, seeds))}.json"
    out.write_text(json.dumps({"dataset": dataset, "seeds": seeds, "n": N, "fine": fine, "oracle": what,
                               "ratios": res}, indent=2) + "\n")
    print(f"{dataset}: oracle = {what}; seeds {seeds}; mean sliced-W2 ratio (sd)")
    for name, v in res.items():
        print(f"  {name:58s} {np.mean(v):6.2f} ({np.std(v, ddof=1) if len(v) > 1 else 0:.2f})")


if __name__ == "__main__":
    args = sys.argv[1:]
    pts = int(args[args.index("--moons-points") + 1]) if "--moons-points" in args else 10000
    fine = int(args[args.index("--fine") + 1]) if "--fine" in args else FINE
    main(args[0], [int(s) for s in args[1].split(",")], pts, fine)
