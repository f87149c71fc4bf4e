"""Cutting a batch into cache-sized blocks of samples, and running the blocks on the CPU's cores.

On the CPU, a pass of NumPy over an activation of a UNet layer (several MB) runs at the speed of
memory, and an op that makes many such passes (im2col, normalisation, a logistic) pays for
each. Done a few samples at a time, every pass after the first finds its data still in the
core's cache. A GPU has the bandwidth, and wants few, large kernels instead: one block.

Blocks are independent (each writes its own rows of the result), so ``run_blocks`` hands them
to a small pool of threads: NumPy releases the GIL inside its loops and BLAS calls, so the
elementwise passes, which NumPy runs on one core, use them all, as a GEMM does.
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from autograd.backend import get_array_module

T = TypeVar("T")


# Elementwise work below this size runs whole on the calling thread: waking a sleeping thread on
# another core costs more than a smaller pass saves
# (measured: benchmarks/results/autograd-measurements.md#threads-when-sharing-work-out-pays).
SPLIT_BYTES = 4 << 20


def batch_blocks(xp: Any, n: int, bytes_per_sample: int, block_bytes: int) -> list[slice]:
    """Consecutive slices covering range(n), each of about ``block_bytes`` (at least one sample),
    as many as a multiple of ``num_threads()`` where possible, so that every thread gets the
    same share; a single slice if all of it fits in one block, or for CuPy arrays."""
    if n == 0:
        return []
    if xp.__name__ != "numpy":
        return [slice(0, n)]
    count = -(-n // max(1, block_bytes // max(bytes_per_sample, 1)))
    if count > 1:  # (one block is small enough that sharing it out would cost more than it saves)
        threads = num_threads()
        count = min(n, -(-count // threads) * threads)
    size = -(-n // count)
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def even_blocks(xp: Any, n: int, min_size: int) -> list[slice]:
    """range(n) cut into one slice per thread (fewer, if a slice would have under ``min_size``
    rows): for a GEMM, which blocks for the cache itself and only needs sharing out."""
    if n == 0:
        return []
    parts = 1 if xp.__name__ != "numpy" else max(1, min(num_threads(), n // max(min_size, 1)))
    size = -(-n // parts)
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def row_blocks(xp: Any, a: Any, split_bytes: int) -> list[Any]:
    """For elementwise work over array ``a``: one slice of its first axis per thread when ``a``
    has at least ``split_bytes`` (enough work to pay for waking the other threads); else
    ``[...]``, the whole of ``a`` on the calling thread."""
    if a.ndim == 0 or a.nbytes < split_bytes:
        return [...]
    return even_blocks(xp, a.shape[0], 1)


@functools.cache
def num_threads() -> int:
    """Threads for block work, read once at first use: AUTOGRAD_NUM_THREADS if set; else every
    CPU if the BLAS is pinned to one thread (OPENBLAS_NUM_THREADS=1 or OMP_NUM_THREADS=1);
    else 1, leaving the cores to the BLAS's own threads.

    Never both: a BLAS thread pool spins, waiting for its next GEMM, and a second pool calling
    into it at the same time gets the worst of each. The engine's own threads only block.
    (Measured: benchmarks/results/autograd-measurements.md#threads-when-sharing-work-out-pays.)
    """
    value = os.environ.get("AUTOGRAD_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    blas = (os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "").strip()
    return (os.cpu_count() or 1) if blas == "1" else 1


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="autograd-blocks")


def run_blocks(fn: Callable[[list[slice]], T], blocks: list[slice]) -> list[T]:
    """Split ``blocks`` into up to ``num_threads()`` runs of consecutive blocks and return
    [fn(run) for run in runs], the runs computed at the same time on a pool of threads (the
    calling thread takes the first). ``fn`` may allocate its scratch once per run; it must
    write only its own blocks' part of any shared output, and not call run_blocks itself."""
    threads = min(num_threads(), len(blocks))
    if threads <= 1:
        return [fn(blocks)]
    per = -(-len(blocks) // threads)
    runs = [blocks[i:i + per] for i in range(0, len(blocks), per)]
    pool = _pool(num_threads())
    futures = [pool.submit(fn, run) for run in runs[1:]]
    results = [fn(runs[0])]
    results += [future.result() for future in futures]
    return results


def sum_runs(parts: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Add up partial sums that ``run_blocks`` returned, one tuple per run (e.g. (dW, db) of the
    run's rows): the totals, entry by entry, accumulated in place into the first array seen.
    An entry that is None in a run adds nothing; it stays None if no run had it."""
    totals = list(parts[0])
    for more in parts[1:]:
        for i, part in enumerate(more):
            if part is None:
                continue
            if totals[i] is None:
                totals[i] = part
            else:
                totals[i] += part
    return tuple(totals)


def elementwise(ufunc: Any, a: Any, b: Any, split_bytes: int = SPLIT_BYTES) -> Any:
    """ufunc(a, b) with NumPy broadcasting. A result of ``split_bytes`` or more on the CPU is
    computed a slice of its first axis per thread, in the memory layout of the input that has
    the result's shape (so channels-last stays channels-last, as with NumPy)."""
    xp = get_array_module(a, b)
    if xp.__name__ != "numpy" or num_threads() < 2:
        return ufunc(a, b)
    shape = xp.broadcast_shapes(a.shape, b.shape)
    if len(shape) == 0 or shape[0] < 2 or math.prod(shape) * max(a.itemsize, b.itemsize) < split_bytes:
        return ufunc(a, b)
    dtype = xp.result_type(a, b)
    full = a if a.shape == shape else b if b.shape == shape else None
    out = xp.empty(shape, dtype=dtype) if full is None else xp.empty_like(full, dtype=dtype)
    a, b = xp.broadcast_to(a, shape), xp.broadcast_to(b, shape)

    def compute(run: list[slice]) -> None:
        for r in run:
            ufunc(a[r], b[r], out=out[r])
    run_blocks(compute, even_blocks(xp, shape[0], 1))
    return out
