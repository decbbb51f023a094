"""The star universe: HELIOS's equal iterations per cell against the engine's budget over cells.

Builds a Hipparcos universe (``--max-mag``), picks the trainable cells within ``--neighbors`` of the
landmarks, and trains them twice with the same total number of iterations: every cell
``--iterations`` (HELIOS), and ``--iterations`` x cells spent by the engine in chunks of ``--chunk``
on the cells whose loss is highest (``train_with_budget``). Reports the held-out PSNR over cells
(mean, worst decile, worst), the wall-clock of each run and cells per second; writes
``summary.json`` and ``summary.md`` into ``--out``.

With ``--strategies``, the benchmark suite's case instead: the same budget spent by each strategy
(uniform included) for each of ``--seeds`` seeds of the engine's draws (the cells' training is
deterministic, so a seed changes only which cells get the chunks), written as a comparison's
``report.json`` and ``report.md``. Its one validation is at the end: the held-out PSNR averaged
over the cells.

    python benchmarks/universe.py --max-mag 8 --neighbors 0 --iterations 100 --image-size 64 --workers 2
    python benchmarks/universe.py --strategies uniform error_weighted adaptive --seeds 3 --out DIR
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from foveate.report.compare import build_report, machine, write_report
from foveate.report.pooling import RunRecord
from foveate.train import Metric
from foveate.universe import build_universe, load_hipparcos, read_index
from foveate.universe.schedule import landmark_cells, train_universe, train_with_budget
from foveate.universe.train import CellTrainConfig


def summarise(records: list[dict], seconds: float) -> dict:
    psnr = np.array([r["psnr_after"] for r in records])
    return {
        "cells": len(records),
        "iterations": int(sum(r["iterations"] for r in records)),
        "iterations_per_cell": [int(min(r["iterations"] for r in records)), int(max(r["iterations"] for r in records))],
        "psnr_mean": float(psnr.mean()),
        "psnr_worst_decile": float(np.percentile(psnr, 10)),
        "psnr_worst": float(psnr.min()),
        "psnr_before_mean": float(np.mean([r["psnr_before"] for r in records])),
        "cells_with_lower_loss": int(sum(r["loss_after"] < r["loss_before"] for r in records)),
        "seconds": seconds,
    }


def compare_budgets(
    args: argparse.Namespace,
    universe: Path,
    config: CellTrainConfig,
    trainable: list,
    landmarks: list[dict],
    command: str,
) -> None:
    """Each strategy spends the same budget, once per seed; the runs are written as a comparison."""
    budget = args.iterations * len(trainable)
    records = []
    for strategy in args.strategies:
        for seed in range(args.seed, args.seed + args.seeds):
            draws = seed + args.draw_seed_offset
            target = args.work / f"budget-{strategy}-s{draws}"
            started = time.perf_counter()
            cells = train_with_budget(
                universe,
                target,
                config,
                budget,
                args.chunk,
                strategy,
                2.0,
                landmarks,
                args.workers,
                cells=trainable,
                seed=draws,
            )
            seconds = time.perf_counter() - started
            result = summarise(cells, seconds)
            print(f"{strategy}, seed {seed}: {result['psnr_mean']:.2f} dB, {seconds:.0f} s", flush=True)
            records.append(
                RunRecord(
                    variant=strategy,
                    seed=seed,
                    curve=[[budget, result["psnr_mean"], seconds]],
                    final={"psnr": result["psnr_mean"], "psnr_worst_decile": result["psnr_worst_decile"]},
                    train_seconds=seconds,
                    steps=budget,
                    status="done",
                    sampling=[],
                    profiles={},
                )
            )
    report = build_report(
        records,
        pipeline="universe",
        source=f"Hipparcos-2 to magnitude {args.max_mag}, {len(trainable)} cells",
        metric=Metric("psnr", True, "held-out PSNR (dB), mean over cells"),
        unit_noun="cells",
        step_noun="iterations",
        steps=budget,
        batch=None,
        machine=machine(threads=1),
        command=command,
    )
    write_report(args.out, report, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-mag", type=float, default=8.0)
    parser.add_argument("--neighbors", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=100, help="per cell in the equal run")
    parser.add_argument("--chunk", type=int, default=25, help="iterations per pick in the budget run")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategy", default="error_weighted", help="the budget's strategy (equal against budget)")
    parser.add_argument("--strategies", nargs="+", default=[], help="compare these strategies' budgets instead")
    parser.add_argument("--seeds", type=int, default=1, help="with --strategies: seeds of the draws")
    parser.add_argument("--seed", type=int, default=0, help="with --strategies: the first of the seeds")
    parser.add_argument(
        "--sampling.draw-seed-offset",
        dest="draw_seed_offset",
        type=int,
        default=0,
        help="with --strategies: added to each seed (another value: the same cells, other draws)",
    )
    parser.add_argument("--work", type=Path, default=Path("runs/universe-benchmark"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/universe"))
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/universe.py", *sys.argv[1:]])

    universe = args.work / "universe"
    if not (universe / "index.json").is_file():
        print("\n".join(build_universe(load_hipparcos(), universe, max_mag=args.max_mag).lines()))
    index = read_index(universe)
    counts = {e["file_name"]: e["splat_count"] for e in index.cells}
    cells = [c for c in landmark_cells(index, json.loads((universe / "landmarks.json").read_text()), args.neighbors)]
    trainable = [c for c in cells if counts[c.file_name] >= 2]
    print(f"{len(trainable)} trainable cells within {args.neighbors} of the landmarks")
    config = CellTrainConfig(
        iterations=args.iterations,
        image_size=args.image_size,
        densify_interval=max(1, args.iterations // 4),
        densify_until=int(args.iterations * 0.8),
    )
    landmarks = json.loads((universe / "landmarks.json").read_text())
    if args.strategies:
        compare_budgets(args, universe, config, trainable, landmarks, command)
        return
    started = time.perf_counter()
    equal = train_universe(universe, args.work / "equal", config, trainable, args.workers)
    equal_seconds = time.perf_counter() - started
    started = time.perf_counter()
    budget = train_with_budget(
        universe,
        args.work / "budget",
        config,
        args.iterations * len(trainable),
        args.chunk,
        args.strategy,
        2.0,
        landmarks,
        args.workers,
        cells=trainable,
    )
    budget_seconds = time.perf_counter() - started
    result = {
        "command": command,
        "machine": machine(),
        "equal": summarise(equal, equal_seconds),
        "budget": summarise(budget, budget_seconds),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(result, indent=1))
    rows = [
        "| run | cells | iterations (a cell) | held-out PSNR mean | worst decile | worst | lower loss "
        "| wall-clock | cells / s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("equal", "budget"):
        r = result[name]
        rows.append(
            f"| {name} | {r['cells']} | {r['iterations']:,} "
            f"({r['iterations_per_cell'][0]}-{r['iterations_per_cell'][1]}) "
            f"| {r['psnr_mean']:.2f} dB | {r['psnr_worst_decile']:.2f} dB | {r['psnr_worst']:.2f} dB "
            f"| {r['cells_with_lower_loss']}/{r['cells']} | {r['seconds']:.0f} s | {r['cells'] / r['seconds']:.2f} |"
        )
    text = (
        f"# Star universe: equal iterations against a budget over cells\n\nCommand: `{command}`\n\n"
        + "\n".join(rows)
        + "\n"
    )
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
