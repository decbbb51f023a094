"""Per-unit maps (errors, sampling densities) turned into small displayable images."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["density_image", "density_map", "display_size", "downsample_map", "error_visuals", "normalise_log"]


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


def density_map(sampler: Any, images: int = 1, max_side: int = 512, band_pixels: int = 1 << 21) -> torch.Tensor:
    """The sampler's density relative to uniform (1 = uniform) over its first ``images`` images side
    by side, area-averaged to at most ``max_side`` pixels a side.

    Built band by band of rows from the probability of each id, so a picture of a 16384^2 image
    never holds a full-resolution copy of the distribution.
    """
    views, height, width = sampler.shape
    shown = min(images, views)
    factor = max(1, math.ceil(max(height, shown * width) / max_side))
    band = max(factor, band_pixels // width // factor * factor)
    panels = []
    for view in range(shown):
        rows = []
        for start in range(0, height, band):
            stop = min(start + band, height)
            ids = torch.arange(start * width, stop * width, device=sampler.device) + view * height * width
            relative = sampler.probability(ids).view(1, stop - start, width) * sampler.num_units
            rows.append(F.avg_pool2d(relative, factor, ceil_mode=True, count_include_pad=False)[0])
        panels.append(torch.cat(rows))
    return torch.cat(panels, dim=1).to(torch.float32)


def density_image(sampler: Any, step: int, max_side: int = 512) -> torch.Tensor | None:
    """The sampler's distribution over its first image as an (h, w, 1) picture in [0, 1], on a log scale.

    None for flat populations and during warm-up (when draws ignore the distribution).
    """
    if len(sampler.shape) != 3 or sampler.in_warmup(step):
        return None
    return normalise_log(density_map(sampler, 1, max_side))[..., None]


def error_visuals(
    prediction: torch.Tensor, target: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A validation's pictures of one ``(H, W, C)`` view: ``images`` (target, prediction, and the error's
    square root scaled to its peak) and ``maps`` (the per-pixel squared error, for heatmaps)."""
    error = (prediction - target).square().mean(dim=2)
    images = {
        "target": target,
        "prediction": prediction,
        "error": (error / error.max().clamp(min=1e-12)).sqrt()[..., None],
    }
    return images, {"error": error}
