"""foveate.pipelines: one module per system (config + model + per-unit loss + validation), by name."""

from .registry import (
    EXIT_CODES,
    PipelineSpec,
    available_pipelines,
    get_pipeline,
    register_pipeline,
    run_pipeline,
    train_command,
)

__all__ = [
    "EXIT_CODES",
    "PipelineSpec",
    "available_pipelines",
    "get_pipeline",
    "register_pipeline",
    "run_pipeline",
    "train_command",
]
