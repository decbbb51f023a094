"""Training a universe: which cells, in which processes, written where, resumable.

``train_universe`` reads a universe folder, trains the chosen cells (all of them, or those around
the landmarks) and writes a complete universe: every other cell, and every cell with fewer than two
splats (as HELIOS does), is copied through. Each trained cell is written as soon as it is done and
its numbers appended to ``training_metrics.json``, so an interrupted run continues where it stopped
and a finished cell is never trained twice. Each cell's star views are cached in ``views/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cells import CellFormatError, UniverseIndex, index_entry, read_cell, read_index, write_cell, write_index
from .grid import CellId, HLGGrid
from .train import CellTrainConfig, train_cell
from .views import star_views

__all__ = ["landmark_cells", "train_universe"]

METRICS = "training_metrics.json"


def landmark_cells(index: UniverseIndex, landmarks: Iterable[dict[str, Any]], neighbours: int) -> list[CellId]:
    """The existing cells within ``neighbours`` steps (l, theta, phi) of any landmark's cell."""
    grid = HLGGrid(index.config)
    existing = set(index.ids())
    chosen: set[CellId] = set()
    for landmark in landmarks:
        position = landmark["pos_meters"]
        cell = grid.cell_of((position["x"], position["y"], position["z"]))
        if cell is not None:
            chosen.update(c for c in grid.neighbours(cell, neighbours) if c in existing)
    return sorted(chosen)


def _train_one(job: tuple[Path, Path, str, CellTrainConfig, str]) -> dict[str, Any]:
    """Train one cell file into the target universe (a worker's unit of work)."""
    source, target, file_name, config, device = job
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cell = read_cell(source / "cells" / file_name)
    cache = target / "views" / f"{cell.cell.name}-{config.image_size}px-{config.views}.pt"
    if cache.is_file():
        frame, views = torch.load(cache, weights_only=False)
    else:
        frame, views = star_views(cell, config.views, config.image_size)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save((frame, views), cache.with_suffix(".tmp"))
        os.replace(cache.with_suffix(".tmp"), cache)
    trained, result = train_cell(cell, config, torch.device(device), (frame, views))
    size = write_cell(target / "cells" / file_name, trained)
    record = dataclasses.asdict(result)
    record.update(file_name=file_name, file_size_bytes=size)
    return record


def train_universe(
    source: Path,
    target: Path,
    config: CellTrainConfig,
    cells: list[CellId] | None = None,
    workers: int = 1,
    device: str = "cpu",
    progress: Callable[[dict[str, Any], int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``cells`` (default: all) of the universe in ``source`` into ``target``; returns every cell's record."""
    index = read_index(source)
    if source.resolve() == target.resolve():
        raise ValueError(f"--output {target} is the input universe; choose another folder")
    (target / "cells").mkdir(parents=True, exist_ok=True)
    metrics = target / METRICS
    records: list[dict[str, Any]] = json.loads(metrics.read_text())["cells"] if metrics.is_file() else []
    done = {r["file_name"] for r in records if (target / "cells" / r["file_name"]).is_file()}
    records = [r for r in records if r["file_name"] in done]
    wanted = None if cells is None else {c.file_name for c in cells}
    jobs = []
    for entry in index.cells:
        name = entry["file_name"]
        trainable = entry["splat_count"] >= 2 and (wanted is None or name in wanted)
        if trainable and name not in done:
            jobs.append((source, target, name, config, device))
        elif not trainable and not (target / "cells" / name).is_file():
            if not (source / "cells" / name).is_file():
                raise CellFormatError(f"{source}/cells/{name}: listed in index.json but missing")
            shutil.copyfile(source / "cells" / name, target / "cells" / name)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for record in pool.imap_unordered(_train_one, jobs):
                _finish(record, records, metrics, progress, len(jobs))
    else:
        for job in jobs:
            _finish(_train_one(job), records, metrics, progress, len(jobs))
    entries = []
    for entry in index.cells:
        path = target / "cells" / entry["file_name"]
        count = (
            read_cell(path).splats.shape[0]
            if entry["file_name"] in {r["file_name"] for r in records}
            else entry["splat_count"]
        )
        entries.append(index_entry(CellId.parse(entry["file_name"]), count, path.stat().st_size))
    write_index(target, UniverseIndex(index.config, entries))
    return records


def _finish(
    record: dict[str, Any],
    records: list[dict[str, Any]],
    metrics: Path,
    progress: Callable[[dict[str, Any], int, int], None] | None,
    total: int,
) -> None:
    records.append(record)
    summary = {
        "cells": records,
        "trained": len(records),
        "mean_loss_reduction": float(np.mean([1 - r["loss_after"] / r["loss_before"] for r in records])),
    }
    temporary = metrics.with_suffix(".tmp")
    temporary.write_text(json.dumps(summary, indent=1))
    os.replace(temporary, metrics)
    if progress is not None:
        progress(record, len(records), total)
