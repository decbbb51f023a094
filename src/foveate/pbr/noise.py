"""Procedural noise in PyTorch for materials and dirt: spectral (FBM-like) noise, Worley cells, line segments.

Everything works on batches ``(B, 1, S, S)`` over the unit square (texel centres at ``(j + 0.5) /
S``), is deterministic under a ``torch.Generator`` and, where it says so, tiles: spectral noise is
periodic by construction (synthesised in the Fourier domain) and the cell and segment distances
wrap around the square.
"""

from __future__ import annotations

import torch

__all__ = ["pixel_grid", "segment_distance", "smoothstep", "spectral_noise", "worley"]


def pixel_grid(size: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, v)`` of texel centres, each ``(S, S)`` in (0, 1): u grows to the right, v downwards (row index)."""
    steps = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    return steps.expand(size, size), steps[:, None].expand(size, size)


def smoothstep(edge0: float | torch.Tensor, edge1: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Hermite step from 0 at ``edge0`` to 1 at ``edge1``."""
    t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def spectral_noise(
    batch: int,
    size: int,
    generator: torch.Generator,
    beta: float = 2.0,
    lowest: float = 1.0,
    highest: float | None = None,
    stretch: float = 1.0,
) -> torch.Tensor:
    """Tileable fractal noise ``(B, 1, S, S)`` with zero mean and unit variance per sample.

    White noise filtered to a power spectrum ``|f|^-beta`` between ``lowest`` and ``highest``
    cycles per tile: beta 2 to 3 looks like FBM of value noise (stone, clouds), a narrow band
    like a single octave. ``stretch > 1`` multiplies the vertical frequencies before filtering,
    so features become ``stretch`` times longer along v (vertical) than along u (brushing, grain).
    """
    white = torch.randn(batch, 1, size, size, generator=generator)
    spectrum = torch.fft.rfft2(white)
    fy = torch.fft.fftfreq(size) * size
    fx = torch.fft.rfftfreq(size) * size
    radius = (fx[None, :] ** 2 + (fy[:, None] * stretch) ** 2).sqrt()
    keep = (radius >= lowest) & (radius <= (highest if highest is not None else size))
    gain = torch.where(keep, radius.clamp_min(1e-6) ** (-beta / 2.0), torch.zeros(()))
    noise = torch.fft.irfft2(spectrum * gain, s=(size, size))
    noise = noise - noise.mean(dim=(-2, -1), keepdim=True)
    return noise / noise.std(dim=(-2, -1), keepdim=True).clamp_min(1e-8)


def worley(points: torch.Tensor, size: int, wrap: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distances from each texel to the nearest and second-nearest of ``points`` ``(B, N, 2)`` (u, v in [0, 1)).

    Returns ``F1``, ``F2`` ``(B, 1, S, S)`` in texture units and the index of the nearest point
    ``(B, 1, S, S)``; with ``wrap`` distances are measured on the torus, so the cells tile.
    """
    u, v = pixel_grid(size, points.device)
    du = u[None, None] - points[..., 0, None, None]
    dv = v[None, None] - points[..., 1, None, None]
    if wrap:
        du, dv = du - du.round(), dv - dv.round()
    distance = (du * du + dv * dv).sqrt()
    nearest = distance.topk(2, dim=1, largest=False)
    return nearest.values[:, :1], nearest.values[:, 1:2], nearest.indices[:, :1]


def segment_distance(starts: torch.Tensor, ends: torch.Tensor, size: int, wrap: bool = True) -> torch.Tensor:
    """``(B, N, S, S)`` distance from each texel to each segment ``starts -> ends`` (``(B, N, 2)``, texture units).

    With ``wrap`` the texel is moved to the copy of the torus nearest each segment's midpoint,
    so segments shorter than half the tile tile correctly.
    """
    u, v = pixel_grid(size, starts.device)
    texel = torch.stack([u, v], -1)[None, None]
    start, end = starts[..., None, None, :], ends[..., None, None, :]
    if wrap:
        middle = 0.5 * (start + end)
        texel = texel - (texel - middle).round()
    along = end - start
    t = ((texel - start) * along).sum(-1) / (along * along).sum(-1).clamp_min(1e-12)
    closest = start + t.clamp(0.0, 1.0)[..., None] * along
    return (texel - closest).norm(dim=-1)
