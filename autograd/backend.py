"""Where arrays live: NumPy on the host, CuPy on a CUDA device.

The backend follows the array (as ``cupy.get_array_module`` does), so there is
no global switch: a Tensor holding a ``cupy.ndarray`` computes on the GPU and
one holding a ``numpy.ndarray`` on the CPU. CuPy is optional; without it every
array is a NumPy array.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy

try:  # CuPy is an optional extra: `pip install tinydiff[cuda]`.
    import cupy
    _CUPY_ERROR: str | None = None
except Exception as exc:  # ImportError, or a CUDA driver/runtime problem at import
    cupy = None
    _CUPY_ERROR = f"{type(exc).__name__}: {exc}"


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def cuda_unavailable_reason() -> str:
    """A sentence saying why CUDA can't be used (for skip messages and errors)."""
    if cupy is None:
        return f"CuPy is not importable ({_CUPY_ERROR}); install the 'cuda' extra on a machine with a GPU"
    return "CuPy is installed but no CUDA device is visible"


def is_array(x: Any) -> bool:
    """True for a numpy.ndarray or a cupy.ndarray."""
    return isinstance(x, numpy.ndarray) or (cupy is not None and isinstance(x, cupy.ndarray))


def host_array(data: Any, dtype: Any = None) -> numpy.ndarray:
    """Python numbers, (nested) lists and NumPy scalars as a NumPy array: where data typed in
    Python starts, before any op runs (so this is not a host round trip)."""
    return numpy.asarray(data, dtype=dtype)


def check_tensor_dtype(data: Any, requires_grad: bool) -> None:
    """The dtype rules of a Tensor's array: numeric (bool, int, float or complex: an object array
    such as ``np.array([None])`` is refused), and floating point if it is to require grad."""
    if data.dtype.kind not in "biufc":
        raise TypeError(f"Tensor: dtype {data.dtype} is not numeric (bool, int, float or complex): {data!r:.80}")
    if requires_grad and data.dtype.kind not in "fc":
        raise TypeError(f"only floating-point tensors can require grad, got dtype {data.dtype}")


def get_array_module(*arrays: Any) -> ModuleType:
    """The module (numpy or cupy) that owns these arrays; numpy for anything else."""
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return numpy


def device_of(array: Any) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return "cuda" if cupy is not None and isinstance(array, cupy.ndarray) else "cpu"


def to_device(array: Any, device: str) -> Any:
    """Copy ``array`` to ``device`` ('cpu' or 'cuda'); returns it unchanged if already there."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
    if device_of(array) == device:
        return array
    if device == "cpu":
        return cupy.asnumpy(array)
    if not cuda_available():
        raise RuntimeError(f"cannot move an array to 'cuda': {cuda_unavailable_reason()}")
    return cupy.asarray(array)


def to_numpy(array: Any, copy: bool = False) -> numpy.ndarray:
    """A host (NumPy) copy of ``array`` (a view of a NumPy array unless ``copy``): the one
    explicit way off the device."""
    if device_of(array) == "cuda":
        return cupy.asnumpy(array)
    return numpy.array(array, copy=True) if copy else numpy.asarray(array)
