"""Gaussian splatting: fit 3D Gaussians to a multi-view scene, drawing views (or view tiles) by their loss.

``config`` holds the config and presets (gsplat's ``simple_trainer`` rates), ``task`` the task (the
per-view loss, density control, held-out views, the 3DGS exports); ``foveate render splat``
renders :mod:`foveate.pipelines.orbit`'s orbit and ``foveate view`` serves a browser viewer.
"""

from __future__ import annotations

from ..orbit import OrbitOptions
from ..registry import STRATEGY_VARIANTS, PipelineSpec, register_pipeline
from .config import PRESETS, DensityConfig, InitConfig, LearningRates, SplatConfig, ViewsConfig, preset
from .task import SplatModel, SplatTask, initial_splats, scene_scale, unit_losses, view_matrices, write_cameras_json

__all__ = [
    "PRESETS",
    "SPEC",
    "DensityConfig",
    "InitConfig",
    "LearningRates",
    "SplatConfig",
    "SplatModel",
    "SplatTask",
    "ViewsConfig",
    "initial_splats",
    "preset",
    "scene_scale",
    "unit_losses",
    "view_matrices",
    "write_cameras_json",
]

SPEC = register_pipeline(
    PipelineSpec(
        "splat",
        SplatConfig,
        SplatTask,
        PRESETS,
        "Fit 3D Gaussian splats to a multi-view scene (gsplat's trainer; the engine picks the views).",
        variants={name: STRATEGY_VARIANTS[name] for name in ("uniform", "error_weighted", "adaptive", "spatial")},
        default_variants=3,
        render_options=OrbitOptions,
    )
)
