"""Training checkpoints: a full round trip, atomic replacement, and clear errors for bad files."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import autograd.random as ag_random
from autograd.serialization import CheckpointError, save
from tinydiff.checkpoint import REQUIRED_KEYS, load_checkpoint, save_checkpoint
from tinydiff.train import Trainer, TrainConfig

from test_train import assert_states_equal, tiny_config


@pytest.fixture
def trained(tmp_path):
    """A trainer 6 steps in (mid-warmup, EMA and Adam moments non-trivial), saved to disk."""
    trainer = Trainer(tiny_config(tmp_path, steps=6, ckpt_every=100))
    trainer.train()
    return trainer


def test_round_trip_restores_every_piece_of_state(trained, tmp_path):
    path = tmp_path / "checkpoint.npz"
    ag_random.default_generator().standard_normal(7)    # as dropout would: the engine RNG moved on
    trained.save()
    saved = load_checkpoint(path)
    live = trained.state_dict()
    assert set(REQUIRED_KEYS) <= set(saved)
    for key in REQUIRED_KEYS:
        assert_states_equal(saved[key], live[key] if key != "elapsed" else saved[key], key)
    # The pieces that matter are really there (not empty dicts that compare equal trivially).
    assert saved["step"] == 6
    assert len(saved["model"]) == len(list(trained.model.parameters())) > 0
    assert saved["ema"]["num_updates"] == 6 and set(saved["ema"]["shadow"]) == set(saved["model"])
    assert all(s["step"] == 6 for s in saved["optimizer"]["state"].values())
    assert saved["scheduler"]["last_step"] == 6
    assert saved["rng"]["noise"] == trained.noise_rng.bit_generator.state
    assert TrainConfig.from_dict(saved["config"]) == trained.config

    # A trainer rebuilt from the file holds the same state, arrays bit for bit, and the
    # engine's global RNG is back where it was.
    engine_rng = ag_random.get_rng_state()
    ag_random.manual_seed(12345)
    rebuilt = Trainer.resume(path)
    assert ag_random.get_rng_state() == engine_rng
    again = rebuilt.state_dict()
    for key in REQUIRED_KEYS:
        if key != "elapsed":
            assert_states_equal(again[key], live[key], key)


def test_a_failed_write_leaves_the_previous_checkpoint_intact(trained, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    before = path.read_bytes()
    trained.train_step()                                # advance, so the next save differs

    real_write = np.lib.format.write_array
    calls = {"n": 0}

    def crash_midway(fp, array, *args, **kwargs):       # a crash (or a full disk) mid-file
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("simulated crash while writing")
        return real_write(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", crash_midway)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(trained.state_dict(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before                  # the old file, byte for byte
    assert load_checkpoint(path)["step"] == 6
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "config.json", "loss.csv"]  # no temp file left


def test_a_crash_before_the_rename_leaves_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    before = path.read_bytes()

    def no_rename(src, dst):
        raise KeyboardInterrupt  # killed between writing the temporary file and renaming it
    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(trained.state_dict(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 6


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_a_damaged_file_raises_checkpoint_error_naming_it(trained, tmp_path, damage):
    path = tmp_path / "checkpoint.npz"
    data = bytearray(path.read_bytes())
    bad = tmp_path / f"{damage}.npz"
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"this is not a checkpoint" * 10)
    else:  # one flipped byte inside the largest array's data
        with zipfile.ZipFile(path) as zf:
            info = max(zf.infolist(), key=lambda i: i.file_size)
        data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=str(bad).replace(".", r"\.")):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError):
        Trainer.resume(bad)


def test_not_a_training_checkpoint_or_incomplete(tmp_path):
    other = tmp_path / "weights.npz"
    save({"weights": np.ones(3)}, other)
    with pytest.raises(CheckpointError, match=r"weights\.npz: not a training checkpoint"):
        load_checkpoint(other)
    partial = tmp_path / "partial.npz"
    save({"kind": "tinydiff.train", "version": 1, "step": 3}, partial)
    with pytest.raises(CheckpointError, match=r"partial\.npz: the training checkpoint lacks .*model"):
        load_checkpoint(partial)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="it is a folder"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint({"step": 1}, tmp_path / "x.npz")
