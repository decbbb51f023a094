"""The splatting pipeline's config and presets (gsplat's ``simple_trainer`` defaults where it has one)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

from foveate.models.densify import DefaultStrategy, MCMCStrategy
from foveate.train import OptimConfig, Preset, SamplingConfig, TrainConfig, apply_changes
from foveate.train.config import SHORT_RUN_SAMPLING, TINY_RUN

__all__ = ["PRESETS", "DensityConfig", "InitConfig", "LearningRates", "SplatConfig", "ViewsConfig", "preset"]


@dataclass
class InitConfig:
    """Where the splats start: the scene's points (COLMAP's points3D) or uniformly in its box."""

    source: Literal["auto", "points", "random"] = "auto"
    """'points' needs the scene's sparse points; 'random' fills the box; 'auto' takes points when the scene has them."""
    num_points: int = 100_000
    """Splats of a random start."""
    box_scale: float = 1.0
    """Scale of the random start's box about its centre; the box bounds the scene's normalised unit sphere."""
    opacity: float = 0.1
    """Starting opacity of every splat."""
    scale: float = 1.0
    """Starting scales: this times the mean distance to the 3 nearest starting points."""


@dataclass
class LearningRates:
    """Adam's learning rate per parameter, gsplat's simple_trainer's (the means' is multiplied by the scene scale)."""

    means: float = 1.6e-4
    """Positions, times the scene scale."""
    means_final_fraction: float = 0.01
    """The means' rate decays exponentially to this fraction of its start over the run."""
    scales: float = 5e-3
    """Log-scales."""
    opacities: float = 5e-2
    """Opacity logits."""
    quats: float = 1e-3
    """Rotation quaternions."""
    sh0: float = 2.5e-3
    """Degree-0 spherical-harmonic coefficients (the base colour)."""
    shN: float = 2.5e-3 / 20
    """Higher spherical-harmonic coefficients."""


@dataclass
class DensityConfig:
    """Density control: 3DGS's grow / split / prune / reset ('default') or MCMC relocation ('mcmc')."""

    strategy: Literal["default", "mcmc", "none"] = "default"
    """'default' (gsplat's DefaultStrategy), 'mcmc' (MCMCStrategy) or 'none' (a fixed set of splats)."""
    default: DefaultStrategy = field(default_factory=DefaultStrategy)
    mcmc: MCMCStrategy = field(default_factory=MCMCStrategy)


@dataclass
class ViewsConfig:
    """What one unit is, and how the uniform strategy walks them."""

    tiles: int = 1
    """Tiles per image side: 1 makes every training view a unit; n > 1 makes n x n tiles of each view units
    (the image sides must divide by n)."""
    shuffled_epochs: bool = True
    """Draw the uniform part of every draw as gsplat does, every unit once per epoch in a fresh random order
    (all of it under the uniform strategy, the uniform component's share under adaptive)."""


@dataclass
class SplatConfig:
    """Fit 3D Gaussian splats to a multi-view scene: Blender, NeuS, COLMAP or transforms.json.

    Every training view is a unit: the engine draws the views (or view tiles) of each step by their
    loss. The optim section's lr multiplies every per-parameter rate in the lr section; its betas and
    eps are Adam's; its schedule is unused (the means' rate decays exponentially, as in gsplat).
    """

    scene: str = ""
    """Scene directory."""
    downsample: int = 1
    """Shrink the images by this integer factor before training."""
    val_every: int = 8
    """Without a 'val' split: hold out every val_every-th view for validation."""
    val_views: int = 8
    """Held-out views scored at each validation (the first ones)."""
    sh_degree: int = 3
    """Highest spherical-harmonic degree of the colours (0 to 3)."""
    sh_degree_interval: int = 1000
    """Steps between raising the degree in use by one."""
    ssim_lambda: float = 0.2
    """Weight of D-SSIM (1 - SSIM, 11 x 11 Gaussian window) against L1 in the loss."""
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Colour behind the splats (scenes store colours over black where a view is transparent)."""
    near_plane: float = 0.01
    """Splats closer to a camera than this are culled."""
    far_plane: float = 1e10
    """Splats farther from a camera than this are culled."""
    backend: Literal["auto", "torch", "gsplat"] = "auto"
    """Rasteriser: 'torch' (any device), 'gsplat' (CUDA, pip install gsplat) or 'auto' (gsplat when it can run)."""
    init: InitConfig = field(default_factory=InitConfig)
    lr: LearningRates = field(default_factory=LearningRates)
    density: DensityConfig = field(default_factory=DensityConfig)
    views: ViewsConfig = field(default_factory=ViewsConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=30_000, batch_size=1, log_every=100, checkpoint_every=5000)
    )
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1.0, betas=(0.9, 0.999), eps=1e-15))


def _preset(**changes: object) -> SplatConfig:
    return apply_changes(SplatConfig(), {**SHORT_RUN_SAMPLING, **changes})


PRESETS: dict[str, Preset[SplatConfig]] = {
    "default": Preset(
        "gsplat's simple_trainer, sized for a GPU: 30,000 steps, one view a step, 100k random splats to start",
        _preset(sampling__warmup_iterations=500, sampling__update_frequency=100),
    ),
    "cpu": Preset(
        "sized for a few CPU cores and a 64 x 64 scene: minutes, not hours",
        _preset(
            init__num_points=1000,
            init__scale=0.5,
            sh_degree=1,
            sh_degree_interval=500,
            val_views=4,
            density__default__refine_start_iter=100,
            density__default__refine_stop_iter=1000,
            density__default__refine_every=50,
            density__default__reset_every=100_000,
            density__default__grow_grad2d=0.0008,
            density__mcmc__cap_max=8000,
            density__mcmc__refine_start_iter=100,
            density__mcmc__refine_stop_iter=1000,
            density__mcmc__refine_every=50,
            train__steps=1500,
            train__batch_size=2,
            train__log_every=20,
            train__checkpoint_every=500,
            optim__lr=4.0,
        ),
    ),
    "tiny": Preset(
        "for tests and smoke runs: seconds on any machine",
        _preset(
            init__num_points=300,
            sh_degree=1,
            sh_degree_interval=10,
            val_views=1,
            density__default__refine_start_iter=1,
            density__default__refine_every=2,
            density__default__reset_every=4,
            density__mcmc__refine_start_iter=1,
            density__mcmc__refine_every=2,
            train__batch_size=2,
            **TINY_RUN,
        ),
    ),
}


def preset(name: str, **overrides: object) -> SplatConfig:
    """A copy of the named preset with ``section__field=value`` overrides applied."""
    return apply_changes(copy.deepcopy(PRESETS[name].config), overrides)
