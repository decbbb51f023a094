"""Gaussian splatting in pure PyTorch: projection, spherical harmonics and tiled compositing.

One functional entry point in gsplat's shape, :func:`rasterize`, that runs on any device and is
differentiable through autograd (gsplat has no CPU path). Its steps follow 3DGS and gsplat:

1. Each splat's covariance ``R S S^T R^T`` (``R`` from a quaternion, ``S`` the scales) is moved into
   each camera and projected with the EWA Jacobian of the pinhole at the splat's centre,
   ``cov2d = J W cov W^T J^T + eps2d I`` (the low-pass term, 0.3 pixels^2 by default).
2. A splat is culled in front of ``near_plane``, beyond ``far_plane`` or when the square of
   three standard deviations around it (``radius``) is off screen. It covers the pixels of a box
   as far as it can reach alpha 1/255, at most three standard deviations along x and along y
   (:func:`footprint_extents`; tighter than the square, and exact for the 1/255 rule).
3. Each pixel composites its splats front to back:
   ``alpha = min(0.99, opacity * exp(-d^T conic d / 2))``, contributions under 1/255 skipped, and a
   pixel stops once its transmittance would fall to 1e-4.

gsplat bins splats into 16 x 16 tiles for its CUDA blocks; here the unit of work is the
(pixel, splat) pair inside a splat's square, packed, which on a CPU costs what the splats cover.
:func:`rasterize_dense` evaluates every splat at every pixel with the same rules and is the
reference the packed path is tested against.

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

from typing import Any

import torch
import torch.nn.functional as F

from .volume_rendering import exclusive_transmittance

__all__ = [
    "ALPHA_MAX",
    "ALPHA_MIN",
    "TRANSMITTANCE_MIN",
    "footprint_extents",
    "gsplat_available",
    "num_sh_bases",
    "project",
    "quat_scale_to_covar",
    "quat_to_rotmat",
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


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` from quaternions ``(..., 4)``, w first, normalised here."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
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


def quat_scale_to_covar(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World covariances ``R diag(scales^2) R^T`` ``(N, 3, 3)`` from quaternions ``(N, 4)`` (wxyz, any norm)."""
    scaled = quat_to_rotmat(quats) * scales[..., None, :]
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


def _composite_dense(
    pixels: torch.Tensor,
    index: torch.Tensor,
    means2d: torch.Tensor,
    conics: torch.Tensor,
    extents: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite, front to back, the splats ``index`` ``(C, N)`` (-1: none) over every pixel ``(C, P, 2)``.

    Splat tensors are flat over (camera, splat); ``index`` lists each camera's splats nearest first.
    Returns colours ``(C, P, D)`` and alpha ``(C, P)``: a plain product over all ``P x N`` pairs.
    """
    present = index >= 0
    safe = index.clamp_min(0)
    delta = pixels[:, :, None, :] - means2d[safe][:, None]  # (C, P, N, 2)
    alpha, counts = _pair_alpha(delta, conics[safe][:, None], extents[safe][:, None], opacities[safe][:, None])
    alpha = torch.where(present[:, None] & counts, alpha, torch.zeros_like(alpha))
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
    meta["extents"] = footprint_extents(meta["covars2d"].detach(), opacities.detach(), meta["radii"])
    return meta, _colors(means, colors, viewmats, sh_degree)


def _finish(
    color: torch.Tensor, alpha: torch.Tensor, backgrounds: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if backgrounds is not None:
        color = color + (1 - alpha[..., None]) * backgrounds.reshape(-1, *([1] * (color.dim() - 2)), color.shape[-1])
    return color, alpha[..., None]


@torch.no_grad()
def footprint_extents(covars2d: torch.Tensor, opacities: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """``(C, N, 2)`` half-widths in pixels of the box outside which a splat adds nothing to a pixel.

    A splat reaches alpha 1/255 only where ``opacity * exp(-power) >= 1/255``, i.e. within
    ``sqrt(2 ln(255 opacity))`` standard deviations; the footprint is that reach, capped at three
    standard deviations, along x and y: ``reach * sqrt(cov_xx)``, ``reach * sqrt(cov_yy)``. Culled
    splats (radius 0) and splats fainter than 1/255 have none.
    """
    reach = (2 * torch.log((opacities / ALPHA_MIN).clamp_min(1.0))).sqrt().clamp_max(SIGMAS)
    deviations = torch.diagonal(covars2d, dim1=-2, dim2=-1).clamp_min(0).sqrt()
    extents = reach[None, :, None].to(deviations.dtype) * deviations
    return torch.where(radii[..., None] > 0, extents, torch.zeros_like(extents))


def _footprint_pairs(meta: dict[str, torch.Tensor], width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (pixel, splat) pair within each splat's footprint box, flat over cameras: ``(pixels, splats)``.

    Pixel ids are ``(camera * height + y) * width + x``; splat ids ``camera * N + splat``. The boxes
    are widened by a pixel so that :func:`_pair_alpha`'s exact test, shared with the dense path, decides.
    """
    count = meta["depths"].shape[1]
    device = meta["depths"].device
    extents = meta["extents"].reshape(-1, 2).to(torch.float64)
    centre = meta["means2d"].detach().reshape(-1, 2).to(torch.float64)
    size = torch.tensor([width, height], device=device)
    low = torch.floor(centre - extents - 0.5).long().clamp_min(0)
    high = torch.minimum(torch.ceil(centre + extents - 0.5).long(), size - 1)
    span = (high - low + 1).clamp_min(0)
    pairs = torch.where((extents > 0).all(-1), span[:, 0] * span[:, 1], torch.zeros_like(span[:, 0]))
    splat = torch.repeat_interleave(torch.arange(len(extents), device=device), pairs)
    local = torch.arange(len(splat), device=device) - (torch.cumsum(pairs, 0) - pairs)[splat]
    x = low[splat, 0] + local % span[splat, 0]
    y = low[splat, 1] + local // span[splat, 0]
    pixel = (torch.div(splat, count, rounding_mode="floor") * height + y) * width + x
    return pixel, splat


def _pair_alpha(
    delta: torch.Tensor, conics: torch.Tensor, extents: torch.Tensor, opacities: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pair's alpha and whether it counts (inside the footprint box, a real Gaussian, at least 1/255)."""
    power = 0.5 * (conics[..., 0] * delta[..., 0] ** 2 + conics[..., 2] * delta[..., 1] ** 2)
    power = power + conics[..., 1] * delta[..., 0] * delta[..., 1]
    alpha = (opacities * torch.exp(-power)).clamp_max(ALPHA_MAX)
    inside = (delta.abs() <= extents.to(delta.dtype)).all(-1)
    return alpha, inside & (power >= 0) & (alpha >= ALPHA_MIN)


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
    backend: str = "torch",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Render ``N`` splats into ``C`` cameras: ``(rgb (C, H, W, D), alpha (C, H, W, 1), meta)``.

    Args:
        means: ``(N, 3)`` centres. quats: ``(N, 4)`` rotations, wxyz, any norm. scales: ``(N, 3)``
            standard deviations (positive; exponentiate log-scales first). opacities: ``(N,)`` in [0, 1].
        colors: ``(N, D)`` colours, or ``(N, K, 3)`` SH coefficients with ``sh_degree``.
        viewmats: ``(C, 4, 4)`` world-to-camera (OpenCV: +z forward, +y down). Ks: ``(C, 3, 3)``.
        backgrounds: ``(C, D)`` colours behind the splats.
        backend: ``torch`` (this module, any device) or ``gsplat`` (gsplat's CUDA kernels; tensors on
            CUDA, ``pip install gsplat``). Both return the same ``meta`` keys, ``radii`` as ``(C, N)``.

    The work is packed: only the (pixel, splat) pairs inside each splat's square that reach 1/255
    are evaluated, sorted by pixel and depth, and composited with a float64 segmented prefix sum
    (as :func:`foveate.models.volume_rendering.exclusive_transmittance` does for rays). Memory and
    time follow the pixels the splats cover, not the image area times the splats per tile.

    ``meta`` holds :func:`project`'s outputs (``means2d`` keeps its gradient for densification),
    ``pairs`` (the number of (pixel, splat) contributions composited), ``width`` and ``height``.
    """
    if backend == "gsplat":
        return _rasterize_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            sh_degree=sh_degree, backgrounds=backgrounds, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
        )  # fmt: skip
    if backend != "torch":
        raise ValueError(f"backend must be 'torch' or 'gsplat', got {backend!r}")
    meta, colors = _prepare(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, eps2d, near_plane, far_plane
    )
    if meta["means2d"].requires_grad:
        meta["means2d"].retain_grad()
    cameras, count = meta["depths"].shape
    with torch.no_grad():
        pixel, splat = _footprint_pairs(meta, width, height)
    # One gather of every per-splat quantity a pair needs: centre (2), conic (3), opacity (1).
    features = torch.cat(
        (meta["means2d"], meta["conics"], opacities[None, :, None].expand(cameras, -1, 1).to(meta["conics"].dtype)),
        dim=-1,
    ).reshape(cameras * count, 6)
    gathered = features.index_select(0, splat)
    xs = (pixel % width).to(features.dtype) + 0.5
    ys = (torch.div(pixel, width, rounding_mode="floor") % height).to(features.dtype) + 0.5
    delta = torch.stack((xs, ys), -1) - gathered[:, :2]
    extents = meta["extents"].reshape(-1, 2).index_select(0, splat)
    alpha, counts = _pair_alpha(delta, gathered[:, 2:5], extents, gathered[:, 5])
    with torch.no_grad():
        kept = torch.nonzero(counts).squeeze(1)
        rank = torch.empty(cameras * count, dtype=torch.long, device=means.device)
        rank[torch.argsort(meta["depths"].detach().reshape(-1), stable=True)] = torch.arange(
            cameras * count, device=means.device
        )
        kept = kept[torch.argsort(pixel[kept] * (cameras * count) + rank[splat[kept]])]
    pixel, splat, alpha = pixel[kept], splat[kept], alpha[kept]
    before = exclusive_transmittance(pixel, -torch.log1p(-alpha))
    weights = alpha * before * (before * (1 - alpha) > TRANSMITTANCE_MIN)
    flat_colors = colors.reshape(cameras * count, colors.shape[-1])
    total = cameras * height * width
    color = torch.zeros(total, flat_colors.shape[-1], dtype=weights.dtype, device=means.device)
    color = color.index_add(0, pixel, weights[:, None] * flat_colors.index_select(0, splat))
    coverage = torch.zeros(total, dtype=weights.dtype, device=means.device).index_add(0, pixel, weights)
    meta.update(pairs=len(pixel), width=width, height=height)
    rgb, alpha = _finish(
        color.reshape(cameras, height, width, -1), coverage.reshape(cameras, height, width), backgrounds
    )
    return rgb, alpha, meta


def gsplat_available() -> bool:
    """Whether the ``gsplat`` backend can run here: gsplat installed and a CUDA device present."""
    import importlib.util

    return torch.cuda.is_available() and importlib.util.find_spec("gsplat") is not None


def _rasterize_gsplat(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """gsplat's ``rasterization`` with this module's conventions and ``meta`` keys."""
    if not means.is_cuda:
        raise ValueError(
            f"the gsplat backend runs on CUDA only; the splats are on {means.device} (use backend='torch')"
        )
    try:
        from gsplat import rasterization
    except ImportError as error:
        raise ImportError("the gsplat backend needs gsplat: pip install gsplat (CUDA builds only)") from error
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    rgb, alpha, info = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, packed=False, **options
    )
    if info["means2d"].requires_grad:
        info["means2d"].retain_grad()
    radii = info["radii"]
    meta = {
        "means2d": info["means2d"],
        "depths": info["depths"],
        "conics": info["conics"],
        "radii": radii.amax(-1) if radii.dim() == 3 else radii,
        "width": width,
        "height": height,
    }
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
    color, alpha = _composite_dense(
        pixels.expand(cameras, -1, -1),
        index,
        meta["means2d"].reshape(-1, 2),
        meta["conics"].reshape(-1, 3),
        meta["extents"].reshape(-1, 2),
        opacities[None].expand(cameras, -1).reshape(-1),
        colors.reshape(cameras * count, colors.shape[-1]),
    )
    rgb, alpha = _finish(color.reshape(cameras, height, width, -1), alpha.reshape(cameras, height, width), backgrounds)
    return rgb, alpha, meta
