"""Figures of diffusion at work, saved as PNG (and one GIF) with matplotlib.

- ``save_scatter``, ``save_image_grid``, ``save_digit_grid``: samples (2D points, digits);
- ``show_forward``: data dissolving into noise under q(x_t | x_0) at t = 0, T/4, T/2, 3T/4, T;
- ``save_trajectories``: the reverse paths of a few dozen 2D points, noise to sample;
- ``save_direction_field``: the learned denoising direction (the score) on a 2D grid at several t;
- ``save_loss_curves``: loss.csv, raw and smoothed;
- ``save_denoising_strip``: one digit emerging from noise, step by step;
- ``save_reverse_gif``: the reverse process as an animation (2D points or digits).

Figures are drawn with matplotlib's object API (``Figure``, no pyplot), so nothing here picks a
GUI backend or needs a display, and no global pyplot state is touched. They share one palette:
data in grey, model samples in blue, noise in orange, time running from light (t = T, noise) to
dark (t = 0, data).

Inputs are host (NumPy) arrays or CuPy arrays, which are copied to the host here, the one place
where samples leave the device for good.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autograd.backend import to_numpy
from tinydiff.data.mnist import load_mnist
from tinydiff.data.toy2d import sample_toy2d
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.run import LOG_NAME, read_loss_log
from tinydiff.schedules import make_beta_schedule


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


# --------------------------------------------------------------------------- shared style

DATA_COLOR = "0.72"
SAMPLE_COLOR = "tab:blue"
NOISE_COLOR = "tab:orange"
TIME_CMAP = "viridis_r"        # light at t = T (noise), dark at t = 0 (data)
TOY_LIM = 3.5                  # the standardised toy datasets fit in [-3.5, 3.5]^2


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | os.PathLike, dpi: int = 110) -> str:
    _ensure_parent(path)
    fig.savefig(os.fspath(path), dpi=dpi)
    return os.fspath(path)


def _square_axes(ax: Any, lim: float, ticks: bool = False) -> None:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])


def _as_frames(trajectory: Any) -> np.ndarray:
    """A reverse trajectory [x_T, ..., x_0] (list of arrays or one array) as one host array."""
    if isinstance(trajectory, (list, tuple)):
        return np.stack([to_numpy(x) for x in trajectory])
    return to_numpy(trajectory)


# --------------------------------------------------------------------------- forward process

def forward_timesteps(timesteps: int) -> list[int]:
    """t = 0, T/4, T/2, 3T/4, T (rounded): the five moments ``show_forward`` draws."""
    return [round(k * timesteps / 4) for k in range(5)]


def show_forward(dataset: str, out: str | os.PathLike, schedule: str = "linear",
                 timesteps: int = 1000, seed: int = 0, data_dir: str | os.PathLike | None = None,
                 n: int | None = None) -> str:
    """Plot x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) at t = 0, T/4, T/2, 3T/4, T.

    ``dataset``: a toy 2D name (``n`` points, default 2000, coloured by their position in the
    data so one sees the structure dissolve) or "mnist" (``n`` digits, default 6, one per row).
    The same noise eps is used at every t, so each point or digit can be followed across the
    panels. t is counted as in the paper: t = 0 is the data, t = T the last step (code index T-1).
    Returns the path of the PNG.
    """
    diffusion = GaussianDiffusion(make_beta_schedule(schedule, timesteps))
    rng = np.random.default_rng(seed)
    if dataset == "mnist":
        images, _ = load_mnist("test", data_dir=data_dir, progress=False)
        x0 = images[rng.choice(len(images), n or 6, replace=False)].astype(np.float64)
    else:
        x0 = sample_toy2d(dataset, n or 2000, rng).astype(np.float64)
    eps = rng.standard_normal(x0.shape)
    ts = forward_timesteps(timesteps)
    abar = [1.0 if t == 0 else float(diffusion.alphas_cumprod[t - 1]) for t in ts]
    states = [x0 if t == 0 else diffusion.q_sample(x0, t - 1, eps) for t in ts]
    titles = [f"t = {t}" + (" (data)" if t == 0 else "") + f"\n$\\bar\\alpha_t$ = {a:.3f}"
              for t, a in zip(ts, abar)]
    heading = f"Forward process q(x_t | x_0): {dataset}, {schedule} schedule, T = {timesteps}"

    if dataset == "mnist":
        fig = _figure(1.5 * len(ts) + 0.4, 1.35 * len(x0) + 0.8)
        axes = fig.subplots(1, len(ts))
        for ax, x, title in zip(axes, states, titles):
            ax.imshow(image_grid(x, nrow=1), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    else:
        fig = _figure(2.6 * len(ts), 3.2)
        axes = fig.subplots(1, len(ts))
        # Colour each point by where it started (its angle about the data's centre): the colours
        # stay put while the shape dissolves, then mix into one Gaussian blob.
        colour = np.arctan2(x0[:, 1], x0[:, 0])
        for ax, x, title in zip(axes, states, titles):
            ax.scatter(x[:, 0], x[:, 1], c=colour, cmap="twilight", s=2, linewidths=0)
            _square_axes(ax, TOY_LIM)
            ax.set_title(title, fontsize=10)
    fig.suptitle(heading)
    return _save(fig, out)


# --------------------------------------------------------------------------- reverse process, 2D

def save_trajectories(trajectory: Any, path: str | os.PathLike, reference: Any = None,
                      n_paths: int = 40, title: str | None = None, lim: float = TOY_LIM) -> str:
    """Reverse paths of ``n_paths`` points over all the final samples.

    ``trajectory``: [x_T, ..., x_0] as returned by ``GaussianDiffusion.sample(...,
    return_trajectory=True)``, each (n, 2). Each path is coloured from light (noise) to dark
    (sample); its start is an orange dot, its end a black one. ``reference`` data are grey.
    """
    from matplotlib.collections import LineCollection

    frames = _as_frames(trajectory)
    if frames.ndim != 3 or frames.shape[2] != 2:
        raise ValueError(f"save_trajectories: expected states of shape (n, 2), got {frames.shape[1:]}")
    steps, n = frames.shape[0] - 1, frames.shape[1]
    pick = np.linspace(0, n - 1, min(n_paths, n)).astype(np.int64)
    fig = _figure(5.2, 5.0)
    ax = fig.subplots()
    if reference is not None:
        ref = to_numpy(reference)
        ax.scatter(ref[:, 0], ref[:, 1], s=3, c=DATA_COLOR, linewidths=0, label="data")
    ax.scatter(frames[-1, :, 0], frames[-1, :, 1], s=3, c=SAMPLE_COLOR, alpha=0.5, linewidths=0,
               label="samples $x_0$")
    # One segment per step and path, coloured by the step's time.
    segments = np.stack([frames[:-1, pick], frames[1:, pick]], axis=2)       # (steps, k, 2, 2)
    progress = np.repeat(np.linspace(0.0, 1.0, steps), len(pick))
    lines = LineCollection(list(segments.reshape(-1, 2, 2)), array=progress, cmap=TIME_CMAP,
                           linewidths=0.9, alpha=0.9)
    ax.add_collection(lines)
    ax.scatter(frames[0, pick, 0], frames[0, pick, 1], s=12, c=NOISE_COLOR, zorder=3,
               edgecolors="white", linewidths=0.4, label="start $x_T$ (noise)")
    ax.scatter(frames[-1, pick, 0], frames[-1, pick, 1], s=12, c="black", zorder=3,
               edgecolors="white", linewidths=0.4, label="end $x_0$")
    cbar = fig.colorbar(lines, ax=ax, shrink=0.8, ticks=[0.0, 1.0])
    cbar.ax.set_yticklabels(["$x_T$", "$x_0$"])
    _square_axes(ax, lim, ticks=True)
    ax.legend(loc="lower left", fontsize=8, markerscale=1.5, framealpha=0.85)
    ax.set_title(title or f"Reverse process: {len(pick)} of {n} paths, {steps} steps")
    return _save(fig, path)


def score_direction(model_fn: Callable[[Any, Any], Any], diffusion: Any, points: np.ndarray, t: int,
                    parameterization: str = "eps") -> np.ndarray:
    """The learned score at code timestep ``t``: grad log p_t(x) ~ -eps_theta(x, t) / sqrt(1 - abar_t).

    It points from x_t towards where the noised data are dense; x_0_hat - x_t points the same way
    at a different length (both are linear in eps). ``model_fn(x, t_batch)`` returns the
    prediction named by ``parameterization``.
    """
    x = np.asarray(points)
    t_batch = np.full((len(x),), int(t), dtype=np.int64)
    eps = diffusion.eps_from_model_output(to_numpy(model_fn(x, t_batch)), x, int(t), parameterization)
    return -np.asarray(eps) / float(diffusion.sqrt_one_minus_alphas_cumprod[int(t)])


def save_direction_field(model_fn: Callable[[Any, Any], Any], diffusion: Any, path: str | os.PathLike,
                         ts: Sequence[int] | None = None, dataset: str | None = None,
                         parameterization: str = "eps", grid: int = 21, lim: float = 3.0,
                         seed: int = 0, title: str | None = None) -> str:
    """Quiver plots of the learned score direction -eps_theta(x, t) / sqrt(1 - abar_t) on a grid.

    One panel per code timestep in ``ts`` (default: 4 spread over 0..T-1). Arrows have unit
    length (the score's size varies by orders of magnitude with t) and are coloured by log10 of
    its magnitude; behind them, grey, the noised data x_t ~ q(x_t | x_0) of ``dataset`` at that t,
    the distribution whose score the model learned. ``model_fn`` works on float32 arrays.
    """
    T = diffusion.num_timesteps
    ts = list(ts) if ts is not None else [0, T // 20, T // 5, T // 2]
    axis = np.linspace(-lim, lim, grid)
    gx, gy = np.meshgrid(axis, axis)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    fig = _figure(3.3 * len(ts) + 0.6, 3.7)
    axes = np.atleast_1d(fig.subplots(1, len(ts)))
    rng = np.random.default_rng(seed)
    quiver = None
    for ax, t in zip(axes, ts):
        if dataset is not None:
            x0 = sample_toy2d(dataset, 2000, rng).astype(np.float64)
            xt = diffusion.q_sample(x0, int(t), rng.standard_normal(x0.shape))
            ax.scatter(xt[:, 0], xt[:, 1], s=2, c=DATA_COLOR, linewidths=0)
        score = score_direction(model_fn, diffusion, points, t, parameterization)
        size = np.linalg.norm(score, axis=1)
        unit = score / np.maximum(size, 1e-12)[:, None]
        quiver = ax.quiver(points[:, 0], points[:, 1], unit[:, 0], unit[:, 1], np.log10(size + 1e-12),
                           cmap="magma_r", angles="xy", scale_units="xy", scale=grid / (2 * lim) * 1.1,
                           width=0.006, clim=(-0.5, 2.0))
        _square_axes(ax, lim)
        ax.set_title(f"t = {t + 1}   ($\\bar\\alpha_t$ = {diffusion.alphas_cumprod[t]:.3f})", fontsize=10)
    cbar = fig.colorbar(quiver, ax=list(axes), shrink=0.85, pad=0.01)
    cbar.set_label("log$_{10}$ |score|")
    fig.suptitle(title or "Learned denoising direction $-\\epsilon_\\theta(x, t)/\\sqrt{1-\\bar\\alpha_t}$"
                          " (unit arrows) over the noised data $x_t$ (grey)")
    return _save(fig, path)


# --------------------------------------------------------------------------- training curves

def smooth_curve(values: Any, weight: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing, debiased):
    s_k = (1 - w) sum_j w^(k-j) v_j / (1 - w^(k+1)), so the first points are not pulled to 0."""
    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    acc = 0.0
    for k, value in enumerate(v):
        acc = weight * acc + (1.0 - weight) * value
        out[k] = acc / (1.0 - weight ** (k + 1))
    return out


def save_loss_curves(logs: Any, path: str | os.PathLike, weight: float | None = None,
                     title: str | None = None) -> str:
    """Loss against step from one or more loss.csv files (raw in a faint line, smoothed on top).

    ``logs``: a path to loss.csv (or its run folder), or a mapping name -> path. The legend gives
    each run's final smoothed loss and its training time. ``weight``: the smoothing's EMA weight
    (default: from the run length, an averaging window of about 1/100 of it, within
    [0.8, 0.99]: a longer window lags visibly behind the fast early drop).
    """
    runs = logs if isinstance(logs, dict) else {None: logs}
    fig = _figure(6.4, 3.8)
    ax = fig.subplots()
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:brown"]
    for (name, log), colour in zip(runs.items(), colours * 10):
        if not isinstance(log, dict):
            log = os.fspath(log)
            log = read_loss_log(os.path.join(log, LOG_NAME) if os.path.isdir(log) else log)
        steps, loss = log["step"], log["loss"]
        if len(steps) == 0:
            continue
        w = weight if weight is not None else float(np.clip(1.0 - 100.0 / len(steps), 0.8, 0.99))
        smooth = smooth_curve(loss, w)
        minutes = float(log["time"][-1]) / 60.0
        label = (f"{name}: " if name else "") + f"{smooth[-1]:.4f} at step {int(steps[-1])} ({minutes:.1f} min)"
        ax.plot(steps, loss, color=colour, alpha=0.18, linewidth=0.6)
        ax.plot(steps, smooth, color=colour, linewidth=1.8, label=label)
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training step")
    ax.set_ylabel("loss  (MSE of the prediction, per dimension)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, title="smoothed loss at the end", title_fontsize=8)
    ax.set_title(title or "Training loss (faint: every step; bold: smoothed)")
    return _save(fig, path)


# --------------------------------------------------------------------------- digits

def save_digit_grid(images: Any, path: str | os.PathLike, nrow: int = 10, title: str | None = None,
                    row_labels: Sequence[str] | None = None) -> str:
    """Images (N, 1, H, W) in [-1, 1] as a grid of ``nrow`` per row, with a title and an
    optional label per row (e.g. the digit each row was conditioned on)."""
    grid = image_grid(images, nrow=nrow)
    n = len(to_numpy(images))
    rows = max(1, math.ceil(n / nrow))
    height = grid.shape[0] / grid.shape[1] * 5.6
    fig = _figure(5.6 + (0.4 if row_labels else 0.0), height + (0.45 if title else 0.1))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        cell = grid.shape[0] / rows
        ax.set_yticks([cell * (r + 0.5) for r in range(rows)], list(row_labels)[:rows], fontsize=9)
        ax.tick_params(length=0)
    else:
        ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, dpi=120)


def save_denoising_strip(frames: Sequence[Any], ts: Sequence[int], path: str | os.PathLike,
                         x0_predictions: Sequence[Any] | None = None, title: str | None = None) -> str:
    """One image at several reverse steps, left (noise) to right (sample), labelled with t.

    ``frames``: images (1, H, W) or (H, W) in [-1, 1] (values outside are clipped for display);
    ``x0_predictions``: optionally the model's x_0 estimate at each step, drawn as a second row.
    """
    rows = 1 + (x0_predictions is not None)
    k = len(frames)
    fig = _figure(1.15 * k + 0.6, 1.22 * rows + 0.45)
    axes = np.array(fig.subplots(rows, k)).reshape(rows, k)
    for row, images in enumerate([frames] + ([x0_predictions] if x0_predictions is not None else [])):
        for col, (img, t) in enumerate(zip(images, ts)):
            ax = axes[row, col]
            ax.imshow((np.clip(np.squeeze(to_numpy(img)), -1, 1) + 1) / 2, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t = {t}", fontsize=9)
            if col == 0:
                ax.set_ylabel("$x_t$" if row == 0 else "$\\hat x_0$", fontsize=10)
    fig.suptitle(title or "A digit emerging from noise", fontsize=11)
    return _save(fig, path, dpi=120)


# --------------------------------------------------------------------------- animation

def save_reverse_gif(trajectory: Any, path: str | os.PathLike, ts: Sequence[int] | None = None,
                     reference: Any = None, frames: int = 40, fps: int = 10, nrow: int | None = None,
                     title: str = "Reverse process", lim: float = TOY_LIM) -> str:
    """Animate [x_T, ..., x_0] as a GIF (matplotlib's PillowWriter): 2D points (n, 2) as a
    scatter over the grey ``reference``, or images (n, 1, H, W) as a grid. ``frames`` states are
    taken evenly from the trajectory (the last one held for a second); ``ts`` labels them."""
    from matplotlib.animation import PillowWriter

    states = _as_frames(trajectory)
    pick = np.unique(np.linspace(0, len(states) - 1, min(frames, len(states))).astype(np.int64))
    labels = list(ts) if ts is not None else list(range(len(states) - 1, -1, -1))
    points = states.ndim == 3 and states.shape[2] == 2
    if points:
        fig = _figure(4.0, 4.3)
    else:  # shaped like the grid, so no frame spends bytes on margins
        h, w = image_grid(states[0], nrow=nrow).shape[:2]
        fig = _figure(4.0, 4.0 * h / w + 0.35)
    ax = fig.subplots()
    writer = PillowWriter(fps=fps)
    _ensure_parent(path)
    with writer.saving(fig, os.fspath(path), dpi=70):
        if points:
            if reference is not None:
                ref = to_numpy(reference)
                ax.scatter(ref[:, 0], ref[:, 1], s=2, c=DATA_COLOR, linewidths=0)
            dots = ax.scatter(states[0, :, 0], states[0, :, 1], s=2, c=SAMPLE_COLOR, linewidths=0)
            _square_axes(ax, lim)
        else:
            image = ax.imshow(image_grid(states[0], nrow=nrow), cmap="gray", vmin=0, vmax=1,
                              interpolation="nearest")
            ax.axis("off")
        for i in list(pick) + [pick[-1]] * fps:
            if points:
                dots.set_offsets(states[i])
            else:
                image.set_data(image_grid(states[i], nrow=nrow))
            ax.set_title(f"{title}: t = {labels[i]}", fontsize=10)
            writer.grab_frame()
    return os.fspath(path)
