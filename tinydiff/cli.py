"""The ``tinydiff`` command line: train, sample, evaluate, and look at the forward process.

    tinydiff train toy2d --dataset moons            # 4000 steps, 10-45 s on two CPU cores
    tinydiff train mnist                            # class-conditional UNet, ~50 min of two CPU cores
    tinydiff sample runs/toy2d-moons/checkpoint.npz --sampler ddim --steps 50 --out moons.png
    tinydiff eval runs/mnist-cond                   # FID, class histogram, bits/dim, images/s
    tinydiff show-forward --dataset moons
    tinydiff exercises start                        # learn by doing: stubs to fill in, then
    tinydiff exercises check 1.3                    # graded by gradcheck, Bayes' rule, Monte Carlo

Every command explains its options with ``--help``. ``main(argv)`` returns the exit status
(0 success, 1 error, 2 bad usage, 130 Ctrl-C, 143 SIGTERM), so tests can call it in-process;
every error is one or two lines on stderr (``--debug`` or TINYDIFF_DEBUG=1 add the traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# One BLAS thread unless the user asks for more, set before NumPy loads: OpenBLAS's busy-waiting
# threads starve the Python thread that feeds them on a small machine
# (measured: benchmarks/results/tinydiff-measurements.md#one-blas-thread-by-default).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json  # noqa: E402 (after the BLAS setting)

import numpy as np  # noqa: E402 (after the BLAS setting)

from autograd.backend import cuda_available, cuda_unavailable_reason  # noqa: E402
from autograd.malloc import keep_freed_host_memory  # noqa: E402
from tinydiff import defaults, distributed, evaluate, plots  # noqa: E402
from tinydiff.cli_checks import (  # noqa: E402
    check_resume,
    finite_float,
    nonfinite_entry,
    nonnegative_int,
    option_message,
    output_file,
    output_folder,
    positive_int,
)
from tinydiff.data.toy2d import TOY2D_DATASETS, sample_toy2d  # noqa: E402 (after the BLAS setting)
from tinydiff.diffusion import PARAMETERIZATIONS, SAMPLERS  # noqa: E402
from tinydiff.errors import debug_requested, describe  # noqa: E402
from tinydiff.lab import (  # noqa: E402
    COMPARE_EVALS,
    COMPARE_SAMPLERS,
    compare_samplers,
    comparison_table,
    oracle_lab,
)
from tinydiff.losses import T_SAMPLINGS  # noqa: E402
from tinydiff.run import CHECKPOINT_NAME, TrainConfig, load_run, sample_shape  # noqa: E402
from tinydiff.samplers import ODE_SAMPLERS, SIGMA_SCHEDULES, model_evaluations  # noqa: E402
from tinydiff.sampling import generate  # noqa: E402
from tinydiff.schedules import SCHEDULES, SPACINGS  # noqa: E402
from tinydiff.train import Trainer  # noqa: E402

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(Exception):
    """A problem the user can fix; printed as 'tinydiff: error: ...' without a traceback."""


# --------------------------------------------------------------------------- argument parsing

def _per_task(default: dict[str, Any]) -> str:
    """A per-task default as --help shows it: '0 for toy2d, 1 for mnist'."""
    shown = {task: f"{v:g}" if isinstance(v, float) else str(v) for task, v in default.items()}
    return f"{shown['toy2d']} for toy2d, {shown['mnist']} for mnist"


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps prose paragraphs to the terminal, but keeps indented lines (tables, examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith("  ") for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(super()._fill_text(para, width, indent))
        return "\n\n".join(out)


def _add_common_train_options(p: argparse.ArgumentParser, d: Any) -> None:
    """Options shared by `train toy2d` and `train mnist`; ``d`` is the preset whose defaults the
    help text shows. They default to None so that we can tell which ones the user gave."""
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=nonnegative_int, metavar="N",
                   help=f"total optimizer steps; with --resume, the new total (a decaying "
                        f"--lr-schedule is laid out over it, so it changes the rest of the run) "
                        f"(default: {d.steps})")
    g.add_argument("--batch-size", type=positive_int, metavar="B",
                   help=f"examples per step (default: {d.batch_size})")
    g.add_argument("--lr", type=finite_float, metavar="LR",
                   help=f"peak learning rate, reached after the warmup (default: {d.lr:g})")
    g.add_argument("--optimizer", choices=("adam", "adamw"),
                   help=f"Adam (L2 weight decay) or AdamW (decoupled weight decay) (default: {d.optimizer})")
    g.add_argument("--weight-decay", type=finite_float, metavar="WD",
                   help=f"weight decay coefficient (default: {d.weight_decay:g})")
    g.add_argument("--warmup-steps", type=nonnegative_int, metavar="N",
                   help=f"linear learning-rate warmup from 0 over N steps (default: {d.warmup_steps})")
    g.add_argument("--lr-schedule", choices=("constant", "cosine", "linear"),
                   help=f"learning rate after the warmup: constant, or a cosine or linear decay to 0 "
                        f"at the last step (default: {d.lr_schedule})")
    g.add_argument("--grad-clip", type=finite_float, metavar="C",
                   help=f"clip the global gradient norm to C; 0 turns clipping off (default: {d.grad_clip:g})")
    g.add_argument("--ema-decay", type=finite_float, metavar="D",
                   help=f"decay of the exponential moving average of the weights used for sampling "
                        f"(default: {d.ema_decay:g})")
    g = p.add_argument_group("diffusion")
    g.add_argument("--schedule", choices=SCHEDULES,
                   help=f"noise schedule beta_1..beta_T (default: {d.schedule})")
    g.add_argument("--timesteps", type=positive_int, metavar="T",
                   help=f"number of diffusion steps T (default: {d.timesteps})")
    g.add_argument("--parameterization", choices=PARAMETERIZATIONS,
                   help=f"what the network predicts: the noise eps, x_0, or v (default: {d.parameterization})")
    g.add_argument("--t-sampling", choices=T_SAMPLINGS,
                   help=f"how each example's t is drawn: uniform over 0..T-1 (DDPM), or lognormal "
                        f"in the noise level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), ln "
                        f"sigma ~ N(MEAN, STD^2), EDM's training distribution (Karras et al. 2022): "
                        f"more steps at low noise, where the fine detail is (default: {d.t_sampling})")
    g.add_argument("--lognormal-mean", type=finite_float, metavar="MEAN",
                   help=f"--t-sampling lognormal: mean of ln sigma (default: {d.lognormal_mean:g})")
    g.add_argument("--lognormal-std", type=finite_float, metavar="STD",
                   help=f"--t-sampling lognormal: standard deviation of ln sigma (default: {d.lognormal_std:g})")
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=nonnegative_int,
                   help=f"seed of every random draw; the same seed repeats the run exactly (default: {d.seed})")
    g.add_argument("--device", choices=("cpu", "cuda"),
                   help=f"cpu (NumPy) or cuda (CuPy, needs a GPU) (default: {d.device})")
    g.add_argument("--out", metavar="DIR", dest="out_dir",
                   help=f"folder for checkpoint.npz, loss.csv, config.json and samples.png "
                        f"(default: {d.out_dir})")
    g.add_argument("--ckpt-every", type=positive_int, metavar="N",
                   help=f"save a checkpoint every N steps, and always at the end (default: {d.ckpt_every})")
    g.add_argument("--log-every", type=positive_int, metavar="N",
                   help=f"write a row of loss.csv every N steps (default: {d.log_every})")
    g.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out (its settings are kept; --steps, --device "
                        "and the logging options may change). Without it, an --out that already "
                        "holds a checkpoint is an error")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-preview", action="store_true",
                   help="skip drawing samples into DIR/samples.png at the end")
    _add_distributed_option(g)


def _add_distributed_option(g: Any) -> None:
    g.add_argument("--distributed", action="store_true",
                   help="one of K data-parallel processes started by 'mpiexec -n K tinydiff train "
                        "...': each computes the gradient of its 1/K of every --batch-size batch "
                        "(the global batch, a multiple of K), the gradients are averaged (MPI on "
                        "cpu, NCCL on cuda, one GPU per process), and rank 0 alone prints and "
                        "writes --out; --resume works with any K. Needs the 'mpi' extra")


TRAIN_EPILOG = """outputs (in --out):
  checkpoint.npz  model, EMA weights, optimizer, RNG and data state (resume with --resume)
  loss.csv        step, loss, lr, grad_norm, time
  config.json     the settings of the run
  samples.png     samples from the EMA weights at the end (unless --no-preview)

Ctrl-C or SIGTERM (kill, a scheduler) stops after the current step and saves a
checkpoint (exit 130 or 143); a killed run resumes exactly with --resume. NumPy's BLAS runs one thread
unless OPENBLAS_NUM_THREADS says otherwise: on a shared two-core machine one thread was faster
for both tasks (MNIST UNet step: 1.1 s with one thread, 2.3-7.1 s with two); on a quiet
machine with more cores, try OPENBLAS_NUM_THREADS=<cores> for the UNet."""


EVAL_EPILOG = """examples:
  tinydiff eval runs/toy2d-moons                       # sliced W2 and MMD vs the data floor
  tinydiff eval runs/mnist-cond --out metrics.json     # FID, classes, confidence, bits/dim, speed
  tinydiff eval runs/mnist-cond --n 1000 --bpd-n 0 --no-speed   # a quick look

The first MNIST evaluation trains the classifier (a few minutes) and caches it."""


def build_parser() -> argparse.ArgumentParser:
    toy, mnist = TrainConfig.toy2d(), TrainConfig.mnist()

    parser = argparse.ArgumentParser(
        prog="tinydiff", formatter_class=_HelpFormatter,
        description="Denoising diffusion models (DDPM, DDIM) from scratch: train, sample, evaluate.",
        epilog="Run 'tinydiff COMMAND --help' for the options of a command.")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, also print the traceback (for bug reports); may stand "
                             "anywhere on the line; TINYDIFF_DEBUG=1 does the same")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # train ----------------------------------------------------------------------------------
    train = sub.add_parser("train", help="train a diffusion model (toy2d or mnist)",
                           description="Train a denoiser with DDPM's Algorithm 1.",
                           formatter_class=_HelpFormatter)
    tsub = train.add_subparsers(dest="task", metavar="TASK", required=True)

    p = tsub.add_parser("toy2d", help="an MLP on a 2D point distribution (CPU, under a minute)",
                        description="Train a small MLP denoiser on a 2D toy distribution. The "
                                    "defaults (4000 steps, cosine decay from 8e-3, t drawn "
                                    "log-normal in the noise level) took 27-33 s (moons) and 29-44 s "
                                    "(8gaussians) of wall time on a slow 2-vCPU machine "
                                    "(2026-12-07), where PyTorch's tiny-diffusion recipe ran 94 "
                                    "steps/s; about 10 s where it runs 350 (the step rates scale "
                                    "together). Not measured on a GPU.",
                        epilog=TRAIN_EPILOG, formatter_class=_HelpFormatter)
    p.add_argument("--dataset", choices=TOY2D_DATASETS,
                   help=f"the 2D distribution to learn (default: {toy.dataset})")
    g = p.add_argument_group("model")
    g.add_argument("--hidden-dim", type=positive_int, metavar="H",
                   help=f"width of each hidden layer (default: {toy.model['hidden_dim']})")
    g.add_argument("--num-layers", type=positive_int, metavar="L",
                   help=f"number of hidden layers (default: {toy.model['num_layers']})")
    g.add_argument("--input-embed-dim", type=positive_int, metavar="D",
                   help=f"sinusoidal features per coordinate of x (even; Fourier features, as "
                        f"tiny-diffusion) (default: {toy.model.get('input_embed_dim', 'none')})")
    _add_common_train_options(p, toy)
    p.set_defaults(handler=cmd_train)

    p = tsub.add_parser("mnist", help="a class-conditional UNet on MNIST digits (CPU, 15-20 minutes)",
                        description="Train a small UNet denoiser on MNIST (28x28 digits in [-1, 1]). "
                                    "The defaults (3200 steps, cosine decay from 2e-3) took 14.0 "
                                    "minutes of wall time unconditional (--no-class-cond) and "
                                    "17.5 minutes class-conditional on a quiet 2-vCPU machine "
                                    "(2026-12-03; 0.26 s/step unconditional), about 20 on one a third "
                                    "slower. Not measured on a GPU.",
                        epilog=TRAIN_EPILOG, formatter_class=_HelpFormatter)
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder holding the MNIST IDX files (.gz or not); default: $TINYDIFF_DATA, "
                        "else the cache (~/.cache/tinydiff/mnist), downloading there if needed")
    p.add_argument("--class-cond", action=argparse.BooleanOptionalAction, default=None,
                   help="condition on the digit label, with label dropout for classifier-free "
                        f"guidance; --no-class-cond trains an unconditional model "
                        f"(default: {'on' if mnist.class_cond else 'off'})")
    p.add_argument("--p-uncond", type=finite_float, metavar="P",
                   help=f"with --class-cond: probability of training on the null label instead "
                        f"(default: {mnist.p_uncond:g})")
    g = p.add_argument_group("model")
    g.add_argument("--model-channels", type=positive_int, metavar="C",
                   help=f"UNet base channel count (default: {mnist.model['model_channels']})")
    g.add_argument("--dropout", type=finite_float, metavar="P",
                   help=f"dropout in the UNet's residual blocks (default: {mnist.model['dropout']:g})")
    _add_common_train_options(p, mnist)
    p.set_defaults(handler=cmd_train)

    # sample ---------------------------------------------------------------------------------
    p = sub.add_parser("sample", help="draw samples from a checkpoint's EMA weights",
                       formatter_class=_HelpFormatter,
                       description="Draw samples from a training checkpoint (its EMA weights) and save "
                                   "them as a PNG: a scatter plot for toy 2D runs, an image grid "
                                   "for MNIST. Reports samples per second.")
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="a checkpoint.npz written by 'tinydiff train' (or its run folder)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="ddpm: ancestral sampling over all T steps; ddim: deterministic (eta=0) or "
                        "stochastic sampling over --steps steps; euler, heun, dpmpp_2m: the "
                        "probability-flow ODE (Karras Alg. 1; DPM-Solver++(2M)), --steps noise "
                        "levels, S / 2S-1 / S model calls; dpmpp_3m, unipc: third-order multistep "
                        "solvers (DPM-Solver++(3M); UniPC-2, bh2), S calls; euler_ancestral: Euler "
                        f"with DDPM's noise (default: {_per_task(defaults.SAMPLE_SAMPLER)})")
    p.add_argument("--steps", type=positive_int, metavar="S",
                   help=f"denoising steps for ddim and the ODE samplers (default: "
                        f"{_per_task(defaults.SAMPLE_STEPS)}); ddpm always takes all T steps")
    p.add_argument("--eta", type=finite_float, default=None,
                   help="ddim stochasticity: 0 is deterministic, 1 matches DDPM's noise (default: "
                        f"{_per_task(defaults.SAMPLE_ETA)}; for mnist, eta 0 leaves speckled "
                        "backgrounds and too many 8s)")
    _add_noise_level_options(p)
    p.add_argument("--n", type=positive_int, default=None,
                   help=f"number of samples (default: {defaults.SAMPLE_N['toy2d']} points for "
                        f"toy2d, {defaults.SAMPLE_N['mnist']} images for mnist)")
    p.add_argument("--batch-size", type=positive_int, default=1000, metavar="B",
                   help="samples drawn at once (default: 1000)")
    p.add_argument("--label", metavar="Y", default=None,
                   help="class-conditional models: the class to draw (0-9), 'none' for unconditional "
                        "samples, or 'all' to cycle through the classes (default: all)")
    p.add_argument("--guidance", type=finite_float, default=defaults.SAMPLE_GUIDANCE, metavar="S",
                   help="classifier-free guidance scale s: eps_u + s (eps_c - eps_u); 1 = plain "
                        "conditional, >1 sharper and less diverse; the MNIST numbers in docs/training.md "
                        f"use {defaults.DEFAULT_GUIDANCE:g} (default: {defaults.SAMPLE_GUIDANCE:g})")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the sampling noise (default: 0)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (NumPy) or cuda (CuPy) (default: cpu)")
    p.add_argument("--out", default="samples.png", metavar="PNG",
                   help="where to save the figure (default: samples.png)")
    p.add_argument("--save-npy", metavar="NPY",
                   help="also save the raw samples (float32, as generated) to this .npy file")
    p.add_argument("--clip-x0", action=argparse.BooleanOptionalAction, default=None,
                   help="clip each step's estimate of x_0 to the data range [-1, 1], as "
                        "improved-diffusion does for images: without it, errors of eps at the "
                        "noisiest steps are magnified by 1/sqrt(alpha_bar_t) (default: on for "
                        "mnist, off for toy2d, whose data are not bounded)")
    p.add_argument("--no-ema", action="store_true",
                   help="sample with the raw trained weights instead of their EMA")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_sample)

    # eval -----------------------------------------------------------------------------------
    p = sub.add_parser("eval", help="measure sample quality of a checkpoint",
                       formatter_class=_HelpFormatter, epilog=EVAL_EPILOG,
                       description="Evaluate a checkpoint's EMA weights. Toy 2D: sliced Wasserstein "
                                   "and MMD against fresh data, beside the data-vs-data floor. "
                                   "MNIST: FID on a cached classifier's features against the test "
                                   "set, class histogram and confidence, bits/dim on test images, "
                                   "and sampling speed.")
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="a checkpoint.npz written by 'tinydiff train' (or its run folder)")
    p.add_argument("--sampler", choices=SAMPLERS, default=defaults.EVAL_SAMPLER,
                   help="sampler for the evaluated samples: ddpm, ddim, or an ODE sampler "
                        f"(euler, heun, dpmpp_2m) (default: {defaults.EVAL_SAMPLER})")
    p.add_argument("--steps", type=positive_int, default=None, metavar="S",
                   help=f"ddim denoising steps (default: {defaults.EVAL_STEPS['toy2d']} for toy2d, "
                        f"{defaults.EVAL_STEPS['mnist']} for mnist)")
    p.add_argument("--eta", type=finite_float, default=None,
                   help=f"ddim stochasticity (default: {_per_task(defaults.EVAL_ETA)})")
    _add_noise_level_options(p)
    _add_nll_options(p)
    p.add_argument("--n", type=positive_int, default=None,
                   help=f"number of samples to evaluate (default: {evaluate.TOY_N} points for "
                        f"toy2d, {evaluate.MNIST_FID_N} images for mnist)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the sampling noise (default: 0)")
    p.add_argument("--draws", type=positive_int, default=None, metavar="K",
                   help="toy2d: average the sliced W2 over K independent sample draws (seeds seed.."
                        "seed+K-1, each with fresh references); one draw of 4000 points moves the "
                        "ratio by up to 2x, so rank recipes with K >= 5 (default: 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (NumPy) or cuda (CuPy) (default: cpu)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="MNIST folder for the reference data (default: as for training)")
    g = p.add_argument_group("mnist")
    g.add_argument("--classifier", metavar="NPZ",
                   help="the MNIST classifier file; trained there once if missing (default: "
                        "$XDG_CACHE_HOME/tinydiff/mnist_classifier.npz, else ~/.cache/tinydiff/...)")
    g.add_argument("--guidance", type=finite_float, metavar="S",
                   help=f"class-conditional checkpoints: classifier-free guidance scale "
                        f"(default: {defaults.DEFAULT_GUIDANCE:g})")
    g.add_argument("--unconditional", action="store_true",
                   help="class-conditional checkpoints: sample with the null label instead of "
                        "labels 0-9 (the unconditional model learned by label dropout)")
    g.add_argument("--bpd-n", type=nonnegative_int, default=None, metavar="K",
                   help="test images for the bits/dim bound, each costing T model calls; 0 skips "
                        f"it (default: {evaluate.MNIST_BPD_N})")
    g.add_argument("--no-speed", dest="speed", action="store_false",
                   help="skip timing DDPM and DDIM-50 sampling")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="also write the metrics as JSON to this file (default: print only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_eval)

    # show-forward ---------------------------------------------------------------------------
    p = sub.add_parser("show-forward", help="plot data as the forward process noises it",
                       formatter_class=_HelpFormatter,
                       description="Plot x_t ~ q(x_t | x_0) for a few t: how the forward process "
                                   "turns data into noise under a schedule.")
    p.add_argument("--dataset", choices=TOY2D_DATASETS + ("mnist",), default="moons",
                   help="the data to noise (default: moons)")
    p.add_argument("--schedule", choices=SCHEDULES, default="linear",
                   help="noise schedule (default: linear)")
    p.add_argument("--timesteps", type=positive_int, default=1000, metavar="T",
                   help="number of diffusion steps T (default: 1000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the data and noise (default: 0)")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST folder (default: as for training)")
    p.add_argument("--out", default="forward.png", metavar="PNG",
                   help="where to save the figure (default: forward.png)")
    p.set_defaults(handler=cmd_show_forward)
    _add_sampler_lab_parsers(sub)

    _add_exercises_parser(sub)
    return parser


# --------------------------------------------------------------------------- exercises

def _add_exercises_parser(sub: Any) -> None:
    """``tinydiff exercises list|start|check|hint``: the parser and handler live in tinydiff.exercises."""
    from tinydiff.exercises.command_line import add_parser  # the exercises' own module (light: no graders)
    add_parser(sub, _HelpFormatter)


# --------------------------------------------------------------------------- train

# CLI option -> TrainConfig field (options that map to a model argument are handled apart).
_TRAIN_FIELDS = ("dataset", "steps", "batch_size", "lr", "optimizer", "weight_decay", "warmup_steps",
                 "lr_schedule",
                 "grad_clip", "ema_decay", "schedule", "timesteps", "parameterization",
                 "t_sampling", "lognormal_mean", "lognormal_std", "seed",
                 "device", "out_dir", "ckpt_every", "log_every", "data_dir", "p_uncond")
_MODEL_FIELDS = {"hidden_dim": "hidden_dim", "num_layers": "num_layers",
                 "input_embed_dim": "input_embed_dim",
                 "model_channels": "model_channels", "dropout": "dropout"}


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields the user set explicitly on the command line."""
    over = {f: getattr(args, f) for f in _TRAIN_FIELDS if getattr(args, f, None) is not None}
    if args.no_progress:
        over["progress"] = False
    return over


def _model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, a) for a, k in _MODEL_FIELDS.items() if getattr(args, a, None) is not None}


def _check_device(device: str | None) -> None:
    if device == "cuda":
        if not cuda_available():
            raise CLIError(f"--device cuda: {cuda_unavailable_reason()}")


def cmd_train(args: argparse.Namespace) -> int:
    if getattr(args, "distributed", False):
        return _cmd_train_distributed(args)
    # mpiexec's launchers say how many processes they started (MPICH/Intel: PMI_SIZE, Open MPI:
    # OMPI_COMM_WORLD_SIZE); K copies of one run would train it K times into one folder.
    started = os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "1"
    if started.isdigit() and int(started) > 1:
        raise CLIError(f"this is one of {started} processes started by mpiexec, but without "
                       f"--distributed each would train the whole run into the same --out; add "
                       f"--distributed to share the work")
    return _train(args)


def _cmd_train_distributed(args: argparse.Namespace) -> int:
    """``cmd_train`` as one of K processes: rank 0 alone prints; an error on one rank alone
    stops them all, where a shared one (divergence, Ctrl-C) is reported once, by rank 0."""
    _check_device(args.device)
    try:
        dist = distributed.init_distributed(args.device or "cpu")
    except distributed.DistributedError as exc:
        raise CLIError(str(exc)) from None
    with distributed.quiet_unless_root(dist):
        try:
            trainer = _train_setup(args, dist)
        except Exception as exc:
            # The others wait in the check at the start of training; this tells them to stop.
            everyone = distributed.report_failed_start(dist)
            if everyone and dist.rank != 0:
                return EXIT_ERROR  # rank 0 says why, once
            if everyone:
                if isinstance(exc, distributed.DistributedError):
                    raise CLIError(str(exc)) from None
                raise
            raise CLIError(f"rank {dist.rank} of {dist.size}: {exc}") from exc
        try:
            with distributed.abort_on_error(dist):
                return _train_run(args, trainer)
        except (KeyboardInterrupt, Exception) as exc:
            if dist.rank == 0 or not isinstance(exc, distributed._agreed_errors()):
                raise
            return EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_ERROR


def _train(args: argparse.Namespace) -> int:
    return _train_run(args, _train_setup(args))


def _train_setup(args: argparse.Namespace, dist: Any = None) -> Any:
    """The Trainer that ``tinydiff train`` asks for: a new run, or the one in --out resumed."""
    over = _train_overrides(args)
    _check_device(over.get("device"))
    if args.task == "toy2d":
        preset = TrainConfig.toy2d(args.dataset or "moons")
    else:
        preset = (TrainConfig.mnist() if args.class_cond is None
                  else TrainConfig.mnist(class_cond=args.class_cond))
    out_dir = output_folder(over.get("out_dir", preset.out_dir), "--out")
    checkpoint = out_dir / CHECKPOINT_NAME

    if args.resume:
        if not checkpoint.exists():
            raise CLIError(f"--resume: there is no checkpoint at {checkpoint}")
        # Only the options given are checked against the saved run, not the preset's defaults.
        if args.task == "mnist" and args.class_cond is not None:
            over["class_cond"] = args.class_cond
        try:
            trainer = Trainer.resume(checkpoint, dist=dist, **over)
            check_resume(args.task, trainer.config.task, trainer.step, trainer.config.steps,
                         checkpoint)
        except ValueError as exc:
            raise CLIError(option_message(str(exc))) from None
        # The same command line again plus --resume is fine; a different model is not.
        changed = {k: v for k, v in _model_overrides(args).items() if trainer.config.model.get(k) != v}
        if changed:
            raise CLIError(f"--resume keeps the model of the run; drop "
                           f"{', '.join('--' + k.replace('_', '-') for k in changed)}")
        print(f"Resuming {checkpoint} at step {trainer.step} of {trainer.config.steps}")
    else:
        if checkpoint.exists():
            raise CLIError(f"{out_dir} already holds a run ({checkpoint.name}); pass --resume to "
                           f"continue it, or choose another --out")
        model = {**preset.model, **_model_overrides(args)}
        try:
            config = TrainConfig.from_dict({**preset.to_dict(), **over, "model": model})
        except ValueError as exc:
            raise CLIError(option_message(str(exc))) from None
        trainer = Trainer(config, dist=dist)
        n_params = trainer.model.num_parameters(trainable_only=True)
        print(f"Training {config.model['name']} ({n_params:,} parameters) on {config.dataset} "
              f"for {config.steps} steps, batch {config.batch_size}, on {config.device}"
              + (f", in {dist.size} processes ({dist.backend})" if dist is not None else ""))
    return trainer


def _train_run(args: argparse.Namespace, trainer: Any) -> int:
    """Train, then report, draw the preview and say what to do next."""
    history = trainer.train()
    cfg = trainer.config
    if history:
        window = history[-min(100, len(history)):]
        mean_loss = sum(i.loss for i in window) / len(window)
        rate = len(history) / max(history[-1].time - history[0].time + 1e-9, 1e-9) if len(history) > 1 else 0.0
        speed = f"{rate:.0f} steps/s" if rate >= 10 else f"{1 / rate:.2f} s/step" if rate > 0 else "-"
        print(f"Done: step {trainer.step}, loss {mean_loss:.4f} (mean of the last {len(window)} steps), "
              f"{trainer.seconds():.1f} s of training, {speed}")
    print(f"Checkpoint: {trainer.checkpoint_path}\nLoss log:   {trainer.log_path}\n"
          f"Config:     {trainer.out_dir / 'config.json'}")
    if not args.no_preview and trainer.is_root:
        path = _save_preview(trainer)
        print(f"Samples:    {path}")
    print(f"Sample more with: tinydiff sample {trainer.checkpoint_path}"
          + (" --sampler ddim --steps 50" if cfg.task == "toy2d" else "")
          + (" --device cuda" if cfg.device == "cuda" else ""))
    return EXIT_OK


def _save_preview(trainer: Any) -> Path:
    """A picture of what the run learned: DDIM samples from the EMA weights."""
    cfg = trainer.config
    path = trainer.out_dir / "samples.png"
    if cfg.task == "toy2d":
        n, steps = defaults.SAMPLE_N["toy2d"], min(defaults.PREVIEW_STEPS["toy2d"], cfg.timesteps)
        result = trainer.sample(n, sampler=defaults.PREVIEW_SAMPLER, steps=steps, seed=cfg.seed)
        plots.save_scatter(result.samples, path, reference=sample_toy2d(cfg.dataset, n, cfg.seed + 1),
                           title=f"{cfg.dataset}: DDIM ({steps} steps), step {trainer.step}")
    else:
        n = defaults.SAMPLE_N["mnist"]
        labels = defaults.balanced_labels(n) if cfg.class_cond else None
        result = trainer.sample(n, sampler=defaults.PREVIEW_SAMPLER,
                                steps=min(defaults.PREVIEW_STEPS["mnist"], cfg.timesteps),
                                eta=defaults.default_eta(defaults.PREVIEW_ETA, "mnist",
                                                         defaults.PREVIEW_SAMPLER),
                                seed=cfg.seed, labels=labels, clip_x0=defaults.clips_x0(cfg.task),
                                guidance=defaults.DEFAULT_GUIDANCE if cfg.class_cond else 1.0)
        plots.save_image_grid(result.samples, path, nrow=8)
    return path


# --------------------------------------------------------------------------- sample

def _parse_label(label: str | None, n: int, class_cond: bool) -> Any:
    if not class_cond:
        if label not in (None, "none"):
            raise CLIError("--label: this checkpoint's model is not class-conditional")
        return None
    if label is None or label == "all":
        return defaults.balanced_labels(n)
    if label == "none":
        return None
    try:
        value = int(label)
    except ValueError:
        raise CLIError(f"--label must be a class 0-9, 'none' or 'all'; got {label!r}") from None
    if not 0 <= value <= 9:
        raise CLIError(f"--label must be a class 0-9, 'none' or 'all'; got {value}")
    return value


def cmd_sample(args: argparse.Namespace) -> int:
    _check_device(args.device)
    args.out = str(output_file(args.out, "--out", suffix=".png"))
    if args.save_npy:
        args.save_npy = str(output_file(args.save_npy, "--save-npy", suffix=".npy"))
    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    run = load_run(path, device=args.device, use_ema=not args.no_ema)
    cfg = run.config
    n = args.n if args.n is not None else defaults.SAMPLE_N[cfg.task]
    if n < 1:
        raise CLIError(f"--n must be >= 1, got {n}")
    sampler = args.sampler if args.sampler is not None else defaults.SAMPLE_SAMPLER[cfg.task]
    eta = args.eta if args.eta is not None else defaults.default_eta(defaults.SAMPLE_ETA, cfg.task, sampler)
    steps = args.steps
    if sampler == "ddpm":
        if steps not in (None, cfg.timesteps):
            raise CLIError(f"--steps: the ddpm sampler takes all T={cfg.timesteps} steps; "
                           f"use --sampler ddim for fewer")
        steps = None
    elif steps is None:
        steps = min(defaults.SAMPLE_STEPS[cfg.task], cfg.timesteps)
    elif steps > cfg.timesteps:
        raise CLIError(f"--steps {steps}: this run has T={cfg.timesteps} timesteps; ddim takes "
                       f"1 to {cfg.timesteps} of them")
    labels = _parse_label(args.label, n, cfg.class_cond)
    if args.guidance != 1.0 and labels is None:
        raise CLIError("--guidance needs a class-conditional checkpoint and a --label other than 'none'")
    if not 0.0 <= eta <= 1.0:
        raise CLIError(f"--eta must be in [0, 1], got {eta}")

    clip_x0 = args.clip_x0 if args.clip_x0 is not None else defaults.clips_x0(cfg.task)
    if sampler == "ddpm":
        what = f"ddpm (all {cfg.timesteps} steps)"
    else:
        what = f"ddim ({steps} steps, eta={eta:g})"
    if sampler not in ("ddpm", "ddim"):
        what = _describe_ode(sampler, steps, args.spacing, args.sigmas)
    print(f"Sampling {n} from {path} (step {run.step}, {'EMA' if not args.no_ema else 'raw'} weights) "
          f"with {what} on {args.device}")
    try:
        result = generate(run.model, run.diffusion, n, sample_shape(cfg), sampler=sampler,
                          steps=steps, eta=eta, labels=labels, guidance=args.guidance,
                          batch_size=args.batch_size, seed=args.seed, device=args.device,
                          parameterization=cfg.parameterization, clip_x0=clip_x0,
                          progress=not args.no_progress, spacing=args.spacing, sigmas=args.sigmas)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    unit = "points" if cfg.task == "toy2d" else "images"
    print(f"{n} {unit} in {result.seconds:.2f} s: {result.per_second:.1f} {unit}/s")
    if cfg.task == "toy2d":
        plots.save_scatter(result.samples, args.out,
                           reference=sample_toy2d(cfg.dataset, n, args.seed + 1),
                           title=f"{cfg.dataset}: {what}")
    else:
        plots.save_image_grid(result.samples, args.out, nrow=10 if labels is not None and
                              not isinstance(labels, int) else None)
    print(f"Figure: {args.out}")
    if args.save_npy:
        parent = os.path.dirname(args.save_npy)
        if parent:
            os.makedirs(parent, exist_ok=True)
        np.save(args.save_npy, result.samples, allow_pickle=False)
        print(f"Samples: {args.save_npy}")
    return EXIT_OK


# --------------------------------------------------------------------------- eval, show-forward

def cmd_eval(args: argparse.Namespace) -> int:
    _check_device(args.device)
    if args.out:
        output_file(args.out, "--out")
    if args.n is not None and args.n < 2:
        raise CLIError(f"--n {args.n}: the metrics compare distributions and need at least 2 samples")
    result = evaluate.evaluate_checkpoint(args.checkpoint, **_eval_options(args))
    bad = nonfinite_entry(result)
    if bad is not None:
        raise CLIError(f"eval: the metric {bad} is not finite; the samples or the reference data "
                       f"are degenerate (too few samples? try a larger --n)")
    return EXIT_OK


def _eval_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `eval` options as ``evaluate_checkpoint``'s keyword arguments; an option left out
    (None) takes the library's default."""
    given = {name: getattr(args, name) for name in (
        "sampler", "steps", "eta", "n", "seed", "device", "data_dir", "out", "classifier",
        "guidance", "bpd_n", "spacing", "sigmas", "nll", "nll_steps", "nll_n", "draws")}
    return {**{k: v for k, v in given.items() if v is not None}, "speed": args.speed,
            "unconditional": args.unconditional, "progress": not args.no_progress}


def cmd_show_forward(args: argparse.Namespace) -> int:
    args.out = str(output_file(args.out, "--out", suffix=".png"))
    path = plots.show_forward(args.dataset, args.out, schedule=args.schedule,
                              timesteps=args.timesteps, seed=args.seed, data_dir=args.data_dir)
    print(f"Figure: {path}")
    return EXIT_OK


# --------------------------------------------------------------------------- ODE samplers, oracle, compare-samplers

ORACLE_EPILOG = """examples:
  tinydiff oracle --dataset 8gaussians --sampler heun --steps 10
  tinydiff oracle --dataset moons --sampler dpmpp_2m --steps 10 --sigmas karras --run runs/toy2d-moons

For gmm and 8gaussians the exact denoiser is the mixture's own E[x_0 | x_t]; for the other
datasets it is the optimum on --train-points fresh points, which memorises them."""

COMPARE_EPILOG = """examples:
  tinydiff compare-samplers runs/toy2d-moons --out docs/          # ~15 min on two shared CPU cores
  tinydiff compare-samplers runs/mnist-cond --n 250 --no-karras --no-ddpm --out docs/

Each sampler gets the step count that spends at most E model calls (heun: 2S - 1 <= E)."""


def _add_noise_level_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spacing", choices=SPACINGS, default=None,
                   help="which --steps of the T timesteps ddim and the ODE samplers visit, with "
                        "diffusers' definitions: linspace (both ends), trailing (starts at T-1, "
                        "Lin et al. 2024), leading (starts at (S-1)(T//S)) "
                        f"(default: {defaults.default_spacing('ddim')} for ddim, "
                        f"{defaults.default_spacing('heun')} for the ODE "
                        "samplers, measured better for them)")
    p.add_argument("--sigmas", choices=SIGMA_SCHEDULES, default=None,
                   help="ODE samplers only: karras = Karras et al. eq. 5 noise levels (rho 7) "
                        "between sigma(0) and sigma(T-1); exponential = evenly spaced in log "
                        "sigma between the same ends (DPM-Solver's uniform logSNR); few_step = "
                        "evenly spaced in log sigma from 40 to 0.08, best at ~10 calls on toy 2D "
                        "(with unipc or dpmpp_2m); the model called at fractional t "
                        "(default: the schedule's own sigmas at --spacing)")


def _add_nll_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("likelihood")
    g.add_argument("--nll", choices=("vlb", "ode"), default="vlb",
                   help="vlb: DDPM's variational bound in bits/dim (mnist, --bpd-n images); ode: also "
                        "the exact log-likelihood through the probability-flow ODE (Song et al. 2021 "
                        "eq. 39): toy2d with the exact trace, mnist with Hutchinson's estimate "
                        "(default: vlb)")
    g.add_argument("--nll-steps", type=positive_int, default=None, metavar="N",
                   help="--nll ode: Heun steps of the ODE, 2N model calls (default: 100 toy2d, 400 mnist)")
    g.add_argument("--nll-n", type=positive_int, default=None, metavar="K",
                   help="--nll ode: data points or test images (default: 1000 points, 20 images)")


def _describe_ode(sampler: str, steps: int, spacing: str | None, sigmas: str | None) -> str:
    levels = f"{sigmas} sigmas" if sigmas else f"{spacing or defaults.default_spacing(sampler)} spacing"
    return f"{sampler} ({steps} steps, {levels}, {model_evaluations(sampler, steps)} model calls)"


def _add_sampler_lab_parsers(sub: Any) -> None:
    p = sub.add_parser("oracle", help="sample with the exact denoiser beside a trained run",
                       formatter_class=_HelpFormatter, epilog=ORACLE_EPILOG,
                       description="Separate the sampler's error from the network's: the same "
                                   "starting noise through the same sampler, once with the exact "
                                   "(Bayes-optimal) denoiser of a toy 2D dataset and once with a "
                                   "trained run. Writes the two sample sets over the data and the "
                                   "learned score field against the exact one, with the error over "
                                   "(x, t), and prints both sliced-W2 scores.")
    p.add_argument("--dataset", choices=TOY2D_DATASETS, default="8gaussians",
                   help="the toy 2D dataset (default: 8gaussians)")
    p.add_argument("--run", metavar="RUN", default=None,
                   help="the trained run (folder or checkpoint) of that dataset (default: "
                        "runs/toy2d-DATASET, where 'tinydiff train toy2d --dataset DATASET' puts it)")
    p.add_argument("--sampler", choices=SAMPLERS, default="heun", help="the sampler (default: heun)")
    p.add_argument("--steps", type=positive_int, default=10, metavar="S", help="its steps (default: 10)")
    _add_noise_level_options(p)
    p.add_argument("--n", type=positive_int, default=2000, help="points per sample set (default: 2000)")
    p.add_argument("--train-points", type=positive_int, default=2000, metavar="N",
                   help="non-mixture datasets: the training set the exact denoiser memorises "
                        "(default: 2000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the noise and data (default: 0)")
    p.add_argument("--out", default="oracle", metavar="DIR",
                   help="folder for the figures and oracle_DATASET.json (default: oracle/)")
    p.set_defaults(handler=cmd_oracle)

    p = sub.add_parser("compare-samplers", help="sample quality against model evaluations, per sampler",
                       formatter_class=_HelpFormatter, epilog=COMPARE_EPILOG,
                       description="Sample a run with every sampler at several budgets of model "
                                   "evaluations and score each: toy 2D by sliced W2 over its "
                                   "data-vs-data floor, MNIST by FID on the classifier's features. "
                                   "DDPM's all-T chain is the reference line. Writes "
                                   "compare_samplers_NAME.png, .md (the table) and .json.")
    p.add_argument("checkpoint", metavar="RUN", help="a run folder or checkpoint.npz")
    p.add_argument("--samplers", nargs="+", choices=("ddim",) + ODE_SAMPLERS,
                   default=list(COMPARE_SAMPLERS),
                   help=f"samplers to compare (default: {' '.join(COMPARE_SAMPLERS)})")
    p.add_argument("--evals", nargs="+", type=positive_int, default=list(COMPARE_EVALS), metavar="E",
                   help=f"model-evaluation budgets (default: {' '.join(map(str, COMPARE_EVALS))})")
    p.add_argument("--no-karras", dest="karras", action="store_false",
                   help="skip the ODE samplers on Karras sigmas (by default both noise levels)")
    p.add_argument("--no-exponential", dest="exponential", action="store_false",
                   help="skip the ODE samplers on exponential sigmas (evenly spaced in log sigma)")
    p.add_argument("--few-step", action="store_true",
                   help="also run the ODE samplers on few_step sigmas (log-even from 40 to 0.08)")
    p.add_argument("--repeats", type=positive_int, default=None, metavar="R",
                   help="sampling seeds averaged per cell, each against its own reference draws "
                        "(default: 5 for toy2d, 1 for mnist)")
    p.add_argument("--no-ddpm", dest="ddpm", action="store_false",
                   help="skip the DDPM reference (T model evaluations per sample)")
    p.add_argument("--n", type=positive_int, default=None,
                   help="samples per point of the curve (default: 4000 points, 500 images)")
    p.add_argument("--guidance", type=finite_float, default=None, metavar="S",
                   help="class-conditional MNIST: classifier-free guidance scale (default: 2)")
    p.add_argument("--classifier", metavar="NPZ",
                   help="the MNIST classifier file; trained once if missing (default: as for eval)")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST folder (default: as for training)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the sampling noise (default: 0)")
    p.add_argument("--out", default=".", metavar="DIR", help="folder for the outputs (default: .)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(handler=cmd_compare_samplers)


def _load_run_arg(path: str) -> Any:
    checkpoint = Path(path)
    if checkpoint.is_dir():
        checkpoint = checkpoint / CHECKPOINT_NAME
    return load_run(checkpoint)


def cmd_oracle(args: argparse.Namespace) -> int:
    run_path = args.run or f"runs/toy2d-{args.dataset}"
    if not Path(run_path).exists():
        raise CLIError(f"oracle: no trained run at {run_path}; train one with 'tinydiff train toy2d "
                       f"--dataset {args.dataset}' or pass --run")
    if args.n < 2:
        raise CLIError("oracle: --n must be >= 2")
    run = _load_run_arg(run_path)
    if run.config.task != "toy2d" or run.config.dataset != args.dataset:
        raise CLIError(f"oracle: {run_path} was trained on "
                       f"{getattr(run.config, 'dataset', run.config.task)}, not {args.dataset}")
    try:
        result = oracle_lab(run, args.sampler, args.steps, spacing=args.spacing, sigmas=args.sigmas,
                            n=args.n, seed=args.seed, out_dir=args.out, train_points=args.train_points)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"{args.dataset}, {result['sampler']}, {args.n} points from the same noise:")
    print(f"  exact denoiser ({result['exact_model']}): sliced W2 {result['exact']['sw']:.4f}, "
          f"{result['exact']['sw_ratio']:.2f} x floor")
    print(f"  trained network ({run_path}, step {run.step}): sliced W2 {result['learned']['sw']:.4f}, "
          f"{result['learned']['sw_ratio']:.2f} x floor")
    out = Path(args.out) / f"oracle_{args.dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("Figures: " + ", ".join(result["figures"]) + f"\nNumbers: {out}")
    return EXIT_OK


def cmd_compare_samplers(args: argparse.Namespace) -> int:
    if args.n is not None and args.n < 2:
        raise CLIError("compare-samplers: --n must be >= 2")
    run = _load_run_arg(args.checkpoint)
    try:
        result = compare_samplers(run, args.out, samplers=args.samplers, evaluations=args.evals,
                                  n=args.n, seed=args.seed, karras=args.karras, ddpm=args.ddpm,
                                  data_dir=args.data_dir, classifier=args.classifier,
                                  guidance=args.guidance, progress=not args.no_progress,
                                  exponential=args.exponential, repeats=args.repeats,
                                  few_step=args.few_step)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(comparison_table(result))
    print(f"Figure: {result['figure']}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point

def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every failure of every command ends here as one or two lines on stderr and exit 1 (usage
    errors: 2); ``--debug`` anywhere on the line, or TINYDIFF_DEBUG=1, adds the traceback.
    """
    keep_freed_host_memory()  # reuse freed arrays without page faults (see autograd/malloc.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    flag = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere, not only before COMMAND
    debug = debug_requested(flag)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed why
        return int(exc.code or 0)
    try:
        # Overflow warnings would only repeat, less clearly, what the finiteness checks report.
        with np.errstate(all="warn" if debug else "ignore"):
            return args.handler(args)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during training: 130 or 143
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 (that is the point: no traceback for the user)
        if debug:
            traceback.print_exc()
        print(f"tinydiff: error: {describe(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
