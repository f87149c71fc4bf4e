"""The tiny runs that tests/test_distributed.py compares across process counts (shared with
tests/mpi_worker.py, which runs them as one rank of several)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import autograd.random as ag_random

from tinydiff.models import build_model
from tinydiff.data.batches import Toy2DBatches
from tinydiff.run import TrainConfig

STEPS = 8
BATCH = 32


def toy_config(out_dir: Path, steps: int = STEPS, **overrides) -> TrainConfig:
    """A small MLP on moons: a few ms per step, with warmup, clipping and EMA all in play."""
    settings = dict(model={"name": "mlp", "data_dim": 2, "hidden_dim": 32, "num_layers": 2,
                           "time_embed_dim": 32},
                    steps=steps, batch_size=BATCH, lr=1e-2, warmup_steps=3, grad_clip=0.5,
                    timesteps=100, ckpt_every=4, out_dir=str(out_dir), progress=False, seed=3,
                    # constant: a run resumed with a new total keeps the learning rates it had
                    # (the preset's cosine decay is laid out over the total number of steps)
                    lr_schedule="constant")
    return TrainConfig.toy2d("moons", **{**settings, **overrides})


def float64_model(config: TrainConfig):
    """The config's model in float64, initialised from the run's seed on every rank."""
    ag_random.manual_seed(config.seed)
    model = build_model(config.model_config())
    return model.to(dtype=np.float64)


class Float64Batches(Toy2DBatches):
    """The toy batches in float64 (the noise buffer follows x_0's dtype)."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config.dataset, config.batch_size)

    def next_batch(self, rng):
        x, y = super().next_batch(rng)
        return x.astype(np.float64), y
