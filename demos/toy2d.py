"""A diffusion model on 2D points, start to finish: noise the data, learn to undo it, sample.

    python demos/toy2d.py                      # under a minute on two CPU cores (36 s measured)
    python demos/toy2d.py --dataset 8gaussians
    python demos/toy2d.py --steps 500          # a quick try (samples will be fuzzier)

What happens, with one figure per stage (all saved in --out, default runs/toy2d-demo/):

1. The forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) turns the data into
   Gaussian noise over T = 1000 steps. Nothing is learned here.
2. Training (DDPM, Algorithm 1): a small MLP eps_theta(x_t, t) learns to predict the noise
   that was added, from fresh random (x_0, t, eps) every step.
3. What it learned: -eps_theta(x, t) / sqrt(1 - abar_t) estimates the score grad log p_t(x), a
   direction field that points towards the data, drawn on a grid at several t.
4. The reverse process: start from pure noise and follow the model back to the data (DDIM,
   deterministic), drawn as paths and as an animation.
5. How good is it? The sliced Wasserstein distance between the samples and fresh data, next
   to the same distance between two fresh data samples: the floor a perfect model would reach.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One BLAS thread: this MLP's matrices are small, and on a busy machine OpenBLAS's spinning
# threads slow it down many times over (see tinydiff/cli.py). Must be set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, uninstalled

from autograd import no_grad  # noqa: E402
from tinydiff import plots  # noqa: E402
from tinydiff.data.toy2d import TOY2D_DATASETS, sample_toy2d  # noqa: E402
from tinydiff.defaults import PREVIEW_SAMPLER, PREVIEW_STEPS, clips_x0  # noqa: E402
from tinydiff.evaluate import TOY_N, toy2d_metrics  # noqa: E402
from tinydiff.sampling import model_fn_for  # noqa: E402
from tinydiff.schedules import ddim_timesteps  # noqa: E402
from tinydiff.train import Trainer, TrainConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig.toy2d()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=TOY2D_DATASETS, default="moons", help="the 2D distribution")
    p.add_argument("--steps", type=int, default=defaults.steps, help="training steps")
    p.add_argument("--sample-steps", type=int, default=PREVIEW_STEPS["toy2d"],
                   help="DDIM steps of the reverse process")
    p.add_argument("--n", type=int, default=TOY_N, help="points sampled for the metric")
    p.add_argument("--seed", type=int, default=0, help="seed of training and sampling")
    p.add_argument("--out", default="runs/toy2d-demo", help="folder for the figures and the run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while training")
    return p.parse_args(argv)


def say(figure: str, what: str) -> None:
    print(f"   -> {figure}\n      {what}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"Diffusion on 2D points: {args.dataset}. Figures go to {out}/\n")

    # 1. The forward process ------------------------------------------------------------------
    print("1. Forward process: data -> noise (fixed, nothing learned)")
    config = TrainConfig.toy2d(args.dataset, steps=args.steps, seed=args.seed, out_dir=str(out),
                               progress=not args.no_progress)
    path = plots.show_forward(args.dataset, out / "1_forward.png", schedule=config.schedule,
                              timesteps=config.timesteps, seed=args.seed)
    say(path, "x_t at t = 0, T/4, T/2, 3T/4, T: the structure dissolves into one Gaussian blob.\n"
              "      Colours mark where each point started.")

    # 2. Training -----------------------------------------------------------------------------
    print(f"\n2. Training: an MLP learns eps_theta(x_t, t) for {config.steps} steps "
          f"(batch {config.batch_size})")
    trainer = Trainer(config)
    trainer.train()
    print(f"   {trainer.seconds():.0f} s of training; checkpoint in {trainer.checkpoint_path}")
    path = plots.save_loss_curves({args.dataset: trainer.log_path}, out / "2_loss.png")
    say(path, "The loss: mean squared error of the predicted noise. It drops fast, then slowly;\n"
              "      it never reaches 0 because at small t the noise is finer than the data's own\n"
              "      spread and cannot be told from it (at large t, x_t is nearly the noise itself).")

    # 3. What the model learned ---------------------------------------------------------------
    print("\n3. What the model learned: a direction field")
    model, diffusion = trainer.model, trainer.diffusion
    with trainer.ema.swapped_into(model), no_grad():
        model.eval()
        fn = model_fn_for(model)
        path = plots.save_direction_field(fn, diffusion, out / "3_score_field.png", dataset=args.dataset,
                                          parameterization=config.parameterization, seed=args.seed)
        say(path, "-eps_theta(x, t) / sqrt(1 - abar_t), the estimated score, at four t. Near t = 0 it\n"
                  "      points onto the data; at large t, where x_t is almost pure noise, simply inwards.")

        # 4. The reverse process --------------------------------------------------------------
        print(f"\n4. Reverse process: noise -> data, DDIM with {args.sample_steps} steps")
        rng = np.random.default_rng(args.seed + 1)
        samples, trajectory = diffusion.sample(fn, (args.n, 2), sampler=PREVIEW_SAMPLER,
                                               steps=args.sample_steps, rng=rng, return_trajectory=True,
                                               dtype=np.float32, clip_x0=clips_x0(config.task),
                                               parameterization=config.parameterization)
        reference = sample_toy2d(args.dataset, 2000, args.seed + 2)
        shown = [x[:2000] for x in trajectory]   # plot at most 2000 points
        # The state after stepping from code timestep tau[i] is x at paper time tau[i-1] + 1 (0 at the end).
        tau = ddim_timesteps(config.timesteps, args.sample_steps)
        ts = [config.timesteps] + [int(t) + 1 for t in tau[::-1][1:]] + [0]
        path = plots.save_trajectories(shown, out / "4_trajectories.png", reference=reference)
        say(path, "40 paths from noise (orange) to samples (black) over the data (grey).")
        path = plots.save_reverse_gif(shown, out / "5_reverse.gif", ts=ts, reference=reference)
        say(path, "The same, animated: the cloud of noise contracts onto the data.")
    model.train()
    path = plots.save_scatter(samples[:2000], out / "6_samples.png", reference=reference,
                              title=f"{args.dataset}: {len(shown[0])} samples (DDIM, {args.sample_steps} steps)")
    say(path, "Samples (blue) over fresh data (grey).")

    # 5. How good is it? ----------------------------------------------------------------------
    print("\n5. Sample quality against fresh data from the true distribution")
    metrics = toy2d_metrics(samples, args.dataset, seed=args.seed)
    print("   " + metrics.report().replace("\n", "\n   "))
    verdict = ("indistinguishable from data at this sample size" if metrics.sw_ratio < 1.25 else
               "close to the data" if metrics.sw_ratio < 2 else "still visibly off: train longer")
    print(f"   The samples are {metrics.sw_ratio:.2f}x the floor: {verdict}.")
    print(f"\nDone in {time.perf_counter() - start:.0f} s. Figures: {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
