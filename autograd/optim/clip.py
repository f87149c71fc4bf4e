"""Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from autograd.backend import get_array_module
from autograd.tensor import Tensor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients in place so that their joint norm is at most ``max_norm``.

    total = (sum_p ||grad_p||^q)^(1/q) over all parameters with a gradient (q = ``norm_type``,
    ``inf`` for the largest |entry|); every gradient is multiplied by
    min(1, max_norm / (total + 1e-6)). Returns ``total`` (before clipping) as a float.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm_type = float(norm_type)
    # Partial results stay on their device (one sum per device), so a GPU syncs only once.
    partial: dict[str, Any] = {}
    for g in grads:
        xp = get_array_module(g)
        flat = g.reshape(-1)
        if norm_type == math.inf:
            r = xp.abs(flat).max() if flat.size else xp.zeros((), g.dtype)
            partial[xp.__name__] = r if xp.__name__ not in partial else xp.maximum(partial[xp.__name__], r)
        else:
            r = xp.vdot(flat, flat) if norm_type == 2.0 else (xp.abs(flat) ** norm_type).sum()
            partial[xp.__name__] = r if xp.__name__ not in partial else partial[xp.__name__] + r
    values = [float(v) for v in partial.values()]
    total = max(values) if norm_type == math.inf else math.fsum(values) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite "
                           f"({total}), so it cannot be clipped; pass error_if_nonfinite=False to allow it")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or not math.isfinite(total):
        for g in grads:
            g *= coef
    return total
