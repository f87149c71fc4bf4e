"""Sample-quality metrics on plain NumPy arrays: sliced Wasserstein, MMD, Fréchet distance.

For toy 2D data, compare model samples with a *fresh* batch from the true distribution
(`tinydiff.data.sample_toy2d` with a new seed) using `sliced_wasserstein` or `mmd_rbf`. Neither
is zero for two finite samples of the same distribution: compute the data-vs-data value (two
fresh batches of the same size from the true distribution, same settings) alongside, as that is
the floor a perfect model would reach. A model is only distinguishable from the data when its
value is clearly above that floor; differences below it are sampling noise.

For images, `feature_statistics` + `frechet_distance` give an FID on the features of any
classifier (the standard FID uses Inception features; any fixed feature map gives a
Fréchet distance of the same form, comparable only across runs that used the same features).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
from scipy.spatial.distance import pdist

_BLOCK_ELEMENTS = 1 << 22   # kernel blocks of ~4M entries keep MMD memory at ~32 MB per block

# Default MMD kernel scales, as multiples of the median pairwise distance: the median alone sees
# only the global scale, which standardised toy data share; their structure lives at 1/8-1/4 of it
# (measured: benchmarks/results/tinydiff-measurements.md#mmd-kernel-scales).
MMD_BANDWIDTH_MULTIPLIERS: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)


def _as_generator(rng: int | np.random.Generator) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def _points(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) array of points, got shape {a.shape}")
    return a


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    return x, y


# --------------------------------------------------------------------------- sliced Wasserstein

def random_directions(n: int, dim: int, rng: int | np.random.Generator) -> np.ndarray:
    """`n` unit vectors drawn uniformly from the sphere in R^dim, shape (n, dim).

    Normalised standard Gaussians are uniform on the sphere by rotational symmetry.
    """
    g = _as_generator(rng).standard_normal((n, dim))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, n_projections: int = 512,
                       rng: int | np.random.Generator = 0, squared: bool = False) -> float:
    """Sliced 2-Wasserstein distance between two equal-size samples x, y of shape (n, d).

    SW_2^2 = E_theta[ W_2^2(theta . x, theta . y) ] over directions theta uniform on the sphere,
    estimated with `n_projections` random directions from `rng` (a fixed seed by default, so the
    same inputs give the same value). In 1-D the optimal coupling of two equal-size empirical
    measures pairs the sorted values, so W_2^2 is the mean squared difference of sorted
    projections. Returns SW_2, or SW_2^2 when `squared`.

    Not zero for two finite samples of one distribution: see the module docstring on the floor.
    """
    x, y = _pair(x, y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"sliced_wasserstein needs equal sample sizes, got {x.shape[0]} and "
                         f"{y.shape[0]}; subsample the larger one")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = random_directions(n_projections, x.shape[1], rng)
    px = np.sort(x @ theta.T, axis=0)
    py = np.sort(y @ theta.T, axis=0)
    sw2 = float(np.mean((px - py) ** 2))
    return sw2 if squared else math.sqrt(sw2)


# --------------------------------------------------------------------------- MMD

def median_bandwidth(x: np.ndarray, y: np.ndarray, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance in the pooled sample (the "median heuristic").

    Uses at most `max_points` evenly spaced points of the pool, which keeps it O(max_points^2)
    and deterministic while spanning both samples even if they are sorted.
    """
    x, y = _pair(x, y)
    pool = np.concatenate([x, y])
    if pool.shape[0] > max_points:
        pool = pool[np.linspace(0, pool.shape[0] - 1, max_points).astype(np.int64)]
    dists = pdist(pool)
    dists = dists[dists > 0]
    if dists.size == 0:
        raise ValueError("all points are identical: no bandwidth can be chosen from the data")
    return float(np.median(dists))


def _kernel_sum(a: np.ndarray, b: np.ndarray, inv_two_h2: np.ndarray, same: bool) -> float:
    """Sum over all pairs (i, j) of sum_h exp(-|a_i - b_j|^2 / (2 h^2)), block by block."""
    a_sq, b_sq = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    rows = max(1, _BLOCK_ELEMENTS // b.shape[0])
    total = 0.0
    for start in range(0, a.shape[0], rows):
        stop = min(start + rows, a.shape[0])
        d2 = a_sq[start:stop, None] + b_sq[None, :] - 2.0 * (a[start:stop] @ b.T)
        np.maximum(d2, 0.0, out=d2)   # the expansion can dip just below 0 by rounding
        if same:   # make k(a_i, a_i) exactly 1 per kernel so that the caller can remove it exactly
            idx = np.arange(start, stop)
            d2[idx - start, idx] = 0.0
        for c in inv_two_h2:
            total += float(np.exp(-c * d2).sum())
    return total


def mmd_rbf(x: np.ndarray, y: np.ndarray,
            bandwidths: float | tuple[float, ...] | np.ndarray | None = None) -> float:
    """Unbiased estimate of MMD^2 between samples x (m, d) and y (n, d), m, n >= 2.

    Kernel: k(a, b) = sum over h in `bandwidths` of exp(-|a - b|^2 / (2 h^2)). The default is
    the median heuristic at several scales, h = med * `MMD_BANDWIDTH_MULTIPLIERS` with
    med = `median_bandwidth(x, y)`.
    For comparing several models against one reference, pass fixed bandwidths (e.g. computed
    once from the data), since the default adapts to each pair of inputs.

    MMD_u^2 = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)
    (Gretton et al. 2012, eq. 3). Its expectation is exactly the population MMD^2, so it is
    about 0 (and can be slightly negative) for two samples of one distribution: compare with the
    data-vs-data value, as the module docstring says.
    """
    x, y = _pair(x, y)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"mmd_rbf needs at least 2 points in each sample, got {m} and {n}")
    if bandwidths is None:
        h = median_bandwidth(x, y) * np.asarray(MMD_BANDWIDTH_MULTIPLIERS)
    else:
        h = np.atleast_1d(np.asarray(bandwidths, dtype=np.float64))
        if h.ndim != 1 or h.size == 0 or np.any(h <= 0):
            raise ValueError(f"bandwidths must be positive, got {bandwidths!r}")
    inv_two_h2 = 1.0 / (2.0 * h**2)
    k = h.size   # k(a, a) = 1 per kernel: the diagonal contributes exactly m * k
    kxx = (_kernel_sum(x, x, inv_two_h2, same=True) - m * k) / (m * (m - 1))
    kyy = (_kernel_sum(y, y, inv_two_h2, same=True) - n * k) / (n * (n - 1))
    kxy = _kernel_sum(x, y, inv_two_h2, same=False) / (m * n)
    return kxx + kyy - 2.0 * kxy


# --------------------------------------------------------------------------- Fréchet distance

def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of `features` (n, d), n >= 2, in float64."""
    f = _points(features, "features")
    if f.shape[0] < 2:
        raise ValueError("feature_statistics needs at least 2 feature vectors")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """scipy's matrix square root of `a`, and whether it is finite and accurate."""
    with warnings.catch_warnings():
        # A singular product makes scipy warn; we judge the result ourselves just below.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(a)
    if not np.all(np.isfinite(root)):
        return root, False
    scale = max(float(np.linalg.norm(a)), np.finfo(np.float64).tiny)
    return root, float(np.linalg.norm(root @ root - a)) / scale <= 1e-6


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr( (sigma1 sigma2)^{1/2} ),
    with the square root from `scipy.linalg.sqrtm`, as in the reference FID code:
    - if that root is not finite or not accurate (relative residual |X X - A| / |A| > 1e-6),
      which happens for (near-)singular covariances, e.g. fewer samples than feature
      dimensions, `eps * I` is added to both covariances and the root recomputed. The offset
      moves the value by O(eps * d), far below any meaningful FID difference.
    - rounding can make the root of this real product slightly complex; imaginary parts are
      dropped when they are tiny (diagonal within 1e-3, as in the reference code), and a
      ValueError is raised otherwise rather than returning a meaningless number.

    Returns the squared distance (what "FID" reports); rounding can leave it a hair below 0 for
    identical statistics.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"need mu (d,) and sigma (d, d) for both; got {mu1.shape}, {s1.shape}, "
                         f"{mu2.shape}, {s2.shape}")
    covmean, ok = _sqrtm(s1 @ s2)
    if not ok:
        offset = eps * np.eye(d)
        covmean, ok = _sqrtm((s1 + offset) @ (s2 + offset))
        if not np.all(np.isfinite(covmean)):
            raise ValueError("matrix square root is not finite even with the eps offset; "
                             "are the covariances finite and positive semi-definite?")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise ValueError(f"matrix square root has a large imaginary component "
                             f"({np.max(np.abs(covmean.imag)):.3g}); are both covariances "
                             f"symmetric positive semi-definite?")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(features1: np.ndarray, features2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussian fits of two feature sets (n_i, d)."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2), eps=eps)


# The speckle of a generated digit's background, in pixels of [-1, 1]: ink is above mid-grey (0);
# the background is what lies more than BACKGROUND_MARGIN pixels from any ink, so that the soft
# edge of a stroke is not counted as background.
BACKGROUND_MARGIN = 2


def background_speckle(images: np.ndarray) -> dict[str, float]:
    """How clean the backgrounds of (N, 1, H, W) or (N, H, W) images in [-1, 1] are.

    Returns ``background_mean``: the mean value of the background pixels (clean MNIST: about
    -1; a grey veil raises it), and ``isolated_bright``: the fraction of all pixels that are ink
    with no ink among their 8 neighbours (speckle; real digits have almost none), each averaged
    over the images. Compare a model's values with the test set's, computed the same way.
    """
    from scipy import ndimage

    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[0] < 1 or min(x.shape[1:]) < 3:
        raise ValueError(f"background_speckle: expected images of shape (N, 1, H, W) or (N, H, W) "
                         f"with N >= 1 and H, W >= 3, got {np.shape(images)}")
    if not np.isfinite(x).all():
        raise ValueError("background_speckle: the images hold NaN or inf")
    ink = x > 0
    # Dilate within each image only (no structure across the batch axis).
    reach = np.ones((1, 2 * BACKGROUND_MARGIN + 1, 2 * BACKGROUND_MARGIN + 1), dtype=bool)
    background = ~ndimage.binary_dilation(ink, structure=reach)
    neighbours = ndimage.convolve(ink.astype(np.int32), np.array([[[1, 1, 1], [1, 0, 1], [1, 1, 1]]]),
                                  mode="constant", cval=0)
    isolated = ink & (neighbours == 0)
    counts = background.sum(axis=(1, 2))
    sums = np.where(background, x, 0.0).sum(axis=(1, 2))
    # An image with no background at all (ink everywhere near) counts as a background of mid-grey.
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return {"background_mean": float(means.mean()),
            "isolated_bright": float(isolated.mean(axis=(1, 2)).mean())}
