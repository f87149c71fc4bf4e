"""PyTorch side of the speed benchmark: tinydiff's models layer for layer, timed the same way.

    TORCH_VENV/bin/python benchmarks/torch_reference.py --model unet --mode train --batch 64

Needs only torch (``pip install torch==2.13.0+cpu``, or ``pip install -e .[bench]``); it never
imports tinydiff. The modules below mirror ``tinydiff/models/unet.py`` and ``mlp.py`` with the
same names, widths and order, so the parameter counts agree exactly (the driver asserts it);
the step is the one ``train_step.py`` times (see there), written as idiomatic PyTorch:
F.group_norm then F.silu, F.scaled_dot_product_attention, torch.optim.Adam/AdamW (default
implementation), torch.nn.utils.clip_grad_norm_, float32 throughout.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import MLP, TRAINING, UNET, emit, pin_threads, rss_mb, time_steps, worker_args  # noqa: E402

args = worker_args(__doc__.splitlines()[0])
pin_threads(args.threads)

import torch  # noqa: E402  (after pin_threads)
import torch.nn.functional as F  # noqa: E402
from torch_models import MLPDenoiser, UNet, alphas_cumprod  # noqa: E402


# --------------------------------------------------------------------------- the steps
def main() -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.model == "unet":
        model = UNet(**UNET)
        sample_shape = (UNET["in_channels"], UNET["image_size"], UNET["image_size"])
    else:
        model = MLPDenoiser(**MLP)
        sample_shape = (MLP["data_dim"],)
    model.to(device)
    cfg = TRAINING[args.model]
    T = cfg["timesteps"]
    abar, betas = alphas_cumprod(cfg["schedule"], T)
    coef = {k: v.to(device=device, dtype=torch.float32) for k, v in dict(
        sqrt_abar=abar.sqrt(), sqrt_1m_abar=(1 - abar).sqrt(), sqrt_recip_alpha=(1 - betas).rsqrt(),
        eps_coef=betas / (1 - abar).sqrt(), sigma=betas.sqrt()).items()}
    shape = (args.batch,) + sample_shape
    bcast = (-1,) + (1,) * len(sample_shape)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    x0 = torch.rand(shape, generator=gen, device=device) * 2 - 1
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    if args.mode == "train":
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg["optimizer"]]
        optimizer = opt_cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])

        def step() -> float:
            t = torch.randint(0, T, (args.batch,), generator=gen, device=device)
            noise = torch.randn(shape, generator=gen, device=device)
            xt = coef["sqrt_abar"][t].view(bcast) * x0 + coef["sqrt_1m_abar"][t].view(bcast) * noise
            loss = F.mse_loss(model(xt, t), noise)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
            optimizer.step()
            return loss.item()
    else:
        model.eval()
        xt = torch.randn(shape, generator=gen, device=device)
        t = torch.full((args.batch,), T // 2, device=device)

        @torch.no_grad()
        def step() -> None:
            eps = model(xt, t)
            noise = torch.randn(shape, generator=gen, device=device)
            mean = coef["sqrt_recip_alpha"][t].view(bcast) * (xt - coef["eps_coef"][t].view(bcast) * eps)
            mean + coef["sigma"][t].view(bcast) * noise

    base_rss = rss_mb()
    times = time_steps(step, args.steps, args.warmup, sync)
    n_params = sum(p.numel() for p in model.parameters())
    extra = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
             "torch_blas": "MKL + oneDNN" if torch.backends.mkldnn.is_available() else "MKL"}
    if args.device == "cuda":
        extra["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    emit(args, "torch", times, n_params, base_rss, extra)


if __name__ == "__main__":
    main()
