"""Parameter: a Tensor that a Module registers as one of its learnable weights."""
from __future__ import annotations

from typing import Any

from autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad and that ``Module.__setattr__`` registers.

    ``Parameter(data)`` shares ``data``'s array (as ``torch.nn.Parameter`` shares storage) and
    keeps its dtype and device. Ops on a Parameter return plain Tensors; only the leaf itself
    is a Parameter, so ``isinstance(x, Parameter)`` marks exactly what an optimizer updates.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
