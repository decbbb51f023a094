"""NeuS and RNb-NeuS on rendered meshes: Chamfer against steps and time, uniform rays against error-guided ones.

For every scene and mode (rgb: images and masks; rnb: normal and albedo maps) the surface is
trained once per variant and seed with the same initialisation and budget
(:func:`foveate.report.compare`); the metric is the Chamfer-L1 distance to the scene's
``mesh.ply`` in percent of its bounding-box diagonal. Besides the pooled comparison, the summary
gives each variant's training time to reach ``--goal`` percent (1% by default), read off the
curves (:func:`foveate.report.pooling.crossing`).

Render the scenes first (Mitsuba 3; pymeshlab ships the cow):

    COW=$(python -c "import pymeshlab, os; print(os.path.dirname(pymeshlab.__file__))")/tests/sample_meshes/cow.obj
    foveate data render --out scenes/bunny128 --scene bunny --views 60 --val-views 4 --test-views 0 \\
        --width 128 --height 128 --spp 32
    foveate data render --out scenes/cow128 --scene $COW --views 60 --val-views 4 --test-views 0 \\
        --width 128 --height 128 --spp 32
    nice -n 10 python benchmarks/neus.py --scenes scenes/bunny128 scenes/cow128 --modes rgb rnb --seeds 3 --workers 2

and, alone on the machine, the time one run takes to the goal with both cores:

    python benchmarks/neus.py --scenes scenes/bunny128 --modes rgb rnb --strategies uniform --seeds 1 --threads 2 \
        --out benchmarks/results/neus_goal

``--summarise DIR ...`` trains nothing: it pools the ``<scene>-<mode>/report.json`` earlier runs left, so
a variant trained later (``--strategies spatial --out other``) joins the uniform runs of the same seeds.
Uniform is the reference wherever it was trained.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from foveate.pipelines import get_pipeline
from foveate.pipelines.neus import preset
from foveate.report import RunRecord, compare, write_settings_summary
from foveate.report.compare import report_of
from foveate.report.pooling import crossing


def run(args: argparse.Namespace, command: str) -> dict[str, dict[str, Any]]:
    spec = get_pipeline("neus")
    reports = {}
    for scene in args.scenes:
        for mode in args.modes:
            changes: dict[str, Any] = {
                "scene": scene,
                "mode": mode,
                "train__seed": args.first_seed,
                "train__cpu_threads": args.threads,
            }
            if args.steps:
                changes["train__steps"] = args.steps
            config = preset(args.preset, **changes, train__progress=False, train__tensorboard=False)
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            out = Path(args.out) / f"{Path(scene).name}-{mode}"
            reports[out.name] = compare(
                spec, config, args.strategies, seeds, out, workers=args.workers, command=command
            ).report
    return reports


def summarise(directories: list[Path], command: str) -> dict[str, dict[str, Any]]:
    """Reports by setting from the runs earlier invocations left in ``directories``."""
    records: dict[str, list[RunRecord]] = {}
    threads: dict[str, int] = {}
    for directory in directories:
        for path in sorted(directory.glob("*/report.json")):
            data = json.loads(path.read_text())
            records.setdefault(path.parent.name, []).extend(RunRecord.from_dict(r) for r in data["runs"])
            threads[path.parent.name] = data["machine"]["torch_threads"]
    if not records:
        raise SystemExit(f"no <scene>-<mode>/report.json under {', '.join(map(str, directories))}")
    spec = get_pipeline("neus")
    return {
        setting: report_of(runs, spec, setting, command, threads[setting], pooled_from=[str(d) for d in directories])
        for setting, runs in records.items()
    }


def goal_table(reports: dict[str, dict[str, Any]], goal: float) -> str:
    """Training seconds (median over seeds) until each variant's Chamfer first reaches ``goal`` percent."""
    lines = [
        f"| setting | variant | seeds reaching {goal:g}% | training seconds to {goal:g}% (median) | steps (median) |",
        "|---|---|---|---|---|",
    ]
    for setting, report in reports.items():
        by_variant: dict[str, list[RunRecord]] = {}
        for record in report["runs"]:
            record = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
            by_variant.setdefault(record.variant, []).append(record)
        for variant, runs in by_variant.items():
            seconds = [crossing(r.curve, goal, higher_is_better=False, column=2) for r in runs]
            steps = [crossing(r.curve, goal, higher_is_better=False, column=0) for r in runs]
            reached = [s for s in seconds if s is not None]
            if len(reached) * 2 > len(runs):  # a median over seeds counting the misses as never
                median_seconds = f"{statistics.median(s if s is not None else float('inf') for s in seconds):.0f}"
                median_steps = f"{statistics.median(s if s is not None else float('inf') for s in steps):.0f}"
            else:
                median_seconds = median_steps = "not reached"
            lines.append(f"| {setting} | {variant} | {len(reached)}/{len(runs)} | {median_seconds} | {median_steps} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", help="scene directories (with mesh.ply, NeuS and RNb layouts)")
    parser.add_argument("--modes", nargs="+", default=["rgb", "rnb"], choices=["rgb", "rnb"])
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed ... first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=0, help="training steps (0: the preset's)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--goal", type=float, default=1.0, help="Chamfer goal, percent of the diagonal")
    parser.add_argument("--workers", type=int, default=1, help="training processes in parallel")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--out", default="benchmarks/results/neus")
    parser.add_argument(
        "--summarise",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="train nothing: pool the runs earlier invocations left in these directories",
    )
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/neus.py", *sys.argv[1:]])
    started = time.perf_counter()
    if args.summarise:
        reports, seconds = summarise(args.summarise, command), None
    else:
        if not args.scenes:
            parser.error("pass --scenes (or --summarise)")
        reports, seconds = run(args, command), time.perf_counter() - started
    text = write_settings_summary(
        Path(args.out),
        "NeuS / RNb-NeuS: error-guided rays on rendered meshes",
        reports,
        command,
        seconds,
        goal_table(reports, args.goal),
    )
    print(text)


if __name__ == "__main__":
    main()
