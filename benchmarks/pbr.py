"""PBR material estimation: uniform (shuffled epochs, NeuroPBR's) against error-guided samples.

Writes a dataset of ``--samples`` procedural materials at ``--size`` (once; kept in ``--work``),
then for each ``--presets`` trains uniform and error_weighted with ``--seeds`` seeds (paired: the
same initialisation per seed) through ``foveate.report.compare``, and prints the held-out split's
per-map RMSE, mean normal angle and rendering RMSE (means over seeds) and how many epochs each
variant takes to reach uniform's final validation loss. ``summary.json`` and ``summary.md`` go
into ``--out``, the comparisons' reports and curves into ``--out/<preset>/``.

    python benchmarks/pbr.py --samples 220 --size 128 --presets cpu --seeds 3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from foveate.pbr import SPEC
from foveate.pbr.config import preset_config
from foveate.pbr.data import generate_dataset
from foveate.report.compare import compare

METRICS = ("loss", "albedo_rmse", "roughness_rmse", "metallic_rmse", "normal_angle_mean", "render_rmse")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=220)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--presets", nargs="+", default=["cpu"])
    parser.add_argument("--epochs", type=int, default=None, help="override the presets' epochs")
    parser.add_argument(
        "--lightweight", action="store_true", help="NeuroPBR's lightweight: no GAN, SSIM 0.5, normal 0.7"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted"])
    parser.add_argument("--work", type=Path, default=Path("runs/pbr-benchmark"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pbr"))
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/pbr.py", *sys.argv[1:]])
    data = args.work / f"data-{args.samples}-{args.size}"
    if not (data / "input" / "render_metadata.json").is_file():
        print(generate_dataset(data, args.samples, args.size, seed=0, textures=[]))
    summary: dict = {"command": command, "presets": {}}
    rows = []
    for preset in args.presets:
        config = preset_config(preset)
        config.data.data_root, config.data.image_size = data, args.size
        config.training.progress = config.training.use_tensorboard = False
        if args.epochs is not None:
            config.training.epochs = args.epochs
        name = preset
        if args.lightweight:
            name = f"{preset}-lightweight"
            config.model.use_gan, config.loss.w_gan, config.loss.w_ssim, config.loss.w_normal = False, 0.0, 0.5, 0.7
        started = time.perf_counter()
        comparison = compare(
            SPEC,
            config,
            args.strategies,
            list(range(args.seeds)),
            args.out / name,
            workers=args.workers,
            command=command,
        )
        seconds = time.perf_counter() - started
        report = comparison.report
        per_epoch = max(r.steps for r in comparison.records) / config.training.epochs
        result = {"seconds": seconds, "steps_per_epoch": per_epoch, "variants": {}}
        for variant in args.strategies:
            finals = [r.final for r in comparison.records if r.variant == variant]
            means = {name: float(np.mean([f[name] for f in finals])) for name in METRICS}
            line = report["variants"][variant]
            ratio = line["steps_ratio_median"] if line["reached"] == args.seeds else None
            result["variants"][variant] = {"means": means, "steps_to_uniform_final_ratio": ratio}
            rows.append(
                f"| {name} | {variant} | {means['loss']:.4f} | {means['albedo_rmse']:.4f} "
                f"| {means['roughness_rmse']:.4f} | {means['metallic_rmse']:.4f} | {means['normal_angle_mean']:.2f} "
                f"| {means['render_rmse']:.4f} | {'-' if ratio is None else f'{ratio:.2f}x'} |"
            )
        summary["presets"][name] = result
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-lightweight" if args.lightweight else ""
    (args.out / f"summary{suffix}.json").write_text(json.dumps(summary, indent=1))
    text = (
        "# PBR: uniform against error-guided samples\n\n"
        f"Command: `{command}`\n\n"
        "| preset | variant | val loss | albedo RMSE | roughness RMSE | metallic RMSE | normal angle (deg) "
        "| render RMSE | epochs to uniform's final (x uniform's) |\n|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    (args.out / f"summary{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
