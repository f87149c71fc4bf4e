"""The trainer: it learns, it resumes bit for bit, it stops cleanly on NaN and on Ctrl-C; and the EMA.

Runs are tiny (an MLP of width 32 on batches of 64) so that each test takes about a second.
"""
from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest

from autograd.nn import Parameter
from tinydiff.checkpoint import load_checkpoint
from tinydiff.ema import EMA
from tinydiff.data.batches import ShuffledBatches, Toy2DBatches
from tinydiff.run import read_loss_log
from tinydiff.train import Trainer, TrainConfig, TrainingDiverged

TINY_MLP = {"name": "mlp", "data_dim": 2, "hidden_dim": 32, "num_layers": 2, "time_embed_dim": 16}


def tiny_config(out_dir, **overrides) -> TrainConfig:
    base = dict(steps=20, batch_size=64, lr=2e-3, warmup_steps=5, timesteps=100, ckpt_every=10,
                model=TINY_MLP, out_dir=str(out_dir), progress=False, seed=3,
                lr_schedule="constant",  # (the warmup alone; the decays: tests/test_lr_schedule.py)
                t_sampling="uniform")    # (Algorithm 1's t; the log-normal one: tests/test_t_sampling.py)
    return TrainConfig.toy2d("moons", **{**base, **overrides})


def losses(history) -> list[float]:
    return [info.loss for info in history]


def assert_states_equal(a, b, where="state") -> None:
    """Nested dicts/lists of arrays and plain values are equal, arrays bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_states_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_states_equal(x, y, f"{where}/{i}")
    elif hasattr(a, "dtype") and hasattr(a, "shape") and np.ndim(a) > 0:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b), f"{where}: arrays differ"
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 20-step run: its history and final state."""
    out = tmp_path_factory.mktemp("reference")
    trainer = Trainer(tiny_config(out))
    history = trainer.train()
    return losses(history), trainer.state_dict(), read_loss_log(out / "loss.csv")


# --------------------------------------------------------------------------- learning

def test_short_toy_run_lowers_the_loss(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, steps=300, batch_size=128, ckpt_every=1000, lr=3e-3,
                                  timesteps=1000))
    ls = np.array(losses(trainer.train()))
    first, last = ls[:30].mean(), ls[-60:].mean()
    # eps has unit variance, so an untrained net starts near 1; a net that learned the data
    # gets well below (the irreducible error for moons at T = 1000 is about 0.3).
    assert first > 0.8
    assert last < 0.6 * first, (first, last)
    assert np.isfinite(ls).all()


def test_history_log_and_lr_warmup(tmp_path, reference):
    ref_losses, _, ref_log = reference
    assert len(ref_losses) == 20
    assert list(ref_log["step"]) == list(range(1, 21))
    assert ref_log["loss"].tolist() == ref_losses               # repr() round-trips floats exactly
    # LinearWarmup over 5 steps: lr_k = lr * min(1, (k + 1) / 5) for step k = 0, 1, ...
    expected = [2e-3 * min(1.0, (k + 1) / 5) for k in range(20)]
    np.testing.assert_allclose(ref_log["lr"], expected, rtol=1e-5)
    assert (np.diff(ref_log["time"]) >= 0).all()


def test_same_seed_same_run_other_seed_other_run(tmp_path, reference):
    again = losses(Trainer(tiny_config(tmp_path / "a")).train())
    assert again == reference[0]
    other = losses(Trainer(tiny_config(tmp_path / "b", seed=4)).train())
    assert other != reference[0]


# --------------------------------------------------------------------------- exact resume

def test_resume_continues_bit_for_bit(tmp_path, reference):
    ref_losses, ref_state, ref_log = reference
    first = Trainer(tiny_config(tmp_path))
    part1 = losses(first.train(steps=10))
    del first
    resumed = Trainer.resume(tmp_path)
    assert resumed.step == 10
    part2 = losses(resumed.train())
    assert part1 + part2 == ref_losses
    state = resumed.state_dict()
    for key in ("model", "ema", "optimizer", "scheduler", "rng", "data", "step", "config"):
        if key == "config":
            assert state[key] == {**ref_state[key], "out_dir": str(tmp_path)}
        else:
            assert_states_equal(state[key], ref_state[key], key)
    assert read_loss_log(tmp_path / "loss.csv")["loss"].tolist() == ref_losses


def test_resume_after_a_crash_redoes_the_lost_steps(tmp_path, reference):
    """A crash after the step-10 checkpoint loses steps 11-13; the resumed run redoes exactly
    them, and loss.csv ends up as if nothing had happened."""
    def crash(trainer, info):
        if info.step == 13:
            raise RuntimeError("simulated crash")
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(tiny_config(tmp_path), callbacks=[crash]).train()
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 10
    assert read_loss_log(tmp_path / "loss.csv")["step"].max() == 13
    Trainer.resume(tmp_path / "checkpoint.npz").train()
    log = read_loss_log(tmp_path / "loss.csv")
    assert log["step"].tolist() == list(range(1, 21))
    assert log["loss"].tolist() == reference[0]


def test_resume_may_extend_a_run_but_not_change_it(tmp_path):
    Trainer(tiny_config(tmp_path, steps=5)).train()
    longer = Trainer.resume(tmp_path, steps=8)
    assert len(longer.train()) == 3 and longer.step == 8
    with pytest.raises(ValueError, match="lr"):
        Trainer.resume(tmp_path, lr=1.0)


def _labelled_points(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    angle = labels * (2 * np.pi / 10)
    pts = np.stack([np.cos(angle), np.sin(angle)], 1) + 0.1 * rng.standard_normal((n, 2))
    return pts.astype(np.float32), labels.astype(np.int64)


def test_class_conditional_epochs_resume_bit_for_bit(tmp_path):
    """Shuffled epochs (position and permutation checkpointed) and label dropout, across epoch
    boundaries: 200 examples in batches of 64 make an epoch of 3 batches."""
    pts, labels = _labelled_points()
    model = dict(TINY_MLP)
    cfg = TrainConfig.mnist(class_cond=True, model=model, steps=14, batch_size=64, lr=2e-3,
                            warmup_steps=2, timesteps=100, ckpt_every=100, progress=False,
                            out_dir=str(tmp_path / "full"), p_uncond=0.3)
    full = losses(Trainer(cfg, batches=ShuffledBatches(pts, labels, 64)).train())
    cfg.out_dir = str(tmp_path / "split")
    first = Trainer(cfg, batches=ShuffledBatches(pts, labels, 64))
    part1 = losses(first.train(steps=7))
    assert first.batches.epoch == 2
    resumed = Trainer.resume(tmp_path / "split", batches=ShuffledBatches(pts, labels, 64))
    assert resumed.batches.position == first.batches.position
    assert part1 + losses(resumed.train()) == full


def test_label_dropout_rate():
    pts, labels = _labelled_points(1000)
    cfg = TrainConfig.mnist(class_cond=True, model=dict(TINY_MLP), batch_size=1000, progress=False,
                            p_uncond=0.25, out_dir="unused")
    trainer = Trainer(cfg, batches=ShuffledBatches(pts, labels, 1000))
    _, _, _, y = trainer._draw()
    dropped = (y == 10).mean()
    # Binomial(1000, 0.25): sd 0.014, so 5 sd is 0.07.
    assert abs(dropped - 0.25) < 0.07
    kept = y != 10
    assert set(np.unique(y[kept])) <= set(range(10))


def test_shuffled_batches_cover_each_epoch_once():
    data = np.arange(10, dtype=np.float32)[:, None]
    batches = ShuffledBatches(data, None, 3)
    rng = np.random.default_rng(0)
    seen = np.concatenate([batches.next_batch(rng)[0][:, 0] for _ in range(3)])
    assert sorted(seen.tolist()) == sorted(set(seen.tolist()))       # no repeats within an epoch
    assert batches.epoch == 0
    batches.next_batch(rng)                                           # one left over: dropped
    assert batches.epoch == 1 and batches.position == 3


# --------------------------------------------------------------------------- NaN guard

class PoisonedBatches(Toy2DBatches):
    """Toy batches whose `poison_at`-th batch (1-based) holds a NaN."""

    def __init__(self, poison_at: int) -> None:
        super().__init__("moons", 64)
        self.calls, self.poison_at = 0, poison_at

    def next_batch(self, rng):
        x, y = super().next_batch(rng)
        self.calls += 1
        if self.calls == self.poison_at:
            x[5, 1] = np.nan
        return x, y


def test_nan_guard_stops_with_step_and_quantity_and_keeps_the_checkpoint(tmp_path):
    saved = {}

    def snapshot(trainer, info):
        if info.step == 10:
            saved["weights"] = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    trainer = Trainer(tiny_config(tmp_path), batches=PoisonedBatches(13), callbacks=[snapshot])
    with pytest.raises(TrainingDiverged, match=r"step 13: the loss is nan") as err:
        trainer.train()
    assert str(tmp_path / "checkpoint.npz") in str(err.value)
    # The weights were not touched by the bad step, and the step-10 checkpoint is intact.
    assert trainer.step == 12
    state = load_checkpoint(tmp_path / "checkpoint.npz")
    assert state["step"] == 10
    for name, value in saved["weights"].items():
        np.testing.assert_array_equal(state["model"][name], value)
    assert read_loss_log(tmp_path / "loss.csv")["step"].max() == 12


def test_infinite_lr_is_caught_on_the_next_step(tmp_path):
    with pytest.raises(ValueError, match="TrainConfig.lr=inf is invalid"):  # refused up front
        tiny_config(tmp_path, lr=math.inf)
    trainer = Trainer(tiny_config(tmp_path, warmup_steps=0))
    for group in trainer.optimizer.param_groups:   # and caught if it gets there anyway
        group["lr"] = math.inf
    trainer.scheduler.base_lrs = [math.inf] * len(trainer.scheduler.base_lrs)
    with pytest.raises(TrainingDiverged, match=r"step 2: the loss is nan.*No checkpoint was written"):
        trainer.train()
    assert not (tmp_path / "checkpoint.npz").exists()


def test_nonfinite_weights_are_never_saved(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, steps=3))
    trainer.train()
    before = (tmp_path / "checkpoint.npz").read_bytes()
    next(iter(trainer.model.parameters())).data[0, 0] = np.inf
    with pytest.raises(TrainingDiverged, match="NaN or inf"):
        trainer.save()
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


# --------------------------------------------------------------------------- Ctrl-C

def test_keyboard_interrupt_from_a_callback_saves_then_resumes_exactly(tmp_path, reference):
    def interrupt(trainer, info):
        if info.step == 7:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(tmp_path), callbacks=[interrupt]).train()
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 7
    resumed = Trainer.resume(tmp_path)
    resumed.train()
    assert read_loss_log(tmp_path / "loss.csv")["loss"].tolist() == reference[0]


class SigintBatches(Toy2DBatches):
    """Sends this process a real SIGINT while drawing the `at`-th batch, i.e. mid-step."""

    def __init__(self, at: int) -> None:
        super().__init__("moons", 64)
        self.calls, self.at = 0, at

    def next_batch(self, rng):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super().next_batch(rng)


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="needs POSIX signals")
def test_ctrl_c_mid_step_finishes_the_step_then_saves(tmp_path, reference, capsys):
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_config(tmp_path), batches=SigintBatches(5)).train()
    assert signal.getsignal(signal.SIGINT) is handler_before
    assert "checkpoint saved" in capsys.readouterr().out
    state = load_checkpoint(tmp_path / "checkpoint.npz")
    assert state["step"] == 5
    resumed = Trainer.resume(tmp_path)
    resumed.train()
    assert read_loss_log(tmp_path / "loss.csv")["loss"].tolist() == reference[0]


# --------------------------------------------------------------------------- EMA

def _params(rng, shapes):
    return {f"p{i}": Parameter(rng.standard_normal(s).astype(np.float32)) for i, s in enumerate(shapes)}


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_matches_a_scalar_loop(warmup):
    rng = np.random.default_rng(0)
    params = _params(rng, [(3, 4), (5,)])
    ema = EMA(params, decay=0.9, warmup=warmup)
    # The reference: one Python float per entry, the textbook recursion written out.
    expected = {k: [float(v) for v in p.data.ravel()] for k, p in params.items()}
    for n in range(25):
        for p in params.values():
            p.data = rng.standard_normal(p.shape).astype(np.float32)
        ema.update()
        d = min(0.9, (1 + n) / (10 + n)) if warmup else 0.9
        for k, p in params.items():
            expected[k] = [d * e + (1 - d) * float(x) for e, x in zip(expected[k], p.data.ravel())]
    for k in params:
        np.testing.assert_allclose(ema.shadow[k].ravel(), expected[k], rtol=1e-5, atol=1e-6)
        assert ema.shadow[k].dtype == np.float32
    assert ema.num_updates == 25


def test_ema_swap_state_dict_and_no_aliasing():
    rng = np.random.default_rng(1)
    params = _params(rng, [(2, 2)])
    ema = EMA(params, decay=0.5, warmup=False)
    live = params["p0"].data.copy()
    params["p0"].data += 1.0       # in place on purpose: the shadow must be a copy
    ema.update()
    np.testing.assert_allclose(ema.shadow["p0"], live + 0.5)
    with ema.swapped_into():
        np.testing.assert_allclose(params["p0"].data, live + 0.5)
    np.testing.assert_allclose(params["p0"].data, live + 1.0)
    other = EMA(_params(rng, [(2, 2)]), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.5 and other.num_updates == 1 and not other.warmup
    np.testing.assert_array_equal(other.shadow["p0"], ema.shadow["p0"])
    assert other.shadow["p0"] is not ema.shadow["p0"]
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({**ema.state_dict(), "shadow": {}})


# --------------------------------------------------------------------------- sampling hooks

def test_sampling_mid_training_does_not_change_the_run(tmp_path, reference):
    drawn = []

    def sample_now(trainer, info):
        if info.step in (5, 12):
            drawn.append(trainer.sample(16, sampler="ddim", steps=3, seed=info.step).samples)
    trainer = Trainer(tiny_config(tmp_path), callbacks=[sample_now])
    assert losses(trainer.train()) == reference[0]
    assert len(drawn) == 2 and all(d.shape == (16, 2) and np.isfinite(d).all() for d in drawn)
    assert trainer.model.training


def test_classifier_free_guidance_combines_two_predictions():
    from autograd import no_grad
    from autograd.tensor import Tensor
    from tinydiff.models import build_model
    from tinydiff.sampling import model_fn_for
    model = build_model({**TINY_MLP, "num_classes": 10})
    rng = np.random.default_rng(0)
    xt = rng.standard_normal((6, 2)).astype(np.float32)
    t = rng.integers(0, 100, 6)
    y = np.array([0, 3, 3, 9, 1, 2])
    with no_grad():
        cond = model(Tensor(xt), t, y).data
        uncond = model(Tensor(xt), t, np.full(6, 10)).data
        guided = model_fn_for(model, y, guidance=3.0)(xt, t)
        plain = model_fn_for(model, y)(xt, t)
    np.testing.assert_allclose(guided, uncond + 3.0 * (cond - uncond), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(plain, cond)
    with pytest.raises(ValueError, match="needs labels"):
        model_fn_for(model, None, guidance=2.0)
    with pytest.raises(ValueError, match="class-conditional"):
        model_fn_for(build_model(TINY_MLP), y, guidance=2.0)


def test_generate_batches_labels_and_reports_speed():
    from tinydiff.diffusion import GaussianDiffusion
    from tinydiff.models import build_model
    from tinydiff.sampling import generate
    from tinydiff.schedules import make_beta_schedule
    model = build_model({**TINY_MLP, "num_classes": 10})
    diffusion = GaussianDiffusion(make_beta_schedule("linear", 100))
    out = generate(model, diffusion, 10, (2,), sampler="ddim", steps=4, labels=7, guidance=2.0,
                   batch_size=4, seed=1)
    assert out.samples.shape == (10, 2) and out.samples.dtype == np.float32
    assert out.labels.tolist() == [7] * 10 and out.per_second > 0
    again = generate(model, diffusion, 10, (2,), sampler="ddim", steps=4, labels=7, guidance=2.0,
                     batch_size=4, seed=1)
    np.testing.assert_array_equal(out.samples, again.samples)
    with pytest.raises(ValueError, match="one label per sample"):
        generate(model, diffusion, 10, (2,), sampler="ddim", steps=4, labels=[1, 2])
