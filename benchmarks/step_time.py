"""Training step time and the sampler's share of it, per strategy, for the image and NeRF pipelines.

On CUDA (the acceptance figures) each pipeline trains at its ``default`` preset's batch (65,536
pixels of a large photo; 8,192 rays of an 800 x 800 rendered scene) unless ``--batch-size`` says
otherwise; it reports it/s, units (pixels or rays) per second and the sampler's share of step time
(target: at most 3%). On CPU it runs the same
code at a small size to show it works; absolute CPU timings are not to be quoted.

    python benchmarks/step_time.py image                      # CUDA: the preset's 65,536 pixels per step
    python benchmarks/step_time.py image --batch-size 1048576 # 2^20 pixels per step
    foveate data render --scene bunny --views 100 --width 800 --height 800 --out scenes/bunny800
    python benchmarks/step_time.py nerf --scene scenes/bunny800   # CUDA: the preset's 8192 rays per step
    python benchmarks/step_time.py image --batch-size 16384 --steps 10 --cpu-threads 1

The sampler's share is measured two ways, both in the same process: (a) a separate timing
of ``sample`` + ``update`` alone at the same batch size, over whole rebuild periods (so each
step carries its share of the rebuilds), divided by the full step time; (b)
the full step timed with and without the sampler (a fixed pre-drawn id batch replaces it).
The step without the sampler is also timed on the same batch shuffled (guided draws come sorted),
and the share of distinct ids in it is counted. For the radiance field it also counts the field
queries per ray the occupancy grid leaves for a batch each strategy draws: guided rays favour the
object, which the grid cannot skip, so a guided step costs more than a uniform one for reasons
that are not the sampler's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from foveate.pipelines import image, nerf
from foveate.train import Trainer, seed_everything, select_device


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, function, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls, synchronised on CUDA."""
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        function()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def pipeline_config(args: argparse.Namespace, strategy: str, total_steps: int):
    """The pipeline's default preset at the requested size, with ``strategy`` and no logging."""
    strategy, _, option = strategy.partition("+")  # "error_weighted+refresh": a strategy with a switch on
    common = {
        "train__steps": total_steps,
        "train__progress": False,
        "train__tensorboard": False,
        "sampling__strategy": strategy,
        "sampling__warmup_iterations": min(5, args.warmup),
    }
    if option:
        common[f"sampling__{strategy}__{option}"] = True
    if args.batch_size:
        common["train__batch_size"] = args.batch_size
    if args.pipeline == "image":
        return image, image.preset("default", image=args.image, model__log2_table_size=args.log2_table_size, **common)
    if not args.scene:
        raise SystemExit("step_time.py nerf: pass --scene DIR (e.g. from foveate data render)")
    return nerf, nerf.preset("default", scene=args.scene, model__log2_table_size=args.log2_table_size, **common)


def measure(args: argparse.Namespace, strategy: str) -> dict:
    module, config = pipeline_config(args, strategy, args.warmup + 4 * args.steps + 10)
    batch_size = config.train.batch_size
    device = select_device(config.train.device)
    seed_everything(0)
    task = module.SPEC.task_type.from_config(config, device)
    trainer = Trainer(task, config, device=device, run_dir=None)
    if not task.draws_units:
        raise SystemExit(f"step_time.py measures pipelines that draw a batch of units each step, not {task.name}")
    for _ in range(args.warmup):
        trainer.train_step()
    step_times = _timed(device, trainer.train_step, args.steps)

    sampler = trainer.sampler
    errors = torch.rand(batch_size, device=device)

    def sampler_only() -> None:
        draw = sampler.sample(batch_size, trainer.step)
        sampler.update(draw.ids, errors, trainer.step)

    # Whole rebuild periods, so the rebuilds (and soft weights' normalisers) count, amortised.
    period = sampler.update_frequency

    def sampler_period() -> None:
        for _ in range(period):
            sampler_only()

    sampler_times = [t / period for t in _timed(device, sampler_period, max(3, args.steps // period))]

    fixed = sampler.sample(batch_size, trainer.step)

    def step_without_sampler() -> None:
        task.training_step(fixed, trainer.step, trainer.optimization)

    bare_times = _timed(device, step_without_sampler, args.steps)
    # The same batch in random order: guided draws come sorted, which puts repeated and neighbouring
    # ids side by side (contended atomic adds in a hash grid's backward, if that is what costs).
    order = torch.randperm(batch_size, device=device)
    shuffled = type(fixed)(fixed.ids[order], fixed.weights[order])

    def step_shuffled() -> None:
        task.training_step(shuffled, trainer.step, trainer.optimization)

    shuffled_times = _timed(device, step_shuffled, args.steps)
    marched = samples_per_ray(task, sampler.sample(batch_size, trainer.step).ids) if args.pipeline == "nerf" else None
    step = statistics.median(step_times)
    sampler_seconds = statistics.median(sampler_times)
    bare = statistics.median(bare_times)
    return {
        "strategy": strategy,
        "batch_size": batch_size,
        "units": sampler.num_units,
        "step_ms": step * 1e3,
        "it_per_s": 1.0 / step,
        "units_per_s": batch_size / step,
        "sampler_ms": sampler_seconds * 1e3,
        "sampler_share": sampler_seconds / step,
        "step_without_sampler_ms": bare * 1e3,
        "sampler_share_by_difference": max(step - bare, 0.0) / step,
        "step_without_sampler_shuffled_ms": statistics.median(shuffled_times) * 1e3,
        "distinct_ids": int(torch.unique(fixed.ids).numel()),
        "samples_per_ray": marched,
    }


@torch.no_grad()
def samples_per_ray(task, ids: torch.Tensor) -> float:
    """Field queries per ray that the occupancy grid leaves for a batch the strategy draws."""
    from foveate.models.volume_rendering import render_rays

    rays = task.rays.gather(ids).rays
    rendered = render_rays(
        task.field, rays[:, :3], rays[:, 3:], task.aabb, task.step_size, task.max_samples, task.occupancy
    )
    return rendered.num_samples / ids.numel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", choices=["image", "nerf"])
    parser.add_argument("--image", default="retina", help="image: bundled photo or path (default: retina, 1411^2)")
    parser.add_argument("--scene", default="", help="nerf: scene directory")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="units per step (default: 2^20 pixels for image, the preset's rays for nerf)",
    )
    parser.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--log2-table-size", type=int, default=19)
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=["uniform", "error_weighted", "spatial", "adaptive"],
        help="strategies, or STRATEGY+SWITCH for one of its switches on (error_weighted+refresh)",
    )
    parser.add_argument("--cpu-threads", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results", help="directory for the JSON result")
    args = parser.parse_args(argv)
    if args.pipeline == "image" and not args.batch_size:
        args.batch_size = 1 << 20
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    device = select_device("auto")
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    rows = []
    for strategy in args.strategies:
        row = measure(args, strategy)
        rows.append(row)
        print(
            f"{strategy:>15}: {row['step_ms']:8.2f} ms/step  {row['it_per_s']:7.2f} it/s  "
            f"{row['units_per_s'] / 1e6:8.3f} M units/s  "
            f"sampler {row['sampler_ms']:7.3f} ms = {100 * row['sampler_share']:5.2f}% of the step "
            f"(by difference: {100 * row['sampler_share_by_difference']:5.2f}%)  "
            f"without it {row['step_without_sampler_ms']:.2f} ms, "
            f"shuffled {row['step_without_sampler_shuffled_ms']:.2f} ms, "
            f"{row['distinct_ids'] / row['batch_size']:.0%} distinct ids"
            + ("" if row["samples_per_ray"] is None else f"  {row['samples_per_ray']:6.1f} samples/ray"),
            flush=True,
        )
    source = args.image if args.pipeline == "image" else args.scene
    result = {
        "pipeline": args.pipeline,
        "device": name,
        "source": source,
        "batch_size": rows[0]["batch_size"],
        "units": rows[0]["units"],
        "log2_table_size": args.log2_table_size,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.pipeline}_step_time_{device.type}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"{name}, {args.pipeline} on {source}, {rows[0]['batch_size']} units per step; written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
