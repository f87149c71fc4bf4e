"""autograd: a small reverse-mode automatic differentiation engine on NumPy or CuPy arrays.

    >>> from autograd import Tensor
    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([2., 4., 6.], dtype=float32)
"""
import autograd.tensor_methods  # noqa: F401  (attaches +, @, sum, reshape, ... to Tensor)
from autograd.gradcheck import GradcheckError, gradcheck
from autograd.ops.shape import cat, concatenate, stack
from autograd.tensor import Tensor, as_tensor, is_grad_enabled, no_grad, tensor

__all__ = ["Tensor", "tensor", "as_tensor", "no_grad", "is_grad_enabled", "concatenate", "cat",
           "stack", "gradcheck", "GradcheckError"]
