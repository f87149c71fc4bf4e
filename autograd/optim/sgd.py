"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay (torch's rule)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autograd.optim.optimizer import Optimizer
from autograd.tensor import Tensor


class SGD(Optimizer):
    """Exactly torch.optim.SGD: with g = grad + weight_decay * p,

        b <- g                                 (first step)
        b <- momentum * b + (1 - dampening) * g  (later steps)
        d = g + momentum * b if nesterov else b   (d = g when momentum = 0)
        p <- p - lr * d
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        if not group["momentum"] >= 0.0:
            raise ValueError(f"invalid momentum value: {group['momentum']} (must be >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any], scratch: Any) -> None:
        xp = p.xp
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        g = grad
        if wd != 0:
            xp.multiply(p.data, wd, out=scratch)
            scratch += grad
            g = scratch
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                damp = group["dampening"]
                if damp == 0:
                    buf += g
                else:  # nesterov is excluded here, so g is not needed afterwards
                    xp.multiply(g, 1.0 - damp, out=scratch)
                    buf += scratch
            if group["nesterov"]:
                # p -= lr * (g + momentum * b), as two in-place updates through one scratch
                xp.multiply(g, -lr, out=scratch)
                p.data += scratch
                xp.multiply(buf, -lr * momentum, out=scratch)
                p.data += scratch
                return
            g = buf
        xp.multiply(g, -lr, out=scratch)
        p.data += scratch
