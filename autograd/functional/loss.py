"""Losses: mean squared error and cross-entropy over class indices, each one op with a derived backward."""
from __future__ import annotations

from typing import Any

from autograd.backend import device_of
from autograd.tensor import Tensor, as_tensor, make_node

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(xp: Any, losses: Any, reduction: str) -> Any:
    """losses summed, averaged or left alone, as an array of the losses' dtype."""
    if reduction == "none":
        return losses
    total = losses.sum() if reduction == "sum" else losses.mean()
    return xp.asarray(total, dtype=losses.dtype)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """L = mean_i (x_i - t_i)^2 ("sum": sum_i, "none": elementwise).    dL/dx = 2 (x - t) g / n = -dL/dt,
    n = number of elements for "mean", else 1."""
    _check_reduction("mse_loss", reduction)
    target = as_tensor(target, like=input)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} != target shape {target.shape} "
                         f"(broadcasting them is almost always a bug; reshape one explicitly)")
    if device_of(input.data) != device_of(target.data):
        raise RuntimeError(f"mse_loss: input on {input.device!r}, target on {target.device!r}")
    xp = input.xp
    diff = input.data - target.data
    n = max(diff.size, 1) if reduction == "mean" else 1
    if reduction == "none":
        out = diff * diff
    else:  # vdot: the sum of squares without a squared temporary
        out = xp.asarray(xp.vdot(diff, diff) / n, dtype=diff.dtype)

    def backward(g):
        gx = diff * (g * (2.0 / n))
        return (gx if input.requires_grad else None, -gx if target.requires_grad else None)
    return make_node(out, (input, target), backward, "mse_loss")


def cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """L_n = -log softmax(x_n)[t_n] = logsumexp(x_n) - x_n[t_n], averaged ("mean") or summed over n.
    dL_n/dx_n = softmax(x_n) - onehot(t_n)  (divided by the number of targets for "mean").

    ``input`` holds logits (N, C) (or (C,), or (N, C, d1, ...) with the classes on axis 1);
    ``target`` holds integer class indices (N,) (or (), or (N, d1, ...)).
    """
    _check_reduction("cross_entropy", reduction)
    xp, x = input.xp, input.data
    t = xp.asarray(target.data if isinstance(target, Tensor) else target)
    caxis = 1 if x.ndim >= 2 else 0
    num_classes = x.shape[caxis] if x.ndim else 0
    expected = x.shape[:caxis] + x.shape[caxis + 1:]
    if x.ndim == 0 or t.shape != expected:
        raise ValueError(f"cross_entropy: logits of shape {x.shape} need class-index targets of shape "
                         f"{expected if x.ndim else '(N,)'}, got {t.shape}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {t.dtype}")
    if t.size and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise IndexError(f"cross_entropy: target class indices must lie in [0, {num_classes}) for "
                         f"{num_classes} classes; got values in [{int(t.min())}, {int(t.max())}]")

    t_kept = xp.expand_dims(t, caxis)
    z = x - x.max(axis=caxis, keepdims=True)   # shifted logits: exp cannot overflow
    p = xp.exp(z)
    total = p.sum(axis=caxis, keepdims=True)
    p /= total                                  # softmax, kept for the backward
    losses = xp.log(total) - xp.take_along_axis(z, t_kept, axis=caxis)
    losses = losses.reshape(expected)
    out = _reduce(xp, losses, reduction)
    count = max(losses.size, 1) if reduction == "mean" else 1

    def backward(g):
        classes = xp.arange(num_classes).reshape((-1,) + (1,) * (x.ndim - caxis - 1))
        gx = p - (classes == t_kept)            # softmax - onehot
        gx *= xp.expand_dims(xp.broadcast_to(g, expected), caxis) / count
        return (gx,)
    return make_node(out, (input,), backward, "cross_entropy")
