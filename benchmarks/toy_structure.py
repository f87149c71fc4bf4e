"""The shape of toy 2D samples, in numbers a sliced W2 ratio hides (issue 14's recipe search).

    python benchmarks/toy_structure.py RUN_OR_NPY ... [--n 20000] [--seed 1000]

A checkpoint (or its run folder) is sampled with DDPM's ancestral sampler, all T steps (the
judge of ``tinydiff eval --sampler ddpm``), ``--n`` points with sampling seed ``--seed``; a .npy
of (n, 2) points is read as it is (``--dataset`` says which set). "data" stands for a fresh draw
of the data itself, the row to compare with. Printed per sample set:

- moons: the two arcs' thickness (root mean square distance to the nearest noiseless arc, in
  the data's own units, where the noise sd is 0.05), the kurtosis of the signed radial offset
  (3 for the data's Gaussian noise), the share of points more than 0.2 (4 noise sd) from both
  arcs ("strays"), the share just beyond and just inside the inner tips (the arcs' ends that
  lie in the other moon's hollow: angle in [-0.5, 0) and [0, 0.15] of the arc's parameter), and
  the share of points nearer the upper arc (1/2 for the data).
- 8gaussians: the standard deviation of each mode's points along the circle (tangential) and
  across it (radial), averaged over the 8 modes (in standardised units), and the largest
  deviation of a mode's share from 1/8.

With 20,000 points each figure is precise to about 1% (the mixture shares to 0.2 points), so
recipes can be told apart by one sample set where the sliced W2 ratio needs many.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `tinydiff train` and `tinydiff eval` run

import numpy as np  # noqa: E402

from tinydiff.data.toy2d import MOONS_MEAN, MOONS_VAR, sample_toy2d  # noqa: E402
from tinydiff.run import sample_checkpoint  # noqa: E402

DATASETS = ("moons", "8gaussians")


def _unstandardise_moons(x: np.ndarray) -> np.ndarray:
    """Back to the arcs' own coordinates (tinydiff/data/toy2d.py:_moons standardises them)."""
    return x * np.sqrt(MOONS_VAR) + np.asarray(MOONS_MEAN)


def _arc(r: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points (r, angle) about an arc's centre to the unit half circle of angles
    [0, pi], and the angle unwrapped so that points past the left end stay near pi."""
    angle = np.where(angle < -math.pi / 2, angle + 2 * math.pi, angle)
    on = np.clip(angle, 0.0, math.pi)
    dist = np.hypot(r * np.cos(angle) - np.cos(on), r * np.sin(angle) - np.sin(on))
    return dist, angle


def moons_structure(x: np.ndarray) -> dict[str, float]:
    p = _unstandardise_moons(np.asarray(x, dtype=np.float64))
    # upper arc (cos u, sin u) about (0, 0); lower arc (1 - cos u, 1/2 - sin u) about (1, 1/2)
    ru, rl = np.hypot(p[:, 0], p[:, 1]), np.hypot(p[:, 0] - 1, p[:, 1] - 0.5)
    du, au = _arc(ru, np.arctan2(p[:, 1], p[:, 0]))
    dl, al = _arc(rl, np.arctan2(0.5 - p[:, 1], 1 - p[:, 0]))
    upper = du < dl
    dist, r, angle = np.where(upper, du, dl), np.where(upper, ru, rl), np.where(upper, au, al)
    offset = r - 1.0
    centred = offset - offset.mean()
    return {"thickness": float(np.sqrt(np.mean(dist**2))),
            "kurtosis": float(np.mean(centred**4) / np.mean(centred**2) ** 2),
            "strays %": float(100 * np.mean(dist > 0.2)),
            "past tips %": float(100 * np.mean((angle >= -0.5) & (angle < 0))),
            "at tips %": float(100 * np.mean((angle >= 0) & (angle <= 0.15))),
            "upper share": float(np.mean(upper))}


def eight_gaussians_structure(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    mode = np.round(np.arctan2(x[:, 1], x[:, 0]) / (math.pi / 4)).astype(int) % 8
    tangential, radial, shares = [], [], []
    for k in range(8):
        pts = x[mode == k]
        out = np.array([math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)])
        centred = pts - pts.mean(axis=0)
        radial.append(float(np.std(centred @ out)))
        tangential.append(float(np.std(centred @ np.array([-out[1], out[0]]))))
        shares.append(len(pts) / len(x))
    return {"tangential sd": float(np.mean(tangential)), "radial sd": float(np.mean(radial)),
            "largest share error %": float(100 * np.max(np.abs(np.array(shares) - 1 / 8)))}


def structure(x: np.ndarray, dataset: str) -> dict[str, float]:
    return moons_structure(x) if dataset == "moons" else eight_gaussians_structure(x)


def _load(source: str, dataset: str | None, n: int, seed: int) -> tuple[np.ndarray, str]:
    if source == "data":
        if dataset is None:
            raise SystemExit("toy_structure: 'data' needs --dataset")
        return sample_toy2d(dataset, n, np.random.default_rng([seed, 99])), dataset
    if source.endswith(".npy"):
        if dataset is None:
            raise SystemExit(f"toy_structure: {source} needs --dataset")
        return np.load(source, allow_pickle=False), dataset
    path = Path(source)
    path = path / "checkpoint.npz" if path.is_dir() else path
    result, run = sample_checkpoint(path, n, sampler="ddpm", seed=seed, batch_size=5000)
    if run.config.dataset not in DATASETS:
        raise SystemExit(f"toy_structure: {source} was trained on {run.config.dataset!r}; "
                         f"this script reads {', '.join(DATASETS)}")
    return result.samples, run.config.dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", help="checkpoints or run folders, .npy files, or 'data'")
    p.add_argument("--dataset", choices=DATASETS, help="for .npy files and 'data'")
    p.add_argument("--n", type=int, default=20_000, help="points sampled per checkpoint")
    p.add_argument("--seed", type=int, default=1000, help="sampling seed (the same for every run)")
    args = p.parse_args(argv)
    if args.n < 100:
        p.error(f"--n must be >= 100, got {args.n}")
    for source in args.sources:
        x, dataset = _load(source, args.dataset, args.n, args.seed)
        figures = structure(x, dataset)
        print(f"{source} ({dataset}, {len(x)} points): "
              + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
