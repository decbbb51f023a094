"""A training step on the same batch of ids in ascending order against shuffled, side by side.

The engine returns every draw in ascending id order. This measures what that order is worth to a
pipeline's step: one uniform batch is drawn from the pipeline's own sampler (its ``cpu`` preset,
or ``--preset``), then ``training_step`` runs on it sorted and on a random permutation of it, alternating, and the
medians are compared. The model keeps training through the timed steps, so both orders see the
same drift.

    python benchmarks/draw_order.py image --images astronaut retina coffee
    python benchmarks/draw_order.py nerf --scene scenes/suite/bunny64-clean --json out.json
    python benchmarks/draw_order.py image --preset default --device cuda      # the GPU preset
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from foveate.allocator import keep_freed_memory
from foveate.pipelines import image, nerf
from foveate.train import Trainer, seed_everything


def measure(module, config, repeats: int, device: torch.device) -> dict:
    """Median step times on one uniform batch, ascending and shuffled."""
    seed_everything(0)
    task = module.SPEC.task_type.from_config(config, device)
    trainer = Trainer(task, config, device=device, run_dir=None)
    for _ in range(10):
        trainer.train_step()
    ascending = trainer.sampler.sample(config.train.batch_size, trainer.step)
    order = torch.randperm(len(ascending.ids), generator=torch.Generator().manual_seed(0)).to(device)
    shuffled = type(ascending)(ascending.ids[order], ascending.weights[order])
    times: dict[str, list[float]] = {"ascending": [], "shuffled": []}
    for _ in range(repeats):
        for name, batch in (("ascending", ascending), ("shuffled", shuffled)):
            _synchronize(device)
            start = time.perf_counter()
            task.training_step(batch, trainer.step, trainer.optimization)
            _synchronize(device)
            times[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    return {
        "batch": config.train.batch_size,
        "units": trainer.sampler.num_units,
        "ascending_ms": ms["ascending"],
        "shuffled_ms": ms["shuffled"],
        "ratio": ms["ascending"] / ms["shuffled"],
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", choices=["image", "nerf"])
    parser.add_argument("--images", nargs="+", default=["astronaut", "retina"], help="image: photos")
    parser.add_argument("--scene", help="nerf: scene directory (foveate data render)")
    parser.add_argument("--repeats", type=int, default=40, help="timed steps of each order")
    parser.add_argument("--preset", default="cpu", help="the pipeline's preset (default: cpu; default is GPU-sized)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    keep_freed_memory()
    torch.set_num_threads(1)
    common = {
        "train__progress": False,
        "train__tensorboard": False,
        "train__device": args.device,
        "sampling__strategy": "uniform",
    }
    if args.pipeline == "image":
        cases = {name: (image, image.preset(args.preset, image=name, **common)) for name in args.images}
    else:
        if not args.scene:
            parser.error("nerf needs --scene DIR")
        cases = {Path(args.scene).name: (nerf, nerf.preset(args.preset, scene=args.scene, **common))}
    rows = []
    for name, (module, config) in cases.items():
        row = {"case": f"{args.pipeline} {name}", **measure(module, config, args.repeats, device)}
        rows.append(row)
        print(
            f"{row['case']:>28}  {row['batch']:>6} of {row['units']:>9,} units  ascending {row['ascending_ms']:7.2f} ms"
            f"  shuffled {row['shuffled_ms']:7.2f} ms  ratio {row['ratio']:.3f}"
        )
    if args.json:
        name = (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
        )
        meta = {"date": date.today().isoformat(), "device": name, "preset": args.preset, "threads": 1}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
