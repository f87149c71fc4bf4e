"""Diffusion on MNIST digits: the forward process, a trained UNet, and digits emerging from noise.

    python demos/mnist.py                                   # uses runs/mnist-cond (or -default) if there
    python demos/mnist.py --checkpoint runs/mnist-cond/checkpoint.npz
    python demos/mnist.py --steps 200                       # no checkpoint: train a short run first

A full run takes 15-20 minutes on two CPU cores (`tinydiff train mnist`); this demo reuses its
checkpoint. Without one it trains --steps steps of the same model, which gives blurry blobs
after a few hundred steps and recognisable digits only after a few thousand.

Figures (in --out, default runs/mnist-demo/):

1. the forward process on a few test digits (t = 0, T/4, T/2, 3T/4, T);
2. the training loss of the run;
3. a grid of samples, one row per digit for a class-conditional model with classifier-free
   guidance (eps_u + s (eps_c - eps_u));
4. one digit emerging from noise, with the model's running guess of the final image x_0_hat;
5. an animation of the reverse process.

If the MNIST classifier has been trained (`tinydiff eval` does it once and caches it), the
demo also says what the classifier thinks of the samples.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One BLAS thread, set before NumPy loads: on the shared two-core machine the UNet ran 2-7x
# slower with two OpenBLAS threads (they busy-wait; see tinydiff/cli.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, uninstalled

from autograd import no_grad  # noqa: E402
from tinydiff import plots  # noqa: E402
from tinydiff.defaults import (DEFAULT_GUIDANCE, PREVIEW_ETA, PREVIEW_SAMPLER, PREVIEW_STEPS,  # noqa: E402
                               clips_x0, default_eta)
from tinydiff.evaluate import classifier_path, classify, digit_metrics, load_classifier  # noqa: E402
from tinydiff.run import load_run  # noqa: E402
from tinydiff.sampling import model_fn_for  # noqa: E402
from tinydiff.schedules import ddim_timesteps  # noqa: E402
from tinydiff.train import Trainer, TrainConfig  # noqa: E402

# Where `tinydiff train mnist` puts its run (and where docs/training.md's run lives); the first that exists is used.
CHECKPOINTS = ("runs/mnist-cond/checkpoint.npz", "runs/mnist-default/checkpoint.npz")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None,
                   help="a trained MNIST checkpoint (default: the first of " + ", ".join(CHECKPOINTS)
                        + " that exists); if there is none, train --steps steps first")
    p.add_argument("--steps", type=int, default=300,
                   help="training steps when there is no checkpoint (the full default run is "
                        f"{TrainConfig.mnist().steps})")
    p.add_argument("--sample-steps", type=int, default=PREVIEW_STEPS["mnist"],
                   help="DDIM steps of the reverse process")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                   help="classifier-free guidance scale (class-conditional models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $TINYDIFF_DATA or the cache)")
    p.add_argument("--out", default="runs/mnist-demo", help="folder for the figures")
    return p.parse_args(argv)


def say(figure: str, what: str) -> None:
    print(f"   -> {figure}\n      {what}")


def x0_guesses(model_fn, diffusion, states, code_ts, parameterization: str) -> list[np.ndarray]:
    """The model's estimate of the final image from each intermediate x_t:
    x_0_hat = (x_t - sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(abar_t), clipped to [-1, 1]
    as the sampler clips it (at the noisiest steps 1/sqrt(abar_t) magnifies every error of eps)."""
    guesses = []
    for x, t in zip(states, code_ts):
        eps = diffusion.eps_from_model_output(model_fn(x, np.full((len(x),), t, np.int64)), x, t,
                                              parameterization)
        guesses.append(np.clip(diffusion.predict_x0_from_eps(x, t, eps), -1.0, 1.0))
    return guesses


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"Diffusion on MNIST. Figures go to {out}/\n")

    # 1. Forward process ------------------------------------------------------------------------
    print("1. Forward process on test digits")
    path = plots.show_forward("mnist", out / "1_forward.png", schedule=TrainConfig.mnist().schedule,
                              timesteps=TrainConfig.mnist().timesteps, seed=args.seed,
                              data_dir=args.data_dir)
    say(path, "Each row is one digit; by t = T it is indistinguishable from noise.")

    # 2. A trained model --------------------------------------------------------------------------
    found = [Path(c) for c in CHECKPOINTS if Path(c).exists()]
    checkpoint = Path(args.checkpoint) if args.checkpoint else (found[0] if found else Path(CHECKPOINTS[0]))
    if not checkpoint.exists():
        run_dir = out / "run"
        print(f"\n2. No checkpoint at {checkpoint}: training {args.steps} steps into {run_dir} "
              f"(the full run: tinydiff train mnist)")
        config = TrainConfig.mnist(steps=args.steps, out_dir=str(run_dir), data_dir=args.data_dir)
        trainer = Trainer.resume(run_dir, steps=args.steps) if (run_dir / "checkpoint.npz").exists() \
            else Trainer(config)
        trainer.train()
        checkpoint = trainer.checkpoint_path
    else:
        print(f"\n2. Using the trained checkpoint {checkpoint}")
    run = load_run(checkpoint)
    cfg = run.config
    print(f"   step {run.step}, {'class-conditional' if cfg.class_cond else 'unconditional'} UNet")
    path = plots.save_loss_curves({"MNIST UNet": checkpoint.parent}, out / "2_loss.png")
    say(path, "The training loss (noise-prediction MSE per pixel).")

    # 3. Samples ----------------------------------------------------------------------------------
    n_rows = 10
    labels = np.repeat(np.arange(10), 10) if cfg.class_cond else None
    guidance = args.guidance if cfg.class_cond else 1.0
    what = (f"rows conditioned on 0-9, guidance {guidance:g}" if cfg.class_cond else "unconditional")
    eta = default_eta(PREVIEW_ETA, cfg.task, PREVIEW_SAMPLER)
    print(f"\n3. Sampling 100 digits with DDIM ({args.sample_steps} steps, eta {eta:g}), {what}")
    rng = np.random.default_rng(args.seed)
    tau = ddim_timesteps(cfg.timesteps, args.sample_steps)
    with no_grad():
        fn = model_fn_for(run.model, labels, guidance)
        t0 = time.perf_counter()
        samples, trajectory = run.diffusion.sample(
            fn, (len(labels) if labels is not None else 100, 1, 28, 28), sampler=PREVIEW_SAMPLER,
            steps=args.sample_steps, eta=eta, rng=rng, return_trajectory=True, dtype=np.float32,
            clip_x0=clips_x0(cfg.task), parameterization=cfg.parameterization)
        seconds = time.perf_counter() - t0
    print(f"   {len(samples)} images in {seconds:.0f} s ({len(samples) / seconds:.1f} images/s)")
    path = plots.save_digit_grid(samples, out / "3_samples.png", nrow=10,
                                 title=f"Samples, step {run.step}: DDIM {args.sample_steps} steps (eta {eta:g}), {what}",
                                 row_labels=[str(d) for d in range(n_rows)] if cfg.class_cond else None)
    say(path, "100 generated digits.")

    # 4. One digit emerging -----------------------------------------------------------------------
    print("\n4. One digit, step by step")
    # trajectory[k] is x after k reverse steps; code timestep of the input to step k is tau[-1-k].
    picks = np.unique(np.linspace(0, len(tau) - 1, 10).astype(np.int64))
    code_ts = [int(tau[::-1][k]) for k in picks]
    index = 7 * 10 + 1 if cfg.class_cond else 0      # one of the sevens
    states = [trajectory[k][index:index + 1] for k in picks]
    with no_grad():
        one_fn = model_fn_for(run.model, labels[index:index + 1] if labels is not None else None, guidance)
        guesses = x0_guesses(one_fn, run.diffusion, states, code_ts, cfg.parameterization)
    frames = [s[0] for s in states] + [trajectory[-1][index]]
    guesses = [g[0] for g in guesses] + [trajectory[-1][index]]
    path = plots.save_denoising_strip(frames, [t + 1 for t in code_ts] + [0], out / "4_emerging.png",
                                      x0_predictions=guesses,
                                      title="A digit emerging from noise (top: $x_t$; bottom: the model's "
                                            "guess of $x_0$)")
    say(path, "Top: x_t along the reverse chain. Bottom: x_0_hat, what the model expects the\n"
              "      final image to be at that moment: the coarse shape is decided early, details late.")

    # 5. Animation ------------------------------------------------------------------------------------
    grid_index = np.arange(0, 100, 10) + np.arange(10)   # one of each digit, distinct positions
    ts = [cfg.timesteps] + [int(t) + 1 for t in tau[::-1][1:]] + [0]
    # 25 frames: noise compresses badly in a GIF, and this keeps the file around half a megabyte
    path = plots.save_reverse_gif([x[grid_index] for x in trajectory], out / "5_reverse.gif", ts=ts,
                                  nrow=5, frames=25, title="Reverse process")
    say(path, "Ten digits being generated, from noise (t = T) to samples (t = 0).")

    # What a classifier says ----------------------------------------------------------------------------
    clf_path = classifier_path()
    if clf_path.exists():
        classifier, info = load_classifier(clf_path)
        _, probs = classify(classifier, samples)
        digits = digit_metrics(probs, labels=labels)
        print(f"\nThe MNIST classifier ({100 * info['test_accuracy']:.1f}% test accuracy) on these 100 samples:")
        print(digits.report())
    else:
        print(f"\n(No classifier at {clf_path}; `tinydiff eval {checkpoint}` trains one and scores the model.)")
    print(f"\nDone in {time.perf_counter() - start:.0f} s. Figures: {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
