"""The PyTorch recipe a user would otherwise write for unconditional MNIST, on a wall-clock budget.

Run with a PyTorch venv, never tinydiff's (this file imports neither tinydiff nor autograd):

    /work/torchvenv/bin/python benchmarks/torch_mnist.py --data-dir ../shared/data/mnist \
        --snapshots 1200,2400 --threads 2 --out /tmp/torch-mnist

The recipe (issue 14): the benchmark's unconditional UNet (``_common.UNET``: 32 channels, mult
1-2-2, two res blocks per level, attention at 7x7, dropout 0.1; 1,623,169 parameters, the model
of ``torch_models.UNet``), eps-prediction, linear betas 1e-4..0.02 over T = 1000 (DDPM sec. 4),
Adam at 2e-4, batch 64, gradient norm clipped to 1, an EMA of the weights (decay ``--ema``),
pixels scaled to [-1, 1], shuffled epochs of the 60,000 training images. Training stops at each
``--snapshots`` second of the loop's own wall time (sampling is not counted) to draw ``--n``
samples from the EMA weights with each ``--samplers`` entry ``STEPS:ETA``: DDIM (Song et al.
2020, eq. 12 with eq. 16's sigma; eta = 0 deterministic, eta = 1 DDPM's noise) over STEPS
timesteps evenly spaced over the T, x_0 estimates clipped to [-1, 1]. Each set is saved as
``OUT/samples_<seconds>s_ddim<STEPS>_eta<ETA>.npy`` (float32, (n, 1, 28, 28), in [-1, 1]) with
a .json of the facts of the snapshot beside it. Score them with the project's classifier (``tinydiff eval`` judges
tinydiff runs the same way).

The MNIST IDX files are read from ``--data-dir`` (gzipped or not), checked against the folder's
SHA256SUMS when it has one; nothing is downloaded and nothing is unpickled.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_models import UNet, alphas_cumprod  # noqa: E402

from _common import UNET  # noqa: E402

TRAIN_IMAGES = "train-images-idx3-ubyte"


def read_train_images(folder: Path) -> np.ndarray:
    """The 60,000 training images as uint8 (60000, 28, 28), checked against SHA256SUMS if present."""
    candidates = [folder / (TRAIN_IMAGES + ".gz"), folder / TRAIN_IMAGES]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        sys.exit(f"torch_mnist.py: no {TRAIN_IMAGES}[.gz] in {folder}; give --data-dir, the folder "
                 "with the MNIST IDX files")
    raw = path.read_bytes()
    sums = folder / "SHA256SUMS"
    if sums.is_file():
        want = {line.split()[-1].lstrip("*"): line.split()[0] for line in sums.read_text().splitlines() if line.strip()}
        if path.name in want and hashlib.sha256(raw).hexdigest() != want[path.name]:
            sys.exit(f"torch_mnist.py: {path} does not match its SHA-256 in {sums}")
    data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    magic, n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051 or len(data) != 16 + n * rows * cols:
        sys.exit(f"torch_mnist.py: {path} is not an IDX image file (magic {magic}, {len(data)} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


@torch.no_grad()
def ddim_sample(model: torch.nn.Module, abar: torch.Tensor, n: int, steps: int, batch: int,
                gen: torch.Generator, eta: float = 0.0) -> np.ndarray:
    """DDIM: x_{t'} = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps + sigma z, t' the next
    timestep, sigma = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t')."""
    model.eval()
    T = len(abar)
    ts = np.linspace(0, T - 1, steps).round().astype(int)[::-1]
    out = []
    for lo in range(0, n, batch):
        x = torch.randn((min(batch, n - lo), 1, 28, 28), generator=gen)
        for i, t in enumerate(ts):
            a = abar[t].float()
            a_next = abar[ts[i + 1]].float() if i + 1 < len(ts) else torch.tensor(1.0)
            eps = model(x, torch.full((len(x),), int(t)))
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()  # consistent with the clipped x0
            var = eta ** 2 * (1 - a_next) / (1 - a) * (1 - a / a_next)
            x = a_next.sqrt() * x0 + (1 - a_next - var).clamp(min=0).sqrt() * eps
            if eta > 0 and i + 1 < len(ts):
                x = x + var.sqrt() * torch.randn(x.shape, generator=gen)
        out.append(x.numpy())
    model.train()
    return np.concatenate(out).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder with the MNIST IDX files")
    p.add_argument("--snapshots", default="1200,2400",
                   help="seconds of training (the loop alone) at which to sample; the last ends the run "
                        "(default: 1200,2400, i.e. 20 and 40 minutes)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay (default 0.999)")
    p.add_argument("--n", type=int, default=1000, help="samples per snapshot (default 1000)")
    p.add_argument("--samplers", default="50:0,100:1",
                   help="DDIM sample sets per snapshot as STEPS:ETA, comma-separated (default: 50:0,100:1: "
                        "the deterministic 50-step chain and DDPM's noise over 100 steps, tinydiff's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the samples and their .json")
    args = p.parse_args()
    snapshots = sorted(float(s) for s in args.snapshots.split(","))
    if not snapshots or snapshots[0] <= 0:
        p.error("--snapshots: give positive seconds, e.g. 1200,2400")
    try:
        samplers = [(int(a), float(b)) for a, b in (item.split(":") for item in args.samplers.split(","))]
    except ValueError:
        p.error(f"--samplers: give STEPS:ETA pairs such as 50:0,100:1, got {args.samplers!r}")
    if any(k < 1 or not 0 <= e <= 1 for k, e in samplers):
        p.error("--samplers: STEPS must be >= 1 and ETA in [0, 1]")

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    images = torch.from_numpy(read_train_images(args.data_dir).astype(np.float32) / 127.5 - 1)[:, None]
    model = UNet(**UNET)
    ema = UNet(**UNET)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    abar, _ = alphas_cumprod("linear", 1000)
    sqrt_abar, sqrt_1m = abar.sqrt().float(), (1 - abar).sqrt().float()
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    step, trained, order, pos = 0, 0.0, torch.randperm(len(images), generator=gen), 0
    for target in snapshots:
        start = time.perf_counter()
        while trained + (time.perf_counter() - start) < target:
            if pos + args.batch_size > len(order):
                order, pos = torch.randperm(len(images), generator=gen), 0
            x0 = images[order[pos:pos + args.batch_size]]
            pos += args.batch_size
            t = torch.randint(0, 1000, (len(x0),), generator=gen)
            noise = torch.randn(x0.shape, generator=gen)
            xt = sqrt_abar[t].view(-1, 1, 1, 1) * x0 + sqrt_1m[t].view(-1, 1, 1, 1) * noise
            loss = F.mse_loss(model(xt, t), noise)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            step += 1
            with torch.no_grad():
                for e, q in zip(ema.parameters(), params):
                    e.lerp_(q, 1 - args.ema)
        trained += time.perf_counter() - start
        for ddim_steps, eta in samplers:
            t0 = time.perf_counter()
            # Its own generator: the sample sets do not move the training's random stream.
            samples = ddim_sample(ema, abar, args.n, ddim_steps, 250,
                                  torch.Generator().manual_seed(args.seed + 1), eta=eta)
            name = f"samples_{int(target)}s_ddim{ddim_steps}_eta{eta:g}"
            np.save(args.out / f"{name}.npy", samples)
            facts = {"snapshot_seconds": target, "train_seconds": round(trained, 2), "steps": step,
                     "steps_per_second": round(step / trained, 3), "loss_last": loss.item(),
                     "n": args.n, "ddim_steps": ddim_steps, "eta": eta,
                     "sample_seconds": round(time.perf_counter() - t0, 2),
                     "threads": args.threads, "torch": torch.__version__, "seed": args.seed,
                     "params": sum(q.numel() for q in params),
                     "recipe": {"model": UNET, "betas": "linear 1e-4..0.02, T = 1000", "optimizer": "Adam",
                                "lr": args.lr, "batch_size": args.batch_size, "ema": args.ema, "grad_clip": 1.0}}
            (args.out / f"{name}.json").write_text(json.dumps(facts, indent=1))
            print(json.dumps({k: v for k, v in facts.items() if k != "recipe"}), flush=True)


if __name__ == "__main__":
    main()
