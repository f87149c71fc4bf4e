"""autograd.optim: optimizers with torch.optim's names, arguments and exact update rules.

    >>> opt = optim.AdamW(model.parameters(), lr=2e-4)
    >>> sched = optim.LinearWarmup(opt, warmup_steps=500)
    >>> loss.backward(); optim.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(); sched.step()
"""
from autograd.optim.adam import Adam, AdamW
from autograd.optim.clip import clip_grad_norm_
from autograd.optim.lr_scheduler import LinearWarmup, WarmupDecay
from autograd.optim.optimizer import Optimizer
from autograd.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "LinearWarmup", "WarmupDecay"]
