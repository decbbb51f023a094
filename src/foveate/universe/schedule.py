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
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foveate.allocator import keep_freed_memory
from foveate.train.distributed import ranks

from .cells import CellFormatError, UniverseIndex, index_entry, read_cell, read_index, write_cell, write_index
from .grid import CellId, HLGGrid
from .train import CellTrainConfig, train_cell
from .views import star_views

__all__ = ["allocate", "landmark_cells", "train_universe", "train_with_budget"]

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


def _copy_landmarks(source: Path, target: Path) -> None:
    """The trained universe keeps the landmarks of the one it came from."""
    if (source / "landmarks.json").is_file():
        shutil.copyfile(source / "landmarks.json", target / "landmarks.json")


def _train_one(job: tuple[Path, Path, str, CellTrainConfig, str]) -> dict[str, Any]:
    """Train one cell file into the target universe (a worker's unit of work)."""
    source, target, file_name, config, device = job
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cell = read_cell(source / "cells" / file_name)
    trained, result = train_cell(cell, config, torch.device(device), _views_for(target, cell, config))
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
    team = ranks()
    (target / "cells").mkdir(parents=True, exist_ok=True)
    metrics = target / METRICS
    records = _records(target)
    done = {r["file_name"] for r in records}
    wanted = None if cells is None else {c.file_name for c in cells}
    jobs = []
    for entry in index.cells:
        name = entry["file_name"]
        trainable = entry["splat_count"] >= 2 and (wanted is None or name in wanted)
        if trainable and name not in done:
            jobs.append((source, target, name, config, device))
        elif not trainable and team.leader and not (target / "cells" / name).is_file():
            if not (source / "cells" / name).is_file():
                raise CellFormatError(f"{source}/cells/{name}: listed in index.json but missing")
            shutil.copyfile(source / "cells" / name, target / "cells" / name)
    if team.leader:
        _copy_landmarks(source, target)
    mine = team.share(jobs)
    own = metrics if team.world == 1 else target / "ranks" / f"metrics.{team.rank}.json"
    own.parent.mkdir(exist_ok=True)
    if workers > 1 and len(mine) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers, initializer=keep_freed_memory) as pool:
            for record in pool.imap_unordered(_train_one, mine):
                _finish(record, records, own, progress, len(jobs))
    else:
        for job in mine:
            _finish(_train_one(job), records, own, progress, len(jobs))
    records = _merge(team.gather(records))
    if team.leader:
        _write_metrics(metrics, records)
        entries = []
        trained = {r["file_name"] for r in records}
        for entry in index.cells:
            path = target / "cells" / entry["file_name"]
            count = read_cell(path).splats.shape[0] if entry["file_name"] in trained else entry["splat_count"]
            entries.append(index_entry(CellId.parse(entry["file_name"]), count, path.stat().st_size))
        write_index(target, UniverseIndex(index.config, entries))
    team.barrier()
    return records


def _records(target: Path) -> list[dict[str, Any]]:
    """The records of cells an earlier run finished (its own file and every rank's), whose files exist."""
    found = []
    for path in [target / METRICS, *sorted((target / "ranks").glob("*.json"))]:
        if path.is_file():
            found.extend(json.loads(path.read_text())["cells"])
    return _merge([found], target)


def _merge(groups: list[list[dict[str, Any]]], target: Path | None = None) -> list[dict[str, Any]]:
    """One record per cell (the last one seen), in file-name order; with ``target``, only written cells."""
    merged: dict[str, dict[str, Any]] = {}
    for group in groups:
        for record in group:
            if target is None or (target / "cells" / record["file_name"]).is_file():
                merged[record["file_name"]] = record
    return [merged[name] for name in sorted(merged)]


def _write_metrics(path: Path, records: list[dict[str, Any]], **extra: Any) -> None:
    reductions = [1 - r["loss_after"] / r["loss_before"] for r in records]
    summary = {
        "cells": records,
        "trained": len(records),
        "mean_loss_reduction": float(np.mean(reductions)) if reductions else None,
        **extra,
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(summary, indent=1))
    os.replace(temporary, path)


def _finish(
    record: dict[str, Any],
    records: list[dict[str, Any]],
    metrics: Path,
    progress: Callable[[dict[str, Any], int, int], None] | None,
    total: int,
) -> None:
    records.append(record)
    _write_metrics(metrics, records)
    if progress is not None:
        progress(record, len(records), total)


def _views_for(target: Path, cell: Any, config: CellTrainConfig) -> tuple[Any, Any]:
    cache = target / "views" / f"{cell.cell.name}-{config.image_size}px-{config.views}.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=False)
    views = star_views(cell, config.views, config.image_size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(views, cache.with_suffix(".tmp"))
    os.replace(cache.with_suffix(".tmp"), cache)
    return views


_WORKER_FITS: dict[str, Any] = {}
"""The cells a worker process trained last, kept so that its next chunk of one skips the rebuild
(used only while the saved state is still at the same step)."""


def _chunk(job: tuple[Path, Path, str, CellTrainConfig, str, int]) -> tuple[str, float, int]:
    """Train one cell for one chunk, from and back to its saved state (a worker's unit of work)."""
    from .train import CellFit

    source, target, file_name, config, device, iterations = job
    torch.set_num_threads(1)
    saved = target / "state" / f"{file_name}.pt"
    state = torch.load(saved, weights_only=False) if saved.is_file() else None
    fit = _WORKER_FITS.get(file_name)
    if fit is None or state is None or fit.step != state["step"]:
        cell = read_cell(source / "cells" / file_name)
        fit = CellFit(cell, config, torch.device(device), _views_for(target, cell, config), measure_start=state is None)
        if state is not None:
            fit.load_state_dict(state)
    _WORKER_FITS[file_name] = fit
    loss = fit.run(iterations)
    saved.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fit.state_dict(), saved.with_suffix(".tmp"))
    os.replace(saved.with_suffix(".tmp"), saved)
    return file_name, loss, fit.step


def allocate(sampler: Any, count: int, round_index: int) -> list[int]:
    """The next ``count`` chunks: one draw of the engine over the cells (a cell drawn twice trains two)."""
    return sampler.sample(count, round_index).ids.tolist()


def feed_back(sampler: Any, drawn: list[int], errors: np.ndarray, weights: np.ndarray, round_index: int) -> None:
    """Tell the engine the drawn cells' new losses (x their weights), in the order drawn."""
    ids = torch.as_tensor(drawn, dtype=torch.int64)
    sampler.update(ids, torch.as_tensor(errors[drawn] * weights[drawn], dtype=torch.float32), round_index)


def train_with_budget(
    source: Path,
    target: Path,
    config: CellTrainConfig,
    budget: int,
    chunk: int = 100,
    strategy: str = "error_weighted",
    landmark_weight: float = 2.0,
    landmarks: Iterable[dict[str, Any]] = (),
    workers: int = 1,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    cells: list[CellId] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Spend ``budget`` iterations over the trainable cells (of ``cells``, default all) by their current
    loss (the engine over cells); the other cells are copied through.

    Every cell first trains one ``chunk``; then, round after round, ``workers`` distinct cells drawn
    by the engine from their latest chunk's loss (landmark cells' loss x ``landmark_weight``) train
    one more chunk each (a cell drawn twice trains two chunks in a row), and their new losses go
    back to the engine, until the budget is spent. Each cell keeps its splats, Adam moments and
    density state between chunks (``state/``), so a cell trained in k chunks is trained as one
    run of k x chunk steps; the schedule and the engine's state are saved every round, and an
    interrupted run continues exactly.
    Finally every cell is written as ``train_universe`` writes it. ``seed`` seeds the engine's
    draws alone (the cells' training is deterministic).
    """
    from foveate.sampling import Sampler

    from .train import CellFit

    index = read_index(source)
    if source.resolve() == target.resolve():
        raise ValueError(f"--output {target} is the input universe; choose another folder")
    wanted = None if cells is None else {c.file_name for c in cells}
    names = [
        e["file_name"] for e in index.cells if e["splat_count"] >= 2 and (wanted is None or e["file_name"] in wanted)
    ]
    if not names:
        raise ValueError(f"{source}: no cell with 2 or more splats to train")
    if budget < chunk * len(names):
        raise ValueError(
            f"--budget {budget} is less than one chunk ({chunk}) for each of the {len(names)} trainable cells"
        )
    team = ranks()
    (target / "cells").mkdir(parents=True, exist_ok=True)
    if team.leader:
        _copy_landmarks(source, target)
    special = {c.file_name for c in landmark_cells(index, landmarks, 0)}
    weights = np.array([landmark_weight if n in special else 1.0 for n in names])
    schedule_path = target / "schedule.json"
    schedule = json.loads(schedule_path.read_text()) if schedule_path.is_file() else None
    fresh = {"names": names, "budget": budget, "strategy": strategy, "seed": seed}
    if schedule is None or any(schedule.get(key) != value for key, value in fresh.items()):
        schedule = {
            **fresh,
            "chunk": chunk,
            "errors": [None] * len(names),
            "steps": [0] * len(names),
            "round": 0,
        }
        if team.leader:  # another schedule's cells and draws: start them afresh
            shutil.rmtree(target / "state", ignore_errors=True)
            for stale in target.glob("sampler-*.pt"):
                stale.unlink()
        team.barrier()
    sampler = Sampler(len(names), strategy, warmup_iterations=0, update_frequency=1, decay=0.0, seed=seed)
    saved_sampler = target / f"sampler-{schedule['round']}.pt"
    if saved_sampler.is_file():
        sampler.load_state_dict(torch.load(saved_sampler, weights_only=False))

    pool = None
    if workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=keep_freed_memory)
    per_round = max(1, workers) * team.world

    def run_round(chosen: list[int], drawn: bool = False) -> None:
        chunks = Counter(chosen)
        jobs = [(source, target, names[i], config, device, chunk * n) for i, n in team.share(list(chunks.items()))]
        local = pool.map(_chunk, jobs) if pool is not None and len(jobs) > 1 else [_chunk(job) for job in jobs]
        for name, loss, steps in (outcome for group in team.gather(local) for outcome in group):
            position = names.index(name)
            schedule["errors"][position], schedule["steps"][position] = loss, steps
        if drawn and team.leader:
            feed_back(sampler, chosen, np.array(schedule["errors"]), weights, schedule["round"])
            torch.save(sampler.state_dict(), target / f"sampler-{schedule['round'] + 1}.pt")
        schedule["round"] += 1
        if team.leader:
            temporary = schedule_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(schedule))
            os.replace(temporary, schedule_path)
            for stale in target.glob("sampler-*.pt"):
                if stale.name != f"sampler-{schedule['round']}.pt":
                    stale.unlink()

    try:
        pending = [i for i, e in enumerate(schedule["errors"]) if e is None]
        for start in range(0, len(pending), per_round):
            run_round(pending[start : start + per_round])
            if progress and team.leader:
                progress(f"first chunks: {min(start + per_round, len(pending))}/{len(pending)} cells")
        if team.leader and not sampler.updates:  # every cell's first loss: where the draws start
            errors = torch.as_tensor(np.array(schedule["errors"]) * weights, dtype=torch.float32)
            sampler.update(torch.arange(len(names)), errors, schedule["round"])
        while sum(schedule["steps"]) + chunk <= budget:
            room = (budget - sum(schedule["steps"])) // chunk
            chosen = allocate(sampler, min(per_round, room), schedule["round"]) if team.leader else None
            run_round(team.broadcast(chosen), drawn=True)
            if progress and team.leader:
                progress(f"round {schedule['round']}: {sum(schedule['steps']):,}/{budget:,} iterations spent")
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    records = []
    for name in team.share(names):
        cell = read_cell(source / "cells" / name)
        fit = CellFit(cell, config, torch.device(device), _views_for(target, cell, config), measure_start=False)
        fit.load_state_dict(torch.load(target / "state" / f"{name}.pt", weights_only=False))
        size = write_cell(target / "cells" / name, fit.trained_cell())
        record = dataclasses.asdict(fit.result())
        record.update(file_name=name, file_size_bytes=size)
        records.append(record)
    records = _merge(team.gather(records))
    if team.leader:
        for entry in index.cells:
            if entry["file_name"] not in names:
                shutil.copyfile(source / "cells" / entry["file_name"], target / "cells" / entry["file_name"])
        _write_metrics(target / METRICS, records, budget=budget, strategy=strategy)
        entries = [
            index_entry(
                CellId.parse(e["file_name"]),
                read_cell(target / "cells" / e["file_name"]).splats.shape[0],
                (target / "cells" / e["file_name"]).stat().st_size,
            )
            for e in index.cells
        ]
        write_index(target, UniverseIndex(index.config, entries))
    team.barrier()
    return records
