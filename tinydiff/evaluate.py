"""How good is a trained model? Sample-quality numbers for toy 2D and MNIST checkpoints.

Toy 2D. Samples are compared with *fresh* draws from the true distribution by the sliced
2-Wasserstein distance (``tinydiff.metrics.sliced_wasserstein``, many projections) and by the
multi-scale RBF MMD^2. Neither is zero for two finite samples of one distribution, so each is
printed beside its *floor*: the same metric between two fresh data samples of the same size.
A model is as good as the metric can tell when its value is at the floor; the ratio
``model / floor`` says how far above it is (sliced W2 only: MMD^2's floor is ~0 and may be
negative, so its ratio means nothing). Both are averaged over a few independent reference
draws, which keeps the floor from being one lucky or unlucky number.

MNIST. A small CNN (``tinydiff.models.MNISTClassifier``), trained once with this same engine and
cached (``classifier_path``), judges generated digits:

- FID on its 128 penultimate features, generated images against the 10,000 test images
  (Heusel et al. 2017, with this classifier in place of Inception: comparable only between
  runs scored with the same classifier);
- the class histogram of the generated digits and their mean confidence (the mean of the
  classifier's top probability); for a class-conditional model also how often the classifier
  agrees with the requested label;
- NLL in bits/dim on a subset of the test set: the full variational bound of DDPM's eq. 5 over
  all T terms (``GaussianDiffusion.calc_bpd_loop``);
- sampling speed in images/s for DDPM (all T steps) and DDIM-50.

``evaluate_checkpoint(path, n=..., sampler=..., ...)`` runs the right set for a checkpoint and
prints it (the ``tinydiff eval`` command, which hands on its options as keyword arguments); the
functions below it are usable on their own.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import autograd.random as ag_random
from autograd.backend import to_device, to_numpy
from autograd.serialization import CheckpointError, load, save
from autograd.tensor import Tensor, no_grad
from tinydiff.data import mnist  # the module, so that tests can stand in for mnist.load_mnist
from tinydiff.data.toy2d import sample_toy2d
from tinydiff.defaults import (
    DEFAULT_GUIDANCE,
    EVAL_ETA,
    EVAL_SAMPLER,
    EVAL_STEPS,
    balanced_labels,
    clips_x0,
    default_eta,
    default_spacing,
)
from tinydiff.likelihood import mnist_ode_bpd, toy2d_ode_nll
from tinydiff.metrics import MMD_BANDWIDTH_MULTIPLIERS, fid_from_features, median_bandwidth, mmd_rbf, sliced_wasserstein
from tinydiff.models import MNISTClassifier, build_model, classifier_accuracy, fit_classifier
from tinydiff.models.fit import config_misfit
from tinydiff.run import CHECKPOINT_NAME, LoadedRun, load_run, sample_shape
from tinydiff.samplers import model_evaluations
from tinydiff.sampling import generate, model_fn_for

CLASSIFIER_FILE = "mnist_classifier.npz"
CLASSIFIER_KIND = "tinydiff.mnist_classifier"
CLASSIFIER_VERSION = 1

TOY_N = 4000                 # points per sample: sliced W2's floor then sits well below model errors
TOY_PROJECTIONS = 1000       # random directions of the sliced W2 estimate
# reference draws averaged over: one floor is noisy (benchmarks/results/tinydiff-measurements.md#the-toy-metrics-floor)
TOY_REPEATS = 5
TOY_MMD_N = 2000             # MMD is O(n^2): computed on at most this many points, first draw only
MNIST_FID_N = 10_000         # generated images for the FID (the test set has 10,000)
MNIST_BPD_N = 100            # test images for the bits/dim bound (each costs T model calls)
SPEED_RUNS = (("ddpm", None, 16), ("ddim", 50, 64))   # (sampler, steps, images in one batch)


# =========================================================================== toy 2D

@dataclass
class ToyMetrics:
    """Sample quality of 2D points against the true distribution, with the data-vs-data floors."""
    dataset: str
    n: int                   # points per sample
    sw: float                # sliced W2(samples, fresh data), mean over the repeats
    sw_floor: float          # sliced W2(fresh data, fresh data): what a perfect model scores
    sw_floor_range: tuple[float, float]   # smallest and largest floor over the repeats
    mmd2: float              # unbiased MMD^2(samples, fresh data), first reference draw
    mmd2_floor: float        # unbiased MMD^2(fresh data, fresh data), ~0
    mmd_n: int               # points per sample in the MMD
    repeats: int

    @property
    def sw_ratio(self) -> float:
        """How many times the floor the model's sliced W2 is (1 = indistinguishable from data)."""
        return self.sw / self.sw_floor

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sw_ratio": self.sw_ratio}

    def report(self) -> str:
        return (f"{self.dataset}, {self.n} points, mean of {self.repeats} fresh reference draws:\n"
                f"  sliced W2   model {self.sw:.4f}   data-vs-data floor {self.sw_floor:.4f} "
                f"(single draws {self.sw_floor_range[0]:.4f}-{self.sw_floor_range[1]:.4f})   "
                f"ratio {self.sw_ratio:.2f}\n"
                f"  MMD^2 x 1e3 model {1e3 * self.mmd2:.3f}   data-vs-data floor "
                f"{1e3 * self.mmd2_floor:.3f}   ({self.mmd_n} points, first draw)")


def reference_draws(dataset: str, n: int, seed: int = 0, repeats: int = TOY_REPEATS
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``repeats`` pairs (reference, perfect) of independent fresh data samples of size ``n``.

    Seeded from (seed, r) and constants of their own, so they never coincide with a training
    stream (seeds 0, 1, ...) and the same arguments always give the same points.
    """
    return [(sample_toy2d(dataset, n, np.random.default_rng([seed, r, 7919])),
             sample_toy2d(dataset, n, np.random.default_rng([seed, r, 104729])))
            for r in range(repeats)]


def toy2d_metrics(samples: Any, dataset: str, seed: int = 0, n_projections: int = TOY_PROJECTIONS,
                  repeats: int = TOY_REPEATS) -> ToyMetrics:
    """Compare ``samples`` (n, 2) with fresh draws of ``dataset``, and two fresh draws with each other.

    For each of ``repeats`` pairs (R_r, D_r) of fresh data samples of size n
    (``reference_draws``), the model's samples are scored against the reference R_r, and the
    stand-in "perfect model" D_r against R_r gives the floor. Both use the same projections, so
    their difference is not noise from the projection draw. The MMD kernel scales are fixed
    from the data (median heuristic on R_0, D_0) so that the model and the floor are measured
    with the same kernel; being O(n^2), MMD uses the first ``TOY_MMD_N`` points of the first
    pair only.
    """
    x = np.asarray(to_numpy(samples), dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) < 2:
        raise ValueError(f"toy2d_metrics: expected samples of shape (n >= 2, 2), got {x.shape}")
    if repeats < 1:
        raise ValueError(f"toy2d_metrics: repeats must be >= 1, got {repeats}")
    n = len(x)
    draws = reference_draws(dataset, n, seed, repeats)
    sw = [sliced_wasserstein(x, ref, n_projections, rng=seed + r) for r, (ref, _) in enumerate(draws)]
    sw_floor = [sliced_wasserstein(perfect, ref, n_projections, rng=seed + r)
                for r, (ref, perfect) in enumerate(draws)]
    m = min(n, TOY_MMD_N)
    reference, perfect = draws[0][0][:m], draws[0][1][:m]
    bandwidths = median_bandwidth(reference, perfect) * np.asarray(MMD_BANDWIDTH_MULTIPLIERS)
    return ToyMetrics(dataset, n, float(np.mean(sw)), float(np.mean(sw_floor)),
                      (float(np.min(sw_floor)), float(np.max(sw_floor))),
                      mmd_rbf(x[:m], reference, bandwidths), mmd_rbf(perfect, reference, bandwidths),
                      m, repeats)


def pool_toy_draws(per_draw: Sequence[ToyMetrics]) -> dict[str, Any]:
    """Several independent draws as one figure: the mean model sliced W2 over the mean floor,
    the floor's range over every draw, and each draw's own ratio, sliced W2 and floor beside
    them (so that any subset of the draws can be pooled again)."""
    sw = float(np.mean([m.sw for m in per_draw]))
    floor = float(np.mean([m.sw_floor for m in per_draw]))
    return {"sw": sw, "sw_floor": floor, "sw_ratio": sw / floor,
            "sw_floor_range": (min(m.sw_floor_range[0] for m in per_draw),
                               max(m.sw_floor_range[1] for m in per_draw)),
            "draws": len(per_draw), "draw_sw_ratios": [m.sw_ratio for m in per_draw],
            "draw_sw": [m.sw for m in per_draw], "draw_sw_floor": [m.sw_floor for m in per_draw]}


# =========================================================================== the MNIST classifier

def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinydiff`` (an absolute XDG_CACHE_HOME only, per the spec), else
    ``~/.cache/tinydiff``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tinydiff"


def classifier_path(path: str | os.PathLike | None = None) -> Path:
    """Where the MNIST classifier lives: ``path`` if given, else ``cache_dir()/mnist_classifier.npz``."""
    return Path(path) if path is not None else cache_dir() / CLASSIFIER_FILE


def train_classifier(data_dir: str | os.PathLike | None = None, epochs: int = 3, lr: float = 1e-3,
                     seed: int = 0, progress: bool = True,
                     subset: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Train ``MNISTClassifier`` on the MNIST training set (the first ``subset`` images if given);
    returns the model (eval mode) and a dict of facts about it, including its test accuracy."""

    images, labels = mnist.load_mnist("train", data_dir=data_dir, progress=progress)
    test_images, test_labels = mnist.load_mnist("test", data_dir=data_dir, progress=progress)
    if subset is not None:
        images, labels = images[:subset], labels[:subset]
        test_images, test_labels = test_images[:subset], test_labels[:subset]
    ag_random.manual_seed(seed)
    model = MNISTClassifier()
    start = time.perf_counter()
    losses = fit_classifier(model, images, labels, epochs=epochs, lr=lr, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    accuracy = classifier_accuracy(model, test_images, test_labels)
    info = {"test_accuracy": float(accuracy), "test_images": int(len(test_images)),
            "train_images": int(len(images)), "epochs": epochs, "lr": lr, "seed": seed,
            "final_loss": float(np.mean(losses[-50:])), "train_seconds": round(seconds, 1)}
    return model, info


def save_classifier(model: Any, info: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the classifier's architecture, weights and ``info`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save({"kind": CLASSIFIER_KIND, "version": CLASSIFIER_VERSION, "config": model.get_config(),
          "state": model.state_dict(), "info": dict(info)}, path)
    return path


def load_classifier(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild a saved classifier, loading its weights strictly (every parameter, nothing else)."""
    state = load(path)
    if not isinstance(state, dict) or state.get("kind") != CLASSIFIER_KIND:
        raise CheckpointError(f"{path}: not an MNIST classifier file (kind "
                              f"{state.get('kind') if isinstance(state, dict) else None!r})")
    if state.get("version") != CLASSIFIER_VERSION:
        raise CheckpointError(f"{path}: classifier file version {state.get('version')!r} is not supported")
    weights, config = state.get("state"), state.get("config")
    if not isinstance(weights, dict) or not isinstance(config, dict):
        raise CheckpointError(f"{path}: not an MNIST classifier file (no config and weights)")
    why = config_misfit(config, {k: tuple(getattr(w, "shape", ())) for k, w in weights.items()})
    if why is not None:   # checked before building: a crafted config must not cost gigabytes
        raise CheckpointError(f"{path}: its config does not fit its weights: {why}; delete the "
                              f"file to train a new one")
    model = build_model(config)
    try:
        model.load_state_dict(state["state"], strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:   # RuntimeError: missing/unexpected keys
        raise CheckpointError(f"{path}: the weights do not fit the classifier: {exc}; delete the file "
                              f"to train a new one") from None
    model.to(device)
    model.eval()
    return model, dict(state["info"])


def get_classifier(path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
                   device: str = "cpu", progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """The MNIST classifier at ``classifier_path(path)``, trained (``train_classifier``) and
    saved there first if the file does not exist yet: it is trained once per machine."""
    path = classifier_path(path)
    if not path.exists():
        print(f"No MNIST classifier at {path}: training one (once; later runs load it)", flush=True)
        model, info = train_classifier(data_dir=data_dir, progress=progress)
        save_classifier(model, info, path)
        print(f"Saved the classifier ({100 * info['test_accuracy']:.2f}% test accuracy) to {path}",
              flush=True)
    return load_classifier(path, device=device)


@no_grad()
def classify(model: Any, images: Any, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, 128) and class probabilities (N, 10) of images in [-1, 1]."""
    device = next(iter(model.parameters())).device
    model.eval()
    feats, probs = [], []
    for lo in range(0, len(images), batch_size):
        x = Tensor(to_device(np.asarray(images[lo:lo + batch_size], dtype=np.float32), device))
        f = model.features(x)
        logits = to_numpy(model.head(f).data).astype(np.float64)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs.append(p / p.sum(axis=1, keepdims=True))
        feats.append(to_numpy(f.data))
    return np.concatenate(feats), np.concatenate(probs)


# =========================================================================== MNIST metrics

@dataclass
class DigitMetrics:
    """What the classifier says about a set of generated digits."""
    n: int
    histogram: list[float]          # fraction of the samples per predicted class 0..9
    mean_confidence: float          # mean top probability
    label_agreement: float | None   # class-conditional: fraction classified as the requested label
    fid: float | None               # vs the test set's features (None if not computed)

    def report(self) -> str:
        lines = ["  classes (%)      " + " ".join(f"{d}:{100 * h:4.1f}" for d, h in enumerate(self.histogram)),
                 f"  smallest class   {100 * min(self.histogram):.1f}%",
                 f"  mean confidence  {self.mean_confidence:.3f}"]
        if self.label_agreement is not None:
            lines.append(f"  label agreement  {100 * self.label_agreement:.1f}% "
                         f"(classified as the requested digit)")
        if self.fid is not None:
            lines.append(f"  FID (classifier features, vs the test images)  {self.fid:.2f}")
        return "\n".join(lines)


def digit_metrics(probs: np.ndarray, features: np.ndarray | None = None,
                  reference_features: np.ndarray | None = None,
                  labels: Sequence[int] | np.ndarray | None = None) -> DigitMetrics:
    """Class histogram, mean confidence (and label agreement, FID) from classifier outputs."""
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    hist = np.bincount(pred, minlength=probs.shape[1]) / len(pred)
    agreement = None if labels is None else float(np.mean(pred == np.asarray(labels)))
    fid = None
    if features is not None and reference_features is not None:
        fid = fid_from_features(features, reference_features)
    return DigitMetrics(len(pred), [float(h) for h in hist], float(probs.max(axis=1).mean()),
                        agreement, fid)


def mnist_fid_floor(classifier: Any, train_images: Any, test_features: np.ndarray, n: int,
                    seed: int = 0) -> float:
    """The FID a perfect model would get with ``n`` images: ``n`` real training digits (drawn
    with ``seed``) against the test set's features (FID is biased upwards at small n)."""
    pick = np.random.default_rng(seed).choice(len(train_images), min(n, len(train_images)), replace=False)
    return fid_from_features(classify(classifier, train_images[pick])[0], test_features)


def mnist_bpd(run: LoadedRun, images: Any, labels: Any = None, seed: int = 0, batch_size: int = 100,
              progress: bool = False, device: str = "cpu", clip_x0: bool = True) -> dict[str, float]:
    """Mean NLL bound in bits/dim of ``images`` under a loaded run (all T terms of eq. 5).

    ``labels``: condition a class-conditional model on them (None: the null label, i.e. the
    unconditional model, for a class-conditional run trained with label dropout). ``clip_x0``
    clips x_0_hat to [-1, 1] in each reverse mean, as improved-diffusion's image NLL does.
    Returns the mean, its standard error over the images, the prior term and n.
    """
    if device == "cuda":
        import cupy  # noise on the GPU, next to the model
        rng = cupy.random.default_rng(seed)
    else:
        rng = np.random.default_rng(seed)
    totals, priors = [], []
    with no_grad():
        for lo in range(0, len(images), batch_size):
            x0 = to_device(np.asarray(images[lo:lo + batch_size], dtype=np.float32), device)
            y = None if labels is None else to_device(np.asarray(labels[lo:lo + batch_size]), device)
            out = run.diffusion.calc_bpd_loop(model_fn_for(run.model, y), x0, rng=rng,
                                              progress=progress, clip_x0=clip_x0,
                                              parameterization=run.config.parameterization)
            totals.append(to_numpy(out["total_bpd"]))
            priors.append(to_numpy(out["prior_bpd"]))
    total = np.concatenate(totals)
    return {"bpd": float(total.mean()), "bpd_sem": float(total.std(ddof=1) / math.sqrt(len(total)))
            if len(total) > 1 else float("nan"), "prior_bpd": float(np.concatenate(priors).mean()),
            "n": int(len(total))}


def sampling_speed(run: LoadedRun, sampler: str, steps: int | None, n: int, labels: Any = None,
                   guidance: float = 1.0, device: str = "cpu") -> float:
    """Images per second of ``n`` images drawn in one batch."""
    result = generate(run.model, run.diffusion, n, sample_shape(run.config), sampler=sampler,
                      steps=steps, labels=labels, guidance=guidance, batch_size=n, seed=0,
                      device=device, parameterization=run.config.parameterization,
                      clip_x0=clips_x0(run.config.task))
    return result.per_second


# =========================================================================== the eval command

def evaluate_checkpoint(path: str | os.PathLike, *, sampler: str = EVAL_SAMPLER,
                        steps: int | None = None, eta: float | None = None, n: int | None = None,
                        seed: int = 0, device: str = "cpu",
                        data_dir: str | os.PathLike | None = None,
                        out: str | os.PathLike | None = None,
                        classifier: str | os.PathLike | None = None, guidance: float | None = None,
                        bpd_n: int = MNIST_BPD_N, speed: bool = True, unconditional: bool = False,
                        progress: bool = True, spacing: str | None = None, sigmas: str | None = None,
                        nll: str = "vlb", nll_steps: int | None = None,
                        nll_n: int | None = None, draws: int = 1) -> dict[str, Any]:
    """``tinydiff eval``: the metrics of a checkpoint (or its run folder), printed, returned as a
    dict and (with ``out``) saved as JSON.

    ``sampler``, ``steps`` and ``eta`` (default ``EVAL_STEPS`` and ``EVAL_ETA`` of the task),
    ``spacing``, ``sigmas`` and ``seed`` pick how the ``n`` evaluated samples are drawn (default
    ``TOY_N`` points or ``MNIST_FID_N`` images). MNIST only: ``classifier`` (file, trained there
    once if missing), ``data_dir``, ``guidance`` (class-conditional; default ``DEFAULT_GUIDANCE``),
    ``unconditional`` (sample with the null label), ``bpd_n`` test images for the bits/dim
    bound (0 skips it), ``speed`` (time DDPM and DDIM-50). ``nll="ode"`` adds the exact
    probability-flow likelihood over ``nll_n`` points or images with ``nll_steps`` Heun steps.
    Toy 2D only: ``draws`` independent sample draws (seeds ``seed``, ``seed + 1``, ...), each
    against its own fresh references; ``sw`` and ``sw_floor`` are then their means, since one
    draw of a few thousand points moves the ratio by up to 2x (docs/recipes.md).
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"evaluate: draws must be an int >= 1, got {draws!r}")
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    run = load_run(path, device=device)
    if eta is None:
        eta = default_eta(EVAL_ETA, run.config.task, sampler)
    opt = _Options(sampler=sampler, steps=steps, eta=eta, n=n, seed=seed, device=device,
                   data_dir=data_dir, out=out, classifier=classifier, guidance=guidance,
                   bpd_n=bpd_n, speed=speed, unconditional=unconditional, progress=progress,
                   spacing=spacing, sigmas=sigmas, nll=nll, nll_steps=nll_steps, nll_n=nll_n, draws=draws)
    if draws > 1 and run.config.task != "toy2d":
        raise ValueError(f"evaluate: draws > 1 is for toy2d checkpoints; {path} is {run.config.task} "
                         f"(its FID already pools {MNIST_FID_N} images)")
    print(f"Evaluating {path} (step {run.step}, EMA weights, {run.config.task})", flush=True)
    if run.config.task == "toy2d":
        result = _evaluate_toy(run, opt)
    else:
        result = _evaluate_mnist(run, opt)
    result = {"checkpoint": str(path), "step": run.step, **result}
    if opt.out:
        out_path = Path(opt.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"Metrics: {out_path}")
    return result


@dataclass(frozen=True)
class _Options:
    """The keyword arguments of ``evaluate_checkpoint``, handed on together (defaults: there)."""
    sampler: str
    steps: int | None
    eta: float
    n: int | None
    seed: int
    device: str
    data_dir: str | os.PathLike | None
    out: str | os.PathLike | None
    classifier: str | os.PathLike | None
    guidance: float | None
    bpd_n: int
    speed: bool
    unconditional: bool
    progress: bool
    spacing: str | None
    sigmas: str | None
    nll: str
    nll_steps: int | None
    nll_n: int | None
    draws: int


def _sampler_steps(opt: _Options, T: int, default: int) -> int | None:
    if opt.sampler == "ddpm":
        return None
    return min(T, opt.steps if opt.steps is not None else default)


def _describe(sampler: str, steps: int | None, T: int, eta: float, spacing: str | None = None,
              sigmas: str | None = None) -> str:
    if sampler not in ("ddpm", "ddim") and steps is not None:   # an ODE sampler always has steps
        levels = f"{sigmas} sigmas" if sigmas else f"{spacing or default_spacing(sampler)} spacing"
        return f"{sampler} ({steps} steps, {levels}, {model_evaluations(sampler, steps)} model calls)"
    return f"DDPM ({T} steps)" if sampler == "ddpm" else f"DDIM ({steps} steps, eta={eta:g})"


def _evaluate_toy(run: LoadedRun, opt: _Options) -> dict[str, Any]:
    T = run.config.timesteps
    steps = _sampler_steps(opt, T, default=EVAL_STEPS["toy2d"])
    n = TOY_N if opt.n is None else opt.n   # 0 is an error below, not the default
    what = _describe(opt.sampler, steps, T, opt.eta, opt.spacing, opt.sigmas)
    per_draw = []
    for seed in range(opt.seed, opt.seed + opt.draws):   # draw k: its own noise and references
        result = generate(run.model, run.diffusion, n, sample_shape(run.config), sampler=opt.sampler,
                          steps=steps, eta=opt.eta, seed=seed, batch_size=n, device=opt.device,
                          parameterization=run.config.parameterization, spacing=opt.spacing,
                          sigmas=opt.sigmas)
        per_draw.append(toy2d_metrics(result.samples, run.config.dataset, seed=seed))
    metrics = per_draw[0]
    print(f"Samples: {what}, {result.per_second:.0f} points/s")
    print(metrics.report())
    out = {"task": "toy2d", "sampler": what, **metrics.as_dict()}
    if opt.draws > 1:
        pooled = pool_toy_draws(per_draw)
        print(f"  {opt.draws} draws (seeds {opt.seed}-{opt.seed + opt.draws - 1}): sliced W2 ratio "
              f"{pooled['sw_ratio']:.2f} (mean model {pooled['sw']:.4f} / mean floor "
              f"{pooled['sw_floor']:.4f}); single draws "
              + " ".join(f"{r:.2f}" for r in pooled["draw_sw_ratios"]))
        out.update(pooled)
    if opt.nll == "ode":
        nll = toy2d_ode_nll(run, n=opt.nll_n or 1000, steps=opt.nll_steps or 100, seed=opt.seed,
                            progress=opt.progress)
        truth = (f"; the true mixture density gives {nll['true_nll_nats']:.4f}"
                 if "true_nll_nats" in nll else "")
        print(f"  ODE NLL ({nll['n']} fresh points, exact trace, {nll['evaluations']} model calls): "
              f"{nll['nll_nats']:.4f} +- {nll['nll_sem']:.4f} nats/point = {nll['bits_per_dim']:.4f} "
              f"bits/dim{truth}", flush=True)
        out["nll_ode"] = nll
    return out


def _evaluate_mnist(run: LoadedRun, opt: _Options) -> dict[str, Any]:

    cfg, T = run.config, run.config.timesteps
    classifier, info = get_classifier(opt.classifier, data_dir=opt.data_dir, device=opt.device,
                                      progress=opt.progress)
    print(f"Classifier: {classifier_path(opt.classifier)} ({100 * info['test_accuracy']:.2f}% test "
          f"accuracy)", flush=True)
    test_images, test_labels = mnist.load_mnist("test", data_dir=opt.data_dir, progress=opt.progress)
    test_features, _ = classify(classifier, test_images)

    steps = _sampler_steps(opt, T, default=EVAL_STEPS["mnist"])
    n = MNIST_FID_N if opt.n is None else opt.n
    conditional = cfg.class_cond and not opt.unconditional
    guidance = (opt.guidance if opt.guidance is not None else DEFAULT_GUIDANCE) if conditional else 1.0
    labels = balanced_labels(n) if conditional else None
    what = _describe(opt.sampler, steps, T, opt.eta, opt.spacing, opt.sigmas)
    mode = (f"class-conditional, labels 0-9 equally often, guidance {guidance:g}" if conditional
            else "unconditional" + (" (null label)" if cfg.class_cond else ""))
    print(f"Generating {n} images: {what}, x_0_hat clipped to [-1, 1], {mode}", flush=True)
    result = generate(run.model, run.diffusion, n, sample_shape(cfg), sampler=opt.sampler,
                      steps=steps, eta=opt.eta, labels=labels, guidance=guidance,
                      batch_size=500, seed=opt.seed, device=opt.device, clip_x0=clips_x0(cfg.task),
                      parameterization=cfg.parameterization, progress=opt.progress,
                      spacing=opt.spacing, sigmas=opt.sigmas)
    print(f"  {n} images in {result.seconds:.0f} s ({result.per_second:.2f} images/s)", flush=True)
    features, probs = classify(classifier, result.samples)
    digits = digit_metrics(probs, features, test_features, labels)
    print(digits.report(), flush=True)
    train_images, _ = mnist.load_mnist("train", data_dir=opt.data_dir, progress=opt.progress)
    fid_floor = mnist_fid_floor(classifier, train_images, test_features, n, seed=opt.seed)
    print(f"  FID floor: {min(n, len(train_images))} training images vs the test images  {fid_floor:.2f}",
          flush=True)
    out: dict[str, Any] = {"task": "mnist", "sampler": what, "mode": mode, "guidance": guidance,
                           "generation_seconds": result.seconds, "fid_floor": fid_floor,
                           "classifier_test_accuracy": info["test_accuracy"], **asdict(digits)}

    if opt.bpd_n > 0:
        k = min(opt.bpd_n, len(test_images))
        print(f"NLL bound on the first {k} test images, all {T} terms (unconditional"
              f"{' / null label' if cfg.class_cond else ''})...", flush=True)
        bpd = mnist_bpd(run, test_images[:k], seed=opt.seed, progress=opt.progress, device=opt.device)
        print(f"  {bpd['bpd']:.3f} +- {bpd['bpd_sem']:.3f} bits/dim (of which prior "
              f"{bpd['prior_bpd']:.2g})", flush=True)
        out["bpd"] = bpd
    if opt.nll == "ode":
        k = min(opt.nll_n or 20, len(test_images))
        steps_nll = opt.nll_steps or 400  # fewer had not converged (docs/diffusion.md#exact-likelihood-through-the-ode)
        print(f"ODE bits/dim on the first {k} test images (Hutchinson trace, dequantised, "
              f"{2 * steps_nll} model calls each; unconditional"
              f"{' / null label' if cfg.class_cond else ''})...", flush=True)
        ode = mnist_ode_bpd(run, test_images[:k], steps=steps_nll, seed=opt.seed, progress=opt.progress)
        print(f"  {ode['bpd']:.3f} +- {ode['bpd_sem']:.3f} bits/dim (ODE), beside the VLB bound above",
              flush=True)
        out["bpd_ode"] = ode
    if opt.speed:
        speed = {}
        for sampler, sample_steps, count in SPEED_RUNS:
            speed[f"{_describe(sampler, sample_steps, T, 0.0)}, batch {count}"] = sampling_speed(
                run, sampler, sample_steps, count, labels=balanced_labels(count) if conditional else None,
                guidance=guidance, device=opt.device)
        for name, rate in speed.items():
            print(f"  speed {name}: {rate:.2f} images/s", flush=True)
        out["images_per_second"] = speed
    return out

