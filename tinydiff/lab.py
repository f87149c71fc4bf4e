"""The sampler lab: ``tinydiff oracle`` and ``tinydiff compare-samplers``, with their figures.

- ``oracle_lab``: the same starting noise through the same sampler, once with the exact denoiser
  (``tinydiff.oracle``) and once with a trained run; what is left in the exact samples is the
  sampler's error, the rest is the network's. Figures: both sample sets over the data, and the
  learned score field against the exact one with the error over (x, t).
- ``compare_samplers``: sample quality against model evaluations for every sampler (toy 2D:
  sliced W2 over its data-vs-data floor; MNIST: FID on the classifier's features), with DDPM's
  1000 steps as the reference line; one figure, one table (markdown and JSON).

Depends on tinydiff.sampling (runs), tinydiff.evaluate (metrics), tinydiff.oracle, tinydiff.defaults; matplotlib
is imported where a figure is drawn.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autograd.tensor import no_grad
from tinydiff.data.mnist import load_mnist
from tinydiff.data.toy2d import sample_toy2d, toy2d_mixture
from tinydiff.defaults import DEFAULT_GUIDANCE, balanced_labels, default_spacing
from tinydiff.evaluate import classify, get_classifier, toy2d_metrics
from tinydiff.metrics import fid_from_features
from tinydiff.oracle import mixture_denoiser, oracle_model, training_set_denoiser
from tinydiff.run import sample_shape
from tinydiff.samplers import model_evaluations
from tinydiff.sampling import generate, model_fn_for

ORACLE_TS = (0.02, 0.1, 0.3, 0.6)   # the fractions of T where the score fields are compared
MIXTURE_DATASETS = ("gmm", "8gaussians")  # the toy datasets with a closed-form density


def exact_model(dataset: str, alphas_cumprod: np.ndarray, train_points: int = 2000, seed: int = 0
                ) -> tuple[Any, str]:
    """The exact eps model of ``dataset``: the mixture's for ``gmm``/``8gaussians``, else the
    memorising optimum of ``train_points`` fresh draws. Returns (model_fn, a description)."""
    if dataset in MIXTURE_DATASETS:
        return oracle_model(mixture_denoiser(toy2d_mixture(dataset)), alphas_cumprod), \
            f"exact E[x_0 | x_t] of the {dataset} mixture"
    points = sample_toy2d(dataset, train_points, np.random.default_rng([seed, 31337]))
    return oracle_model(training_set_denoiser(points), alphas_cumprod), \
        f"the optimum on {train_points} {dataset} points (it memorises them)"


# --------------------------------------------------------------------------- tinydiff oracle

def oracle_lab(run: Any, sampler: str, steps: int, spacing: str | None = None,
               sigmas: str | None = None, n: int = 2000, seed: int = 0, out_dir: str | Path = ".",
               train_points: int = 2000) -> dict[str, Any]:
    """Exact-denoiser samples against a trained run's (same x_T, same sampler), scores, figures."""
    cfg, d = run.config, run.diffusion
    if cfg.task != "toy2d":
        raise ValueError("oracle: the exact denoiser is closed form for the toy 2D datasets only; "
                         f"this run is {cfg.task}")
    exact, what = exact_model(cfg.dataset, d.alphas_cumprod, train_points, seed)
    learned = model_fn_for(run.model)
    x_T = np.random.default_rng(seed).standard_normal((n, 2))
    kw = dict(sampler=sampler, steps=steps, spacing=spacing, sigmas=sigmas, x_T=x_T)
    if sampler in ("ddpm", "ddim"):
        kw.pop("sigmas")
        kw["rng"] = np.random.default_rng(seed + 1)
    exact_samples = d.sample(exact, (n, 2), **kw)
    with no_grad():
        learned_samples = d.sample(lambda x, t: learned(x.astype(np.float32), t).astype(np.float64),
                                   (n, 2), **kw)
    scores = {name: toy2d_metrics(s, cfg.dataset, seed=seed)
              for name, s in (("exact", exact_samples), ("learned", learned_samples))}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    label = f"{sampler}, {steps} steps" + (f", {sigmas} sigmas" if sigmas else
                                            f", {spacing or default_spacing(sampler)} spacing")
    samples_png = save_oracle_samples(exact_samples, learned_samples, cfg.dataset, scores, label,
                                      out / f"oracle_{cfg.dataset}_samples.png", seed)
    field_png, errors = save_score_comparison(learned, exact, d, cfg.dataset,
                                              out / f"oracle_{cfg.dataset}_score.png", seed)
    return {"dataset": cfg.dataset, "sampler": label, "exact_model": what,
            "exact": scores["exact"].as_dict(), "learned": scores["learned"].as_dict(),
            "eps_error_by_t": errors, "figures": [samples_png, field_png]}


def save_oracle_samples(exact: np.ndarray, learned: np.ndarray, dataset: str, scores: dict[str, Any],
                        label: str, path: str | Path, seed: int = 0) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = sample_toy2d(dataset, len(exact), np.random.default_rng([seed, 2]))
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.3), constrained_layout=True)
    for ax, pts, name in zip(axes, (exact, learned), ("exact denoiser", "trained network")):
        m = scores["exact" if pts is exact else "learned"]
        ax.scatter(data[:, 0], data[:, 1], s=2, c="0.75", linewidths=0, label="data")
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:blue", linewidths=0, label="samples")
        ax.set_title(f"{name}\nsliced W2 {m.sw:.4f} = {m.sw_ratio:.2f} x floor", fontsize=10)
        ax.set_xlim(-3, 3), ax.set_ylim(-3, 3), ax.set_aspect("equal")
    fig.suptitle(f"{dataset}: {label}, same starting noise")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def save_score_comparison(learned: Any, exact: Any, diffusion: Any, dataset: str, path: str | Path,
                          seed: int = 0, grid: int = 17, lim: float = 3.0) -> tuple[str, list[dict]]:
    """Top: learned (blue) and exact (red) score directions at four t. Bottom: the eps error
    |eps_theta - eps*| over x at those t. Right: E |eps_theta - eps*|^2 over x_t ~ q(x_t), by t."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = diffusion.num_timesteps
    ts = [max(0, int(f * T) - 1) for f in ORACLE_TS]
    axis = np.linspace(-lim, lim, grid)
    gx, gy = np.meshgrid(axis, axis)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    fine = np.linspace(-lim, lim, 61)
    fx, fy = np.meshgrid(fine, fine)
    fpts = np.stack([fx.ravel(), fy.ravel()], axis=1)

    def eps_of(model: Any, x: np.ndarray, t: int) -> np.ndarray:
        with no_grad():
            return np.asarray(model(x.astype(np.float32), np.full(len(x), t, dtype=np.int64)),
                              dtype=np.float64)

    fig = plt.figure(figsize=(15.5, 7.2), constrained_layout=True)
    gs = fig.add_gridspec(2, len(ts) + 1, width_ratios=[1] * len(ts) + [1.25])
    image = None
    for j, t in enumerate(ts):
        s1 = float(diffusion.sqrt_one_minus_alphas_cumprod[t])
        ax = fig.add_subplot(gs[0, j])
        for model, colour in ((exact, "tab:red"), (learned, "tab:blue")):
            score = -eps_of(model, pts, t) / s1
            unit = score / np.maximum(np.linalg.norm(score, axis=1, keepdims=True), 1e-12)
            ax.quiver(pts[:, 0], pts[:, 1], unit[:, 0], unit[:, 1], color=colour, angles="xy",
                      scale_units="xy", scale=grid / (2 * lim) * 1.15, width=0.005, alpha=0.8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"t = {t + 1}: exact (red), learned (blue)", fontsize=9)
        ax = fig.add_subplot(gs[1, j])
        err = np.linalg.norm(eps_of(learned, fpts, t) - eps_of(exact, fpts, t), axis=1)
        image = ax.imshow(err.reshape(fx.shape), origin="lower", extent=(-lim, lim, -lim, lim),
                          cmap="viridis", vmin=0, vmax=1.0)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"|eps_theta - eps*| at t = {t + 1}", fontsize=9)
    if image is not None:  # ts is never empty; the check is for the type checker
        fig.colorbar(image, ax=fig.axes[-1], shrink=0.8)
    # the expected error under the noised data, over t
    rng = np.random.default_rng([seed, 5])
    x0 = sample_toy2d(dataset, 1000, rng).astype(np.float64)
    curve_ts = np.unique(np.geomspace(1, T, 24).astype(int) - 1)
    errors = []
    for t in curve_ts:
        xt = diffusion.q_sample(x0, int(t), rng.standard_normal(x0.shape))
        diff = eps_of(learned, xt, int(t)) - eps_of(exact, xt, int(t))
        errors.append({"t": int(t), "mse": float((diff ** 2).sum(1).mean()),
                       "exact_eps_norm2": float((eps_of(exact, xt, int(t)) ** 2).sum(1).mean())})
    ax = fig.add_subplot(gs[:, -1])
    ax.loglog(curve_ts + 1, [e["mse"] for e in errors], "o-", color="tab:blue")
    ax.set_xlabel("t"), ax.set_ylabel("E |eps_theta - eps*|^2 over x_t ~ q(x_t)")
    ax.set_title("the network's error, by t", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{dataset}: the learned score against the exact one")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path), errors


# --------------------------------------------------------------------------- compare-samplers

COMPARE_EVALS = (5, 10, 20, 50, 100)
COMPARE_SAMPLERS = ("ddim", "euler", "heun", "dpmpp_2m")


def steps_for_evaluations(sampler: str, evaluations: int) -> int | None:
    """The step count that spends at most ``evaluations`` model calls (heun: 2N - 1 <= E)."""
    steps = (evaluations + 1) // 2 if sampler == "heun" else evaluations
    return steps if steps >= 1 else None


class _Quality:
    """Sample quality of a run's samples: toy 2D sliced W2 (and its ratio to the data-vs-data
    floor), or MNIST FID on the cached classifier's features (floor: as many training images)."""

    def __init__(self, run: Any, n: int, seed: int, data_dir: Any = None, classifier: Any = None,
                 progress: bool = False) -> None:
        self.task, self.run, self.n, self.seed = run.config.task, run, n, seed
        if self.task == "mnist":
            self.classifier, _ = get_classifier(classifier, data_dir=data_dir, progress=progress)
            test, _ = load_mnist("test", data_dir=data_dir, progress=progress)
            self.test_features = classify(self.classifier, test)[0]
            train, _ = load_mnist("train", data_dir=data_dir, progress=progress)
            pick = np.random.default_rng(seed).choice(len(train), n, replace=False)
            self.floor = fid_from_features(classify(self.classifier, train[pick])[0], self.test_features)

    def __call__(self, samples: np.ndarray) -> dict[str, float]:
        if self.task == "toy2d":
            m = toy2d_metrics(samples, self.run.config.dataset, seed=self.seed)
            return {"sw": m.sw, "floor": m.sw_floor, "ratio": m.sw_ratio}
        fid = fid_from_features(classify(self.classifier, samples)[0], self.test_features)
        return {"fid": fid, "floor": self.floor, "ratio": fid / self.floor}


def compare_samplers(run: Any, out_dir: str | Path, samplers: Sequence[str] = COMPARE_SAMPLERS,
                     evaluations: Sequence[int] = COMPARE_EVALS, n: int | None = None,
                     seed: int = 0, karras: bool = True, ddpm: bool = True, data_dir: Any = None,
                     classifier: Any = None, guidance: float | None = None,
                     progress: bool = True, exponential: bool = True,
                     repeats: int | None = None, few_step: bool = False) -> dict[str, Any]:
    """Quality against model evaluations for each sampler (on the default spacing and, with
    ``karras`` / ``exponential`` / ``few_step``, on those sigmas for the ODE samplers), DDPM's all-T chain as
    the reference. Each cell is the mean over ``repeats`` sampling seeds seed, seed + 1, ...
    (default 5 for toy 2D, 1 for MNIST), each scored against its own reference draws: one
    4000-point draw of DDPM-1000 scores anywhere from 0.9 to 1.5 x the floor on the toy runs
    (docs/diffusion.md#sample-quality-against-model-evaluations), so a single seed cannot rank samplers within 1.2x.
    Writes ``compare_samplers.png``, ``compare_samplers.md`` and ``.json`` to ``out_dir``."""

    cfg = run.config
    toy = cfg.task == "toy2d"
    n = n or (4000 if toy else 500)
    conditional = cfg.class_cond and not toy
    guidance = (guidance if guidance is not None else DEFAULT_GUIDANCE) if conditional else 1.0
    labels = balanced_labels(n) if conditional else None
    repeats = (5 if toy else 1) if repeats is None else repeats
    if repeats < 1:
        raise ValueError(f"compare_samplers: repeats must be >= 1; got {repeats}")
    qualities = [_Quality(run, n, seed + r, data_dir, classifier, progress) for r in range(repeats)]
    common = dict(labels=labels, guidance=guidance, batch_size=n if toy else 250,
                  parameterization=cfg.parameterization, clip_x0=not toy)
    configs: list[tuple[str, str | None]] = [(s, None) for s in samplers]
    ode_samplers = [s for s in samplers if s not in ("ddpm", "ddim")]
    lists = (("karras", karras), ("exponential", exponential), ("few_step", few_step))
    configs += [(s, kind) for kind, wanted in lists if wanted for s in ode_samplers]
    rows: list[dict[str, Any]] = []

    def record(sampler: str, sigmas: str | None, steps: int | None, calls: int, budget: int) -> None:
        start = time.perf_counter()
        scores = [quality(generate(run.model, run.diffusion, n, sample_shape(cfg), sampler=sampler,
                                   steps=steps, sigmas=sigmas, seed=seed + r, **common).samples)
                  for r, quality in enumerate(qualities)]
        mean = {k: float(np.mean([q[k] for q in scores])) for k in scores[0]}
        row = {"sampler": sampler, "sigmas": sigmas or default_spacing(sampler), "steps": steps,
               "evaluations": calls, "budget": budget, **mean,
               "ratios": [q["ratio"] for q in scores], "seconds": time.perf_counter() - start}
        rows.append(row)
        if progress:
            print(f"  {sampler:9s} {row['sigmas']:7s} {calls:5d} evaluations: "
                  + (f"sliced W2 {row['sw']:.4f} ({row['ratio']:.2f} x floor)" if toy
                     else f"FID {row['fid']:.2f} (floor {row['floor']:.2f})")
                  + f"  [{row['seconds']:.1f} s]", flush=True)

    for sampler, sigmas in configs:
        for e in evaluations:
            steps = steps_for_evaluations(sampler, e)
            if steps is None or steps > cfg.timesteps:
                continue
            calls = steps if sampler == "ddim" else model_evaluations(sampler, steps)
            record(sampler, sigmas, steps, calls, e)
    if ddpm:
        record("ddpm", None, None, cfg.timesteps, cfg.timesteps)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.dataset if toy else "mnist"
    result = {"run": cfg.out_dir, "task": cfg.task, "dataset": name, "n": n, "seed": seed,
              "repeats": repeats, "guidance": guidance, "rows": rows}
    (out / f"compare_samplers_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"compare_samplers_{name}.md").write_text(comparison_table(result) + "\n")
    result["figure"] = save_comparison_figure(result, out / f"compare_samplers_{name}.png")
    return result


def comparison_table(result: dict[str, Any]) -> str:
    """One markdown row per (sampler, noise levels), one column per evaluation budget."""
    toy = result["task"] == "toy2d"
    rows = [r for r in result["rows"] if r["sampler"] != "ddpm"]
    budgets = sorted({r["budget"] for r in rows})
    metric = "sliced W2 / floor" if toy else "FID"
    lines = [f"| sampler ({metric}) at model evaluations | " + " | ".join(str(b) for b in budgets) + " |",
             "| --- |" + " --- |" * len(budgets)]
    for key in dict.fromkeys((r["sampler"], r["sigmas"]) for r in rows):
        cells = {r["budget"]: r for r in rows if (r["sampler"], r["sigmas"]) == key}

        def fmt(r: dict[str, Any]) -> str:  # heun spends 2S - 1 <= E calls: say how many
            value = f"{r['ratio']:.2f}" if toy else f"{r['fid']:.1f}"
            return value if r["evaluations"] == r["budget"] else f"{value} ({r['evaluations']})"
        lines.append(f"| {key[0]} ({key[1]}) | " + " | ".join(fmt(cells[b]) if b in cells else "–"
                                                             for b in budgets) + " |")
    for r in result["rows"]:
        if r["sampler"] == "ddpm":
            lines.append(f"| ddpm, all {r['evaluations']} steps | "
                         + (f"{r['ratio']:.2f}" if toy else f"{r['fid']:.1f}")
                         + " (reference) |" + " |" * (len(budgets) - 1))
    floor = result["rows"][0]["floor"]
    lines.append("")
    repeats = result.get("repeats", 1)
    seeds = f"seed {result['seed']}" if repeats == 1 else \
        f"mean of seeds {result['seed']}..{result['seed'] + repeats - 1}"
    lines.append(f"{result['dataset']}, {result['n']} samples, {seeds}; floor "
                 + (f"(data vs data sliced W2) {floor:.4f}" if toy else
                    f"(FID of {result['n']} training images) {floor:.2f}"))
    return "\n".join(lines)


def save_comparison_figure(result: dict[str, Any], path: str | Path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    toy = result["task"] == "toy2d"
    key = "ratio" if toy else "fid"
    fig, ax = plt.subplots(figsize=(6.8, 4.6), constrained_layout=True)
    colours = {"ddim": "tab:gray", "euler": "tab:blue", "heun": "tab:red", "dpmpp_2m": "tab:green"}
    groups = dict.fromkeys((r["sampler"], r["sigmas"]) for r in result["rows"] if r["sampler"] != "ddpm")
    for sampler, sigmas in groups:
        rs = [r for r in result["rows"] if (r["sampler"], r["sigmas"]) == (sampler, sigmas)]
        style = {"karras": "s--", "exponential": "^-.", "few_step": "d:"}.get(sigmas, "o-")
        ax.plot([r["evaluations"] for r in rs], [r[key] for r in rs], style,
                color=colours.get(sampler, "k"), label=f"{sampler} ({sigmas})", ms=4)
    for r in result["rows"]:
        if r["sampler"] == "ddpm":
            ax.axhline(r[key], color="k", ls=":", label=f"ddpm, {r['evaluations']} evaluations")
    if toy:
        ax.axhline(1.0, color="0.6", lw=0.8)
    else:
        ax.axhline(result["rows"][0]["floor"], color="0.6", lw=0.8, label="floor (training images)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model evaluations")
    ax.set_ylabel("sliced W2 / data-vs-data floor" if toy else "FID (classifier features)")
    ax.set_title(f"{result['dataset']}: sample quality against model evaluations (n = {result['n']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
