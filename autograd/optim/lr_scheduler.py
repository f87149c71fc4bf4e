"""Learning-rate warmup: ramp the learning rate up linearly over the first steps of training."""
from __future__ import annotations

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
