"""tinydiff's models (UNet, MLPDenoiser) and noise schedules, layer for layer in PyTorch.

Shared by the PyTorch sides of the benchmarks: ``torch_reference.py`` (speed) and
``torch_mnist.py`` (samples per CPU-minute). Needs only torch; never imports tinydiff. The
modules mirror ``tinydiff/models/unet.py`` and ``mlp.py`` with the same names, widths and order,
so the parameter counts agree exactly (``run.py`` asserts it).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- the models
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    angles = t.float()[:, None] * freqs.to(device=t.device, dtype=torch.float32)[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def norm_silu(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    return F.silu(norm(x))


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int,
                 num_groups: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.in_norm = nn.GroupNorm(num_groups, channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_channels, out_channels)
        self.out_norm = nn.GroupNorm(num_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_conv(norm_silu(self.in_norm, x))
        h = h + self.emb_proj(emb)[:, :, None, None]
        h = self.out_conv(self.dropout(norm_silu(self.out_norm, h)))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    def __init__(self, channels: int, num_heads: int, num_groups: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(num_groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj_out = zero_module(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        n, heads = height * width, self.num_heads
        tokens = self.norm(x).reshape(b, c, n).transpose(1, 2)
        qkv = self.qkv(tokens).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        h = self.proj_out(h.transpose(1, 2).reshape(b, n, c))
        return x + h.transpose(1, 2).reshape(b, c, height, width)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """tinydiff.models.UNet, module for module (no class conditioning: the benchmark's default)."""

    def __init__(self, in_channels: int, model_channels: int, out_channels: int, num_res_blocks: int,
                 attention_resolutions: list[int], dropout: float, channel_mult: list[int],
                 num_heads: int, num_classes: None, num_groups: int, image_size: int) -> None:
        super().__init__()
        assert num_classes is None
        resolutions = [image_size]
        for _ in channel_mult[1:]:
            resolutions.append((resolutions[-1] + 1) // 2)
        time_embed_dim = 4 * model_channels
        self.model_channels = model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, time_embed_dim), nn.SiLU(),
                                        nn.Linear(time_embed_dim, time_embed_dim))

        def res_block(ch_in: int, ch_out: int) -> ResBlock:
            return ResBlock(ch_in, time_embed_dim, dropout, ch_out, num_groups)

        def attention(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, num_heads, num_groups)

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
        self.middle_block = TimestepEmbedSequential(res_block(ch, ch), attention(ch), res_block(ch, ch))
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

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = F.silu(self.time_embed(timestep_embedding(t, self.model_channels)))
        skips, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out_conv(norm_silu(self.out_norm, h))


class MLPDenoiser(nn.Module):
    """tinydiff.models.MLPDenoiser: [x, emb(t)] -> (Linear, SiLU) x num_layers -> Linear."""

    def __init__(self, data_dim: int, hidden_dim: int, num_layers: int, time_embed_dim: int) -> None:
        super().__init__()
        self.time_embed_dim = time_embed_dim
        widths = [data_dim + time_embed_dim] + [hidden_dim] * num_layers
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.out = nn.Linear(hidden_dim, data_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, timestep_embedding(t, self.time_embed_dim)], dim=1)
        for layer in self.layers:
            h = F.silu(layer(h))
        return self.out(h)


# --------------------------------------------------------------------------- schedules
def alphas_cumprod(schedule: str, T: int) -> torch.Tensor:
    """alpha_bar_t as tinydiff.schedules makes it (float64): DDPM linear, or the cosine schedule."""
    if schedule == "linear":
        betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    else:
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)],
                             dtype=torch.float64)
    return torch.cumprod(1 - betas, 0), betas
