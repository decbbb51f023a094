"""A hash-grid radiance field (instant-ngp's design in pure PyTorch).

Position -> multiresolution hash encoding -> small MLP -> density and geometry features;
geometry features + spherical-harmonic encoding of the view direction -> small MLP -> colour.
"""

from __future__ import annotations

import torch
from torch import nn

from .hash_grid import HashGrid
from .mlp import MLP

__all__ = ["RadianceField", "spherical_harmonics", "trunc_exp"]


class _TruncExp(torch.autograd.Function):
    """``exp`` whose gradient is computed from the input clamped at 15, so it never overflows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """Density activation: ``exp(x)`` with a clamped gradient (instant-ngp's choice)."""
    return _TruncExp.apply(x)


def spherical_harmonics(directions: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """Real spherical harmonics of unit ``directions (B, 3)`` up to ``degree`` bands: ``(B, degree^2)``."""
    if not 1 <= degree <= 4:
        raise ValueError(f"degree must be in [1, 4], got {degree}")
    x, y, z = directions.unbind(-1)
    bands = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        bands += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xx, yy, zz = x * x, y * y, z * z
        bands += [
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * x * z,
            0.54627421529603959 * (xx - yy),
        ]
    if degree > 3:
        bands += [
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * x * y * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ]
    return torch.stack(bands, dim=-1)


class RadianceField(nn.Module):
    """Density and view-dependent colour at points inside a box.

    Args:
        aabb: ``(2, 3)`` box the field lives in; points outside have zero density.
        levels, log2_table_size, features_per_level, base_resolution, finest_resolution:
            the hash encoding (:class:`~foveate.models.hash_grid.HashGrid`, 3-D).
        geometry_features: features passed from the density network to the colour network.
        hidden: width of both networks.
        direction_degree: spherical-harmonic bands of the view direction (1 to 4).
        density_bias: added before the density activation (negative starts the volume empty).
    """

    def __init__(
        self,
        aabb: torch.Tensor,
        levels: int = 16,
        log2_table_size: int = 19,
        features_per_level: int = 2,
        base_resolution: int = 16,
        finest_resolution: int = 1024,
        geometry_features: int = 15,
        hidden: int = 64,
        direction_degree: int = 4,
        density_bias: float = -1.0,
    ) -> None:
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        if aabb.shape != (2, 3) or not bool((aabb[1] > aabb[0]).all()):
            raise ValueError(f"aabb must be (2, 3) with max > min on every axis, got {aabb.tolist()}")
        self.register_buffer("aabb", aabb)
        self.direction_degree = direction_degree
        self.density_bias = density_bias
        self.encoding = HashGrid(
            dims=3,
            levels=levels,
            log2_table_size=log2_table_size,
            features_per_level=features_per_level,
            base_resolution=base_resolution,
            finest_resolution=finest_resolution,
        )
        self.density_net = MLP(self.encoding.output_dim, 1 + geometry_features, hidden, hidden_layers=1)
        self.color_net = MLP(geometry_features + direction_degree**2, 3, hidden, hidden_layers=2)

    def _geometry(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = (points - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        inside = ((unit >= 0) & (unit <= 1)).all(dim=-1)
        out = self.density_net(self.encoding(unit.clamp(0.0, 1.0)))
        density = trunc_exp(out[:, 0] + self.density_bias) * inside
        return density, out[:, 1:]

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """``(M,)`` volume density at ``(M, 3)`` world points (for the occupancy grid)."""
        return self._geometry(points)[0]

    def forward(self, points: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density ``(M,)`` and colour ``(M, 3)`` in [0, 1] at points seen along unit ``directions``."""
        density, features = self._geometry(points)
        encoded_directions = spherical_harmonics(directions, self.direction_degree)
        color = torch.sigmoid(self.color_net(torch.cat((features, encoded_directions), dim=-1)))
        return density, color
