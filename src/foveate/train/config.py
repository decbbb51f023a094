"""Typed configuration shared by every pipeline: the loop, the sampler and the optimiser.

A pipeline's config is a dataclass that nests :class:`TrainConfig`, :class:`SamplingConfig`
and :class:`OptimConfig` beside its own fields. The command line is built from it by tyro
(:mod:`foveate.train.cli`): nested fields keep their section as a prefix (``--sampling.decay``,
``--optim.lr``), so names never collide between sections, and the everyday flags are short
(``--steps``, ``--batch-size``, ``--seed``, ``--name``, ``--resume``, ``--strategy``).

The sampling section holds the engine's own strategy dataclasses (``--sampling.spatial.patch-size``):
one definition and one set of defaults, those of :class:`foveate.sampling.Sampler`.
Docstrings of fields here are ``--help`` text, so they are plain words.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from foveate.files import atomic_write_text
from foveate.sampling import STRATEGIES, Adaptive, ErrorWeighted, FailureBins, Sampler, Spatial, Strategy

try:
    from tyro.conf import arg
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("foveate's training loop needs tyro: pip install 'foveate[train]'") from error

__all__ = [
    "RESUME_EXEMPT",
    "SHORT_RUN_SAMPLING",
    "TINY_RUN",
    "ConfigMismatchError",
    "OptimConfig",
    "SamplingConfig",
    "TrainConfig",
    "apply_changes",
    "check_config",
    "check_resume_compatible",
    "config_from_dict",
    "config_to_dict",
    "load_config_yaml",
    "save_config_yaml",
]

Config = TypeVar("Config")
StrategyName = Literal["uniform", "error_weighted", "spatial", "adaptive", "failure_bins"]
assert set(typing.get_args(StrategyName)) == set(STRATEGIES), "StrategyName must list the engine's strategies"

_ENGINE = inspect.signature(Sampler).parameters


def _engine_default(name: str) -> Any:
    """The :class:`~foveate.sampling.Sampler`'s default for ``name``: the one place defaults live."""
    return _ENGINE[name].default


SHORT = arg(prefix_name=False)
"""Marks a field whose flag drops its section prefix (``--steps``, not ``--train.steps``)."""


@dataclasses.dataclass
class TrainConfig:
    """The loop: budget, device, and the cadence of logs, validations and checkpoints."""

    steps: Annotated[int, SHORT] = 2000
    """Training steps in the whole run."""
    batch_size: Annotated[int, SHORT] = 65536
    """Units (pixels, rays, ...) drawn per step."""
    seed: Annotated[int, SHORT] = 0
    """Seeds the model's initialisation and the sampler's draws."""
    name: Annotated[str | None, SHORT] = None
    """Run name: the run directory is runs_dir/PIPELINE/NAME (default: derived from the config, dated)."""
    resume: Annotated[str | None, SHORT] = None
    """Continue a run: a checkpoint file, a run directory, or 'latest' (the newest run, or the one --name names)."""
    device: str = "auto"
    """'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    cpu_threads: int = 1
    """torch threads on CPU; 1 (the default) does not collapse when other jobs share the cores, 0 takes torch's
    default (every core: faster on a machine of one's own)."""
    amp: bool = True
    """Mixed precision on CUDA (bfloat16 where supported, else float16); ignored on CPU."""
    log_every: int = 25
    """Steps between progress updates, stats.jsonl lines and the non-finite loss check."""
    validate_every: int = 0
    """Steps between quick validations, the points of the learning curves (0: every 5% of the run)."""
    full_validate_every: int = 0
    """Steps between full validations, with images and every metric (0: only at the end)."""
    checkpoint_every: int = 1000
    """Steps between checkpoints (0: only at the end)."""
    keep_checkpoints: int = 2
    """Numbered checkpoints kept besides latest and best (0: latest and best only)."""
    sampler_stats_every: int = 100
    """Steps between snapshots of the sampler's stats in error_sampling_stats.json."""
    max_minutes: float | None = None
    """Stop (saving latest) after this much training time, in minutes."""
    stop_at: int = 0
    """Stop (saving latest) at this step, on the schedules of a --steps run (0: at --steps); a resume goes on."""
    stop_at_target: bool = False
    """Stop at the first validation that reaches the task's target, when it has one (a motion completed)."""
    runs_dir: str = "runs"
    """Root of all run directories."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Write TensorBoard event files under the run's tb/."""
    wandb_project: str | None = None
    """Also log to Weights & Biases in this project (needs the wandb package; WANDB_MODE=offline works offline)."""
    wandb_run_name: str | None = None
    """The W&B run's name (default: the run directory's)."""

    def validation_interval(self) -> int:
        """Steps between quick validations: validate_every, or every 5% of the run."""
        return self.validate_every if self.validate_every > 0 else max(1, -(-self.steps // 20))


@dataclasses.dataclass
class SamplingConfig:
    """How units are drawn: the sampling engine's strategy and the arguments every strategy shares."""

    # adaptive, not the engine's error_weighted: over the suite's radiance fields error_weighted settles below
    # uniform (-0.22 dB pooled over 39 seeds, the interval excluding 0) where adaptive is level, and on images it
    # keeps most of the gain without error_weighted's falls on documents and line art (BENCHMARKS.md).
    strategy: Annotated[StrategyName, SHORT] = "adaptive"
    """uniform, error_weighted, spatial, adaptive or failure_bins; its own arguments are in its section below."""
    decay: float = _engine_default("decay")
    """EMA decay of each unit's error: decay * old + (1 - decay) * new."""
    update_frequency: int = _engine_default("update_frequency")
    """Steps between rebuilds of the sampling distribution."""
    warmup_iterations: int = _engine_default("warmup_iterations")
    """Steps drawn uniformly before the errors are used."""
    min_error_weight: float = _engine_default("min_error_weight")
    """A unit's weight is at least this fraction of the mean error."""
    uniform_fraction: float = _engine_default("uniform_fraction")
    """Share of the distribution that stays uniform."""
    correction: str = _engine_default("correction")
    """Importance weights: 'none', 'full' (unbiased, 1/(N p)) or an exponent alpha in [0, 1]."""
    correction_ramp: bool = False
    """Grow the correction linearly over the run: none at the first step, --sampling.correction by the last."""
    weight_cap: float = _engine_default("weight_cap")
    """Largest importance weight."""
    stratified: bool = _engine_default("stratified")
    """Draw one uniform per stratum instead of independent uniforms (less variance)."""
    noise_aware: bool = True
    """Subtract the targets' own noise from each unit's error where the data has it (renders made with --noise)."""
    draw_seed_offset: int = 0
    """Added to --seed for the draws alone: another value keeps each seed's initialisation, changes what is drawn."""
    error_weighted: ErrorWeighted = dataclasses.field(default_factory=ErrorWeighted)
    spatial: Spatial = dataclasses.field(default_factory=Spatial)
    adaptive: Adaptive = dataclasses.field(default_factory=Adaptive)
    failure_bins: FailureBins = dataclasses.field(default_factory=FailureBins)

    def chosen(self) -> Strategy:
        """The chosen strategy's dataclass (a fresh one for uniform, which has no arguments)."""
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {self.strategy!r}")
        return getattr(self, self.strategy, None) or STRATEGIES[self.strategy]()

    def correction_value(self) -> str | float:
        """``correction`` as the engine takes it: 'none', 'full' or a float in [0, 1]."""
        if self.correction in ("none", "full"):
            return self.correction
        try:
            value = float(self.correction)
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"--sampling.correction must be 'none', 'full' or a number in [0, 1], got {self.correction!r}"
            )
        return value


@dataclasses.dataclass
class OptimConfig:
    """Adam, gradient clipping and the learning-rate schedule."""

    lr: float = 1e-2
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam's moment decays."""
    eps: float = 1e-15
    """Adam's epsilon."""
    weight_decay: float = 0.0
    """L2 penalty."""
    clip_grad_norm: float = 0.0
    """Clip each optimizer's gradient norm to this (0: no clipping)."""
    schedule: Literal["cosine", "step", "plateau", "none"] = "cosine"
    """cosine: linear warm-up then cosine decay to final_lr_fraction (NeuS's); step; plateau; none."""
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


SHORT_RUN_SAMPLING = {
    "sampling__decay": 0.5,
    "sampling__update_frequency": 10,
    "sampling__warmup_iterations": 50,
}
"""Sampler settings for runs of a few thousand steps, in ``apply_changes`` form.

The engine's defaults are RadFoam's (a 1000-step warm-up, rebuilds every 100 steps), made for
runs of 20,000 steps; the image and NeRF presets start from these instead.
"""

TINY_RUN = {
    "train__steps": 20,
    "train__validate_every": 10,
    "train__log_every": 5,
    "train__checkpoint_every": 10,
    "train__sampler_stats_every": 10,
    "sampling__warmup_iterations": 2,
    "sampling__update_frequency": 2,
}
"""The cadence of a ``tiny`` preset (tests and smoke runs: seconds on any machine), in ``apply_changes`` form."""

RESUME_EXEMPT = frozenset(
    f"train.{name}"
    for name in (
        "steps",
        "device",
        "cpu_threads",
        "log_every",
        "validate_every",
        "full_validate_every",
        "checkpoint_every",
        "keep_checkpoints",
        "sampler_stats_every",
        "max_minutes",
        "stop_at",
        "stop_at_target",
        "name",
        "runs_dir",
        "resume",
        "progress",
        "tensorboard",
        "wandb_project",
        "wandb_run_name",
    )
)
"""Config keys a resumed run may change: they do not alter what is computed at a given step."""


class ConfigMismatchError(ValueError):
    """A checkpoint was written under a config that differs from the current one."""


def check_config(config: Any) -> None:
    """Refuse numbers no run can use, naming the flag, before anything is loaded or written.

    Checks the ``train``, ``sampling`` and ``optim`` sections of a pipeline's config; the
    pipeline's own fields are its task's to check.
    """
    train, sampling, optim = config.train, config.sampling, config.optim
    rules = [
        (train, "steps", lambda v: v >= 1, ">= 1"),
        (train, "batch_size", lambda v: v >= 1, ">= 1"),
        (train, "seed", lambda v: v >= 0, ">= 0"),
        (train, "cpu_threads", lambda v: v >= 0, ">= 0 (0: torch's default)"),
        (train, "log_every", lambda v: v >= 1, ">= 1"),
        (train, "validate_every", lambda v: v >= 0, ">= 0 (0: every 5% of the run)"),
        (train, "full_validate_every", lambda v: v >= 0, ">= 0 (0: only at the end)"),
        (train, "checkpoint_every", lambda v: v >= 0, ">= 0 (0: only at the end)"),
        (train, "keep_checkpoints", lambda v: v >= 0, ">= 0"),
        (train, "sampler_stats_every", lambda v: v >= 0, ">= 0"),
        (train, "max_minutes", lambda v: v is None or v > 0, "> 0"),
        (train, "stop_at", lambda v: 0 <= v <= train.steps, f"in [0, --steps = {train.steps}] (0: at --steps)"),
        (sampling, "draw_seed_offset", lambda v: v >= 0, ">= 0"),
        (sampling, "decay", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        (sampling, "update_frequency", lambda v: v >= 1, ">= 1"),
        (sampling, "warmup_iterations", lambda v: v >= 0, ">= 0"),
        (sampling, "min_error_weight", lambda v: v >= 0, ">= 0"),
        (sampling, "uniform_fraction", lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        (sampling, "weight_cap", lambda v: v >= 1.0, ">= 1"),
        (optim, "lr", lambda v: v > 0, "> 0"),
        (optim, "eps", lambda v: v >= 0, ">= 0"),
        (optim, "weight_decay", lambda v: v >= 0, ">= 0"),
        (optim, "clip_grad_norm", lambda v: v >= 0, ">= 0 (0: no clipping)"),
        (optim, "warmup_steps", lambda v: v >= 0, ">= 0"),
        (optim, "final_lr_fraction", lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        (optim, "step_size", lambda v: v >= 1, ">= 1"),
        (optim, "gamma", lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
        (optim, "plateau_patience", lambda v: v >= 0, ">= 0"),
    ]
    for section, name, valid, wanted in rules:
        value = getattr(section, name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (numeric and math.isfinite(value) and valid(value)):
            raise ValueError(f"{flag_of(section, name)} must be {wanted}, got {value!r}")
    if not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in optim.betas):
        raise ValueError(f"{flag_of(optim, 'betas')} must be two numbers in [0, 1), got {optim.betas!r}")
    if sampling.correction_ramp and sampling.correction_value() == "none":
        raise ValueError("--sampling.correction-ramp needs a --sampling.correction to grow to ('full' or an alpha)")
    sampling.correction_value()
    sampling.chosen()


def flag_of(section: Any, name: str) -> str:
    """The command-line flag of a field of the train, sampling or optim section."""
    prefixes = {TrainConfig: "train", SamplingConfig: "sampling", OptimConfig: "optim"}
    short = {"steps", "batch_size", "seed", "name", "resume", "strategy"}
    dashed = name.replace("_", "-")
    return f"--{dashed}" if name in short else f"--{prefixes[type(section)]}.{dashed}"


def apply_changes(config: Config, changes: Mapping[str, Any]) -> Config:
    """Set ``section__field=value`` entries on a nested config dataclass, in place; returns it.

    Presets are written this way (``train__steps=600``, ``sampling__spatial__patch_size=8``);
    an unknown field raises.
    """
    for dotted, value in changes.items():
        target = config
        *parents, attribute = dotted.split("__")
        for parent in parents:
            target = getattr(target, parent)
        if attribute not in {f.name for f in dataclasses.fields(target) if f.init}:
            raise AttributeError(f"unknown config field {dotted!r} ({type(target).__name__} has no {attribute!r})")
        setattr(target, attribute, value)
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON-friendly data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def config_from_dict(
    config_type: type[Config], data: Mapping[str, Any], where: str = "config", base: Any = None
) -> Config:
    """Rebuild a (nested) dataclass config from :func:`config_to_dict` output, rejecting unknown keys.

    Keys left out keep ``base``'s values (default: ``config_type()``'s), section by section, so a
    partial file changes only what it names: a pipeline's own section defaults (NeuS's learning
    rate in its ``optim``) stay, rather than the section type's.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping for {config_type.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(config_type, include_extras=False)
    names = {f.name for f in dataclasses.fields(config_type) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for {config_type.__name__}")
    if base is None:
        try:
            base = config_type()
        except TypeError:  # required fields: the constructor's defaults fill the rest
            base = None
    values = {} if base is None else {name: copy.deepcopy(getattr(base, name)) for name in names}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = config_from_dict(hint, value, f"{where}.{name}", None if base is None else getattr(base, name))
        elif _is_path(hint) and isinstance(value, str):
            value = Path(value)
        elif _is_tuple(hint) and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    try:
        return config_type(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error


def _union_args(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    return typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)


def _is_tuple(hint: Any) -> bool:
    return any(typing.get_origin(arg_) is tuple or arg_ is tuple for arg_ in _union_args(hint))


def _is_path(hint: Any) -> bool:
    return any(arg_ is Path for arg_ in _union_args(hint))


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
    """Raise :class:`ConfigMismatchError` naming every differing key; return the keys that differ but may.

    Keys the checkpoint lacks are options added since it was written: they may differ (the run
    continues with their current values).
    """
    old, new = _flatten(saved), _flatten(current)
    differing = sorted(k for k in old.keys() | new.keys() if old.get(k, "<absent>") != new.get(k, "<absent>"))
    blocking = [k for k in differing if k not in exempt and k in old]
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

    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def load_config_yaml(config_type: type[Config], path: str | Path) -> Config:
    """Read a config saved by :func:`save_config_yaml` (a run's config.yaml)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    return config_from_dict(config_type, data or {}, where=str(path))
