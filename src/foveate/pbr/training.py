"""``foveate pbr train``: NeuroPBR's command line on the shared training loop.

``--config`` takes a preset's name (``default``, ``quick_test``, ``lightweight``, ``tiny``) or a
``.py`` / ``.yaml`` file; every field of the config is a flag over it (``--model.encoder-backbone``,
``--loss.w-gan``, ``--optimizer.scheduler``), with NeuroPBR's short ones (``--data-root``,
``--batch-size``, ``--epochs``, ``--image-size``, ``--checkpoint-dir``, ``--resume``). A run lives in
its checkpoint directory: ``checkpoint_epoch_XXXX.pth``, ``best_model.pth``, ``latest.pth``,
``config.yaml``, ``stats.jsonl`` and TensorBoard's ``tb/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from foveate.train import (
    EXIT_CODES,
    Trainer,
    check_config,
    load_checkpoint,
    parse_config,
    seed_everything,
    select_device,
)
from foveate.train.checkpoint import CheckpointError
from foveate.train.distributed import first_process, join, rank_device

from .config import PRESETS, PBRConfig, read_config_file, upgrade_saved_config
from .task import NEUROPBR_LAYOUT, PBRTask

__all__ = ["make_pbr_trainer", "resolve_pbr_checkpoint", "train_command"]

DESCRIPTION = (
    "Train NeuroPBR's multi-view material estimator (three views in; albedo, roughness, metallic and normal "
    "maps out) on a dataset folder. --config takes a preset's name or a .py / .yaml file."
)


def resolve_pbr_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a checkpoint directory's ``latest.pth``."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = NEUROPBR_LAYOUT.latest_of(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def _saved_config(config: PBRConfig) -> Mapping[str, Any] | None:
    if not config.training.resume:
        return None
    return upgrade_saved_config(load_checkpoint(resolve_pbr_checkpoint(config.training.resume))["config"])


def _translate(argv: Sequence[str]) -> list[str]:
    """NeuroPBR's ``--config quick_test`` is the shared parser's ``--preset quick_test``."""
    args = list(argv)
    for i, arg in enumerate(args[:-1]):
        if arg == "--config" and args[i + 1] in PRESETS:
            args[i] = "--preset"
    for i, arg in enumerate(args):
        if arg.startswith("--config=") and arg.split("=", 1)[1] in PRESETS:
            args[i] = "--preset=" + arg.split("=", 1)[1]
    return args


def parse_pbr_config(argv: Sequence[str]) -> PBRConfig:
    config, _ = parse_config(
        PBRConfig,
        _translate(argv),
        presets=PRESETS,
        prog="foveate pbr train",
        description=DESCRIPTION,
        saved_config=_saved_config,
        readers={".py": read_config_file},
    )
    return config


def make_pbr_trainer(config: PBRConfig, console: Any = None, in_memory: bool = False) -> Trainer:
    """The trainer of ``config``: a fresh run in ``training.checkpoint_dir``, or the run ``training.resume`` continues.

    Everything is checked before anything is written: a bad flag or dataset leaves no files.
    """
    config.check()
    check_config(config)
    device = select_device(config.training.device)
    ranks = join(device)
    device = rank_device(device, ranks)
    if config.training.cpu_threads > 0:
        torch.set_num_threads(config.training.cpu_threads)
    resume_from = run_dir = None
    if config.training.resume:
        resume_from = resolve_pbr_checkpoint(config.training.resume)
        run_dir = resume_from.parent
        saved = load_checkpoint(resume_from)["config"]
        if "split_seed" not in saved.get("data", {}):
            # Written before data.split_seed: its split followed its seed, and must go on doing so.
            config.data.split_seed = upgrade_saved_config(saved)["data"]["split_seed"]
    elif not in_memory:
        run_dir = Path(config.training.checkpoint_dir)
        if NEUROPBR_LAYOUT.latest_of(run_dir).exists():
            raise CheckpointError(
                f"{run_dir} already holds a run; continue it with --resume {NEUROPBR_LAYOUT.latest_of(run_dir)}, "
                "or choose another --checkpoint-dir"
            )
    seed_everything(config.train.seed)
    task = PBRTask.from_config(config, device)
    run_dir = run_dir if ranks.leader else None
    return Trainer(task, config, device=device, run_dir=run_dir, resume_from=resume_from, console=console, ranks=ranks)


def train_command(argv: Sequence[str]) -> int:
    """``foveate pbr train [options]``: parse, train, print where the run went."""
    from rich.console import Console

    from foveate.pipelines.registry import USAGE_ERRORS, one_line

    console = Console(stderr=True)
    prog = "foveate pbr train"
    trainer = None
    try:
        config = parse_pbr_config(argv)
        trainer = make_pbr_trainer(config, console=console)
        console.print(f"{trainer.task.describe()}; {trainer.task.steps_per_epoch} steps an epoch", highlight=False)
        if config.training.resume:
            epoch = trainer.step // trainer.task.steps_per_epoch
            console.print(f"continuing {trainer.run_dir} from epoch {epoch} (step {trainer.step})", highlight=False)
        result = trainer.fit()
    except USAGE_ERRORS as error:
        if first_process():
            console.print(f"[red]{prog}: error:[/] {one_line(error)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        latest = None if trainer is None else trainer.checkpoints.latest
        if latest is None or not latest.exists():
            console.print(f"[yellow]{prog}: interrupted[/]", soft_wrap=True)
        else:
            console.print(f"[yellow]{prog}: aborted; the last complete checkpoint is kept ({latest})[/]")
        return EXIT_CODES["interrupted"]
    if trainer.ranks.leader:
        console.print(result.message, highlight=False, soft_wrap=True)
    if trainer.run_dir is not None:
        print(trainer.run_dir)
    return EXIT_CODES[result.status]
