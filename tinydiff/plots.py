"""Figures: a grid of images and a 2D scatter plot, saved as PNG with matplotlib.

Figures are drawn with matplotlib's object API (``Figure``, no pyplot), so nothing here picks a
GUI backend or needs a display, and no global pyplot state is touched.

Inputs are host (NumPy) arrays or CuPy arrays, which are copied to the host here, the one place
where samples leave the device for good.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from autograd.backend import to_numpy


def _ensure_parent(path: str | os.PathLike) -> None:
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def image_grid(images: Any, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one float array in [0, 1].

    Shape (rows*(H+p)+p, nrow*(W+p)+p) for C = 1, with a trailing channel axis for C = 3;
    ``nrow`` images per row (default: about square). Padding is white.
    """
    x = to_numpy(images).astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid: expected images of shape (N, 1|3, H, W); got {x.shape}")
    n, c, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / nrow))
    grid = np.ones((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), np.float32)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = (np.clip(x[i], -1.0, 1.0) + 1.0) / 2.0
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image_grid(images: Any, path: str | os.PathLike, nrow: int | None = None) -> str:
    """Save images (N, C, H, W) in [-1, 1] as one PNG grid, ``nrow`` per row; returns the path."""
    from matplotlib.image import imsave
    grid = image_grid(images, nrow)
    _ensure_parent(path)
    imsave(os.fspath(path), grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0)
    return os.fspath(path)


def save_scatter(points: Any, path: str | os.PathLike, reference: Any = None,
                 title: str | None = None, lim: float = 3.5) -> str:
    """Scatter plot of 2D points (N, 2), optionally over ``reference`` points (grey); returns the path.

    The axes are fixed to [-lim, lim]^2, which holds the standardised toy datasets, so that plots
    of different runs compare at a glance.
    """
    from matplotlib.figure import Figure
    pts = to_numpy(points)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"save_scatter: expected points of shape (N, 2); got {pts.shape}")
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    if reference is not None:
        ref = to_numpy(reference)
        ax.scatter(ref[:, 0], ref[:, 1], s=3, c="0.75", alpha=0.6, linewidths=0, label="data")
    ax.scatter(pts[:, 0], pts[:, 1], s=3, c="tab:blue", alpha=0.8, linewidths=0, label="samples")
    if reference is not None:
        ax.legend(loc="upper right", markerscale=3, frameon=False)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _ensure_parent(path)
    fig.savefig(os.fspath(path), dpi=120)
    return os.fspath(path)
