"""The PyTorch recipe a tinydiff user would otherwise write: tiny-diffusion on a 2D toy set.

Run with a PyTorch venv, never tinydiff's (this file imports neither tinydiff nor autograd):

    /work/torchvenv/bin/python benchmarks/torch_toy2d.py --dataset moons --seconds 30 \
        --threads 2 --out /tmp/torch-moons.npy

The recipe (issue 14): the MLP of tiny-diffusion (github.com/tanelp/tiny-diffusion: sinusoidal
embeddings of x, y (scale 25) and t, 128 wide, three residual GELU blocks), eps-prediction,
linear betas 1e-4..0.02 over T = 1000 (DDPM sec. 4), batch 1024, Adam at 1e-3, gradient norm
clipped to 1 (as tiny-diffusion), an EMA of the weights with decay 0.995. It trains for a
*wall-clock* budget (``--seconds``, the loop only), then draws ``--n`` points with DDPM's
ancestral sampler (Algorithm 2, all T steps, sigma_t^2 = beta_t: tinydiff eval's "fixed_large")
from the EMA weights and saves them as .npy, with a .json of the facts of the run beside it.
Score them with ``benchmarks/toy_recipes.py score FILE.npy --dataset NAME``, the same judge as
``tinydiff eval``.

The training data are fresh i.i.d. batches from the same distributions as
``tinydiff.data.toy2d`` (moons, 8gaussians), re-derived here: standardised with the exact
population moments. ``--dump-data N`` writes N points of the data instead, so that
``toy_recipes.py datacheck`` can check on a big draw that both definitions agree.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

DATASETS = ("moons", "8gaussians")


# --------------------------------------------------------------------------- data

def sample_data(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points of the standardised toy distribution ``name``, float32 (n, 2)."""
    if name == "moons":
        # Two half circles of radius 1, (cos u, sin u) and (1 - cos u, 1/2 - sin u), u ~ U[0, pi],
        # chosen with probability 1/2, plus N(0, 0.05^2) noise. Population moments:
        # mean (1/2, 1/4), var (3/4, 9/16 - 1/pi) + 0.05^2.
        upper = rng.random(n) >= 0.5
        u = rng.uniform(0.0, math.pi, n)
        pts = np.where(upper[:, None], np.stack([np.cos(u), np.sin(u)], 1),
                       np.stack([1.0 - np.cos(u), 0.5 - np.sin(u)], 1))
        pts = pts + 0.05 * rng.standard_normal((n, 2))
        mean = np.array([0.5, 0.25])
        var = np.array([0.75, 9 / 16 - 1 / math.pi]) + 0.05**2
    elif name == "8gaussians":
        # Eight N(mu_k, 0.125^2 I), mu_k on the unit circle at angles k pi / 4, equal weights:
        # mean 0, var per axis E[cos^2] + 0.125^2 = 1/2 + 0.125^2.
        k = rng.integers(0, 8, n)
        mu = np.stack([np.cos(k * math.pi / 4), np.sin(k * math.pi / 4)], 1)
        pts = mu + 0.125 * rng.standard_normal((n, 2))
        mean, var = np.zeros(2), np.full(2, 0.5 + 0.125**2)
    else:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return ((pts - mean) / np.sqrt(var)).astype(np.float32)


# --------------------------------------------------------------------------- the model

class SinusoidalEmbedding(nn.Module):
    """tiny-diffusion's embedding: [sin(s x w_k), cos(s x w_k)], w_k = 10000^(-k / (h - 1))."""

    def __init__(self, size: int, scale: float = 1.0) -> None:
        super().__init__()
        half = size // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1)))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = (self.scale * x)[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class Block(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.ff = nn.Linear(size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + nn.functional.gelu(self.ff(x))


class MLP(nn.Module):
    """tiny-diffusion's MLP: embed x, y (scale 25) and t, then Linear-GELU, residual blocks, Linear."""

    def __init__(self, hidden: int = 128, layers: int = 3, emb: int = 128) -> None:
        super().__init__()
        self.emb_x, self.emb_y = SinusoidalEmbedding(emb, 25.0), SinusoidalEmbedding(emb, 25.0)
        self.emb_t = SinusoidalEmbedding(emb, 1.0)
        self.net = nn.Sequential(nn.Linear(3 * emb, hidden), nn.GELU(),
                                 *[Block(hidden) for _ in range(layers)], nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.emb_x(x[:, 0]), self.emb_y(x[:, 1]), self.emb_t(t.float())], dim=-1)
        return self.net(h)


# --------------------------------------------------------------------------- train and sample

def train(args: argparse.Namespace) -> tuple[dict, np.ndarray | None]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    T = 1000
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    alpha_bar = torch.cumprod(1.0 - betas, 0)
    sqrt_ab, sqrt_1mab = alpha_bar.sqrt().float(), (1.0 - alpha_bar).sqrt().float()

    model = MLP(args.hidden, args.layers)
    ema = MLP(args.hidden, args.layers)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    steps, losses = 0, []
    start = time.perf_counter()
    while (steps < args.steps if args.steps else time.perf_counter() - start < args.seconds):
        x0 = torch.from_numpy(sample_data(args.dataset, args.batch_size, rng))
        t = torch.randint(0, T, (args.batch_size,))
        eps = torch.randn_like(x0)
        xt = sqrt_ab[t, None] * x0 + sqrt_1mab[t, None] * eps          # DDPM eq. 4
        loss = nn.functional.mse_loss(model(xt, t), eps)                 # Algorithm 1, line 5
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.lerp_(p, 1.0 - args.ema)
        steps += 1
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    info = {"dataset": args.dataset, "steps": steps, "train_seconds": round(seconds, 2),
            "steps_per_second": round(steps / seconds, 1),
            "final_loss_mean_last_100": float(np.mean(losses[-100:])) if losses else None,
            "n": args.n, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "recipe": {"hidden": args.hidden, "layers": args.layers, "batch_size": args.batch_size,
                       "lr": args.lr, "ema": args.ema, "grad_clip": 1.0, "T": T,
                       "schedule": "linear 1e-4..0.02", "parameterization": "eps",
                       "sampler": "DDPM (1000 steps, sigma^2 = beta)"},
            "seed": args.seed}
    if args.no_sample:
        return info, None

    # DDPM Algorithm 2 with sigma_t^2 = beta_t, from the EMA weights.
    start_s = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed + 1)
    alphas = (1.0 - betas).float()
    coef = (betas / (1.0 - alpha_bar).sqrt()).float()
    sigma = betas.sqrt().float()
    x = torch.randn(args.n, 2, generator=gen)
    with torch.no_grad():
        for i in reversed(range(T)):
            eps_hat = ema(x, torch.full((args.n,), i))
            x = (x - coef[i] * eps_hat) / alphas[i].sqrt()              # eq. 11
            if i > 0:
                x = x + sigma[i] * torch.randn(x.shape, generator=gen)
    info["sample_seconds"] = round(time.perf_counter() - start_s, 2)
    return info, x.numpy()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, default="moons")
    p.add_argument("--seconds", type=float, default=30.0, help="wall-clock training budget")
    p.add_argument("--steps", type=int, default=0,
                   help="train for exactly this many steps instead of --seconds (0: use --seconds); "
                        "on a busy machine, the steps the budget buys on a quiet one")
    p.add_argument("--no-sample", action="store_true",
                   help="only train and print the step rate (for throughput measurements)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, default=0.995, help="EMA decay")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3, help="residual blocks")
    p.add_argument("--n", type=int, default=4000, help="points to sample (tinydiff eval's TOY_N)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help=".npy file for the samples")
    p.add_argument("--dump-data", type=int, metavar="N", default=0,
                   help="write N data points to --out instead of training (for datacheck)")
    args = p.parse_args(argv)
    for name in ("seconds", "threads", "batch_size", "lr", "hidden", "layers", "n"):
        if not getattr(args, name) > 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.steps < 0:
        p.error(f"--steps must be >= 0, got {args.steps}")
    if not 0 <= args.ema < 1:
        p.error(f"--ema must be in [0, 1), got {args.ema}")
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.dump_data:
        np.save(args.out, sample_data(args.dataset, args.dump_data, np.random.default_rng(args.seed)))
        print(f"{args.dump_data} {args.dataset} points -> {args.out}")
        return 0
    info, samples = train(args)
    if samples is None:
        print(json.dumps(info))
        return 0
    if not np.isfinite(samples).all():
        print(f"error: {int((~np.isfinite(samples)).any(1).sum())} samples are not finite", file=sys.stderr)
        return 1
    np.save(args.out, samples)
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
