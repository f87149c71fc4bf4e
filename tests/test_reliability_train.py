"""Defects 1-4 of issue 11 (nothing lost): loss.csv after a resume, stale temporaries, SIGTERM,
and what the NaN guard calls a good checkpoint. Tiny runs, a second or two each."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tinydiff.checkpoint import load_checkpoint
from tinydiff.run import read_loss_log
from tinydiff.train import Trainer, TrainConfig, TrainingDiverged

TINY_MLP = {"name": "mlp", "data_dim": 2, "hidden_dim": 32, "num_layers": 2, "time_embed_dim": 16}


def tiny_config(out_dir, **overrides) -> TrainConfig:
    base = dict(steps=20, batch_size=64, lr=2e-3, warmup_steps=5, timesteps=50, ckpt_every=10,
                model=TINY_MLP, out_dir=str(out_dir), progress=False, seed=3)
    return TrainConfig.toy2d("moons", **{**base, **overrides})


def rows_on_disk(path) -> list[int]:
    """The steps of loss.csv as another process would see them right now."""
    with open(path) as f:
        return [int(line.split(",")[0]) for line in f.read().splitlines()[1:] if line]


def test_resumed_log_keeps_its_rows_on_disk_from_the_first_step(tmp_path):
    # Defect 1: loss.csv was reopened with mode "w", the old rows waiting in a write buffer: a
    # crash right after --resume left a truncated file and the rows were gone for good.
    Trainer(tiny_config(tmp_path, steps=25)).train()
    seen = []
    trainer = Trainer.resume(tmp_path, steps=40,
                             callbacks=[lambda tr, info: seen.append(rows_on_disk(tr.log_path))])
    trainer.train()
    assert seen[0][:25] == list(range(1, 26))   # a SIGKILL here would have found them all
    assert read_loss_log(tmp_path / "loss.csv")["step"].tolist() == list(range(1, 41))


def test_rows_past_the_checkpoint_are_dropped_and_torn_rows_ignored(tmp_path):
    Trainer(tiny_config(tmp_path, steps=20)).train()
    with open(tmp_path / "loss.csv", "a") as f:  # a crashed run wrote past its checkpoint
        f.write("21,0.5,0.002,1.0,0.1\n22,0.4,0.0")
    Trainer.resume(tmp_path, steps=24).train()
    log = read_loss_log(tmp_path / "loss.csv")
    assert log["step"].tolist() == list(range(1, 25))
    assert log["loss"][20] != 0.5


def test_every_checkpoint_has_its_rows_durable_before_it(tmp_path, monkeypatch):
    import tinydiff.train as train_mod
    checks = []
    real = train_mod.save_checkpoint

    def spy(state, path):
        checks.append((state["step"], rows_on_disk(tmp_path / "loss.csv")))
        return real(state, path)
    monkeypatch.setattr(train_mod, "save_checkpoint", spy)
    Trainer(tiny_config(tmp_path, steps=30, ckpt_every=7)).train()
    assert [s for s, _ in checks] == [7, 14, 21, 28, 30]
    for step, rows in checks:
        assert rows == list(range(1, step + 1))


def test_stale_temporaries_of_a_killed_write_are_removed_on_the_next_start(tmp_path):
    # Defect 2: kills during a checkpoint write left .checkpoint.npz.<hex>.tmp files behind.
    Trainer(tiny_config(tmp_path, steps=10)).train()
    stale = [tmp_path / ".checkpoint.npz.0123456789ab.tmp", tmp_path / ".loss.csv.x1y2z3.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    other = tmp_path / ".other.npz.0123456789ab.tmp"   # not one of this run's files: kept
    other.write_bytes(b"x")
    Trainer.resume(tmp_path, steps=12).train()
    assert not any(p.exists() for p in stale) and other.exists()


def test_sigterm_saves_after_the_step_like_ctrl_c(tmp_path):
    # Defect 3: SIGTERM (kill, a scheduler, a closing terminal) lost the work since the last
    # checkpoint; it now finishes the step, saves, and stops with exit code 128 + 15.
    from tinydiff.train import TrainingInterrupted

    def terminate(trainer, info):
        if info.step == 13:
            os.kill(os.getpid(), signal.SIGTERM)
    trainer = Trainer(tiny_config(tmp_path, steps=50, ckpt_every=100), callbacks=[terminate])
    with pytest.raises(TrainingInterrupted) as stop:
        trainer.train()
    assert stop.value.exit_code == 143
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 13
    assert read_loss_log(tmp_path / "loss.csv")["step"].tolist() == list(range(1, 14))
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_the_last_good_checkpoint_after_a_blow_up_samples_finite_values(tmp_path, capsys):
    # Defect 4: with --lr 1e6 the weights reached 1e6 while the loss was still finite, were
    # saved as "the last good checkpoint", and `tinydiff sample` then gave all-NaN, exit 0.
    from tinydiff import cli
    out = tmp_path / "N1"
    code = cli.main(["train", "toy2d", "--lr", "1e6", "--grad-clip", "0", "--warmup-steps", "0",
                     "--ckpt-every", "1", "--steps", "300", "--out", str(out), "--hidden-dim", "32",
                     "--num-layers", "2", "--timesteps", "50", "--batch-size", "64",
                     "--no-progress", "--no-preview"])
    assert code == 1
    err = capsys.readouterr().err
    assert "Start a new run (another --out) with a smaller --lr" in err
    if (out / "checkpoint.npz").exists():  # whatever was kept samples finite points
        state = load_checkpoint(out / "checkpoint.npz")
        assert max(np.abs(w).max() for w in state["ema"]["shadow"].values()) < 1e3
        npy = tmp_path / "s.npy"
        assert cli.main(["sample", str(out), "--n", "16", "--out", str(tmp_path / "s.png"),
                         "--save-npy", str(npy), "--no-progress"]) == 0
        assert np.isfinite(np.load(npy)).all()


def test_weights_whose_samples_blow_up_are_not_saved(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, steps=5))
    trainer.train()
    saved = (tmp_path / "checkpoint.npz").read_bytes()
    for p in trainer.model.parameters():
        p.data *= 1e6          # finite, but the chain from x_T explodes
    with pytest.raises(TrainingDiverged, match="samples from the raw weights are NaN or inf"):
        trainer.save()
    assert (tmp_path / "checkpoint.npz").read_bytes() == saved


def test_rewritten_files_keep_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        Trainer(tiny_config(tmp_path, steps=3)).train()
        Trainer.resume(tmp_path, steps=4).train()
    finally:
        os.umask(old)
    for name in ("loss.csv", "config.json", "checkpoint.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
