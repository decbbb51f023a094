"""NeuroPBR's "dirty" renders: cast shadows on the material, smudges and scratches on the lens.

What NeuroPBR's renderer does (``renderer/src/shading.cu``, ``main.cpp``), and what this module follows:

- A sample is dirty with probability 1 - ``P_CLEAN`` = 0.25; a dirty sample gets shadows with
  probability ``P_SHADOW`` = 0.75 and lens artefacts with probability ``P_SMUDGE`` = 0.6,
  independently (so a tenth of its dirty samples carry neither). One random seed per sample
  drives both, so all three views share one shadow pattern and one lens.
- Shadows live on the plane (its world coordinates), not on the screen: soft Worley blobs
  around jittered feature points (two layers of different cell sizes, the second at 0.6
  strength, a noise-warped copy blended in, an FBM modulation of about +-12%), and the light
  there is multiplied by a darkness of 0.2 to 0.4 (NeuroPBR: ``0.2 + 0.2 hardness``, hardness
  from the environment's zenith-to-horizon contrast; here uniform in that range). NeuroPBR
  applies the factor to the albedo (diffuse and, through F0, metal) and 70% of it to the
  prefiltered specular; here it multiplies all incoming light (``render_views(light_factor=...)``).
- The lens lives on the screen, blended over the final linear colour: an FBM smudge, domain
  warped, ``smoothstep(0.45, 0.85, fbm) x 0.15`` (so alpha <= 0.15) in a warm grey (0.8, 0.75,
  0.7); and up to three thin scratches, each a bright (0.95) line broken up by a low-frequency
  mask, summed at 0.3 weight each; colour and alpha are the scratch's over the smudge's.

Everything is batched ``(B, 1, S, S)``, deterministic under a ``torch.Generator``; no code of
NeuroPBR's is reused, only these parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .noise import pixel_grid, segment_distance, smoothstep, spectral_noise

__all__ = [
    "P_CLEAN",
    "P_SHADOW",
    "P_SMUDGE",
    "SCRATCH_COLOR",
    "SMUDGE_COLOR",
    "apply_lens",
    "lens_overlay",
    "lens_scratches",
    "lens_smudge",
    "shadow_mask",
]

P_CLEAN, P_SHADOW, P_SMUDGE = 0.75, 0.75, 0.60
"""NeuroPBR's probabilities: a sample is clean, a dirty sample has shadows, a dirty sample has lens artefacts."""
SMUDGE_COLOR = (0.8, 0.75, 0.7)
SCRATCH_COLOR = (0.95, 0.95, 0.95)
SMUDGE_ALPHA = 0.15
DARKNESS = (0.2, 0.4)


def shadow_mask(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Light multipliers ``(B, 1, S, S)`` over the plane: 1 in the light, 0.2 to 0.4 (per sample) in full shadow.

    Cells: jittered grids of 3 to 5 feature points per side over the plane's 2.5-unit extent
    (:data:`foveate.pbr.shading.PLANE_HALF_SIZE`), blobs of about NeuroPBR's 0.5-unit size, each
    ``1 - smoothstep(0.25, 0.45, F1)`` in cell units.
    """
    first, first_cells = _grid_points(batch, generator)
    second, second_cells = _grid_points(batch, generator)
    warp = 0.04 * torch.stack([spectral_noise(batch, size, generator, beta=3.0)[:, 0] for _ in range(2)], -1)
    blobs = torch.maximum(_blobs(first, first_cells, size), 0.6 * _blobs(second, second_cells, size))
    blobs = blobs + 0.35 * (_blobs(first, first_cells, size, warp) - blobs)
    detail = spectral_noise(batch, size, generator, beta=2.0, lowest=8.0)
    mask = (blobs * (1.0 + 0.12 * detail)).clamp(0.0, 1.0)
    darkness = DARKNESS[0] + (DARKNESS[1] - DARKNESS[0]) * torch.rand(batch, 1, 1, 1, generator=generator)
    return 1.0 - (1.0 - darkness) * mask


def _grid_points(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Jittered grid points ``(B, 25, 2)``, 3 to 5 cells per side (unused slots far away), and the counts ``(B, 1)``."""
    cells = torch.randint(3, 6, (batch, 1), generator=generator)
    index = torch.arange(25)
    jitter = 0.8 * (torch.rand(batch, 25, 2, generator=generator) - 0.5)
    points = torch.stack([index % cells + 0.5 + jitter[..., 0], index // cells + 0.5 + jitter[..., 1]], -1)
    points = points / cells[..., None]
    return torch.where((index < cells * cells)[..., None], points, torch.full_like(points, 1e3)), cells


def _blobs(points: torch.Tensor, cells: torch.Tensor, size: int, warp: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 1, S, S)``: soft discs around ``points``, at texel positions displaced by ``warp`` ``(B, S, S, 2)``."""
    u, v = pixel_grid(size)
    position = torch.stack([u, v], -1)[None] + (warp if warp is not None else 0.0)
    nearest = (position[:, None] - points[:, :, None, None, :]).norm(dim=-1).amin(dim=1, keepdim=True)
    return 1.0 - smoothstep(0.25, 0.45, nearest * cells[..., None, None])


def lens_smudge(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Smudge alpha ``(B, 1, S, S)`` in [0, 0.15]: ``smoothstep(0.45, 0.85, fbm) x 0.15``, the fbm domain-warped."""
    fbm = spectral_noise(batch, size, generator, beta=2.5, lowest=2.0)
    warp = spectral_noise(2 * batch, size, generator, beta=3.5).view(batch, 2, size, size).permute(0, 2, 3, 1)
    u, v = pixel_grid(size)
    grid = torch.stack([u, v], -1)[None] * 2.0 - 1.0 + 0.15 * warp
    warped = F.grid_sample(fbm, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return SMUDGE_ALPHA * smoothstep(0.45, 0.85, 0.5 + 0.2 * warped)


def lens_scratches(batch: int, size: int, generator: torch.Generator, count: int = 3) -> torch.Tensor:
    """Scratch alpha ``(B, 1, S, S)`` in [0, 1]: ``count`` long hairlines across the image, broken up, 0.3 each."""
    centre = torch.rand(batch, count, 2, generator=generator)
    angle = torch.rand(batch, count, generator=generator) * math.pi
    half = (0.3 + 0.5 * torch.rand(batch, count, generator=generator))[..., None]
    direction = torch.stack([angle.cos(), angle.sin()], -1)
    distance = segment_distance(centre - half * direction, centre + half * direction, size, wrap=False)
    width = 0.6 / size
    lines = (1.0 - distance / (3.0 * width)).clamp(0.0, 1.0) ** 4
    visible = smoothstep(0.3, 0.8, 0.5 + 0.35 * spectral_noise(batch * count, size, generator, beta=3.0))
    lines = lines * visible.view(batch, count, size, size)
    return (0.3 * lines.sum(dim=1, keepdim=True)).clamp(0.0, 1.0)


def lens_overlay(smudge: torch.Tensor, scratches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour ``(B, 3, S, S)`` and alpha ``(B, 1, S, S)`` of the lens: scratches over the smudge (NeuroPBR's order)."""
    smudge_color = torch.tensor(SMUDGE_COLOR, device=smudge.device).view(1, 3, 1, 1)
    scratch_color = torch.tensor(SCRATCH_COLOR, device=smudge.device).view(1, 3, 1, 1)
    color = smudge_color + (scratch_color - smudge_color) * scratches
    return color, torch.maximum(smudge, scratches)


def apply_lens(image: torch.Tensor, color: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``image (..., 3, S, S) x (1 - alpha) + color x alpha``: the lens over exposed linear radiance."""
    return image * (1.0 - alpha) + color * alpha
