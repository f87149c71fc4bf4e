"""Special functions that NumPy lacks, on the array's own backend.

``erf`` comes from ``scipy.special`` for NumPy arrays and from ``cupyx.scipy.special`` for
CuPy arrays, so a GPU array never visits the host. Both are ufuncs: they keep float32 as
float32 and accept ``out=``.
"""
from __future__ import annotations

from typing import Any

from autograd.backend import get_array_module


def erf(a: Any, out: Any = None) -> Any:
    """erf(a) = (2/sqrt(pi)) int_0^a exp(-t^2) dt, elementwise.    d erf/da = (2/sqrt(pi)) exp(-a^2)."""
    if get_array_module(a).__name__ == "cupy":
        from cupyx.scipy.special import erf as _erf
    else:
        from scipy.special import erf as _erf
    return _erf(a, out=out)
