"""Error-guided pixel sampling on bundled photos: `foveate compare image` per setting, over seeds, in one table.

For every setting (a photo, or a photo with a deliberately small hash table) the image field is
trained once per variant and seed with the same initialisation, budget and validation points
(:func:`foveate.report.compare`); only the sampler differs. Every number in the table comes from
:mod:`foveate.report.pooling`: final PSNR, its paired difference to uniform (mean and worst
seed), and the steps and wall-clock at which a variant first reaches uniform's final PSNR
(interpolated between validations) as ratios of uniform's own.

    nice -n 10 python benchmarks/image_fields.py                      # the full table (~20 min, 2-core CPU)
    python benchmarks/image_fields.py --settings astronaut --seeds 1 --steps 60   # a quick look
    python benchmarks/image_fields.py --summarise benchmarks/results/image_fields_equal_steps.json

``--summarise`` trains nothing: it pools the runs an earlier invocation left (its JSON, also the
format the script wrote before it used the library). Wall-clock ratios are measured side by side
in one process; on a shared CPU they are noisy.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from foveate.pipelines import get_pipeline
from foveate.pipelines.image import preset
from foveate.report import RunRecord, compare, write_settings_summary
from foveate.report.compare import report_of

SETTINGS: dict[str, dict[str, Any]] = {
    "astronaut": {"image": "astronaut"},
    "coffee": {"image": "coffee"},
    "hubble_deep_field": {"image": "hubble_deep_field"},
    "immunohistochemistry": {"image": "immunohistochemistry"},
    # Capacity-limited: 2^12 rows per level; the finest levels collide heavily.
    "astronaut-small-table": {"image": "astronaut", "model__log2_table_size": 12},
}
VARIANTS = ("uniform", "error_weighted", "spatial", "adaptive")


def run(args: argparse.Namespace, command: str) -> dict[str, dict[str, Any]]:
    """One comparison per setting; returns the reports by setting."""
    spec = get_pipeline("image")
    reports = {}
    for setting in args.settings:
        config = preset(
            "cpu",
            train__steps=args.steps,
            train__batch_size=args.batch_size,
            train__validate_every=max(1, args.steps // args.validations),
            train__progress=False,
            train__tensorboard=False,
            train__cpu_threads=args.cpu_threads,
            ssim=False,
            **SETTINGS[setting],
        )
        started = time.perf_counter()
        comparison = compare(
            spec,
            config,
            args.variants,
            range(args.seeds),
            Path(args.out) / setting,
            workers=args.workers,
            command=command,
        )
        reports[setting] = comparison.report
        print(f"{setting}: {time.perf_counter() - started:.0f} s", flush=True)
    return reports


def summarise(path: Path, command: str) -> dict[str, dict[str, Any]]:
    """Reports by setting from the runs an earlier invocation saved in ``path`` (a JSON of runs)."""
    data = json.loads(path.read_text())
    runs = data["runs"]
    reports = {}
    for setting in dict.fromkeys(r["setting"] for r in runs):
        records = [
            RunRecord(
                r["variant"],
                r["seed"],
                r["curve"],
                {"psnr": r["final_psnr"]},
                r["train_seconds"],
                r["steps"],
                "completed",
                [],
                {},
            )
            for r in runs
            if r["setting"] == setting
        ]
        # The runs ran one torch thread each (the script's --cpu-threads default).
        reports[setting] = report_of(
            records,
            get_pipeline("image"),
            setting,
            command,
            threads=1,
            pooled_from=str(path),
            original_command=data.get("command"),
        )
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--validations", type=int, default=20, help="validation points per run")
    parser.add_argument("--cpu-threads", type=int, default=1, help="1 is steadiest on a busy shared CPU")
    parser.add_argument("--workers", type=int, default=1, help="training processes in parallel")
    parser.add_argument("--out", default="benchmarks/results/image_fields")
    parser.add_argument("--summarise", type=Path, metavar="JSON", help="train nothing: pool an earlier run's JSON")
    args = parser.parse_args(argv)
    if "uniform" not in args.variants:
        parser.error("the variants must include uniform (the reference)")
    torch.set_num_threads(args.cpu_threads)
    command = shlex.join(["python", "benchmarks/image_fields.py", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    reports = summarise(args.summarise, command) if args.summarise else run(args, command)
    seconds = None if args.summarise else time.perf_counter() - started
    text = write_settings_summary(
        Path(args.out), "Image fields: error-guided pixel sampling on bundled photos", reports, command, seconds
    )
    print(text)
    print(f"written to {Path(args.out) / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
