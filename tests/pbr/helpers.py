"""Shared helpers of the PBR tests: random materials."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_maps(batch: int = 2, size: int = 16, seed: int = 0, tilt: float = 2.0) -> dict[str, torch.Tensor]:
    """Uniform albedo, roughness and metallic; normals around +z (``tilt`` larger: closer to +z)."""
    g = torch.Generator().manual_seed(seed)
    normal = F.normalize(
        torch.randn(batch, 3, size, size, generator=g) + torch.tensor([0, 0, tilt]).view(1, 3, 1, 1), dim=1
    )
    return {
        "albedo": torch.rand(batch, 3, size, size, generator=g),
        "roughness": torch.rand(batch, 1, size, size, generator=g),
        "metallic": torch.rand(batch, 1, size, size, generator=g),
        "normal": normal,
    }
