"""The format of a training run, in one place: what defines it and what it leaves on disk.

- ``TrainConfig`` and its presets (``TrainConfig.toy2d()``, ``TrainConfig.mnist()``): every
  setting of a run, validated, saved as JSON in every checkpoint;
- the files of a run folder (``CHECKPOINT_NAME``, ``LOG_NAME`` with ``LOG_COLUMNS``,
  config.json), the loss log's rows (``format_log_row``) and ``read_loss_log``;
- ``sample_shape(config)``: the shape of one sample of the run's data;
- how a run stops early (``TrainingDiverged``, ``TrainingInterrupted``);
- ``load_run(checkpoint)``: a checkpoint's model with its EMA weights, and its diffusion;
  ``sample_checkpoint`` draws from it.

The Trainer (``tinydiff.train``), sampling, evaluation and the command line all read a run
through this module; it depends on nothing that trains.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from autograd.optim.lr_scheduler import DECAYS as LR_SCHEDULES
from tinydiff.checkpoint import CheckpointError, check_model_fits, load_checkpoint
from tinydiff.data.toy2d import TOY2D_DATASETS
from tinydiff.diffusion import PARAMETERIZATIONS, GaussianDiffusion
from tinydiff.health import nonfinite_weights
from tinydiff.losses import T_SAMPLINGS
from tinydiff.models import build_model
from tinydiff.sampling import SampleResult, generate
from tinydiff.schedules import SCHEDULES, make_beta_schedule

TASKS = ("toy2d", "mnist")
OPTIMIZERS = ("adam", "adamw")
CHECKPOINT_NAME = "checkpoint.npz"
LOG_NAME = "loss.csv"
LOG_COLUMNS = ("step", "loss", "lr", "grad_norm", "time")

# Settings that may differ between a run and its resumption without changing the run itself
# (where files go, the progress bar) or that extend it (steps); all others must match.
RESUMABLE_OVERRIDES = frozenset({"steps", "device", "out_dir", "progress", "ckpt_every",
                                 "log_every", "data_dir"})


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient norm became NaN or infinite; the weights were not updated."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal (SIGINT or SIGTERM); ``exit_code`` is the shell's 128 + signum."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


# --------------------------------------------------------------------------- configuration

@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every checkpoint (as JSON).

    Use the presets ``TrainConfig.toy2d(...)`` and ``TrainConfig.mnist(...)``, which fill in a
    model and hyperparameters that work, and override fields by keyword.
    """

    # data
    task: str = "toy2d"                 # "toy2d" (2D point clouds) or "mnist" (28x28 digits)
    dataset: str = "moons"              # toy2d: a name in tinydiff.data.TOY2D_DATASETS
    data_dir: str | None = None         # mnist: folder with the IDX files (else cache/download)
    class_cond: bool = False            # condition on labels (mnist only)
    p_uncond: float = 0.1               # class_cond: probability of the null label (CFG training)
    # model: keyword arguments of tinydiff.models.build_model ("name" picks the architecture)
    model: dict = field(default_factory=lambda: {"name": "mlp", "data_dim": 2, "hidden_dim": 256,
                                                 "num_layers": 3, "time_embed_dim": 32})
    # diffusion
    schedule: str = "linear"            # beta schedule: see tinydiff.schedules.SCHEDULES
    timesteps: int = 1000               # T
    parameterization: str = "eps"       # what the model predicts: "eps", "x0" or "v"
    t_sampling: str = "uniform"         # how Algorithm 1 draws t: "uniform", or "lognormal" in sigma_t (EDM)
    lognormal_mean: float = -1.2        # t_sampling="lognormal": ln sigma ~ N(mean, std^2), EDM's P_mean
    lognormal_std: float = 1.2          # and P_std (tinydiff.losses.sample_timesteps_lognormal)
    # optimisation
    steps: int = 5000                   # total optimizer steps of the run
    batch_size: int = 512
    lr: float = 2e-3                    # peak learning rate, reached after warmup_steps
    optimizer: str = "adam"             # "adam" or "adamw"
    weight_decay: float = 0.0           # L2 (adam) or decoupled (adamw) weight decay
    warmup_steps: int = 100             # linear LR warmup from 0 over this many steps
    lr_schedule: str = "constant"       # after the warmup: "constant", or "cosine"/"linear" decay to 0 at `steps`
    grad_clip: float = 1.0              # max global gradient norm (0 = no clipping)
    ema_decay: float = 0.999            # EMA decay d (with warmup min(d, (1+n)/(10+n)))
    # reproducibility and bookkeeping
    seed: int = 0
    device: str = "cpu"                 # "cpu" (NumPy) or "cuda" (CuPy)
    out_dir: str = "runs/toy2d-moons"   # checkpoint.npz, loss.csv, config.json go here
    ckpt_every: int = 1000              # save a checkpoint every this many steps (and at the end)
    log_every: int = 1                  # write a loss.csv row every this many steps
    progress: bool = True               # show a tqdm progress bar

    @classmethod
    def toy2d(cls, dataset: str = "moons", **overrides: Any) -> TrainConfig:
        """A small MLP on a 2D toy distribution: 4000 steps at a peak learning rate of 8e-3 with
        a cosine decay to 0, t drawn log-normal in the noise level (ln sigma ~ N(-0.6, 1.4^2)),
        under 30 s on two CPU cores. Drawing t where the fine detail is made, not more steps,
        is what brought the samples' shape to the data's at half the steps (measured:
        docs/recipes.md).
        """
        base = dict(task="toy2d", dataset=dataset, out_dir=f"runs/toy2d-{dataset}",
                    steps=4000, lr=8e-3, lr_schedule="cosine", t_sampling="lognormal",
                    lognormal_mean=-0.6, lognormal_std=1.4)
        return cls(**{**base, **overrides})

    @classmethod
    def mnist(cls, class_cond: bool = True, **overrides: Any) -> TrainConfig:
        """A small class-conditional UNet on MNIST: 3200 steps, 15-20 minutes on two CPU cores.

        A short run wants a high learning rate, decayed to 0 (cosine), and no dropout;
        classifier-free guidance at sampling time makes up for the small net. Why this size and
        this schedule, measured: benchmarks/results/tinydiff-measurements.md#the-mnist-presets-size
        and docs/recipes.md (against the usual PyTorch recipe at equal time).
        """
        base = dict(task="mnist", dataset="mnist", class_cond=class_cond,
                    model={"name": "unet", "in_channels": 1, "out_channels": 1,
                           "model_channels": 16, "channel_mult": [1, 2, 2], "num_res_blocks": 1,
                           "attention_resolutions": [7], "dropout": 0.0, "image_size": 28},
                    schedule="cosine", steps=3200, batch_size=64, lr=2e-3, optimizer="adamw",
                    warmup_steps=100, lr_schedule="cosine", ema_decay=0.999, ckpt_every=250,
                    out_dir="runs/mnist-cond" if class_cond else "runs/mnist")
        return cls(**{**base, **overrides})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and what would be valid."""
        def bad(name: str, valid: str) -> ValueError:
            return ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is invalid: {valid}")
        if self.task not in TASKS:
            raise bad("task", f"expected one of {', '.join(TASKS)}")
        if self.task == "toy2d":
            if self.dataset not in TOY2D_DATASETS:
                raise bad("dataset", f"expected one of {', '.join(TOY2D_DATASETS)}")
            if self.class_cond:
                raise bad("class_cond", "the toy 2D datasets have no labels; use task='mnist'")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise bad("p_uncond", "expected a probability in [0, 1]")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"expected one of {', '.join(SCHEDULES)}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise bad("parameterization", f"expected one of {', '.join(PARAMETERIZATIONS)}")
        if self.t_sampling not in T_SAMPLINGS:
            raise bad("t_sampling", f"expected one of {', '.join(T_SAMPLINGS)}")
        if not math.isfinite(self.lognormal_mean):
            raise bad("lognormal_mean", "expected a finite number (EDM's P_mean is -1.2)")
        if not 0 < self.lognormal_std < math.inf:
            raise bad("lognormal_std", "expected a finite number > 0 (EDM's P_std is 1.2)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"expected one of {', '.join(LR_SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"expected one of {', '.join(OPTIMIZERS)}")
        if self.device not in ("cpu", "cuda"):
            raise bad("device", "expected 'cpu' or 'cuda'")
        for name in ("timesteps", "batch_size", "ckpt_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "expected a positive integer")
        for name in ("steps", "warmup_steps"):
            if int(getattr(self, name)) < 0:
                raise bad(name, "expected a non-negative integer")
        if not 0 < self.lr < math.inf:  # also refuses NaN
            raise bad("lr", "expected a finite positive learning rate")
        for name in ("grad_clip", "weight_decay"):
            if not 0 <= getattr(self, name) < math.inf:
                raise bad(name, "expected a finite number >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "expected an integer >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise bad("ema_decay", "expected a decay in [0, 1)")
        if not isinstance(self.model, dict) or "name" not in self.model:
            raise bad("model", "expected a dict of build_model arguments with a 'name'")
        for key, value in self.model.items():  # sizes and counts of layers, channels, ...
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise ValueError(f"TrainConfig.{key}={value} is invalid: expected a positive integer")
        if "dropout" in self.model and not 0.0 <= self.model["dropout"] < 1.0:
            raise ValueError(f"TrainConfig.dropout={self.model['dropout']!r} is invalid: expected "
                             f"a probability in [0, 1)")
        try:
            make_beta_schedule(self.schedule, int(self.timesteps))
        except ValueError as exc:
            raise bad("timesteps", str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)

    def model_config(self) -> dict[str, Any]:
        """The build_model arguments, with num_classes set for a class-conditional run."""
        cfg = dict(self.model)
        if self.class_cond:
            cfg["num_classes"] = NUM_CLASSES[self.task]
        return cfg


NUM_CLASSES = {"mnist": 10}


# --------------------------------------------------------------------------- files

def sample_shape(config: TrainConfig) -> tuple[int, ...]:
    """The shape of one sample of a config's data: (2,) for toy 2D, (1, 28, 28) for MNIST."""
    return (2,) if config.task == "toy2d" else (1, 28, 28)


def csv_line(fields: Iterable[Any]) -> str:
    """One row as csv.writer writes it (comma-separated, CRLF-terminated)."""
    return ",".join(str(f) for f in fields) + "\r\n"


def is_log_row(line: str, last_step: int) -> bool:
    """Whether ``line`` is a whole loss.csv row of a step <= ``last_step`` (a row cut short by a
    crash has no line end or too few fields, and is dropped)."""
    fields = line.rstrip("\r\n").split(",")
    if not line.endswith("\n") or len(fields) != len(LOG_COLUMNS) or not fields[0].isdigit():
        return False
    try:
        [float(v) for v in fields[1:]]
    except ValueError:
        return False
    return 0 < int(fields[0]) <= last_step


def format_log_row(step: int, loss: float, lr: float, grad_norm: float, time: float) -> list[Any]:
    """One loss.csv row (``LOG_COLUMNS``): the loss exactly (repr), the rest to 6 digits."""
    return [step, repr(loss), f"{lr:.6g}", f"{grad_norm:.6g}", f"{time:.3f}"]


def read_loss_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """loss.csv as columns: {"step": int64, "loss", "lr", "grad_norm", "time": float64}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {c: np.array([r[c] for r in rows], dtype=np.int64 if c == "step" else np.float64)
            for c in LOG_COLUMNS}


# --------------------------------------------------------------------------- from a checkpoint

class LoadedRun(NamedTuple):
    model: Any                  # the checkpoint's architecture holding its EMA weights, eval mode
    diffusion: GaussianDiffusion
    config: TrainConfig
    step: int                   # training steps behind these weights


def load_run(path: str | os.PathLike, device: str = "cpu", use_ema: bool = True) -> LoadedRun:
    """Rebuild a training checkpoint's model (with its EMA weights unless ``use_ema=False``) on
    ``device``, and its diffusion process, ready for ``generate``."""
    state = load_checkpoint(path)
    try:
        config = TrainConfig.from_dict(state["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its saved config is invalid: {exc}") from None
    check_model_fits(path, config.model_config(), state)
    model = build_model(config.model_config())
    weights = dict(state["model"])
    if use_ema:
        weights.update(state["ema"]["shadow"])
    bad = nonfinite_weights(weights)
    if bad is not None:
        raise CheckpointError(f"{path}: weight {bad!r} holds NaN or inf; it cannot give finite "
                              f"samples (tinydiff never saves such weights: was it edited?)")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: its weights do not fit the model its config describes: "
                              f"{' '.join(str(exc).split())}") from None
    model.to(device)
    model.eval()
    diffusion = GaussianDiffusion(make_beta_schedule(config.schedule, config.timesteps))
    return LoadedRun(model, diffusion, config, int(state["step"]))


def sample_checkpoint(path: str | os.PathLike, n: int, *, device: str = "cpu",
                      **kwargs: Any) -> tuple[SampleResult, LoadedRun]:
    """``generate`` from a checkpoint's EMA weights; keyword arguments as for ``generate``."""
    run = load_run(path, device=device)
    result = generate(run.model, run.diffusion, n, sample_shape(run.config), device=device,
                      parameterization=run.config.parameterization, **kwargs)
    return result, run
