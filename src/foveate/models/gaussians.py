"""Gaussian splatting in pure PyTorch: projection, spherical harmonics and tiled compositing.

One functional entry point in gsplat's shape, :func:`rasterize`, that runs on any device and is
differentiable through autograd (gsplat has no CPU path). Its steps follow 3DGS and gsplat:

1. Each splat's covariance ``R S S^T R^T`` (``R`` from a quaternion, ``S`` the scales) is moved into
   each camera and projected with the EWA Jacobian of the pinhole at the splat's centre,
   ``cov2d = J W cov W^T J^T + eps2d I`` (the low-pass term, 0.3 pixels^2 by default).
2. A splat covers the pixels within three standard deviations (a square of ``radius`` pixels
   around its centre); it is culled in front of ``near_plane``, beyond ``far_plane`` or off screen.
3. Splats are sorted front to back in every 16 x 16 tile they touch and composited:
   ``alpha = min(0.99, opacity * exp(-d^T conic d / 2))``, contributions under 1/255 skipped, and a
   pixel stops once its transmittance would fall to 1e-4.

:func:`rasterize_dense` evaluates every splat at every pixel with the same rules and is the
reference the tiled path is tested against; tiles only change how much work is done.

Examples:
    >>> import torch
    >>> means = torch.tensor([[0.0, 0.0, 3.0]])
    >>> quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> scales = torch.full((1, 3), 0.2)
    >>> viewmats, Ks = torch.eye(4)[None], torch.tensor([[[32.0, 0, 16], [0, 32.0, 16], [0, 0, 1]]])
    >>> rgb, alpha, meta = rasterize(means, quats, scales, torch.ones(1), torch.ones(1, 3), viewmats, Ks, 32, 32)
    >>> rgb.shape, alpha.shape
    (torch.Size([1, 32, 32, 3]), torch.Size([1, 32, 32, 1]))
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "ALPHA_MAX",
    "ALPHA_MIN",
    "TRANSMITTANCE_MIN",
    "num_sh_bases",
    "project",
    "quat_scale_to_covar",
    "rasterize",
    "rasterize_dense",
    "sh_basis",
    "spherical_harmonics",
]

ALPHA_MIN = 1.0 / 255.0
"""Contributions below this are skipped, as in 3DGS."""
ALPHA_MAX = 0.99
"""A single splat never makes a pixel fully opaque (keeps ``log(1 - alpha)`` finite)."""
TRANSMITTANCE_MIN = 1e-4
"""A pixel stops at the splat that would bring its transmittance to this or below (excluded)."""
SIGMAS = 3.0
"""A splat's footprint: this many standard deviations of its 2D Gaussian along the longest axis."""

_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Coefficients per colour channel for spherical harmonics up to ``degree`` (0-3)."""
    if degree not in (0, 1, 2, 3):
        raise ValueError(f"spherical harmonics degree must be 0, 1, 2 or 3, got {degree!r}")
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """The real spherical-harmonic basis of 3DGS at unit directions ``(..., 3)``: ``(..., (degree + 1)^2)``."""
    num_sh_bases(degree)
    x, y, z = dirs.unbind(-1)
    bases = [torch.full_like(x, _SH_C0)]
    if degree >= 1:
        bases += [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        bases += [
            _SH_C2[0] * x * y,
            _SH_C2[1] * y * z,
            _SH_C2[2] * (2 * zz - xx - yy),
            _SH_C2[3] * x * z,
            _SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        bases += [
            _SH_C3[0] * y * (3 * xx - yy),
            _SH_C3[1] * x * y * z,
            _SH_C3[2] * y * (4 * zz - xx - yy),
            _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _SH_C3[4] * x * (4 * zz - xx - yy),
            _SH_C3[5] * z * (xx - yy),
            _SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(bases, dim=-1)


def spherical_harmonics(degree: int, dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Colours ``(..., 3)`` of SH ``coeffs`` ``(..., K, 3)`` seen along ``dirs`` ``(..., 3)`` (normalised here).

    Uses the first ``(degree + 1)^2`` of the ``K`` coefficients; adds 0.5 and clamps at 0, as 3DGS does.
    """
    bases = num_sh_bases(degree)
    if coeffs.shape[-2] < bases:
        raise ValueError(f"degree {degree} needs {bases} SH coefficients per channel, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, F.normalize(dirs, dim=-1))
    return ((basis[..., None] * coeffs[..., :bases, :]).sum(-2) + 0.5).clamp_min(0.0)


def quat_scale_to_covar(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World covariances ``R diag(scales^2) R^T`` ``(N, 3, 3)`` from quaternions ``(N, 4)`` (wxyz, any norm)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rotation = torch.stack(
        (
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ),
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)
    scaled = rotation * scales[..., None, :]
    return scaled @ scaled.transpose(-1, -2)


def project(
    means: torch.Tensor,
    covars: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> dict[str, torch.Tensor]:
    """Project ``N`` splats into ``C`` pinhole cameras (OpenCV convention, world-to-camera ``viewmats``).

    Returns ``means2d`` ``(C, N, 2)`` in pixels, ``depths`` ``(C, N)``, ``conics`` ``(C, N, 3)`` (the
    inverse 2D covariance as ``a, b, c`` of ``[[a, b], [b, c]]``), ``radii`` ``(C, N)`` (int, 0 when
    culled) and ``covars2d`` ``(C, N, 2, 2)``.
    """
    rotation, translation = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]
    points = (rotation @ means[None, :, :, None]).squeeze(-1) + translation  # (C, N, 3)
    x, y, z = points.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    safe_z = torch.where(z > near_plane, z, torch.ones_like(z))
    # The Jacobian is taken at most 30% of the image beyond its edges (3DGS's guard against huge footprints).
    tx = safe_z * torch.clamp(x / safe_z, -(cx + 0.3 * width) / fx, (width - cx + 0.3 * width) / fx)
    ty = safe_z * torch.clamp(y / safe_z, -(cy + 0.3 * height) / fy, (height - cy + 0.3 * height) / fy)
    zeros = torch.zeros_like(z)
    jacobian = torch.stack(
        (fx / safe_z, zeros, -fx * tx / safe_z**2, zeros, fy / safe_z, -fy * ty / safe_z**2), dim=-1
    ).reshape(*z.shape, 2, 3)
    camera_covars = rotation @ covars[None] @ rotation.transpose(-1, -2)
    covars2d = jacobian @ camera_covars @ jacobian.transpose(-1, -2)
    covars2d = covars2d + eps2d * torch.eye(2, dtype=covars2d.dtype, device=covars2d.device)
    a, b, c = covars2d[..., 0, 0], covars2d[..., 0, 1], covars2d[..., 1, 1]
    det = a * c - b * b
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack((c / safe_det, -b / safe_det, a / safe_det), dim=-1)
    means2d = torch.stack((fx * x / safe_z + cx, fy * y / safe_z + cy), dim=-1)
    with torch.no_grad():
        middle = 0.5 * (a + c)
        largest = middle + (middle * middle - det).clamp_min(0.1).sqrt()
        radii = torch.ceil(SIGMAS * largest.clamp_min(0).sqrt())
        on_screen = (
            (means2d[..., 0] + radii > 0)
            & (means2d[..., 0] - radii < width)
            & (means2d[..., 1] + radii > 0)
            & (means2d[..., 1] - radii < height)
        )
        visible = (z > near_plane) & (z < far_plane) & (det > 0) & on_screen
        radii = torch.where(visible, radii, torch.zeros_like(radii)).to(torch.int32)
    return {"means2d": means2d, "depths": z, "conics": conics, "radii": radii, "covars2d": covars2d}


def _colors(means: torch.Tensor, colors: torch.Tensor, viewmats: torch.Tensor, sh_degree: int | None) -> torch.Tensor:
    """Per-camera colours ``(C, N, D)``: given directly, or evaluated from SH at each camera's view directions."""
    if sh_degree is None:
        if colors.dim() != 2:
            raise ValueError(f"colors must be (N, D) without sh_degree, got shape {tuple(colors.shape)}")
        return colors[None].expand(len(viewmats), -1, -1)
    if colors.dim() != 3 or colors.shape[-1] != 3:
        raise ValueError(f"SH colors must be (N, K, 3) with sh_degree, got shape {tuple(colors.shape)}")
    rotation, translation = viewmats[:, :3, :3], viewmats[:, :3, 3]
    centres = -(rotation.transpose(-1, -2) @ translation[..., None]).squeeze(-1)  # (C, 3)
    dirs = means[None] - centres[:, None]
    return spherical_harmonics(sh_degree, dirs, colors[None].expand(len(viewmats), -1, -1, -1))


def _composite(
    pixels: torch.Tensor,
    index: torch.Tensor,
    means2d: torch.Tensor,
    conics: torch.Tensor,
    radii: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite, front to back, the splats ``index`` ``(T, K)`` (-1: none) over the pixels ``(T, P, 2)``.

    Splat tensors are flat over (camera, splat); ``index`` lists each row's splats nearest first.
    Returns colours ``(T, P, D)`` and alpha ``(T, P)``.
    """
    present = index >= 0
    safe = index.clamp_min(0)
    delta = pixels[:, :, None, :] - means2d[safe][:, None]  # (T, P, K, 2)
    conic = conics[safe][:, None]
    power = 0.5 * (conic[..., 0] * delta[..., 0] ** 2 + conic[..., 2] * delta[..., 1] ** 2)
    power = power + conic[..., 1] * delta[..., 0] * delta[..., 1]
    alpha = (opacities[safe][:, None] * torch.exp(-power)).clamp_max(ALPHA_MAX)
    radius = radii[safe][:, None].to(delta.dtype)
    inside = (delta.abs() <= radius[..., None]).all(-1)
    keep = present[:, None] & inside & (power >= 0) & (alpha >= ALPHA_MIN)
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    log_transmittance = torch.cumsum(torch.log1p(-alpha), dim=-1)
    after = torch.exp(log_transmittance)
    before = torch.exp(log_transmittance - torch.log1p(-alpha))
    weights = alpha * before * (after > TRANSMITTANCE_MIN)
    color = (weights[..., None] * colors[safe][:, None]).sum(-2)
    return color, weights.sum(-1)


def _check_inputs(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
) -> None:
    count = len(means)
    expected = {"means": (means, 3), "quats": (quats, 4), "scales": (scales, 3)}
    for name, (tensor, size) in expected.items():
        if tensor.dim() != 2 or tensor.shape != (count, size):
            raise ValueError(f"{name} must be ({count}, {size}), got shape {tuple(tensor.shape)}")
    if opacities.shape != (count,):
        raise ValueError(f"opacities must be ({count},), got shape {tuple(opacities.shape)}")
    if len(colors) != count:
        raise ValueError(f"colors must have {count} rows (one per splat), got {len(colors)}")
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats must be (C, 4, 4), got shape {tuple(viewmats.shape)}")
    if Ks.shape != (len(viewmats), 3, 3):
        raise ValueError(f"Ks must be ({len(viewmats)}, 3, 3), got shape {tuple(Ks.shape)}")
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width} x {height}")


def _prepare(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    sh_degree: int | None,
    eps2d: float,
    near_plane: float,
    far_plane: float,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    meta = project(means, quat_scale_to_covar(quats, scales), viewmats, Ks, width, height, eps2d, near_plane, far_plane)
    return meta, _colors(means, colors, viewmats, sh_degree)


def _finish(
    color: torch.Tensor, alpha: torch.Tensor, backgrounds: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if backgrounds is not None:
        color = color + (1 - alpha[..., None]) * backgrounds.reshape(-1, *([1] * (color.dim() - 2)), color.shape[-1])
    return color, alpha[..., None]


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: torch.Tensor | None = None,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    tile_size: int = 16,
    max_elements: int = 1 << 24,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render ``N`` splats into ``C`` cameras: ``(rgb (C, H, W, D), alpha (C, H, W, 1), meta)``.

    Args:
        means: ``(N, 3)`` centres. quats: ``(N, 4)`` rotations, wxyz, any norm. scales: ``(N, 3)``
            standard deviations (positive; exponentiate log-scales first). opacities: ``(N,)`` in [0, 1].
        colors: ``(N, D)`` colours, or ``(N, K, 3)`` SH coefficients with ``sh_degree``.
        viewmats: ``(C, 4, 4)`` world-to-camera (OpenCV: +z forward, +y down). Ks: ``(C, 3, 3)``.
        backgrounds: ``(C, D)`` colours behind the splats.
        tile_size: pixels per tile side; each tile composites only the splats whose footprint touches it.
        max_elements: a bound on pixels x splats evaluated at once (memory), not on the result.

    ``meta`` holds :func:`project`'s outputs (``means2d`` keeps its gradient for densification),
    ``tile_size``, ``tiles`` (per camera) and ``intersections`` (splat-tile pairs).
    """
    meta, colors = _prepare(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, eps2d, near_plane, far_plane
    )
    if meta["means2d"].requires_grad:
        meta["means2d"].retain_grad()
    cameras, count = meta["depths"].shape
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    device = means.device

    with torch.no_grad():
        radii = meta["radii"].reshape(-1)
        centre = meta["means2d"].detach().reshape(-1, 2)
        low = torch.floor((centre - radii[:, None]) / tile_size).clamp_min(0)
        high = torch.floor((centre + radii[:, None]) / tile_size)
        high = torch.minimum(high, torch.tensor([tiles_x - 1, tiles_y - 1], device=device, dtype=high.dtype))
        span = (high - low + 1).clamp_min(0).long()
        touched = torch.where(radii > 0, span[:, 0] * span[:, 1], torch.zeros_like(radii, dtype=torch.long))
        splat = torch.repeat_interleave(torch.arange(len(radii), device=device), touched)
        first = torch.cumsum(touched, 0) - touched
        local = torch.arange(len(splat), device=device) - first[splat]
        tile_x = low[splat, 0].long() + local % span[splat, 0]
        tile_y = low[splat, 1].long() + local // span[splat, 0]
        camera = splat // count
        tile = (camera * tiles_y + tile_y) * tiles_x + tile_x
        by_depth = torch.argsort(meta["depths"].detach().reshape(-1)[splat], stable=True)
        order = by_depth[torch.argsort(tile[by_depth], stable=True)]
        tile, splat = tile[order], splat[order]
        total_tiles = cameras * tiles_y * tiles_x
        per_tile = torch.bincount(tile, minlength=total_tiles)
        width_k = max(int(per_tile.max()) if len(tile) else 0, 1)
        slot = torch.arange(len(tile), device=device) - (torch.cumsum(per_tile, 0) - per_tile)[tile]
        table = torch.full((total_tiles, width_k), -1, dtype=torch.long, device=device)
        table[tile, slot] = splat
        ys, xs = torch.meshgrid(
            torch.arange(tile_size, device=device), torch.arange(tile_size, device=device), indexing="ij"
        )
        offsets = torch.stack((xs, ys), -1).reshape(-1, 2)
        tile_ids = torch.arange(total_tiles, device=device)
        origin = torch.stack(((tile_ids % tiles_x) * tile_size, ((tile_ids // tiles_x) % tiles_y) * tile_size), -1)
        pixels = (origin[:, None, :] + offsets[None]).to(means.dtype) + 0.5

    flat = {
        "means2d": meta["means2d"].reshape(-1, 2),
        "conics": meta["conics"].reshape(-1, 3),
        "radii": meta["radii"].reshape(-1),
        "opacities": opacities[None].expand(cameras, -1).reshape(-1),
        "colors": colors.reshape(cameras * count, -1),
    }
    chunk = max(1, max_elements // (tile_size * tile_size * width_k))
    colours, alphas = [], []
    for start in range(0, total_tiles, chunk):
        rows = slice(start, start + chunk)
        color, alpha = _composite(
            pixels[rows],
            table[rows],
            flat["means2d"],
            flat["conics"],
            flat["radii"],
            flat["opacities"],
            flat["colors"],
        )
        colours.append(color)
        alphas.append(alpha)
    depth = colors.shape[-1]
    color = torch.cat(colours).reshape(cameras, tiles_y, tiles_x, tile_size, tile_size, depth)
    color = color.permute(0, 1, 3, 2, 4, 5).reshape(cameras, tiles_y * tile_size, tiles_x * tile_size, depth)
    alpha = torch.cat(alphas).reshape(cameras, tiles_y, tiles_x, tile_size, tile_size)
    alpha = alpha.permute(0, 1, 3, 2, 4).reshape(cameras, tiles_y * tile_size, tiles_x * tile_size)
    meta.update(tile_size=tile_size, tiles=(tiles_y, tiles_x), intersections=len(tile))
    rgb, alpha = _finish(color[:, :height, :width], alpha[:, :height, :width], backgrounds)
    return rgb, alpha, meta


def rasterize_dense(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: torch.Tensor | None = None,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """:func:`rasterize` by brute force: every splat at every pixel in one global depth order (tests, tiny scenes)."""
    meta, colors = _prepare(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, eps2d, near_plane, far_plane
    )
    cameras, count = meta["depths"].shape
    offset = torch.arange(cameras, device=means.device)[:, None] * count
    order = torch.argsort(meta["depths"].detach(), dim=1, stable=True)
    index = torch.where(meta["radii"].gather(1, order) > 0, order + offset, torch.full_like(order, -1))
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack((xs, ys), -1).reshape(1, -1, 2).to(device=means.device, dtype=means.dtype) + 0.5
    color, alpha = _composite(
        pixels.expand(cameras, -1, -1),
        index,
        meta["means2d"].reshape(-1, 2),
        meta["conics"].reshape(-1, 3),
        meta["radii"].reshape(-1),
        opacities[None].expand(cameras, -1).reshape(-1),
        colors.reshape(cameras * count, -1),
    )
    rgb, alpha = _finish(color.reshape(cameras, height, width, -1), alpha.reshape(cameras, height, width), backgrounds)
    return rgb, alpha, meta
