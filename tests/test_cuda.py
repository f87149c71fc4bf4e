"""The same ops on CuPy as on NumPy: forward values and gradients agree on the same data, tensors
move between devices (and gradients move back), and mixing devices is a clear error.

Everything that needs a GPU is skipped, with the reason, where CuPy or a CUDA device is missing.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_cuda

import autograd
from autograd import Tensor, gradcheck
from autograd.backend import cuda_available

pytestmark = pytest.mark.cuda

rng = np.random.default_rng(0)
A, B, M = rng.normal(size=(2, 3)), rng.normal(size=(3,)), rng.normal(size=(3, 4))
POS = rng.uniform(0.5, 2.0, size=(2, 3))

CORE = {
    "add/sub/mul/div": (lambda x, y: (x + y) * (x - y) / (y * y + 1), A, B),
    "python numbers": (lambda x: 2.0 - x * 3 + x / 4 + 2 ** x + x ** 3, A),
    "pow": (lambda x, y: x ** y, POS, B),
    "matmul": (lambda x, y: (x.reshape(1, 2, 3) @ y).sum(0) + x[1] @ y + (x[0] @ y[:, 0]), A, M),
    "unary": (lambda x: x.exp() + x.tanh() + x.sigmoid() + x.relu() + x.sin() + x.cos() + x.abs(), A),
    "log/sqrt": (lambda x: x.log() + x.sqrt(), POS),
    "reductions": (lambda x: x.sum(0) + x.mean(0, keepdims=True) + x.max(0) + x.var(0), A),
    "shape": (lambda x: x.reshape(3, 2).T.unsqueeze(0).flatten().view(2, 3).permute(1, 0).squeeze(), A),
    "expand": (lambda x: x[:1].expand(4, 3), A),
    "getitem": (lambda x: x[[0, 0, 1], ::-1] + x[1:, -1:], A),
    "cat/stack": (lambda x, y: autograd.cat([x, y], 0).sum(0) + autograd.stack([x[0], y[1]], 1).sum(1), A, A),
}


def _run(fn, arrays, device, dtype):
    xs = [Tensor(a.astype(dtype), requires_grad=True).to(device) for a in arrays]
    leaves = xs if device == "cpu" else [x._parents[0] for x in xs]  # .to() is itself an op
    out = fn(*xs)
    out.backward(np.ones(out.shape, dtype) if device == "cpu" else out.xp.ones(out.shape, dtype))
    return out, leaves


@requires_cuda
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-11), (np.float32, 2e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CORE))
def test_core_ops_match_numpy_forward_and_backward(name, dtype, rtol):
    fn, *arrays = CORE[name]
    ref, ref_leaves = _run(fn, arrays, "cpu", dtype)
    out, leaves = _run(fn, arrays, "cuda", dtype)
    assert out.device == "cuda" and out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), ref.data, rtol=rtol, atol=rtol)
    for x, r in zip(leaves, ref_leaves):  # the leaves are on the host; grads came back through .to()
        assert x.grad.dtype == dtype
        np.testing.assert_allclose(x.grad, r.grad, rtol=rtol, atol=rtol)


@requires_cuda
def test_gradcheck_runs_on_the_gpu():
    import cupy
    x = Tensor(cupy.asarray(A), requires_grad=True)
    w = Tensor(cupy.asarray(M), requires_grad=True)
    assert gradcheck(lambda a, b: (a @ b).tanh().sum(0) * a.sum(), [x, w])
    assert x.grad.__class__ is cupy.ndarray


@requires_cuda
def test_functional_ops_match_numpy():
    F = pytest.importorskip("autograd.functional")
    img = rng.normal(size=(2, 4, 4, 4))
    cases = [
        (lambda x, w: F.conv2d(x, w, padding=1), img, rng.normal(size=(3, 4, 3, 3))),
        (lambda x, w, b: F.group_norm(x, 2, w, b), img, rng.normal(size=4), rng.normal(size=4)),
        (lambda q, k, v: F.scaled_dot_product_attention(q, k, v), rng.normal(size=(2, 5, 4)),
         rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 3))),
        (lambda x: F.silu(x) + F.softmax(x, dim=-1), A),
    ]
    for fn, *arrays in cases:
        ref, ref_leaves = _run(fn, arrays, "cpu", np.float64)
        out, leaves = _run(fn, arrays, "cuda", np.float64)
        np.testing.assert_allclose(out.numpy(), ref.data, rtol=1e-10, atol=1e-12)
        for x, r in zip(leaves, ref_leaves):
            np.testing.assert_allclose(x.grad, r.grad, rtol=1e-10, atol=1e-12)


@requires_cuda
def test_to_round_trip_and_gradient_crosses_back():
    import cupy
    x = Tensor(A.copy(), requires_grad=True)
    g = x.to("cuda")
    assert g.device == "cuda" and isinstance(g.data, cupy.ndarray) and g.dtype == np.float64
    assert g.to("cuda") is g  # already there: no copy, no node
    back = (g * 2).to("cpu")
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
    np.testing.assert_array_equal(back.data, 2 * A)
    back.sum().backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, np.full_like(A, 2.0))
    np.testing.assert_array_equal(Tensor(A).to("cuda").numpy(), A)


@requires_cuda
@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b.T,
                                lambda a, b: autograd.cat([a, b])], ids=["add", "mul", "matmul", "cat"])
def test_mixing_devices_is_an_error_naming_both(op):
    cpu, cuda = Tensor(A), Tensor(A).to("cuda")
    with pytest.raises(RuntimeError, match=r"different devices.*cpu.*cuda"):
        op(cpu, cuda)


@requires_cuda
def test_a_host_array_next_to_a_gpu_tensor_is_an_error_naming_both():
    with pytest.raises(TypeError, match=r"array on 'cpu' with a tensor on 'cuda'"):
        Tensor(A).to("cuda") * np.ones(3)


def test_unknown_device_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown device 'gpu': expected 'cpu' or 'cuda'"):
        Tensor(A).to("gpu")


@pytest.mark.skipif(cuda_available(), reason="checks the message given where no GPU exists")
def test_moving_to_cuda_without_a_gpu_says_why():
    with pytest.raises(RuntimeError, match="cannot move an array to 'cuda'"):
        Tensor(A).to("cuda")
