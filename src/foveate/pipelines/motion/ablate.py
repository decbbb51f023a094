"""``foveate motion ablate``: every variant x seed as its own training run, in parallel processes."""

from __future__ import annotations

import dataclasses
import datetime
import json
import multiprocessing
import os
import platform
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from foveate.train.config import config_to_dict

from .report import build_report
from .train import MotionConfig, run_name, train

__all__ = ["ablate", "ablation_configs", "machine_description"]


def ablation_configs(base: MotionConfig, variants: list[str], seeds: list[int], out: Path) -> list[MotionConfig]:
    """One config per (variant, seed), each with its own run directory ``out/<variant>-s<seed>``."""
    return [
        dataclasses.replace(base, form=form, seed=seed, name=f"{form}-s{seed}", out=out)
        for form in variants
        for seed in seeds
    ]


def _train_quietly(config: MotionConfig) -> dict[str, Any]:
    try:
        return train(config)
    except Exception:
        return {"name": run_name(config), "error": traceback.format_exc()}


def machine_description() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    try:
        import mujoco

        mujoco_version = mujoco.__version__
    except ImportError:
        mujoco_version = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mujoco": mujoco_version,
    }


def ablate(
    base: MotionConfig, variants: list[str], seeds: list[int], out: Path, workers: int = 1, command: str = ""
) -> dict[str, Any]:
    """Train every (variant, seed) with ``workers`` processes, then report every finished run in ``out``.

    Runs already in ``out`` from earlier invocations (other seeds) join the report.
    """
    configs = ablation_configs(base, variants, seeds, out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    if workers <= 1:
        results = [_train_quietly(c) for c in configs]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_train_quietly, c) for c in configs]
            results = [f.result() for f in as_completed(futures)]
    failed = [r for r in results if "error" in r]
    finished = sorted(p.parent.parent for p in out.glob("*/report/summary.json"))
    previous = out / "report" / "report.json"
    commands = json.loads(previous.read_text()).get("commands", []) if previous.is_file() else []
    meta = {
        "commands": [*commands, command],
        "hardware": machine_description(),
        "workers": workers,
        "base_config": {k: v for k, v in config_to_dict(base).items() if k not in ("form", "seed", "name")},
        "failed_runs": failed,
    }
    report = build_report(finished, out / "report", meta) if finished else {**meta, "runs": []}
    return report
