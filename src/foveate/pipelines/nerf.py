"""The radiance field: fit a hash-grid NeRF to a multi-view scene, drawing rays by their error.

Units are the rays of the training images (sampler shape ``(images, H, W)``, row-major ids);
a ray's loss is its squared colour error, averaged over channels. Scenes store colours over
black where a view is transparent (:class:`~foveate.data.scenes.Scene`), so the renderer
composites over black too and no mask is needed. An occupancy grid, refreshed from the
field's densities every few steps, lets the marcher skip empty space. Validation renders
held-out views (the scene's ``val`` split, or every k-th view when it has none) and scores
PSNR and SSIM.

Commands: ``foveate train nerf`` and ``foveate render --run DIR`` (a novel-view orbit).
"""

from __future__ import annotations

import copy
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.scenes import Scene, load_scene
from foveate.models.nerf import RadianceField
from foveate.models.occupancy import OccupancyGrid
from foveate.models.volume_rendering import render_rays
from foveate.train import (
    CheckpointError,
    ImageQuality,
    OptimConfig,
    SamplingConfig,
    TrainConfig,
    Validation,
    apply_changes,
    config_from_dict,
    load_checkpoint,
    select_device,
)

from .registry import PipelineSpec, register_pipeline, train_command

__all__ = [
    "PRESETS",
    "SPEC",
    "FieldConfig",
    "MarchConfig",
    "NerfConfig",
    "OrbitConfig",
    "RadianceFieldTask",
    "SceneModel",
    "build_task",
    "orbit_cameras",
    "preset",
    "render_main",
    "render_orbit",
    "run_name",
    "scene_box",
    "scene_of",
    "split_views",
    "train_main",
]

RENDER_CHUNK = 1 << 14
"""Rays rendered per pass when rendering whole images (bounds the marcher's memory)."""


@dataclass
class FieldConfig:
    """The radiance field's architecture (see :class:`~foveate.models.nerf.RadianceField`)."""

    levels: int = 16
    """Hash-grid levels, coarse to fine."""
    log2_table_size: int = 19
    """log2 of the most hash-table rows per level."""
    features_per_level: int = 2
    base_resolution: int = 16
    """Cells per side of the coarsest level."""
    finest_resolution: int = 1024
    """Cells per side of the finest hash level, over the scene box."""
    geometry_features: int = 15
    """Features passed from the density network to the colour network."""
    hidden: int = 64
    """Width of both networks."""
    direction_degree: int = 4
    """Spherical-harmonic bands of the view direction (1 to 4)."""
    density_bias: float = -1.0
    """Added before the density activation (negative starts the volume nearly empty)."""


@dataclass
class MarchConfig:
    """Ray marching and the occupancy grid that skips empty space."""

    samples_per_ray: int = 256
    """Marching steps across the box's diagonal: the step is diagonal / samples_per_ray."""
    occupancy_resolution: int = 64
    """Occupancy cells per side of the scene box."""
    occupancy_every: int = 16
    """Training steps between occupancy-grid updates."""
    occupancy_threshold: float = 0.01
    """Opacity per marching step above which a cell counts as occupied."""
    occupancy_warmup: int = 16
    """Grid updates that refresh every cell (afterwards a random quarter plus a quarter of the occupied)."""


@dataclass
class NerfConfig:
    """Fit a radiance field to a multi-view scene (Blender or NeuS format, e.g. from ``foveate data render``)."""

    scene: str = ""
    """Scene directory (transforms_*.json or cameras_sphere.npz)."""
    downsample: int = 1
    """Shrink the images by this integer factor before training."""
    box_scale: float = 1.0
    """Scale of the reconstruction box about its centre; the box bounds the scene's normalised
    unit sphere (the identity when the scene names none: [-1, 1]^3; NeRF-synthetic needs 1.5)."""
    val_every: int = 8
    """Without a 'val' split: hold out every val_every-th view for validation."""
    val_views: int = 2
    """Held-out views scored at each validation (the first ones)."""
    ssim: bool = True
    """Compute SSIM at each validation (PSNR always)."""
    model: FieldConfig = field(default_factory=FieldConfig)
    march: MarchConfig = field(default_factory=MarchConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=5000, batch_size=8192, validate_every=500, log_every=50)
    )
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def _preset(**changes: object) -> NerfConfig:
    return apply_changes(NerfConfig(), changes)


PRESETS: dict[str, NerfConfig] = {
    # Sized for a GPU: 8,192 rays per step, a 2^19-row table per level.
    "default": _preset(),
    # Sized for a few-core CPU and a 64x64 scene: minutes, not hours.
    "cpu": _preset(
        model__levels=8,
        model__log2_table_size=15,
        model__base_resolution=8,
        model__finest_resolution=256,
        model__hidden=32,
        march__samples_per_ray=128,
        march__occupancy_resolution=32,
        march__occupancy_every=8,
        val_views=1,
        train__steps=400,
        train__batch_size=1024,
        train__validate_every=50,
        train__log_every=10,
        train__checkpoint_every=200,
        train__cpu_threads=1,
        sampling__warmup_iterations=20,
        optim__lr=2e-2,
    ),
    # For tests and smoke runs: seconds on any machine. One thread, as in the "cpu" preset:
    # with two, a CPU shared with any other job slows several-fold (threads wait on each other).
    "tiny": _preset(
        model__levels=4,
        model__log2_table_size=10,
        model__base_resolution=4,
        model__finest_resolution=32,
        model__geometry_features=7,
        model__hidden=16,
        model__direction_degree=2,
        march__samples_per_ray=48,
        march__occupancy_resolution=8,
        march__occupancy_every=4,
        march__occupancy_warmup=4,
        val_views=1,
        train__steps=20,
        train__batch_size=128,
        train__validate_every=10,
        train__log_every=5,
        train__checkpoint_every=10,
        train__sampler_stats_every=10,
        train__cpu_threads=1,
        sampling__warmup_iterations=2,
        sampling__update_frequency=2,
        optim__lr=3e-2,
    ),
}


def preset(name: str, **overrides: object) -> NerfConfig:
    """A copy of the named preset with ``section__field=value`` overrides applied."""
    return apply_changes(copy.deepcopy(PRESETS[name]), overrides)


def scene_box(scene: Scene, scale: float = 1.0) -> torch.Tensor:
    """``(2, 3)`` box around the region to reconstruct: the one bounding the scene's normalised
    unit sphere (:attr:`~foveate.data.scenes.Scene.normalization`), scaled by ``scale`` about its centre."""
    if scale <= 0:
        raise ValueError(f"box scale must be positive, got {scale}")
    normalization = scene.normalization
    center = normalization[:3, 3]
    half = normalization[:3, :3].norm(dim=1) * scale
    return torch.stack((center - half, center + half)).to(torch.float32)


def split_views(scene: Scene, every: int) -> tuple[list[int], list[int]]:
    """Training and held-out view indices: the scene's train/val splits, or every ``every``-th view held out."""
    if scene.splits.get("val"):
        train = scene.splits.get("train") or [i for i in range(scene.num_views) if i not in scene.splits["val"]]
        return list(train), list(scene.splits["val"])
    if every < 2 or scene.num_views < 2:
        raise ValueError(
            f"cannot hold out every {every}-th of {scene.num_views} views; need val_every >= 2 and 2 views"
        )
    held_out = list(range(0, scene.num_views, every))
    return [i for i in range(scene.num_views) if i not in held_out], held_out


class SceneModel(nn.Module):
    """The radiance field with its occupancy grid, saved and restored together.

    ``steps`` counts training steps so that the grid's update cadence survives a resume.
    """

    def __init__(self, field: RadianceField, occupancy: OccupancyGrid) -> None:
        super().__init__()
        self.field = field
        self.occupancy = occupancy
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))


class RadianceFieldTask:
    """The loop's view of a NeRF fit: per-ray loss on training views, scores on held-out views.

    Args:
        scene: the scene (all views); ``config`` says which are held out.
        config: the pipeline's config (field, marching, validation).
        device: where images, cameras and the model live.
    """

    name = "nerf"
    best_metric = "psnr"
    loss_is_mse = True

    def __init__(self, scene: Scene, config: NerfConfig, device: torch.device) -> None:
        train_views, held_out = split_views(scene, config.val_every)
        train, validation = scene.select(train_views), scene.select(held_out)
        self.device = device
        self.ssim = config.ssim
        self.colors = train.images.to(device)
        self.cameras = train.cameras.to(device)
        self.val_colors = validation.images[: max(1, config.val_views)].to(device)
        self.val_cameras = validation.cameras[: max(1, config.val_views)].to(device)
        self.unit_shape = (train.num_views, train.height, train.width)
        self.aabb = scene_box(scene, config.box_scale).to(device)
        diagonal = float((self.aabb[1] - self.aabb[0]).norm())
        march = config.march
        self.step_size = diagonal / march.samples_per_ray
        self.max_samples = march.samples_per_ray
        self.occupancy_every = march.occupancy_every
        m = config.model
        radiance = RadianceField(
            self.aabb,
            levels=m.levels,
            log2_table_size=m.log2_table_size,
            features_per_level=m.features_per_level,
            base_resolution=m.base_resolution,
            finest_resolution=m.finest_resolution,
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
        self.model = SceneModel(radiance, grid).to(device)
        self.maps: dict[str, torch.Tensor] = {}
        self._steps: int | None = None

    def per_unit_loss(self, ids: torch.Tensor) -> torch.Tensor:
        """Squared colour error of each ray (mean over RGB); refreshes the occupancy grid on schedule."""
        if self._steps is None:
            self._steps = int(self.model.steps)  # once per run: the cadence survives a resume
        if self._steps % self.occupancy_every == 0:
            self.model.occupancy.update(self.model.field.density)
        self._steps += 1
        self.model.steps += 1
        _, height, width = self.unit_shape
        image = torch.div(ids, height * width, rounding_mode="floor")
        pixel = ids - image * (height * width)
        y = torch.div(pixel, width, rounding_mode="floor")
        origins, directions = self.cameras.rays(image, y, pixel - y * width)
        rendered = render_rays(
            self.model.field,
            origins,
            directions,
            self.aabb,
            self.step_size,
            self.max_samples,
            self.model.occupancy,
            jitter=True,
        )
        target = self.colors.view(-1, 3)[ids].to(torch.float32) / 255.0
        return (rendered.rgb.float() - target).square().mean(dim=1)

    @torch.no_grad()
    def render_view(self, cameras: Cameras, index: int) -> torch.Tensor:
        """Camera ``index`` of ``cameras`` rendered by the model: ``(H, W, 3)`` in [0, 1]."""
        origins, directions = cameras.image_rays(index)
        origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
        colors = [
            render_rays(
                self.model.field,
                origins[start : start + RENDER_CHUNK],
                directions[start : start + RENDER_CHUNK],
                self.aabb,
                self.step_size,
                self.max_samples,
                self.model.occupancy,
            ).rgb
            for start in range(0, origins.shape[0], RENDER_CHUNK)
        ]
        return torch.cat(colors).float().clamp(0.0, 1.0).view(cameras.height, cameras.width, 3)

    def validate(self) -> Validation:
        """PSNR (and SSIM) over the held-out views; the first view's render and error map."""
        quality = ImageQuality(self.device, ssim=self.ssim)
        first_prediction = first_error = None
        for index in range(len(self.val_cameras)):
            prediction = self.render_view(self.val_cameras, index)
            target = self.val_colors[index].to(torch.float32) / 255.0
            quality.update(prediction, target)
            if first_prediction is None:
                first_prediction = prediction
                first_error = (prediction - target).square().mean(dim=2)
        self.maps = {"prediction": first_prediction, "error": first_error}
        error_image = (first_error / first_error.max().clamp(min=1e-12)).sqrt()[..., None]
        return Validation(quality.compute(), {"prediction": first_prediction, "error": error_image})

    def export(self, run_dir: Path) -> None:
        """Write each scored held-out view's render next to its ground truth into ``renders/``."""
        from PIL import Image

        renders = run_dir / "renders"
        renders.mkdir(parents=True, exist_ok=True)
        for index in range(len(self.val_cameras)):
            prediction = self.render_view(self.val_cameras, index)
            side_by_side = torch.cat((_to_uint8(prediction), self.val_colors[index]), dim=1)
            Image.fromarray(side_by_side.cpu().numpy()).save(renders / f"val_{index:03d}.png")


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def scene_of(config: NerfConfig) -> Scene:
    """The scene ``config.scene`` names, downsampled as configured."""
    if not config.scene:
        raise ValueError("no scene given: pass --scene DIR (a Blender or NeuS scene, e.g. from 'foveate data render')")
    scene = load_scene(config.scene)
    return scene.downsampled(config.downsample) if config.downsample > 1 else scene


def build_task(config: NerfConfig, device: torch.device) -> RadianceFieldTask:
    """Load the scene named by ``config.scene`` and build its field on ``device``."""
    return RadianceFieldTask(scene_of(config), config, device)


def run_name(config: NerfConfig) -> str:
    return f"{Path(config.scene).name or 'scene'}-{config.sampling.strategy}"


SPEC = register_pipeline(
    PipelineSpec(
        name="nerf",
        config_type=NerfConfig,
        presets=PRESETS,
        build_task=build_task,
        run_name=run_name,
        description="Fit a hash-grid radiance field to a multi-view scene, drawing rays by their error.",
    )
)


def train_main(argv: Sequence[str]) -> int:
    """``foveate train nerf``."""
    return train_command("nerf", argv)


# ----------------------------------------------------------------------------------------------
# Novel-view orbits: ``foveate render --run DIR``


def orbit_cameras(cameras: Cameras, center: torch.Tensor, frames: int) -> Cameras:
    """``frames`` cameras on a circle through the training cameras' mean distance and elevation.

    The circle turns about the cameras' mean direction from ``center`` when they crowd to one
    side (a cap of views into an open box), else about their mean "up"; each camera looks at
    ``center`` with the training cameras' intrinsics (those of the first).
    """
    center = center.to(torch.float32).cpu()
    c2w = cameras.camera_to_world.cpu()
    offsets = c2w[:, :3, 3] - center
    distances = offsets.norm(dim=1)
    radius = float(distances.mean())
    up = nn.functional.normalize(-c2w[:, :3, 1].mean(dim=0), dim=0)
    mean_direction = (offsets / distances[:, None]).mean(dim=0)
    axis = nn.functional.normalize(mean_direction, dim=0) if float(mean_direction.norm()) > 0.5 else up
    cos_polar = float(((offsets / distances[:, None]) @ axis).mean().clamp(-0.99, 0.99))
    positions = camera_positions(
        "orbit",
        frames,
        radius=radius,
        center=center.tolist(),
        up=axis.tolist(),
        elevation_degrees=math.degrees(math.asin(cos_polar)),
    )
    poses = look_at(positions, center, up)
    intrinsics = cameras.intrinsics[:1].cpu().expand(frames, 4).clone()
    return Cameras(poses, intrinsics, cameras.width, cameras.height)


@dataclass
class OrbitConfig:
    """Render a novel-view orbit of a trained radiance field into the run's renders/ directory."""

    run: Path
    """Run directory (holding checkpoints/ and config.yaml), e.g. runs/nerf/<name>."""
    checkpoint: Literal["auto", "best", "latest"] = "auto"
    """Which checkpoint: 'auto' takes best.pt when present, else latest.pt."""
    frames: int = 60
    """Frames in one turn."""
    fps: int = 20
    formats: tuple[Literal["gif", "mp4"], ...] = ("gif", "mp4")
    """Files to write: orbit.gif and orbit.mp4 (H.264 through the ffmpeg imageio-ffmpeg bundles)."""
    device: str = "auto"
    progress: bool = True


def _run_checkpoint(run: Path, which: str) -> Path:
    directory = run / "checkpoints"
    if not run.is_dir():
        raise CheckpointError(f"{run}: run directory not found")
    names = {"auto": ("best.pt", "latest.pt"), "best": ("best.pt",), "latest": ("latest.pt",)}[which]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(f"{run}: no {' or '.join(names)} under {directory}; is this a training run's directory?")


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad a frame by edge replication to even sides, which H.264 in yuv420p needs."""
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def render_orbit(config: OrbitConfig) -> list[Path]:
    """Render the orbit of ``config.run``'s model; returns the files written (``config.formats``)."""
    import imageio.v2 as imageio
    from rich.progress import track

    if config.frames < 1:
        raise ValueError(f"frames must be >= 1, got {config.frames}")
    if not config.formats:
        raise ValueError("formats is empty: choose gif, mp4 or both")
    if "mp4" in config.formats and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError("mp4 output needs imageio-ffmpeg: pip install 'foveate[render]' (or pass --formats gif)")
    device = select_device(config.device)
    path = _run_checkpoint(Path(config.run), config.checkpoint)
    state = load_checkpoint(path, map_location=device)
    if state.get("pipeline") != "nerf":
        raise CheckpointError(f"{path} is a checkpoint of pipeline {state.get('pipeline')!r}, not 'nerf'")
    nerf_config = config_from_dict(NerfConfig, state["config"], where=str(path))
    task = build_task(nerf_config, device)
    task.model.load_state_dict(state["model"])
    task.model.eval()
    orbit = orbit_cameras(task.cameras, (task.aabb[0] + task.aabb[1]) / 2, config.frames).to(device)
    indices = range(config.frames)
    if config.progress:
        indices = track(indices, description=f"rendering {config.frames} frames")
    frames = [_to_uint8(task.render_view(orbit, index)).cpu().numpy() for index in indices]
    renders = Path(config.run) / "renders"
    renders.mkdir(parents=True, exist_ok=True)
    written = []
    if "gif" in config.formats:
        written.append(renders / "orbit.gif")
        imageio.mimwrite(written[-1], frames, duration=1000.0 / config.fps, loop=0)
    if "mp4" in config.formats:
        written.append(renders / "orbit.mp4")
        # macro_block_size=1 keeps the true size; _even pads only where H.264 requires it.
        imageio.mimwrite(written[-1], [_even(f) for f in frames], fps=config.fps, codec="libx264",
                         pixelformat="yuv420p", macro_block_size=1)
    return written


def render_main(argv: Sequence[str]) -> int:
    """``foveate render --run DIR``."""
    import tyro
    from rich.console import Console

    console = Console(stderr=True)
    config = tyro.cli(OrbitConfig, args=list(argv), prog="foveate render")
    try:
        written = render_orbit(config)
    except (FileNotFoundError, ValueError, CheckpointError) as error:
        console.print(f"[red]foveate render: error:[/] {error}", highlight=False)
        return 2
    for path in written:
        print(path)
    return 0
