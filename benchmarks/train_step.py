"""tinydiff side of the speed benchmark: one training step or one sampling step, timed.

    python benchmarks/train_step.py --model unet --mode train --batch 64 [--threads 2] [--device cpu]
    python benchmarks/train_step.py --model unet --mode train --batch 64 --profile

A training step is what ``tinydiff.train.Trainer`` does per step, minus data loading and the
EMA update: draw t ~ U{0..T-1} and eps ~ N(0, I), x_t = q_sample(x_0, t, eps), predict eps,
MSE loss, backward, clip the gradient norm to 1, Adam/AdamW step. A sampling step is one
ancestral DDPM step x_t -> x_{t-1}: the model's forward under no_grad (eval mode) and the
update. x_0 is a fixed random batch (data loading is not what is measured).

Prints one ``RESULT {json}`` line (see _common.py); ``--profile`` prints where the time goes.
Run one configuration per process: peak RSS (ru_maxrss) is per process.
"""
from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from _common import MLP, TRAINING, UNET, emit, pin_threads, rss_mb, time_steps, worker_args  # noqa: E402

args = worker_args(__doc__.splitlines()[0])
pin_threads(args.threads)
# The engine's threads or the BLAS's, never both at once (see autograd/ops/_blocks.py).
engine_threads = args.threads if args.threading == "engine" else 1
os.environ["AUTOGRAD_NUM_THREADS"] = str(engine_threads)
if args.threading == "engine":
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

import numpy as np  # noqa: E402  (after pin_threads: OpenBLAS reads its thread count at import)

import autograd.functional as F  # noqa: E402
import autograd.random as ag_random  # noqa: E402
from autograd.backend import get_array_module, to_device  # noqa: E402
from autograd.malloc import keep_freed_host_memory  # noqa: E402
from autograd.optim import Adam, AdamW, clip_grad_norm_  # noqa: E402
from autograd.tensor import Tensor, no_grad  # noqa: E402
from tinydiff.diffusion import GaussianDiffusion  # noqa: E402
from tinydiff.models import MLPDenoiser, UNet, count_parameters  # noqa: E402
from tinydiff.schedules import make_beta_schedule  # noqa: E402
from tinydiff.train import TrainConfig  # noqa: E402


def check_configs() -> None:
    """The shared configs (used by the PyTorch side too) are tinydiff's real defaults."""
    assert UNet().config == {"name": "unet", **UNET}, (UNet().config, UNET)
    assert TrainConfig.toy2d().model == {"name": "mlp", **MLP}, TrainConfig.toy2d().model
    for name, preset in (("unet", TrainConfig.mnist()), ("mlp", TrainConfig.toy2d())):
        # The learning rate is left out: presets get tuned, and it does not change the work.
        want = {k: v for k, v in TRAINING[name].items() if k != "lr"}
        got = {k: getattr(preset, k) for k in want}
        assert got == want, (name, got, want)


def build(model_name: str) -> tuple[object, tuple[int, ...]]:
    if model_name == "unet":
        return UNet(), (UNET["in_channels"], UNET["image_size"], UNET["image_size"])
    return MLPDenoiser(**MLP), (MLP["data_dim"],)


def main() -> None:
    check_configs()
    keep_freed_host_memory()  # as the Trainer does (see autograd/malloc.py)
    ag_random.manual_seed(args.seed)
    model, sample_shape = build(args.model)
    model.to(args.device)
    cfg = TRAINING[args.model]
    diffusion = GaussianDiffusion(make_beta_schedule(cfg["schedule"], cfg["timesteps"]))
    xp = get_array_module(to_device(np.zeros(1), args.device))
    rng = xp.random.default_rng(args.seed)  # on the device: nothing crosses the bus per step
    shape = (args.batch,) + sample_shape
    x0 = rng.uniform(-1.0, 1.0, shape).astype(xp.float32)
    sync = (lambda: xp.cuda.Device().synchronize()) if args.device == "cuda" else (lambda: None)

    from op_profile import OpProfile
    clock = time.process_time if args.profile_clock == "cpu" else time.perf_counter
    prof = OpProfile(clock) if args.profile else None

    def lap(name: str, t0: float) -> float:
        now = clock()
        if prof is not None:
            prof.phase(name, now - t0)
        return now

    if args.mode == "train":
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt_cls = {"adam": Adam, "adamw": AdamW}[cfg["optimizer"]]
        optimizer = opt_cls(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])

        def step() -> float:
            t0 = clock()
            t = rng.integers(0, cfg["timesteps"], size=args.batch)
            noise = rng.standard_normal(shape, dtype=xp.float32)
            xt, target = diffusion.training_targets(x0, t, noise)
            t0 = lap("draw t, noise; q_sample", t0)
            if prof is not None:
                prof.mark()
            loss = F.mse_loss(model(Tensor(xt), t), Tensor(target))
            optimizer.zero_grad()
            t0 = clock()
            loss.backward()
            t0 = lap("backward", t0)
            clip_grad_norm_(params, cfg["grad_clip"])
            t0 = lap("clip_grad_norm_", t0)
            optimizer.step()
            lap("optimizer step", t0)
            return loss.item()
    else:
        model.eval()
        xt = rng.standard_normal(shape, dtype=xp.float32)
        t = xp.full((args.batch,), cfg["timesteps"] // 2, dtype=xp.int64)

        @no_grad()
        def step() -> None:
            if prof is not None:
                prof.mark()
            eps = model(Tensor(xt), t).data
            t0 = clock()
            diffusion.p_sample_step(eps, xt, t, rng.standard_normal(shape, dtype=xp.float32))
            lap("sampler update", t0)

    base_rss = rss_mb()
    if prof is None:
        times = time_steps(step, args.steps, args.warmup, sync)
        try:
            from autograd.ops._blocks import num_threads
        except ImportError:  # an engine from before it had threads of its own
            def num_threads() -> int:
                return 1
        extra = {"blas": blas(), "engine_threads": num_threads(), "threading": args.threading}
        if args.device == "cuda":  # CuPy's pool keeps what the step needed at its peak
            extra["gpu_peak_mb"] = xp.get_default_memory_pool().total_bytes() / 2**20
        emit(args, "tinydiff", times, count_parameters(model), base_rss, extra)
        return
    time_steps(step, 0, args.warmup, sync)
    prof.install()
    t0 = clock()
    for _ in range(args.steps):
        step()
    sync()
    total = (clock() - t0) / args.steps
    prof.remove()
    report_profile(prof, total)


def blas() -> dict:
    if args.device == "cuda":
        return {"name": "cuBLAS (CuPy)", "version": None, "corename": None, "threads": None,
                "OPENBLAS_CORETYPE": None}
    from blas_info import blas_info
    return blas_info()


def report_profile(prof, total: float) -> None:
    import json
    rows = prof.rows(args.steps)
    top = prof.top_ops(args.steps)
    accounted = sum(f + b for _, f, b in rows)
    print(f"tinydiff {args.model} {args.mode} batch {args.batch}: {total * 1e3:.1f} ms per step "
          f"while profiled (mean of {args.steps})")
    print(f"  {'where':<32}{'forward ms':>12}{'backward ms':>13}{'share':>8}")
    for name, f, b in rows:
        print(f"  {name:<32}{f:12.1f}{b:13.1f}{(f + b) / (total * 1e3):8.0%}")
    print(f"  {'(unaccounted)':<32}{total * 1e3 - accounted:12.1f}")
    print(f"  top ops: " + "; ".join(f"{o} x{c}: {f:.1f} + {b:.1f}" for o, c, f, b in top))
    print("PROFILE " + json.dumps({"model": args.model, "mode": args.mode, "batch": args.batch,
                                   "total_ms": total * 1e3, "rows": rows, "top": top}), flush=True)


if __name__ == "__main__":
    main()
