"""RNb-NeuS's simulated lights: what a normal (and albedo) map looks like under three directional lights.

RNb-NeuS (Brument et al., CVPR 2024) has no photographs: it renders each pixel's normal ``n`` and
albedo ``a`` under three lights, ``I_k = a max(0, n . l_k)``, and asks NeuS to reproduce those
intensities with the SDF gradient as normal. Two sets of lights:

- **warm-up**: fixed in each camera's frame, tilted 0, 120 and 240 degrees about the optical
  axis and slanted 30 degrees from it, towards the camera (:func:`warmup_lights`);
- **optimal triplet**: per pixel, three mutually orthogonal lights each at
  ``arccos(1 / sqrt 3)`` = 54.74 degrees from that pixel's own normal (:func:`optimal_lights`).
  Orthogonal lights make the three intensities the normal's coordinates in the lights' basis
  (times the albedo), the best-conditioned photometric-stereo triplet.

The upstream code precomputes the optimal lights for every pixel of every view (a
``[views, 3, H, W, 3]`` float32 tensor, about 0.7 GB for DiLiGenT-MV); here they are computed
for the sampled pixels only, from their normals, at each step.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "OPTIMAL_SLANT",
    "TILTS",
    "WARMUP_SLANT",
    "optimal_lights",
    "orthonormal_frame",
    "shade",
    "warmup_lights",
]

TILTS = (0.0, 2.0 * math.pi / 3.0, 4.0 * math.pi / 3.0)
"""Azimuths of the three lights about their axis."""
WARMUP_SLANT = math.radians(30.0)
"""Angle of the warm-up lights from the camera's optical axis."""
OPTIMAL_SLANT = math.acos(1.0 / math.sqrt(3.0))
"""54.7356 degrees: three lights this far from a normal, evenly spread about it, are mutually orthogonal."""


def orthonormal_frame(axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit tangents ``t, b`` with ``(t, b, axis)`` a right-handed orthonormal frame, for unit ``axis (..., 3)``.

    Duff et al.'s branchless construction (JCGT 2017): continuous everywhere but ``z = -1``'s sign flip.
    """
    x, y, z = axis.unbind(-1)
    sign = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
    a = -1.0 / (sign + z)
    b = x * y * a
    tangent = torch.stack((1.0 + sign * x * x * a, sign * b, -sign * x), dim=-1)
    bitangent = torch.stack((b, sign + y * y * a, -y), dim=-1)
    return tangent, bitangent


def _ring(axis: torch.Tensor, slant: float) -> torch.Tensor:
    """``(3, ..., 3)`` unit directions ``slant`` from ``axis``, at the three :data:`TILTS` about it."""
    tangent, bitangent = orthonormal_frame(axis)
    lights = [
        math.cos(slant) * axis + math.sin(slant) * (math.cos(tilt) * tangent + math.sin(tilt) * bitangent)
        for tilt in TILTS
    ]
    return torch.stack(lights)


def warmup_lights(camera_to_world: torch.Tensor) -> torch.Tensor:
    """``(3, N, 3)`` world directions of the warm-up lights of ``N`` cameras (``(N, 4, 4)``, OpenCV axes).

    In each camera's frame the lights are ``-(sin s cos t, sin s sin t, cos s)``: 30 degrees from
    the axis pointing back at the camera, as RNb-NeuS's ``gen_light_directions`` places them.
    """
    slant = WARMUP_SLANT
    camera = torch.tensor(
        [[-math.sin(slant) * math.cos(t), -math.sin(slant) * math.sin(t), -math.cos(slant)] for t in TILTS],
        dtype=camera_to_world.dtype,
        device=camera_to_world.device,
    )
    return torch.einsum("nij,kj->kni", camera_to_world[:, :3, :3], camera)


def optimal_lights(normals: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """``(3, B, 3)`` per-pixel optimal triplets around unit ``normals (B, 3)``.

    Pixels without a normal (background: length below 0.5) take ``fallback (B, 3)`` as the axis
    instead (e.g. the direction back to the camera); their targets are masked or zero anyway.
    """
    length = normals.norm(dim=-1, keepdim=True)
    axis = torch.where(length > 0.5, normals / length.clamp(min=1e-12), fallback)
    return _ring(axis, OPTIMAL_SLANT)


def shade(normals: torch.Tensor, lights: torch.Tensor, albedo: torch.Tensor | None) -> torch.Tensor:
    """``(L, B, 3)`` intensities ``albedo max(0, n . l)``; grey (albedo 1) when ``albedo`` is None."""
    shading = torch.einsum("bd,lbd->lb", normals, lights).clamp(min=0.0)[..., None]
    return shading.expand(*shading.shape[:-1], 3) if albedo is None else shading * albedo
