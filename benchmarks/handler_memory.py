"""Memory per ray and draw + gather time of the error-aware data handler at a given ray count.

Builds an in-memory scene of ``--views`` square images holding 2^``--log2-rays`` rays in all
(random colours and masks: memory and time do not depend on the content), feeds every ray
a heavy-tailed loss through ``handler.update`` in chunks, then measures, median of
``--repeats``:

- one distribution rebuild;
- one error-guided batch (draw + gather: ids, rays made on the fly, colours, coverage) next to
  one uniform batch, run alternately so machine load hits both alike;
- the engine's draw and the gather separately;
- how non-uniform the draws are: mean loss of drawn rays over the mean loss of all rays;
- resident bytes per ray (colours, coverage, cameras, sampler) and the peak over the baseline
  (CUDA: ``max_memory_allocated``; CPU: peak RSS).

    python benchmarks/handler_memory.py --log2-rays 26 --views 64 --device cpu
    python benchmarks/handler_memory.py --log2-rays 28 --views 256 --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import resource
import statistics

import torch
from timing import once, side_by_side

from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.handler import ErrorAwareDataHandler
from foveate.data.scenes import Scene


def synthetic_loss(ids: torch.Tensor) -> torch.Tensor:
    """A fixed heavy-tailed loss per ray id (a hash to [0, 1), to the 8th power), recomputable anywhere."""
    hashed = (ids * 2654435761) % (2**32)
    return (hashed.to(torch.float64) / 2**32).pow(8).to(torch.float32)


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def make_scene(rays: int, views: int, device: torch.device) -> Scene:
    side = math.isqrt(rays // views)
    if side * side * views != rays:
        raise SystemExit(f"2^k rays must split into {views} square images; pick --views so rays / views is a square")
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (views, side, side, 3), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 256, (views, side, side), dtype=torch.uint8, generator=generator)
    eye = camera_positions("sphere", views, radius=4.0)
    cameras = Cameras.from_fov(look_at(eye, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)), side, side, 40.0)
    return Scene(images.to(device), cameras, [f"{i:04d}" for i in range(views)], masks=masks.to(device))


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    rays = 2**args.log2_rays
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    baseline = peak_bytes(device)
    scene = make_scene(rays, args.views, device)
    config = {
        "strategy": args.strategy,
        "warmup_iterations": 0,
        "update_frequency": 10**9,  # rebuilt explicitly below
        "check_inputs": False,
    }
    handler = None

    def construct() -> None:
        nonlocal handler
        handler = ErrorAwareDataHandler(scene, args.batch, config, device=device, background=(1.0, 1.0, 1.0))

    construct_s = once(construct, device)

    def fill() -> None:
        chunk = 2**22
        for first in range(0, rays, chunk):
            ids = torch.arange(first, min(first + chunk, rays), device=device)
            handler.update(ids, synthetic_loss(ids), step=0)

    fill_s = once(fill, device)
    rebuild_s = once(handler.sampler.rebuild, device)

    sampler = handler.sampler
    guided_s, uniform_s = side_by_side(lambda: handler.sample(step=1), handler.sample_uniform, device, args.repeats)
    draws = [sampler.sample(args.batch, 1) for _ in range(2)]
    draw_s, gather_s = side_by_side(
        lambda: sampler.sample(args.batch, 1), lambda: handler.gather(draws[0].ids), device, args.repeats
    )
    batch_losses = synthetic_loss(draws[1].ids)
    update_s = statistics.median(
        once(lambda: sampler.update(draws[1].ids, batch_losses, 1), device) for _ in range(args.repeats)
    )
    drawn_ids = torch.cat([handler.sample(step=1).ids for _ in range(4)])
    everything = torch.arange(0, rays, max(1, rays // 2**22), device=device)
    focus = float(
        synthetic_loss(drawn_ids).mean(dtype=torch.float64) / synthetic_loss(everything).mean(dtype=torch.float64)
    )
    memory = handler.memory()
    scene_bytes = scene.images.nbytes + scene.masks.nbytes
    return {
        "date": datetime.date.today().isoformat(),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "log2_rays": args.log2_rays,
        "views": args.views,
        "image_side": scene.width,
        "batch": args.batch,
        "strategy": args.strategy,
        "construct_s": construct_s,
        "fill_all_rays_s": fill_s,
        "fill_ms_per_1M": 1e3 * fill_s / (rays / 2**20),
        "update_batch_ms": 1e3 * update_s,
        "rebuild_ms": 1e3 * rebuild_s,
        "guided_batch_ms": 1e3 * guided_s,
        "uniform_batch_ms": 1e3 * uniform_s,
        "guided_over_uniform": guided_s / uniform_s,
        "draw_ms": 1e3 * draw_s,
        "gather_ms": 1e3 * gather_s,
        "drawn_loss_over_mean_loss": focus,
        "memory_bytes": memory,
        "bytes_per_ray": handler.bytes_per_ray(),
        "scene_bytes_per_ray": scene_bytes / rays,
        "peak_bytes_per_ray_over_baseline": (peak_bytes(device) - baseline) / rays,
        "fallback": handler.fallback_reason,
    }


def markdown(row: dict) -> str:
    memory = ", ".join(f"{k} {v / 2 ** row['log2_rays']:.2f}" for k, v in row["memory_bytes"].items())
    return "\n".join(
        [
            "| rays | device | batch | guided batch (ms) | uniform batch (ms) | ratio | draw (ms) | gather (ms) "
            "| update (ms) | rebuild (ms) | drawn / mean loss | bytes/ray | peak bytes/ray |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| 2^{row['log2_rays']} ({row['views']} x {row['image_side']}^2) | {row['device']} | {row['batch']} "
            f"| {row['guided_batch_ms']:.1f} | {row['uniform_batch_ms']:.1f} | {row['guided_over_uniform']:.2f}x "
            f"| {row['draw_ms']:.1f} | {row['gather_ms']:.1f} | {row['update_batch_ms']:.1f} "
            f"| {row['rebuild_ms']:.0f} "
            f"| {row['drawn_loss_over_mean_loss']:.2f} | {row['bytes_per_ray']:.2f} "
            f"| {row['peak_bytes_per_ray_over_baseline']:.2f} |",
            "",
            f"Resident bytes per ray by component: {memory}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log2-rays", type=int, default=26)
    parser.add_argument("--views", type=int, default=64, help="images; rays / views must be a square")
    parser.add_argument("--batch", type=int, default=2**20, help="rays per batch")
    parser.add_argument("--strategy", default="error_weighted")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the row to this JSON file")
    args = parser.parse_args()
    row = run(args)
    print(markdown(row))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(row, file, indent=2)


if __name__ == "__main__":
    main()
