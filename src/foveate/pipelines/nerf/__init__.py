"""The radiance field: fit a hash-grid NeRF to a multi-view scene, drawing rays by their error.

``config`` holds the config and presets, ``task`` the task (per-ray loss, held-out views, the
occupancy grid's hook); ``foveate render nerf`` renders :mod:`foveate.pipelines.orbit`'s orbit.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..orbit import OrbitOptions, orbit_cameras, render_orbit
from ..registry import PipelineSpec, register_pipeline, train_command
from .config import PRESETS, FieldConfig, MarchConfig, NerfConfig, preset
from .task import RadianceFieldTask, scene_box, scene_of, split_views

__all__ = [
    "PRESETS",
    "SPEC",
    "FieldConfig",
    "MarchConfig",
    "NerfConfig",
    "OrbitOptions",
    "RadianceFieldTask",
    "orbit_cameras",
    "preset",
    "render_orbit",
    "scene_box",
    "scene_of",
    "split_views",
    "train_main",
]


SPEC = register_pipeline(
    PipelineSpec(
        "nerf",
        NerfConfig,
        RadianceFieldTask,
        PRESETS,
        "Fit a hash-grid radiance field to a multi-view scene.",
        render_options=OrbitOptions,
    )
)


def train_main(argv: Sequence[str]) -> int:
    """``foveate train nerf``."""
    return train_command("nerf", argv)
