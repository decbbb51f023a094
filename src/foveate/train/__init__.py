"""foveate.train: the loop every pipeline shares, and the task contract pipelines implement.

A pipeline writes a :class:`Task` (model, optimizers, one training step, validation, export);
the :class:`Trainer` runs it with the sampler, checkpoints, resume, signals and logs.
"""

from .checkpoint import CheckpointError, CheckpointLayout, CheckpointStore, load_checkpoint, resolve_checkpoint
from .cli import Preset, parse_config
from .config import (
    ConfigMismatchError,
    OptimConfig,
    SamplingConfig,
    TrainConfig,
    apply_changes,
    check_config,
    check_resume_compatible,
    config_from_dict,
    config_to_dict,
    load_config_yaml,
    save_config_yaml,
)
from .loop import EXIT_CODES, Trainer, TrainResult, make_sampler, sampler_arguments, seed_everything, select_device
from .metrics import ImageQuality, psnr_from_mse
from .schedules import cosine_factor, make_scheduler
from .task import Hook, Metric, Optimization, StepOutput, Task, Validation, make_adam

__all__ = [
    "EXIT_CODES",
    "CheckpointError",
    "CheckpointLayout",
    "CheckpointStore",
    "ConfigMismatchError",
    "Hook",
    "ImageQuality",
    "Metric",
    "OptimConfig",
    "Optimization",
    "Preset",
    "SamplingConfig",
    "StepOutput",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Validation",
    "apply_changes",
    "check_config",
    "check_resume_compatible",
    "config_from_dict",
    "config_to_dict",
    "cosine_factor",
    "load_checkpoint",
    "load_config_yaml",
    "make_adam",
    "make_sampler",
    "make_scheduler",
    "parse_config",
    "psnr_from_mse",
    "resolve_checkpoint",
    "sampler_arguments",
    "save_config_yaml",
    "seed_everything",
    "select_device",
]
