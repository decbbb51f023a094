"""A RadFoam-shaped trainer switching to foveate's error-guided rays (the lines marked ``# foveate``).

The loop below follows the data side of RadFoam's ``train.py`` (the seed's fork,
``hgruniaux/radfoam``) call for call: a handler reloaded on a downsample schedule (4, 2, 1 at
steps 0, 150, 500) with a fresh iterator after each reload, the next batch fetched after the
backward pass, error statistics read with ``get_error_statistics()``. Switching to foveate
takes four lines: import :func:`create_error_aware_data_handler`, build the handler with it
instead of ``DataHandler``, iterate over ``get_iter_with_error_sampling(iteration=step)``
(whose tuples end with the ray ids) instead of ``get_iter()``, and hand each ray's loss back
with ``update_error_map``. Everything else stays as it was. ``docs/radfoam.md`` lists how
foveate's draws differ from RadFoam's, and ``semantics="radfoam"`` to get RadFoam's.

The model here is foveate's hash-grid radiance field standing in for RadFoam's foam: the
data side is the point.

    foveate data render --out scenes/bunny --scene bunny --views 40 --width 64 --height 64 --spp 64
    python examples/radfoam_integration.py --scene scenes/bunny --steps 300
    python examples/radfoam_integration.py --scene scenes/bunny --steps 300 --strategy uniform
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from foveate.data import create_error_aware_data_handler  # foveate
from foveate.data.scenes import Scene, load_scene
from foveate.models.nerf import RadianceField
from foveate.models.occupancy import OccupancyGrid
from foveate.models.volume_rendering import render_rays

WHITE = torch.ones(3)  # RadFoam composites Blender scenes over white


class Model(nn.Module):
    """Rays in, colour and opacity out: the interface RadFoam's trainer expects of its model."""

    def __init__(self, scene: Scene, samples_per_ray: int = 128) -> None:
        super().__init__()
        center = scene.normalization[:3, 3].float()
        radius = float(scene.normalization[0, 0])
        self.aabb = torch.stack((center - radius, center + radius))
        self.step_size = 2.0 * radius * math.sqrt(3.0) / samples_per_ray
        self.samples_per_ray = samples_per_ray
        self.field = RadianceField(self.aabb, levels=12, log2_table_size=17, base_resolution=8, finest_resolution=256)
        self.grid = OccupancyGrid(self.aabb, resolution=64, step_size=self.step_size)

    def forward(self, rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = render_rays(
            self.field,
            rays[:, :3],
            rays[:, 3:],
            self.aabb,
            self.step_size,
            self.samples_per_ray,
            self.grid,
            jitter=self.training,
        )
        return out.rgb, out.opacity


@torch.no_grad()
def validation_psnr(model: Model, scene: Scene, chunk: int = 4096) -> float:
    """Mean PSNR over the views of ``scene``, rendered over white."""
    model.eval()
    psnrs = []
    for view in range(scene.num_views):
        origins, directions = scene.cameras.image_rays(view)
        rays = torch.cat((origins, directions), dim=-1).reshape(-1, 6)
        pieces = []
        for start in range(0, rays.shape[0], chunk):
            rgb, opacity = model(rays[start : start + chunk])
            pieces.append(rgb + WHITE * (1.0 - opacity))
        predicted = torch.cat(pieces).clamp(0.0, 1.0)
        alpha = (scene.masks[view].reshape(-1, 1).float() / 255) if scene.masks is not None else 1.0
        target = scene.images[view].reshape(-1, 3).float() / 255 + WHITE * (1.0 - alpha)
        psnrs.append(-10.0 * math.log10(float(F.mse_loss(predicted, target))))
    model.train()
    return sum(psnrs) / len(psnrs)


def train(args: argparse.Namespace) -> float:
    torch.manual_seed(args.seed)
    scene = load_scene(args.scene)
    error_sampling_config = {
        "strategy": args.strategy,
        "args": {"update_frequency": 10, "decay": 0.9, "warmup_iterations": args.warmup, "min_error_weight": 0.1},
    }
    # RadFoam: train_data_handler = DataHandler(dataset_args, rays_per_batch=..., device=...)
    handler = create_error_aware_data_handler(scene, args.rays_per_batch, "cpu", error_sampling_config)  # foveate
    iter2downsample = {0: 4, 150: 2, 500: 1} if args.schedule == "radfoam" else {0: 1}
    handler.reload(split="train", downsample=iter2downsample[0])
    batches = handler.get_iter_with_error_sampling(iteration=0)  # foveate: was handler.get_iter()
    ray_batch, rgb_batch, *_ = next(batches)
    model = Model(scene)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-15)
    start = time.perf_counter()
    for step in range(args.steps):
        if step in iter2downsample and step:
            handler.reload(split="train", downsample=iter2downsample[step])
            batches = handler.get_iter_with_error_sampling(iteration=step)  # foveate: was handler.get_iter()
            ray_batch, rgb_batch, *_ = next(batches)
        if step % 16 == 0:
            model.grid.update(model.field.density)
        rgb, opacity = model(ray_batch)
        color_loss = F.smooth_l1_loss(rgb + WHITE * (1.0 - opacity), rgb_batch, reduction="none")
        handler.update_error_map(color_loss.mean(dim=-1).detach())  # foveate
        loss = color_loss.mean()
        optimizer.zero_grad()
        loss.backward()
        ray_batch, rgb_batch, *_ = next(batches)
        optimizer.step()
        if (step + 1) % args.log_every == 0:
            stats = handler.get_error_statistics()
            print(
                f"step {step + 1:5d}  loss {loss.item():.5f}  rays {handler.img_wh[0]}x{handler.img_wh[1]}  "
                f"warm-up {stats['in_warmup']}  entropy {stats['normalized_entropy']:.3f}  "
                f"{time.perf_counter() - start:.1f} s"
            )
    seconds = time.perf_counter() - start
    held_out = scene.split("val") if scene.splits.get("val") else scene.split("train")
    psnr = validation_psnr(model, held_out)
    print(f"{args.strategy}: {args.steps} steps in {seconds:.1f} s, validation PSNR {psnr:.2f} dB")
    if args.stats:
        handler.write_stats(args.stats)  # the seed's error_sampling_stats.json
    return psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", required=True, help="a scene directory (Blender or NeuS format)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rays-per-batch", type=int, default=1024)
    parser.add_argument("--strategy", default="error_weighted", help="uniform, error_weighted, spatial, adaptive")
    parser.add_argument("--warmup", type=int, default=50, help="uniform steps before error-guided draws")
    parser.add_argument("--schedule", choices=["radfoam", "none"], default="none")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--stats", help="write the sampler's statistics here (JSON)")
    parser.add_argument("--seed", type=int, default=0)
    train(parser.parse_args())


if __name__ == "__main__":
    main()
