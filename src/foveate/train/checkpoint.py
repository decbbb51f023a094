"""Checkpoints: loading and finding them, the store that writes a run's, and the RNG states of an exact resume."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foveate.files import atomic_save, atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointLayout",
    "CheckpointStore",
    "RunLock",
    "capture_rng",
    "find_latest_run",
    "load_checkpoint",
    "newest_loadable",
    "note_last_run",
    "remove_leftovers",
    "resolve_checkpoint",
    "restore_rng",
]

CHECKPOINT_FORMAT = 2
"""Version 2: the task's state (model, optimizers, schedulers, its own) under "task"."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not a foveate checkpoint."""


@dataclass(frozen=True)
class CheckpointLayout:
    """Where a run keeps its checkpoints and what they are called.

    foveate's own layout is ``RUN/checkpoints/{latest,best,step_XXXXXXXX}.pt``; a pipeline whose users
    expect another (NeuroPBR's ``checkpoint_epoch_XXXX.pth``, ``best_model.pth``, ``latest.pth`` in the
    checkpoint directory itself) names it here, and every reader of checkpoints follows it.

    Attributes:
        folder: the checkpoints' folder inside the run directory ("" for the run directory itself).
        latest, best: the file names of the newest and of the best checkpoint.
        numbered: the pattern of numbered checkpoints, formatted with the step // ``steps_per_number``
            (zero-padded, so that names sort as numbers do).
        steps_per_number: training steps per number (an epoch's steps for epoch-numbered files).
    """

    folder: str = "checkpoints"
    latest: str = "latest.pt"
    best: str = "best.pt"
    numbered: str = "step_{:08d}.pt"
    steps_per_number: int = 1

    def directory(self, run_dir: Path) -> Path:
        return Path(run_dir) / self.folder if self.folder else Path(run_dir)

    def latest_of(self, run_dir: Path) -> Path:
        """The latest checkpoint of the run in ``run_dir``."""
        return self.directory(run_dir) / self.latest

    def numbered_name(self, step: int) -> str:
        return self.numbered.format(step // self.steps_per_number)

    @property
    def numbered_glob(self) -> str:
        """The glob of numbered checkpoints (``step_*.pt``)."""
        return self.numbered.split("{", 1)[0] + "*" + self.numbered.rsplit("}", 1)[-1]


class CheckpointStore:
    """A run's checkpoints: latest, numbered (the newest ``keep``) and best, named by a :class:`CheckpointLayout`.

    Every file is written atomically. Without a directory the store writes nothing but still
    tracks the best record, so in-memory runs report it too. The latest file is a copy of the
    newest numbered one, never a link: damage to one file cannot reach the other.

    Args:
        directory: where the files go, or None.
        keep: numbered checkpoints kept besides latest and best.
        better: ``better(value, than)`` says whether a metric value beats the best so far.
        metric: the key of the validation records to compare.
        layout: the files' names (foveate's by default).
    """

    def __init__(
        self,
        directory: Path | None,
        keep: int,
        better: Callable[[float, float | None], bool],
        metric: str,
        layout: CheckpointLayout = CheckpointLayout(),
    ) -> None:
        self.directory = directory
        self.keep = keep
        self.better = better
        self.metric = metric
        self.layout = layout
        self.best: dict[str, Any] | None = None

    @property
    def latest(self) -> Path | None:
        return None if self.directory is None else self.directory / self.layout.latest

    def save(self, state: dict[str, Any], step: int, numbered: bool = True) -> Path | None:
        """Write the latest checkpoint (and a numbered one when ``numbered``); returns latest's path."""
        if self.directory is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        if numbered and self.keep > 0:
            path = atomic_save(state, self.directory / self.layout.numbered_name(step))
            _copy(path, self.latest)
            for old in sorted(self.directory.glob(self.layout.numbered_glob))[: -self.keep]:
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
        """Keep ``record`` as the best if its metric beats the best so far, writing the best file.

        Only trained states compete: the validation before the first step never becomes the best,
        so a run always has a best checkpoint once it has validated after training.
        """
        value = record.get(self.metric)
        if record.get("step", 0) <= 0 or value is None:
            return False
        if not self.better(value, None if self.best is None else self.best[self.metric]):
            return False
        self.best = dict(record)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_save(state(), self.directory / self.layout.best)
        return True


def load_checkpoint(
    path: str | Path, map_location: torch.device | str = "cpu", layout: CheckpointLayout = CheckpointLayout()
) -> dict[str, Any]:
    """Load a checkpoint written by the training loop, with a clear error when it is unusable.

    When it cannot be read, the error names the newest loadable checkpoint beside it (``layout``
    says how its neighbours are named).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a torn or foreign file fails in many ways; each is "unreadable" here
        fallback = newest_loadable(path.parent, but=path, layout=layout)
        hint = f"; the newest loadable checkpoint beside it is {fallback} (--resume {fallback})" if fallback else ""
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt or not a torch file ({error}){hint}") from error
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a foveate checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format']}; this foveate reads format {CHECKPOINT_FORMAT}"
        )
    return state


def newest_loadable(
    directory: Path, but: Path | None = None, layout: CheckpointLayout = CheckpointLayout()
) -> Path | None:
    """The newest checkpoint in ``directory`` (numbered ones, newest first, then best) that loads, or None."""
    candidates = [*sorted(directory.glob(layout.numbered_glob), reverse=True), directory / layout.best]
    for candidate in candidates:
        if candidate == but or not candidate.is_file():
            continue
        try:
            torch.load(candidate, map_location="cpu", weights_only=True)
        except Exception:  # unreadable: try the next older one
            continue
        return candidate
    return None


def remove_leftovers(directory: Path) -> list[Path]:
    """Delete the temporary files a killed atomic write left in ``directory`` (``.NAME.tmp-PID``)."""
    leftovers = [p for p in directory.glob(".*.tmp-*") if p.is_file()] if directory.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def find_latest_run(pipeline_dir: Path, layout: CheckpointLayout = CheckpointLayout()) -> Path | None:
    """The run directory under ``pipeline_dir`` whose latest checkpoint is newest, or None."""
    candidates = [p for p in pipeline_dir.iterdir() if layout.latest_of(p).is_file()] if pipeline_dir.is_dir() else []
    if not candidates:
        return None
    return max(candidates, key=lambda run: layout.latest_of(run).stat().st_mtime)


LAST_RUN = ".last_run"
"""A file in each pipeline's runs directory naming the run started last: what ``--resume latest`` continues."""


def note_last_run(run_dir: Path) -> None:
    """Remember ``run_dir`` as the run started last in its pipeline's directory."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir.parent / LAST_RUN, lambda file: file.write(run_dir.name.encode("utf-8")))


def resolve_checkpoint(
    resume: str, pipeline_dir: Path, name: str | None, layout: CheckpointLayout = CheckpointLayout()
) -> Path:
    """Turn ``--resume PATH|latest`` into a checkpoint file path (a run directory means its latest).

    ``latest`` without a name continues the run started last in ``pipeline_dir`` (recorded when
    it started), never merely the one written to most recently.
    """
    if resume != "latest":
        path = Path(resume).expanduser()
        if path.is_dir():
            path = layout.latest_of(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        return path
    if name is not None:
        path = layout.latest_of(pipeline_dir / name)
        if not path.is_file():
            raise CheckpointError(f"run {pipeline_dir / name} has no {path.relative_to(pipeline_dir / name)} to resume")
        return path
    last = pipeline_dir / LAST_RUN
    if last.is_file():
        run = pipeline_dir / last.read_text().strip()
        path = layout.latest_of(run)
        if not path.is_file():
            raise CheckpointError(
                f"the run started last, {run}, has no checkpoint yet; name the run to continue with --name"
            )
        return path
    run = find_latest_run(pipeline_dir, layout)
    if run is None:
        raise CheckpointError(f"no run under {pipeline_dir} has a checkpoint to resume")
    return layout.latest_of(run)


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


def _copy(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` atomically, streaming (no second copy in memory)."""
    with source.open("rb") as original:
        atomic_write(target, lambda file: shutil.copyfileobj(original, file, 1 << 24))


class RunLock:
    """An exclusive lock on a run directory, held while a process trains in it.

    A second process that tries to train the same run (two ``--resume`` of one run) is refused
    with the holder's process id, instead of both writing its checkpoints. The lock is an
    ``flock`` on ``run_dir/.lock``: the system releases it when its holder exits, even killed.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self.file: Any = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a+")
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise CheckpointError(
                f"{self.path.parent} is in use by {holder}; wait for it, or train another --name"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()}")
        self.file.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
