"""Learning-rate schedules: a linear warmup over the first steps, optionally then a decay to 0."""
from __future__ import annotations

import math
from typing import Any

from autograd.optim.optimizer import Optimizer


class LinearWarmup:
    """lr_k = base_lr * min(1, (k + 1) / warmup_steps) for the k-th optimizer step, k = 0, 1, ...

    Convention (that of torch's LambdaLR with this lambda): constructing the schedule sets the
    lr for step 0, and each ``scheduler.step()``, called after ``optimizer.step()``, sets it for
    the next one::

        sched = LinearWarmup(opt, warmup_steps=1000)
        for batch in data:
            loss = ...; loss.backward(); opt.step(); opt.zero_grad(); sched.step()

    So the first update already uses base_lr / warmup_steps (never a wasted step at lr 0) and
    update number warmup_steps - 1 is the first at the full base_lr; ``warmup_steps=0`` means
    no warmup. base_lr is each group's ``'initial_lr'``, set from its ``'lr'`` the first time
    a schedule sees the group (as torch does), so it survives the optimizer's state dict.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int) -> None:
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_step = 0  # index of the optimizer step the current lr is for
        self._apply()

    def factor(self, step: int) -> float:
        """The multiplier of base_lr for optimizer step ``step``: min(1, (step + 1) / warmup_steps)."""
        if self.warmup_steps == 0:
            return 1.0
        return min(1.0, (step + 1) / self.warmup_steps)

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance to the next optimizer step and set its learning rate."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group, as last set by this schedule."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"warmup_steps": self.warmup_steps, "last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position in the schedule (and the base lrs), and set the lr to match."""
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"loaded schedule has {len(state_dict['base_lrs'])} base learning rates, "
                             f"the optimizer has {len(self.optimizer.param_groups)} parameter groups")
        self.warmup_steps = int(state_dict["warmup_steps"])
        self.last_step = int(state_dict["last_step"])
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self._apply()


DECAYS = ("constant", "cosine", "linear")


class WarmupDecay(LinearWarmup):
    """Linear warmup, then a decay of the learning rate that reaches 0 at step ``total_steps``.

    For the k-th optimizer step (k = 0, 1, ...), with w = warmup_steps and
    p = (k + 1 - w) / (total_steps + 1 - w) the fraction of the decay phase done (clipped to
    [0, 1]):

        factor(k) = (k + 1) / w                      k + 1 <  w   (the warmup, as LinearWarmup)
        cosine:     (1 + cos(pi p)) / 2               k + 1 >= w   (SGDR, Loshchilov & Hutter 2017)
        linear:     1 - p
        constant:   1

    Step w - 1 is the first at the full base lr, and the run's last step, total_steps - 1, the
    last with a positive one (0 would be a wasted step): the decay ends at 0 one step later.
    A short run gains most from the decay: its last steps average out the noise of the
    stochastic gradient instead of adding more. ``total_steps`` is not part of the state dict:
    a resumed run given a new total decays towards that one.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int,
                 decay: str = "cosine") -> None:
        if decay not in DECAYS:
            raise ValueError(f"WarmupDecay: decay {decay!r} is not one of {', '.join(DECAYS)}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"WarmupDecay: total_steps must be an int >= 0, got {total_steps!r}")
        self.decay, self.total_steps = decay, total_steps
        super().__init__(optimizer, warmup_steps)

    def factor(self, step: int) -> float:
        done = step + 1
        if done < self.warmup_steps or self.decay == "constant":
            return super().factor(step)
        span = self.total_steps + 1 - self.warmup_steps
        p = min(1.0, max(0.0, (done - self.warmup_steps) / span)) if span > 0 else 1.0
        return 0.5 * (1.0 + math.cos(math.pi * p)) if self.decay == "cosine" else 1.0 - p
