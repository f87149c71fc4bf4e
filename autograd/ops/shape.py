"""Ops that move values around without changing them: reshape, permute, index, join.

Their backward moves the gradient back the same way: reshape it back, apply the inverse
permutation, scatter it into the indexed positions, or split it among the joined inputs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autograd.backend import device_of, get_array_module
from autograd.ops import _blocks
from autograd.ops.arithmetic import unbroadcast
from autograd.tensor import Tensor, make_node

# Bytes below which concatenate's copies run whole on the calling thread.
_SPLIT_BYTES = _blocks.SPLIT_BYTES


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    """Accept both ``reshape(2, 3)`` and ``reshape((2, 3))``."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """y = x with a new shape (same elements, row-major order).    dL/dx = reshape(g, x.shape)."""
    shape = _shape_arg(shape)
    try:
        out = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                         f"into {shape}") from None
    return make_node(out, (x,), lambda g: (g.reshape(x.shape),), "reshape")


def _axis(dim: int, ndim: int, op: str) -> int:
    """``dim`` in [-ndim, ndim) as a non-negative axis. Out of range is an error (as in torch),
    never a silent wrap-around to some other axis."""
    if not -ndim <= dim < ndim:
        raise IndexError(f"{op}: dim {dim} is out of range for {ndim} axes (valid: {-ndim} to {ndim - 1})")
    return dim % ndim


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes start_dim..end_dim into one (torch.flatten).    dL/dx = reshape(g, x.shape).

    A 0-d tensor becomes shape (1,), as in torch.
    """
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = _axis(start_dim, x.ndim, "flatten"), _axis(end_dim, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {x.shape})")
    n = 1
    for s in x.shape[start:end + 1]:
        n *= s
    return reshape(x, x.shape[:start] + (n,) + x.shape[end + 1:])


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert an axis of size 1 at ``dim``.    dL/dx = reshape(g, x.shape) (the axis dropped again)."""
    dim = _axis(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def squeeze(x: Tensor, dim: int | None = None) -> Tensor:
    """Drop axes of size 1 (only ``dim`` if given).    dL/dx = reshape(g, x.shape)."""
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    if x.ndim == 0:
        return x
    dim = _axis(dim, x.ndim, "squeeze")
    if x.shape[dim] != 1:
        return x
    return reshape(x, x.shape[:dim] + x.shape[dim + 1:])


def permute(x: Tensor, *dims: Any) -> Tensor:
    """y = x with axes reordered: y.shape[i] = x.shape[dims[i]].    dL/dx = permute(g, argsort(dims))."""
    dims = _shape_arg(dims)
    # Range first: an out-of-range axis must not wrap around into a valid-looking permutation.
    if (any(not -x.ndim <= d < x.ndim for d in dims)
            or sorted(d % x.ndim for d in dims) != list(range(x.ndim))):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    dims = tuple(d % x.ndim for d in dims)
    inverse = tuple(sorted(range(x.ndim), key=dims.__getitem__))
    return make_node(x.data.transpose(dims), (x,), lambda g: (g.transpose(inverse),), "permute")


def transpose(x: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    """Swap two axes (torch.transpose).    dL/dx = transpose(g, dim0, dim1)."""
    dim0, dim1 = _axis(dim0, x.ndim, "transpose"), _axis(dim1, x.ndim, "transpose")
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return permute(x, *dims)


def expand(x: Tensor, *shape: Any) -> Tensor:
    """Broadcast x to ``shape`` without copying.    dL/dx = g summed over the broadcast axes."""
    shape = _shape_arg(shape)
    try:
        out = x.xp.broadcast_to(x.data, shape)
    except ValueError:
        raise ValueError(f"expand: cannot broadcast a tensor of shape {x.shape} to {shape} (each axis "
                         f"must match or be 1 in the tensor; new axes go in front)") from None
    return make_node(out, (x,), lambda g: (unbroadcast(g, x.shape),), "expand")


def _index_data(index: Any) -> Any:
    """Unwrap Tensors inside an index (integer tensors may be used to index)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _is_basic(index: Any) -> bool:
    """True for indices made only of ints, slices, None and Ellipsis (each element picked once)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in parts)


def getitem(x: Tensor, index: Any) -> Tensor:
    """y = x[index] (ints, slices, integer arrays).    dL/dx = zeros with g added at the indexed places.

    Integer-array indices may repeat an element; its gradient is then the sum over the
    repeats, which ``add.at`` accumulates (plain assignment would keep only the last one).
    """
    index = _index_data(index)
    try:
        out = x.data[index]
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor shape {x.shape})") from None
    basic = _is_basic(index)

    def backward(g):
        xp = x.xp
        gx = xp.zeros(x.shape, dtype=g.dtype)
        if basic:
            gx[index] = g
        else:
            xp.add.at(gx, index, g)
        return (gx,)
    return make_node(out, (x,), backward, "getitem")


def _check_same_device(tensors: Sequence[Tensor], op: str) -> None:
    devices = {device_of(t.data) for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"{op}: tensors are on different devices {sorted(devices)}; "
                           f"shapes {[t.shape for t in tensors]}")


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """y = [x_1, x_2, ...] joined along ``axis``.    dL/dx_k = the slice of g that x_k filled."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    _check_same_device(tensors, "concatenate")
    xp = get_array_module(tensors[0].data)
    first = tensors[0].data
    ndim = first.ndim
    if ndim and not -ndim <= axis < ndim:
        raise IndexError(f"concatenate: axis {axis} is out of range for {ndim} axes (shapes "
                         f"{[t.shape for t in tensors]})")
    if (ndim == 0 or any(t.ndim != ndim for t in tensors)
            or any(t.shape[:axis % ndim] + t.shape[axis % ndim + 1:]
                   != first.shape[:axis % ndim] + first.shape[axis % ndim + 1:] for t in tensors)):
        raise ValueError(f"concatenate: shapes {[t.shape for t in tensors]} differ outside axis {axis}")
    axis = axis % ndim
    bounds = []
    start = 0
    for t in tensors:
        bounds.append((start, start + t.shape[axis]))
        start += t.shape[axis]
    if first.flags.c_contiguous:
        out = xp.concatenate([t.data for t in tensors], axis=axis)
    else:
        # Keep the first input's memory layout (NumPy's concatenate returns C order): the
        # channel-wise join of two channels-last feature maps must stay channels-last for the
        # convolution and normalisation that read it, which pay for a strided gather otherwise.
        order = _memory_order(first)
        shape = first.shape[:axis] + (start,) + first.shape[axis + 1:]
        dtype = xp.result_type(*[t.data for t in tensors])
        out = xp.empty([shape[d] for d in order], dtype=dtype).transpose(_inverse(order))
        # Joining along a later axis, the copies are shared among the engine's threads, a slice of
        # the first axis each (every row r of the result is made of the inputs' rows r).
        rows: list[Any] = _blocks.row_blocks(xp, out, _SPLIT_BYTES) if axis > 0 else [...]

        def copy_rows(run: list[Any]) -> None:
            for r in run:
                for t, (a, b) in zip(tensors, bounds):
                    out[r][(slice(None),) * axis + (slice(a, b),)] = t.data[r]
        _blocks.run_blocks(copy_rows, rows)

    def backward(g):
        lead = (slice(None),) * axis
        return tuple(g[lead + (slice(a, b),)] for a, b in bounds)
    return make_node(out, tuple(tensors), backward, "concatenate")


def _memory_order(a: Any) -> tuple[int, ...]:
    """The axes of ``a`` from the slowest-varying in memory to the fastest (C order: 0, 1, ...).
    Size-1 axes count too: the axis being joined may be one of them, and their strides (as a
    transposed view of contiguous memory has them) say where it belongs."""
    return tuple(sorted(range(a.ndim), key=lambda d: -abs(a.strides[d])))


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """y = [x_1, x_2, ...] stacked along a new ``axis``.    dL/dx_k = g[k] taken along that axis."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have one shape, got {[t.shape for t in tensors]}")
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


cat = concatenate
