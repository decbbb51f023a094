"""NeuS and RNb-NeuS: the config, whose defaults are NeuS's ``confs/wmask.conf``, and the presets."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Literal

from foveate.models import HashGridConfig
from foveate.train import OptimConfig, Preset, SamplingConfig, TrainConfig, apply_changes
from foveate.train.config import SHORT_RUN_SAMPLING, TINY_RUN

__all__ = [
    "PRESETS",
    "BackgroundConfig",
    "ColorConfig",
    "LossConfig",
    "NeuSConfig",
    "RendererConfig",
    "SDFConfig",
    "check_neus_config",
    "preset",
]


@dataclass
class SDFConfig:
    """The signed-distance network (NeuS: an 8 x 256 MLP over a 6-octave positional encoding)."""

    encoding: Literal["frequency", "hash"] = "frequency"
    """frequency: NeuS's positional encoding; hash: a multiresolution hash grid (instant-nsr-pl, NeuS2)."""
    multires: int = 6
    """Octaves of the positional encoding (frequency encoding)."""
    grid: HashGridConfig = field(
        default_factory=lambda: HashGridConfig(
            levels=16, log2_table_size=19, base_resolution=16, finest_resolution=2048
        )
    )
    """The hash grid (hash encoding), over the unit sphere's bounding cube."""
    hidden: int = 256
    """Width of the hidden layers."""
    layers: int = 8
    """Hidden layers."""
    skip_in: tuple[int, ...] = (4,)
    """Layers that see the encoded input again."""
    features: int = 256
    """Features passed to the colour network."""
    bias: float = 0.5
    """Radius of the sphere the geometric initialisation starts from."""
    scale: float = 1.0
    """Points are scaled by this before encoding."""
    geometric_init: bool = True
    """Start from a sphere (IDR's initialisation)."""
    weight_norm: bool = True
    """Weight-normalised layers."""
    inside_outside: bool = False
    """The initial sphere's inside is positive (for scenes seen from inside)."""
    gradient: Literal["autograd", "finite_difference"] = "autograd"
    """How normals are computed: autograd (exact), or finite differences (hash grids)."""
    epsilon: float = 2e-3
    """Finite-difference step in the unit sphere's units."""
    activation: Literal["softplus", "relu"] = "softplus"
    """softplus (beta 100, NeuS: smooth second derivatives for autograd normals) or relu (cheaper)."""
    variance_init: float = 0.3
    """Initial value of NeuS's variance parameter: the sharpness starts at exp(10 x this)."""


@dataclass
class ColorConfig:
    """The colour network (IDR's rendering network); in RNb mode it predicts the albedo."""

    mode: Literal["auto", "idr", "no_view_dir"] = "auto"
    """idr: sees the view direction; no_view_dir: does not (an albedo); auto: idr for rgb, no_view_dir for rnb."""
    hidden: int = 256
    """Width of the hidden layers."""
    layers: int = 4
    """Hidden layers."""
    view_encoding: Literal["frequency", "harmonics"] = "frequency"
    """frequency: NeuS's positional encoding of the view direction; harmonics: spherical harmonics."""
    view_degree: int = 4
    """Octaves (frequency) or bands (harmonics) of the view-direction encoding."""
    weight_norm: bool = True
    """Weight-normalised layers."""


@dataclass
class BackgroundConfig:
    """NeRF++'s background outside the unit sphere (used when render.n_outside > 0)."""

    hidden: int = 256
    """Width of the trunk."""
    layers: int = 8
    """Trunk layers."""
    multires: int = 10
    """Octaves of the encoding of (x / r, 1 / r)."""
    multires_view: int = 4
    """Octaves of the view-direction encoding."""


@dataclass
class RendererConfig:
    """How rays are sampled: NeuS's up-sampling, or marching through an occupancy grid."""

    kind: Literal["upsample", "march"] = "upsample"
    """upsample: NeuS's 64 + 64 samples; march: fixed steps through occupied cells (fast presets)."""
    n_samples: int = 64
    """upsample: evenly spaced samples between the sphere's near and far points."""
    n_importance: int = 64
    """upsample: samples added by the up-sampling rounds."""
    up_sample_steps: int = 4
    """upsample: rounds of up-sampling, with sharpness 64, 128, 256, ..."""
    n_outside: int = 0
    """upsample: NeRF++ background samples beyond the sphere (0: none; womask uses 32)."""
    perturb: bool = True
    """Jitter the samples while training."""
    samples_per_ray: int = 1024
    """march: steps across the sphere's diameter (the step is 2 / samples_per_ray)."""
    occupancy_resolution: int = 128
    """march: occupancy cells per side of the unit sphere's cube."""
    occupancy_every: int = 16
    """march: training steps between occupancy updates."""
    occupancy_threshold: float = 1e-3
    """march: opacity per step above which a cell counts as occupied."""
    chunk: int = 4096
    """Rays rendered per pass when rendering images, meshes' colours or validation rays."""


@dataclass
class LossConfig:
    """The loss and its schedules (NeuS's train section)."""

    igr_weight: float = 0.1
    """Weight of the eikonal term."""
    mask_weight: float = 0.1
    """Weight of the mask's binary cross-entropy (0: masks unused, as in womask)."""
    anneal_end: int = 0
    """Steps over which the cos-anneal ratio grows from 0 to 1 (0: 1 from the start)."""
    white_background: bool = False
    """Composite over white instead of black."""
    warm_up_iter: int = 200_000
    """RNb: steps with lights fixed in the camera frame and ReLU shading, before the per-pixel optimal lights."""


@dataclass
class NeuSConfig:
    """Reconstruct a surface with NeuS from images and masks, or with RNb-NeuS from normal and albedo maps."""

    scene: str = ""
    """Scene directory: NeuS (image/, mask/, cameras_sphere.npz) for rgb, RNb (normal/, cameras.npz) for rnb."""
    mode: Literal["rgb", "rnb"] = "rgb"
    """rgb: NeuS from images; rnb: RNb-NeuS from normal maps (and albedo) under simulated lights."""
    no_albedo: bool = False
    """RNb: ignore albedo maps (the shading alone, in grey)."""
    downsample: int = 1
    """Shrink the images by this integer factor before training."""
    validate_resolution_level: int = 4
    """Validation images are rendered at 1 / this of the full resolution."""
    val_mesh_resolution: int = 128
    """Marching-cubes cells per side for the Chamfer distance at each validation."""
    mesh_resolution: int = 512
    """Marching-cubes cells per side for the final mesh and validate_mesh."""
    mesh_threshold: float = 0.0
    """Level of the SDF extracted as the surface."""
    chamfer_samples: int = 100_000
    """Points sampled on each surface for the Chamfer distance."""
    sdf: SDFConfig = field(default_factory=SDFConfig)
    color: ColorConfig = field(default_factory=ColorConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    render: RendererConfig = field(default_factory=RendererConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=300_000,
            batch_size=512,
            log_every=100,
            validate_every=5000,
            full_validate_every=2500,
            checkpoint_every=10_000,
        )
    )
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=5e-4, betas=(0.9, 0.999), eps=1e-8, warmup_steps=5000, final_lr_fraction=0.05
        )
    )


def check_neus_config(config: NeuSConfig) -> None:
    """Refuse settings no NeuS run can use, naming the flag (the loop checks train, sampling and optim)."""
    positive = {
        "--downsample": config.downsample,
        "--validate-resolution-level": config.validate_resolution_level,
        "--val-mesh-resolution": config.val_mesh_resolution,
        "--mesh-resolution": config.mesh_resolution,
        "--chamfer-samples": config.chamfer_samples,
        "--sdf.hidden": config.sdf.hidden,
        "--sdf.layers": config.sdf.layers,
        "--color.hidden": config.color.hidden,
        "--render.samples-per-ray": config.render.samples_per_ray,
        "--render.occupancy-resolution": config.render.occupancy_resolution,
        "--render.occupancy-every": config.render.occupancy_every,
        "--render.chunk": config.render.chunk,
    }
    for flag, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value!r}")
    non_negative = {
        "--sdf.multires": config.sdf.multires,
        "--sdf.features": config.sdf.features,
        "--color.layers": config.color.layers,
        "--color.view-degree": config.color.view_degree,
        "--render.n-samples": config.render.n_samples,
        "--render.n-importance": config.render.n_importance,
        "--render.n-outside": config.render.n_outside,
        "--loss.anneal-end": config.loss.anneal_end,
        "--loss.warm-up-iter": config.loss.warm_up_iter,
    }
    for flag, value in non_negative.items():
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{flag} must be a non-negative integer, got {value!r}")
    for flag, value in {
        "--loss.igr-weight": config.loss.igr_weight,
        "--loss.mask-weight": config.loss.mask_weight,
    }.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{flag} must be a finite number >= 0, got {value!r}")
    if not (math.isfinite(config.sdf.epsilon) and config.sdf.epsilon > 0):
        raise ValueError(f"--sdf.epsilon must be > 0, got {config.sdf.epsilon!r}")
    render = config.render
    if render.kind == "upsample":
        if render.n_samples < 2:
            raise ValueError(f"--render.n-samples must be >= 2, got {render.n_samples}")
        if render.n_importance and (render.up_sample_steps < 1 or render.n_importance % render.up_sample_steps):
            raise ValueError(
                f"--render.n-importance ({render.n_importance}) must be a multiple of "
                f"--render.up-sample-steps ({render.up_sample_steps})"
            )
    elif render.n_outside:
        raise ValueError("--render.n-outside needs --render.kind upsample (the marcher renders no background)")
    if config.mode == "rnb" and render.n_outside:
        raise ValueError("--render.n-outside must be 0 in rnb mode (RNb-NeuS renders no background)")
    if config.sdf.encoding == "hash" and config.sdf.gradient == "autograd":
        raise ValueError(
            "--sdf.encoding hash needs --sdf.gradient finite_difference "
            "(hash lookups are not twice differentiable here)"
        )
    if any(not 0 < index < config.sdf.layers for index in config.sdf.skip_in):
        raise ValueError(f"--sdf.skip-in layers must be in [1, {config.sdf.layers}), got {list(config.sdf.skip_in)}")


def _preset(**changes: object) -> NeuSConfig:
    return apply_changes(NeuSConfig(), dict(changes))


FAST = {
    "sdf__encoding": "hash",
    "sdf__hidden": 64,
    "sdf__layers": 1,
    "sdf__skip_in": (),
    "sdf__features": 15,
    "sdf__weight_norm": True,
    "sdf__gradient": "finite_difference",
    "sdf__activation": "relu",
    "color__hidden": 64,
    "color__layers": 2,
    "color__view_encoding": "harmonics",
    "color__weight_norm": False,
    "render__kind": "march",
    "train__steps": 20_000,
    "train__batch_size": 4096,
    "train__log_every": 50,
    "train__validate_every": 0,
    "train__full_validate_every": 0,
    "train__checkpoint_every": 2000,
    "optim__lr": 1e-2,
    "optim__eps": 1e-15,
    "optim__warmup_steps": 500,
    "loss__warm_up_iter": 10_000,
    "val_mesh_resolution": 128,
    "mesh_resolution": 512,
}
"""A hash-grid SDF with small networks, marched through an occupancy grid (instant-nsr-pl's recipe)."""

CPU = {
    **FAST,
    **SHORT_RUN_SAMPLING,
    "sdf__grid__levels": 8,
    "sdf__grid__log2_table_size": 22,
    "sdf__grid__base_resolution": 8,
    "sdf__grid__finest_resolution": 128,
    "sdf__epsilon": 4e-3,
    "sdf__variance_init": 0.4,
    "render__samples_per_ray": 128,
    "render__occupancy_resolution": 48,
    "render__occupancy_every": 8,
    "train__steps": 1500,
    "train__batch_size": 1024,
    "train__log_every": 25,
    "train__checkpoint_every": 500,
    "optim__warmup_steps": 100,
    "loss__warm_up_iter": 1000,
    "val_mesh_resolution": 96,
    "mesh_resolution": 256,
    "chamfer_samples": 50_000,
    "validate_resolution_level": 1,
}
"""The fast recipe sized for two CPU cores and scenes of about 128 x 128 pixels: every level of the grid is
dense (at most 129^3 vertices, read with grid_sample, about 4x faster on a CPU than hashing), 128 steps across
the sphere, and a sharper start (s = exp(4)) so the occupied band is narrow sooner."""

RNB = {
    "mode": "rnb",
    "color__layers": 2,
    "train__validate_every": 25_000,
    "train__full_validate_every": 5000,
}
"""RNb-NeuS's ``wmask_rnb.conf`` on top of NeuS's defaults."""

PRESETS: dict[str, Preset[NeuSConfig]] = {
    "default": Preset("NeuS's wmask.conf: an 8 x 256 MLP, 64 + 64 samples, 300k steps (hours on a GPU)", NeuSConfig()),
    "womask": Preset(
        "NeuS's womask.conf: no masks, NeRF++ background (32 samples), cos-anneal over 50k steps",
        _preset(loss__mask_weight=0.0, loss__anneal_end=50_000, render__n_outside=32),
    ),
    "rnb": Preset("RNb-NeuS's wmask_rnb.conf: normal (+ albedo) maps under simulated lights", _preset(**RNB)),
    "fast": Preset("a hash-grid SDF marched through an occupancy grid: minutes on a GPU", _preset(**FAST)),
    "cpu": Preset("the fast recipe for two CPU cores and ~100 x 100 scenes: minutes, not hours", _preset(**CPU)),
    "tiny": Preset(
        "for tests and smoke runs: seconds on any machine",
        _preset(
            **{
                **CPU,
                "sdf__grid__levels": 4,
                "sdf__grid__log2_table_size": 12,
                "sdf__grid__base_resolution": 4,
                "sdf__grid__finest_resolution": 32,
                "sdf__hidden": 16,
                "sdf__features": 7,
                "color__hidden": 16,
                "render__samples_per_ray": 48,
                "render__occupancy_resolution": 8,
                "render__occupancy_every": 4,
                "render__chunk": 1024,
                "train__batch_size": 128,
                "loss__warm_up_iter": 10,
                "val_mesh_resolution": 24,
                "mesh_resolution": 32,
                "chamfer_samples": 2000,
                **TINY_RUN,
            }
        ),
    ),
}


def preset(name: str, **overrides: object) -> NeuSConfig:
    """A copy of the named preset with ``section__field=value`` overrides applied."""
    return apply_changes(copy.deepcopy(PRESETS[name].config), overrides)
