"""Pipelines by name, and the run that every ``foveate train <pipeline>`` command shares."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from foveate.train import (
    CheckpointError,
    ConfigMismatchError,
    Task,
    Trainer,
    TrainResult,
    load_checkpoint,
    parse_config,
    resolve_checkpoint,
    seed_everything,
    select_device,
)

__all__ = [
    "EXIT_CODES",
    "PipelineSpec",
    "available_pipelines",
    "get_pipeline",
    "register_pipeline",
    "run_pipeline",
    "train_command",
]


@dataclass(frozen=True)
class PipelineSpec:
    """A trainable system: its config type with named presets and how to build its task.

    Attributes:
        name: the registered name (``foveate train <name>``, ``runs/<name>/``).
        config_type: a dataclass with ``train``, ``sampling`` and ``optim`` fields.
        presets: named configs; the first is the default.
        build_task: ``(config, device) -> Task``.
        run_name: ``config -> str``, the default run name (a date is appended).
        description: one line for ``--help``.
    """

    name: str
    config_type: type
    presets: Mapping[str, Any]
    build_task: Callable[[Any, Any], Task]
    run_name: Callable[[Any], str]
    description: str


_REGISTRY: dict[str, PipelineSpec] = {}
_MODULES = {"image": "foveate.pipelines.image", "nerf": "foveate.pipelines.nerf"}
"""Built-in pipelines, imported on first use."""

EXIT_CODES = {"completed": 0, "stopped": 0, "interrupted": 130, "nonfinite": 3}


def register_pipeline(spec: PipelineSpec) -> PipelineSpec:
    """Make ``spec`` available by name."""
    _REGISTRY[spec.name] = spec
    return spec


def get_pipeline(name: str) -> PipelineSpec:
    """The pipeline registered as ``name`` (built-ins are imported on demand)."""
    if name not in _REGISTRY and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in _REGISTRY:
        raise KeyError(f"unknown pipeline {name!r}; available: {', '.join(available_pipelines())}")
    return _REGISTRY[name]


def available_pipelines() -> list[str]:
    return sorted(set(_REGISTRY) | set(_MODULES))


def _pipeline_dir(spec: PipelineSpec, config: Any) -> Path:
    return Path(config.train.runs_dir) / spec.name


def run_pipeline(
    spec: PipelineSpec, config: Any, *, console: Any = None, in_memory: bool = False
) -> tuple[TrainResult, Trainer]:
    """Train ``spec``'s task under ``config``: fresh, or resumed when ``config.train.resume`` is set.

    ``in_memory=True`` writes no run directory (used by comparisons and tests).
    """
    device = select_device(config.train.device)
    if config.train.cpu_threads > 0:
        torch.set_num_threads(config.train.cpu_threads)
    seed_everything(config.train.seed)
    task = spec.build_task(config, device)
    resume_from = None
    run_dir = None
    if config.train.resume:
        resume_from = resolve_checkpoint(config.train.resume, _pipeline_dir(spec, config), config.train.name)
        run_dir = resume_from.parent.parent
    elif not in_memory:
        name = config.train.name or f"{spec.run_name(config)}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = _pipeline_dir(spec, config) / name
        if (run_dir / "checkpoints" / "latest.pt").exists():
            raise CheckpointError(
                f"{run_dir} already holds a run; continue it with --resume latest --name {name}, "
                "or choose another --name"
            )
    if in_memory:
        run_dir = None
    trainer = Trainer(task, config, device=device, run_dir=run_dir, resume_from=resume_from, console=console)
    return trainer.fit(), trainer


def _saved_config(spec: PipelineSpec) -> Callable[[Any], Mapping[str, Any] | None]:
    def saved(config: Any) -> Mapping[str, Any] | None:
        if not config.train.resume:
            return None
        path = resolve_checkpoint(config.train.resume, _pipeline_dir(spec, config), config.train.name)
        return load_checkpoint(path)["config"]

    return saved


def train_command(name: str, argv: Sequence[str]) -> int:
    """``foveate train <name> [options]``: parse, train, print where the run went."""
    from rich.console import Console

    console = Console(stderr=True)
    spec = get_pipeline(name)
    try:
        config = parse_config(
            spec.config_type,
            argv,
            presets=spec.presets,
            prog=f"foveate train {name}",
            description=spec.description,
            saved_config=_saved_config(spec),
        )
        result, trainer = run_pipeline(spec, config, console=console)
    except (FileNotFoundError, ValueError, CheckpointError, ConfigMismatchError) as error:
        console.print(f"[red]foveate train {name}: error:[/] {error}", highlight=False)
        return 2
    console.print(result.message, highlight=False)
    if trainer.run_dir is not None:
        print(trainer.run_dir)
    return EXIT_CODES[result.status]
