"""The learning-rate decay (autograd.optim.WarmupDecay) and TrainConfig.lr_schedule.

The cosine values are checked against torch's chainable form of cosine annealing, a recursion
that never evaluates the closed form: eta_{j+1} = eta_j (1 + cos(pi (j+1)/S)) / (1 + cos(pi j/S)).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from autograd.optim import SGD, Adam, LinearWarmup, WarmupDecay
from autograd.tensor import Tensor
from tinydiff.run import TrainConfig, read_loss_log
from tinydiff.train import Trainer


def leaf(a):
    return Tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def lrs(sched, opt, n):
    seen = []
    for _ in range(n):
        seen.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return np.array(seen)


def test_cosine_matches_the_chained_recursion_after_the_warmup():
    warmup, total, base = 4, 20, 0.5
    opt = SGD([leaf(np.zeros(1))], lr=base)
    got = lrs(WarmupDecay(opt, warmup, total, "cosine"), opt, total)
    np.testing.assert_allclose(got[:warmup], [base * (k + 1) / warmup for k in range(warmup)])
    span = total + 1 - warmup          # decay steps j = 0 .. span, j = span lands on 0
    eta = [base]
    for j in range(span - 1):
        eta.append(eta[-1] * (1 + math.cos(math.pi * (j + 1) / span)) / (1 + math.cos(math.pi * j / span)))
    np.testing.assert_allclose(got[warmup - 1:], eta, rtol=1e-12)
    assert got[-1] > 0 and got[-1] < 0.01 * base      # the last step still moves, barely


def test_linear_decay_steps_down_evenly_to_zero_one_past_the_end():
    opt = SGD([leaf(np.zeros(1))], lr=1.0)
    got = lrs(WarmupDecay(opt, 3, 12, "linear"), opt, 14)
    decay = got[2:12]
    np.testing.assert_allclose(np.diff(decay), -1.0 / 10)     # span 12 + 1 - 3 = 10
    assert decay[0] == 1.0
    np.testing.assert_allclose(got[12:], 0.0)                  # past the total: stays at 0


def test_constant_is_exactly_linear_warmup():
    a, b = SGD([leaf(np.zeros(1))], lr=0.3), SGD([leaf(np.zeros(1))], lr=0.3)
    np.testing.assert_array_equal(lrs(WarmupDecay(a, 5, 10, "constant"), a, 15),
                                  lrs(LinearWarmup(b, 5), b, 15))


def test_no_warmup_and_bad_arguments():
    opt = SGD([leaf(np.zeros(1))], lr=1.0)
    got = lrs(WarmupDecay(opt, 0, 3, "linear"), opt, 3)
    np.testing.assert_allclose(got, [0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="decay 'exp' is not one of constant, cosine, linear"):
        WarmupDecay(opt, 0, 3, "exp")
    with pytest.raises(ValueError, match="total_steps"):
        WarmupDecay(opt, 0, -1, "cosine")


def test_state_dict_resumes_the_decay():
    def fresh():
        opt = Adam([leaf(np.zeros(1))], lr=0.4)
        return opt, WarmupDecay(opt, 2, 10, "cosine")
    opt, sched = fresh()
    want = lrs(sched, opt, 10)
    opt, sched = fresh()
    lrs(sched, opt, 4)
    opt2, sched2 = fresh()
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    np.testing.assert_allclose(lrs(sched2, opt2, 6), want[4:], rtol=1e-15)


TINY = {"name": "mlp", "data_dim": 2, "hidden_dim": 16, "num_layers": 2, "time_embed_dim": 8}


def tiny(out_dir, **over):
    base = dict(steps=12, batch_size=32, lr=1e-3, warmup_steps=3, timesteps=50, ckpt_every=6,
                model=TINY, out_dir=str(out_dir), progress=False, lr_schedule="cosine")
    return TrainConfig.toy2d("moons", **{**base, **over})


def test_trainer_logs_the_decay_and_resumes_it_bit_for_bit(tmp_path):
    whole = Trainer(tiny(tmp_path / "whole"))
    whole.train()
    log = read_loss_log(tmp_path / "whole" / "loss.csv")
    p = (np.arange(12) + 1 - 3) / (12 + 1 - 3)
    want = np.where(np.arange(12) + 1 < 3, 1e-3 * (np.arange(12) + 1) / 3,
                    1e-3 * 0.5 * (1 + np.cos(np.pi * np.clip(p, 0, 1))))
    np.testing.assert_allclose(log["lr"], want, rtol=1e-5)

    part = Trainer(tiny(tmp_path / "part"))
    part.train(steps=6)
    resumed = Trainer.resume(tmp_path / "part")
    resumed.train()
    np.testing.assert_array_equal(read_loss_log(tmp_path / "part" / "loss.csv")["loss"], log["loss"])


def test_config_refuses_an_unknown_schedule():
    with pytest.raises(ValueError, match="TrainConfig.lr_schedule='step' is invalid: expected one of "
                                         "constant, cosine, linear"):
        TrainConfig.toy2d(lr_schedule="step")


def test_old_configs_without_the_field_load_as_constant():
    d = TrainConfig.toy2d().to_dict()
    del d["lr_schedule"]
    assert TrainConfig.from_dict(d).lr_schedule == "constant"
