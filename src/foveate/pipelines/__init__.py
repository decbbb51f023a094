"""foveate.pipelines: one package or module per system (config, task, exports), registered by name."""

from .registry import (
    PipelineSpec,
    RenderOptions,
    available_pipelines,
    get_pipeline,
    load_run,
    make_trainer,
    register_pipeline,
    render_command,
    run_pipeline,
    train_command,
)

__all__ = [
    "PipelineSpec",
    "RenderOptions",
    "available_pipelines",
    "get_pipeline",
    "load_run",
    "make_trainer",
    "register_pipeline",
    "render_command",
    "run_pipeline",
    "train_command",
]
