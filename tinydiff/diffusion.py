"""The Gaussian diffusion process of DDPM (Ho et al. 2020, arXiv 2006.11239), on plain arrays.

Conventions (shared with the rest of tinydiff):

- Schedules have length T and are 0-indexed: code index ``t`` in 0..T-1 is the paper's t+1, so
  ``alphas_cumprod[t] = prod(alphas[:t+1])`` is the paper's alpha_bar_{t+1} and
  ``alphas_cumprod_prev[0] = 1`` (alpha_bar_0: no noise yet).
- A ``t`` argument is a Python/NumPy int or an integer array of shape (B,) that indexes the first
  axis of ``x`` (shape (B, ...)).
- Coefficients are computed once, in float64 NumPy, in ``__init__`` (names follow improved-diffusion's
  ``gaussian_diffusion.py``), and are cast to the backend (NumPy or CuPy) and dtype of the inputs when
  used, so results keep the backend and dtype of their inputs.

Nothing here needs the autograd: a model is any function of arrays.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autograd.backend import get_array_module, to_numpy
from tinydiff import samplers as ode
from tinydiff import vlb
from tinydiff.schedules import DEFAULT_SPACING, ddim_timesteps, validate_betas

Array = Any  # numpy.ndarray or cupy.ndarray
ModelFn = Callable[[Array, Array], Array]

VARIANCES = ("fixed_large", "fixed_small")
PARAMETERIZATIONS = ("eps", "x0", "v")
SAMPLERS = ("ddpm", "ddim") + ode.ODE_SAMPLERS


class GaussianDiffusion:
    """Forward process q, its posterior, the reverse steps of DDPM/DDIM and the full-chain samplers.

    ``GaussianDiffusion(betas)`` takes the betas of any schedule (see ``tinydiff.schedules``). All
    coefficient arrays are float64 NumPy arrays of shape (T,) and are read-only.
    """

    def __init__(self, betas: Any) -> None:
        betas = validate_betas(to_numpy(betas)).copy()
        T = betas.shape[0]
        self.num_timesteps = T

        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)                       # alpha_bar_t
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])  # alpha_bar_{t-1}
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)   # alpha_bar_{t+1}

        # q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)   (eq. 4)
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.one_minus_alphas_cumprod = 1.0 - self.alphas_cumprod
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(self.one_minus_alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(self.one_minus_alphas_cumprod)
        # x_0 = x_t / sqrt(alpha_bar_t) - sqrt(1/alpha_bar_t - 1) eps   (eq. 4 solved for x_0)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        # (1 - a) / a, not improved-diffusion's 1/a - 1: the same 1 - a as q_sample, so that
        # x_0 -> x_t -> x_0 round-trips to a few ulps even when a is within 1e-6 of 1.
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(self.one_minus_alphas_cumprod / self.alphas_cumprod)

        # q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, beta_tilde_t I)   (eqs. 6-7)
        self.posterior_variance = (
            betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod))
        # beta_tilde at code t = 0 is exactly 0 (x_0 is known given x_1 and x_0); its log would be
        # -inf, so improved-diffusion repeats the next value there. Only log-likelihoods use it.
        first = self.posterior_variance[1] if T > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = (
            betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod))
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(self.alphas) / (1.0 - self.alphas_cumprod))

        # Reverse mean in eps form, mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        # (eq. 11; Algorithm 2 line 4).
        self.sqrt_recip_alphas = 1.0 / np.sqrt(self.alphas)
        self.betas_over_sqrt_one_minus_alphas_cumprod = betas / self.sqrt_one_minus_alphas_cumprod

        # Reverse variances sigma_t^2 (sec. 3.2): "fixed_large" = beta_t, "fixed_small" = beta_tilde_t.
        # At t = 0 the sampler adds no noise, so sigma_0 only matters for the decoder likelihood;
        # there fixed_large uses beta_tilde of the next step, as DDPM's code does, for a better
        # decoder log-likelihood (beta_1 would also be finite but is looser).
        self.fixed_large_log_variance = np.log(np.append(first, betas[1:]))

        # DDIM looks up alpha_bar at t_prev = -1 too (alpha_bar = 1): store it at index t_prev + 1.
        self.alphas_cumprod_from_minus1 = np.append(1.0, self.alphas_cumprod)

        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)  # the backend cache below relies on them never changing
        self._cache: dict[tuple, Array] = {}

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        return (f"GaussianDiffusion(T={self.num_timesteps}, betas={self.betas[0]:.3g}.."
                f"{self.betas[-1]:.3g})")

    def _coefficient(self, name: str, like: Array) -> Array:
        """The float64 NumPy coefficient ``name``, cast to the backend and dtype of ``like`` (cached)."""
        xp = get_array_module(like)
        device = getattr(getattr(like, "device", None), "id", None)  # a CuPy device; None on NumPy
        key = (name, xp.__name__, device, like.dtype.str)
        arr = self._cache.get(key)
        if arr is None:
            host = getattr(self, name)
            arr = host.astype(like.dtype) if xp is np else xp.asarray(host, dtype=like.dtype)
            self._cache[key] = arr
        return arr

    def _extract(self, name: str, t: int | Array, x: Array, offset: int = 0) -> Array:
        """Coefficient ``name`` at ``t + offset``, shaped to broadcast against ``x`` (B, ...)."""
        coef = self._coefficient(name, x)[t + offset]
        if isinstance(t, int):
            return coef  # 0-d: broadcasts against any x
        return coef.reshape((-1,) + (1,) * (x.ndim - 1))

    def check_timesteps(self, t: Any, x: Array, method: str = "check_timesteps", name: str = "t",
                        low: int = 0) -> int | Array:
        """Validate a timestep: an int, or an integer array of shape (B,) on ``x``'s backend.

        The range is checked explicitly: NumPy would index from the end for -1, and CuPy silently
        wraps any out-of-range index, so a bad t would give plausible-looking garbage.
        """
        T = self.num_timesteps
        valid = f"the valid range {low}..{T - 1} (T={T})"
        if isinstance(t, (bool, np.bool_)):
            raise TypeError(f"{method}: {name} must be an integer timestep, not a bool")
        if isinstance(t, (int, np.integer)):
            if not low <= int(t) < T:
                raise ValueError(f"{method}: {name}={int(t)} is outside {valid}")
            return int(t)
        if isinstance(t, (float, np.floating)):
            raise TypeError(f"{method}: {name} must be an integer timestep; got the float {t!r}")
        xp = get_array_module(x)
        if get_array_module(t) is not xp and xp is np:
            raise TypeError(f"{method}: {name} is a GPU array but x is a NumPy array; "
                            "move them to the same device")
        arr = xp.asarray(t)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{method}: {name} must hold integers; got dtype {arr.dtype}")
        if arr.ndim == 0:
            return self.check_timesteps(int(arr), x, method, name, low)
        if arr.shape != (x.shape[0],):
            raise ValueError(f"{method}: {name} must have shape (B,) = ({x.shape[0]},) to match "
                             f"x of shape {tuple(x.shape)}; got shape {tuple(arr.shape)}")
        if arr.size:
            lo, hi = int(arr.min()), int(arr.max())  # one small device sync on CuPy
            if lo < low or hi >= T:
                raise ValueError(f"{method}: {name} has values in {lo}..{hi}, outside {valid}")
        return arr

    @staticmethod
    def _check_arrays(method: str, **arrays: Array) -> Array:
        """All arrays share backend, dtype and shape (B, ...) with a floating dtype; returns the first."""
        (ref_name, ref), *others = arrays.items()
        if not hasattr(ref, "dtype") or not hasattr(ref, "shape"):
            raise TypeError(f"{method}: {ref_name} must be a NumPy or CuPy array; got {type(ref).__name__}")
        if ref.ndim < 1:
            raise ValueError(f"{method}: {ref_name} must have shape (B, ...); got a 0-d array")
        if ref.dtype.kind != "f":
            raise TypeError(f"{method}: {ref_name} must be a floating array; got dtype {ref.dtype}")
        xp = get_array_module(ref)
        for name, arr in others:
            if not hasattr(arr, "dtype") or not hasattr(arr, "shape"):
                raise TypeError(f"{method}: {name} must be an array like {ref_name}; "
                                f"got {type(arr).__name__}")
            if get_array_module(arr) is not xp:
                raise TypeError(f"{method}: {name} ({type(arr).__module__}.{type(arr).__name__}) "
                                f"is not on the same backend as {ref_name} ({xp.__name__})")
            if arr.shape != ref.shape:
                raise ValueError(f"{method}: {name} has shape {tuple(arr.shape)} but {ref_name} "
                                 f"has shape {tuple(ref.shape)}; they must match")
            if arr.dtype != ref.dtype:
                raise TypeError(f"{method}: {name} has dtype {arr.dtype} but {ref_name} has "
                                f"dtype {ref.dtype}; they must match")
        return ref

    # ------------------------------------------------------------------ forward process q

    def q_mean_variance(self, x0: Array, t: int | Array) -> tuple[Array, Array]:
        """Mean and variance of q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)  (DDPM eq. 4).

        The variance is returned with the full shape of ``x0``.
        """
        self._check_arrays("q_mean_variance", x0=x0)
        t = self.check_timesteps(t, x0, "q_mean_variance")
        xp = get_array_module(x0)
        mean = self._extract("sqrt_alphas_cumprod", t, x0) * x0
        variance = self._extract("one_minus_alphas_cumprod", t, x0) * xp.ones_like(x0)
        return mean, variance

    def q_sample(self, x0: Array, t: int | Array, noise: Array) -> Array:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, a draw from q(x_t | x_0)  (eq. 4;
        Algorithm 1 line 5), with ``noise`` = eps ~ N(0, I) of the same shape as ``x0``."""
        self._check_arrays("q_sample", x0=x0, noise=noise)
        t = self.check_timesteps(t, x0, "q_sample")
        return (self._extract("sqrt_alphas_cumprod", t, x0) * x0
                + self._extract("sqrt_one_minus_alphas_cumprod", t, x0) * noise)

    def q_posterior_mean_variance(self, x0: Array, xt: Array, t: int | Array) -> tuple[Array, Array]:
        """Mean and variance of q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde_t I)  (DDPM eqs. 6-7):
        mu_tilde = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t,
        beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t."""
        mean, variance, _ = self.q_posterior(x0, xt, t, "q_posterior_mean_variance")
        return mean, variance * get_array_module(x0).ones_like(x0)

    def q_posterior(self, x0: Array, xt: Array, t: int | Array,
                     method: str = "q_posterior") -> tuple[Array, Array, Array]:
        """(mu_tilde, beta_tilde_t, log beta_tilde_t) of eqs. 6-7, the variances shaped to broadcast
        against x0; the log variance is clipped at t = 0 (see ``posterior_log_variance_clipped``)."""
        self._check_arrays(method, x0=x0, xt=xt)
        t = self.check_timesteps(t, x0, method)
        mean = (self._extract("posterior_mean_coef1", t, x0) * x0
                + self._extract("posterior_mean_coef2", t, x0) * xt)
        return (mean, self._extract("posterior_variance", t, x0),
                self._extract("posterior_log_variance_clipped", t, x0))

    # ------------------------------------------------------------------ eps / x0 / v

    def predict_x0_from_eps(self, xt: Array, t: int | Array, eps: Array) -> Array:
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)  (eq. 4 solved for x_0; eq. 15)."""
        self._check_arrays("predict_x0_from_eps", xt=xt, eps=eps)
        t = self.check_timesteps(t, xt, "predict_x0_from_eps")
        return (self._extract("sqrt_recip_alphas_cumprod", t, xt) * xt
                - self._extract("sqrt_recipm1_alphas_cumprod", t, xt) * eps)

    def predict_eps_from_x0(self, xt: Array, t: int | Array, x0: Array) -> Array:
        """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)  (eq. 4 solved for eps)."""
        self._check_arrays("predict_eps_from_x0", xt=xt, x0=x0)
        t = self.check_timesteps(t, xt, "predict_eps_from_x0")
        return ((self._extract("sqrt_recip_alphas_cumprod", t, xt) * xt - x0)
                / self._extract("sqrt_recipm1_alphas_cumprod", t, xt))

    def get_v(self, x0: Array, eps: Array, t: int | Array) -> Array:
        """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0  (Salimans & Ho 2022, arXiv 2202.00512,
        sec. 4): the velocity of x_t = cos(phi) x_0 + sin(phi) eps along the angle phi."""
        self._check_arrays("get_v", x0=x0, eps=eps)
        t = self.check_timesteps(t, x0, "get_v")
        return (self._extract("sqrt_alphas_cumprod", t, x0) * eps
                - self._extract("sqrt_one_minus_alphas_cumprod", t, x0) * x0)

    predict_v = get_v  # the name used by some codebases; same function

    def predict_x0_from_v(self, xt: Array, t: int | Array, v: Array) -> Array:
        """x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v  (Salimans & Ho 2022, sec. 4)."""
        self._check_arrays("predict_x0_from_v", xt=xt, v=v)
        t = self.check_timesteps(t, xt, "predict_x0_from_v")
        return (self._extract("sqrt_alphas_cumprod", t, xt) * xt
                - self._extract("sqrt_one_minus_alphas_cumprod", t, xt) * v)

    def predict_eps_from_v(self, xt: Array, t: int | Array, v: Array) -> Array:
        """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v  (Salimans & Ho 2022, sec. 4)."""
        self._check_arrays("predict_eps_from_v", xt=xt, v=v)
        t = self.check_timesteps(t, xt, "predict_eps_from_v")
        return (self._extract("sqrt_one_minus_alphas_cumprod", t, xt) * xt
                + self._extract("sqrt_alphas_cumprod", t, xt) * v)

    def eps_from_model_output(self, output: Array, xt: Array, t: int | Array,
                              parameterization: str = "eps") -> Array:
        """The eps prediction implied by a model that outputs ``parameterization`` ("eps", "x0", "v")."""
        if parameterization == "eps":
            self._check_arrays("eps_from_model_output", xt=xt, output=output)
            return output
        if parameterization == "x0":
            return self.predict_eps_from_x0(xt, t, output)
        if parameterization == "v":
            return self.predict_eps_from_v(xt, t, output)
        raise ValueError(f"unknown parameterization {parameterization!r}; "
                         f"valid ones are {', '.join(PARAMETERIZATIONS)}")

    # ------------------------------------------------------------------ training (Algorithm 1)

    def training_targets(self, x0: Array, t: int | Array, noise: Array,
                         parameterization: str = "eps") -> tuple[Array, Array]:
        """(x_t, target) for the simple loss || target - model(x_t, t) ||^2  (Algorithm 1; eq. 14).

        The target is eps for "eps" (DDPM's L_simple), x_0 for "x0", and
        v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 for "v" (Salimans & Ho 2022).
        Feed x_t to the model and compare with ``tinydiff.losses.simple_loss``.
        """
        xt = self.q_sample(x0, t, noise)
        if parameterization == "eps":
            return xt, noise
        if parameterization == "x0":
            return xt, x0
        if parameterization == "v":
            return xt, self.get_v(x0, noise, t)
        raise ValueError(f"unknown parameterization {parameterization!r}; "
                         f"valid ones are {', '.join(PARAMETERIZATIONS)}")

    # ------------------------------------------------------------------ reverse process p

    def p_mean_variance(self, eps: Array, xt: Array, t: int | Array, variance: str = "fixed_large",
                        clip_x0: bool = False) -> tuple[Array, Array, Array]:
        """Mean, variance and log variance of p(x_{t-1} | x_t) given the model's eps  (eqs. 1, 11).

        mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)  (eq. 11); with ``clip_x0`` the
        mean is instead mu_tilde(clip(x0_hat, -1, 1), x_t) (eq. 7), as improved-diffusion samples.
        Variance sigma_t^2 = beta_t ("fixed_large") or beta_tilde_t ("fixed_small"), sec. 3.2.
        Variances broadcast against ``xt`` (shape (B, 1, ...) or 0-d).
        """
        self._check_arrays("p_mean_variance", xt=xt, eps=eps)
        t = self.check_timesteps(t, xt, "p_mean_variance")
        if clip_x0:
            xp = get_array_module(xt)
            x0 = xp.clip(self.predict_x0_from_eps(xt, t, eps), -1.0, 1.0)
            mean, _, _ = self.q_posterior(x0, xt, t, "p_mean_variance")
        else:
            mean = self._extract("sqrt_recip_alphas", t, xt) * (
                xt - self._extract("betas_over_sqrt_one_minus_alphas_cumprod", t, xt) * eps)
        if variance == "fixed_large":
            var, log_var = self._extract("betas", t, xt), self._extract("fixed_large_log_variance", t, xt)
        elif variance == "fixed_small":
            var = self._extract("posterior_variance", t, xt)
            log_var = self._extract("posterior_log_variance_clipped", t, xt)
        else:
            raise ValueError(f"unknown variance {variance!r}; valid ones are {', '.join(VARIANCES)}")
        return mean, var, log_var

    def p_sample_step(self, eps: Array, xt: Array, t: int | Array, noise: Array | None,
                      variance: str = "fixed_large", clip_x0: bool = False) -> Array:
        """One ancestral step x_t -> x_{t-1} (Algorithm 2, line 4):
        x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z.

        ``noise`` is z ~ N(0, I); it is ignored where t == 0 (the last step returns the mean), and
        ``noise=None`` returns the mean everywhere.
        """
        mean, var, _ = self.p_mean_variance(eps, xt, t, variance, clip_x0)
        if noise is None:
            return mean
        self._check_arrays("p_sample_step", xt=xt, noise=noise)
        xp = get_array_module(xt)
        t = self.check_timesteps(t, xt, "p_sample_step")
        if isinstance(t, int):
            return mean + xp.sqrt(var) * noise if t > 0 else mean
        keep = (t > 0).astype(xt.dtype).reshape((-1,) + (1,) * (xt.ndim - 1))
        return mean + keep * xp.sqrt(var) * noise

    def ddim_step(self, eps: Array, xt: Array, t: int | Array, t_prev: int | Array, eta: float = 0.0,
                  noise: Array | None = None, clip_x0: bool = False) -> Array:
        """One DDIM step x_t -> x_{t_prev}  (DDIM, arXiv 2010.02502, eq. 12):
        x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps + sigma z, with a = alpha_bar,
        x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) and
        sigma = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)  (eq. 16).

        ``t_prev = -1`` means a_prev = 1 (the step that lands on x_0). eta = 0 is the deterministic
        DDIM ODE step, valid in either direction (t_prev > t runs the inversion x_t -> x_{t_prev});
        eta = 1 with t_prev = t - 1 is DDPM's ancestral step with sigma^2 = beta_tilde_t.
        """
        self._check_arrays("ddim_step", xt=xt, eps=eps)
        t = self.check_timesteps(t, xt, "ddim_step")
        t_prev = self.check_timesteps(t_prev, xt, "ddim_step", name="t_prev", low=-1)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"ddim_step: eta must be in [0, 1]; got {eta!r}")
        xp = get_array_module(xt)
        x0 = self.predict_x0_from_eps(xt, t, eps)
        if clip_x0:
            x0 = xp.clip(x0, -1.0, 1.0)
            eps = self.predict_eps_from_x0(xt, t, x0)  # keep eps consistent with the clipped x0
        a_t = self._extract("alphas_cumprod", t, xt)
        a_prev = self._extract("alphas_cumprod_from_minus1", t_prev, xt, offset=1)
        if eta == 0.0:
            return xp.sqrt(a_prev) * x0 + xp.sqrt(1.0 - a_prev) * eps
        if bool(xp.any(xp.asarray(t_prev) >= xp.asarray(t))):
            raise ValueError("ddim_step: eta > 0 needs t_prev < t (a stochastic step only goes backwards)")
        if noise is None:
            raise ValueError("ddim_step: eta > 0 needs noise (z ~ N(0, I) of the shape of xt)")
        self._check_arrays("ddim_step", xt=xt, noise=noise)
        sigma2 = eta ** 2 * (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)
        # 1 - a_prev - sigma^2 >= 0 exactly for eta <= 1; clip the rounding error at a_prev -> 1.
        direction = xp.sqrt(xp.maximum(1.0 - a_prev - sigma2, 0.0)) * eps
        return xp.sqrt(a_prev) * x0 + direction + xp.sqrt(sigma2) * noise

    # ------------------------------------------------------------------ full-chain samplers

    def sample(self, model_fn: ModelFn, shape: Sequence[int], sampler: str = "ddpm",
               steps: int | None = None, eta: float = 0.0, rng: Any = None,
               variance: str = "fixed_large", clip_x0: bool = False, return_trajectory: bool = False,
               progress: bool = False, *, x_T: Array | None = None,
               timesteps: Sequence[int] | None = None, dtype: Any = None,
               parameterization: str = "eps", spacing: str | None = None,
               sigmas: str | None = None) -> Array | tuple[Array, list[Array]]:
        """Draw samples by running the reverse chain from x_T ~ N(0, I).

        - ``"ddpm"``: Algorithm 2, t = T-1, ..., 0 (code indices), ``variance`` and ``clip_x0`` as in
          ``p_sample_step``; all T steps (``steps`` must be None or T).
        - ``"ddim"``: eq. 12 along ``timesteps`` (increasing; default
          ``ddim_timesteps(T, steps, spacing)``, i.e. ``spaced_timesteps`` reversed, with
          ``spacing`` "leading", "trailing" or "linspace" (the default); all T if ``steps`` is
          None), stepping tau[i] -> tau[i-1] and finally tau[0] -> -1.
        - ``"euler"``, ``"heun"``, ``"dpmpp_2m"``: the probability-flow ODE (``tinydiff.samplers``)
          over ``steps`` noise levels, sigma_t at ``spaced_timesteps(T, steps, spacing)`` (default
          spacing "trailing": see ``tinydiff.samplers.DEFAULT_ODE_SPACING``) or
          ``sigmas="karras"`` (Karras eq. 5) or ``"exponential"`` (evenly spaced in log sigma),
          then sigma = 0; euler and dpmpp_2m call the model ``steps`` times, heun 2 steps - 1
          times. With karras or exponential sigmas the model gets float64 t; ``sigmas`` may also
          be an explicit list ending at 0 (``tinydiff.samplers.get_sigmas``). ``"dpmpp_3m"`` and
          ``"unipc"`` are the third-order few-step solvers, ``steps`` calls each.
          ``"euler_ancestral"`` (optional extra) is the same walk with DDPM's noise (eta = 1).

        ``model_fn(x_t, t)`` gets an int64 array t of shape (B,) and returns the prediction named by
        ``parameterization`` with the shape and dtype of x_t. ``rng`` is a ``numpy.random.Generator``
        (or a CuPy one, which makes the samples CuPy arrays); noise is ``rng.standard_normal``.
        ``x_T`` fixes the starting noise. ``dtype`` defaults to x_T's, else float64. With
        ``return_trajectory`` it returns (x_0, [x_T, ..., x_0]).
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; valid ones are {', '.join(SAMPLERS)}")
        shape = tuple(int(n) for n in shape)
        xp = get_array_module(x_T) if x_T is not None else _rng_backend(rng)
        if rng is None:
            rng = xp.random.default_rng()
        elif _rng_backend(rng) is not xp:
            raise TypeError(f"sample: rng draws {_rng_backend(rng).__name__} arrays but x_T is a "
                            f"{xp.__name__} array; pass a generator of the same backend")
        if x_T is None:
            x = rng.standard_normal(shape, dtype=np.dtype(dtype or np.float64))
        else:
            if tuple(x_T.shape) != shape:
                raise ValueError(f"sample: x_T has shape {tuple(x_T.shape)} but shape is {shape}")
            if dtype is not None and np.dtype(dtype) != x_T.dtype:
                raise TypeError(f"sample: x_T has dtype {x_T.dtype} but dtype={np.dtype(dtype)}")
            x = x_T
        batch = shape[0]

        if sampler in ode.ODE_SAMPLERS:
            if timesteps is not None or eta != 0.0:
                raise ValueError(f"sample: {sampler!r} is deterministic on spaced or karras sigmas; "
                                 "timesteps and eta only apply to 'ddim'")
            return ode.sample_ode(model_fn, self.alphas_cumprod, x, sampler, steps, spacing=spacing,
                                  sigmas=sigmas, parameterization=parameterization,
                                  clip_x0=clip_x0, progress=progress,
                                  return_trajectory=return_trajectory, rng=rng)
        if sigmas is not None:
            raise ValueError(f"sample: sigmas={sigmas!r} needs an ODE sampler "
                             f"({', '.join(ode.ODE_SAMPLERS)}); {sampler!r} walks integer timesteps")
        if sampler == "ddpm":
            if steps is not None and steps != self.num_timesteps:
                raise ValueError(f"sample: the DDPM sampler walks all T={self.num_timesteps} steps; "
                                 f"got steps={steps}. Use sampler='ddim' for fewer steps.")
            if timesteps is not None or spacing is not None:
                raise ValueError("sample: timesteps and spacing only apply to samplers that walk a "
                                 "subsequence of the T steps (not 'ddpm')")
            pairs = [(t, t - 1) for t in range(self.num_timesteps - 1, -1, -1)]
        else:
            seq = self._ddim_sequence(steps, timesteps, spacing)
            pairs = [(seq[i], seq[i - 1] if i > 0 else -1) for i in range(len(seq) - 1, -1, -1)]

        trajectory = [x] if return_trajectory else None
        iterator = pairs
        if progress:
            from tqdm.auto import tqdm  # only needed for the bar
            iterator = tqdm(pairs, desc=f"{sampler} sampling", total=len(pairs))
        for t, t_prev in iterator:
            t_batch = xp.full((batch,), t, dtype=xp.int64)
            # the model sees an array t; the library's own lookups use the int (no device sync)
            eps = self.eps_from_model_output(model_fn(x, t_batch), x, t, parameterization)
            if sampler == "ddpm":
                noise = rng.standard_normal(shape, dtype=x.dtype) if t > 0 else None
                x = self.p_sample_step(eps, x, t, noise, variance=variance, clip_x0=clip_x0)
            else:
                noise = rng.standard_normal(shape, dtype=x.dtype) if eta > 0 else None
                x = self.ddim_step(eps, x, t, t_prev, eta=eta, noise=noise, clip_x0=clip_x0)
            if trajectory is not None:
                trajectory.append(x)
        return (x, trajectory) if trajectory is not None else x

    def _ddim_sequence(self, steps: int | None, timesteps: Sequence[int] | None,
                       spacing: str | None = None) -> list[int]:
        T = self.num_timesteps
        if timesteps is None:
            return [int(t) for t in ddim_timesteps(T, T if steps is None else steps,
                                                   spacing or DEFAULT_SPACING)]
        if spacing is not None:
            raise ValueError("sample: pass either timesteps or spacing, not both")
        seq = [int(t) for t in to_numpy(timesteps).reshape(-1)]
        if not seq or any(b <= a for a, b in zip(seq, seq[1:])) or seq[0] < 0 or seq[-1] >= T:
            raise ValueError(f"sample: timesteps must be strictly increasing values in 0..{T - 1}; "
                             f"got {seq}")
        if steps is not None and steps != len(seq):
            raise ValueError(f"sample: steps={steps} disagrees with len(timesteps)={len(seq)}")
        return seq

    # ------------------------------------------------------------------ variational bound (eq. 5)

    def prior_bpd(self, x0: Array) -> Array:
        """L_T = KL(q(x_T | x_0) || N(0, I)) in bits per dimension, shape (B,)  (DDPM eq. 5)."""
        return vlb.prior_bpd(self, x0)

    def vb_terms_bpd(self, eps_pred: Array, x0: Array, xt: Array, t: int | Array,
                     variance: str = "fixed_large", clip_x0: bool = False) -> Array:
        """L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0 and the decoder NLL
        L_0 = -log p(x_0|x_1) at t = 0, in bits per dimension, shape (B,)  (DDPM eq. 5, sec. 3.3)."""
        return vlb.vb_terms_bpd(self, eps_pred, x0, xt, t, variance=variance, clip_x0=clip_x0)

    def calc_bpd_loop(self, model_fn: ModelFn, x0: Array, rng: Any = None,
                      variance: str = "fixed_large", clip_x0: bool = False,
                      progress: bool = False, parameterization: str = "eps") -> dict[str, Array]:
        """The whole bound L = L_T + sum_t L_{t-1} + L_0 in bits/dim per sample (DDPM eq. 5, Table 1);
        see ``tinydiff.vlb.calc_bpd_loop``."""
        return vlb.calc_bpd_loop(self, model_fn, x0, rng=rng, variance=variance, clip_x0=clip_x0,
                                 progress=progress, parameterization=parameterization)


def _rng_backend(rng: Any):
    """numpy for a NumPy Generator (or None), cupy for a CuPy generator."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np
    if type(rng).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    raise TypeError(f"rng must be a numpy.random.Generator or a cupy.random.Generator; "
                    f"got {type(rng).__name__}")
