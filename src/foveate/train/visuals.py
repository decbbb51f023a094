"""Per-unit maps (errors, sampling densities) turned into small displayable images."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["density_image", "display_size", "downsample_map", "normalise_log"]


def display_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) no larger than ``max_side`` on the longer side, keeping the aspect ratio."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def downsample_map(values: torch.Tensor, max_side: int) -> torch.Tensor:
    """Area-average an (H, W) or (H, W, C) map down to at most ``max_side`` pixels per side."""
    squeeze = values.ndim == 2
    image = values[None, None] if squeeze else values.permute(2, 0, 1)[None]
    size = display_size(values.shape[0], values.shape[1], max_side)
    if size != tuple(values.shape[:2]):
        image = F.adaptive_avg_pool2d(image.to(torch.float32), size)
    out = image[0, 0] if squeeze else image[0].permute(1, 2, 0)
    return out.to(torch.float32)


def normalise_log(values: torch.Tensor, floor_fraction: float = 1e-3) -> torch.Tensor:
    """Map non-negative values to [0, 1] on a log scale spanning ``1 / floor_fraction``."""
    top = values.max().clamp(min=torch.finfo(torch.float32).tiny)
    logs = torch.log(values.clamp(min=top * floor_fraction) / top)
    return 1.0 + logs / -math.log(floor_fraction)


def density_image(sampler: Any, step: int, max_side: int = 512) -> torch.Tensor | None:
    """The sampler's distribution over its first image as an (H, W, 1) image in [0, 1], on a log scale.

    None for flat populations and during warm-up (when draws ignore the distribution).
    """
    if len(sampler.shape) != 3 or sampler.in_warmup(step):
        return None
    height, width = sampler.shape[1], sampler.shape[2]
    density = sampler.probabilities()[: height * width].view(height, width)
    return normalise_log(downsample_map(density, max_side))[..., None]
