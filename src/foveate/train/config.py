"""Typed configuration shared by every pipeline: training, sampling and optimisation.

A pipeline's config is a dataclass that nests :class:`TrainConfig`, :class:`SamplingConfig`
and :class:`OptimConfig` beside its own fields. :func:`parse_config` builds the command line
from it (tyro), starting from a named preset; every run saves the resolved config as
``config.yaml``, and a resumed run must match the one it continues.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = [
    "RESUME_EXEMPT",
    "ConfigMismatchError",
    "OptimConfig",
    "SamplingConfig",
    "TrainConfig",
    "apply_changes",
    "check_resume_compatible",
    "config_from_dict",
    "config_to_dict",
    "parse_config",
    "save_config_yaml",
]

Config = TypeVar("Config")


@dataclasses.dataclass
class TrainConfig:
    """The loop: budget, device, cadence of logging, validation and checkpoints."""

    steps: int = 2000
    """Optimiser steps in the whole run."""
    batch_size: int = 65536
    """Units (pixels, rays, ...) drawn per step."""
    seed: int = 0
    """Seeds the model's initialisation and the sampler's draws."""
    device: str = "auto"
    """'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    cpu_threads: int = 0
    """torch threads on CPU (0: torch's default); 1 is steadiest on a busy shared machine."""
    amp: bool = True
    """Mixed precision on CUDA (bfloat16 where supported, else float16); ignored on CPU."""
    log_every: int = 25
    """Steps between progress updates, stats.jsonl lines and the non-finite loss check."""
    validate_every: int = 250
    """Steps between validations (0: only at the end)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (0: only at the end)."""
    keep_checkpoints: int = 2
    """Numbered checkpoints kept besides latest and best (0: latest and best only)."""
    sampler_stats_every: int = 100
    """Steps between snapshots of the sampler's stats in error_sampling_stats.json."""
    name: str | None = None
    """Run name: the run directory is runs_dir/<pipeline>/<name> (default: derived and dated)."""
    runs_dir: str = "runs"
    """Root of all run directories."""
    resume: str | None = None
    """Continue a run: a checkpoint path, or 'latest' (the newest run, or the one --name names)."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Write TensorBoard event files under the run's tb/."""


@dataclasses.dataclass
class SamplingConfig:
    """How units are drawn: the foveate.sampling engine's strategy and its arguments."""

    strategy: str = "error_weighted"
    """uniform, error_weighted, spatial or adaptive."""
    decay: float = 0.5
    """EMA decay of each unit's error."""
    update_frequency: int = 10
    """Steps between rebuilds of the sampling distribution."""
    warmup_iterations: int = 50
    """Steps drawn uniformly before the error map is used."""
    min_error_weight: float = 0.1
    """Floor of a unit's weight, as a fraction of the mean error."""
    uniform_fraction: float = 0.25
    """Share of every draw that is uniform."""
    correction: str = "none"
    """Importance weights: 'none', 'full' (unbiased 1/(N p)) or an exponent alpha in [0, 1]."""
    weight_cap: float = 10.0
    """Largest importance weight."""
    patch_size: int = 16
    """Tile side of the spatial strategy (and of adaptive's spatial component)."""
    within: Literal["uniform", "proportional"] = "uniform"
    """How the spatial strategy draws inside a tile."""
    prior: str = "max"
    """Error assumed for never-visited units: 'max' or a number."""
    min_share: float = 0.1
    """Adaptive: the least share a component keeps."""
    progress_decay: float = 0.9
    """Adaptive: EMA decay of each component's learning-progress score."""


@dataclasses.dataclass
class OptimConfig:
    """Adam, gradient clipping and the learning-rate schedule."""

    lr: float = 1e-2
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-15
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0
    """Clip the gradient norm to this (0: no clipping)."""
    schedule: Literal["cosine", "step", "plateau", "none"] = "cosine"
    """cosine: linear warm-up then cosine decay to final_lr_fraction (NeuS); step; plateau; none."""
    warmup_steps: int = 0
    """Linear warm-up steps of the cosine schedule."""
    final_lr_fraction: float = 0.05
    """Cosine: the learning rate ends at this fraction of lr (NeuS's learning_rate_alpha)."""
    step_size: int = 1000
    """Step schedule: steps between decays."""
    gamma: float = 0.5
    """Step and plateau schedules: the factor applied at each decay."""
    plateau_patience: int = 3
    """Plateau schedule: validations without improvement before a decay."""


RESUME_EXEMPT = frozenset(
    {
        "train.steps",
        "train.device",
        "train.cpu_threads",
        "train.log_every",
        "train.validate_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.sampler_stats_every",
        "train.name",
        "train.runs_dir",
        "train.resume",
        "train.progress",
        "train.tensorboard",
    }
)
"""Config keys a resumed run may change: they do not alter what is computed at a given step."""


class ConfigMismatchError(ValueError):
    """A checkpoint was written under a config that differs from the current one."""


def apply_changes(config: Config, changes: Mapping[str, Any]) -> Config:
    """Set ``section__field=value`` entries on a nested config dataclass, in place; returns it.

    Presets are written this way (``preset("cpu", train__steps=600)``); an unknown field raises.
    """
    for dotted, value in changes.items():
        target = config
        *parents, attribute = dotted.split("__")
        for parent in parents:
            target = getattr(target, parent)
        if not hasattr(target, attribute):
            raise AttributeError(f"unknown config field {dotted!r} ({type(target).__name__} has no {attribute!r})")
        setattr(target, attribute, value)
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON-friendly data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def config_from_dict(config_type: type[Config], data: Mapping[str, Any], where: str = "config") -> Config:
    """Rebuild a (nested) dataclass config from :func:`config_to_dict` output, rejecting unknown keys."""
    hints = typing.get_type_hints(config_type)
    names = {f.name for f in dataclasses.fields(config_type) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for {config_type.__name__}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = config_from_dict(hint, value, f"{where}.{name}")
        elif _is_tuple(hint) and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return config_type(**values)


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple(arg) for arg in typing.get_args(hint))
    return origin is tuple or hint is tuple


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume_compatible(
    saved: Mapping[str, Any], current: Mapping[str, Any], checkpoint: str | Path, exempt: frozenset[str] = RESUME_EXEMPT
) -> list[str]:
    """Raise :class:`ConfigMismatchError` naming every differing key; return the exempt keys that differ."""
    old, new = _flatten(saved), _flatten(current)
    differing = sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k, "<absent>"))
    blocking = [k for k in differing if k not in exempt]
    if blocking:
        lines = [f"  {k}: checkpoint {old.get(k, '<absent>')!r}, now {new.get(k, '<absent>')!r}" for k in blocking]
        raise ConfigMismatchError(
            f"cannot resume from {checkpoint}: its config differs from this run's\n"
            + "\n".join(lines)
            + "\nStart a new run (another --name), or resume with the checkpoint's settings."
        )
    return differing


def save_config_yaml(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    import yaml

    path = Path(path)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def parse_config(
    config_type: type[Config],
    argv: Sequence[str],
    *,
    presets: Mapping[str, Config],
    prog: str,
    description: str,
    saved_config: Callable[[Config], Mapping[str, Any] | None] | None = None,
) -> Config:
    """Build a config from the command line: ``--preset NAME`` picks the defaults, flags override.

    ``saved_config`` (optional) maps a parsed config to the config stored in the checkpoint
    it resumes, or ``None``; when given, flags then override the saved config instead of
    the preset, so ``--resume latest`` alone continues with the original settings.
    """
    import tyro

    argv = list(argv)
    preset = _pop_option(argv, "--preset")
    if preset is None:
        preset = next(iter(presets))
    if preset not in presets:
        raise SystemExit(f"{prog}: unknown preset {preset!r}; choose from {', '.join(presets)}")
    names = ", ".join(presets)
    full_description = f"{description}\n\nPresets (--preset NAME, first is the default): {names}."
    options = {"prog": prog, "description": full_description, "config": (tyro.conf.OmitArgPrefixes,)}
    config = tyro.cli(config_type, default=copy.deepcopy(presets[preset]), args=argv, **options)
    if saved_config is not None:
        saved = saved_config(config)
        if saved is not None:
            resume = config.train.resume
            config = tyro.cli(config_type, default=config_from_dict(config_type, saved), args=argv, **options)
            config.train.resume = resume
    return config


def _pop_option(argv: list[str], flag: str) -> str | None:
    """Remove ``flag VALUE`` or ``flag=VALUE`` from argv and return VALUE."""
    for index, arg in enumerate(argv):
        if arg == flag:
            if index + 1 >= len(argv):
                raise SystemExit(f"{flag} needs a value")
            value = argv[index + 1]
            del argv[index : index + 2]
            return value
        if arg.startswith(flag + "="):
            del argv[index]
            return arg.split("=", 1)[1]
    return None
