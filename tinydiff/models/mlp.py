"""A small MLP noise predictor for 2-D toy data.

    input  = [x, fourier(x), emb(t), onehot(y)]     (a constant unless x needs a gradient)
    h_1    = silu(W_1 input + b_1)
    h_l    = silu(W_l h_{l-1} + b_l),   l = 2..num_layers
    eps    = W_out h_L + b_out

Splitting W_1 by the blocks of its input shows what the first layer does: W_1 input =
W_x x + W_t emb(t) + W_y onehot(y), i.e. a linear time-embedding network and a learned label
embedding (the columns of W_y) added to the projection of x. Concatenating first lets the three
be one matrix product, and keeps the step to few, large ops: at batch 1024 the per-op overhead,
not the arithmetic, is what an MLP this size pays for. For the same reason the hidden layers
are one op, ``mlp_silu`` (the same function as ``F.silu(layer(h))`` layer after layer).

``input_embed_dim`` (optional) adds sinusoidal features of each coordinate, as tiny-diffusion
(github.com/tanelp/tiny-diffusion) embeds x and y, and as Tancik et al. 2020 ("Fourier features
let networks learn high frequency functions in low dimensional domains") explain: for
coordinate i, [cos(s x_i w_k), sin(s x_i w_k)], w_k = 10000^(-k/h), k < h = input_embed_dim / 2,
s = ``input_embed_scale``. A plain SiLU MLP of x is a smooth function that cannot follow the
sharp score of a thin moon or a narrow Gaussian near t = 0 in a few thousand steps; these
features give it the high frequencies (measured in benchmarks/results/2026-12-02-toy-recipes.md).
All coordinates' angles are one product x @ W with a constant block matrix W, so the features
cost one matmul, one cos and one sin, and stay differentiable in x.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from autograd import cat, nn
from autograd.functional.linear import mlp_silu
from autograd.ops.unary import cos, sin
from autograd.tensor import Tensor
from tinydiff.models.embeddings import as_index_array, class_labels, timestep_embedding


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t[, y]) for points in R^data_dim.

    ``num_layers`` hidden layers of width ``hidden_dim`` with SiLU; the timestep enters as a
    ``time_embed_dim``-dimensional sinusoidal embedding. With ``num_classes`` the model is
    class-conditional; label ``num_classes`` (and ``y=None``) is the "no label" of
    classifier-free guidance.
    """

    def __init__(self, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3,
                 time_embed_dim: int = 32, num_classes: int | None = None,
                 input_embed_dim: int | None = None, input_embed_scale: float = 25.0) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLPDenoiser: num_layers must be >= 1, got {num_layers}")
        if input_embed_dim is not None and (isinstance(input_embed_dim, bool) or input_embed_dim < 2
                                            or input_embed_dim % 2):
            raise ValueError(f"MLPDenoiser: input_embed_dim must be an even int >= 2 (or None for "
                             f"no input features), got {input_embed_dim!r}")
        if not (isinstance(input_embed_scale, (int, float)) and 0 < input_embed_scale < math.inf):
            raise ValueError(f"MLPDenoiser: input_embed_scale must be a finite number > 0, "
                             f"got {input_embed_scale!r}")
        self.config = {"name": "mlp", "data_dim": data_dim, "hidden_dim": hidden_dim,
                       "num_layers": num_layers, "time_embed_dim": time_embed_dim,
                       "num_classes": num_classes}
        if input_embed_dim is not None:  # only then: configs of plain MLPs stay as they were
            self.config.update(input_embed_dim=input_embed_dim, input_embed_scale=input_embed_scale)
        self.data_dim = data_dim
        self.time_embed_dim = time_embed_dim
        self.num_classes = num_classes
        self._angles = None if input_embed_dim is None else _angle_matrix(
            data_dim, input_embed_dim // 2, float(input_embed_scale))
        in_dim = (data_dim + (0 if input_embed_dim is None else data_dim * input_embed_dim)
                  + time_embed_dim + (num_classes + 1 if num_classes is not None else 0))
        widths = [in_dim] + [hidden_dim] * num_layers
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.out = nn.Linear(hidden_dim, data_dim)

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def forward(self, x: Tensor, t: Any, y: Any = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"MLPDenoiser: x must have shape (B, {self.data_dim}), got {x.shape}")
        h = self._input(x, t, y)
        # = F.silu(layer(h)) layer after layer, as one op (autograd.functional.mlp_silu)
        h = mlp_silu(h, [layer.weight for layer in self.layers], [layer.bias for layer in self.layers])
        return self.out(h)

    def _input(self, x: Tensor, t: Any, y: Any) -> Tensor:
        """[x, fourier(x), emb(t), onehot(y)]: one array unless x itself needs a gradient."""
        batch, xp = x.shape[0], x.xp
        parts = [timestep_embedding(as_index_array(t, batch, x.data, "t"), self.time_embed_dim,
                                    dtype=x.dtype).data]
        labels = class_labels(y, batch, x.data, self.num_classes, "MLPDenoiser")
        if labels is not None and self.num_classes is not None:
            parts.append((labels[:, None] == xp.arange(self.num_classes + 1)).astype(x.dtype))
        if x.requires_grad:  # gradcheck, or guidance by d/dx: keep x in the graph
            head = [x]
            if self._angles is not None:
                angles = x @ Tensor(xp.asarray(self._angles, dtype=x.dtype))
                head += [cos(angles), sin(angles)]
            return cat(head + [Tensor(xp.concatenate(parts, axis=1))], axis=1)
        head = [x.data]
        if self._angles is not None:
            angles = x.data @ xp.asarray(self._angles, dtype=x.dtype)
            head += [xp.cos(angles), xp.sin(angles)]
        return Tensor(xp.concatenate(head + parts, axis=1))


def _angle_matrix(data_dim: int, half: int, scale: float) -> np.ndarray:
    """W (data_dim, data_dim * half) with x @ W = [s x_0 w_0..w_{h-1}, s x_1 w_0.., ...]:
    block i holds coordinate i's frequencies, w_k = 10000^(-k / h)."""
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / half)
    return np.kron(np.eye(data_dim), scale * freqs[None, :])
