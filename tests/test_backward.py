"""What backward() promises, beyond any one op's derivative: accumulation, shared and diamond
subgraphs, no_grad, detach, freeing the graph, errors that say what went wrong, deep graphs
without recursion, and leaf gradients that never alias one another."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import autograd
from autograd import Tensor


def leaf(a, dtype=np.float64):
    return Tensor(np.array(a, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------- accumulation and graph shapes
def test_gradients_accumulate_across_backward_calls_until_zeroed():
    x = leaf([1.0, -2.0, 3.0])
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))
    x.zero_grad()
    assert x.grad is None
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0, 3.0])


def test_a_tensor_used_several_times_sums_its_gradients():
    x = leaf([0.5, -1.5, 2.0])
    (x * x + x).sum().backward()  # d/dx (x^2 + x) = 2x + 1
    np.testing.assert_array_equal(x.grad, 2 * x.data + 1)


def test_diamond_graph():
    """x -> a = exp(x) -> (b = 2a, c = sin a) -> d = b c.  dd/dx = (2 sin a + 2a cos a) a."""
    x = leaf([0.3, -0.7])
    a = x.exp()
    d = (a * 2.0) * a.sin()
    d.sum().backward()
    av = np.exp(x.data)
    np.testing.assert_allclose(x.grad, (2 * np.sin(av) + 2 * av * np.cos(av)) * av, rtol=1e-14)


def test_backward_with_an_explicit_gradient_is_a_vector_jacobian_product():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    v = np.array([[1.0, -1.0], [0.5, 2.0]])
    (x * x).backward(v)
    np.testing.assert_array_equal(x.grad, 2 * x.data * v)
    y = leaf([1.0, 2.0])
    (y * 3).backward(Tensor([1.0, 1.0]))  # a Tensor gradient works too
    np.testing.assert_array_equal(y.grad, [3.0, 3.0])


def test_only_leaves_that_require_grad_receive_a_gradient():
    x, c = leaf([1.0, 2.0]), Tensor(np.array([3.0, 4.0]))
    h = x * c
    (h * h).sum().backward()
    assert c.grad is None and h.grad is None  # constants and intermediates keep none
    np.testing.assert_array_equal(x.grad, 2 * x.data * c.data ** 2)


# ---------------------------------------------------------------- no_grad and detach
def test_no_grad_context_records_nothing_and_restores_on_exit():
    x = leaf([1.0, 2.0])
    with autograd.no_grad():
        assert not autograd.is_grad_enabled()
        y = (x * 2).exp().sum()
    assert autograd.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._parents == ()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_restores_the_state_after_an_exception_and_when_nested():
    ng = autograd.no_grad()
    with pytest.raises(KeyError):
        with ng:
            raise KeyError
    assert autograd.is_grad_enabled()
    with ng:
        with ng:  # the same instance entered twice
            pass
        assert not autograd.is_grad_enabled()
    assert autograd.is_grad_enabled()


def test_no_grad_as_a_decorator():
    @autograd.no_grad()
    def step(t):
        """Doc."""
        assert not autograd.is_grad_enabled()
        return t * t

    x = leaf([1.0, 2.0])
    y = step(x)
    assert not y.requires_grad and y._parents == ()
    assert autograd.is_grad_enabled()
    assert step.__name__ == "step" and step.__doc__ == "Doc."


def test_detach_shares_memory_and_stops_the_gradient():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.data is x.data
    (x * d).sum().backward()  # d is a constant: d/dx (x * c) = c
    np.testing.assert_array_equal(x.grad, x.data)


# ---------------------------------------------------------------- freeing the graph
def test_backward_frees_the_graph_and_a_second_backward_says_so():
    x = leaf([1.0, 2.0])
    h = x.exp()
    loss = (h * h).sum()
    loss.backward()
    assert loss._parents == () and h._parents == ()  # intermediates let go of their inputs
    assert not loss.is_leaf  # a freed node is not a leaf; backward must not stop there
    with pytest.raises(RuntimeError, match="freed by an earlier backward.*retain_graph=True"):
        loss.backward()
    with pytest.raises(RuntimeError, match="'exp' node was freed"):
        (h * 3).sum().backward()  # a new graph reaching into the freed one
    np.testing.assert_allclose(x.grad, 2 * np.exp(2 * x.data))  # unchanged by the failed calls
    assert "freed" in loss.graph()


def test_retain_graph_keeps_it_for_a_second_backward():
    x = leaf([1.0, 2.0])
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first)
    np.testing.assert_allclose(first, np.exp(x.data) * (x.data + 1))


# ---------------------------------------------------------------- errors
def test_non_scalar_backward_needs_a_gradient():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"one-element tensor, got shape \(2,\).*gradient="):
        y.backward()


def test_explicit_gradient_of_the_wrong_shape():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) != tensor shape \(2,\)"):
        y.backward(np.ones(3))


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


@pytest.mark.parametrize("op, pattern", [
    (lambda a, b: a + b, r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"),
    (lambda a, b: a - b, r"sub: shapes \(2, 3\) and \(4,\)"),
    (lambda a, b: a * b, r"mul: shapes \(2, 3\) and \(4,\)"),
    (lambda a, b: a / b, r"div: shapes \(2, 3\) and \(4,\)"),
    (lambda a, b: a @ b, r"matmul: shapes \(2, 3\) and \(4,\) are not aligned"),
])
def test_shape_errors_name_the_op_and_both_shapes(op, pattern):
    with pytest.raises(ValueError, match=pattern):
        op(leaf(np.ones((2, 3))), leaf(np.ones(4)))


def test_reshape_error_names_the_shapes_and_sizes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) "
                                         r"\(6 elements\) into \(4, 2\)"):
        leaf(np.ones((2, 3))).reshape(4, 2)


def test_matmul_misalignment_in_a_batch():
    with pytest.raises(ValueError, match=r"matmul: shapes \(5, 2, 3\) and \(2, 3\) are not aligned"):
        leaf(np.ones((5, 2, 3))) @ leaf(np.ones((2, 3)))


# ---------------------------------------------------------------- deep graphs
def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_a_20000_node_chain_backpropagates_without_recursion():
    """A UNet graph is thousands of ops deep; walking it must not use Python recursion.
    The recursion limit is set just above the current depth, so any recursive walk fails."""
    x = leaf([1.0, -2.0])
    y = x
    for _ in range(10000):
        y = -(y * 1.0)  # two nodes per step
    loss = y.sum()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 60)
    try:
        loss.backward()
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])  # (-1)^10000


# ---------------------------------------------------------------- aliasing
def test_leaf_gradients_never_alias_each_other_or_the_graph():
    """add's backward hands the very same array to both inputs; each leaf must own its grad."""
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[0] = 100.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])

    # The same leaf reached twice, and a gradient handed over as a read-only broadcast view.
    c = leaf([1.0, 2.0])
    (c + c).sum().backward()
    c.grad[1] = -5.0  # writable, owned
    np.testing.assert_array_equal(c.grad, [2.0, -5.0])

    g = np.array([1.0, 1.0])
    d = leaf([5.0, 6.0])
    (d * 1.0).backward(g)
    d.grad += 1.0
    np.testing.assert_array_equal(g, [1.0, 1.0])  # the caller's gradient is untouched


def test_float32_leaves_get_float32_gradients_from_mixed_graphs():
    x = leaf([1.0, 2.0], dtype=np.float32)
    y = (x.astype(np.float64) * np.array([1.0, 2.0])).sum()
    y.backward()
    assert x.grad.dtype == np.float32
