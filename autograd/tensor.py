"""The Tensor: an array, plus the recipe to push gradients back through the op that made it.

Every op (see ``autograd/ops``) computes its result on the array's own module (NumPy or CuPy)
and hands ``make_node`` a ``backward(g)`` closure that maps the gradient of the result, ``g``,
to the gradients of its inputs. ``Tensor.backward`` walks those closures in reverse
topological order. That is all reverse-mode autodiff is.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from autograd.backend import check_tensor_dtype, device_of, get_array_module, host_array, is_array, to_device, to_numpy
from autograd.graph import draw_graph, format_graph
from autograd.ops._blocks import elementwise  # the threaded a + b that sums a gradient used twice

if TYPE_CHECKING:  # +, @, sum, reshape, exp, ...: attached in autograd/tensor_methods.py, declared there
    from autograd.tensor_methods import TensorMethods
else:
    TensorMethods = object

# Whether ops record the graph. The one piece of global state, as in every autograd: the
# `no_grad` context below is the only thing that changes it.
_GRAD_ENABLED = True


class no_grad:
    """Context manager (and decorator) that stops ops from recording the graph.

    Inside it results never require grad, so no backward closures are kept: use it for
    sampling, evaluation and optimizer updates.
    """

    def __init__(self) -> None:
        # A stack, not one saved flag: the same instance may be entered again before it exits
        # (`ng = no_grad()` used in a recursive helper), and each exit must restore its own entry.
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        global _GRAD_ENABLED
        self._prev.append(_GRAD_ENABLED)
        _GRAD_ENABLED = False

    def __exit__(self, *exc: Any) -> None:
        global _GRAD_ENABLED
        _GRAD_ENABLED = self._prev.pop()

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


def is_grad_enabled() -> bool:
    """True unless inside a ``no_grad()`` block."""
    return _GRAD_ENABLED


class Tensor(TensorMethods):
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(array)`` keeps the array's dtype and device (a CuPy array stays on the GPU);
    Python numbers and lists become float32. Only floating-point tensors may require grad.
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_op", "_grad_norm", "name", "__weakref__")
    # Make `numpy_array * tensor` call Tensor.__rmul__ instead of numpy's elementwise loop.
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 name: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if is_array(data):
            if dtype is not None:
                data = data.astype(dtype, copy=False)
        else:  # NumPy scalars keep their dtype; Python numbers and (nested) lists become float32
            data = host_array(data, "float32" if dtype is None and not hasattr(data, "dtype") else dtype)
        check_tensor_dtype(data, requires_grad)
        self.data: Any = data
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Callable | None = None
        self._op = "leaf"
        self._grad_norm: float | None = None
        self.name = name

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def device(self) -> str:
        """'cpu' (NumPy) or 'cuda' (CuPy)."""
        return device_of(self.data)

    @property
    def xp(self) -> Any:
        """The array module of this tensor: numpy or cupy."""
        return get_array_module(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        return f"Tensor({self.data!r}{grad}{dev})".replace("\n", "\n       ")

    # ------------------------------------------------------------------ conversions
    def numpy(self) -> Any:
        """A host (NumPy) copy of the data, detached from the graph."""
        return to_numpy(self.data, copy=True)

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item(): only a tensor with one element converts to a number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def to(self, device: str) -> Tensor:
        """The same values on ``device`` ('cpu' or 'cuda').    dL/dx = g moved back to x's device."""
        if device_of(self.data) == device:
            return self
        src = self.device
        return make_node(to_device(self.data, device), (self,),
                         lambda g: (to_device(g, src),), f"to({device})")

    def detach(self) -> Tensor:
        """The same array, cut from the graph (shares memory, never requires grad)."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def astype(self, dtype: Any) -> Tensor:
        """y = x cast to ``dtype``.    dL/dx = g cast back to x's dtype."""
        src = self.data.dtype
        return make_node(self.data.astype(dtype), (self,), lambda g: (g.astype(src),), "astype")

    # ------------------------------------------------------------------ backward
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is d(loss)/d(self); it may be omitted only for a one-element tensor.
        The graph is freed as it is walked unless ``retain_graph=True``, which also keeps
        each node's gradient norm for ``graph()``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad (no input required grad, "
                               "or it was computed under no_grad())")
        xp = get_array_module(self.data)
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor, got shape "
                                   f"{self.shape}; reduce it first (e.g. .sum()) or pass gradient=")
            gradient = xp.ones_like(self.data)
        else:
            gradient = gradient.data if isinstance(gradient, Tensor) else xp.asarray(gradient, dtype=self.dtype)
            if gradient.shape != self.shape:
                raise ValueError(f"backward(): gradient shape {gradient.shape} != tensor shape {self.shape}")

        grads: dict[Tensor, Any] = {self: gradient}
        for node in reversed(self._topological_order()):
            g = grads.pop(node, None)
            if g is None:
                continue
            if retain_graph:
                node._grad_norm = float(xp.sqrt((g.astype(xp.float64) ** 2).sum()))
            if node._backward is None:  # a leaf: this is where gradients come to rest
                if g.dtype != node.data.dtype:
                    g = g.astype(node.data.dtype)
                # Copy: backward closures may hand the same array to several inputs.
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                prev = grads.get(parent)
                grads[parent] = pg if prev is None else elementwise(xp.add, prev, pg)
            if not retain_graph:  # free the intermediates as soon as their gradient is spent
                node._parents, node._backward = (), _freed_backward(node._op)

    def _topological_order(self) -> list[Tensor]:
        """Nodes that require grad, each after all of its inputs. Iterative: a UNet graph is
        thousands of nodes deep and must never meet Python's recursion limit."""
        order: list[Tensor] = []
        visited: set[Tensor] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                order.append(node)
                continue
            if node in visited:
                continue
            visited.add(node)
            stack.append((node, True))
            for p in node._parents:
                if p.requires_grad and p not in visited:
                    stack.append((p, False))
        return order

    def graph(self) -> str:
        """The graph that produced this tensor as indented text: op, shape and (after
        ``backward(retain_graph=True)``) the norm of the gradient that flowed through."""
        return format_graph(self)

    def draw_graph(self, path: str | None = None, ax: Any = None) -> Any:
        """Draw ``graph()`` with matplotlib; saves to ``path`` if given, returns the figure."""
        return draw_graph(self, path=path, ax=ax)

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]


def _freed_backward(op: str) -> Callable:
    """The backward of a node whose graph ``backward()`` already freed: it must not read as a leaf
    (a second backward would then stop there silently and leave every input's grad unchanged)."""
    def backward(g: Any) -> tuple:
        raise RuntimeError(f"backward(): the graph through this {op!r} node was freed by an earlier "
                           f"backward(); pass retain_graph=True to the first call to backward twice")
    return backward


def make_node(data: Any, parents: tuple[Tensor, ...], backward: Callable, op: str) -> Tensor:
    """The result of an op: ``data`` with a link back to ``parents`` through ``backward``.

    ``backward(g)`` returns one gradient (or None) per parent, each of that parent's shape.
    Nothing is recorded when grad is disabled or no parent requires grad.
    """
    out = object.__new__(Tensor)
    out.data = data
    out.grad = None
    out.name = None
    out._grad_norm = None
    out._op = op
    if _GRAD_ENABLED and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._parents = parents
        out._backward = backward
    else:
        out.requires_grad = False
        out._parents = ()
        out._backward = None
    return out


# Kinds of dtype from narrowest to widest: a Python constant may widen the kind, never the size.
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; numbers and arrays become constants on ``like``'s device.

    A number or list takes ``like``'s dtype (``float32_tensor * 2.0`` stays float32, as in
    NumPy 2) unless it is of a wider kind: ``int_tensor * 2.5`` is float64, not a truncated 2.
    """
    if isinstance(x, Tensor):
        return x
    if like is None:
        return Tensor(x)
    xp = get_array_module(like.data)
    if is_array(x):
        if get_array_module(x) is not xp:
            raise TypeError(f"cannot combine an array on {device_of(x)!r} with a tensor on {like.device!r}")
        return Tensor(x)
    value = xp.asarray(x)
    dtype = like.data.dtype
    if _KIND_RANK.get(value.dtype.kind, 0) > _KIND_RANK.get(dtype.kind, 0):
        dtype = xp.result_type(dtype, value.dtype)
    return Tensor(value.astype(dtype, copy=False))


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Construct a Tensor (same rules as ``Tensor(...)``)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
