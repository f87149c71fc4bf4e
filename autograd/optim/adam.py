"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), with torch's update rules."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from autograd.optim.optimizer import Optimizer
from autograd.tensor import Tensor


class Adam(Optimizer):
    """Exactly torch.optim.Adam. At step t = 1, 2, ... with g = grad (+ weight_decay * p, L2):

        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Implementation note: the last line is evaluated as
    p -= lr * sqrt(c2) / c1 * m / (sqrt(v) + eps * sqrt(c2)) with c_i = 1 - beta_i^t, the same
    quantity (multiply the fraction through by sqrt(c2)) in five in-place passes.
    """

    _decoupled = False

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        super()._check_hyperparameters(group)
        if not group["eps"] >= 0.0:
            raise ValueError(f"invalid epsilon value: {group['eps']} (must be >= 0)")
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {beta} (must be in [0, 1))")

    def _init_state(self, p: Tensor) -> dict[str, Any]:
        return {"step": 0, "exp_avg": p.xp.zeros_like(p.data), "exp_avg_sq": p.xp.zeros_like(p.data)}

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any], scratch: Any) -> None:
        xp = p.xp
        lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        state["step"] = t = state["step"] + 1
        g = grad
        if wd != 0:
            if self._decoupled:  # AdamW: shrink the weights directly, outside the moments
                p.data *= 1.0 - lr * wd
            else:  # Adam: L2 penalty folded into the gradient
                g = self._scratch_for(p, 1)
                xp.multiply(p.data, wd, out=g)
                g += grad
        m *= beta1
        xp.multiply(g, 1.0 - beta1, out=scratch)
        m += scratch
        v *= beta2
        xp.multiply(g, g, out=scratch)
        scratch *= 1.0 - beta2
        v += scratch
        sqrt_c2 = math.sqrt(1.0 - beta2 ** t)
        xp.sqrt(v, out=scratch)
        scratch += eps * sqrt_c2
        xp.divide(m, scratch, out=scratch)
        scratch *= -lr * sqrt_c2 / (1.0 - beta1 ** t)
        p.data += scratch


class AdamW(Adam):
    """Exactly torch.optim.AdamW: Adam without L2 in the gradient, and instead, before each
    update, decoupled weight decay p <- p * (1 - lr * weight_decay) (default 1e-2)."""

    _decoupled = True

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
