"""Every Tensor op: forward against plain NumPy (or SciPy), backward against finite differences.

Hypothesis draws the shapes (broadcasting, size-1 and 0-d axes), the values (kept inside each
op's smooth domain: positive for log/sqrt, away from 0 for division, away from the kinks of
relu/abs and from ties in max) and the op's parameters (axes, keepdims, permutations, indices,
join axes). ``gradcheck`` compares the engine's backward with central differences, which knows
nothing of the derivative formulas, so a wrong backward cannot agree with it.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit

import autograd
from autograd import Tensor, gradcheck

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
TWO_BROADCASTABLE = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                      min_side=1, max_side=3)


# ---------------------------------------------------------------- value strategies
def values(shape, lo=-2.0, hi=2.0):
    """float64 arrays of ``shape`` with entries in [lo, hi]."""
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def positive(shape):
    return values(shape, 0.3, 3.0)


@st.composite
def away_from_zero(draw, shape, low=0.3):
    """|x| in [low, 2]: safe for division and away from the kinks of relu and abs at 0."""
    magnitude = draw(values(shape, low, 2.0))
    sign = draw(hnp.arrays(np.bool_, shape))
    return np.where(sign, magnitude, -magnitude)


@st.composite
def distinct(draw, shape):
    """Entries at least 0.1 apart (no ties for max, whose gradient picks the maximum)."""
    n = int(np.prod(shape, dtype=int))
    order = draw(st.permutations(range(n)))
    jitter = draw(values((n,), 0.0, 0.05))
    return (np.asarray(order, dtype=np.float64) * 0.15 + jitter - 0.1 * n).reshape(shape)


@st.composite
def axis_args(draw, ndim):
    """(axis, keepdims) for a reduction: None, one axis (maybe negative) or a tuple of axes."""
    keepdims = draw(st.booleans())
    if ndim == 0:
        return None, keepdims
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None, keepdims
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1)), keepdims
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes), keepdims


def leaf(a):
    return Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def check(fn, reference, *arrays):
    """Forward of ``fn`` on Tensors equals ``reference`` on arrays; backward passes gradcheck."""
    xs = [leaf(a) for a in arrays]
    out = fn(*xs)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, reference(*arrays), rtol=1e-12, atol=1e-12)
    assert gradcheck(fn, xs)


# ---------------------------------------------------------------- binary arithmetic
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("op", list(BINARY))
@given(shapes=TWO_BROADCASTABLE, data=st.data())
def test_binary_ops_broadcast(op, shapes, data):
    sa, sb = shapes.input_shapes
    a = data.draw(values(sa))
    b = data.draw(away_from_zero(sb) if op == "div" else values(sb))
    fn, ref = BINARY[op]
    check(fn, ref, a, b)
    assert fn(leaf(a), leaf(b)).shape == shapes.result_shape


@given(shapes=TWO_BROADCASTABLE, data=st.data())
def test_pow_tensor_exponent(shapes, data):
    sa, sb = shapes.input_shapes
    check(lambda a, b: a ** b, np.power, data.draw(positive(sa)), data.draw(values(sb)))


# Python numbers on either side of the operator.
SCALAR_FORMS = {
    "2.0 - x": (lambda x: 2.0 - x, lambda x: 2.0 - x, values),
    "x - 2.0": (lambda x: x - 2.0, lambda x: x - 2.0, values),
    "3 + x": (lambda x: 3 + x, lambda x: 3 + x, values),
    "x * -1.5": (lambda x: x * -1.5, lambda x: x * -1.5, values),
    "2.0 / x": (lambda x: 2.0 / x, lambda x: 2.0 / x, away_from_zero),
    "x / 4": (lambda x: x / 4, lambda x: x / 4, values),
    "x ** 3": (lambda x: x ** 3, lambda x: x ** 3, values),
    "x ** 2": (lambda x: x ** 2, np.square, values),
    "x ** 0.5": (lambda x: x ** 0.5, np.sqrt, positive),
    "x ** -1.5": (lambda x: x ** -1.5, lambda x: x ** -1.5, positive),
    "2 ** x": (lambda x: 2 ** x, np.exp2, values),
    "0.5 ** x": (lambda x: 0.5 ** x, lambda x: np.exp(x * np.log(0.5)), values),
    "-x": (lambda x: -x, np.negative, values),
}


@pytest.mark.parametrize("form", list(SCALAR_FORMS))
@given(shape=SHAPES, data=st.data())
def test_python_number_operands(form, shape, data):
    fn, ref, strategy = SCALAR_FORMS[form]
    check(fn, ref, data.draw(strategy(shape)))


def test_x_pow_zero_has_zero_gradient_even_at_zero():
    x = leaf([0.0, 1.5, -2.0])
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


def test_numpy_array_on_the_left_defers_to_the_tensor():
    a = np.arange(6.0).reshape(2, 3)
    x = leaf(np.ones((3, 2)))
    for out in (a @ x, a * x.T, a - x.T):
        assert isinstance(out, Tensor)
    (a @ x).sum().backward()
    np.testing.assert_allclose(x.grad, np.broadcast_to(a.sum(0)[:, None], (3, 2)))


# ---------------------------------------------------------------- matmul
@st.composite
def matmul_operands(draw):
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    ba, bb = batch.input_shapes
    case = draw(st.sampled_from(["matrix", "vector @ matrix", "matrix @ vector", "vector @ vector"]))
    sa = (k,) if case.startswith("vector @") else ba + (n, k)
    sb = (k,) if case.endswith("@ vector") else bb + (k, m)
    return draw(values(sa)), draw(values(sb))


@given(operands=matmul_operands())
def test_matmul_batched_broadcast_and_vectors(operands):
    a, b = operands
    check(lambda x, y: x @ y, np.matmul, a, b)


def test_matmul_against_a_loop_reference():
    """The vector-Jacobian products written out with explicit loops over the batch."""
    rng = np.random.default_rng(0)
    a, b, g = rng.normal(size=(2, 1, 3, 4)), rng.normal(size=(5, 4, 2)), rng.normal(size=(2, 5, 3, 2))
    x, y = leaf(a), leaf(b)
    (x @ y).backward(g)
    ga, gb = np.zeros_like(a), np.zeros_like(b)
    for i in range(2):
        for j in range(5):
            ga[i, 0] += g[i, j] @ b[j].T
            gb[j] += a[i, 0].T @ g[i, j]
    np.testing.assert_allclose(x.grad, ga, rtol=1e-12)
    np.testing.assert_allclose(y.grad, gb, rtol=1e-12)


# ---------------------------------------------------------------- unary
UNARY = {
    "exp": (Tensor.exp, np.exp, values),
    "log": (Tensor.log, np.log, positive),
    "sqrt": (Tensor.sqrt, np.sqrt, positive),
    "tanh": (Tensor.tanh, np.tanh, values),
    "sigmoid": (Tensor.sigmoid, expit, values),
    "relu": (Tensor.relu, lambda x: np.where(x > 0, x, 0.0), away_from_zero),
    "sin": (Tensor.sin, np.sin, values),
    "cos": (Tensor.cos, np.cos, values),
    "abs": (Tensor.abs, np.abs, away_from_zero),
}


@pytest.mark.parametrize("op", list(UNARY))
@given(shape=SHAPES, data=st.data())
def test_unary_ops(op, shape, data):
    fn, ref, strategy = UNARY[op]
    check(fn, ref, data.draw(strategy(shape)))


def test_sigmoid_saturates_without_overflow():
    x = Tensor(np.array([-800.0, 0.0, 800.0], dtype=np.float32), requires_grad=True)
    y = x.sigmoid()
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.25, 0.0])


def test_relu_and_abs_subgradient_at_zero_is_zero():
    x = leaf([-1.0, 0.0, 2.0])
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 0.0, 2.0])


# ---------------------------------------------------------------- reductions
REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "var": np.var}


@pytest.mark.parametrize("op", list(REDUCTIONS))
@given(shape=SHAPES, data=st.data())
def test_reductions(op, shape, data):
    axis, keepdims = data.draw(axis_args(len(shape)))
    x = data.draw(distinct(shape) if op == "max" else values(shape))
    check(lambda t: getattr(t, op)(axis=axis, keepdims=keepdims),
          lambda a: REDUCTIONS[op](a, axis=axis, keepdims=keepdims), x)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=3), data=st.data())
def test_var_with_ddof_one_matches_numpy(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(lambda t: t.var(axis=axis, ddof=1), lambda a: np.var(a, axis=axis, ddof=1),
          data.draw(values(shape)))


def test_max_splits_the_gradient_among_ties():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x.max(axis=1).backward(np.array([6.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 3.0, 3.0], [1.0, 1.0, 1.0]])


def test_reduction_axis_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        leaf(np.ones((2, 3))).sum(axis=2)


# ---------------------------------------------------------------- shape ops
@st.composite
def factorisation(draw, size):
    """A random shape with ``size`` elements (including size-1 axes)."""
    dims = []
    while size > 1:
        d = draw(st.sampled_from([f for f in range(1, size + 1) if size % f == 0]))
        dims.append(d)
        size //= d
    dims += [1] * draw(st.integers(0, 1))
    return tuple(draw(st.permutations(dims)))


@given(shape=SHAPES, data=st.data())
def test_reshape_and_view(shape, data):
    x = data.draw(values(shape))
    new = data.draw(factorisation(x.size))
    check(lambda t: t.reshape(new), lambda a: a.reshape(new), x)
    check(lambda t: t.view(*new), lambda a: a.reshape(new), x)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data())
def test_flatten(shape, data):
    start = data.draw(st.integers(-len(shape), len(shape) - 1))
    end = data.draw(st.integers(start % len(shape), len(shape) - 1))
    expected = shape[:start % len(shape)] + (int(np.prod(shape[start % len(shape):end + 1])),) + shape[end + 1:]
    check(lambda t: t.flatten(start, end), lambda a: a.reshape(expected), data.draw(values(shape)))


@given(shape=SHAPES, data=st.data())
def test_unsqueeze_and_squeeze(shape, data):
    x = data.draw(values(shape))
    d = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check(lambda t: t.unsqueeze(d), lambda a: np.expand_dims(a, d), x)
    check(lambda t: t.squeeze(), np.squeeze, x)
    if shape:
        e = data.draw(st.integers(-len(shape), len(shape) - 1))
        keep = shape[e] != 1  # torch.squeeze(dim) leaves a non-1 axis alone
        check(lambda t: t.squeeze(e), lambda a: a if keep else np.squeeze(a, e), x)


@given(shape=SHAPES, data=st.data())
def test_permute_transpose_and_T(shape, data):
    x = data.draw(values(shape))
    dims = data.draw(st.permutations(range(len(shape))))
    signed = [d - len(shape) if data.draw(st.booleans()) else d for d in dims]
    check(lambda t: t.permute(*signed), lambda a: np.transpose(a, dims), x)
    check(lambda t: t.T, lambda a: a.T, x)
    if len(shape) >= 2:
        d0, d1 = data.draw(st.integers(-len(shape), len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
        check(lambda t: t.transpose(d0, d1), lambda a: np.swapaxes(a, d0, d1), x)


@given(shapes=TWO_BROADCASTABLE, data=st.data())
def test_expand(shapes, data):
    target = shapes.result_shape
    x = data.draw(values(shapes.input_shapes[0]))
    check(lambda t: t.expand(*target), lambda a: np.broadcast_to(a, target), x)


@st.composite
def basic_and_advanced_index(draw, shape):
    """An index over the leading axes of ``shape``: ints (maybe negative), slices with any step,
    or at most one integer array (with repeats and negative entries)."""
    parts, used_array = [], False
    for n in shape[:draw(st.integers(1, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "array"] if not used_array else ["int", "slice"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 1, n + 1)
            parts.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, -1, -2]))))
        else:
            used_array = True
            parts.append(np.array(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5))))
    return tuple(parts) if len(parts) > 1 or draw(st.booleans()) else parts[0]


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_getitem(shape, data):
    index = data.draw(basic_and_advanced_index(shape))
    check(lambda t: t[index], lambda a: a[index], data.draw(values(shape)))


@given(idx=st.lists(st.integers(-5, 4), min_size=1, max_size=12))
def test_getitem_repeated_indices_sum_their_gradients(idx):
    """Independent reference: element i's gradient is the number of times i was picked."""
    x = leaf(np.zeros(5))
    x[np.array(idx)].sum().backward()
    np.testing.assert_array_equal(x.grad, np.bincount(np.array(idx) % 5, minlength=5))


def test_getitem_two_index_arrays_and_a_mask():
    a = np.arange(12.0).reshape(3, 4)
    check(lambda t: t[np.array([0, 2, 2]), np.array([1, 1, 3])], lambda v: v[[0, 2, 2], [1, 1, 3]], a)
    check(lambda t: t[:, [3, 0, 3]], lambda v: v[:, [3, 0, 3]], a)
    mask = a % 3 == 0
    check(lambda t: t[mask], lambda v: v[mask], a)
    check(lambda t: t[None, ..., 1], lambda v: v[None, ..., 1], a)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4),
       channels_last=st.booleans(), data=st.data())
def test_big_elementwise_results_split_among_threads(threads, name, shapes, channels_last, data):
    """Big results of + - * / are computed a slice of their first axis per thread: forced on
    every size, on 2-3 threads, values, dtype and gradients are NumPy's, and the result is laid
    out as the input that has its shape."""
    from autograd.ops import _blocks, arithmetic
    fn, ufunc = BINARY[name]
    a = data.draw(away_from_zero(shapes.input_shapes[0]))
    b = data.draw(away_from_zero(shapes.input_shapes[1]))
    if channels_last and a.ndim == 4:
        a = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(arithmetic, "_SPLIT_BYTES", 0)
        mp.setattr(_blocks, "num_threads", lambda: threads)
        xs = [Tensor(v, requires_grad=True) for v in (a, b)]
        out = fn(*xs)
        expected = ufunc(a, b)
        g = np.cos(np.arange(out.size, dtype=np.float64)).reshape(out.shape)
        out.backward(g)
    np.testing.assert_array_equal(out.data, expected)
    def layout(arr):  # strides of the axes that have more than one element
        return [st for st, n in zip(arr.strides, arr.shape) if n > 1]
    assert out.dtype == expected.dtype
    full = a if a.shape == out.shape else b if b.shape == out.shape else None
    if full is not None and out.ndim and out.shape[0] > 1:  # split: laid out as the full-shape input
        assert layout(out.data) == layout(np.empty_like(full))
    with pytest.MonkeyPatch.context() as mp:  # the gradients of the unsplit op
        mp.setattr(_blocks, "num_threads", lambda: 1)
        ys = [Tensor(v, requires_grad=True) for v in (a, b)]
        fn(*ys).backward(g)
    for x, y in zip(xs, ys):
        np.testing.assert_allclose(x.grad, y.grad, rtol=1e-12, atol=1e-12)

@st.composite
def join_args(draw, new_axis):
    base = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    ndim = len(base) + new_axis
    axis = draw(st.integers(-ndim, ndim - 1))
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        shape = list(base)
        if not new_axis:
            shape[axis] = draw(st.integers(1, 3))
        arrays.append(draw(values(tuple(shape))))
    return axis, arrays


@given(args=join_args(new_axis=False))
def test_concatenate(args):
    axis, arrays = args
    check(lambda *ts: autograd.concatenate(ts, axis=axis), lambda *a: np.concatenate(a, axis=axis), *arrays)
    assert autograd.cat is autograd.concatenate


@pytest.mark.parametrize("threads", [1, 2, 3])
@given(args=join_args(new_axis=False), data=st.data())
def test_concatenate_keeps_the_memory_layout_of_its_first_input(args, data, threads):
    """Inputs stored in a permuted memory order (as channels-last feature maps are): the
    result has the same values, gradients, and the first input's memory order; also with the
    copies shared among threads (forced on every size)."""
    import sys
    from autograd.ops import _blocks
    axis, arrays = args
    assume(min(arrays[0].shape) > 1)  # else size-1 axes leave the memory order ambiguous
    order = data.draw(st.permutations(range(arrays[0].ndim)))
    inverse = np.argsort(order)
    stored = [np.ascontiguousarray(a.transpose(order)).transpose(inverse) for a in arrays]
    xs = [Tensor(a, requires_grad=True) for a in stored]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.modules["autograd.ops.shape"], "_SPLIT_BYTES", 0)
        mp.setattr(_blocks, "num_threads", lambda: threads)
        out = autograd.concatenate(xs, axis=axis)
    np.testing.assert_array_equal(out.data, np.concatenate(arrays, axis=axis))
    assert out.data.transpose(order).flags.c_contiguous
    g = np.arange(out.size, dtype=np.float64).reshape(out.shape)
    out.backward(g)
    np.testing.assert_array_equal(np.concatenate([x.grad for x in xs], axis=axis), g)

@given(args=join_args(new_axis=True))
def test_stack(args):
    axis, arrays = args
    check(lambda *ts: autograd.stack(ts, axis=axis), lambda *a: np.stack(a, axis=axis), *arrays)


def test_shape_ops_reject_bad_arguments_naming_the_op():
    x = leaf(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"permute: \(0, 3\) is not a permutation"):
        x.permute(0, 3)
    with pytest.raises(ValueError, match=r"expand: .*\(2, 3\) to \(4, 3\)"):
        x.expand(4, 3)
    with pytest.raises(ValueError, match=r"concatenate: shapes \[\(2, 3\), \(3, 2\)\]"):
        autograd.concatenate([x, leaf(np.ones((3, 2)))], axis=0)
    with pytest.raises(ValueError, match=r"stack: .*\(2, 3\), \(3, 2\)"):
        autograd.stack([x, leaf(np.ones((3, 2)))])
    with pytest.raises(IndexError, match=r"getitem: .*\(2, 3\)"):
        x[5]
    # Out-of-range axes are errors, never a wrap-around to some other axis.
    for call, op in [(lambda: x.unsqueeze(3), "unsqueeze"), (lambda: x.squeeze(2), "squeeze"),
                     (lambda: x.transpose(0, 2), "transpose"), (lambda: x.flatten(0, 2), "flatten"),
                     (lambda: x.unsqueeze(-4), "unsqueeze")]:
        with pytest.raises(IndexError, match=f"{op}: dim -?\\d is out of range for \\d axes"):
            call()
    with pytest.raises(ValueError, match="flatten: start_dim 1 comes after end_dim 0"):
        x.flatten(1, 0)


def test_zero_d_tensors_flatten_and_squeeze():
    x = leaf(np.float64(2.0))
    assert x.flatten().shape == (1,) and x.squeeze(0).shape == ()


# ---------------------------------------------------------------- dtypes
FLOAT_OPS = {
    "add": lambda x, y: x + y, "rsub": lambda x, y: 2.0 - x, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / (y + 3.0), "rdiv": lambda x, y: 1.0 / (x + 3.0), "pow": lambda x, y: x ** 3,
    "rpow": lambda x, y: 2 ** x, "pow_t": lambda x, y: (x + 3.0) ** y, "neg": lambda x, y: -x,
    "matmul": lambda x, y: x @ y.T, "exp": lambda x, y: x.exp(), "log": lambda x, y: (x + 3.0).log(),
    "sqrt": lambda x, y: (x + 3.0).sqrt(), "tanh": lambda x, y: x.tanh(), "sigmoid": lambda x, y: x.sigmoid(),
    "relu": lambda x, y: x.relu(), "sin": lambda x, y: x.sin(), "cos": lambda x, y: x.cos(),
    "abs": lambda x, y: x.abs(), "sum": lambda x, y: x.sum(0), "mean": lambda x, y: x.mean(),
    "max": lambda x, y: x.max(1, keepdims=True), "var": lambda x, y: x.var(1), "reshape": lambda x, y: x.reshape(6),
    "permute": lambda x, y: x.permute(1, 0), "expand": lambda x, y: x[:1].expand(4, 3),
    "getitem": lambda x, y: x[[0, 0], ::-1], "cat": lambda x, y: autograd.cat([x, y], 1),
    "stack": lambda x, y: autograd.stack([x, y]), "constant_array": lambda x, y: x * np.ones(3, x.dtype),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", list(FLOAT_OPS))
def test_results_and_gradients_keep_the_input_dtype(op, dtype):
    rng = np.random.default_rng(1)
    x = Tensor(rng.uniform(-1, 1, (2, 3)).astype(dtype), requires_grad=True)
    y = Tensor(rng.uniform(-1, 1, (2, 3)).astype(dtype), requires_grad=True)
    out = FLOAT_OPS[op](x, y)
    assert out.dtype == dtype, f"{op}: {dtype.__name__} in, {out.dtype} out"
    out.sum().backward()
    for t in (x, y):
        assert t.grad is None or (t.grad.dtype == dtype and t.grad.shape == t.shape)


def test_python_numbers_and_lists_become_float32():
    assert Tensor(1.5).dtype == np.float32 and Tensor(2).dtype == np.float32
    assert Tensor([[1, 2], [3, 4]]).dtype == np.float32
    assert Tensor(np.arange(3.0)).dtype == np.float64  # arrays keep theirs
    assert Tensor(np.float64(1.0)).dtype == np.float64  # and so do NumPy scalars
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    f32 = Tensor([1.0, 2.0])
    assert (f32 * np.float64(2.0)).dtype == np.float32  # a constant never widens float32


def test_integer_tensors_cannot_require_grad_and_promote_like_numpy():
    with pytest.raises(TypeError, match="only floating-point tensors can require grad, got dtype int64"):
        Tensor(np.arange(3), requires_grad=True)
    i = Tensor(np.array([1, 2, 3]))
    np.testing.assert_array_equal((i * 2.5).data, [2.5, 5.0, 7.5])  # not truncated to ints
    assert (i * 2).dtype == np.int64


def test_astype_casts_the_gradient_back():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x.astype(np.float64) * np.arange(3.0)
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 2.0])
