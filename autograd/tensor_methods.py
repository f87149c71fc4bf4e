"""Tensor's operators and methods (+, -, *, /, **, @, sum, reshape, exp, ...), attached to the class.

Each is implemented, forward beside backward, in ``autograd/ops/``; those modules build their
results with ``autograd.tensor.make_node``, so the class cannot name them itself without an
import cycle. ``autograd/__init__.py`` imports this module right after the Tensor, so every
Tensor has its operators before any user code runs.
"""
from __future__ import annotations

from autograd.ops import arithmetic as _ar
from autograd.ops import reduce as _rd
from autograd.ops import shape as _sh
from autograd.ops import unary as _un
from autograd.tensor import Tensor

Tensor.__add__ = _ar.add
Tensor.__radd__ = lambda self, other: _ar.add(other, self)
Tensor.__sub__ = _ar.sub
Tensor.__rsub__ = lambda self, other: _ar.sub(other, self)
Tensor.__mul__ = _ar.mul
Tensor.__rmul__ = lambda self, other: _ar.mul(other, self)
Tensor.__truediv__ = _ar.div
Tensor.__rtruediv__ = lambda self, other: _ar.div(other, self)
Tensor.__pow__ = _ar.pow
Tensor.__rpow__ = lambda self, other: _ar.pow(other, self)
Tensor.__neg__ = _ar.neg
Tensor.__matmul__ = _ar.matmul
Tensor.__rmatmul__ = lambda self, other: _ar.matmul(other, self)

Tensor.sum = _rd.sum
Tensor.mean = _rd.mean
Tensor.max = _rd.max
Tensor.var = _rd.var

Tensor.reshape = _sh.reshape
Tensor.view = _sh.reshape
Tensor.flatten = _sh.flatten
Tensor.unsqueeze = _sh.unsqueeze
Tensor.squeeze = _sh.squeeze
Tensor.transpose = _sh.transpose
Tensor.permute = _sh.permute
Tensor.T = property(lambda self: _sh.permute(self, *reversed(range(self.ndim))))
Tensor.expand = _sh.expand
Tensor.__getitem__ = _sh.getitem

for _name in ("exp", "log", "sqrt", "tanh", "sigmoid", "relu", "sin", "cos", "abs"):
    setattr(Tensor, _name, getattr(_un, _name))
