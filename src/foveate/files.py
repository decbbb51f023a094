"""Atomic file writes: a crash or kill at any moment leaves the previous file or the complete new one.

Every file foveate writes that a later step reads (checkpoints, configs, reports, logs rewritten
in place) goes through :func:`atomic_write`: write a temporary file beside the target, flush and
fsync it, rename it over the target, then fsync the directory so the rename itself is durable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_save", "atomic_write", "atomic_write_json", "atomic_write_text"]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(file)`` on a temporary binary file, then move it over ``path`` atomically."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON atomically; non-finite floats become ``null`` (JSON has no NaN)."""
    return atomic_write_text(path, json.dumps(_finite(data), indent=indent, default=_plain) + "\n")


def atomic_save(state: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda file: torch.save(state, file))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


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
