"""Toy 2D distributions for diffusion experiments, each standardised to unit scale.

Every dataset is a fixed *distribution*, not a fixed point cloud: `sample_toy2d(name, n, rng)`
draws `n` i.i.d. points from it. Each one is standardised to zero mean and unit standard
deviation per axis using its exact population moments (derived in closed form below), never the
moments of the batch at hand. Standardising by batch statistics would make every batch come from
a slightly different distribution, so a model sample and a fresh reference batch could not be
compared fairly; with population constants, any two batches are draws from the same law.

Only the per-axis scale is fixed: the axes are not decorrelated (the checkerboard, for example,
keeps its small positive correlation).

Two of the datasets are Gaussian mixtures ("gmm" and "8gaussians") and also come as a
`GaussianMixture2D` from `toy2d_mixture(name)`, with exact `log_prob`, `score`, and the mixture
reached by the diffusion forward process (`noised`), for exact checks elsewhere.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.special import logsumexp

# Shape parameters of the generated families (raw units, before standardisation).
MOONS_NOISE = 0.05
CIRCLES_NOISE = 0.05
CIRCLES_INNER_RADIUS = 0.5
SWISSROLL_T_RANGE = (1.5 * math.pi, 4.5 * math.pi)  # one and a half turns, as in sklearn
SWISSROLL_NOISE = 0.5                               # arms are 2*pi apart, so they stay separate
EIGHT_GAUSSIANS_STD = 0.125                         # relative to a ring of radius 1


def as_generator(rng: int | np.random.Generator) -> np.random.Generator:
    """A `numpy.random.Generator` from a Generator (used as is) or an int seed.

    `None` is refused on purpose: every draw in tinydiff is reproducible from a seed.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be an int seed or a numpy.random.Generator, got {type(rng).__name__}")


# --------------------------------------------------------------------------- Gaussian mixtures

def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)  # a private copy, so the caller's array can't alias ours
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class GaussianMixture2D:
    """A mixture of K bivariate normals: p(x) = sum_k w_k N(x; mu_k, Sigma_k).

    Attributes are read-only float64 arrays: `weights` (K,), `means` (K, 2), `covariances`
    (K, 2, 2). All methods work in float64 and accept points of shape (..., 2).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    _chol: np.ndarray = field(init=False, repr=False)  # Cholesky factors, set in __post_init__

    def __post_init__(self) -> None:
        w, mu, cov = _frozen(self.weights), _frozen(self.means), _frozen(self.covariances)
        k = w.shape[0] if w.ndim == 1 else -1
        if k < 1 or mu.shape != (k, 2) or cov.shape != (k, 2, 2):
            raise ValueError(f"need weights (K,), means (K, 2), covariances (K, 2, 2); got "
                             f"{w.shape}, {mu.shape}, {cov.shape}")
        if np.any(w <= 0) or not math.isclose(float(w.sum()), 1.0, abs_tol=1e-9):
            raise ValueError(f"weights must be positive and sum to 1, got {w}")
        if not np.allclose(cov, np.swapaxes(cov, 1, 2)):
            raise ValueError("covariances must be symmetric")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as exc:
            raise ValueError("covariances must be positive definite") from exc
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", mu)
        object.__setattr__(self, "covariances", cov)
        object.__setattr__(self, "_chol", _frozen(chol))

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    def mean(self) -> np.ndarray:
        """Mixture mean: sum_k w_k mu_k."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """Mixture covariance: sum_k w_k (Sigma_k + mu_k mu_k^T) - m m^T (law of total variance)."""
        m = self.mean()
        second = np.einsum("k,kij->ij", self.weights,
                           self.covariances + np.einsum("ki,kj->kij", self.means, self.means))
        return second - np.outer(m, m)

    def _component_log_probs(self, x: np.ndarray) -> np.ndarray:
        """log w_k + log N(x; mu_k, Sigma_k), shape (..., K)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1:] != (2,):
            raise ValueError(f"points must have shape (..., 2), got {x.shape}")
        diff = x[..., None, :] - self.means                      # (..., K, 2)
        # Solve L z = diff for the 2x2 lower-triangular L by forward substitution: exact and
        # vectorised over points and components, with no explicit inverse.
        l00, l10, l11 = self._chol[:, 0, 0], self._chol[:, 1, 0], self._chol[:, 1, 1]
        z0 = diff[..., 0] / l00
        z1 = (diff[..., 1] - l10 * z0) / l11
        log_det = np.log(l00) + np.log(l11)                      # = 0.5 log |Sigma_k|
        return np.log(self.weights) - 0.5 * (z0**2 + z1**2) - log_det - math.log(2 * math.pi)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log density at points `x` of shape (..., 2); returns shape (...)."""
        return logsumexp(self._component_log_probs(x), axis=-1)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Exact score grad_x log p(x), shape (..., 2).

        grad log p = sum_k r_k(x) Sigma_k^{-1} (mu_k - x), with responsibilities r_k(x).
        """
        x = np.asarray(x, dtype=np.float64)
        comp = self._component_log_probs(x)
        resp = np.exp(comp - logsumexp(comp, axis=-1, keepdims=True))     # (..., K)
        prec = np.linalg.inv(self.covariances)                              # (K, 2, 2)
        pulls = np.einsum("kij,...kj->...ki", prec, self.means - x[..., None, :])
        return np.einsum("...k,...ki->...i", resp, pulls)

    def noised(self, scale: float, noise_var: float) -> GaussianMixture2D:
        """The law of `scale * X + sqrt(noise_var) * eps` for X from this mixture, eps ~ N(0, I).

        Each component maps to N(scale mu_k, scale^2 Sigma_k + noise_var I). With
        scale = sqrt(alpha_bar_t) and noise_var = 1 - alpha_bar_t this is the exact DDPM
        forward marginal q(x_t), so its `score` is the ideal denoiser's target.
        """
        if noise_var < 0:
            raise ValueError(f"noise_var must be >= 0, got {noise_var}")
        return GaussianMixture2D(self.weights, scale * self.means,
                                 scale**2 * self.covariances + noise_var * np.eye(2))

    def sample(self, n: int, rng: int | np.random.Generator) -> np.ndarray:
        """`n` i.i.d. float64 draws, shape (n, 2)."""
        rng = as_generator(rng)
        comp = rng.choice(self.n_components, size=n, p=self.weights)
        z = rng.standard_normal((n, 2))
        return self.means[comp] + np.einsum("nij,nj->ni", self._chol[comp], z)


def _standardised(mix: GaussianMixture2D) -> GaussianMixture2D:
    """The same mixture affinely rescaled to exact zero mean and unit variance per axis."""
    m, s = mix.mean(), np.sqrt(np.diag(mix.covariance()))
    return GaussianMixture2D(mix.weights, (mix.means - m) / s, mix.covariances / np.outer(s, s))


def _rotated_cov(sx: float, sy: float, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([sx**2, sy**2]) @ rot.T


def _gmm_raw() -> GaussianMixture2D:
    # Unequal weights and rotated, anisotropic components, so that a model must get relative
    # masses and orientations right, not just locations.
    return GaussianMixture2D(
        weights=np.array([0.30, 0.25, 0.20, 0.15, 0.10]),
        means=np.array([[-2.0, -1.0], [2.0, -1.5], [0.0, 2.0], [-2.5, 2.5], [3.0, 2.0]]),
        covariances=np.stack([_rotated_cov(0.6, 0.3, 30), _rotated_cov(0.4, 0.4, 0),
                              _rotated_cov(0.8, 0.25, -45), _rotated_cov(0.3, 0.2, 60),
                              _rotated_cov(0.5, 0.35, 10)]),
    )


def _eight_gaussians_raw() -> GaussianMixture2D:
    angles = np.arange(8) * (np.pi / 4)
    means = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture2D(np.full(8, 1 / 8), means,
                             np.broadcast_to(EIGHT_GAUSSIANS_STD**2 * np.eye(2), (8, 2, 2)))


_MIXTURES: MappingProxyType[str, Callable[[], GaussianMixture2D]] = MappingProxyType(
    {"gmm": _gmm_raw, "8gaussians": _eight_gaussians_raw})


def toy2d_mixture(name: str = "gmm") -> GaussianMixture2D:
    """The standardised Gaussian mixture behind a mixture dataset ("gmm" or "8gaussians").

    Its parameters are exactly those that `sample_toy2d(name, ...)` draws from, so `log_prob`
    and `score` are exact for those samples. A fresh object each call (nothing shared).
    """
    if name not in _MIXTURES:
        raise ValueError(f"{name!r} is not a Gaussian-mixture toy dataset; "
                         f"valid names: {', '.join(_MIXTURES)}")
    return _standardised(_MIXTURES[name]())


# --------------------------------------------------------------------------- generated families
# Each returns float64 points already standardised with the closed-form population moments
# worked out in its comment, so the constants can be checked by hand (and are, in the tests, by
# large-sample moments).

def _standardise(points: np.ndarray, mean: tuple[float, float],
                 var: tuple[float, float]) -> np.ndarray:
    return (points - np.asarray(mean)) / np.sqrt(np.asarray(var))


# The moons' population moments (derived in _moons), by which its points are standardised.
MOONS_MEAN = (0.5, 0.25)
MOONS_VAR = (0.75 + MOONS_NOISE**2, 9 / 16 - 1 / math.pi + MOONS_NOISE**2)


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    # Upper moon (cos t, sin t), lower moon (1 - cos t, 1/2 - sin t), t ~ U[0, pi], each with
    # probability 1/2. With E cos t = 0, E sin t = 2/pi, E cos^2 = E sin^2 = 1/2:
    #   E x = 1/2,  E x^2 = (1/2 + 3/2)/2 = 1                 -> Var x = 3/4
    #   E y = 1/4,  E y^2 = (1/2 + 3/4 - 2/pi)/2 = 5/8 - 1/pi -> Var y = 9/16 - 1/pi
    # plus the isotropic noise variance on each axis.
    lower = rng.random(n) < 0.5
    t = rng.uniform(0.0, math.pi, n)
    x = np.where(lower, 1.0 - np.cos(t), np.cos(t))
    y = np.where(lower, 0.5 - np.sin(t), np.sin(t))
    pts = np.stack([x, y], axis=1) + MOONS_NOISE * rng.standard_normal((n, 2))
    return _standardise(pts, MOONS_MEAN, MOONS_VAR)


def _swissroll_moments(a: float, b: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Mean and variance of (t cos t, t sin t) for t ~ U[a, b], from exact antiderivatives."""
    def f1c(t: float) -> float:   # d/dt = t cos t
        return t * math.sin(t) + math.cos(t)

    def f1s(t: float) -> float:   # d/dt = t sin t
        return math.sin(t) - t * math.cos(t)

    def f2c(t: float) -> float:   # d/dt = t^2 cos^2 t
        return t**3 / 6 + (t**2 / 4 - 1 / 8) * math.sin(2 * t) + t * math.cos(2 * t) / 4

    def f2s(t: float) -> float:   # d/dt = t^2 sin^2 t
        return t**3 / 6 - (t**2 / 4 - 1 / 8) * math.sin(2 * t) - t * math.cos(2 * t) / 4

    length = b - a
    mx, my = (f1c(b) - f1c(a)) / length, (f1s(b) - f1s(a)) / length
    ex2, ey2 = (f2c(b) - f2c(a)) / length, (f2s(b) - f2s(a)) / length
    return (mx, my), (ex2 - mx**2, ey2 - my**2)


def _swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    # The 2D swiss roll (t cos t, t sin t), t ~ U[1.5 pi, 4.5 pi], uniform in t (as sklearn),
    # plus isotropic noise; moments of the curve from `_swissroll_moments`.
    a, b = SWISSROLL_T_RANGE
    t = rng.uniform(a, b, n)
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    pts += SWISSROLL_NOISE * rng.standard_normal((n, 2))
    mean, var = _swissroll_moments(a, b)
    v = SWISSROLL_NOISE**2
    return _standardise(pts, mean, (var[0] + v, var[1] + v))


def _circles(n: int, rng: np.random.Generator) -> np.ndarray:
    # Radius 1 or CIRCLES_INNER_RADIUS with probability 1/2, angle uniform: mean 0 and
    # E x^2 = E y^2 = E[r^2] / 2 = (1 + r_in^2) / 4, plus the noise variance.
    r = np.where(rng.random(n) < 0.5, CIRCLES_INNER_RADIUS, 1.0)
    phi = rng.uniform(0.0, 2 * math.pi, n)
    pts = r[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    pts += CIRCLES_NOISE * rng.standard_normal((n, 2))
    var = (1 + CIRCLES_INNER_RADIUS**2) / 4 + CIRCLES_NOISE**2
    return _standardise(pts, (0.0, 0.0), (var, var))


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    # Uniform on the 8 dark cells (i + j even) of a 4x4 board on [-2, 2]^2. x is uniform on
    # [-2, 2]; given column i the row is one of the two rows of matching parity, so overall the
    # row is uniform too: both marginals are U[-2, 2], mean 0, variance 16/12 = 4/3.
    x = rng.uniform(-2.0, 2.0, n)
    col = np.floor(x + 2.0).astype(np.int64)
    row = 2 * rng.integers(0, 2, n) + (col % 2)
    y = -2.0 + row + rng.random(n)
    return _standardise(np.stack([x, y], axis=1), (0.0, 0.0), (4 / 3, 4 / 3))


def _from_mixture(name: str) -> Callable[[int, np.random.Generator], np.ndarray]:
    def draw(n: int, rng: np.random.Generator) -> np.ndarray:
        return toy2d_mixture(name).sample(n, rng)
    return draw


_GENERATORS: MappingProxyType[str, Callable[[int, np.random.Generator], np.ndarray]] = \
    MappingProxyType({
        "moons": _moons,
        "swissroll": _swissroll,
        "8gaussians": _from_mixture("8gaussians"),
        "circles": _circles,
        "checkerboard": _checkerboard,
        "gmm": _from_mixture("gmm"),
    })

TOY2D_DATASETS: tuple[str, ...] = tuple(_GENERATORS)


def sample_toy2d(name: str, n: int, rng: int | np.random.Generator) -> np.ndarray:
    """Draw `n` i.i.d. points from the toy distribution `name`; float32 array of shape (n, 2).

    `rng` is a `numpy.random.Generator` (advanced by the draw) or an int seed; the same seed
    gives the same points. Names are listed in `TOY2D_DATASETS`; each distribution is
    standardised by its population moments (see the module docstring), so fresh batches are
    directly comparable with model samples.
    """
    if name not in _GENERATORS:
        raise ValueError(f"unknown toy 2D dataset {name!r}; valid names: {', '.join(TOY2D_DATASETS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return _GENERATORS[name](int(n), as_generator(rng)).astype(np.float32)
