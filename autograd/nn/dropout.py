"""Dropout: zero each element with probability p while training, scaling survivors by 1/(1-p)."""
from __future__ import annotations

import autograd.functional as F
from autograd.nn.module import Module
from autograd.tensor import Tensor


class Dropout(Module):
    """Active only in training mode (``module.train()``); the identity after ``eval()``.

    The 1/(1-p) scaling keeps E[output] = input, so nothing changes at evaluation time.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
