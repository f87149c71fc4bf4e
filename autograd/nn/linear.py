"""Affine maps and lookups: Identity, Linear, Embedding."""
from __future__ import annotations

from typing import Any

import autograd.functional as F
from autograd.nn import init
from autograd.nn.module import Module
from autograd.nn.parameter import Parameter
from autograd.tensor import Tensor


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (a placeholder)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features).

    Init as torch: W ~ U(-1/sqrt(in_features), 1/sqrt(in_features)) (kaiming_uniform_ with
    a = sqrt(5)) and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        init.check_layer_args("Linear", dtype, in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.empty((out_features, in_features), dtype))
        self.register_parameter("bias", Parameter(init.empty((out_features,), dtype)) if bias else None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.default_weight_and_bias_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``; row i is looked up for
    index i. Init as torch: every entry ~ N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        init.check_layer_args("Embedding", dtype, num_embeddings=num_embeddings,
                              embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(init.empty((num_embeddings, embedding_dim), dtype))
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)

    def forward(self, input: Any) -> Tensor:
        return F.embedding(input, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
