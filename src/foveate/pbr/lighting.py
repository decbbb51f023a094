"""Lights for :mod:`foveate.pbr.shading`: point lights and environments as a few directional samples.

World frame: the material plane is ``z = 0`` with its normal along +z, so +z is "up" for the
sky. An environment is an equirectangular radiance image ``(H, W, 3)``: row 0 looks at the
zenith (+z), the last row at the nadir, column ``j`` at azimuth ``2 pi (j + 0.5) / W`` from +x
towards +y (Blender's worlds and most HDRIs put the zenith at the top row; their azimuth origin
differs, which does not matter for randomly rotated lighting).

An environment reaches the renderer as ``K`` directional samples drawn by
:func:`sample_environment` in proportion to luminance x solid angle, upper hemisphere only (light
from below the plane cannot reach it): each carries ``radiance x solid angle / (K x probability)``,
so summing ``BRDF x cos x weight`` over the samples is an unbiased estimate of the
environment's reflected radiance, and the solid angle each sample stands for (its ``spread``,
an angular radius) lets the renderer widen the specular lobe instead of drawing ``K`` pinpoint
highlights on glossy surfaces.

Environment files: the CC0 world HDRIs of Debian's ``blender-data`` package
(``/usr/share/blender/datafiles/studiolights/world/*.exr``, 1024 x 512) when installed, read
with Mitsuba's ``Bitmap``; otherwise :func:`procedural_sky`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = [
    "BLENDER_WORLDS",
    "Lighting",
    "environment_paths",
    "load_environment",
    "procedural_sky",
    "sample_environment",
]

BLENDER_WORLDS = Path("/usr/share/blender/datafiles/studiolights/world")
"""Where Debian's ``blender-data`` puts its eight CC0 world HDRIs."""
LUMINANCE = (0.2126, 0.7152, 0.0722)
SUN_RADIUS_DEGREES = 4.0
"""Wider than a pixel of a 128-wide sky (2.8 degrees), so the disc always covers some pixel centres."""
ENVIRONMENT_WIDTH = 256
"""Environments are box-filtered to this width on load: the samples do not need more."""


@dataclass(frozen=True)
class Lighting:
    """The lights of ``B`` scenes (leading dimension), in the world frame above.

    Attributes:
        point_positions: ``(B, L, 3)`` point-light positions.
        point_intensities: ``(B, L, 3)`` RGB intensities: a point at distance ``d`` receives
            radiance ``intensity / d**2`` from the light (inverse-square falloff).
        env_directions: ``(B, K, 3)`` unit directions towards the environment samples.
        env_weights: ``(B, K, 3)`` RGB radiance x solid angle / (K x probability) of each sample.
        env_spread: ``(B, K)`` angular radius (radians) of the solid angle each sample stands for.
    """

    point_positions: torch.Tensor
    point_intensities: torch.Tensor
    env_directions: torch.Tensor
    env_weights: torch.Tensor
    env_spread: torch.Tensor

    @staticmethod
    def points(positions: torch.Tensor, intensities: torch.Tensor) -> Lighting:
        """Point lights only: ``positions (B, L, 3)``, ``intensities (B, L, 3)`` (or broadcastable)."""
        positions = torch.as_tensor(positions, dtype=torch.float32)
        batch, device = positions.shape[0], positions.device
        intensities = torch.as_tensor(intensities, dtype=torch.float32, device=device).expand_as(positions)
        empty = torch.zeros(batch, 0, 3, device=device)
        return Lighting(positions, intensities, empty, empty, torch.zeros(batch, 0, device=device))

    @staticmethod
    def environment(directions: torch.Tensor, weights: torch.Tensor, spread: torch.Tensor) -> Lighting:
        """Environment samples only (``(B, K, 3)``, ``(B, K, 3)``, ``(B, K)``), e.g. from :func:`sample_environment`."""
        batch, device = directions.shape[0], directions.device
        empty = torch.zeros(batch, 0, 3, device=device)
        return Lighting(empty, empty, directions, weights, spread)

    def __add__(self, other: Lighting) -> Lighting:
        """Both sets of lights together (same batch size)."""
        return Lighting(
            torch.cat([self.point_positions, other.point_positions], dim=1),
            torch.cat([self.point_intensities, other.point_intensities], dim=1),
            torch.cat([self.env_directions, other.env_directions], dim=1),
            torch.cat([self.env_weights, other.env_weights], dim=1),
            torch.cat([self.env_spread, other.env_spread], dim=1),
        )

    @property
    def batch_size(self) -> int:
        return self.point_positions.shape[0]

    def to(self, device: torch.device | str) -> Lighting:
        return Lighting(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))

    def irradiance(self) -> torch.Tensor:
        """``(B, 3)`` irradiance at the plane's centre (normal +z): for choosing exposures and balancing lights."""
        env = (self.env_weights * self.env_directions[..., 2:].clamp_min(0.0)).sum(dim=1)
        distance2 = (self.point_positions**2).sum(-1, keepdim=True).clamp_min(1e-8)
        cosine = (self.point_positions[..., 2:] / distance2.sqrt()).clamp_min(0.0)
        return env + (self.point_intensities * cosine / distance2).sum(dim=1)


def environment_paths() -> list[Path]:
    """The Blender world HDRIs installed here (empty without Debian's ``blender-data``)."""
    return sorted(BLENDER_WORLDS.glob("*.exr")) if BLENDER_WORLDS.is_dir() else []


def load_environment(path: str | Path, width: int = ENVIRONMENT_WIDTH) -> torch.Tensor:
    """An equirectangular HDR image as ``(H, W, 3)`` linear radiance, box-filtered down to ``width``.

    Read with Mitsuba's ``Bitmap`` (the ``render`` extra), which reads EXR and Radiance HDR
    without a variant; if none is set, one is chosen by :func:`foveate.data.render.mitsuba_variant`,
    which tries the fast ``llvm_ad_rgb`` in a subprocess first because with a mismatched LLVM it
    aborts the whole process, and falls back to ``scalar_rgb``.
    """
    import numpy as np

    from foveate.data.render import import_mitsuba, mitsuba_variant

    mi = import_mitsuba()
    if mi.variant() is None:
        mi.set_variant(mitsuba_variant())
    bitmap = mi.Bitmap(str(path)).convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.Float32, srgb_gamma=False)
    image = torch.from_numpy(np.array(bitmap, dtype=np.float32)).clamp_min(0.0)
    factor = max(1, image.shape[1] // width)
    if factor > 1:
        image = F.avg_pool2d(image.permute(2, 0, 1)[None], factor)[0].permute(1, 2, 0)
    return image.contiguous()


def procedural_sky(generator: torch.Generator, width: int = 128) -> torch.Tensor:
    """A random clear-to-overcast sky as an equirectangular ``(width / 2, width, 3)`` radiance image.

    A zenith-to-horizon colour gradient (bluish to whitish, random) plus a sun disc of angular
    radius 4 degrees at a random elevation (10 to 70 degrees) whose irradiance is 0 to 4 times
    the sky's; the ground (below the horizon) is dark grey and never sampled.
    """
    height = width // 2

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape or (1,), generator=generator)

    theta = (torch.arange(height) + 0.5) * math.pi / height
    phi = (torch.arange(width) + 0.5) * 2.0 * math.pi / width
    zenith = torch.tensor([0.35, 0.55, 1.0]) * uniform(0.4, 1.0) + uniform(0.0, 0.6)
    horizon = torch.tensor([1.0, 0.95, 0.9]) * uniform(0.8, 1.2)
    blend = (theta / (math.pi / 2)).clamp(0.0, 1.0)[:, None, None] ** uniform(0.5, 2.0)
    sky = (zenith * (1.0 - blend) + horizon * blend).expand(height, width, 3).clone()
    sky[theta > math.pi / 2] = 0.05
    sun = _direction(math.pi / 2 - torch.deg2rad(uniform(10.0, 70.0)), uniform(0.0, 2.0 * math.pi))
    directions = _direction(theta[:, None], phi[None, :])
    disc = (directions * sun).sum(-1) > math.cos(math.radians(SUN_RADIUS_DEGREES))
    cosine_solid_angle = torch.cos(theta).clamp_min(0)[:, None] * _pixel_solid_angle(height, width)
    sky_irradiance = (sky.mean(-1) * cosine_solid_angle).sum()
    sun_radiance = uniform(0.0, 4.0) * sky_irradiance / (cosine_solid_angle * disc).sum().clamp_min(1e-8)
    sun_color = torch.tensor([1.0, 0.92, 0.8])
    return torch.where(disc[..., None], sky + sun_radiance * sun_color, sky)


def sample_environment(
    image: torch.Tensor, count: int, generator: torch.Generator, rotation: float = 0.0, uniform_share: float = 0.05
) -> Lighting:
    """``count`` directional samples of an equirectangular environment (upper hemisphere), batch of one.

    Pixels are drawn with probability proportional to ``(luminance + uniform_share x mean
    luminance) x solid angle`` (solid angle = ``sin(theta)`` x pixel area: the ``sin(theta)`` of
    the brief), each direction jittered uniformly inside its pixel, then turned by ``rotation``
    radians about +z. Deterministic under ``generator``.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    height, width = image.shape[:2]
    upper = height // 2
    radiance = image[:upper].float()
    solid_angle = _pixel_solid_angle(height, width)[:upper].expand(upper, width)
    luminance = (radiance * torch.tensor(LUMINANCE)).sum(-1).clamp_min(0.0)
    density = (luminance + uniform_share * luminance.mean() + 1e-12) * solid_angle
    probability = (density / density.sum()).flatten()
    index = torch.multinomial(probability, count, replacement=True, generator=generator)
    row, col = index // width, index % width
    jitter = torch.rand(count, 2, generator=generator)
    theta = (row + jitter[:, 0]) * math.pi / height
    phi = (col + jitter[:, 1]) * 2.0 * math.pi / width + rotation
    represented = solid_angle.flatten()[index] / (count * probability[index])
    weights = radiance.reshape(-1, 3)[index] * represented[:, None]
    spread = (represented / math.pi).sqrt()
    return Lighting.environment(_direction(theta, phi)[None], weights[None], spread[None])


def _direction(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Unit vectors at polar angle ``theta`` from +z and azimuth ``phi`` from +x towards +y."""
    theta, phi = torch.broadcast_tensors(torch.as_tensor(theta), torch.as_tensor(phi))
    sin_theta = torch.sin(theta)
    return torch.stack([sin_theta * torch.cos(phi), sin_theta * torch.sin(phi), torch.cos(theta)], dim=-1)


def _pixel_solid_angle(height: int, width: int) -> torch.Tensor:
    """``(H, 1)`` solid angle of one pixel of each row of an equirectangular image."""
    theta = (torch.arange(height) + 0.5) * math.pi / height
    return (2.0 * math.pi / width) * (math.pi / height) * torch.sin(theta)[:, None]
