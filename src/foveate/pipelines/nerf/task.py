"""The radiance field's task: per-ray loss on training views, scores on held-out views.

Units are the rays of the training images (sampler shape ``(images, H, W)``, row-major ids),
gathered through the :class:`~foveate.data.handler.ErrorAwareDataHandler`; a ray's loss is its
squared colour error, averaged over channels. Rays through occupied space cost more field
queries than rays the occupancy grid skips, and guided draws favour them; with
``march.uniform_cost`` each step draws as many rays as cost what ``batch_size`` uniform rays do
(``march.target_samples``: a fixed budget of queries), so guided steps cost what uniform ones
do. Scenes store colours over black where a view is
transparent (:class:`~foveate.data.scenes.Scene`), so the renderer composites over black too
and no mask is needed. An occupancy grid, refreshed from the field's densities every few
steps (a hook), lets the marcher skip empty space.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from foveate.data import Cameras, ErrorAwareDataHandler, Scene
from foveate.models import OccupancyGrid, RadianceField, render_rays
from foveate.models.volume_rendering import RenderedRays, march, ray_aabb
from foveate.sampling import Draw, Sampler
from foveate.train import Hook, ImageQuality, Metric, Optimization, StepOutput, Task, Validation, psnr_from_mse
from foveate.train.visuals import error_visuals

from ..orbit import OrbitOptions, to_uint8
from ..scenes import load_training_scene, scene_box, split_views
from .config import NerfConfig

__all__ = ["QUICK_RAYS", "RadianceFieldTask", "scene_box", "scene_of", "split_views"]

RENDER_CHUNK = 1 << 14
"""Rays rendered per pass when rendering whole images (bounds the marcher's memory)."""
QUICK_RAYS = 1 << 12
"""Held-out rays of the fixed random subset a quick validation scores."""
MOST_RAYS = 4
"""Under --march.uniform-cost a step draws at most this many times --train.batch-size rays."""
PINNED = 0.99
"""A colour channel above this is pinned at white: its sigmoid passes next to no gradient back."""
PINNED_WARNING = 0.5
"""Warn at a full validation when this share of the field's opacity has pinned colour."""


def scene_of(config: NerfConfig) -> Scene:
    """The scene ``config.scene`` names, downsampled as configured."""
    return load_training_scene(config.scene, config.downsample)


class RadianceFieldTask(Task):
    """A NeRF fit.

    Args:
        scene: the scene (all views); ``config`` says which are held out.
        config: the pipeline's config (field, marching, validation).
        device: where images, cameras and the model live.
    """

    name = "nerf"
    metric = Metric("psnr", True, "held-out PSNR (dB)")
    unit_noun = "rays"
    cost_label = "field queries per drawn ray"

    def __init__(self, scene: Scene, config: NerfConfig, device: torch.device) -> None:
        if config.val_views < 0:
            raise ValueError(f"--val-views must be >= 0 (0: every held-out view), got {config.val_views}")
        if config.march.target_samples < 0:
            budget = config.march.target_samples
            raise ValueError(f"--march.target-samples must be >= 0 (0: no fixed budget), got {budget}")
        if config.march.target_samples and config.march.uniform_cost:
            raise ValueError("--march.target-samples and --march.uniform-cost each size the steps: choose one")
        train_views, held_out = split_views(scene, config.val_every)
        train, validation = scene.select(train_views), scene.select(held_out)
        self.scene_name = Path(config.scene).name or "scene"
        self.device = device
        self.ssim = config.ssim
        self.rays = ErrorAwareDataHandler(train, config.train.batch_size, device=device, gather_only=True)
        self.unit_shape = self.rays.shape
        self.noise = None if train.noise is None else train.noise.reshape(-1).to(device)
        scored = config.val_views if config.val_views > 0 else len(held_out)
        self.val_colors = validation.images[:scored].to(device)
        self.val_cameras = validation.cameras[:scored].to(device)
        self.quick_rays = _fixed_subset(validation, QUICK_RAYS, device)
        self.aabb = scene_box(scene, config.box_scale).to(device)
        march = config.march
        self.step_size = float((self.aabb[1] - self.aabb[0]).norm()) / march.samples_per_ray
        self.max_samples = march.samples_per_ray
        self.occupancy_every = march.occupancy_every
        self.batch_size = config.train.batch_size
        self.target_samples = march.target_samples
        self.uniform_cost = march.uniform_cost and config.sampling.strategy != "uniform"
        """Uniform draws set the cost a step is held to; they are drawn --train.batch-size at a time."""
        self.sizes_steps = self.uniform_cost or self.target_samples > 0
        self.rays_per_step = config.train.batch_size
        """Rays the next step draws when the task sizes its steps (the first step: --train.batch-size)."""
        self.uniform_samples_per_ray = float(march.samples_per_ray)
        """Field queries per uniformly drawn ray, measured on the cost probe at each occupancy update."""
        self.last_samples = 0
        self.drawn = {"rays": 0, "queries": 0}
        """Rays drawn and field queries marched for them, since the run began."""
        probe = torch.randperm(self.rays.num_rays, generator=torch.Generator().manual_seed(0))[: self.batch_size]
        self.cost_probe = self.rays.gather(probe.sort().values).rays
        m = config.model
        field = RadianceField(
            self.aabb,
            **m.encoding_arguments(1024),
            geometry_features=m.geometry_features,
            hidden=m.hidden,
            direction_degree=m.direction_degree,
            density_bias=m.density_bias,
        )
        grid = OccupancyGrid(
            self.aabb,
            resolution=march.occupancy_resolution,
            step_size=self.step_size,
            threshold=march.occupancy_threshold,
            warmup_updates=march.occupancy_warmup,
        )
        self.model = nn.ModuleDict({"field": field, "occupancy": grid}).to(device)

    @classmethod
    def from_config(cls, config: NerfConfig, device: torch.device) -> RadianceFieldTask:
        """Load the scene ``config.scene`` names and build its field on ``device``."""
        return cls(scene_of(config), config, device)

    @classmethod
    def run_name(cls, config: NerfConfig) -> str:
        return f"{Path(config.scene).name or 'scene'}-{config.sampling.strategy}"

    @classmethod
    def batch_words(cls, config: NerfConfig) -> str | None:
        if config.march.target_samples:
            return f"rays worth {config.march.target_samples} field queries"
        if config.march.uniform_cost:
            return f"rays costing what {config.train.batch_size} uniform rays do"
        return super().batch_words(config)

    @property
    def field(self) -> RadianceField:
        return self.model["field"]

    @property
    def occupancy(self) -> OccupancyGrid:
        return self.model["occupancy"]

    def describe(self) -> str:
        views, height, width = self.unit_shape
        return f"{self.scene_name} ({views} training views of {width} x {height})"

    def bind(self, sampler: Sampler) -> None:
        if self.sizes_steps and not self.ranks.alone:
            raise ValueError(
                "--march.target-samples and --march.uniform-cost size each step from this process's own "
                "samples; under torchrun train a fixed --train.batch-size"
            )
        super().bind(sampler)

    def draw_size(self, batch_size: int) -> int:
        """The configured batch, or as many rays as the step's budget of field queries allows."""
        return self.rays_per_step if self.sizes_steps else batch_size

    def hooks(self) -> list[Hook]:
        return [Hook(self.occupancy_every, self.update_occupancy)]

    def update_occupancy(self, step: int) -> None:
        self.occupancy.update(self.field.density)
        if self.uniform_cost:
            self.uniform_samples_per_ray = self.queries_per_ray(self.cost_probe)

    @torch.no_grad()
    def queries_per_ray(self, rays: torch.Tensor) -> float:
        """Field queries the marcher would make per ray of ``rays`` ``(B, 6)`` (unjittered, no field call)."""
        origins, directions = rays[:, :3], rays[:, 3:]
        near, far = ray_aabb(origins, directions, self.aabb)
        samples = march(origins, directions, near, far, self.step_size, self.max_samples, self.occupancy)
        return max(samples.ray_indices.numel(), 1) / rays.shape[0]

    def trace(self, origins: torch.Tensor, directions: torch.Tensor, jitter: bool = False) -> RenderedRays:
        """Rays marched through the occupied space and composited over black."""
        return render_rays(
            self.field, origins, directions, self.aabb, self.step_size, self.max_samples, self.occupancy, jitter=jitter
        )

    def colors(self, origins: torch.Tensor, directions: torch.Tensor, jitter: bool = False) -> torch.Tensor:
        """``(B, 3)`` colours of rays, composited over black."""
        return self.trace(origins, directions, jitter).rgb.float()

    def per_unit_loss(self, ids: torch.Tensor) -> torch.Tensor:
        """Squared colour error of each ray (mean over RGB); sizes the next step when the task does."""
        batch = self.rays.gather(ids)
        rendered = self.trace(batch.rays[:, :3], batch.rays[:, 3:], jitter=True)
        self.last_samples = rendered.num_samples
        self.drawn["rays"] += ids.numel()
        self.drawn["queries"] += rendered.num_samples
        if self.sizes_steps:
            samples_per_ray = max(rendered.num_samples, 1) / ids.numel()
            if self.target_samples:
                budget, most = self.target_samples, self.target_samples
            else:
                budget, most = self.batch_size * self.uniform_samples_per_ray, MOST_RAYS * self.batch_size
            self.rays_per_step = min(max(round(budget / samples_per_ray), 1), most)
        return (rendered.rgb.float() - batch.rgb).square().mean(dim=1)

    def training_step(self, batch: Draw | None, step: int, optimization: Optimization) -> StepOutput:
        """The default step, logging the field queries per ray (and the rays, under a sample budget)."""
        output = super().training_step(batch, step, optimization)
        rays = batch.ids.numel()
        terms = {**output.terms, "samples_per_ray": self.last_samples / rays}
        if self.sizes_steps:
            terms["rays"] = float(rays)
        return dataclasses.replace(output, terms=terms)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "rays_per_step": self.rays_per_step,
            "uniform_samples_per_ray": self.uniform_samples_per_ray,
            "drawn": dict(self.drawn),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.rays_per_step = int(state.get("rays_per_step", self.rays_per_step))
        self.uniform_samples_per_ray = float(state.get("uniform_samples_per_ray", self.uniform_samples_per_ray))
        self.drawn = dict(state.get("drawn", self.drawn))

    def unit_noise(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Each ray's target noise (the renderer's per-pixel variance), when the scene has it."""
        return None if self.noise is None else self.noise[ids]

    @torch.no_grad()
    def render_view(self, cameras: Cameras, index: int) -> torch.Tensor:
        """Camera ``index`` of ``cameras`` rendered by the model: ``(H, W, 3)`` in [0, 1]."""
        origins, directions = cameras.image_rays(index)
        origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
        colors = [
            self.colors(origins[start : start + RENDER_CHUNK], directions[start : start + RENDER_CHUNK])
            for start in range(0, origins.shape[0], RENDER_CHUNK)
        ]
        return torch.cat(colors).clamp(0.0, 1.0).view(cameras.height, cameras.width, 3)

    def validate(self, full: bool) -> Validation:
        """Quick: PSNR over a fixed random subset of held-out rays. Full: PSNR and SSIM over the scored
        held-out views, with the first view's target, render and error, and the field queries per ray
        drawn so far (``cost_per_unit``)."""
        if not full:
            origins, directions, target = self.quick_rays
            chunks = zip(origins.split(RENDER_CHUNK), directions.split(RENDER_CHUNK), strict=True)
            rendered = torch.cat([self.colors(o, d) for o, d in chunks])
            return Validation({"psnr": float(psnr_from_mse((rendered.clamp(0, 1) - target).square().mean()))})
        quality = ImageQuality(self.device, ssim=self.ssim)
        images: dict[str, torch.Tensor] = {}
        maps: dict[str, torch.Tensor] = {}
        for index in range(len(self.val_cameras)):
            prediction = self.render_view(self.val_cameras, index)
            target = self.val_colors[index].to(torch.float32) / 255.0
            quality.update(prediction, target)
            if not images:
                images, maps = error_visuals(prediction, target)
        metrics = quality.compute()
        metrics["colour_pinned"] = self.pinned_colour()
        if self.drawn["rays"]:
            metrics["cost_per_unit"] = self.drawn["queries"] / self.drawn["rays"]
        if metrics["colour_pinned"] > PINNED_WARNING:
            warnings.warn(
                f"the field's colour is pinned at white on {metrics['colour_pinned']:.0%} of its opacity: its colour "
                "network saturated and no longer learns, so renders turn grey (try a lower --optim.lr)",
                stacklevel=2,
            )
        return Validation(metrics, images, maps)

    @torch.no_grad()
    def pinned_colour(self, points: int = 4096) -> float:
        """Share of the field's opacity, at random points of the occupied cells, whose colour is pinned at white.

        A colour network driven into the top of its sigmoid stays there (no gradient comes back) and
        the density learns the images' brightness instead: the run stalls with grey renders.
        """
        grid = self.occupancy
        occupied = grid.occupied.nonzero().squeeze(1)
        if occupied.numel() == 0:
            return 0.0
        generator = torch.Generator(device=self.device).manual_seed(0)
        pick = torch.randint(occupied.numel(), (points,), device=self.device, generator=generator)
        where = grid.cell_points(occupied[pick], generator)
        directions = nn.functional.normalize(torch.randn(where.shape, device=self.device, generator=generator), dim=-1)
        density, color = self.field(where, directions)
        weight = 1.0 - torch.exp(-density.float() * self.step_size)
        pinned = (color > PINNED).all(dim=-1)
        return float((weight * pinned).sum() / weight.sum().clamp(min=torch.finfo(torch.float32).tiny))

    def export(self, run_dir: Path) -> list[Path]:
        """Each scored held-out view's render next to its ground truth, in ``renders/``."""
        from PIL import Image

        renders = run_dir / "renders"
        renders.mkdir(parents=True, exist_ok=True)
        written = []
        for index in range(len(self.val_cameras)):
            prediction = self.render_view(self.val_cameras, index)
            side_by_side = torch.cat((to_uint8(prediction), self.val_colors[index]), dim=1)
            written.append(renders / f"val_{index:03d}.png")
            Image.fromarray(side_by_side.cpu().numpy()).save(written[-1])
        return written

    def render(self, options: OrbitOptions, out: Path, progress: bool = False) -> list[Path]:
        """``foveate render nerf``: a novel-view orbit (gif, mp4) into ``out``."""
        from ..orbit import render_orbit

        center = (self.aabb[0] + self.aabb[1]) / 2
        return render_orbit(self.render_view, self.rays.cameras, center, options, out, progress)


def _fixed_subset(scene: Scene, count: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Origins, directions and target colours of a fixed random subset of ``scene``'s rays."""
    total = scene.num_rays
    ids = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:count].sort().values
    rays = ErrorAwareDataHandler(scene, 1, gather_only=True).gather(ids)
    return rays.rays[:, :3].to(device), rays.rays[:, 3:].to(device), rays.rgb.to(device)
