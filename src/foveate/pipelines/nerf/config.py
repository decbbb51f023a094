"""The radiance field's config and presets."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from foveate.models import HashGridConfig
from foveate.train import OptimConfig, Preset, SamplingConfig, TrainConfig, apply_changes
from foveate.train.config import SHORT_RUN_SAMPLING, TINY_RUN

__all__ = ["PRESETS", "FieldConfig", "MarchConfig", "NerfConfig", "preset"]


@dataclass
class FieldConfig(HashGridConfig):
    """The radiance field: a 3-D hash grid, a density network and a view-dependent colour network."""

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
    uniform_cost: bool = False
    """Size each step to the field queries --train.batch-size uniformly drawn rays cost (measured on a
    fixed probe of training rays at each occupancy update): guided rays, which favour the object the
    occupancy grid cannot skip, come fewer to a step, so a guided step costs what a uniform one does."""
    target_samples: int = 0
    """Field queries per training step: each step draws as many rays as the last step's samples per ray
    allow within this budget (instant-ngp's and nerfstudio's fixed sample batch); 0: no fixed budget."""


@dataclass
class NerfConfig:
    """Fit a radiance field to a multi-view scene: Blender, NeuS, COLMAP or transforms.json (foveate data render)."""

    scene: str = ""
    """Scene directory."""
    downsample: int = 1
    """Shrink the images by this integer factor before training."""
    box_scale: float = 1.0
    """Scale of the reconstruction box about its centre; the box bounds the scene's normalised unit sphere
    (the identity when the scene names none: [-1, 1]^3; NeRF-synthetic needs 1.5)."""
    val_every: int = 8
    """Without a 'val' split: hold out every val_every-th view for validation."""
    val_views: int = 2
    """Held-out views scored at each full validation (the first ones; 0: every one)."""
    ssim: bool = True
    """Compute SSIM at full validations (PSNR always)."""
    model: FieldConfig = field(default_factory=lambda: FieldConfig(finest_resolution=1024))
    march: MarchConfig = field(default_factory=MarchConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=5000, batch_size=8192, log_every=50))
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def _preset(**changes: object) -> NerfConfig:
    return apply_changes(NerfConfig(), {**SHORT_RUN_SAMPLING, **changes})


PRESETS: dict[str, Preset[NerfConfig]] = {
    "default": Preset("sized for a GPU: 8,192 rays a step, 5000 steps, a 2^19-row table per level", _preset()),
    "cpu": Preset(
        "sized for a few CPU cores and a 64 x 64 scene: minutes, not hours",
        _preset(
            model__levels=8,
            model__log2_table_size=15,
            model__base_resolution=8,
            model__finest_resolution=256,
            model__hidden=32,
            march__samples_per_ray=128,
            march__occupancy_resolution=32,
            march__occupancy_every=8,
            val_views=0,
            train__steps=400,
            train__batch_size=1024,
            train__log_every=10,
            train__checkpoint_every=200,
            sampling__warmup_iterations=20,
            optim__lr=1e-2,
        ),
    ),
    "tiny": Preset(
        "for tests and smoke runs: seconds on any machine",
        _preset(
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
            train__batch_size=128,
            optim__lr=3e-2,
            **TINY_RUN,
        ),
    ),
}


def preset(name: str, **overrides: object) -> NerfConfig:
    """A copy of the named preset with ``section__field=value`` overrides applied."""
    return apply_changes(copy.deepcopy(PRESETS[name].config), overrides)
