"""A compact DDPM UNet (Ho et al. 2020; structure and names of improved-diffusion's ``unet.py``).

    x (B, C_in, 28, 28)
    -> conv 3x3 -> [ResBlock (+Attention)] x num_res_blocks -> Downsample      28x28
                -> [ResBlock (+Attention)] x num_res_blocks -> Downsample      14x14
                -> [ResBlock (+Attention)] x num_res_blocks                     7x7
    -> middle: ResBlock, Attention, ResBlock                                    7x7
    -> back up, level by level: [concat skip, ResBlock (+Attention)] x (num_res_blocks + 1),
       then Upsample (nearest x2, conv 3x3), the last level without
    -> GroupNorm, SiLU, conv 3x3 (zero-initialised)  -> eps (B, C_out, 28, 28)

Every input block's output is kept and concatenated, channel-wise, onto the input of one output
block (the last in, the first out), so the decoder sees the encoder's features at every scale.
The timestep t (and the optional class label) reaches every ResBlock as a per-channel bias.

The last conv of every residual branch, the attention's output projection and the final conv
start at zero: at initialisation every block is the identity (plus its skip projection) and the
whole net outputs 0, which keeps the early training of a deep residual stack stable.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import autograd.functional as F
from autograd import cat, nn
from autograd.functional.norm import group_norm_silu
from autograd.tensor import Tensor
from tinydiff.models.embeddings import as_index_array, class_labels, timestep_embedding


def zero_module(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero, in place; returns the module."""
    for p in module.parameters():
        p.data = p.xp.zeros_like(p.data)
    return module


def count_parameters(model: nn.Module) -> int:
    """Number of scalars in the model's parameters (``Module.num_parameters``, the one count)."""
    return model.num_parameters()


def norm_silu(norm: nn.GroupNorm, x: Tensor) -> Tensor:
    """silu(norm(x)) as one fused op: a UNet applies SiLU after nearly every GroupNorm."""
    return group_norm_silu(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


class TimestepBlock(nn.Module):
    """A block whose forward also takes the (SiLU-activated) timestep embedding."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TimestepEmbedSequential(nn.Sequential):
    """Sequential that hands the timestep embedding to the children that take it."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]  # takes emb too
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class ResBlock(TimestepBlock):
    """x + f(x, t), with a 1x1 conv on the skip path when the channel count changes:

        h = conv3x3(silu(gn(x))) + W_e emb           (emb = silu(time embedding), one bias per channel)
        f = conv3x3_0(dropout(silu(gn(h))))          (conv3x3_0 starts at zero)

    ``emb`` arrives already through its SiLU: improved-diffusion applies that same SiLU at the
    head of every block's embedding layer, so the UNet computes it once for all of them.
    """

    def __init__(self, channels: int, emb_channels: int, dropout: float,
                 out_channels: int | None = None, num_groups: int = 8) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.channels, self.out_channels = channels, out_channels
        self.in_norm = nn.GroupNorm(num_groups, channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_channels, out_channels)
        self.out_norm = nn.GroupNorm(num_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_conv(norm_silu(self.in_norm, x))
        h = h + self.emb_proj(emb).reshape(emb.shape[0], self.out_channels, 1, 1)
        h = self.out_conv(self.dropout(norm_silu(self.out_norm, h)))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """x + proj(attention(gn(x))) over the H*W positions, as tokens of C channels:

        q, k, v = split(W_qkv gn(x)),   each head: softmax(q k^T / sqrt(d)) v,   d = C / heads

    ``proj_out`` starts at zero, so the block starts as the identity.
    """

    def __init__(self, channels: int, num_heads: int = 1, num_groups: int = 8) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"AttentionBlock: channels ({channels}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.channels, self.num_heads = channels, num_heads
        self.norm = nn.GroupNorm(num_groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj_out = zero_module(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        n, heads = height * width, self.num_heads
        tokens = self.norm(x).reshape(b, c, n).transpose(1, 2)                  # (B, N, C)
        qkv = self.qkv(tokens).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])             # (B, heads, N, d)
        h = self.proj_out(h.transpose(1, 2).reshape(b, n, c))                   # (B, N, C)
        return x + h.transpose(1, 2).reshape(b, c, height, width)


class Downsample(nn.Module):
    """Halve the resolution with a learned 3x3 conv of stride 2 (28 -> 14 -> 7: ceil(r / 2))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour copy, then a 3x3 conv to smooth the blocks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """eps_theta(x_t, t[, y]) for images (B, in_channels, H, W) -> (B, out_channels, H, W).

    - ``channel_mult``: channels of each resolution level, as multiples of ``model_channels``;
      every level but the last ends by halving the resolution.
    - ``attention_resolutions``: the resolutions (in pixels, for inputs of ``image_size``) whose
      blocks get self-attention; the middle block always has it. Default: 7, the lowest of 28.
    - ``num_classes``: class-conditional; a label embedding of ``num_classes + 1`` rows (the
      last, also used for ``y=None``, is "no label", for classifier-free guidance) is added to
      the time embedding.
    - ``num_groups``: groups of every GroupNorm (every channel count must be a multiple).

    ``config`` holds the constructor arguments; ``build_model(config)`` rebuilds the model.
    """

    def __init__(self, in_channels: int = 1, model_channels: int = 32, out_channels: int = 1,
                 num_res_blocks: int = 2, attention_resolutions: Sequence[int] = (7,),
                 dropout: float = 0.1, channel_mult: Sequence[int] = (1, 2, 2), num_heads: int = 4,
                 num_classes: int | None = None, num_groups: int = 8, image_size: int = 28) -> None:
        super().__init__()
        channel_mult, attention_resolutions = tuple(channel_mult), tuple(attention_resolutions)
        self.config = {"name": "unet", "in_channels": in_channels, "model_channels": model_channels,
                       "out_channels": out_channels, "num_res_blocks": num_res_blocks,
                       "attention_resolutions": list(attention_resolutions), "dropout": dropout,
                       "channel_mult": list(channel_mult), "num_heads": num_heads,
                       "num_classes": num_classes, "num_groups": num_groups, "image_size": image_size}
        resolutions = [image_size]
        for _ in channel_mult[1:]:
            resolutions.append((resolutions[-1] + 1) // 2)
        unknown = sorted(set(attention_resolutions) - set(resolutions))
        if unknown:
            raise ValueError(f"UNet: attention_resolutions {unknown} match no level; for image_size "
                             f"{image_size} the levels have resolutions {resolutions}")
        for mult in (1,) + channel_mult:
            if (mult * model_channels) % num_groups:
                raise ValueError(f"UNet: channel count {mult * model_channels} is not a multiple of "
                                 f"num_groups={num_groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.model_channels, self.num_classes = model_channels, num_classes
        self.num_levels = len(channel_mult)
        time_embed_dim = 4 * model_channels

        self.time_embed = nn.Sequential(nn.Linear(model_channels, time_embed_dim), nn.SiLU(),
                                        nn.Linear(time_embed_dim, time_embed_dim))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes + 1, time_embed_dim)

        def res_block(ch_in: int, ch_out: int) -> ResBlock:
            return ResBlock(ch_in, time_embed_dim, dropout, ch_out, num_groups)

        def attention(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, num_heads, num_groups)

        # Encoder. `skip_channels` records each input block's output width, for the decoder.
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        skip_channels, ch = [model_channels], model_channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, mult * model_channels)]
                ch = mult * model_channels
                if resolutions[level] in attention_resolutions:
                    layers.append(attention(ch))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_channels.append(ch)

        self.middle_block = TimestepEmbedSequential(res_block(ch, ch), attention(ch),
                                                    res_block(ch, ch))

        # Decoder: one more block per level than the encoder, to take the Downsample's skip too.
        self.output_blocks = nn.ModuleList([])
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + skip_channels.pop(), mult * model_channels)]
                ch = mult * model_channels
                if resolutions[level] in attention_resolutions:
                    layers.append(attention(ch))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out_norm = nn.GroupNorm(num_groups, ch)
        self.out_conv = zero_module(nn.Conv2d(ch, out_channels, 3, padding=1))

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def forward(self, x: Tensor, t: Any, y: Any = None) -> Tensor:
        """Predict the noise in ``x`` (B, C, H, W) at 0-indexed timesteps ``t`` (int or (B,))."""
        factor = 2 ** (self.num_levels - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"UNet: x must have shape (B, {self.in_channels}, H, W) with H and W "
                             f"multiples of {factor} ({self.num_levels} levels), got {x.shape}")
        batch = x.shape[0]
        t = as_index_array(t, batch, x.data, "t")
        emb = self.time_embed(timestep_embedding(t, self.model_channels, dtype=x.dtype))
        labels = class_labels(y, batch, x.data, self.num_classes, "UNet")
        if labels is not None:
            emb = emb + self.label_emb(Tensor(labels))
        emb = F.silu(emb)

        skips, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(cat([h, skips.pop()], axis=1), emb)
        return self.out_conv(norm_silu(self.out_norm, h))
