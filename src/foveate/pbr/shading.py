"""A differentiable, batched Cook-Torrance renderer of a flat material plane, in plain PyTorch.

Three entry points over one BRDF:

- :func:`brdf`: the metallic-roughness BRDF times the cosine, per pixel;
- :func:`render_views`: pinhole views of the material laid on the plane ``z = 0`` (normal +z),
  lit by a :class:`~foveate.pbr.lighting.Lighting` (point lights and environment samples), as
  NeuroPBR's renderer sees its materials (cameras from :func:`sample_cameras`);
- :func:`shade_plane`: the maps shaded in texel space (each texel at its own point of
  ``[-1, 1]^2``) under a few point lights: the cheap, differentiable rendering a rendering loss
  or a rendering-error metric needs.

:func:`tonemap` turns linear radiance into display values for the view PNGs. No Python loop
runs over pixels and nothing synchronises with the host; loops run over point lights and over
chunks of environment samples only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F

from .lighting import Lighting
from .maps import linear_to_srgb, srgb_to_linear

__all__ = [
    "FOV_DEGREES",
    "PLANE_HALF_SIZE",
    "TEXTURE_PERIOD",
    "brdf",
    "plane_lookup",
    "render_views",
    "sample_cameras",
    "shade_plane",
    "tonemap",
]

CAMERA_RADIUS, MAX_POLAR_DEGREES, FOV_DEGREES = 0.6, 40.0, 55.0
"""NeuroPBR's views: distance 0.6 from the plane's centre, polar angle up to 40 degrees, vertical FOV 55 degrees."""
TEXTURE_PERIOD = 0.5
"""World size of one copy of the texture (NeuroPBR's renderer tiles its textures every 0.5 units):
a view from straight above spans 2 x 0.6 x tan(27.5 deg) = 0.62 units, so every view shows the
whole material at about its own resolution."""
PLANE_HALF_SIZE = 1.25
"""The plane spans ``[-1.25, 1.25]^2``. The farthest point any view sees is where a corner ray of
a camera at the largest polar angle (40 degrees: height 0.6 cos 40 = 0.460, offset 0.6 sin 40 =
0.386) meets the plane; over all azimuths (camera "up" is world +y projected) that point's
largest coordinate is 1.203 (computed over a 0.5-degree azimuth grid), so 1.25 fills every view
with material and leaves a margin. Rays that miss the plane see black."""
F0_DIELECTRIC = 0.04
ALPHA_MIN = 1e-3
ENV_CHUNK = 8
"""Environment samples shaded together: 8 keeps a 128^2 x 3-view chunk in cache (a third faster than 32 on one core)."""


def brdf(
    albedo_linear: torch.Tensor,
    roughness: torch.Tensor,
    metallic: torch.Tensor,
    normal: torch.Tensor,
    view_dir: torch.Tensor,
    light_dir: torch.Tensor,
) -> torch.Tensor:
    r"""The metallic-roughness Cook-Torrance BRDF times the cosine, :math:`f(l, v) \, (n \cdot l)^+`.

    .. math::

        f = \frac{D \, G \, F}{4 (n \cdot l)(n \cdot v)} + (1 - F)(1 - m) \frac{\rho}{\pi}

    with :math:`h = (l + v) / |l + v|`, :math:`\alpha = \max(r^2, 10^{-3})` (``r`` the perceptual roughness) and

    - GGX / Trowbridge-Reitz: :math:`D = \alpha^2 / (\pi ((n \cdot h)^2 (\alpha^2 - 1) + 1)^2)`;
    - Smith-Schlick with the direct-lighting remap :math:`k = (r + 1)^2 / 8`:
      :math:`G = G_1(n \cdot l) G_1(n \cdot v)`, :math:`G_1(x) = x / (x (1 - k) + k)`;
    - Schlick: :math:`F = F_0 + (1 - F_0)(1 - v \cdot h)^5`, :math:`F_0 = \mathrm{lerp}(0.04, \rho, m)`.

    All vectors are unit length with components at dim -3 (as the maps' channels); ``n . v`` is
    clamped to 1e-4 and ``n . l`` to 0 (no light from behind), so the result is finite everywhere.

    Args:
        albedo_linear: ``(..., 3, H, W)`` linear base colour :math:`\rho`.
        roughness: ``(..., 1, H, W)`` perceptual roughness in [0, 1].
        metallic: ``(..., 1, H, W)`` in [0, 1].
        normal, view_dir, light_dir: ``(..., 3, H, W)`` (or broadcastable) unit vectors, the last
            two pointing away from the surface.

    Returns:
        ``(..., 3, H, W)`` RGB :math:`f \, (n \cdot l)^+`.

    Examples:
        >>> up = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)
        >>> value = brdf(torch.ones(3, 1, 1), torch.ones(1, 1, 1), torch.zeros(1, 1, 1), up, up, up)
        >>> round(value[0].item(), 4)  # (1 - 0.04) / pi + 0.04 * D (1 / pi) * G (1) / 4
        0.3088
    """
    n_dot_l = (normal * light_dir).sum(-3, keepdim=True)
    n_dot_v = (normal * view_dir).sum(-3, keepdim=True)
    half_length2 = ((light_dir + view_dir) ** 2).sum(-3, keepdim=True)
    specular, schlick, cosine = _lobes(n_dot_l, n_dot_v, half_length2, roughness)
    f0 = F0_DIELECTRIC + (albedo_linear - F0_DIELECTRIC) * metallic
    diffuse_color = (1.0 - f0) * (1.0 - metallic) * albedo_linear / math.pi
    return specular * (f0 + (1.0 - f0) * schlick) + cosine * (1.0 - schlick) * diffuse_color


def _lobes(
    n_dot_l: torch.Tensor,
    n_dot_v: torch.Tensor,
    half_length2: torch.Tensor,
    roughness: torch.Tensor,
    spread: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The light-dependent scalars of :func:`brdf`: ``D G (n.l) / (4 (n.l)(n.v))``, ``(1 - v.h)^5`` and ``(n.l)+``.

    Written with ``n.l``, ``n.v`` and ``|l + v|^2 = 2 + 2 l.v`` only (``n.h = (n.l + n.v) / |l +
    v|``, ``v.h = |l + v| / 2``) so that directional lights reduce to matrix products, and with
    the per-pixel factors gathered first: this runs on ``pixels x lights`` tensors, where every
    operation counts.
    ``spread`` (an angular radius) widens the GGX lobe to ``alpha^2 + spread^2 / 4`` for a light
    that stands for a patch of sky rather than a point (``D`` stays normalised, so energy does not change).
    """
    cosine = n_dot_l.clamp_min(0.0)
    n_dot_v = n_dot_v.clamp_min(1e-4)
    alpha2 = (roughness * roughness).clamp_min(ALPHA_MIN).square()
    if spread is not None:
        alpha2 = alpha2 + 0.25 * spread * spread
    k = (roughness + 1.0).square() / 8.0
    # D G cos / (4 cos n.v) = alpha^2 cos / (pi denominator^2 4 (cos (1 - k) + k)(n.v (1 - k) + k))
    pixel_factor = alpha2 / (4.0 * math.pi * torch.addcmul(k, n_dot_v, 1.0 - k))
    half_length2 = half_length2.clamp_min(1e-8)
    n_dot_h2 = ((n_dot_l + n_dot_v).square() / half_length2).clamp_max(1.0)
    denominator = n_dot_h2 * (alpha2 - 1.0) + 1.0
    specular = cosine * pixel_factor / (denominator.square() * torch.addcmul(k, cosine, 1.0 - k))
    one_minus_v_dot_h = 1.0 - 0.5 * half_length2.sqrt()
    schlick = one_minus_v_dot_h.square().square() * one_minus_v_dot_h
    return specular, schlick, cosine


def sample_cameras(
    batch: int,
    views: int = 3,
    generator: torch.Generator | None = None,
    radius: float = CAMERA_RADIUS,
    max_polar_degrees: float = MAX_POLAR_DEGREES,
) -> torch.Tensor:
    """NeuroPBR's view sampling: ``(batch, views, 3)`` camera positions at ``radius`` from the plane's centre,
    azimuth uniform in [0, 360) degrees, polar angle (from +z) uniform in [0, ``max_polar_degrees``]."""
    azimuth = torch.rand(batch, views, generator=generator) * 2.0 * math.pi
    polar = torch.rand(batch, views, generator=generator) * math.radians(max_polar_degrees)
    sin_polar = torch.sin(polar)
    return radius * torch.stack([sin_polar * torch.cos(azimuth), sin_polar * torch.sin(azimuth), torch.cos(polar)], -1)


def render_views(
    maps: Mapping[str, torch.Tensor],
    camera_positions: torch.Tensor,
    lighting: Lighting,
    size: int,
    fov_deg: float = FOV_DEGREES,
    plane_half_size: float = PLANE_HALF_SIZE,
    texture_period: float = TEXTURE_PERIOD,
    tiling: Literal["repeat", "mirror"] = "repeat",
    light_factor: torch.Tensor | None = None,
) -> torch.Tensor:
    """Linear radiance ``(B, V, 3, size, size)`` of the material plane seen by pinhole cameras.

    Each camera looks at the origin with world +y projected as image up (so from straight above
    the texture appears upright) and a vertical (= horizontal) field of view ``fov_deg``; the ray
    through each pixel centre meets the plane ``z = 0`` inside ``[-plane_half_size,
    plane_half_size]^2`` (black elsewhere). The texture's centre sits at the plane's centre and
    it repeats every ``texture_period`` world units: ``"repeat"`` for tileable maps (bilinear
    lookups wrap), ``"mirror"`` for maps that do not tile (every other copy mirrored, the
    normals' x or y negated there). Lookups are bilinear (``grid_sample``); the tangent frame is
    the plane's axes.

    Args:
        maps: batched material ``(B, C, H, W)`` (albedo sRGB-encoded, see :mod:`foveate.pbr.maps`).
        camera_positions: ``(B, V, 3)``, above the plane.
        lighting: lights of the ``B`` scenes.
        size: output side in pixels.
        light_factor: optional ``(B, 1, h, w)`` multiplier of all incoming light over the plane's
            extent (a shadow mask, :func:`foveate.pbr.dirt.shadow_mask`), bilinearly sampled.
    """
    batch, views = camera_positions.shape[:2]
    device = camera_positions.device
    texture = _texture_stack(maps)
    hit, ray_hits_plane, view_dir = _camera_rays(camera_positions, size, fov_deg, plane_half_size)
    texels = _lookup(texture, hit[..., :2] / texture_period + 0.5, tiling).reshape(batch, 8, -1).transpose(1, 2)
    albedo, roughness, metallic, normal = texels.split([3, 1, 1, 3], dim=-1)
    normal = F.normalize(normal, dim=-1)
    points = hit.reshape(batch, -1, 3)
    view_dir = view_dir.reshape(batch, -1, 3)
    n_dot_v = (normal * view_dir).sum(-1, keepdim=True)
    f0 = F0_DIELECTRIC + (albedo - F0_DIELECTRIC) * metallic
    diffuse_color = (1.0 - f0) * (1.0 - metallic) * albedo / math.pi
    radiance = torch.zeros(batch, points.shape[1], 3, device=device)
    for index in range(lighting.point_positions.shape[1]):
        to_light = lighting.point_positions[:, index, None, :] - points
        distance2 = (to_light * to_light).sum(-1, keepdim=True).clamp_min(1e-10)
        light_dir = to_light * distance2.rsqrt()
        n_dot_l = (normal * light_dir).sum(-1, keepdim=True)
        half_length2 = 2.0 + 2.0 * (light_dir * view_dir).sum(-1, keepdim=True)
        specular, schlick, cosine = _lobes(n_dot_l, n_dot_v, half_length2, roughness)
        shaded = specular * (f0 + (1.0 - f0) * schlick) + cosine * (1.0 - schlick) * diffuse_color
        radiance = radiance + shaded * lighting.point_intensities[:, index, None, :] / distance2
    two = torch.full((), 2.0, device=device)
    for start in range(0, lighting.env_directions.shape[1], ENV_CHUNK):
        directions = lighting.env_directions[:, start : start + ENV_CHUNK]
        weights = lighting.env_weights[:, start : start + ENV_CHUNK]
        spread = lighting.env_spread[:, None, start : start + ENV_CHUNK]
        n_dot_l = normal @ directions.transpose(1, 2)
        half_length2 = torch.baddbmm(two, view_dir, directions.transpose(1, 2), alpha=2.0)
        specular, schlick, cosine = _lobes(n_dot_l, n_dot_v, half_length2, roughness, spread)
        radiance = radiance + f0 * (specular @ weights) + (1.0 - f0) * ((specular * schlick) @ weights)
        radiance = radiance + diffuse_color * ((cosine * (1.0 - schlick)) @ weights)
    if light_factor is not None:
        radiance = radiance * _plane_sample(light_factor, hit, plane_half_size).reshape(batch, -1, 1)
    radiance = radiance * ray_hits_plane.reshape(batch, -1, 1)
    return radiance.reshape(batch, views, size, size, 3).permute(0, 1, 4, 2, 3)


def plane_lookup(
    image: torch.Tensor,
    camera_positions: torch.Tensor,
    size: int,
    fov_deg: float = FOV_DEGREES,
    plane_half_size: float = PLANE_HALF_SIZE,
) -> torch.Tensor:
    """``(B, V, C, size, size)``: a plane-space image ``(B, C, h, w)`` spanning the plane, as each view sees it.

    ``render_views(..., light_factor=f)`` equals ``render_views(...) * plane_lookup(f, ...)``, so a
    shadowed render can reuse a clean one.
    """
    batch, views = camera_positions.shape[:2]
    hit, _, _ = _camera_rays(camera_positions, size, fov_deg, plane_half_size)
    sampled = _plane_sample(image, hit, plane_half_size)
    return sampled.reshape(batch, -1, views, size, size).transpose(1, 2)


def shade_plane(
    maps: Mapping[str, torch.Tensor],
    light_positions: torch.Tensor,
    light_intensity: torch.Tensor | float,
    view_positions: torch.Tensor,
) -> torch.Tensor:
    """The maps shaded in texel space: ``(B, 3, H, W)`` radiance towards ``view_positions`` under point lights.

    The material is laid on ``[-1, 1]^2`` of the plane ``z = 0`` (texel ``(i, j)`` at ``x = (2 j +
    1) / W - 1``, ``y = 1 - (2 i + 1) / H``: row 0 at the top), and each texel is shaded with its own
    view and light directions and inverse-square falloff: a rendering loss or metric compares two
    materials by this under the same random lights. Differentiable in every map.

    Args:
        maps: batched material ``(B, C, H, W)``.
        light_positions: ``(B, L, 3)``.
        light_intensity: a float, ``(B, L)`` or ``(B, L, 3)`` RGB intensities.
        view_positions: ``(B, 3)``.
    """
    albedo = srgb_to_linear(maps["albedo"])
    height, width = albedo.shape[-2:]
    device, dtype = albedo.device, albedo.dtype
    x = (torch.arange(width, device=device, dtype=dtype) * 2.0 + 1.0) / width - 1.0
    y = 1.0 - (torch.arange(height, device=device, dtype=dtype) * 2.0 + 1.0) / height
    grid_x, grid_y = x.expand(height, width), y[:, None].expand(height, width)
    points = torch.stack([grid_x, grid_y, torch.zeros_like(grid_x)], 0)
    view_dir = F.normalize(view_positions[:, :, None, None] - points, dim=-3)
    intensity = torch.as_tensor(light_intensity, device=device, dtype=dtype)
    intensity = intensity[..., None] if intensity.dim() == 2 else intensity
    intensity = intensity.expand(*light_positions.shape[:2], 3)
    radiance = torch.zeros_like(albedo)
    for index in range(light_positions.shape[1]):
        to_light = light_positions[:, index, :, None, None] - points
        distance2 = (to_light * to_light).sum(-3, keepdim=True)
        light_dir = to_light * distance2.rsqrt()
        value = brdf(albedo, maps["roughness"], maps["metallic"], maps["normal"], view_dir, light_dir)
        radiance = radiance + value * intensity[:, index, :, None, None] / distance2
    return radiance


def tonemap(linear: torch.Tensor, exposure: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Display values in [0, 1]: ``linear x exposure``, Narkowicz's fit of the ACES filmic curve, sRGB encoding.

    ACES rather than Reinhard because its toe keeps shadows' contrast and its shoulder rolls
    highlights off smoothly instead of greying them; ``exposure`` broadcasts against ``linear``
    (e.g. ``(B, 1, 1, 1, 1)`` for views ``(B, V, 3, H, W)``).
    """
    x = (linear * exposure).clamp_min(0.0)
    mapped = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
    return linear_to_srgb(mapped.clamp(0.0, 1.0))


def _texture_stack(maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``(B, 8, H, W)``: linear albedo, roughness, metallic, unit normal."""
    stack = torch.cat([srgb_to_linear(maps["albedo"]), maps["roughness"], maps["metallic"], maps["normal"]], dim=-3)
    return stack if stack.dim() == 4 else stack[None]


def _camera_rays(
    positions: torch.Tensor, size: int, fov_deg: float, plane_half_size: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plane hits ``(B, V, S, S, 3)``, whether each ray meets the plane ``(B, V, S, S)``, unit vectors to the camera."""
    device = positions.device
    forward = F.normalize(-positions, dim=-1)
    world_up = torch.tensor([0.0, 1.0, 0.0], device=device).expand_as(forward)
    right = F.normalize(torch.linalg.cross(forward, world_up), dim=-1)
    up = torch.linalg.cross(right, forward)
    half = math.tan(math.radians(fov_deg) / 2.0)
    steps = ((torch.arange(size, device=device) + 0.5) * 2.0 / size - 1.0) * half
    across, down = steps[None, :, None], steps[:, None, None]
    directions = forward[:, :, None, None, :] + across * right[:, :, None, None, :] - down * up[:, :, None, None, :]
    directions = F.normalize(directions, dim=-1)
    origin = positions[:, :, None, None, :]
    downward = directions[..., 2] < -1e-6
    distance = -origin[..., 2] / torch.where(downward, directions[..., 2], torch.full_like(directions[..., 2], -1.0))
    hit = origin + distance[..., None] * directions
    inside = downward & (hit[..., 0].abs() <= plane_half_size) & (hit[..., 1].abs() <= plane_half_size)
    return hit, inside, -directions


def _plane_sample(image: torch.Tensor, hit: torch.Tensor, plane_half_size: float) -> torch.Tensor:
    """Bilinear samples ``(B, C, V*S, S)`` of a plane-space image at the hits ``(B, V, S, S, 3)`` (row 0 at +y)."""
    batch, views, size = hit.shape[:3]
    plane_uv = hit[..., :2] / plane_half_size
    grid = torch.stack([plane_uv[..., 0], -plane_uv[..., 1]], -1).reshape(batch, views * size, size, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _lookup(texture: torch.Tensor, uv: torch.Tensor, tiling: str) -> torch.Tensor:
    """Bilinear lookups ``(B, 8, V*S, S)`` at texture coordinates ``uv (B, V, S, S, 2)`` (one unit per copy, v up)."""
    batch, views, size = uv.shape[:3]
    height, width = texture.shape[-2:]
    if tiling == "repeat":
        u, v = uv[..., 0] - uv[..., 0].floor(), uv[..., 1] - uv[..., 1].floor()
        padded = F.pad(texture, (1, 1, 1, 1), mode="circular")
    elif tiling == "mirror":
        u, v = (uv[..., 0] % 2.0), (uv[..., 1] % 2.0)
        mirrored_u, mirrored_v = u > 1.0, v > 1.0
        u, v = torch.where(mirrored_u, 2.0 - u, u), torch.where(mirrored_v, 2.0 - v, v)
        padded = F.pad(texture, (1, 1, 1, 1), mode="replicate")
    else:
        raise ValueError(f"tiling must be 'repeat' or 'mirror', got {tiling!r}")
    column = u * width + 1.0
    row = (1.0 - v) * height + 1.0
    grid = torch.stack([column / (width + 2) * 2.0 - 1.0, row / (height + 2) * 2.0 - 1.0], dim=-1)
    grid = grid.reshape(batch, views * size, size, 2)
    sampled = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if tiling == "mirror":
        sign_x = 1.0 - 2.0 * mirrored_u.reshape(batch, 1, views * size, size).to(sampled.dtype)
        sign_y = 1.0 - 2.0 * mirrored_v.reshape(batch, 1, views * size, size).to(sampled.dtype)
        sampled = torch.cat([sampled[:, :5], sampled[:, 5:6] * sign_x, sampled[:, 6:7] * sign_y, sampled[:, 7:]], 1)
    return sampled
