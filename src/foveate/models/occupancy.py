"""An occupancy grid for empty-space skipping, kept up to date from the field's densities.

As in instant-ngp and nerfacc: a grid of cells over the scene box holds a running maximum of
each cell's opacity over one marching step (``density * step_size``, decayed every update);
cells above ``min(threshold, mean)`` are occupied and rays sample only those. During warm-up
every cell is refreshed at each update; afterwards a random quarter of all cells plus a
quarter drawn among the occupied ones, so that cells that became empty are found again.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["OccupancyGrid"]


class OccupancyGrid(nn.Module):
    """A ``resolution^3`` grid over ``aabb`` marking where density may be.

    Args:
        aabb: ``(2, 3)`` box corners ``[[x0, y0, z0], [x1, y1, z1]]``.
        resolution: cells per side.
        step_size: distance between marching samples (opacity is ``density * step_size``).
        threshold: opacity above which a cell is occupied (capped by the mean, as nerfacc does).
        decay: factor applied to the stored opacities at each update before new maxima come in.
        warmup_updates: updates that refresh every cell.
    """

    def __init__(
        self,
        aabb: torch.Tensor,
        resolution: int = 128,
        step_size: float = 1e-2,
        threshold: float = 1e-2,
        decay: float = 0.95,
        warmup_updates: int = 16,
    ) -> None:
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        if aabb.shape != (2, 3) or not bool((aabb[1] > aabb[0]).all()):
            raise ValueError(f"aabb must be (2, 3) with max > min on every axis, got {aabb.tolist()}")
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        self.resolution = resolution
        self.step_size = step_size
        self.threshold = threshold
        self.decay = decay
        self.warmup_updates = warmup_updates
        self.register_buffer("aabb", aabb)
        self.register_buffer("opacity", torch.zeros(resolution**3))
        # Everything may be occupied until the field has been looked at.
        self.register_buffer("occupied", torch.ones(resolution**3, dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def cell_index(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat cell index of each point and whether the point lies inside the box."""
        unit = (points - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        inside = ((unit >= 0) & (unit < 1)).all(dim=-1)
        cell = (unit * self.resolution).long().clamp_(0, self.resolution - 1)
        r = self.resolution
        return (cell[..., 0] * r + cell[..., 1]) * r + cell[..., 2], inside

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """``(M,)`` bool: whether each point of ``(M, 3)`` is inside the box and in an occupied cell."""
        index, inside = self.cell_index(points)
        return inside & self.occupied[index]

    def cell_points(self, cells: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniformly random point inside each of ``cells`` (flat indices)."""
        r = self.resolution
        ijk = torch.stack((cells // (r * r), (cells // r) % r, cells % r), dim=-1).to(torch.float32)
        jitter = torch.rand(ijk.shape, device=ijk.device, generator=generator)
        return self.aabb[0] + (ijk + jitter) / r * (self.aabb[1] - self.aabb[0])

    @torch.no_grad()
    def update(
        self,
        density: Callable[[torch.Tensor], torch.Tensor],
        generator: torch.Generator | None = None,
        chunk: int = 2**18,
        opacity: bool = False,
    ) -> None:
        """Refresh cells from ``density(points (M, 3)) -> (M,)`` and recompute which are occupied.

        With ``opacity=True`` the function returns each point's opacity over one step directly
        (a signed-distance field's, :func:`~foveate.models.neus_rendering.sdf_opacity`).
        """
        scale = 1.0 if opacity else self.step_size
        n = self.resolution**3
        device = self.opacity.device
        if int(self.updates) < self.warmup_updates:
            cells = torch.arange(n, device=device)
        else:
            share = max(1, n // 4)
            uniform = torch.randint(n, (share,), device=device, generator=generator)
            weights = self.occupied.to(torch.float32) + 1e-12  # no cell occupied: any cell
            among_occupied = torch.multinomial(weights, share, replacement=True, generator=generator)
            cells = torch.cat((uniform, among_occupied))
        fresh = torch.cat(
            [
                density(self.cell_points(cells[i : i + chunk], generator)).reshape(-1) * scale
                for i in range(0, cells.numel(), chunk)
            ]
        )
        decayed = self.opacity * self.decay
        new = decayed.clone().scatter_reduce_(0, cells, fresh.to(decayed.dtype), reduce="amax", include_self=True)
        self.opacity.copy_(new)
        self.occupied.copy_(self.opacity > torch.clamp(self.opacity.mean(), max=self.threshold))
        self.updates += 1

    def occupancy(self) -> float:
        """Fraction of cells occupied (a host sync: for logging)."""
        return float(self.occupied.float().mean())
