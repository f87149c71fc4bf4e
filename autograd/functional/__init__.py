"""autograd.functional, imported as F: the same names, argument order and defaults as
torch.nn.functional, so the two can be read side by side.

conv2d, group_norm and scaled_dot_product_attention are whole ops with their own derived
backward (the hot spots of a UNet); each keeps a plainly readable reference version beside it.
"""
from autograd.functional.activation import gelu, relu, sigmoid, silu, tanh
from autograd.functional.attention import log_softmax, scaled_dot_product_attention, softmax
from autograd.functional.conv import avg_pool2d, conv2d, interpolate
from autograd.functional.linear import dropout, embedding, linear
from autograd.functional.loss import cross_entropy, mse_loss
from autograd.functional.norm import group_norm, layer_norm

__all__ = ["linear", "conv2d", "group_norm", "layer_norm", "silu", "gelu", "relu", "sigmoid", "tanh",
           "softmax", "log_softmax", "scaled_dot_product_attention", "mse_loss", "cross_entropy",
           "avg_pool2d", "interpolate", "embedding", "dropout"]
