"""Error-guided ray sampling on rendered scenes, several seeds: `foveate compare nerf` per seed, aggregated.

For every scene and seed, the radiance field is trained once per strategy with the same
initialisation and budget (``foveate.report.compare_nerf``); reported per scene and strategy:
final validation PSNR (equal steps), its paired difference to uniform (mean / worst seed), and the
steps and training time at which the strategy first reaches uniform's final PSNR, as fractions of
uniform's (medians over the seeds that got there).

Render the scenes first (Mitsuba 3), then run:

    for s in bunny cornell; do
        foveate data render --out scenes/${s}64 --scene $s --views 48 --val-views 4 --test-views 0 \
            --width 64 --height 64 --spp 32
    done
    nice -n 10 python benchmarks/nerf_fields.py --scenes scenes/bunny64 scenes/cornell64 --seeds 3 --steps 600
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from foveate.report.compare_nerf import NerfCompareConfig, run_nerf_comparison

from foveate.pipelines.nerf import preset


def summarise(reports: list[dict]) -> dict[str, dict]:
    """Per strategy: final PSNR mean/std, paired delta to uniform, fractions to reach uniform's final."""
    summary = {}
    for name in reports[0]["strategies"]:
        finals = [r["strategies"][name]["final_psnr"] for r in reports]
        deltas = [r["strategies"][name]["final_psnr"] - r["uniform_final_psnr"] for r in reports]
        steps = [
            r["strategies"][name]["steps_to_uniform_final"] / r["steps"]
            for r in reports
            if r["strategies"][name]["steps_to_uniform_final"] is not None
        ]
        walls = [
            r["strategies"][name]["wall_to_uniform_final"] / r["strategies"]["uniform"]["train_seconds"]
            for r in reports
            if r["strategies"][name]["wall_to_uniform_final"] is not None
        ]
        times = [r["strategies"][name]["train_seconds"] / r["strategies"]["uniform"]["train_seconds"] for r in reports]
        equal_wall = [
            r["strategies"][name]["psnr_at_equal_wall"] - r["strategies"]["uniform"]["psnr_at_equal_wall"]
            for r in reports
        ]
        summary[name] = {
            "final_psnr_mean": statistics.mean(finals),
            "final_psnr_std": statistics.pstdev(finals),
            "delta_mean": statistics.mean(deltas),
            "delta_worst": min(deltas),
            "steps_to_uniform_final": statistics.median(steps) if steps else None,
            "wall_to_uniform_final": statistics.median(walls) if walls else None,
            "reached": len(steps),
            "seeds": len(reports),
            "train_time_vs_uniform": statistics.median(times),
            "equal_wall_delta_mean": statistics.mean(equal_wall),
            "equal_wall_delta_worst": min(equal_wall),
        }
    return summary


def table(results: dict[str, dict]) -> list[str]:
    lines = [
        "| scene | strategy | final val PSNR (dB) | delta vs uniform: mean / worst (dB) | steps to uniform's final "
        "| training time to uniform's final | reached | training time vs uniform "
        "| PSNR at equal wall-clock, delta vs uniform: mean / worst (dB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scene, summary in results.items():
        for name, s in summary.items():
            steps = "not reached" if s["steps_to_uniform_final"] is None else f"{s['steps_to_uniform_final']:.2f}x"
            wall = "not reached" if s["wall_to_uniform_final"] is None else f"{s['wall_to_uniform_final']:.2f}x"
            lines.append(
                f"| {scene} | {name} | {s['final_psnr_mean']:.2f} ± {s['final_psnr_std']:.2f} "
                f"| {s['delta_mean']:+.2f} / {s['delta_worst']:+.2f} | {steps} | {wall} | {s['reached']}/{s['seeds']} "
                f"| {s['train_time_vs_uniform']:.2f}x "
                f"| {s['equal_wall_delta_mean']:+.2f} / {s['equal_wall_delta_worst']:+.2f} |"
            )
    return lines


def summarise_saved(directories: list[Path]) -> dict[str, dict]:
    """Summaries from the ``<scene>/seed*/report.json`` files earlier runs left in ``directories``."""
    by_scene: dict[str, list[dict]] = {}
    for directory in directories:
        for path in sorted(directory.glob("*/seed*/report.json")):
            by_scene.setdefault(path.parent.parent.name, []).append(json.loads(path.read_text()))
    if not by_scene:
        raise SystemExit(f"no <scene>/seed*/report.json under {', '.join(map(str, directories))}")
    return {scene: summarise(reports) for scene, reports in by_scene.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", help="scene directories (Blender or NeuS format)")
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted", "spatial", "adaptive"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed ... first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--val-views", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/nerf_fields")
    parser.add_argument(
        "--summarise",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="train nothing: pool the seed reports earlier runs left in these directories",
    )
    args = parser.parse_args()
    if args.summarise:
        results = summarise_saved(args.summarise)
        lines = [
            "# Radiance fields: error-guided ray sampling on rendered scenes (pooled runs)",
            "",
            f"Pooled from {', '.join(f'`{d}`' for d in args.summarise)} by "
            f"`python benchmarks/nerf_fields.py --summarise {' '.join(map(str, args.summarise))} --out {args.out}`; "
            "each run's command and machine are in its own summary.md and report.json files.",
            "",
            *table(results),
        ]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text("\n".join(lines) + "\n")
        (out / "summary.json").write_text(json.dumps(results, indent=1))
        print("\n".join(lines))
        return
    if not args.scenes:
        parser.error("pass --scenes (or --summarise)")
    if "uniform" not in args.strategies:
        parser.error("include uniform: the other strategies are measured against it")
    out = Path(args.out)
    started = time.perf_counter()
    results = {}
    for scene in args.scenes:
        reports = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            run = preset(
                args.preset,
                scene=scene,
                val_views=args.val_views,
                train__steps=args.steps,
                train__seed=seed,
                train__progress=False,
            )
            seed_out = out / Path(scene).name / f"seed{seed}"
            compare = NerfCompareConfig(strategies=tuple(args.strategies), out=str(seed_out), run=run)
            report, _ = run_nerf_comparison(compare)
            reports.append(report)
            print(
                f"{scene} seed {seed}: "
                + ", ".join(f"{k} {v['final_psnr']:.2f} dB" for k, v in report["strategies"].items()),
                flush=True,
            )
        results[Path(scene).name] = summarise(reports)
    minutes = (time.perf_counter() - started) / 60
    lines = [
        "# Radiance fields: error-guided ray sampling on rendered scenes",
        "",
        f"Command: `python benchmarks/nerf_fields.py --scenes {' '.join(args.scenes)} --strategies "
        f"{' '.join(args.strategies)} --seeds {args.seeds} --first-seed {args.first_seed} --steps {args.steps} "
        f"--out {args.out}` "
        f"({minutes:.1f} min)  ",
        f"Machine: {torch.get_num_threads()} torch thread(s), torch {torch.__version__}; "
        f"{time.strftime('%Y-%m-%d')}.  ",
        f"Preset `{args.preset}`, {args.steps} steps, {args.val_views} held-out views, {args.seeds} seeds. "
        "Equal wall-clock: each seed's shortest run's training time, read linearly between validations.",
        "",
        *table(results),
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
