"""The training loop every pipeline shares.

A pipeline hands the :class:`Trainer` a :class:`~foveate.train.task.Task` and its config; the
task owns its step (optimizers, losses, hooks, validation), the trainer owns the rest: the
sampler's draws and feedback, mixed precision and clipping (lent to the task as an
:class:`~foveate.train.task.Optimization`), validation cadence, logs, checkpoints, resume,
Ctrl-C and SIGTERM, non-finite guards and the progress bar.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foveate.sampling import Sampler

from .checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointStore,
    RunLock,
    capture_rng,
    load_checkpoint,
    remove_leftovers,
    restore_rng,
)
from .config import SamplingConfig, check_resume_compatible, config_to_dict, save_config_yaml
from .distributed import ALONE, Ranks
from .runlog import RunLog
from .task import Optimization, StepOutput, Task, Validation
from .visuals import density_image

__all__ = [
    "EXIT_CODES",
    "TrainResult",
    "Trainer",
    "make_sampler",
    "sampler_arguments",
    "seed_everything",
    "select_device",
]

EXIT_CODES = {"completed": 0, "stopped": 0, "target": 0, "time_limit": 0, "interrupted": 130, "nonfinite": 3}
"""Exit status of ``foveate train`` for each way a run ends."""


@dataclass
class TrainResult:
    """How a ``fit`` ended.

    ``status`` is ``completed`` (all steps), ``stopped`` (reached ``stop_at``), ``target`` (a
    validation reached the task's target), ``time_limit`` (``max_minutes``), ``interrupted``
    (Ctrl-C or SIGTERM; latest saved) or ``nonfinite`` (the loss became NaN or infinite).
    ``history`` holds the quick validations (the curve: ``step``, ``wall_seconds``, metrics),
    ``full_history`` the full ones; ``final`` is the last full validation, images and maps included;
    ``profiles`` the 1-D maps of the curve's validations (a motion's success per bin), one row each;
    ``sampler_history`` the snapshots of the sampler's stats; ``exported`` the files the task's
    export wrote when the run ended.
    """

    status: str
    step: int
    train_seconds: float
    history: list[dict[str, Any]]
    full_history: list[dict[str, Any]]
    best: dict[str, Any] | None
    message: str
    final: Validation | None = None
    checkpoint: Path | None = None
    profiles: dict[str, list[list[float]]] = field(default_factory=dict)
    sampler_history: list[dict[str, Any]] = field(default_factory=list)
    exported: list[Path] = field(default_factory=list)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--train.device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--train.device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--train.device {name!r} was asked for, but CUDA is not available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--train.device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's random."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_sampler(
    config: SamplingConfig,
    shape: int | tuple[int, ...],
    device: torch.device,
    seed: int,
    distributed: bool = False,
    steps: int = 0,
) -> Sampler:
    """The engine's sampler for ``config``; inputs are checked on CPU only (on CUDA a check costs a host sync).

    ``distributed`` makes it one sampler across the ranks of the process group (see :class:`Sampler`).
    The draws are seeded by ``seed + config.draw_seed_offset``. ``steps`` is the run's length, over
    which ``config.correction_ramp`` grows the correction.
    """
    return Sampler(shape, **sampler_arguments(config, device, seed, distributed, steps))


def sampler_arguments(
    config: SamplingConfig, device: torch.device, seed: int, distributed: bool = False, steps: int = 0
) -> dict[str, Any]:
    """The keyword arguments :func:`make_sampler` gives :class:`Sampler` (the strategy as a dataclass)."""
    if config.correction_ramp and steps < 1:
        raise ValueError("a correction ramp needs the run's steps to grow over")
    return {
        "strategy": config.chosen(),
        "decay": config.decay,
        "update_frequency": config.update_frequency,
        "warmup_iterations": config.warmup_iterations,
        "min_error_weight": config.min_error_weight,
        "uniform_fraction": config.uniform_fraction,
        "correction": config.correction_value(),
        "correction_ramp": steps if config.correction_ramp else 0,
        "weight_cap": config.weight_cap,
        "stratified": config.stratified,
        "check_inputs": device.type == "cpu",
        "device": device,
        "seed": seed + config.draw_seed_offset,
        "distributed": distributed,
    }


class _StopSignals:
    """Turns the first Ctrl-C or SIGTERM into a request to stop after the current step; a second aborts."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, console: Any) -> None:
        self.requested: str | None = None
        self.console = console
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(number).name
        self.console.print(f"[yellow]{self.requested}: saving latest after this step (again to abort)[/]")


@dataclass
class _Window:
    """A logging window: step outputs summed on the device until read, and when it started."""

    start_seconds: float
    steps: int = 0
    loss: Any = 0.0
    terms: dict[str, Any] = field(default_factory=dict)

    def add(self, output: StepOutput) -> None:
        self.steps += 1
        self.loss = self.loss + output.loss.detach()
        for name, value in output.terms.items():
            value = value.detach() if isinstance(value, torch.Tensor) else value
            self.terms[name] = self.terms.get(name, 0.0) + value

    def values(self, now_seconds: float) -> dict[str, float]:
        count = max(self.steps, 1)
        means = {"loss": float(self.loss) / count, **{k: float(v) / count for k, v in self.terms.items()}}
        return {**means, "it_per_s": self.steps / max(now_seconds - self.start_seconds, 1e-9)}


class Trainer:
    """Trains a task under a pipeline config with ``train``, ``sampling`` and ``optim`` sections.

    Args:
        task: the pipeline's task.
        config: the pipeline's resolved config (saved as ``config.yaml`` and in checkpoints).
        device: where the task lives.
        run_dir: where checkpoints and logs go; None keeps the run in memory (no files).
        resume_from: a checkpoint to continue from exactly.
        console: a ``rich`` console for messages and the progress bar.
        ranks: this process's place in a distributed run (``torchrun``): the sampler draws the
            global batch and hands each rank its slice, gradients are averaged, errors gathered;
            rank 0 validates and is the only one to write (give the others no ``run_dir``).
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
        ranks: Ranks = ALONE,
    ) -> None:
        from rich.console import Console

        if not ranks.alone and not task.distributable:
            raise ValueError(
                f"the {task.name} pipeline trains on one process; under torchrun, spread its seeds over the "
                f"ranks with 'foveate compare {task.name}'"
            )
        if run_dir is not None and not ranks.leader:
            raise ValueError(f"only rank 0 writes a run directory; rank {ranks.rank} was given {run_dir}")
        self.task, self.config, self.settings, self.device = task, config, config.train, device
        self.ranks = ranks
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.console = console or Console(stderr=True)
        self.config_dict = config_to_dict(config)
        self.sampler = make_sampler(
            config.sampling,
            task.unit_shape,
            device,
            seed=self.settings.seed,
            distributed=not ranks.alone,
            steps=self.settings.steps,
        )
        task.ranks = ranks
        task.bind(self.sampler)
        task.configure_optimizers(config.optim, self.settings.steps)
        amp_dtype = None
        if self.settings.amp and device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.optimization = Optimization(
            task.optimizers, device, amp_dtype, config.optim.clip_grad_norm, self.scaler, ranks
        )
        self.hooks = task.hooks()
        self.layout = task.checkpoint_layout()
        directory = None if self.run_dir is None else self.layout.directory(self.run_dir)
        keep = self.settings.keep_checkpoints
        self.checkpoints = CheckpointStore(directory, keep, task.metric.better, task.metric.name, self.layout)
        self.step = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, Any]] = []
        self.full_history: list[dict[str, Any]] = []
        self.profiles: dict[str, list[list[float]]] = {}
        self.final: Validation | None = None
        self.exported: list[Path] = []
        self._nonfinite_at = torch.full((), -1, dtype=torch.int64, device=device)
        self._resumed_step: int | None = None
        if resume_from is not None:
            self._load(Path(resume_from))
        ranks.broadcast_module(task.model)

    # ----------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs to continue exactly."""
        return {
            "format": CHECKPOINT_FORMAT,
            "pipeline": self.task.name,
            "step": self.step,
            "world_size": self.ranks.world,
            "config": self.config_dict,
            "task": self.task.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": capture_rng(),
            "train_seconds": self.train_seconds,
            "history": self.history,
            "full_history": self.full_history,
            "profiles": self.profiles,
            "best": self.checkpoints.best,
        }

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device, layout=self.layout)
        if state.get("pipeline") != self.task.name:
            raise ValueError(f"{path} is a checkpoint of pipeline {state.get('pipeline')!r}, not {self.task.name!r}")
        differing = check_resume_compatible(state["config"], self.config_dict, path, self.task.resume_exempt)
        if "train.steps" in differing:
            self.console.print(
                f"[yellow]note: steps changed from {state['config']['train']['steps']} to {self.settings.steps}; "
                "the learning-rate schedule stretches to the new length[/]"
            )
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.ranks.world and self.ranks.leader:
            self.console.print(
                f"note: {path} was written by {saved_world} process(es), this run has {self.ranks.world}; "
                "the global batch and the sampler's draws continue unchanged"
            )
        self.sampler.load_state_dict(state["sampler"])
        self.task.load_state_dict(state["task"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        self.step = int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.history, self.full_history = list(state["history"]), list(state["full_history"])
        self.profiles = {name: list(rows) for name, rows in state["profiles"].items()}
        self.checkpoints.best = state["best"]
        self._resumed_step = self.step

    # ------------------------------------------------------------------ loop

    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train until ``train.steps`` (or ``stop_at``), a signal, a time limit, the target or a non-finite loss.

        ``stop_at`` defaults to ``train.stop_at`` (0: none): the run stops there on the schedules of
        the full ``train.steps`` and ends as a finished run does (final validations, export). A run
        resumed at or past it goes on to ``train.steps``.
        """
        asked = stop_at is None and self.settings.stop_at > self.step
        if asked:
            stop_at = self.settings.stop_at
        with contextlib.ExitStack() as stack:
            if self.run_dir is not None:
                stack.enter_context(RunLock(self.run_dir))
                for directory in (self.run_dir, self.layout.directory(self.run_dir)):
                    remove_leftovers(directory)
                save_config_yaml(self.config, self.run_dir / "config.yaml")
                self.task.record(self.run_dir)
            return self._fit(stop_at, asked)

    def _fit(self, stop_at: int | None, asked: bool = False) -> TrainResult:
        settings = self.settings
        end = settings.steps if stop_at is None else min(stop_at, settings.steps)
        wandb_project = settings.wandb_project if self.ranks.leader else None
        log = RunLog(self.run_dir, self._resumed_step, settings.tensorboard, wandb_project, settings.wandb_run_name)
        limit = None if settings.max_minutes is None else 60.0 * settings.max_minutes
        status = "completed" if end == settings.steps else "stopped"
        try:
            with _Progress(self, end) as progress, _StopSignals(self.console) as signals:
                if self.step == 0 and not self.history:
                    self._validate(log, curve=True)
                window, clock = _Window(self.train_seconds), time.perf_counter()
                while self.step < end:
                    over = limit is not None and self.train_seconds + time.perf_counter() - clock >= limit
                    requested, over = self.ranks.any(signals.requested is not None, over)
                    if requested:
                        status = "interrupted"
                        break
                    if over:
                        status = "time_limit"
                        break
                    window.add(self.train_step())
                    due = self._due(self.step, end)
                    if not due:
                        continue
                    self.train_seconds += self._elapsed(clock)
                    ended = self._on_due(due, window, log, progress)
                    if "log" in due:
                        window = _Window(self.train_seconds)
                    clock = time.perf_counter()  # validations and checkpoints are not training time
                    if ended is not None:
                        status = ended
                        break
                self.train_seconds += self._elapsed(clock)
                message = self._finish(status, log, ends=asked and status == "stopped")
        finally:
            log.close()
        return TrainResult(
            status,
            self.step,
            self.train_seconds,
            self.history,
            self.full_history,
            self.checkpoints.best,
            message,
            self.final,
            self.checkpoints.latest,
            self.profiles,
            log.sampler_history,
            self.exported,
        )

    def train_step(self) -> StepOutput:
        """Hooks, one draw, the task's step, the sampler's feedback and the schedules; the step advances by one.

        Nothing here waits for the device: the loss's finiteness is recorded on the device and
        read at the next logging point.
        """
        step = self.step
        for hook in self.hooks:
            if hook.due(step):
                hook.run(step)
        task = self.task
        batch = self.sampler.sample(task.draw_size(self.settings.batch_size), step) if task.draws_units else None
        output = task.training_step(batch, step, self.optimization)
        if batch is not None and output.per_unit is not None:
            noise = output.noise if self.config.sampling.noise_aware else None
            self.sampler.update(batch.ids, output.per_unit, step, noise=noise)
        for scheduler in task.schedulers.values():
            if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step()
        first_bad = (~torch.isfinite(output.loss)) & (self._nonfinite_at < 0)
        self._nonfinite_at = torch.where(first_bad, step, self._nonfinite_at)
        self.step += 1
        return output

    def _due(self, step: int, end: int) -> set[str]:
        """What is due after ``step`` steps."""
        settings = self.settings
        cadence = {
            "log": settings.log_every,
            "validate": settings.validation_interval(),
            "full": settings.full_validate_every,
            "stats": settings.sampler_stats_every,
            "checkpoint": settings.checkpoint_every,
        }
        due = {name for name, every in cadence.items() if every > 0 and step % every == 0}
        return due | {"log"} if step == end else due

    def _on_due(self, due: set[str], window: _Window, log: RunLog, progress: _Progress) -> str | None:
        """Log, validate, snapshot and save as due; returns a status when the run must end here."""
        step = self.step
        if self.ranks.any(int(self._nonfinite_at) >= 0)[0]:
            return "nonfinite"
        if "log" in due:
            values = {**self.ranks.mean(window.values(self.train_seconds)), **self._learning_rates()}
            values["wall_seconds"] = self.train_seconds
            log.scalars(step, "train", values)
            progress.update(step, values)
        if "stats" in due and self.ranks.leader:
            log.sampler_stats(step, self.sampler.stats(), self.sampler.config)
        reached = False
        if "validate" in due:
            reached = self._validate(log, curve=True)
        if "full" in due and not ("validate" in due and not self.task.quick_validation):
            self._validate(log, curve=False)
        if "checkpoint" in due:
            self.ranks.check_identical(self.task.model, step)
            log.write_sampler_stats()
            log.flush()
            self.checkpoints.save(self.state_dict(), step)
        return "target" if reached and self.settings.stop_at_target else None

    def _finish(self, status: str, log: RunLog, ends: bool = False) -> str:
        """End the run: final validations, save and export when it ran its course; save only when cut short.

        ``ends``: the run stopped at its ``train.stop_at``, which ends it as a finished run.
        """
        if status == "nonfinite":
            return self._stop_nonfinite(int(self._nonfinite_at))
        ran = status in ("completed", "target") or ends
        if ran:
            stale = not log.sampler_history or log.sampler_history[-1]["step"] != self.step
            if stale and self.ranks.leader:
                log.sampler_stats(self.step, self.sampler.stats(), self.sampler.config)
            if not self.history or self.history[-1]["step"] != self.step:
                self._validate(log, curve=True)
            if self.task.quick_validation and (not self.full_history or self.full_history[-1]["step"] != self.step):
                self._validate(log, curve=False)
        self.ranks.check_identical(self.task.model, self.step)
        log.write_sampler_stats()
        saved = self.checkpoints.save(self.state_dict(), self.step, numbered=status in ("completed", "target"))
        if self.run_dir is not None and ran:
            self.task.model.eval()
            with torch.no_grad():
                self.exported = self.task.export(self.run_dir)
        return self._summary(status, saved)

    def _validate(self, log: RunLog, curve: bool) -> bool:
        """A quick validation (a curve point; ``curve``) or a full one; returns whether it reached the target.

        A task without a cheaper quick validation validates in full at every curve point.
        """
        full = not curve or not self.task.quick_validation
        validation = self._validation(full)
        metric = self.task.metric
        if metric.name not in validation.metrics:
            raise KeyError(f"{type(self.task).__name__}.validate returned no {metric.name!r} (its metric)")
        record = {"step": self.step, "wall_seconds": self.train_seconds, **validation.metrics}
        if full:
            self.full_history.append(record)
            self.final = validation
            log.scalars(self.step, "full", validation.metrics)
            images = dict(validation.images)
            density = density_image(self.sampler, self.step)
            if density is not None:
                images["sampling_density"] = density
            log.images(self.step, images)
        if not curve:
            return False
        self.history.append(record)
        for name, values in validation.maps.items():
            if values.ndim == 1:
                self.profiles.setdefault(name, []).append(values.float().cpu().tolist())
        log.scalars(self.step, "val", validation.metrics)
        value = validation.metrics[metric.name]
        for scheduler in self.task.schedulers.values():
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(value)
        self.checkpoints.consider(record, self.state_dict)
        return metric.target is not None and metric.reached(value, metric.target)

    def _validation(self, full: bool) -> Validation:
        """The task's validation in eval mode, on its own random numbers so training's continue as if
        it had not run. Distributed, rank 0 validates (with its BatchNorm statistics, as DDP does)
        and the others receive its metrics and 1-D maps."""
        ranks = self.ranks
        ranks.broadcast_buffers(self.task.model)
        validation = None
        if ranks.leader:
            model = self.task.model
            was_training = model.training
            model.eval()
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                validation = self.task.validate(full=full)
            model.train(was_training)
        if ranks.alone:
            return validation
        shared = (
            None
            if validation is None
            else (
                validation.metrics,
                {name: values.cpu() for name, values in validation.maps.items() if values.ndim == 1},
            )
        )
        metrics, maps = ranks.broadcast(shared)
        return validation if ranks.leader else Validation(metrics, maps=maps)

    def _learning_rates(self) -> dict[str, float]:
        rates = {name: optimizer.param_groups[0]["lr"] for name, optimizer in self.task.optimizers.items()}
        return {"lr": next(iter(rates.values()))} if len(rates) == 1 else {f"lr_{k}": v for k, v in rates.items()}

    def _elapsed(self, since: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - since

    def _stop_nonfinite(self, bad_step: int) -> str:
        path = self.checkpoints.save_as(self.state_dict(), "nonfinite")
        latest = self.checkpoints.latest
        message = f"loss became non-finite at step {bad_step}; training stopped at step {self.step}."
        if path is not None:
            message += f" State saved to {path} for inspection."
        if latest is not None and latest.exists():
            message += f" The last finite checkpoint is {latest}."
        return message + " Try a lower learning rate (--optim.lr) or gradient clipping (--optim.clip-grad-norm)."

    def _summary(self, status: str, saved: Path | None) -> str:
        words = {
            "completed": "finished",
            "target": "reached its target",
            "stopped": "stopped",
            "time_limit": "reached its time limit",
            "interrupted": "interrupted",
        }[status]
        text = f"{words} at step {self.step} after {self.train_seconds:.1f} s of training"
        last = self.full_history[-1] if self.full_history else self.history[-1] if self.history else {}
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "wall_seconds"))
        if metrics:
            text += f"; {metrics}"
        if saved is not None:
            text += f"; saved {saved}"
            if status not in ("completed", "target"):
                text += " (continue with --resume latest)"
        return text


class _Progress:
    """The rich progress bar of a run (disabled with ``train.progress = False``)."""

    def __init__(self, trainer: Trainer, end: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.trainer = trainer
        task = trainer.task
        self.progress = Progress(
            TextColumn(f"[bold]{task.name}[/] {trainer.config.sampling.strategy}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=trainer.console,
            disable=not trainer.settings.progress or not trainer.ranks.leader,
        )
        self.bar = self.progress.add_task("train", total=trainer.settings.steps, completed=trainer.step, info="")

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, values: dict[str, float]) -> None:
        metric = self.trainer.task.metric
        parts = [f"loss {values['loss']:.3e}"]
        if self.trainer.history:  # the last validation's, not the drawn batch's
            parts.append(f"val {metric.name} {self.trainer.history[-1][metric.name]:.4g}")
        parts.append(f"{values['it_per_s']:.1f} it/s")
        self.progress.update(self.bar, completed=step, info="  ".join(parts))
