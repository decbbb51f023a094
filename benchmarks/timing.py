"""Timing helpers shared by the benchmark scripts: medians, CUDA-synchronised, side by side."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import torch


def once(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of ``fn``, waiting for queued CUDA work before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up run."""
    fn()
    return statistics.median(once(fn, device) for _ in range(repeats))


def side_by_side(
    first: Callable[[], object], second: Callable[[], object], device: torch.device, repeats: int
) -> tuple[float, float]:
    """Median seconds of two functions run alternately, so load on a shared machine hits both alike."""
    first(), second()
    a, b = [], []
    for _ in range(repeats):
        a.append(once(first, device))
        b.append(once(second, device))
    return statistics.median(a), statistics.median(b)


def write_rows(path: str | None, device: str, rows: list[dict]) -> None:
    """Write a benchmark's rows with the device and torch they were measured on, where ``path`` is given."""
    if path:
        with open(path, "w") as stream:
            json.dump({"device": device, "torch": torch.__version__, "rows": rows}, stream, indent=1)
