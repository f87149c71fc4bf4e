"""Host memory tuning for training loops: make glibc's malloc keep freed memory for reuse.

Not switched on by ``import autograd``: a library should not change how its host process
allocates memory. The trainer (``tinydiff.train.Trainer``), the ``tinydiff`` CLI and the speed
benchmark call ``keep_freed_host_memory()`` once, explicitly. Measured effect:
benchmarks/results/autograd-measurements.md#host-memory-malloc-tuning.
"""
from __future__ import annotations

import ctypes
import os

# mallopt's parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_host_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same few hundred MB of activations and gradients
    every time. By default glibc serves each array over 128 KB with a fresh mmap and trims
    freed heap memory, so every step page-faults all of it back in. Serving arrays up to 32 MB
    from the heap and never trimming it removes that; peak memory is unchanged (what a step
    needs, it needs anyway). Returns True if malloc was tuned: False where malloc is not
    glibc's, or when the environment sets AUTOGRAD_KEEP_FREED_MEMORY=0. Calling it again is
    harmless (it sets the same values).
    """
    if os.environ.get("AUTOGRAD_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)   # glibc's largest allowed value
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    mallopt(_M_TOP_PAD, 64 << 20)
    return True
