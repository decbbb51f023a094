"""Checkpoints: loading and finding them, the store that writes a run's, and the RNG states of an exact resume."""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foveate.files import atomic_save

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointStore",
    "capture_rng",
    "find_latest_run",
    "load_checkpoint",
    "resolve_checkpoint",
    "restore_rng",
]

CHECKPOINT_FORMAT = 2
"""Version 2: the task's state (model, optimizers, schedulers, its own) under "task"."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not a foveate checkpoint."""


class CheckpointStore:
    """A run's ``checkpoints/``: ``latest.pt``, numbered ``step_*.pt`` (the newest ``keep``), ``best.pt``.

    Every file is written atomically; ``latest.pt`` is a hard link to the newest numbered one
    where the file system allows. Without a directory the store writes nothing but still
    tracks the best record, so in-memory runs report it too.

    Args:
        directory: where the files go, or None.
        keep: numbered checkpoints kept besides latest and best.
        better: ``better(value, than)`` says whether a metric value beats the best so far.
        metric: the key of the validation records to compare.
    """

    def __init__(
        self, directory: Path | None, keep: int, better: Callable[[float, float | None], bool], metric: str
    ) -> None:
        self.directory = directory
        self.keep = keep
        self.better = better
        self.metric = metric
        self.best: dict[str, Any] | None = None

    @property
    def latest(self) -> Path | None:
        return None if self.directory is None else self.directory / "latest.pt"

    def save(self, state: dict[str, Any], step: int, numbered: bool = True) -> Path | None:
        """Write ``latest.pt`` (and ``step_<step>.pt`` when ``numbered``); returns latest's path."""
        if self.directory is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        if numbered and self.keep > 0:
            path = atomic_save(state, self.directory / f"step_{step:08d}.pt")
            _link_or_copy(path, self.latest)
            for old in sorted(self.directory.glob("step_*.pt"))[: -self.keep]:
                old.unlink(missing_ok=True)
        else:
            atomic_save(state, self.latest)
        return self.latest

    def save_as(self, state: dict[str, Any], name: str) -> Path | None:
        """Write ``<name>.pt`` beside the others (``nonfinite.pt``, for inspection)."""
        if self.directory is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        return atomic_save(state, self.directory / f"{name}.pt")

    def consider(self, record: dict[str, Any], state: Callable[[], dict[str, Any]]) -> bool:
        """Keep ``record`` as the best if its metric beats the best so far, writing ``best.pt``."""
        value = record.get(self.metric)
        if value is None or not self.better(value, None if self.best is None else self.best[self.metric]):
            return False
        self.best = dict(record)
        if record.get("step", 0) > 0:
            self.save_as(state(), "best")
        return True


def load_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by the training loop, with a clear error when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt or not a torch file ({error})") from error
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a foveate checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format']}; this foveate reads format {CHECKPOINT_FORMAT}"
        )
    return state


def find_latest_run(pipeline_dir: Path) -> Path | None:
    """The run directory under ``pipeline_dir`` whose latest checkpoint is newest, or None."""
    candidates = list(pipeline_dir.glob("*/checkpoints/latest.pt"))
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime).parent.parent


def resolve_checkpoint(resume: str, pipeline_dir: Path, name: str | None) -> Path:
    """Turn ``--resume PATH|latest`` into a checkpoint file path."""
    if resume != "latest":
        path = Path(resume).expanduser()
        if path.is_dir():
            path = path / "checkpoints" / "latest.pt"
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        return path
    if name is not None:
        path = pipeline_dir / name / "checkpoints" / "latest.pt"
        if not path.is_file():
            raise CheckpointError(f"run {pipeline_dir / name} has no checkpoints/latest.pt to resume")
        return path
    run = find_latest_run(pipeline_dir)
    if run is None:
        raise CheckpointError(f"no run under {pipeline_dir} has a checkpoint to resume")
    return run / "checkpoints" / "latest.pt"


def capture_rng() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python's random."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng` (CUDA states only where the same devices exist)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` an atomic alias of ``source`` (a hard link, or a copy where links fail)."""
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        atomic_save(torch.load(source, map_location="cpu", weights_only=True), target)
        return
    os.replace(temporary, target)
