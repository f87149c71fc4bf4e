"""Weight initialisation, in place, with torch.nn.init's names, formulas and defaults.

Every random fill draws from ``autograd.random.default_generator`` of the tensor's array
module unless handed a ``generator=``, so ``manual_seed(s)`` makes model init reproducible.
Values are drawn in float64 and cast once into the tensor's own dtype.

The PyTorch default for Linear and Conv2d weights is ``kaiming_uniform_(w, a=sqrt(5))``:
gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), std = gain / sqrt(fan_in) and
bound = sqrt(3) * std = 1 / sqrt(fan_in), i.e. w ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""
from __future__ import annotations

import math
from typing import Any

import numpy

from autograd.random import default_generator
from autograd.tensor import Tensor


def check_layer_args(op: str, dtype: Any = None, **sizes: Any) -> None:
    """A layer's sizes are positive integers and its dtype a floating-point one; else an error
    naming the layer and the argument (rather than NumPy's 'negative dimensions are not allowed')."""
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
            raise ValueError(f"{op}: {name} must be a positive integer, got {n!r}")
    if dtype is not None and numpy.dtype(dtype).kind != "f":
        raise TypeError(f"{op}: dtype {numpy.dtype(dtype)} is not a floating-point type; parameters "
                        f"are float32 (the default) or float64")


def empty(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """An uninitialised array for a layer's parameter: float32 on the CPU unless told otherwise.

    Layers fill it with an init function below while it is still on the host and only then
    move it, so the values drawn from the NumPy default generator do not depend on the device
    the model runs on.
    """
    return numpy.empty(shape, dtype=numpy.float32 if dtype is None else dtype)


def _generator(tensor: Tensor, generator: Any) -> Any:
    return default_generator(tensor.xp) if generator is None else generator


def _fill(tensor: Tensor, values: Any) -> Tensor:
    # Writing into the existing array keeps its dtype, device and identity (an optimizer or a
    # view may already hold it); nothing is recorded in the graph.
    tensor.data[...] = values
    return tensor


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field, where the
    receptive field is the product of shape[2:] (the kernel size of a conv weight)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out cannot be computed for a tensor with fewer than 2 "
                         f"dimensions (got shape {tensor.shape})")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance ~1 through ``nonlinearity`` (as torch)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    valid = linear + ("tanh", "relu", "leaky_relu", "selu")
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; expected one of {valid}")


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with samples of U(a, b)."""
    u = _generator(tensor, generator).random(tensor.shape)
    return _fill(tensor, a + (b - a) * u)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    """Fill with samples of N(mean, std^2)."""
    z = _generator(tensor, generator).standard_normal(tensor.shape)
    return _fill(tensor, mean + std * z)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Any = None) -> Tensor:
    """He et al. (2015): U(-bound, bound), bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)."""
    fan = _fan(tensor, mode)
    if fan == 0:  # torch warns and leaves a zero-element tensor alone
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator=generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Any = None) -> Tensor:
    """He et al. (2015): N(0, std^2), std = gain / sqrt(fan)."""
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator=generator)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot & Bengio (2010): U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator=generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot & Bengio (2010): N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


def default_weight_and_bias_(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default init of Linear and Conv2d: weight ~ kaiming_uniform_(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
