"""Training checkpoints: the full state of a run, in one verified, pickle-free, atomically written file.

A thin layer over ``autograd.serialization`` (which does the encoding, the atomic write and the
integrity checks). What it adds is the *contents* of a training checkpoint and their check on
load, so that a file from elsewhere fails with a message naming the file and what is missing,
not with a KeyError deep in a resume:

    kind, version   "tinydiff.train", 1
    step            optimizer steps done
    elapsed         training seconds so far
    config          the TrainConfig as a dict (tinydiff.run.TrainConfig.from_dict rebuilds it)
    model           model.state_dict(): parameter name -> array
    ema             EMA.state_dict(): decay, warmup, num_updates, shadow (name -> array)
    optimizer       optimizer.state_dict() (moments per parameter, hyperparameters)
    scheduler       WarmupDecay.state_dict()
    rng             autograd.random state, and the bit_generator states of the data and noise
                    NumPy Generators
    data            the batch source's position (epoch, position, permutation) or {}
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autograd.serialization import CheckpointError, load, save
from tinydiff.models.fit import config_misfit

CHECKPOINT_KIND = "tinydiff.train"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("step", "elapsed", "config", "model", "ema", "optimizer", "scheduler", "rng", "data")

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "CHECKPOINT_KIND", "REQUIRED_KEYS"]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a training state (``Trainer.state_dict()``) to ``path`` atomically; returns the path.

    Either the new file is complete at ``path`` or the previous one is still there, intact:
    ``autograd.serialization.save`` writes a temporary file and renames it over ``path``.
    """
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"save_checkpoint: the training state lacks {missing}")
    save({"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, **state}, path)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a training checkpoint; arrays come back as NumPy arrays.

    Raises FileNotFoundError if there is no file, and ``CheckpointError`` (whose message starts
    with the file name) if it is damaged, is not a tinydiff checkpoint, or lacks part of the state.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}" + (" (it is a folder; its checkpoint would be "
                                                              f"{path / 'checkpoint.npz'})" if path.is_dir() else ""))
    state = load(path)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        kind = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: not a training checkpoint (kind {kind!r}, expected "
                              f"{CHECKPOINT_KIND!r}); was it written by autograd.serialization.save directly?")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: training checkpoint version {state.get('version')!r} is not "
                              f"supported (this code reads version {CHECKPOINT_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: the training checkpoint lacks {', '.join(missing)}")
    return state


def check_model_fits(path: str | os.PathLike, model_config: dict[str, Any], state: dict[str, Any]) -> None:
    """Refuse a checkpoint whose model config disagrees with its own weights, before the model is
    built (a crafted config could otherwise make us allocate gigabytes); see tinydiff.models.fit."""
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(hasattr(w, "shape") for w in weights.values()):
        raise CheckpointError(f"{path}: its 'model' entry is not a dict of weight arrays")
    why = config_misfit(model_config, {k: tuple(w.shape) for k, w in weights.items()})
    if why is not None:
        raise CheckpointError(f"{path}: its model config does not fit its weights: {why}")
