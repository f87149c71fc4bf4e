"""autograd.functional, imported as F: the same names, argument order and defaults as
torch.nn.functional, so the two can be read side by side.

The ops with a fast path (conv2d, group_norm, group_norm_silu, silu, linear_silu, mlp_silu,
dropout, scaled_dot_product_attention) are whole ops with their own derived backward, computed in
cache-sized blocks on the engine's threads. Each has a plain version beside it, forward and
backward as written on paper, in the sibling ``*_reference.py`` (``conv_reference.py``,
``norm_reference.py``, ``activation_reference.py``, ``linear_reference.py``,
``attention_reference.py``); tests/test_references.py checks that the two agree.
"""
from autograd.functional.activation import gelu, relu, sigmoid, silu, tanh
from autograd.functional.attention import log_softmax, scaled_dot_product_attention, softmax
from autograd.functional.conv import avg_pool2d, conv2d, interpolate
from autograd.functional.linear import dropout, embedding, linear, linear_silu, mlp_silu
from autograd.functional.loss import cross_entropy, mse_loss
from autograd.functional.norm import group_norm, group_norm_silu, layer_norm

__all__ = ["linear", "linear_silu", "mlp_silu", "conv2d", "group_norm", "group_norm_silu", "layer_norm", "silu", "gelu",
           "relu", "sigmoid", "tanh", "softmax", "log_softmax", "scaled_dot_product_attention", "mse_loss",
           "cross_entropy",           "avg_pool2d", "interpolate", "embedding", "dropout"]
