"""Pinhole cameras with optional OpenCV lens distortion, and rays made on the device.

Conventions, used by every format reader and writer in :mod:`foveate.data.scenes`:

- camera axes are OpenCV's: x right, y down, z forward (Blender / OpenGL files are converted);
- ``camera_to_world`` maps camera coordinates to world coordinates (a rigid 4x4 transform);
- pixel ``(y, x)`` covers ``[x, x + 1) x [y, y + 1)`` in continuous image coordinates, so its
  centre is ``(x + 0.5, y + 0.5)`` and ``cx = width / 2`` is the image centre;
- ray directions are unit length, so a depth along a ray is a Euclidean distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

__all__ = [
    "CAMERA_LAYOUTS",
    "Cameras",
    "DownsampleSchedule",
    "camera_positions",
    "distort",
    "look_at",
    "undistort",
]

CAMERA_LAYOUTS = ("sphere", "hemisphere", "orbit", "cap")
"""Names accepted by :func:`camera_positions`."""

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def distort(x: torch.Tensor, y: torch.Tensor, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's radial-tangential model on normalised coordinates.

    Args:
        x, y: undistorted normalised coordinates (``X / Z``, ``Y / Z``), any broadcastable shape.
        coefficients: ``(..., 5)`` as ``k1, k2, p1, p2, k3`` (OpenCV's order).
    """
    k1, k2, p1, p2, k3 = coefficients.unbind(-1)
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return xd, yd


def undistort(
    xd: torch.Tensor, yd: torch.Tensor, coefficients: torch.Tensor, iterations: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert :func:`distort` by a fixed number of Newton steps (no host synchronisation).

    Converges to float32 precision in a few steps for the distortion of real lenses
    (``|k1| r^2`` well below 1 across the image).
    """
    k1, k2, p1, p2, k3 = coefficients.unbind(-1)
    x, y = xd, yd
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        d_radial = 2.0 * k1 + r2 * (4.0 * k2 + 6.0 * k3 * r2)
        fx = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - xd
        fy = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y - yd
        dfx_dx = radial + d_radial * x * x + 2.0 * p1 * y + 6.0 * p2 * x
        dfy_dy = radial + d_radial * y * y + 6.0 * p1 * y + 2.0 * p2 * x
        cross = d_radial * x * y + 2.0 * p1 * x + 2.0 * p2 * y
        determinant = dfx_dx * dfy_dy - cross * cross
        x = x - (fx * dfy_dy - fy * cross) / determinant
        y = y - (fy * dfx_dx - fx * cross) / determinant
    return x, y


@dataclass
class Cameras:
    """``N`` pinhole cameras sharing one image size (see the module docstring for conventions).

    Attributes:
        camera_to_world: ``(N, 4, 4)`` float32 rigid transforms.
        intrinsics: ``(N, 4)`` float32 ``fx, fy, cx, cy`` in pixels.
        width, height: image size in pixels.
        distortion: ``(N, 5)`` float32 OpenCV ``k1, k2, p1, p2, k3``, or ``None`` for none.
    """

    camera_to_world: torch.Tensor
    intrinsics: torch.Tensor
    width: int
    height: int
    distortion: torch.Tensor | None = None

    def __post_init__(self) -> None:
        c2w, k = self.camera_to_world, self.intrinsics
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
            raise ValueError(f"camera_to_world must be (N, 4, 4), got {tuple(c2w.shape)}")
        if k.shape != (c2w.shape[0], 4):
            raise ValueError(f"intrinsics must be (N, 4) = ({c2w.shape[0]}, 4), got {tuple(k.shape)}")
        if self.distortion is not None and self.distortion.shape != (c2w.shape[0], 5):
            raise ValueError(f"distortion must be (N, 5) = ({c2w.shape[0]}, 5), got {tuple(self.distortion.shape)}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be positive, got {self.width} x {self.height}")
        self.camera_to_world = c2w.to(torch.float32)
        self.intrinsics = k.to(device=c2w.device, dtype=torch.float32)
        if self.distortion is not None:
            self.distortion = self.distortion.to(device=c2w.device, dtype=torch.float32)

    @classmethod
    def from_fov(
        cls,
        camera_to_world: torch.Tensor,
        width: int,
        height: int,
        fov_x_degrees: float,
    ) -> Cameras:
        """Square pixels, principal point at the image centre, horizontal field of view in degrees."""
        focal = width / 2.0 / math.tan(math.radians(fov_x_degrees) / 2.0)
        n = camera_to_world.shape[0]
        intrinsics = torch.tensor([focal, focal, width / 2.0, height / 2.0], device=camera_to_world.device)
        return cls(camera_to_world, intrinsics.expand(n, 4).clone(), width, height)

    def __len__(self) -> int:
        return self.camera_to_world.shape[0]

    @property
    def device(self) -> torch.device:
        return self.camera_to_world.device

    @property
    def has_distortion(self) -> bool:
        return self.distortion is not None and bool((self.distortion != 0).any())

    def to(self, device: torch.device | str) -> Cameras:
        distortion = None if self.distortion is None else self.distortion.to(device)
        return replace(
            self,
            camera_to_world=self.camera_to_world.to(device),
            intrinsics=self.intrinsics.to(device),
            distortion=distortion,
        )

    def __getitem__(self, index: torch.Tensor | Sequence[int] | slice) -> Cameras:
        """The cameras at ``index`` (a slice, a list of ints or an index tensor)."""
        if not isinstance(index, slice):
            index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        distortion = None if self.distortion is None else self.distortion[index]
        return replace(
            self, camera_to_world=self.camera_to_world[index], intrinsics=self.intrinsics[index], distortion=distortion
        )

    def resized(self, width: int, height: int) -> Cameras:
        """The same cameras for images resampled to ``width x height`` (exact for the pixel-edge convention)."""
        scale = torch.tensor([width / self.width, height / self.height] * 2, device=self.device)
        return replace(self, intrinsics=self.intrinsics * scale, width=width, height=height)

    def downsampled(self, factor: int) -> Cameras:
        """The cameras for images shrunk by an integer ``factor``: ``factor x factor`` blocks become
        pixels, and rows or columns beyond the last whole block are dropped (sizes round down, as
        RadFoam's do), so pixel edges stay where they were."""
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"downsample factor must be a positive int, got {factor!r}")
        if factor > min(self.width, self.height):
            raise ValueError(f"downsample factor {factor} exceeds the image size {self.width}x{self.height}")
        return replace(
            self, intrinsics=self.intrinsics / factor, width=self.width // factor, height=self.height // factor
        )

    def rays(
        self, image: torch.Tensor, y: torch.Tensor, x: torch.Tensor, offset: float = 0.5
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """World-space origins and unit directions of rays through pixels, all on the device.

        Args:
            image: ``(B,)`` camera index of each ray.
            y, x: ``(B,)`` pixel rows and columns (integers, or floats for sub-pixel positions).
            offset: added to ``x`` and ``y``: 0.5 aims at pixel centres, 0 at continuous coordinates.

        Returns:
            ``origins (B, 3)``, ``directions (B, 3)``, float32.
        """
        k = self.intrinsics[image]
        u = (x.to(torch.float32) + offset - k[:, 2]) / k[:, 0]
        v = (y.to(torch.float32) + offset - k[:, 3]) / k[:, 1]
        if self.distortion is not None:
            u, v = undistort(u, v, self.distortion[image])
        local = torch.stack((u, v, torch.ones_like(u)), dim=-1)
        c2w = self.camera_to_world[image]
        directions = torch.einsum("bij,bj->bi", c2w[:, :3, :3], local)
        directions = directions / directions.norm(dim=-1, keepdim=True)
        return c2w[:, :3, 3], directions

    def image_rays(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Origins and directions for every pixel centre of camera ``index``, shaped ``(H, W, 3)``."""
        y, x = torch.meshgrid(
            torch.arange(self.height, device=self.device), torch.arange(self.width, device=self.device), indexing="ij"
        )
        image = torch.full((self.height * self.width,), index, dtype=torch.long, device=self.device)
        origins, directions = self.rays(image, y.reshape(-1), x.reshape(-1))
        shape = (self.height, self.width, 3)
        return origins.reshape(shape), directions.reshape(shape)

    def project(self, points: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """World points to continuous pixel coordinates ``(x, y)`` and camera-space depth ``z``.

        Args:
            points: ``(B, 3)`` world positions.
            image: ``(B,)`` camera index per point.
        """
        c2w = self.camera_to_world[image]
        rotation, origin = c2w[:, :3, :3], c2w[:, :3, 3]
        local = torch.einsum("bji,bj->bi", rotation, points.to(torch.float32) - origin)
        z = local[:, 2]
        u, v = local[:, 0] / z, local[:, 1] / z
        if self.distortion is not None:
            u, v = distort(u, v, self.distortion[image])
        k = self.intrinsics[image]
        return u * k[:, 0] + k[:, 2], v * k[:, 1] + k[:, 3], z


@dataclass(frozen=True)
class DownsampleSchedule:
    """Image downsampling by training step: ``factors[i]`` applies from ``steps[i]`` on.

    The default is RadFoam's: a quarter of the resolution from step 0, half from 150, full from 500.
    """

    factors: tuple[int, ...] = (4, 2, 1)
    steps: tuple[int, ...] = (0, 150, 500)

    def __post_init__(self) -> None:
        if len(self.factors) != len(self.steps) or not self.factors:
            raise ValueError(
                f"factors and steps must be non-empty and of equal length, got {self.factors}, {self.steps}"
            )
        if self.steps[0] != 0 or any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps must start at 0 and increase strictly, got {self.steps}")
        if any(not isinstance(f, int) or f < 1 for f in self.factors):
            raise ValueError(f"factors must be positive ints, got {self.factors}")

    @classmethod
    def constant(cls, factor: int = 1) -> DownsampleSchedule:
        return cls((factor,), (0,))

    def factor_at(self, step: int) -> int:
        """The factor in force at ``step``."""
        factor = self.factors[0]
        for start, value in zip(self.steps, self.factors, strict=True):
            if step >= start:
                factor = value
        return factor


def look_at(
    eye: torch.Tensor, target: torch.Tensor | Sequence[float], up: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """``(N, 4, 4)`` OpenCV camera-to-world transforms at ``eye (N, 3)`` looking at ``target``.

    ``up`` is the world direction that appears upwards in the images (it must not be parallel
    to a viewing direction).
    """
    eye = torch.as_tensor(eye, dtype=torch.float64).reshape(-1, 3)
    target = torch.as_tensor(target, dtype=torch.float64).expand_as(eye)
    up = torch.as_tensor(up, dtype=torch.float64).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(forward, up)
    if bool((right.norm(dim=-1) < 1e-9).any()):
        raise ValueError("look_at: a viewing direction is parallel to 'up'; choose another up vector")
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(forward, right)
    c2w = torch.zeros(eye.shape[0], 4, 4, dtype=torch.float64)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, down, forward, eye
    c2w[:, 3, 3] = 1.0
    return c2w.to(torch.float32)


def camera_positions(
    layout: str,
    count: int,
    *,
    radius: float,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    up: Sequence[float] = (0.0, 1.0, 0.0),
    axis: Sequence[float] | None = None,
    cap_degrees: float = 30.0,
    elevation_degrees: float = 20.0,
    phase: float = 0.0,
) -> torch.Tensor:
    """``(count, 3)`` camera positions on a sphere of ``radius`` around ``center``.

    Layouts: ``sphere`` (a Fibonacci lattice over the whole sphere), ``hemisphere`` (the half
    on the ``up`` side), ``cap`` (within ``cap_degrees`` of ``axis``, e.g. the open side of a
    box), ``orbit`` (a ring at ``elevation_degrees`` above the horizon, evenly spaced).
    ``phase`` in [0, 1) shifts the azimuths so that, say, held-out views fall between
    training views.
    """
    if layout not in CAMERA_LAYOUTS:
        raise ValueError(f"camera layout must be one of {CAMERA_LAYOUTS}, got {layout!r}")
    if count < 1:
        raise ValueError(f"need at least one camera, got {count}")
    pole = torch.nn.functional.normalize(torch.tensor(axis if axis is not None else up, dtype=torch.float64), dim=0)
    i = torch.arange(count, dtype=torch.float64)
    if layout == "orbit":
        azimuth = 2.0 * math.pi * (i + phase) / count
        cos_polar = torch.full_like(i, math.sin(math.radians(elevation_degrees)))
    else:
        lowest = {"sphere": -1.0, "hemisphere": 0.0, "cap": math.cos(math.radians(cap_degrees))}[layout]
        # Equal-area rings from the pole down to `lowest`, one point each, rotated by the golden angle.
        cos_polar = 1.0 - (1.0 - lowest) * (i + 0.5) / count
        azimuth = GOLDEN_ANGLE * i + 2.0 * math.pi * phase
    sin_polar = (1.0 - cos_polar * cos_polar).clamp(min=0.0).sqrt()
    # An orthonormal frame (e1, e2, pole).
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    if abs(float(pole @ helper)) > 0.9:
        helper = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    e1 = torch.nn.functional.normalize(torch.linalg.cross(pole, helper), dim=0)
    e2 = torch.linalg.cross(pole, e1)
    directions = (
        sin_polar[:, None] * (torch.cos(azimuth)[:, None] * e1 + torch.sin(azimuth)[:, None] * e2)
        + cos_polar[:, None] * pole
    )
    return (torch.tensor(center, dtype=torch.float64) + radius * directions).to(torch.float32)
