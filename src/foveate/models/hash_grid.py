"""Multiresolution hash encoding (Müller et al., SIGGRAPH 2022) in pure PyTorch.

A stack of ``levels`` grids from ``base_resolution`` to ``finest_resolution`` cells per side,
each holding ``features_per_level`` learned features per vertex. A point's encoding
concatenates, over levels, the (bi/tri)linear interpolation of the features at the corners
of the cell around it.

Coarse levels whose vertices fit in ``2**log2_table_size`` rows are stored densely as
feature textures and read with :func:`torch.nn.functional.grid_sample` (a fused kernel with
a fused backward, about 15x faster on CPU than an explicit gather). Finer levels hash their
vertices into a table of ``2**log2_table_size`` rows and are read with one batched gather
over all hashed levels and corners. Neither path loops over points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "HashGrid",
    "HashGridConfig",
    "dense_level_encode",
    "hash_grid_encode",
    "hashed_level_encode",
    "level_resolutions",
]

PRIMES = (1, 2654435761, 805459861)
"""Per-axis multipliers of the spatial hash; the first is 1 for memory coherence."""


def level_resolutions(levels: int, base_resolution: int, finest_resolution: int) -> list[int]:
    """Cells per side of each level: a geometric progression from base to finest."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if not 1 <= base_resolution <= finest_resolution:
        raise ValueError(
            f"need 1 <= base_resolution <= finest_resolution, got {base_resolution} and {finest_resolution}"
        )
    if levels == 1:
        return [base_resolution]
    growth = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (levels - 1))
    return [round(base_resolution * growth**level) for level in range(levels)]


def _corner_weights(fraction: torch.Tensor) -> torch.Tensor:
    """(..., d) fractions -> (..., 2**d) weights; corner c takes bit a of c on axis a."""
    pair = torch.stack((1.0 - fraction, fraction), dim=-1)
    weight = pair[..., 0, :]
    for axis in range(1, fraction.shape[-1]):
        weight = (weight[..., None, :] * pair[..., axis, :, None]).flatten(-2)
    return weight


def hashed_level_encode(points: torch.Tensor, table: torch.Tensor, resolutions: torch.Tensor) -> torch.Tensor:
    """Interpolated features of hashed levels.

    Args:
        points: (B, d) positions in [0, 1], d <= 3.
        table: (L, T, F) features; T must be a power of two.
        resolutions: (L,) int64 cells per side of each level.

    Returns:
        (B, L, F) features.
    """
    dims = points.shape[1]
    levels, rows, _ = table.shape
    scaled = points.to(torch.float32)[:, None, :] * resolutions.to(torch.float32)[None, :, None]
    cell = scaled.floor().clamp_(min=0)
    cell = torch.minimum(cell, (resolutions[None, :, None] - 1).to(cell.dtype))
    weight = _corner_weights(scaled - cell)  # (B, L, C)
    cell = cell.long()
    primes = torch.tensor(PRIMES[:dims], device=points.device)
    # Hash of each axis' two candidate coordinates, then XOR across axes for every corner.
    candidates = torch.stack((cell, cell + 1), dim=-1) * primes[:, None]  # (B, L, d, 2)
    hashed = candidates[:, :, 0]
    for axis in range(1, dims):
        hashed = (hashed[..., None, :] ^ candidates[:, :, axis, :, None]).flatten(-2)
    level_offset = torch.arange(levels, device=points.device)[:, None] * rows
    index = (hashed & (rows - 1)) + level_offset  # (B, L, C)
    flat = table.reshape(levels * rows, -1)
    # index_select rather than flat[index]: the latter is far slower on multi-threaded CPUs.
    features = flat.index_select(0, index.view(-1)).view(*index.shape, flat.shape[1])  # (B, L, C, F)
    return (features * weight[..., None].to(features.dtype)).sum(dim=2)


def dense_level_encode(points: torch.Tensor, textures: Sequence[torch.Tensor]) -> torch.Tensor:
    """Interpolated features of dense levels.

    Args:
        points: (B, d) positions in [0, 1], d in {2, 3}.
        textures: per level, (F, R+1, R+1) or (F, R+1, R+1, R+1) vertex features, indexed
            [feature, y, x] or [feature, z, y, x] for a point (x, y[, z]).

    Returns:
        (B, L, F) features.
    """
    batch, dims = points.shape
    grid = (points.to(torch.float32) * 2.0 - 1.0).view(1, batch, *([1] * (dims - 1)), dims)
    sampled = [
        F.grid_sample(
            texture[None], grid.to(texture.dtype), mode="bilinear", padding_mode="border", align_corners=True
        ).view(texture.shape[0], batch)
        for texture in textures
    ]
    return torch.stack(sampled).permute(2, 0, 1)


def hash_grid_encode(
    points: torch.Tensor,
    textures: Sequence[torch.Tensor],
    table: torch.Tensor | None,
    hashed_resolutions: torch.Tensor | None,
) -> torch.Tensor:
    """Encode ``points`` in [0, 1]^d: dense levels first, then hashed ones, level-major (B, L * F)."""
    parts = []
    if textures:
        parts.append(dense_level_encode(points, textures))
    if table is not None and table.shape[0]:
        parts.append(hashed_level_encode(points, table, hashed_resolutions))
    encoded = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    return encoded.reshape(points.shape[0], encoded.shape[1] * encoded.shape[2])


@dataclass
class HashGridConfig:
    """The hash encoding's size (a section of the image and NeRF configs)."""

    levels: int = 16
    """Grid levels, coarse to fine."""
    log2_table_size: int = 19
    """log2 of the most rows (vertices) a level may hold; smaller tables force hash collisions."""
    features_per_level: int = 2
    """Features stored per vertex."""
    base_resolution: int = 16
    """Cells per side of the coarsest level."""
    finest_resolution: int = 0
    """Cells per side of the finest level; 0: the pipeline's own (an image's longer side, 1024 across a NeRF's box)."""

    def encoding_arguments(self, default_finest: int) -> dict[str, int]:
        """Keyword arguments of :class:`HashGrid` (without ``dims``), 0 resolved to ``default_finest``."""
        finest = self.finest_resolution or default_finest
        return {
            "levels": self.levels,
            "log2_table_size": self.log2_table_size,
            "features_per_level": self.features_per_level,
            "base_resolution": min(self.base_resolution, finest),
            "finest_resolution": finest,
        }


class HashGrid(nn.Module):
    """Learned multiresolution hash encoding of points in [0, 1]^dims.

    Args:
        dims: dimension of the input points (2 for images, 3 for volumes).
        levels: number of grid levels.
        log2_table_size: log2 of the most rows (vertices) a level may hold.
        features_per_level: features stored per vertex.
        base_resolution: cells per side of the coarsest level.
        finest_resolution: cells per side of the finest level (for an image, its longer side).
        init_scale: features start uniform in ``[-init_scale, init_scale]``.
    """

    def __init__(
        self,
        dims: int = 2,
        levels: int = 16,
        log2_table_size: int = 19,
        features_per_level: int = 2,
        base_resolution: int = 16,
        finest_resolution: int = 512,
        init_scale: float = 1e-4,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if not 1 <= log2_table_size <= 30:
            raise ValueError(f"log2_table_size must be in [1, 30], got {log2_table_size}")
        if features_per_level < 1:
            raise ValueError(f"features_per_level must be >= 1, got {features_per_level}")
        self.dims = dims
        self.levels = levels
        self.features_per_level = features_per_level
        self.log2_table_size = log2_table_size
        resolutions = level_resolutions(levels, base_resolution, finest_resolution)
        capacity = 2**log2_table_size
        dense = [r for r in resolutions if (r + 1) ** dims <= capacity]
        hashed = resolutions[len(dense) :]
        self.resolutions = tuple(resolutions)
        self.textures = nn.ParameterList(
            nn.Parameter(torch.empty(features_per_level, *([r + 1] * dims)).uniform_(-init_scale, init_scale))
            for r in dense
        )
        self.table = nn.Parameter(
            torch.empty(len(hashed), capacity if hashed else 0, features_per_level).uniform_(-init_scale, init_scale)
        )
        self.register_buffer("hashed_resolutions", torch.tensor(hashed, dtype=torch.int64), persistent=False)

    @property
    def output_dim(self) -> int:
        return self.levels * self.features_per_level

    @property
    def num_dense_levels(self) -> int:
        return len(self.textures)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(B, dims) points in [0, 1] -> (B, levels * features_per_level) features."""
        if points.ndim != 2 or points.shape[1] != self.dims:
            raise ValueError(f"points must have shape (B, {self.dims}), got {tuple(points.shape)}")
        return hash_grid_encode(points, list(self.textures), self.table, self.hashed_resolutions)

    def extra_repr(self) -> str:
        return (
            f"dims={self.dims}, levels={self.levels}, features_per_level={self.features_per_level}, "
            f"resolutions={self.resolutions[0]}..{self.resolutions[-1]}, dense_levels={self.num_dense_levels}, "
            f"log2_table_size={self.log2_table_size}"
        )
