"""Where a radiance field's guided rays go, what they cost, and what they buy, inside a marked region.

The suite's checkered bunny (``nerf-checker-clean``) concentrates error on its ears, yet
neither guided strategy beats uniform there. This script trains the same runs as the suite
(the ``cpu`` preset, 300 steps of 1024 rays, same seeds and initialisations) and measures,
per strategy and seed, the three things that decide it:

- **draws**: the share of drawn rays that land in the region (against its share of the rays);
- **queries**: field evaluations per drawn ray, in and outside the region (the occupancy grid
  skips empty space, so rays through the object cost more);
- **quality**: held-out PSNR over every held-out view, inside the region and outside it, and
  the region's share of the held-out squared error.

The region is where the scene's albedo differs from a reference render of the same cameras
(``--reference``: the unpainted bunny), so it is exactly the painted checker.

    python benchmarks/nerf_where.py --scene scenes/suite/checker64-clean \\
        --reference scenes/suite/bunny64-clean --out benchmarks/results/nerf_where

``--set section__field=value`` changes the preset for every run (e.g. a larger hash table).
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from suite import _median, _ratio

from foveate.models.volume_rendering import march, ray_aabb
from foveate.pipelines import get_pipeline, make_trainer
from foveate.pipelines.nerf import preset
from foveate.report.compare import machine
from foveate.report.pooling import settled
from foveate.train import psnr_from_mse

ALBEDO_DIFFERENCE = 0.05
"""An albedo channel differing by more than this from the reference marks a pixel as the region's."""


def region_masks(scene: Path, reference: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, held_out)`` boolean masks, flattened in the task's ray order (view, row, column)."""
    from PIL import Image

    views = json.loads((scene / "views.json").read_text())
    other = json.loads((reference / "views.json").read_text())
    cameras, other_cameras = np.load(scene / "cameras.npz"), np.load(reference / "cameras.npz")
    names = [f"world_mat_{i}" for i in range(len(views["names"]))]
    same_cameras = all(np.array_equal(cameras[name], other_cameras[name]) for name in names)
    if views != other or not same_cameras:
        raise SystemExit(f"{scene} and {reference} were not rendered from the same cameras")

    def albedo(root: Path, index: int) -> np.ndarray:
        return np.asarray(Image.open(root / "albedo" / f"{index:03d}.png"), dtype=np.float32)[..., :3] / 255.0

    def mask(split: str) -> torch.Tensor:
        marked = [
            np.abs(albedo(scene, i) - albedo(reference, i)).max(axis=-1) > ALBEDO_DIFFERENCE
            for i in views["splits"][split]
        ]
        return torch.from_numpy(np.stack(marked).reshape(-1))

    return mask("train"), mask("val")


def train_one(config: Any, variant: str, seed: int, train_mask: torch.Tensor, held_mask: torch.Tensor) -> dict:
    """Train one variant x seed in memory, counting draws and field queries; score every held-out view.

    Queries are counted by marching each drawn ray again without jitter (no random draws, so the
    run itself is the suite's, bit for bit): what the occupancy grid keeps of each ray at that step.
    """
    torch.set_num_threads(1)
    spec = get_pipeline("nerf")
    config = spec.with_variant(copy.deepcopy(config), variant)
    config.train.seed = seed
    trainer = make_trainer(spec, config, in_memory=True, alone=True)
    task = trainer.task
    if task.rays.num_rays != train_mask.numel() or task.val_colors[..., 0].numel() != held_mask.numel():
        raise SystemExit("the region's masks do not match the scene's training rays and held-out views")
    train_loss = task.per_unit_loss
    counts = {"draws": 0, "region_draws": 0, "queries": 0, "region_queries": 0}

    def counted_loss(ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rays = task.rays.gather(ids).rays
            origins, directions = rays[:, :3], rays[:, 3:]
            near, far = ray_aabb(origins, directions, task.aabb)
            samples = march(origins, directions, near, far, task.step_size, task.max_samples, task.occupancy)
            per_ray = torch.bincount(samples.ray_indices, minlength=ids.numel())
            in_region = train_mask[ids]
        counts["draws"] += ids.numel()
        counts["region_draws"] += int(in_region.sum())
        counts["queries"] += int(per_ray.sum())
        counts["region_queries"] += int(per_ray[in_region].sum())
        return train_loss(ids)

    task.per_unit_loss = counted_loss
    result = trainer.fit()
    errors = []
    with torch.no_grad():
        for index in range(len(task.val_cameras)):
            prediction = task.render_view(task.val_cameras, index)
            target = task.val_colors[index].to(torch.float32) / 255.0
            errors.append((prediction - target).square().mean(dim=-1).reshape(-1))
    squared = torch.cat(errors)
    inside, outside = squared[held_mask], squared[~held_mask]
    probabilities = None if trainer.sampler.in_warmup(trainer.step) else trainer.sampler.probabilities().cpu()
    draws, region_draws = counts["draws"], counts["region_draws"]
    return {
        "variant": variant,
        "seed": seed,
        "train_seconds": result.train_seconds,
        "curve": [[r["step"], r["psnr"], r["wall_seconds"]] for r in result.history],
        "psnr_all": float(psnr_from_mse(squared.mean())),
        "psnr_region": float(psnr_from_mse(inside.mean())),
        "psnr_rest": float(psnr_from_mse(outside.mean())),
        "region_error_share": float(inside.sum() / squared.sum()),
        "draws": draws,
        "region_draw_share": region_draws / draws,
        "final_region_mass": None if probabilities is None else float(probabilities[train_mask].sum()),
        "queries_per_ray": counts["queries"] / draws,
        "region_queries_per_ray": counts["region_queries"] / max(1, region_draws),
        "rest_queries_per_ray": (counts["queries"] - counts["region_queries"]) / max(1, draws - region_draws),
    }


def summarise(runs: list[dict], region_ray_share: float) -> str:
    """A markdown table: means over seeds, and each guided variant's difference to uniform of the same seed."""
    by = {(r["variant"], r["seed"]): r for r in runs}
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    seeds = sorted({r["seed"] for r in runs})
    rows = [
        "| variant | rays drawn (x uniform's) | draws in region | sampler mass there at the end "
        "| field queries per ray: all / region / rest "
        "| training time (x uniform's) | all held-out views (dB) | region (dB) | rest (dB) "
        "| region's share of the held-out squared error | settled quick validation (dB) "
        "| steps / wall-clock to uniform's settled (x uniform's) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def mean(variant: str, key: str) -> float:
        return float(np.mean([by[variant, s][key] for s in seeds]))

    def versus(variant: str, key: str, value: Any = None) -> str:
        read = value or (lambda r: r[key])
        own = [read(by[variant, s]) for s in seeds]
        if variant == "uniform" or ("uniform", seeds[0]) not in by:
            return f"{np.mean(own):.2f}"
        deltas = [read(by[variant, s]) - read(by["uniform", s]) for s in seeds]
        return f"{np.mean(own):.2f} ({np.mean(deltas):+.2f}, worst {min(deltas):+.2f})"

    def reach(variant: str, column: int) -> str:
        """Median over seeds of the steps (column 0) or seconds (2) to uniform's settled value, as a ratio."""
        if ("uniform", seeds[0]) not in by:
            return "-"
        ratios = [
            _ratio(by[variant, s]["curve"], by["uniform", s]["curve"], settled(by["uniform", s]["curve"]), True, column)
            for s in seeds
        ]
        middle = _median(ratios)
        return "not reached" if middle is None else f"{middle:.2f}x"

    for variant in variants:
        mass = [by[variant, s]["final_region_mass"] for s in seeds]
        mass_text = "warm-up" if None in mass else f"{np.mean(mass):.1%}"
        time_ratio, draw_ratio = (
            (
                np.mean([by[variant, s][key] / by["uniform", s][key] for s in seeds])
                if ("uniform", seeds[0]) in by
                else float("nan")
            )
            for key in ("train_seconds", "draws")
        )
        rows.append(
            f"| {variant} | {draw_ratio:.2f}x | {mean(variant, 'region_draw_share'):.1%} | {mass_text} "
            f"| {mean(variant, 'queries_per_ray'):.1f} / {mean(variant, 'region_queries_per_ray'):.1f} / "
            f"{mean(variant, 'rest_queries_per_ray'):.1f} | {time_ratio:.2f}x "
            f"| {versus(variant, 'psnr_all')} | {versus(variant, 'psnr_region')} | {versus(variant, 'psnr_rest')} "
            f"| {mean(variant, 'region_error_share'):.1%} | {versus(variant, '', lambda r: settled(r['curve']))} "
            f"| {reach(variant, 0)} / {reach(variant, 2)} |"
        )
    header = (
        f"The region holds {region_ray_share:.1%} of the training rays. Means over seeds {', '.join(map(str, seeds))}; "
        "in brackets the mean difference to uniform of the same seed, and the worst seed's."
    )
    return "\n".join([header, "", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path, required=True, help="scene directory (rendered by foveate data render)")
    parser.add_argument("--reference", type=Path, required=True, help="the same cameras without the marked region")
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted", "adaptive"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--validate-every", type=int, default=15)
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION__FIELD=VALUE", help="preset changes")
    parser.add_argument("--workers", type=int, default=2, help="training processes in parallel")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/nerf_where"))
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/nerf_where.py", *sys.argv[1:]])
    changes = {}
    for item in args.set:
        key, _, value = item.partition("=")
        changes[key] = json.loads(value)
    config = preset(
        "cpu",
        scene=str(args.scene),
        val_views=len(json.loads((args.scene / "views.json").read_text())["splits"]["val"]),
        train__steps=args.steps,
        train__validate_every=args.validate_every,
        train__progress=False,
        train__tensorboard=False,
        **changes,
    )
    train_mask, held_mask = region_masks(args.scene, args.reference)
    started = time.perf_counter()
    jobs = [(v, s) for s in range(args.seeds) for v in args.strategies]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(train_one, config, v, s, train_mask, held_mask) for v, s in jobs]
        runs = []
        for (variant, seed), future in zip(jobs, futures, strict=True):
            runs.append(future.result())
            print(f"{variant} seed {seed}: {runs[-1]['psnr_all']:.2f} dB over every held-out view", flush=True)
    table = summarise(runs, float(train_mask.float().mean()))
    args.out.mkdir(parents=True, exist_ok=True)
    hardware = machine("cpu", threads=1)
    (args.out / "runs.json").write_text(
        json.dumps({"command": command, "machine": hardware, "date": time.strftime("%Y-%m-%d"), "runs": runs}, indent=1)
    )
    minutes = (time.perf_counter() - started) / 60
    text = (
        f"# Where the guided rays go: {args.scene.name}\n\n"
        f"Command: `{command}` ({minutes:.0f} min, {args.workers} processes of one torch thread; "
        f"{hardware['cpu_model']}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}).\n\n{table}\n"
    )
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
