"""Atomic checkpoints and the random-number-generator states that make a resume exact."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "atomic_save",
    "capture_rng",
    "find_latest_run",
    "link_or_copy",
    "load_checkpoint",
    "resolve_checkpoint",
    "restore_rng",
]

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not a foveate checkpoint."""


def atomic_save(state: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same directory, fsync, then rename over ``path``.

    A crash or kill at any moment leaves either the previous file or the complete new one.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` an atomic alias of ``source`` (hard link, or a copy where links fail)."""
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        atomic_save(torch.load(source, map_location="cpu", weights_only=True), target)
        return
    os.replace(temporary, target)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def load_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by the training loop, with a clear error when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt or not a torch file ({error})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a foveate checkpoint (format {CHECKPOINT_FORMAT})")
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
