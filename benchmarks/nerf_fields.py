"""Error-guided ray sampling on rendered scenes: `foveate compare nerf` per scene, over seeds, in one table.

For every scene the radiance field is trained once per variant and seed with the same
initialisation and budget (:func:`foveate.report.compare`); every number comes from
:mod:`foveate.report.pooling` (see ``benchmarks/image_fields.py``).

Render the scenes first (Mitsuba 3), then run:

    for s in bunny cornell; do
        foveate data render --out scenes/${s}64 --scene $s --views 48 --val-views 4 --test-views 0 \\
            --width 64 --height 64 --spp 32
    done
    nice -n 10 python benchmarks/nerf_fields.py --scenes scenes/bunny64 scenes/cornell64 --seeds 3 --steps 600

``--summarise DIR ...`` trains nothing: it pools the runs earlier invocations left, their
``<scene>/report.json`` (or, from before the script used the library, ``<scene>/seed*/report.json``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from foveate.pipelines import get_pipeline
from foveate.pipelines.nerf import preset
from foveate.report import RunRecord, compare, write_settings_summary
from foveate.report.compare import report_of


def run(args: argparse.Namespace, command: str) -> dict[str, dict[str, Any]]:
    spec = get_pipeline("nerf")
    reports = {}
    for scene in args.scenes:
        config = preset(
            args.preset,
            scene=scene,
            val_views=args.val_views,
            train__steps=args.steps,
            train__seed=args.first_seed,
            train__progress=False,
            train__tensorboard=False,
        )
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        out = Path(args.out) / Path(scene).name
        reports[Path(scene).name] = compare(
            spec, config, args.strategies, seeds, out, workers=args.workers, command=command
        ).report
    return reports


def summarise(directories: list[Path], command: str) -> dict[str, dict[str, Any]]:
    """Reports by scene from the runs earlier invocations left in ``directories``."""
    by_scene: dict[str, list[RunRecord]] = {}
    sources: dict[str, list[str]] = {}
    for directory in directories:
        for path in sorted(directory.glob("*/report.json")):
            data = json.loads(path.read_text())
            by_scene.setdefault(path.parent.name, []).extend(RunRecord.from_dict(r) for r in data["runs"])
            sources.setdefault(path.parent.name, []).append(data.get("command", ""))
        for path in sorted(directory.glob("*/seed*/report.json")):  # written before the library pooled
            data = json.loads(path.read_text())
            by_scene.setdefault(path.parent.parent.name, []).extend(
                RunRecord(
                    name,
                    data["seed"],
                    run["curve"],
                    {"psnr": run["final_psnr"]},
                    run["train_seconds"],
                    data["steps"],
                    "completed",
                    [],
                    {},
                )
                for name, run in data["strategies"].items()
            )
    if not by_scene:
        raise SystemExit(
            f"no <scene>/report.json or <scene>/seed*/report.json under {', '.join(map(str, directories))}"
        )
    # The runs ran one torch thread each (the cpu preset's setting).
    return {
        scene: report_of(
            records,
            get_pipeline("nerf"),
            scene,
            command,
            threads=1,
            pooled_from=[str(d) for d in directories],
            original_commands=sources.get(scene, []),
        )
        for scene, records in by_scene.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", help="scene directories")
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted", "spatial", "adaptive"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed ... first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--val-views", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="training processes in parallel")
    parser.add_argument("--out", default="benchmarks/results/nerf_fields")
    parser.add_argument(
        "--summarise",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="train nothing: pool the runs earlier invocations left in these directories",
    )
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/nerf_fields.py", *sys.argv[1:]])
    started = time.perf_counter()
    if args.summarise:
        reports, seconds = summarise(args.summarise, command), None
    else:
        if not args.scenes:
            parser.error("pass --scenes (or --summarise)")
        if "uniform" not in args.strategies:
            parser.error("include uniform: the other strategies are measured against it")
        reports, seconds = run(args, command), time.perf_counter() - started
    text = write_settings_summary(
        Path(args.out), "Radiance fields: error-guided ray sampling on rendered scenes", reports, command, seconds
    )
    print(text)


if __name__ == "__main__":
    main()
