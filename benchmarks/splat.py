"""Gaussian splatting on rendered meshes: held-out PSNR against steps and time, shuffled views against guided ones.

For every scene the splats are trained once per variant and seed with the same start and budget
(:func:`foveate.report.compare`): ``uniform`` is gsplat's order (every training view once per
epoch, shuffled), the others let the engine draw the views by their loss. Besides the pooled
comparison (final PSNR and SSIM, steps and seconds to uniform's final), the summary gives each
run's final held-out PSNR, its splat count and its training time, and the median training
seconds to ``--goal`` dB (24 by default, the acceptance line of the ``cpu`` preset).

Render the scenes first (Mitsuba 3; pymeshlab ships the cow):

    COW=$(python -c "import pymeshlab, os; print(os.path.dirname(pymeshlab.__file__))")/tests/sample_meshes/cow.obj
    foveate data render --out scenes/bunny64 --scene bunny --views 32 --val-views 8 --test-views 0 \\
        --width 64 --height 64 --spp 32
    foveate data render --out scenes/cow64 --scene $COW --views 32 --val-views 8 --test-views 0 \\
        --width 64 --height 64 --spp 32
    nice -n 10 python benchmarks/splat.py --scenes scenes/bunny64 scenes/cow64 --seeds 3 --workers 2
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from foveate.pipelines import get_pipeline
from foveate.pipelines.splat import preset
from foveate.report import RunRecord, compare, write_settings_summary
from foveate.report.pooling import crossing


def run(args: argparse.Namespace, command: str) -> dict[str, dict[str, Any]]:
    spec = get_pipeline("splat")
    reports = {}
    for scene in args.scenes:
        changes: dict[str, Any] = {"scene": scene, "train__seed": args.first_seed, "train__cpu_threads": args.threads}
        if args.steps:
            changes["train__steps"] = args.steps
        if args.tiles > 1:
            changes["views__tiles"] = args.tiles
        config = preset(args.preset, **changes, train__progress=False, train__tensorboard=False)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        out = Path(args.out) / Path(scene).name
        reports[out.name] = compare(
            spec, config, args.strategies, seeds, out, workers=args.workers, command=command
        ).report
    return reports


def runs_table(reports: dict[str, dict[str, Any]], goal: float) -> str:
    """Per variant: final PSNR (median and range over seeds), training seconds, and seconds to ``goal`` dB."""
    lines = [
        f"| scene | variant | final PSNR (dB), median [min, max] | splats (median) | training seconds (median) "
        f"| seconds to {goal:g} dB (median) |",
        "|---|---|---|---|---|---|",
    ]
    for scene, report in reports.items():
        by_variant: dict[str, list[RunRecord]] = {}
        for record in report["runs"]:
            record = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
            by_variant.setdefault(record.variant, []).append(record)
        for variant, runs in by_variant.items():
            finals = [r.final[report["metric"]["name"]] for r in runs]
            seconds = [r.train_seconds for r in runs]
            splats = [r.final.get("splats", float("nan")) for r in runs]
            to_goal = [crossing(r.curve, goal, higher_is_better=True, column=2) for r in runs]
            reached = [s for s in to_goal if s is not None]
            goal_text = (
                f"{statistics.median(reached):.0f} ({len(reached)}/{len(runs)} seeds)" if reached else "not reached"
            )
            lines.append(
                f"| {scene} | {variant} | {statistics.median(finals):.2f} [{min(finals):.2f}, {max(finals):.2f}] "
                f"| {statistics.median(splats):,.0f} | {statistics.median(seconds):.0f} | {goal_text} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", required=True, help="scene directories (Blender, NeuS or COLMAP)")
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed ... first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=0, help="training steps (0: the preset's)")
    parser.add_argument("--tiles", type=int, default=1, help="tiles per image side as units (1: whole views)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--goal", type=float, default=24.0, help="held-out PSNR goal in dB")
    parser.add_argument("--workers", type=int, default=1, help="training processes in parallel")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--out", default="benchmarks/results/splat")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/splat.py", *sys.argv[1:]])
    started = time.perf_counter()
    reports = run(args, command)
    text = write_settings_summary(
        Path(args.out),
        "Gaussian splatting: error-guided views on rendered meshes",
        reports,
        command,
        time.perf_counter() - started,
        runs_table(reports, args.goal),
    )
    print(text)


if __name__ == "__main__":
    main()
