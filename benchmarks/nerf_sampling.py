"""Error-guided against uniform ray sampling for a hash-grid radiance field, side by side.

Trains the same radiance field (same initial weights, same optimiser) once per strategy on a
rendered scene, drawing rays through :class:`~foveate.data.handler.ErrorAwareDataHandler`,
and evaluates PSNR on the held-out ``val`` views every ``--eval-every`` steps (evaluation
time is excluded from the wall-clock). Reports, for each strategy against uniform: the steps
and the training time needed to reach uniform's final validation PSNR, and the PSNR reached
in uniform's total training time.

This uses the data and model layers directly (no shared training loop), so it can run before
the radiance-field pipeline exists; on a CPU keep scenes and steps small.

    foveate data render --out scenes/bunny64 --scene bunny --views 40 --val-views 8 --width 64 --height 64
    python benchmarks/nerf_sampling.py --scene scenes/bunny64 --steps 400 --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time

import torch
import torch.nn.functional as F

from foveate.data.handler import ErrorAwareDataHandler
from foveate.data.scenes import Scene, load_scene
from foveate.models.nerf import RadianceField
from foveate.models.occupancy import OccupancyGrid
from foveate.models.volume_rendering import render_rays


class Model(torch.nn.Module):
    """A radiance field with an occupancy grid inside the scene's normalisation sphere's box."""

    def __init__(self, scene: Scene, samples_per_ray: int, grid_resolution: int) -> None:
        super().__init__()
        center = scene.normalization[:3, 3].float()
        radius = float(scene.normalization[0, 0])
        self.aabb = torch.stack((center - radius, center + radius))
        self.step_size = 2.0 * radius * math.sqrt(3.0) / samples_per_ray
        self.samples_per_ray = samples_per_ray
        self.field = RadianceField(self.aabb, levels=12, log2_table_size=17, base_resolution=8, finest_resolution=256)
        self.grid = OccupancyGrid(self.aabb, resolution=grid_resolution, step_size=self.step_size)

    def forward(self, rays: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        out = render_rays(
            self.field,
            rays[:, :3],
            rays[:, 3:],
            self.aabb,
            self.step_size,
            self.samples_per_ray,
            self.grid,
            background=background,
            jitter=self.training,
        )
        return out.rgb


@torch.no_grad()
def psnr(model: Model, scene: Scene, background: torch.Tensor, chunk: int = 8192) -> float:
    """Mean PSNR over the views of ``scene``."""
    model.eval()
    values = []
    for view in range(scene.num_views):
        origins, directions = scene.cameras.image_rays(view)
        rays = torch.cat((origins, directions), dim=-1).reshape(-1, 6)
        predicted = torch.cat([model(rays[i : i + chunk], background) for i in range(0, rays.shape[0], chunk)])
        alpha = scene.masks[view].reshape(-1, 1).float() / 255 if scene.masks is not None else 1.0
        target = scene.images[view].reshape(-1, 3).float() / 255 + background * (1.0 - alpha)
        values.append(-10.0 * math.log10(float(F.mse_loss(predicted.clamp(0.0, 1.0), target))))
    model.train()
    return sum(values) / len(values)


def run(scene: Scene, strategy: str, args: argparse.Namespace) -> list[dict]:
    """Train once; returns the evaluation curve (step, training seconds, PSNR)."""
    torch.manual_seed(args.seed)
    background = torch.tensor(args.background, dtype=torch.float32)
    config = {"strategy": strategy, "warmup_iterations": args.warmup, "update_frequency": args.update_frequency}
    handler = ErrorAwareDataHandler(scene, args.rays, config, background=background, seed=args.seed)
    held_out = scene.split("val")
    model = Model(scene, args.samples_per_ray, args.grid_resolution)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-15)
    curve, seconds = [], 0.0
    for step in range(args.steps):
        start = time.perf_counter()
        if step % 16 == 0:
            model.grid.update(model.field.density)
        batch = handler.sample()
        per_ray = F.smooth_l1_loss(model(batch.rays, background), batch.rgb, reduction="none").mean(dim=1)
        handler.update(batch.ids, per_ray.detach(), step)
        optimizer.zero_grad()
        (batch.weights * per_ray).mean().backward()
        optimizer.step()
        seconds += time.perf_counter() - start
        if (step + 1) % args.eval_every == 0:
            curve.append({"step": step + 1, "seconds": seconds, "psnr": psnr(model, held_out, background)})
            print(f"{strategy:>15} step {step + 1:5d}  {seconds:7.1f} s  val PSNR {curve[-1]['psnr']:.2f} dB")
    return curve


def first_reaching(curve: list[dict], target: float) -> dict | None:
    return next((point for point in curve if point["psnr"] >= target), None)


def at_time(curve: list[dict], seconds: float) -> float:
    """PSNR of the last evaluation made within ``seconds`` of training."""
    within = [point["psnr"] for point in curve if point["seconds"] <= seconds * 1.0001]
    return within[-1] if within else float("nan")


def summary(curves: dict[str, list[dict]]) -> list[dict]:
    uniform = curves["uniform"]
    target, total_steps, total_seconds = uniform[-1]["psnr"], uniform[-1]["step"], uniform[-1]["seconds"]
    rows = []
    for strategy, curve in curves.items():
        reached = first_reaching(curve, target)
        rows.append(
            {
                "strategy": strategy,
                "final_psnr": curve[-1]["psnr"],
                "steps_to_uniform_final": None if reached is None else reached["step"],
                "step_ratio": None if reached is None else reached["step"] / total_steps,
                "time_ratio": None if reached is None else reached["seconds"] / total_seconds,
                "psnr_at_uniform_time": at_time(curve, total_seconds),
                "seconds": curve[-1]["seconds"],
            }
        )
    return rows


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"scene {args.scene}, {args.steps} steps of {args.rays} rays, evaluation every {args.eval_every} steps",
        "",
        "| strategy | final val PSNR (dB) | steps to uniform's final | step ratio | time ratio "
        "| PSNR at uniform's time (dB) | train seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        reached = row["steps_to_uniform_final"]
        steps = f"not within {args.steps}" if reached is None else str(reached)
        step_ratio = "-" if reached is None else f"{row['step_ratio']:.2f}x"
        time_ratio = "-" if reached is None else f"{row['time_ratio']:.2f}x"
        lines.append(
            f"| {row['strategy']} | {row['final_psnr']:.2f} | {steps} | {step_ratio} | {time_ratio} "
            f"| {row['psnr_at_uniform_time']:.2f} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", required=True, help="a rendered scene directory with a 'val' split")
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted"])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rays", type=int, default=1024, help="rays per batch")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--update-frequency", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--samples-per-ray", type=int, default=128)
    parser.add_argument("--grid-resolution", type=int, default=64)
    parser.add_argument("--background", type=float, nargs=3, default=[0.0, 0.0, 0.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write curves and summary here")
    args = parser.parse_args()
    if "uniform" not in args.strategies:
        args.strategies.insert(0, "uniform")
    scene = load_scene(args.scene)
    curves = {strategy: run(scene, strategy, args) for strategy in args.strategies}
    rows = summary(curves)
    print(markdown(rows, args))
    if args.json:
        record = {
            "date": datetime.date.today().isoformat(),
            "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "arguments": vars(args),
            "curves": curves,
            "summary": rows,
        }
        with open(args.json, "w") as file:
            json.dump(record, file, indent=2)


if __name__ == "__main__":
    main()
