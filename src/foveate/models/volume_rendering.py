"""Ray marching and emission-absorption compositing over packed samples.

Samples of all rays live in one flat ("packed") list, sorted by ray, with the ray each
belongs to: rays that cross empty space get few samples and nothing is padded. Compositing
is vectorised over all samples at once (a segmented prefix sum for transmittance and
``index_add_`` for per-ray sums); no Python loop runs over rays or samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "PackedSamples",
    "RenderedRays",
    "composite",
    "exclusive_transmittance",
    "march",
    "ray_aabb",
    "render_rays",
]


@dataclass
class PackedSamples:
    """Samples along rays, flat and sorted by ray.

    Attributes:
        ray_indices: ``(S,)`` int64 ray of each sample (non-decreasing).
        t_starts, t_ends: ``(S,)`` the interval each sample stands for, in distance along the ray.
        num_rays: number of rays the samples belong to (some may have none).
    """

    ray_indices: torch.Tensor
    t_starts: torch.Tensor
    t_ends: torch.Tensor
    num_rays: int

    @property
    def t_mids(self) -> torch.Tensor:
        return (self.t_starts + self.t_ends) / 2

    def points(self, origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """``(S, 3)`` world positions of the samples' midpoints."""
        return origins[self.ray_indices] + directions[self.ray_indices] * self.t_mids[:, None]


@dataclass
class RenderedRays:
    """Per-ray outputs of volume rendering: ``rgb (B, 3)``, ``opacity (B, 1)``, ``depth (B, 1)``."""

    rgb: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor
    num_samples: int


def ray_aabb(
    origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor, near_plane: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through a box ``aabb = [[x0, y0, z0], [x1, y1, z1]]`` (slab test).

    Rays that miss get ``near == far``; entries are clamped to at least ``near_plane``.
    """
    inverse = 1.0 / torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    low = (aabb[0] - origins) * inverse
    high = (aabb[1] - origins) * inverse
    near = torch.minimum(low, high).amax(dim=-1).clamp(min=near_plane)
    far = torch.maximum(low, high).amin(dim=-1)
    return near, torch.maximum(far, near)


def march(
    origins: torch.Tensor,
    directions: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    step_size: float,
    max_samples: int,
    occupied: Callable[[torch.Tensor], torch.Tensor] | None = None,
    jitter: bool = False,
    generator: torch.Generator | None = None,
) -> PackedSamples:
    """Equal steps from ``near`` to ``far`` on every ray, keeping samples in occupied space.

    Args:
        step_size: distance between samples.
        max_samples: most samples per ray (the march stops there).
        occupied: maps ``(M, 3)`` points to an ``(M,)`` bool mask of space that may hold density
            (an :class:`~foveate.models.occupancy.OccupancyGrid`); ``None`` keeps every sample.
        jitter: shift each ray's samples by one random fraction of a step (training).

    Rays are marched in chunks of about 2^22 candidate samples, bounding memory whatever the
    batch; compacting the occupied samples needs their count: one host synchronisation per chunk.
    """
    num_rays = origins.shape[0]
    chunk = max(1, 2**22 // max_samples)
    if num_rays > chunk:
        parts = [
            march(
                origins[i : i + chunk],
                directions[i : i + chunk],
                near[i : i + chunk],
                far[i : i + chunk],
                step_size,
                max_samples,
                occupied,
                jitter,
                generator,
            )
            for i in range(0, num_rays, chunk)
        ]
        starts = range(0, num_rays, chunk)
        return PackedSamples(
            torch.cat([part.ray_indices + start for part, start in zip(parts, starts, strict=True)]),
            torch.cat([part.t_starts for part in parts]),
            torch.cat([part.t_ends for part in parts]),
            num_rays,
        )
    offset = (
        torch.rand(num_rays, 1, device=origins.device, generator=generator)
        if jitter
        else torch.full((num_rays, 1), 0.5, device=origins.device)
    )
    steps = torch.arange(max_samples, device=origins.device, dtype=origins.dtype)
    t_starts = near[:, None] + (steps + offset - 0.5).clamp(min=0.0) * step_size
    t_ends = (near[:, None] + (steps + offset + 0.5) * step_size).minimum(far[:, None])
    keep = t_starts < t_ends
    if occupied is not None:
        mids = (t_starts + t_ends) / 2
        points = origins[:, None, :] + directions[:, None, :] * mids[..., None]
        keep = keep & occupied(points.reshape(-1, 3)).view(num_rays, max_samples)
    ray_index, sample_index = keep.nonzero(as_tuple=True)
    return PackedSamples(ray_index, t_starts[ray_index, sample_index], t_ends[ray_index, sample_index], num_rays)


def exclusive_transmittance(ray_indices: torch.Tensor, optical: torch.Tensor) -> torch.Tensor:
    """``exp(-sum of optical depths before each sample on its own ray)`` for packed samples.

    A float64 prefix sum over all samples, minus its value at each ray's first sample: one pass,
    no loop over rays. ``ray_indices`` must be non-decreasing.
    """
    optical64 = optical.to(torch.float64)
    before = torch.cumsum(optical64, dim=0) - optical64
    first = torch.searchsorted(ray_indices, ray_indices)
    return torch.exp(-(before - before[first]).to(optical.dtype))


def composite(
    samples: PackedSamples, densities: torch.Tensor, colors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Emission-absorption compositing of packed samples.

    Args:
        samples: the samples, sorted by ray.
        densities: ``(S,)`` non-negative volume densities.
        colors: ``(S, 3)`` emitted colours.

    Returns:
        Per-sample weights ``(S,)`` and per-ray ``rgb (B, 3)``, ``opacity (B, 1)``, ``depth (B, 1)``
        (depth is the weighted mean distance, not normalised by opacity). Compositing runs in
        float32 whatever the field's output (bfloat16 under autocast), so sums over a ray keep
        their precision.
    """
    densities, colors = densities.float(), colors.float()
    rays = samples.ray_indices
    optical = densities * (samples.t_ends - samples.t_starts)
    weights = exclusive_transmittance(rays, optical) * (1.0 - torch.exp(-optical))
    b = samples.num_rays
    rgb = torch.zeros(b, 3, device=colors.device, dtype=colors.dtype).index_add_(0, rays, weights[:, None] * colors)
    opacity = torch.zeros(b, device=weights.device, dtype=weights.dtype).index_add_(0, rays, weights)
    depth = torch.zeros(b, device=weights.device, dtype=weights.dtype).index_add_(0, rays, weights * samples.t_mids)
    return weights, rgb, opacity[:, None], depth[:, None]


def render_rays(
    field: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    origins: torch.Tensor,
    directions: torch.Tensor,
    aabb: torch.Tensor,
    step_size: float,
    max_samples: int,
    occupied: Callable[[torch.Tensor], torch.Tensor] | None = None,
    background: torch.Tensor | None = None,
    near_plane: float = 0.0,
    jitter: bool = False,
    generator: torch.Generator | None = None,
) -> RenderedRays:
    """March rays through ``aabb``, query ``field(points, directions) -> (density, rgb)``, composite.

    ``background`` (RGB) fills the light that passes through; ``None`` leaves it black.
    """
    near, far = ray_aabb(origins, directions, aabb, near_plane)
    samples = march(origins, directions, near, far, step_size, max_samples, occupied, jitter, generator)
    if samples.ray_indices.numel() == 0:
        rgb = torch.zeros(origins.shape[0], 3, device=origins.device)
        opacity = torch.zeros(origins.shape[0], 1, device=origins.device)
        depth = torch.zeros_like(opacity)
    else:
        density, color = field(samples.points(origins, directions), directions[samples.ray_indices])
        _, rgb, opacity, depth = composite(samples, density, color)
    if background is not None:
        rgb = rgb + background.to(rgb.device) * (1.0 - opacity)
    return RenderedRays(rgb, opacity, depth, int(samples.ray_indices.numel()))
