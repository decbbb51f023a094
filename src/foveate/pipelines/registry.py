"""Pipelines by name, and the commands every pipeline gets by registering: train, compare, render.

A pipeline registers a :class:`PipelineSpec`: its config type with named presets, how to
build its task, and optionally render options. ``foveate train NAME``, ``foveate compare NAME``
and ``foveate render NAME`` are then built from the spec; nothing else needs writing::

    SPEC = register_pipeline(
        PipelineSpec("image", ImageConfig, ImageFieldTask, PRESETS, "Fit a photograph with a hash-grid neural field.")
    )
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from foveate.sampling import STRATEGIES
from foveate.train import (
    EXIT_CODES,
    CheckpointError,
    ConfigMismatchError,
    Preset,
    Task,
    Trainer,
    TrainResult,
    apply_changes,
    check_config,
    config_from_dict,
    load_checkpoint,
    parse_config,
    resolve_checkpoint,
    seed_everything,
    select_device,
)
from foveate.train.checkpoint import note_last_run
from foveate.train.distributed import ALONE, first_process, join, rank_device

STRATEGY_VARIANTS = {
    name: {"sampling__strategy": name} for name in ("uniform", "error_weighted", "spatial", "adaptive")
}
"""What a comparison varies by default: the engine's strategies for pixel-like units."""
assert set(STRATEGY_VARIANTS) <= set(STRATEGIES)

USAGE_ERRORS = (FileNotFoundError, ValueError, KeyError, CheckpointError, ConfigMismatchError)
"""What a command reports as one line (bad input, a missing run) instead of a traceback."""


@dataclass(frozen=True)
class PipelineSpec:
    """A trainable system.

    Attributes:
        name: the registered name (``foveate train NAME``, ``runs/NAME/``).
        config_type: a dataclass with ``train``, ``sampling`` and ``optim`` sections.
        task_type: the :class:`~foveate.train.Task` subclass; ``task_type.from_config(config, device)``
            builds a task, and its metric and nouns are read from the class.
        presets: named configs; the first is the default; a ``tiny`` one runs in seconds on a CPU.
        description: one line for ``--help``.
        variants: what ``foveate compare`` can train side by side: a name and the config changes
            it makes (``apply_changes`` form); the first ``default_variants`` are compared by default.
        default_variants: how many of ``variants`` a comparison takes by default.
        render_options: a dataclass of ``foveate render NAME`` flags; None when the task renders nothing.
        config_readers: ``--config`` readers of other formats by file suffix (NeuS's ``.conf``).
        command: the pipeline's own training command, when its users expect other flags than the
            shared ones (NeuroPBR's); ``foveate train NAME`` then runs it with the arguments.
        length: the dotted config field holding the run's length, which ``foveate compare --budgets``
            scales (``train.steps``; NeuroPBR's ``training.epochs``).
    """

    name: str
    config_type: type
    task_type: type[Task]
    presets: Mapping[str, Preset]
    description: str
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: dict(STRATEGY_VARIANTS))
    default_variants: int = 4
    render_options: type | None = None
    config_readers: Mapping[str, Callable[[Path], Any]] = field(default_factory=dict)
    command: Callable[[list[str]], int] | None = None
    length: str = "train.steps"

    def with_variant(self, config: Any, variant: str) -> Any:
        """``config`` changed to train ``variant`` (in place; returns it)."""
        if variant not in self.variants:
            raise ValueError(f"{self.name} has no variant {variant!r}; choose from {', '.join(self.variants)}")
        return apply_changes(config, self.variants[variant])


@dataclass
class RenderOptions:
    """Which run and checkpoint ``foveate render`` reads."""

    run: Path
    """Run directory (holding checkpoints/ and config.yaml), e.g. runs/nerf/NAME."""
    checkpoint: Literal["auto", "best", "latest"] = "auto"
    """'auto' takes the best checkpoint when present, else the latest."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class _RunOnly:
    run: Path | None = None


_REGISTRY: dict[str, PipelineSpec] = {}
_MODULES = {
    "image": "foveate.pipelines.image",
    "nerf": "foveate.pipelines.nerf",
    "motion": "foveate.pipelines.motion",
    "neus": "foveate.pipelines.neus",
    "splat": "foveate.pipelines.splat",
    "pbr": "foveate.pbr",
}
"""Built-in pipelines, imported on first use."""


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

    ``in_memory=True`` writes no run directory (comparisons and tests).
    """
    trainer = make_trainer(spec, config, console=console, in_memory=in_memory)
    return trainer.fit(), trainer


def make_trainer(
    spec: PipelineSpec, config: Any, *, console: Any = None, in_memory: bool = False, alone: bool = False
) -> Trainer:
    """The trainer :func:`run_pipeline` runs: device, threads, seeds, the run directory (or a resume) and the task.

    Under ``torchrun`` the processes train one run together, unless ``alone`` (a comparison's
    jobs, spread over the ranks, each train on their own). The config's numbers and device are
    checked first, so a bad flag writes nothing.
    """
    check_config(config)
    device = select_device(config.train.device)
    ranks = ALONE if alone else join(device)
    device = rank_device(device, ranks)
    if config.train.cpu_threads > 0:
        torch.set_num_threads(config.train.cpu_threads)
    resume_from = run_dir = None
    if config.train.resume:
        layout = spec.task_type.checkpoint_names
        resume_from = resolve_checkpoint(config.train.resume, _pipeline_dir(spec, config), config.train.name, layout)
        run_dir = resume_from.parent.parent if layout.folder else resume_from.parent
    elif not in_memory:
        stamp = ranks.broadcast(time.strftime("%Y%m%d-%H%M%S"))
        name = config.train.name or f"{spec.task_type.run_name(config)}-{stamp}"
        run_dir = _pipeline_dir(spec, config) / name
        if spec.task_type.checkpoint_names.latest_of(run_dir).exists():
            raise CheckpointError(
                f"{run_dir} already holds a run; continue it with --resume latest --name {name}, "
                "or choose another --name"
            )
    seed_everything(config.train.seed)
    task = spec.task_type.from_config(config, device)  # bad inputs fail here, before anything is written
    writes = not in_memory and ranks.leader
    if writes and resume_from is None:
        note_last_run(run_dir)
    return Trainer(
        task,
        config,
        device=device,
        run_dir=run_dir if writes else None,
        resume_from=resume_from,
        console=console,
        ranks=ranks,
    )


def _saved_config(spec: PipelineSpec) -> Callable[[Any], Mapping[str, Any] | None]:
    def saved(config: Any) -> Mapping[str, Any] | None:
        if not config.train.resume:
            return None
        layout = spec.task_type.checkpoint_names
        path = resolve_checkpoint(config.train.resume, _pipeline_dir(spec, config), config.train.name, layout)
        return load_checkpoint(path)["config"]

    return saved


def train_command(name: str, argv: Sequence[str]) -> int:
    """``foveate train NAME [options]``: parse, train, print where the run went."""
    from rich.console import Console

    console = Console(stderr=True)
    prog = f"foveate train {name}"
    trainer = None
    try:
        spec = get_pipeline(name)
        if spec.command is not None:
            return spec.command(list(argv))
        config, _ = parse_config(
            spec.config_type,
            argv,
            presets=spec.presets,
            prog=prog,
            description=spec.description,
            saved_config=_saved_config(spec),
            readers=spec.config_readers,
        )
        trainer = make_trainer(spec, config, console=console)
        if config.train.resume:
            console.print(f"continuing {trainer.run_dir} from step {trainer.step}", highlight=False, soft_wrap=True)
        result = trainer.fit()
    except USAGE_ERRORS as error:
        if first_process():
            console.print(f"[red]{prog}: error:[/] {one_line(error)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        if trainer is None or trainer.checkpoints.latest is None:
            console.print(f"[yellow]{prog}: interrupted[/]", soft_wrap=True)
        else:
            latest = trainer.checkpoints.latest
            console.print(
                f"[yellow]{prog}: aborted; the last complete checkpoint is kept ({latest})[/]", soft_wrap=True
            )
        return EXIT_CODES["interrupted"]
    if trainer.ranks.leader:
        console.print(result.message, highlight=False, soft_wrap=True)
    if trainer.run_dir is not None:
        print(trainer.run_dir)
    return EXIT_CODES[result.status]


def load_run(run: Path, which: str = "auto", device: str = "auto", expect: str | None = None) -> Trainer:
    """The trainer of a finished or stopped run, restored from its checkpoint (for rendering and exports)."""
    run = Path(run)
    if not run.is_dir():
        raise CheckpointError(f"{run}: run directory not found")
    directory = run / "checkpoints"
    names = {"auto": ("best.pt", "latest.pt"), "best": ("best.pt",), "latest": ("latest.pt",)}[which]
    path = next((directory / n for n in names if (directory / n).is_file()), None)
    if path is None:
        raise CheckpointError(f"{run}: no {' or '.join(names)} under {directory}; is this a training run's directory?")
    state = load_checkpoint(path)
    pipeline = state.get("pipeline")
    if expect is not None and pipeline != expect:
        raise CheckpointError(f"{path} is a checkpoint of pipeline {pipeline!r}, not {expect!r}")
    spec = get_pipeline(pipeline)
    config = config_from_dict(spec.config_type, state["config"], where=str(path))
    config.train.device, config.train.progress = device, False
    seed_everything(config.train.seed)
    task = spec.task_type.from_config(config, select_device(device))
    return Trainer(task, config, device=select_device(device), run_dir=None, resume_from=path)


def render_command(name: str | None, argv: Sequence[str]) -> int:
    """``foveate render NAME --run DIR [options]`` (NAME may be left out: the run's checkpoint names it)."""
    import tyro
    from rich.console import Console

    console = Console(stderr=True)
    prog = "foveate render" + (f" {name}" if name else "")
    try:
        if name is None:
            where, _ = tyro.cli(_RunOnly, args=list(argv), return_unknown_args=True, add_help=False)
            if where.run is None:
                raise ValueError("give --run DIR (a training run), or a pipeline: foveate render PIPELINE --run DIR")
            name = load_checkpoint(_any_checkpoint(where.run)).get("pipeline")
        spec = get_pipeline(name)
        if spec.render_options is None:
            raise ValueError(f"pipeline {name!r} renders nothing; its products are written when training ends")
        options = tyro.cli(
            dataclasses.make_dataclass("Render", [], bases=(spec.render_options, RenderOptions)),
            args=list(argv),
            prog=prog,
            description=f"Render a trained {name} run into its renders/ directory.",
        )
        trainer = load_run(options.run, options.checkpoint, options.device, expect=name)
        trainer.task.model.eval()
        with torch.no_grad():
            written = trainer.task.render(options, Path(options.run) / "renders", options.progress)
    except USAGE_ERRORS as error:
        console.print(f"[red]{prog}: error:[/] {one_line(error)}", highlight=False, soft_wrap=True)
        return 2
    for path in written:
        print(path)
    return 0


def _any_checkpoint(run: Path) -> Path:
    for name in ("best.pt", "latest.pt"):
        if (run / "checkpoints" / name).is_file():
            return run / "checkpoints" / name
    raise CheckpointError(f"{run}: no checkpoints/best.pt or latest.pt; is this a training run's directory?")


def one_line(error: BaseException) -> str:
    """The error's message (a KeyError's without the quotes ``str`` adds)."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
