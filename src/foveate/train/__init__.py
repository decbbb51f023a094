"""foveate.train: the loop every pipeline shares (config, schedules, checkpoints, logging, metrics)."""

from .checkpoint import CheckpointError, atomic_save, load_checkpoint, resolve_checkpoint
from .config import (
    ConfigMismatchError,
    OptimConfig,
    SamplingConfig,
    TrainConfig,
    apply_changes,
    check_resume_compatible,
    config_from_dict,
    config_to_dict,
    parse_config,
    save_config_yaml,
)
from .loop import Task, Trainer, TrainResult, Validation, make_sampler, seed_everything, select_device
from .metrics import ImageQuality, lpips_unavailable_reason, psnr_from_mse
from .schedules import cosine_factor, make_scheduler

__all__ = [
    "CheckpointError",
    "ConfigMismatchError",
    "ImageQuality",
    "OptimConfig",
    "SamplingConfig",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "Validation",
    "apply_changes",
    "atomic_save",
    "check_resume_compatible",
    "config_from_dict",
    "config_to_dict",
    "cosine_factor",
    "load_checkpoint",
    "lpips_unavailable_reason",
    "make_sampler",
    "make_scheduler",
    "parse_config",
    "psnr_from_mse",
    "resolve_checkpoint",
    "save_config_yaml",
    "seed_everything",
    "select_device",
]
