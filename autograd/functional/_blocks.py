"""Cutting a batch into cache-sized blocks of samples.

On the CPU, a pass of NumPy over an activation of a UNet layer (several MB) runs at the speed of
memory, and an op that makes many such passes (im2col, normalisation, a logistic) pays for
each. Done a few samples at a time, every pass after the first finds its data still in the
core's cache. A GPU has the bandwidth, and wants few, large kernels instead: one block.
"""
from __future__ import annotations

from typing import Any


def batch_blocks(xp: Any, n: int, bytes_per_sample: int, block_bytes: int) -> list[slice]:
    """Consecutive slices covering range(n), each of about ``block_bytes`` (at least one sample);
    a single slice for CuPy arrays."""
    if xp.__name__ != "numpy":
        return [slice(0, n)]
    size = max(1, min(n, block_bytes // max(bytes_per_sample, 1)))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]
