"""Training a denoiser: DDPM's Algorithm 1 in a loop, with everything a real run needs around it.

One step (Ho et al. 2020, Algorithm 1):

    x_0 ~ data,  t ~ Uniform{0, ..., T-1},  eps ~ N(0, I)
        (or t_sampling="lognormal": ln sigma_t ~ N(-1.2, 1.2^2), EDM's training noise levels)
    x_t  = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    loss = || target - model(x_t, t[, y]) ||^2 / D          (target = eps, x_0 or v)
    gradient step on the loss (Adam/AdamW, linear LR warmup and optional cosine/linear decay,
    gradient-norm clipping),
    then theta_ema <- d theta_ema + (1 - d) theta.

For classifier-free guidance (Ho & Salimans 2022) a class-conditional model sees the null
label instead of the true one with probability ``p_uncond``, so one network learns both
eps(x_t, t, y) and eps(x_t, t).

Reproducibility. Every random draw comes from a seeded source whose state is checkpointed:
``autograd.random`` (parameter init, dropout), a NumPy Generator for the data (batches,
shuffling) and one for the diffusion (t, eps, label dropout). Resuming from a checkpoint
therefore continues the very same run: the loss curve of a resumed run equals the
uninterrupted one bit for bit (same machine and backend).

Safety. A non-finite loss or gradient norm stops the run with `TrainingDiverged`, naming the
step and the quantity, before the optimizer touches the weights; checkpoints are only ever
written from finite weights, atomically, so the last good one survives. Ctrl-C finishes the
current step, saves a checkpoint, and then raises KeyboardInterrupt (``TrainingInterrupted``);
SIGTERM does the same, so `kill` or a scheduler's stop loses no finished step. Temporaries that
a killed run left beside its files are removed when the next run in that folder starts.

More than one process. ``Trainer(config, dist=init_distributed())`` (``tinydiff.distributed``)
makes this one of K data-parallel ranks: it draws the whole global batch as above, computes
the loss and gradients of its 1/K slice, and all-reduces them before the shared optimizer step;
only rank 0 writes files.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import autograd.functional as F
import autograd.random as ag_random
from autograd.backend import to_device
from autograd.malloc import keep_freed_host_memory
from autograd.optim import Adam, AdamW, WarmupDecay, clip_grad_norm_
from autograd.tensor import Tensor
from tinydiff import distributed
from tinydiff.atomic import remove_stale_temporaries, sync, write_atomic
from tinydiff.checkpoint import CheckpointError, check_model_fits, load_checkpoint, save_checkpoint
from tinydiff.data.batches import make_batches
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.ema import EMA
from tinydiff.health import nonfinite_weights, sampling_is_finite
from tinydiff.losses import sample_timesteps, sample_timesteps_lognormal
from tinydiff.models import build_model
from tinydiff.run import (
    CHECKPOINT_NAME,
    LOG_COLUMNS,
    LOG_NAME,
    RESUMABLE_OVERRIDES,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    csv_line,
    format_log_row,
    is_log_row,
    sample_shape,
)
from tinydiff.samplers import sigmas_from_alphas_cumprod
from tinydiff.sampling import generate
from tinydiff.schedules import make_beta_schedule


class StepInfo(NamedTuple):
    """What one training step reports (to callbacks, the CSV log and the history)."""
    step: int          # steps completed, counting this one (1 after the first)
    loss: float
    lr: float          # the learning rate this step used
    grad_norm: float   # global gradient norm before clipping
    time: float        # seconds of training so far, summed over resumptions


Callback = Callable[["Trainer", StepInfo], Any]


class Trainer:
    """Trains ``config``'s model on ``config``'s data (see the module docstring).

    ``Trainer(config)`` builds everything from the seed; ``Trainer.resume(path)`` rebuilds it
    from a checkpoint. ``model`` and ``batches`` (an object with ``next_batch(rng) -> (x, y)``
    and ``state_dict``/``load_state_dict``) replace the ones the config describes. ``train()``
    runs until ``config.steps`` and returns the history of this call as a list of ``StepInfo``.
    ``callbacks`` are called after every step with ``(trainer, info)``, e.g. to draw samples now
    and then; raising KeyboardInterrupt in one stops training like Ctrl-C (checkpoint first). ``dist`` (from
    ``tinydiff.distributed.init_distributed()``) makes this one of K data-parallel processes,
    each computing its shard of every global batch (see ``tinydiff.distributed``).
    """

    def __init__(self, config: TrainConfig, callbacks: Iterable[Callback] = (),
                 model: Any = None, batches: Any = None, dist: Any = None) -> None:
        config.validate()
        if dist is not None:
            distributed.check_batch_split(config.batch_size, dist.size)
        self.dist = dist
        self.is_root = dist is None or dist.rank == 0  # only rank 0 prints and writes files
        keep_freed_host_memory()  # reuse freed arrays without page faults (see autograd/malloc.py)
        self.config = config
        self.callbacks = list(callbacks)
        self.out_dir = Path(config.out_dir)
        self.step = 0
        self.elapsed = 0.0          # seconds of training before the current train() call
        self.history: list[StepInfo] = []

        # One seed fixes the run: the engine's generator (init, dropout) and two streams
        # spawned from it, for the data and for the diffusion noise. Independent streams mean
        # that, e.g., changing the batch size does not reshuffle the noise of every later step.
        ag_random.manual_seed(config.seed)
        data_seed, noise_seed = np.random.SeedSequence(config.seed).spawn(2)
        self.data_rng = np.random.default_rng(data_seed)
        self.noise_rng = np.random.default_rng(noise_seed)

        self.diffusion = GaussianDiffusion(make_beta_schedule(config.schedule, config.timesteps))
        self._log_sigmas = np.log(sigmas_from_alphas_cumprod(self.diffusion.alphas_cumprod))  # lognormal t
        if model is None:
            model = build_model(config.model_config())
        elif hasattr(model, "get_config"):
            # Record the architecture actually trained, so that checkpoints rebuild it.
            config.model = {k: v for k, v in model.get_config().items() if k != "num_classes"}
        self.model = model
        self.model.to(config.device)
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self._make_optimizer()
        # A decay ends at config.steps; a resumed run given more steps decays to the new total.
        self.scheduler = WarmupDecay(self.optimizer, config.warmup_steps, int(config.steps),
                                     config.lr_schedule)
        self.ema = EMA(self.model, decay=config.ema_decay)
        self.batches = batches if batches is not None else make_batches(config)
        # The null label of classifier-free guidance is the extra class num_classes.
        self.null_label = getattr(self.model, "num_classes", None) if config.class_cond else None
        if config.class_cond and self.null_label is None:
            raise ValueError("class_cond=True needs a class-conditional model (built with num_classes)")
        self._noise: Any = None     # reused noise buffer (host)
        self._stop_requested: bool | int = False   # or the signal that asked to stop
        self._stop_agreed = False   # distributed: some rank asked to stop (agreed in the all-reduce)
        self._in_step = False       # True while a step is half done (then the state is not saved)
        self._clock: float | None = None  # perf_counter() at which self.seconds() was 0

    def _make_optimizer(self) -> Any:
        cfg = self.config
        cls = {"adam": Adam, "adamw": AdamW}[cfg.optimizer]
        return cls(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------------ one step

    def _draw(self) -> tuple[Any, Any, Any, Any]:
        """x_0, t, eps and labels of the next step, on the host: the only random draws of a step,
        always in this order."""
        x0, y = self.batches.next_batch(self.data_rng)
        batch, cfg = x0.shape[0], self.config
        if cfg.t_sampling == "lognormal":
            t = sample_timesteps_lognormal(self.noise_rng, batch, self._log_sigmas,
                                           cfg.lognormal_mean, cfg.lognormal_std)
        else:
            t = sample_timesteps(self.noise_rng, batch, cfg.timesteps)
        if self._noise is None or self._noise.shape != x0.shape or self._noise.dtype != x0.dtype:
            self._noise = np.empty(x0.shape, dtype=x0.dtype)
        noise = self.noise_rng.standard_normal(out=self._noise, dtype=self._noise.dtype)
        if y is not None and cfg.p_uncond > 0:
            drop = self.noise_rng.random(batch) < cfg.p_uncond
            y = np.where(drop, self.null_label, y)
        return x0, t, noise, y

    def _forward_backward(self) -> tuple[float, float, float]:
        """Loss and gradients of one batch (Algorithm 1, lines 2-5); returns the loss, the
        gradient norm before clipping, and the learning rate the update will use."""
        dev = self.config.device
        x0, t, noise, y = (None if a is None else to_device(a, dev) for a in self._shard(self._draw()))
        xt, target = self.diffusion.training_targets(x0, t, noise, self.config.parameterization)
        prediction = self.model(Tensor(xt), t, y)
        loss = F.mse_loss(prediction, Tensor(target))
        self.optimizer.zero_grad()
        loss.backward()
        loss_value = self._average_gradients(loss.item())
        grad_norm = clip_grad_norm_(self.params, self.config.grad_clip or math.inf)
        # clip_grad_norm_ returns the norm as a float and the loss comes to the host as one: on
        # a GPU these are the step's only synchronisations.
        return loss_value, float(grad_norm), self.scheduler.get_last_lr()[0]

    # ------------------------------------------------------------------ data parallelism

    def _shard(self, drawn: tuple[Any, ...]) -> tuple[Any, ...]:
        """This rank's rows of the global batch (all of it in one process); with K > 1 ranks,
        also reseeds the engine generator (dropout) for this (step, rank)."""
        if self.dist is None:
            return drawn
        if self.dist.size > 1:
            ag_random.manual_seed(distributed.dropout_seed(self.config.seed, self.step, self.dist.rank))
        rows = distributed.shard_slice(drawn[0].shape[0], self.dist.rank, self.dist.size)
        return tuple(None if a is None else a[rows] for a in drawn)

    def _average_gradients(self, loss: float) -> float:
        """All-reduce the gradients to their mean over the ranks; returns the global loss. The
        ranks also agree here on stopping (Ctrl-C on any of them), so they stop at one step."""
        if self.dist is None:
            return loss
        total = distributed.average_gradients(self.dist, self.params,
                                              [loss, float(self._stop_requested)])
        self._stop_agreed = bool(total[1] > 0)
        return float(total[0]) / self.dist.size

    def request_stop(self) -> None:
        """Stop after the current step, with a checkpoint, as a first Ctrl-C does. In a
        distributed run the ranks agree on it in the next all-reduce and all stop after the same
        step; there, a callback must call this instead of raising KeyboardInterrupt on one rank."""
        self._stop_requested = signal.SIGINT

    def _should_stop(self) -> bool:
        return self._stop_agreed if self.dist is not None else bool(self._stop_requested)

    def _check_ranks_agree(self, where: str) -> None:
        if self.dist is not None:
            distributed.check_identical(self.dist, self.model.state_dict(), where)

    def train_step(self) -> StepInfo:
        """One step of Algorithm 1; returns its StepInfo. Raises TrainingDiverged (weights untouched)
        if the loss or the gradient norm is not finite."""
        self._in_step = True
        # NumPy's overflow/invalid warnings are silenced for the step: the check below catches a
        # NaN or inf that matters (it reaches the loss or the gradients) and says where.
        with np.errstate(all="ignore"):
            loss_value, norm_value, lr = self._forward_backward()
            self._check_finite(loss_value, norm_value, lr)
            self.optimizer.step()
            self.scheduler.step()
            self.ema.update()
        self.step += 1
        self._in_step = False
        return StepInfo(self.step, loss_value, lr, norm_value, self.seconds())

    def _check_finite(self, loss: float, grad_norm: float, lr: float) -> None:
        step = self.step + 1
        for name, value in (("loss", loss), ("gradient norm", grad_norm)):
            if not math.isfinite(value):
                self._in_step = False  # nothing was updated: the state is still that of the last step
                where = (f" The last good checkpoint ({self.checkpoint_path}) is untouched."
                         if self.checkpoint_path.exists() else " No checkpoint was written.")
                raise TrainingDiverged(f"training diverged at step {step}: the {name} is {value} "
                                       f"(learning rate {lr:g}).{where}{self._advice()}")

    def seconds(self) -> float:
        """Seconds spent training so far, summed over every resumption of the run."""
        return self.elapsed if self._clock is None else time.perf_counter() - self._clock

    # ------------------------------------------------------------------ the loop

    def train(self, steps: int | None = None) -> list[StepInfo]:
        """Train until ``steps`` (default ``config.steps``) steps are done in all; returns this
        call's history. Saves a checkpoint every ``ckpt_every`` steps and at the end."""
        total = self.config.steps if steps is None else int(steps)
        cfg = self.config
        self._check_ranks_agree(f"at the start (step {self.step})")
        if self.is_root:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in (CHECKPOINT_NAME, LOG_NAME, "config.json"):
                remove_stale_temporaries(self.out_dir / name)
        self._write_config_json()
        log_file, log = self._open_log()
        bar = self._progress_bar(total)
        history: list[StepInfo] = []
        smooth: float | None = None
        self._clock = time.perf_counter() - self.elapsed
        previous_handler = self._install_sigint_handler()
        try:
            while self.step < total:
                info = self.train_step()
                history.append(info)
                if info.step % cfg.log_every == 0:
                    log.writerow(format_log_row(*info))
                if bar is not None:
                    # Show a smoothed loss: single-step losses jump with the random t of each batch.
                    smooth = info.loss if smooth is None else 0.95 * smooth + 0.05 * info.loss
                    bar.update(1)
                    if info.step % 10 == 0 or info.step == total:
                        bar.set_postfix_str(f"loss={smooth:.4f}", refresh=False)
                for callback in self.callbacks:
                    callback(self, info)
                if self._should_stop():
                    raise TrainingInterrupted(self._stop_requested or signal.SIGINT)
                if info.step % cfg.ckpt_every == 0 and info.step < total:
                    sync(log_file)  # the rows a checkpoint covers are on disk before it is
                    self.save()
            sync(log_file)
            self.save()
        except KeyboardInterrupt:
            sync(log_file)
            if self._in_step:
                # A second Ctrl-C (or one outside the main thread) cut a step short: the weights
                # may be half updated, so they are not saved.
                print(f"\nInterrupted inside step {self.step + 1}; not saving a half-updated state. "
                      f"The last checkpoint ({self.checkpoint_path}) is kept.", flush=True)
            else:
                # Between two steps: the state is consistent; save it, then let the caller stop.
                path = self.save()
                print(f"\nInterrupted after step {self.step}; checkpoint saved to {path}. "
                      f"Continue with --resume (or Trainer.resume).", flush=True)
            raise
        finally:
            self.elapsed = self.seconds()
            self._clock = None
            self._restore_sigint_handler(previous_handler)
            if bar is not None:
                bar.close()
            log_file.close()
            self.history.extend(history)
        return history

    def _progress_bar(self, total: int) -> Any:
        if not self.config.progress or not self.is_root:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True,
                    desc=f"train {self.config.task}")

    def _install_sigint_handler(self) -> Any:
        """Defer the first Ctrl-C or SIGTERM (what `kill`, a job scheduler or a closing terminal
        sends) to the end of the current step, where a checkpoint is saved; a second one stops
        at once. Returns the previous handlers."""
        if threading.current_thread() is not threading.main_thread():
            return None
        self._stop_requested = False

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise TrainingInterrupted(signum)
            self._stop_requested = signum
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            print(f"\n{name}: stopping after this step and saving a checkpoint "
                  "(send it again to stop at once, without saving)", flush=True)
        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_sigint_handler(previous: Any) -> None:
        for signum, old in (previous or {}).items():
            signal.signal(signum, old)

    # ------------------------------------------------------------------ logging

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_NAME

    def _open_log(self) -> tuple[Any, Any]:
        """Open loss.csv for appending. Rows up to the current step stay where they are on disk,
        so a crash at any moment (even right after a resume) loses none of them; rows past it
        (written by a run interrupted after its last checkpoint) and a row torn by a crash are
        dropped by an atomic rewrite first, since this run redoes those steps."""
        if not self.is_root:
            return _NullLog(), _NullLog()
        path = self.log_path
        header = csv_line(LOG_COLUMNS)
        text = header
        if self.step > 0 and path.exists():
            with open(path, newline="") as f:
                lines = f.read().splitlines(keepends=True)
            text = header + "".join(line for line in lines[1:] if is_log_row(line, self.step))
        if not path.exists() or path.read_bytes() != text.encode():
            write_atomic(path, text.encode())
        f = open(path, "a", newline="")
        return f, csv.writer(f)

    def _write_config_json(self) -> None:
        if not self.is_root:
            return
        text = json.dumps(self.config.to_dict(), indent=2) + "\n"
        write_atomic(self.out_dir / "config.json", text.encode())

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def state_dict(self) -> dict[str, Any]:
        """The complete training state: enough to continue the run exactly."""
        return {
            "step": self.step,
            "elapsed": self.seconds(),
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"autograd": ag_random.get_rng_state(),
                    "data": self.data_rng.bit_generator.state,
                    "noise": self.noise_rng.bit_generator.state},
            "data": self.batches.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ag_random.set_rng_state(state["rng"]["autograd"])
        self.data_rng.bit_generator.state = state["rng"]["data"]
        self.noise_rng.bit_generator.state = state["rng"]["noise"]
        self.batches.load_state_dict(state["data"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the training state to ``path`` (default ``out_dir/checkpoint.npz``), atomically.

        Refuses (TrainingDiverged) to save non-finite weights, so a checkpoint is always good.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        self._check_weights_finite()
        self._check_ranks_agree(f"at the checkpoint of step {self.step}")
        if not self.is_root:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.state_dict(), path)
        return path

    def _check_weights_finite(self) -> None:
        """Refuse to save a state that is not good (``tinydiff.health``): NaN or inf weights, or
        weights (raw or EMA) whose samples are not finite, as after a blow-up to 1e6."""
        kept = (f"the last good checkpoint ({self.checkpoint_path}) is kept"
                if self.checkpoint_path.exists() else "no checkpoint was written")
        for source, arrays in (("parameter", self.model.state_dict()), ("EMA weight", self.ema.shadow)):
            name = nonfinite_weights(arrays)
            if name is not None:
                raise TrainingDiverged(f"not saving a checkpoint after step {self.step}: {source} "
                                       f"{name!r} holds NaN or inf; {kept}.{self._advice()}")
        was_training = self.model.training
        try:
            for source in ("raw", "EMA"):
                if source == "EMA":
                    with self.ema.swapped_into(self.model):
                        ok = self._samples_finite()
                else:
                    ok = self._samples_finite()
                if not ok:
                    raise TrainingDiverged(f"not saving a checkpoint after step {self.step}: samples "
                                           f"from the {source} weights are NaN or inf (the weights "
                                           f"blew up); {kept}.{self._advice()}")
        finally:
            self.model.train(was_training)

    def _samples_finite(self) -> bool:
        # The shape of the data actually trained on (batches may stand in for the config's).
        shape = self._noise.shape[1:] if self._noise is not None else sample_shape(self.config)
        return sampling_is_finite(self.model, self.diffusion, shape,
                                  parameterization=self.config.parameterization,
                                  device=self.config.device, num_classes=self.null_label)

    def _advice(self) -> str:
        """What to do after a divergence: a resumed run keeps its settings, so start a new one."""
        cfg = self.config
        return (f" Start a new run (another --out) with a smaller --lr (it was {cfg.lr:g}; try "
                f"{cfg.lr / 10:g}), a longer --warmup-steps or --grad-clip 1.")

    @classmethod
    def resume(cls, path: str | os.PathLike, callbacks: Iterable[Callback] = (),
               model: Any = None, batches: Any = None, dist: Any = None, **overrides: Any) -> Trainer:
        """Rebuild a trainer from a checkpoint file (or a run folder holding checkpoint.npz).

        ``overrides`` may change only settings that leave the run itself unchanged
        (``RESUMABLE_OVERRIDES``: steps, device, out_dir, progress, ...). ``model`` and
        ``batches`` stand in for those the config would build, and ``dist`` joins a distributed
        run (any number of processes), as in ``Trainer(...)``.
        """
        path = Path(path)
        if path.is_dir():
            path = path / CHECKPOINT_NAME
        state = load_checkpoint(path)
        saved = dict(state["config"])
        changed = {k: v for k, v in overrides.items() if saved.get(k, object()) != v}
        refused = sorted(set(changed) - RESUMABLE_OVERRIDES)
        if refused:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {overrides[k]!r}" for k in refused)
            raise ValueError(f"cannot resume {path} with different settings ({details}); a resumed "
                             f"run keeps its configuration (only {', '.join(sorted(RESUMABLE_OVERRIDES))} "
                             f"may change)")
        if "out_dir" not in overrides:
            saved["out_dir"] = str(path.parent)
        try:
            config = TrainConfig.from_dict({**saved, **changed})
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: its saved config is invalid: {exc}") from None
        if model is None:
            check_model_fits(path, config.model_config(), state)
        trainer = cls(config, callbacks=callbacks, model=model, batches=batches, dist=dist)
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: its state does not fit the run its config describes: "
                                  f"{' '.join(str(exc).split())}") from None
        return trainer

    # ------------------------------------------------------------------ sampling hook

    def sample(self, n: int, **kwargs: Any) -> Any:
        """``n`` samples from the EMA weights (keyword arguments: see ``tinydiff.sampling.generate``)."""
        was_training = self.model.training
        try:
            with self.ema.swapped_into(self.model):
                return generate(self.model, self.diffusion, n, sample_shape(self.config),
                                parameterization=self.config.parameterization,
                                device=self.config.device, **kwargs)
        finally:
            self.model.train(was_training)


class _NullLog:
    """The loss log of a rank other than 0: accepts rows and writes nothing."""

    def writerow(self, row: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _format_row(info: StepInfo) -> list[Any]:
    return [info.step, repr(info.loss), f"{info.lr:.6g}", f"{info.grad_norm:.6g}", f"{info.time:.3f}"]
