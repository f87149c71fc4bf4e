"""Which BLAS NumPy runs on, its kernel ("core type") and its thread count.

NumPy 2 wheels bundle scipy-openblas; its C API tells the kernel OpenBLAS picked for this CPU
and how many threads it uses, which ``numpy.show_config()`` cannot (that is build-time data).
"""
from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np


def _openblas() -> tuple[Any, str] | None:
    """The bundled OpenBLAS library and its symbol suffix, or None (another BLAS)."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "")):
            if hasattr(lib, f"{prefix}get_num_threads{suffix}"):
                return lib, (prefix, suffix)
    return None


def blas_info() -> dict[str, Any]:
    """{'name', 'version', 'corename', 'threads', 'OPENBLAS_CORETYPE'} for NumPy's BLAS."""
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    info: dict[str, Any] = {"name": config.get("name"), "version": config.get("version"),
                            "corename": None, "threads": None,
                            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    found = _openblas()
    if found is not None:
        lib, (prefix, suffix) = found
        corename = getattr(lib, f"{prefix}get_corename{suffix}")
        corename.restype = ctypes.c_char_p
        info["corename"] = corename().decode()
        info["threads"] = int(getattr(lib, f"{prefix}get_num_threads{suffix}")())
    return info


def describe(info: dict[str, Any]) -> str:
    s = f"{info['name']} {info['version']}, kernel {info['corename']}, {info['threads']} threads"
    if info["OPENBLAS_CORETYPE"]:
        s += f", OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE']}"
    return s


if __name__ == "__main__":
    print(describe(blas_info()))
