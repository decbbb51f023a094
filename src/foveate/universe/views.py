"""Training views of a cell, rendered from its stars (not from the splats that will fit them).

HELIOS's trainer renders its "ground truth" from the very splats it starts with. Here each view is
rendered from the stars themselves: a star of apparent magnitude ``m`` at distance ``D`` from the
Sun has a luminosity proportional to ``10^(-0.4 m) D^2``, so a camera at distance ``d`` receives
``L / d^2``; its light is spread by a Gaussian point-spread function of ``psf`` pixels, coloured by
the star's colour, summed over stars and tone-mapped as film is, ``1 - exp(-exposure x light)``.
The exposure is fixed per cell so that a median star seen from the median camera distance peaks at
one half. The magnitudes come back from the cell's opacities (``m = -5 log10(opacity)``, HELIOS's
encoding), so a HELIOS dataset has everything this needs.

Cameras sit on a Fibonacci sphere of ``views`` points around the stars' centre (the mean of the
actual positions, not the cell's centroid) at twice the stars' radius, looking at the centre, with
a 60 degree field of view, as HELIOS places them. Positions are in *cell units*: metres divided by
the stars' radius, so every cell is of size one for the rasteriser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from foveate.data import Cameras, camera_positions, look_at

from .cells import CellFile

__all__ = ["CellFrame", "StarViews", "cell_frame", "render_stars", "star_views"]

PSF_PIXELS = 1.0
"""Standard deviation of the point-spread function in pixels."""


@dataclass
class CellFrame:
    """A cell in its own units: positions relative to ``origin`` (metres), divided by ``unit`` (metres)."""

    origin: np.ndarray
    unit: float
    positions: torch.Tensor
    luminosity: torch.Tensor
    colors: torch.Tensor

    def to_metres(self, positions: torch.Tensor) -> np.ndarray:
        return positions.detach().cpu().double().numpy() * self.unit + self.origin


def cell_frame(cell: CellFile) -> CellFrame:
    """The cell's stars centred on their mean and scaled to a radius of one, with their luminosities."""
    absolute = cell.positions
    origin = absolute.mean(axis=0)
    offsets = absolute - origin
    unit = float(np.linalg.norm(offsets, axis=1).max())
    if unit <= 0:
        unit = float(max(np.abs(cell.splats[:, 3:6]).max(), 1.0))
    magnitude = -5.0 * np.log10(np.clip(cell.splats[:, 13].astype(np.float64), 1e-6, 1.0))
    distance = np.linalg.norm(absolute, axis=1) / unit
    luminosity = 10.0 ** (-0.4 * magnitude) * distance**2
    return CellFrame(
        origin,
        unit,
        torch.from_numpy(offsets / unit).float(),
        torch.from_numpy(luminosity).float(),
        torch.from_numpy(cell.splats[:, 10:13].astype(np.float32)).clamp(0, 1),
    )


def star_cameras(frame: CellFrame, views: int, size: int, fov_degrees: float = 60.0) -> Cameras:
    """``views`` cameras on a Fibonacci sphere at twice the stars' radius, looking at their centre."""
    positions = camera_positions("sphere", views, radius=2.0)
    c2w = look_at(positions, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    return Cameras.from_fov(c2w, size, size, fov_degrees)


def render_stars(frame: CellFrame, cameras: Cameras, exposure: float, psf: float = PSF_PIXELS) -> torch.Tensor:
    """``(V, H, W, 3)`` images in [0, 1] of the stars seen by ``cameras`` (see the module docstring)."""
    w2c = torch.linalg.inv(cameras.camera_to_world)
    points = (w2c[:, None, :3, :3] @ frame.positions[None, :, :, None]).squeeze(-1) + w2c[:, None, :3, 3]
    z = points[..., 2]
    fx, fy, cx, cy = cameras.intrinsics.unbind(-1)
    u = fx[:, None] * points[..., 0] / z.clamp_min(1e-6) + cx[:, None]
    v = fy[:, None] * points[..., 1] / z.clamp_min(1e-6) + cy[:, None]
    flux = frame.luminosity[None] / points.square().sum(-1)
    flux = torch.where(z > 1e-3, flux, torch.zeros_like(flux))
    ys = torch.arange(cameras.height, dtype=torch.float32) + 0.5
    xs = torch.arange(cameras.width, dtype=torch.float32) + 0.5
    gx = torch.exp(-0.5 * ((xs[None, None] - u[..., None]) / psf) ** 2)  # (V, N, W)
    gy = torch.exp(-0.5 * ((ys[None, None] - v[..., None]) / psf) ** 2)  # (V, N, H)
    weighted = gx[..., None] * (flux[..., None, None] * frame.colors[None, :, None, :])  # (V, N, W, 3)
    light = torch.bmm(gy.transpose(1, 2), weighted.flatten(2)).view(len(cameras), cameras.height, cameras.width, 3)
    return 1.0 - torch.exp(-exposure * light)


@dataclass
class StarViews:
    """A cell's training views: images ``(V, H, W, 3)`` in [0, 1], their cameras and the exposure."""

    images: torch.Tensor
    cameras: Cameras
    exposure: float


def star_views(
    cell: CellFile, views: int = 40, size: int = 256, psf: float = PSF_PIXELS
) -> tuple[CellFrame, StarViews]:
    """Render the training views of ``cell`` (its frame, then the views)."""
    frame = cell_frame(cell)
    cameras = star_cameras(frame, views, size)
    median_distance = float((cameras.camera_to_world[:, :3, 3][:, None] - frame.positions[None]).norm(dim=-1).median())
    typical = float(frame.luminosity.median()) / median_distance**2
    exposure = math.log(2.0) / max(typical, 1e-30)
    return frame, StarViews(render_stars(frame, cameras, exposure, psf), cameras, exposure)
