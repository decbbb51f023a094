"""NeuS and RNb-NeuS (seed 002): surfaces from images and masks, or from normal and albedo maps.

``config`` holds the config (NeuS's wmask.conf defaults) and presets, ``hocon`` reads NeuS's own
``.conf`` files, ``model`` builds the networks, ``lighting`` makes RNb-NeuS's simulated lights,
``task`` is the task, ``mesh`` does marching cubes and PLY files, ``runner`` the runner's modes
and ``commands`` the command lines (``foveate neus --mode MODE``, ``foveate neus evaluate``).
"""

from __future__ import annotations

from ..registry import PipelineSpec, register_pipeline
from .config import PRESETS, NeuSConfig, preset
from .hocon import CONF_SUFFIX, read_neus_conf
from .runner import InterpolateOptions
from .task import NeuSTask

__all__ = ["PRESETS", "SPEC", "NeuSConfig", "NeuSTask", "preset", "read_neus_conf"]

SPEC = register_pipeline(
    PipelineSpec(
        "neus",
        NeuSConfig,
        NeuSTask,
        PRESETS,
        "Reconstruct a surface with NeuS (images, masks) or RNb-NeuS (normal and albedo maps).",
        render_options=InterpolateOptions,
        config_readers={CONF_SUFFIX: read_neus_conf},
    )
)
