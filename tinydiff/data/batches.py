"""Batch sources of the Trainer: where each step's x_0 (and labels) come from.

A batch source has ``next_batch(rng) -> (x, labels or None)``, drawing only from the generator
it is given (the Trainer's data stream), and ``state_dict``/``load_state_dict``, which the
Trainer checkpoints so that a resumed run sees exactly the batches the interrupted one would.

- ``Toy2DBatches``: fresh i.i.d. draws from a toy 2D distribution (no epochs);
- ``ShuffledBatches``: epochs over a fixed dataset (MNIST), one random permutation per epoch;
- ``make_batches(config)``: the source a ``TrainConfig`` describes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tinydiff.data.mnist import load_mnist
from tinydiff.data.toy2d import sample_toy2d
from tinydiff.run import TrainConfig


class Toy2DBatches:
    """An endless stream of fresh i.i.d. batches from a toy 2D distribution (no epochs).

    Its only state is the data generator, which the trainer checkpoints.
    """

    labels = None

    def __init__(self, dataset: str, batch_size: int) -> None:
        self.dataset, self.batch_size = dataset, batch_size

    def next_batch(self, rng: np.random.Generator) -> tuple[np.ndarray, None]:
        return sample_toy2d(self.dataset, self.batch_size, rng), None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class ShuffledBatches:
    """Epochs over a fixed dataset: a fresh random permutation per epoch, cut into batches.

    The last incomplete batch of an epoch is dropped, so every batch has the same shape. The
    state (epoch, position, and the current permutation) is checkpointed, so a resumed run
    sees exactly the batches the interrupted one would have.
    """

    def __init__(self, data: Any, labels: Any | None, batch_size: int) -> None:
        if batch_size > len(data):
            raise ValueError(f"batch_size {batch_size} exceeds the dataset size {len(data)}")
        self.data, self.labels, self.batch_size = data, labels, batch_size
        self.epoch, self.position = 0, 0
        self.perm: np.ndarray | None = None   # this epoch's order of the examples

    def next_batch(self, rng: np.random.Generator) -> tuple[Any, Any | None]:
        if self.perm is None or self.position + self.batch_size > len(self.perm):
            if self.perm is not None:
                self.epoch += 1
            self.perm = rng.permutation(len(self.data))
            self.position = 0
        idx = self.perm[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        x = self.data[idx]
        return x, (self.labels[idx] if self.labels is not None else None)

    def state_dict(self) -> dict[str, Any]:
        perm = np.zeros(0, np.int64) if self.perm is None else self.perm
        return {"epoch": self.epoch, "position": self.position, "perm": perm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        perm = np.asarray(state["perm"], dtype=np.int64)
        if perm.size and perm.size != len(self.data):
            raise ValueError(f"the checkpoint's data order covers {perm.size} examples, but the "
                             f"dataset has {len(self.data)}; is it the same dataset?")
        self.perm = perm if perm.size else None
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def make_batches(config: TrainConfig) -> Toy2DBatches | ShuffledBatches:
    """The batch source of a config: fresh toy draws, or shuffled epochs of MNIST."""
    if config.task == "toy2d":
        return Toy2DBatches(config.dataset, config.batch_size)
    images, labels = load_mnist("train", data_dir=config.data_dir, progress=config.progress)
    return ShuffledBatches(images, labels if config.class_cond else None, config.batch_size)
