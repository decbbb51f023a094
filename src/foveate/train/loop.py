"""The training loop every pipeline shares.

A pipeline supplies a :class:`Task` (model, per-unit loss, validation) and its config; the
:class:`Trainer` owns everything else: the sampler and its feedback, the optimiser and
schedule, mixed precision, clipping, validation, logging, checkpoints and resume. One step::

    ids, weights = sampler.sample(batch_size, step)
    per_unit = task.per_unit_loss(ids)                 # (B,), one loss per unit
    sampler.update(ids, per_unit.detach(), step)       # feedback, no host sync
    (weights * per_unit).mean().backward(); optimiser.step(); scheduler.step()
"""

from __future__ import annotations

import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from foveate.sampling import STRATEGIES, Sampler

from .checkpoint import CHECKPOINT_FORMAT, atomic_save, capture_rng, link_or_copy, load_checkpoint, restore_rng
from .config import SamplingConfig, check_resume_compatible, config_to_dict, save_config_yaml
from .metrics import psnr_from_mse
from .runlog import RunLog
from .schedules import make_scheduler

__all__ = [
    "Task",
    "TrainResult",
    "Trainer",
    "Validation",
    "make_sampler",
    "seed_everything",
    "select_device",
]


@dataclass
class Validation:
    """What a task's validation returns: scalar metrics and (H, W, C) images in [0, 1]."""

    metrics: dict[str, float]
    images: dict[str, torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """What a pipeline hands the loop.

    Attributes:
        name: the pipeline's registered name (recorded in checkpoints).
        model: the module being trained.
        unit_shape: the sampler's shape: N, or (images, H, W) for pixel-like units.
        best_metric: the validation metric that picks the ``best`` checkpoint (higher is better).
        loss_is_mse: True when the per-unit loss is a squared error of [0, 1] signals, so the
            loop can report the batch PSNR.

    A task may also define ``export(run_dir)``, called once training ends, to write renders,
    meshes or other products into the run directory.
    """

    name: str
    model: nn.Module
    unit_shape: int | tuple[int, ...]
    best_metric: str
    loss_is_mse: bool

    def per_unit_loss(self, ids: torch.Tensor) -> torch.Tensor:
        """One non-negative loss per id, shape (B,), differentiable w.r.t. the model."""
        ...

    def validate(self) -> Validation:
        """Score the model (called under ``torch.no_grad`` with the model in eval mode)."""
        ...


@dataclass
class TrainResult:
    """How a ``fit`` ended.

    ``status`` is ``completed`` (all steps), ``stopped`` (reached ``stop_at``), ``interrupted``
    (Ctrl-C; latest saved) or ``nonfinite`` (the loss became NaN/inf; see ``message``).
    ``history`` holds one record per validation: ``step``, ``wall_seconds`` and the metrics.
    """

    status: str
    step: int
    train_seconds: float
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    message: str
    checkpoint: Path | None = None


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but CUDA is not available here")
    return device


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's random."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_sampler(config: SamplingConfig, shape: int | tuple[int, ...], device: torch.device, seed: int) -> Sampler:
    """Build the engine's sampler from a :class:`SamplingConfig`.

    Only the arguments the chosen strategy accepts are passed on. Inputs are validated on
    CPU only: on CUDA the check costs a host sync per step, and the ids are the sampler's own.
    """
    if config.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {config.strategy!r}")
    candidates = {
        "patch_size": config.patch_size,
        "within": config.within,
        "prior": _number_or_name(config.prior, "prior", ("max",)),
        "min_share": config.min_share,
        "progress_decay": config.progress_decay,
    }
    accepted = STRATEGIES[config.strategy].arguments()
    return Sampler(
        shape,
        config.strategy,
        decay=config.decay,
        update_frequency=config.update_frequency,
        warmup_iterations=config.warmup_iterations,
        min_error_weight=config.min_error_weight,
        uniform_fraction=config.uniform_fraction,
        correction=_number_or_name(config.correction, "correction", ("none", "full")),
        weight_cap=config.weight_cap,
        check_inputs=device.type == "cpu",
        device=device,
        seed=seed,
        **{k: v for k, v in candidates.items() if k in accepted},
    )


def _number_or_name(value: str | float, what: str, names: tuple[str, ...]) -> str | float:
    if isinstance(value, (int, float)) or value in names:
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{what} must be one of {names} or a number, got {value!r}") from None


class _Interrupt:
    """Turns the first Ctrl-C into a request to stop after the current step."""

    def __init__(self, console: Any) -> None:
        self.requested = False
        self.console = console
        self.previous = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.console.print("[yellow]Ctrl-C: saving latest after this step (press again to abort)[/]")


class Trainer:
    """Trains a :class:`Task` under a pipeline config with ``train``, ``sampling`` and ``optim`` fields.

    Args:
        task: the pipeline's model, per-unit loss and validation.
        config: the pipeline's resolved config (saved as ``config.yaml`` and in checkpoints).
        device: where the task lives.
        run_dir: where checkpoints and logs go; None keeps the run in memory (no files).
        resume_from: a checkpoint to continue from exactly.
        console: a ``rich`` console for messages and the progress bar.
    """

    def __init__(
        self,
        task: Task,
        config: Any,
        *,
        device: torch.device,
        run_dir: Path | None = None,
        resume_from: Path | None = None,
        console: Any = None,
    ) -> None:
        from rich.console import Console

        self.task = task
        self.config = config
        self.settings = config.train
        self.device = device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.console = console or Console(stderr=True)
        self.config_dict = config_to_dict(config)
        self.sampler = make_sampler(config.sampling, task.unit_shape, device, seed=self.settings.seed)
        optim = config.optim
        parameters = [p for p in task.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            parameters,
            lr=optim.lr,
            betas=tuple(optim.betas),
            eps=optim.eps,
            weight_decay=optim.weight_decay,
            fused=device.type == "cuda",
        )
        self.scheduler = make_scheduler(self.optimizer, optim, self.settings.steps)
        self.plateau = isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        self.amp_dtype = None
        if self.settings.amp and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._nonfinite_at = torch.full((), -1, dtype=torch.int64, device=device)
        self._resumed_step: int | None = None
        if resume_from is not None:
            self._load(Path(resume_from))

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    # ----------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs to continue exactly."""
        return {
            "format": CHECKPOINT_FORMAT,
            "pipeline": self.task.name,
            "step": self.step,
            "config": self.config_dict,
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": capture_rng(),
            "train_seconds": self.train_seconds,
            "history": self.history,
            "best": self.best,
        }

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        if state.get("pipeline") != self.task.name:
            raise ValueError(f"{path} is a checkpoint of pipeline {state.get('pipeline')!r}, not {self.task.name!r}")
        differing = check_resume_compatible(state["config"], self.config_dict, path)
        if "train.steps" in differing:
            self.console.print(
                f"[yellow]note: steps changed from {state['config']['train']['steps']} to {self.settings.steps}; "
                "the learning-rate schedule stretches to the new length[/]"
            )
        self.task.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        restore_rng(state["rng"])
        self.step = int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.history = list(state["history"])
        self.best = state["best"]
        self._resumed_step = self.step

    def save_checkpoint(self, *, numbered: bool = True) -> Path | None:
        """Write ``latest.pt`` (and a numbered copy) atomically; returns the latest path."""
        directory = self.checkpoint_dir
        if directory is None:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        latest = directory / "latest.pt"
        if numbered and self.settings.keep_checkpoints > 0:
            numbered_path = atomic_save(state, directory / f"step_{self.step:08d}.pt")
            link_or_copy(numbered_path, latest)
            for old in sorted(directory.glob("step_*.pt"))[: -self.settings.keep_checkpoints]:
                old.unlink(missing_ok=True)
        else:
            atomic_save(state, latest)
        return latest

    # ------------------------------------------------------------------ loop

    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train until ``config.train.steps`` (or ``stop_at``), Ctrl-C or a non-finite loss."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        settings = self.settings
        end = settings.steps if stop_at is None else min(stop_at, settings.steps)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config_yaml(self.config, self.run_dir / "config.yaml")
        log = RunLog(self.run_dir, self._resumed_step, settings.tensorboard)
        progress = Progress(
            TextColumn(f"[bold]{self.task.name}[/] {self.config.sampling.strategy}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not settings.progress,
            transient=False,
        )
        bar = progress.add_task("train", total=settings.steps, completed=self.step, info="")
        status, message = "completed", ""
        try:
            with progress, _Interrupt(self.console) as interrupt:
                if self.step == 0 and settings.validate_every > 0 and not self.history:
                    self._validate(log)
                window_start, window_seconds = self.step, self.train_seconds
                loss_sum = torch.zeros((), device=self.device)
                mse_sum = torch.zeros((), device=self.device)
                clock = time.perf_counter()
                while self.step < end and not interrupt.requested:
                    loss, mean_unit_loss = self.train_step()
                    loss_sum += loss
                    mse_sum += mean_unit_loss
                    step = self.step
                    due_log = step % settings.log_every == 0 or step == end
                    due_validation = settings.validate_every > 0 and step % settings.validate_every == 0
                    due_stats = settings.sampler_stats_every > 0 and step % settings.sampler_stats_every == 0
                    due_checkpoint = settings.checkpoint_every > 0 and step % settings.checkpoint_every == 0
                    if not (due_log or due_validation or due_stats or due_checkpoint):
                        continue
                    self.train_seconds += self._elapsed(clock)
                    if due_log:
                        bad_step = int(self._nonfinite_at)
                        if bad_step >= 0:
                            status, message = "nonfinite", self._stop_nonfinite(bad_step)
                            break
                        values = self._window_values(loss_sum, mse_sum, step - window_start, window_seconds)
                        log.scalars(step, "train", values)
                        progress.update(bar, completed=step, info=_describe(values))
                        window_start, window_seconds = step, self.train_seconds
                        loss_sum.zero_()
                        mse_sum.zero_()
                    if due_stats:
                        log.sampler_stats(step, self.sampler.stats(), self.sampler.config)
                    if due_validation:
                        self._validate(log)
                    if due_checkpoint:
                        log.write_sampler_stats()
                        log.flush()
                        self.save_checkpoint()
                    clock = time.perf_counter()
                if status != "nonfinite":
                    self.train_seconds += self._elapsed(clock)
                    if interrupt.requested:
                        status = "interrupted"
                    elif self.step < settings.steps:
                        status = "stopped"
                    message = self._finish(status, log)
        finally:
            log.close()
        latest = None if self.checkpoint_dir is None else self.checkpoint_dir / "latest.pt"
        return TrainResult(status, self.step, self.train_seconds, self.history, self.best, message, latest)

    def _finish(self, status: str, log: RunLog) -> str:
        """Validate the final state if needed, save latest, export products; returns the summary."""
        if not self.history or self.history[-1]["step"] != self.step:
            self._validate(log)
        saved = self.save_checkpoint(numbered=status == "completed")
        if self.run_dir is not None and hasattr(self.task, "export"):
            self.task.model.eval()
            with torch.no_grad():
                self.task.export(self.run_dir)
        return self._summary(status, saved)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on a fresh draw; returns the (weighted) loss and the mean unit loss.

        Both are device tensors (no host sync); ``self.step`` advances by one.
        """
        step = self.step
        draw = self.sampler.sample(self.settings.batch_size, step)
        self.task.model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            per_unit = self.task.per_unit_loss(draw.ids)
        per_unit = per_unit.float()
        self.sampler.update(draw.ids, per_unit.detach(), step)
        loss = (draw.weights * per_unit).mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.optim.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.task.model.parameters(), self.config.optim.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if not self.plateau:
            self.scheduler.step()
        loss = loss.detach()
        first_bad = (~torch.isfinite(loss)) & (self._nonfinite_at < 0)
        self._nonfinite_at = torch.where(first_bad, step, self._nonfinite_at)
        self.step += 1
        return loss, per_unit.detach().mean()

    def _elapsed(self, since: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - since

    def _window_values(
        self, loss_sum: torch.Tensor, mse_sum: torch.Tensor, steps: int, since_seconds: float
    ) -> dict[str, float]:
        steps = max(steps, 1)
        seconds = max(self.train_seconds - since_seconds, 1e-9)
        values = {
            "loss": float(loss_sum) / steps,
            "lr": self.optimizer.param_groups[0]["lr"],
            "it_per_s": steps / seconds,
            "wall_seconds": self.train_seconds,
        }
        if getattr(self.task, "loss_is_mse", False):
            values["psnr"] = float(psnr_from_mse(float(mse_sum) / steps))
        return values

    def _validate(self, log: RunLog) -> dict[str, Any]:
        model = self.task.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            validation = self.task.validate()
        model.train(was_training)
        record = {"step": self.step, "wall_seconds": self.train_seconds, **validation.metrics}
        self.history.append(record)
        log.scalars(self.step, "val", validation.metrics)
        images = dict(validation.images)
        density = self.density_image()
        if density is not None:
            images["sampling_density"] = density
        log.images(self.step, images)
        metric = getattr(self.task, "best_metric", "psnr")
        value = validation.metrics.get(metric)
        if value is not None and self.plateau:
            self.scheduler.step(value)
        if value is not None and (self.best is None or value > self.best[metric]):
            self.best = dict(record)
            if self.checkpoint_dir is not None and self.step > 0:
                self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                atomic_save(self.state_dict(), self.checkpoint_dir / "best.pt")
        return record

    def density_image(self, max_side: int = 512) -> torch.Tensor | None:
        """The sampler's current distribution over the first image, as an (H, W, 1) image in [0, 1]."""
        shape = self.sampler.shape
        if len(shape) != 3 or self.sampler.in_warmup(self.step):
            return None
        from .visuals import downsample_map, normalise_log

        height, width = shape[1], shape[2]
        density = self.sampler.probabilities()[: height * width].view(height, width)
        return normalise_log(downsample_map(density, max_side))[..., None]

    def _stop_nonfinite(self, bad_step: int) -> str:
        path = None
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            path = atomic_save(self.state_dict(), self.checkpoint_dir / "nonfinite.pt")
        latest = self.checkpoint_dir / "latest.pt" if self.checkpoint_dir is not None else None
        message = f"loss became non-finite at step {bad_step}; training stopped at step {self.step}."
        if path is not None:
            message += f" State saved to {path} for inspection."
        if latest is not None and latest.exists():
            message += f" The last finite checkpoint is {latest}."
        message += " Try a lower --lr or gradient clipping (--clip-grad-norm)."
        return message

    def _summary(self, status: str, saved: Path | None) -> str:
        last = self.history[-1] if self.history else {}
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "wall_seconds"))
        words = {
            "completed": "finished",
            "stopped": "stopped",
            "interrupted": "interrupted (Ctrl-C)",
        }[status]
        text = f"{words} at step {self.step} after {self.train_seconds:.1f} s of training"
        if metrics:
            text += f"; {metrics}"
        if saved is not None:
            text += f"; saved {saved}"
            if status != "completed":
                text += " (continue with --resume latest)"
        return text


def _describe(values: dict[str, float]) -> str:
    parts = [f"loss {values['loss']:.3e}"]
    if "psnr" in values:
        parts.append(f"PSNR {values['psnr']:.2f} dB")
    parts.append(f"{values['it_per_s']:.1f} it/s")
    return "  ".join(parts)
