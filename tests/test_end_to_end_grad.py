"""Gradients through a whole (tiny) UNet-style block, checked against finite differences:

    x -> conv2d -> group_norm -> silu -> self-attention over the H*W spatial tokens -> linear -> mse_loss

with respect to the input and every weight. Each op passes its own gradcheck elsewhere; this
checks that they compose: shapes, broadcasts and transposes between them, and gradients that
arrive at one tensor from several places (q, k and v all read the same tokens).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from autograd import Tensor, gradcheck

F = pytest.importorskip("autograd.functional", reason="autograd.functional is not complete yet")

N, C_IN, C, H, W, GROUPS, OUT = 2, 2, 4, 3, 3, 2, 3


def block(x, conv_w, conv_b, gamma, beta, wq, wk, wv, wo, bo, target):
    h = F.conv2d(x, conv_w, conv_b, padding=1)                 # (N, C, H, W)
    h = F.silu(F.group_norm(h, GROUPS, gamma, beta))
    tokens = h.reshape(N, C, H * W).transpose(1, 2)            # (N, H*W, C): one token per pixel
    q, k, v = F.linear(tokens, wq), F.linear(tokens, wk), F.linear(tokens, wv)
    attended = F.scaled_dot_product_attention(q, k, v)         # (N, H*W, C)
    out = F.linear(attended + tokens, wo, bo)                  # a residual, then (N, H*W, OUT)
    return F.mse_loss(out, target)


def make_inputs(seed=0):
    rng = np.random.default_rng(seed)

    def param(*shape, scale=1.0):
        return Tensor(rng.normal(scale=scale, size=shape), requires_grad=True)

    x = param(N, C_IN, H, W)
    weights = [param(C, C_IN, 3, 3, scale=0.4), param(C, scale=0.1),     # conv
               1.0 + param(C, scale=0.1).detach(), param(C, scale=0.1),   # group norm gamma, beta
               param(C, C, scale=0.5), param(C, C, scale=0.5), param(C, C, scale=0.5),  # q, k, v
               param(OUT, C, scale=0.5), param(OUT, scale=0.1)]          # output projection
    weights[2].requires_grad = True
    target = Tensor(rng.normal(size=(N, H * W, OUT)))
    return [x, *weights, target]


def test_gradcheck_through_conv_norm_silu_attention_linear_mse():
    inputs = make_inputs()
    assert all(t.dtype == np.float64 for t in inputs)
    assert sum(t.requires_grad for t in inputs) == 10
    assert gradcheck(block, inputs, atol=1e-7, rtol=1e-5)


def test_the_same_block_in_float32_keeps_float32_gradients():
    inputs = [Tensor(t.data.astype(np.float32), requires_grad=t.requires_grad) for t in make_inputs(1)]
    loss = block(*inputs)
    assert loss.dtype == np.float32 and loss.shape == ()
    loss.backward()
    for t in inputs[:-1]:
        assert t.grad.dtype == np.float32 and t.grad.shape == t.shape and np.isfinite(t.grad).all()


def test_the_gradcheck_here_would_catch_a_wrong_weight_gradient(monkeypatch):
    """Shows this test can fail: scale linear's weight gradient by 1.01 and gradcheck objects."""
    linear_module = sys.modules["autograd.functional.linear"]  # (F.linear is the function)
    real = linear_module.make_node

    def skewed(data, parents, backward, op):
        def wrong(g):
            grads = list(backward(g))
            if grads[1] is not None:
                grads[1] = grads[1] * 1.01
            return tuple(grads)
        return real(data, parents, wrong, op)

    monkeypatch.setattr(linear_module, "make_node", skewed)
    with pytest.raises(AssertionError, match="input [5-8] "):
        gradcheck(block, make_inputs(), atol=1e-7, rtol=1e-5)


def test_the_gradients_demo_runs_and_all_three_ways_agree(capsys):
    """demos/gradients.py is the learner's first script: it must keep running and agreeing."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "demos" / "gradients.py"
    spec = importlib.util.spec_from_file_location("demo_gradients", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main() == 0
    out = capsys.readouterr().out
    for title in ("broadcasted product", "softmax", "group norm", "DDPM loss, one conv weight"):
        assert f"== {title}" in out
    assert "all agree" in out
