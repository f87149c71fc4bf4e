"""Conv2d: a learnable 2-D cross-correlation over NCHW images."""
from __future__ import annotations

from typing import Any

import autograd.functional as F
from autograd.nn import init
from autograd.nn.module import Module
from autograd.nn.parameter import Parameter
from autograd.tensor import Tensor


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair):
        raise ValueError(f"Conv2d: {name} must be a non-negative int or a pair of them, got {value!r}")
    return pair


class Conv2d(Module):
    """out[n, o] = bias[o] + sum_c weight[o, c] (cross-correlated with) input[n, c].

    weight has shape (out_channels, in_channels, kh, kw). Init as torch: fan_in =
    in_channels * kh * kw, weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_ with
    a = sqrt(5)) and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        init.check_layer_args("Conv2d", dtype, in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(f"Conv2d: kernel_size and stride must be >= 1, got {kernel_size!r}, {stride!r}")
        self.weight = Parameter(init.empty((out_channels, in_channels) + self.kernel_size, dtype))
        self.register_parameter("bias", Parameter(init.empty((out_channels,), dtype)) if bias else None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.default_weight_and_bias_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s
