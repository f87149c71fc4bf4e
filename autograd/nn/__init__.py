"""autograd.nn: modules and layers with torch.nn's names, behaviour and default initialisations.

    >>> from autograd import nn
    >>> net = nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 2))
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
"""
from autograd.nn import init, utils
from autograd.nn.activation import GELU, ReLU, Sigmoid, SiLU, Tanh
from autograd.nn.container import ModuleList, Sequential
from autograd.nn.conv import Conv2d
from autograd.nn.dropout import Dropout
from autograd.nn.linear import Embedding, Identity, Linear
from autograd.nn.module import IncompatibleKeys, Module
from autograd.nn.normalization import GroupNorm, LayerNorm
from autograd.nn.parameter import Parameter

__all__ = ["Module", "Parameter", "IncompatibleKeys", "Sequential", "ModuleList", "Identity", "Linear",
           "Conv2d", "GroupNorm", "LayerNorm", "Embedding", "Dropout", "SiLU", "ReLU", "GELU", "Sigmoid",
           "Tanh", "init", "utils"]
