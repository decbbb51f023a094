"""Learning-rate schedules: warm-up + cosine (NeuS), step, plateau, none."""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

import torch

from .config import OptimConfig

__all__ = ["Scheduler", "cosine_factor", "make_scheduler"]

Scheduler: TypeAlias = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau
"""A schedule the loop steps once per training step, or (plateau) once per validation."""


def cosine_factor(step: int, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """NeuS's factor: linear warm-up to 1, then ``(cos(pi p) + 1) / 2 * (1 - alpha) + alpha``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return (math.cos(math.pi * progress) + 1.0) / 2.0 * (1.0 - final_fraction) + final_fraction


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    config: OptimConfig,
    total_steps: int,
    mode: Literal["max", "min"] = "max",
) -> Scheduler:
    """The schedule ``config.schedule`` names; all but plateau step once per optimiser step.

    The plateau schedule steps at each validation with the task's metric; ``mode`` says whether
    that metric is maximised (PSNR) or minimised (a Chamfer distance).
    """
    if config.schedule == "cosine":
        if not 0.0 <= config.final_lr_fraction <= 1.0:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {config.final_lr_fraction}")

        def factor(step: int) -> float:
            return cosine_factor(step, total_steps, config.warmup_steps, config.final_lr_fraction)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=config.gamma, patience=config.plateau_patience
        )
    if config.schedule == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"schedule must be cosine, step, plateau or none, got {config.schedule!r}")
