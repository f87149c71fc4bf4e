"""Activation layers: parameter-free wrappers of the functions in autograd.functional."""
from __future__ import annotations

import autograd.functional as F
from autograd.nn.module import Module
from autograd.tensor import Tensor


class SiLU(Module):
    """silu(x) = x * sigmoid(x) (a.k.a. swish), the activation of diffusion UNets."""

    def forward(self, input: Tensor) -> Tensor:
        return F.silu(input)


class ReLU(Module):
    """relu(x) = max(x, 0)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)


class GELU(Module):
    """gelu(x) = x * Phi(x); ``approximate='tanh'`` uses the tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """sigmoid(x) = 1 / (1 + exp(-x))."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)
