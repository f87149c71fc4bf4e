"""Defect 9 of issue 11, library part: bad arguments fail naming the op and the argument, not
deep inside NumPy; and one dtype promotion rule (NumPy's) for every op, conv2d included."""
from __future__ import annotations

import numpy as np
import pytest

import autograd.functional as F
from autograd import Tensor, nn
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import make_beta_schedule


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_dim_out_of_range_names_the_op(fn):
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=rf"{fn.__name__}: dim 3 is out of range for 2 axes \(valid: -2 to 1\)"):
        fn(x, dim=3)
    with pytest.raises(TypeError, match=f"{fn.__name__}: dim must be an integer"):
        fn(x, dim=1.5)
    np.testing.assert_allclose(fn(x, dim=-1).data, fn(x, dim=1).data)


def test_sample_steps_must_be_an_integer():
    d = GaussianDiffusion(make_beta_schedule("cosine", 10))
    with pytest.raises(ValueError, match=r"steps must be an integer in 1\.\.10 \(T\); got 2\.5"):
        d.sample(lambda x, t: x * 0, (2, 2), sampler="ddim", steps=2.5)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.Linear(-1, 3), "Linear: in_features must be a positive integer, got -1"),
    (lambda: nn.Linear(3, 0), "Linear: out_features must be a positive integer, got 0"),
    (lambda: nn.Conv2d(2, -3, 3), "Conv2d: out_channels must be a positive integer, got -3"),
    (lambda: nn.Embedding(-2, 3), "Embedding: num_embeddings must be a positive integer"),
    (lambda: nn.GroupNorm(2, -4), "GroupNorm: num_channels must be a positive integer"),
    (lambda: nn.LayerNorm((3, -1)), r"LayerNorm: normalized_shape\[1\] must be a positive integer"),
])
def test_negative_sizes_name_the_layer_and_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("layer", [lambda d: nn.Linear(3, 4, dtype=d), lambda d: nn.Conv2d(1, 2, 3, dtype=d),
                                   lambda d: nn.Embedding(3, 2, dtype=d)])
def test_integer_parameter_dtype_is_refused(layer):
    with pytest.raises(TypeError, match="dtype int64 is not a floating-point type"):
        layer(np.int64)


def test_tensor_of_objects_is_refused():
    with pytest.raises(TypeError, match="Tensor: dtype object is not numeric"):
        Tensor(np.array([None]))
    with pytest.raises(TypeError, match="not numeric"):
        Tensor(np.array(["a", "b"]))


def test_one_promotion_rule_float32_with_float64_gives_float64_everywhere():
    rng = np.random.default_rng(0)
    x64 = Tensor(rng.standard_normal((1, 2, 5, 5)), requires_grad=True)
    w32 = Tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    b32 = Tensor(np.zeros(3, np.float32), requires_grad=True)
    y = F.conv2d(x64, w32, b32)           # refused before; now as arithmetic does
    assert y.dtype == np.float64 and (x64 + Tensor(np.zeros(1, np.float32))).dtype == np.float64
    y.sum().backward()
    assert (x64.grad.dtype, w32.grad.dtype, b32.grad.dtype) == (np.float64, np.float32, np.float32)
    ref = F.conv2d(x64.detach(), Tensor(w32.data.astype(np.float64)), Tensor(b32.data.astype(np.float64)))
    np.testing.assert_allclose(y.data, ref.data, rtol=1e-12)
