"""Pooling, staleness and noise-aware errors on radiance fields: `foveate compare nerf` per scene and setting.

Settings: ``plain`` (uniform, error_weighted, adaptive), ``pool4`` (error_weighted and adaptive
with ``pool_visits 4``) and ``pool4-stale15`` (the same plus ``staleness 0.15``); on scenes
rendered with ``--noise`` (``--noise-scenes``), ``aware`` (uniform, error_weighted and adaptive
with the targets' noise subtracted, the default) and ``unaware`` (the two guided ones without).
Each is one
comparison of 3 seeds with the same initialisations; the table reads every run's curve and gives
the final PSNR per seed, the mean of the last three validations (finals swing at a constant
learning rate), the best-so-far, and the last-three mean against uniform's, seed by seed.

    python benchmarks/pooling.py --scenes scenes/bunny64 scenes/cow64 --noise-scenes scenes/cornell64_noise
    python benchmarks/pooling.py --summarise benchmarks/results/pooling
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = {
    "plain": ["--strategies", "uniform", "error_weighted", "adaptive"],
    "pool4": [
        "--strategies",
        "error_weighted",
        "adaptive",
        "--sampling.error-weighted.pool-visits",
        "4",
        "--sampling.adaptive.pool-visits",
        "4",
    ],
}
SETTINGS["pool4-stale15"] = [
    *SETTINGS["pool4"],
    "--sampling.error-weighted.staleness",
    "0.15",
    "--sampling.adaptive.staleness",
    "0.15",
]
NOISE_SETTINGS = {
    "aware": ["--strategies", "uniform", "error_weighted", "adaptive"],
    "unaware": ["--strategies", "error_weighted", "adaptive", "--sampling.no-noise-aware"],
}
LABELS = {
    "plain": "",
    "pool4": " + pool_visits 4",
    "pool4-stale15": " + pool_visits 4 + staleness 0.15",
    "aware": " (noise subtracted)",
    "unaware": " (noise kept)",
}


def train(scenes: list[Path], out: Path, seeds: int, steps: int, workers: int, settings: dict) -> None:
    for scene in scenes:
        for setting, flags in settings.items():
            command = [sys.executable, "-m", "foveate", "compare", "nerf", "--scene", str(scene), "--preset", "cpu"]
            command += ["--steps", str(steps), "--seeds", str(seeds), "--workers", str(workers), *flags]
            subprocess.run([*command, "--out", str(out / f"{scene.name}-{setting}")], check=True)


def summarise(out: Path) -> str:
    rows: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for report_path in sorted(out.glob("*/report.json")):
        scene, setting = report_path.parent.name.split("-", 1)
        for run in json.loads(report_path.read_text())["runs"]:
            psnr = [point[1] for point in run["curve"]]
            last = sum(psnr[-3:]) / len(psnr[-3:])
            variant = run["variant"] if run["variant"] == "uniform" else run["variant"] + LABELS[setting]
            rows.setdefault((scene, variant), []).append((run["seed"], psnr[-1], last, max(psnr)))
    lines = [
        "| scene | variant | final, seeds 0 / 1 / 2 (dB) | mean of the last 3 validations | best-so-far | "
        "last 3 vs uniform, per seed |",
        "|---|---|---|---|---|---|",
    ]
    for (scene, variant), runs in sorted(rows.items(), key=lambda item: (item[0][0], len(item[0][1]))):
        runs.sort()
        uniform = sorted(rows[(scene, "uniform")])
        gaps = " / ".join(f"{a[2] - b[2]:+.2f}" for a, b in zip(runs, uniform, strict=True))
        finals = " / ".join(f"{run[1]:.2f}" for run in runs)
        last = statistics.mean(run[2] for run in runs)
        best = statistics.mean(run[3] for run in runs)
        lines.append(f"| {scene} | {variant} | {finals} | {last:.2f} | {best:.2f} | {gaps} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", type=Path, default=[])
    parser.add_argument("--noise-scenes", nargs="+", type=Path, default=[], help="scenes rendered with --noise")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pooling"))
    parser.add_argument("--summarise", type=Path, help="train nothing: summarise the comparisons in this folder")
    args = parser.parse_args()
    out = args.summarise or args.out
    if args.summarise is None:
        train(args.scenes, out, args.seeds, args.steps, args.workers, SETTINGS)
        train(args.noise_scenes, out, args.seeds, args.steps, args.workers, NOISE_SETTINGS)
    table = summarise(out)
    (out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
