"""Volume rendering of a signed-distance field, as NeuS does it, two ways.

NeuS turns a signed distance ``f`` into opacity between two samples: with ``Phi_s`` the
sigmoid of sharpness ``s``, the section from ``t_i`` to ``t_i+1`` has

    alpha_i = clip((Phi_s(f(t_i)) - Phi_s(f(t_i+1))) / Phi_s(f(t_i)), 0, 1),

where the end values are estimated from the value at the section's middle and the slope
``cos = d . grad f`` (annealed towards ``-|cos|`` early on, ``cos_anneal_ratio``). Colours are
composited with ``w_i = alpha_i prod_{j<i} (1 - alpha_j)``.

- :func:`render_neus` is NeuS's renderer: 64 samples between the near and far points of the
  unit sphere, then 64 more placed in 4 rounds by the opacity a fixed, growing sharpness
  (64, 128, 256, 512) gives the current SDF; optionally NeRF++'s background beyond the sphere.
- :func:`render_neus_marched` marches at a fixed step through the cells an occupancy grid
  marks as near the surface (instant-nsr-pl's approach, packed as
  :mod:`foveate.models.volume_rendering` packs samples): far fewer evaluations once the
  surface is sharp, so it suits hash-grid SDFs that train in minutes.

Both can shade by lights (RNb-NeuS): with ``lights (L, B, 3)`` the colour network gives an
albedo ``a`` and the colour under light ``l`` is ``sum_i w_i a_i (grad f_i . l)``, with the
gradient as the normal (ReLU on the shading during RNb's warm-up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .sdf import BackgroundField, ColorNetwork, SDFNetwork, VarianceNetwork
from .volume_rendering import exclusive_transmittance, march

__all__ = [
    "NeuSModel",
    "SurfaceRender",
    "neus_alpha",
    "render_neus",
    "render_neus_marched",
    "sample_pdf",
    "sdf_opacity",
    "sphere_intersection",
    "up_sample",
]


class NeuSModel(nn.Module):
    """NeuS's networks: the SDF, its sharpness, the colour (or albedo) and an optional background."""

    def __init__(
        self,
        sdf: SDFNetwork,
        variance: VarianceNetwork,
        color: ColorNetwork,
        background: BackgroundField | None = None,
    ) -> None:
        super().__init__()
        self.sdf = sdf
        self.variance = variance
        self.color = color
        self.background = background


@dataclass
class SurfaceRender:
    """What a NeuS render returns per ray.

    Attributes:
        color: ``(B, 3)``, or ``(L, B, 3)`` when rendered under ``L`` lights.
        opacity: ``(B,)`` sum of the weights inside the unit sphere (the mask NeuS supervises).
        normal: ``(B, 3)`` weighted sum of the SDF gradients inside the unit sphere.
        depth: ``(B,)`` weighted mean distance along the ray (not normalised by opacity).
        gradient_error: mean of ``(|grad f| - 1)^2`` over samples within radius 1.2 (the eikonal term).
        inv_s: the sharpness ``s`` used.
        num_samples: SDF samples shaded (for logging).
    """

    color: torch.Tensor
    opacity: torch.Tensor
    normal: torch.Tensor
    depth: torch.Tensor
    gradient_error: torch.Tensor
    inv_s: torch.Tensor
    num_samples: int


def sphere_intersection(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NeuS's ``near, far (B,)``: one unit either side of the point of the ray closest to the origin."""
    middle = -(origins * directions).sum(dim=-1) / (directions * directions).sum(dim=-1)
    return middle - 1.0, middle + 1.0


def _exact_sphere_span(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of unit-direction rays through the unit sphere (``near == far`` on a miss)."""
    middle = -(origins * directions).sum(dim=-1)
    closest = origins + directions * middle[:, None]
    half = (1.0 - closest.square().sum(dim=-1)).clamp(min=0.0).sqrt()
    near = (middle - half).clamp(min=0.0)
    return near, torch.maximum(middle + half, near)


def neus_alpha(
    sdf: torch.Tensor, cos: torch.Tensor, dists: torch.Tensor, inv_s: torch.Tensor, cos_anneal_ratio: float
) -> torch.Tensor:
    """Per-section opacity from the SDF at its middle, the slope ``cos = d . grad f`` and its length."""
    iter_cos = -(torch.relu(-cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio) + torch.relu(-cos) * cos_anneal_ratio)
    prev_cdf = torch.sigmoid((sdf - iter_cos * dists * 0.5) * inv_s)
    next_cdf = torch.sigmoid((sdf + iter_cos * dists * 0.5) * inv_s)
    return ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).clip(0.0, 1.0)


def sdf_opacity(sdf: torch.Tensor, inv_s: torch.Tensor | float, step: float) -> torch.Tensor:
    """The largest opacity a step of length ``step`` can have around a point at distance ``sdf``.

    The slope is taken as -1 (the ray meets the surface head on): what an occupancy grid
    needs to know whether a cell can hold any weight.
    """
    prev_cdf = torch.sigmoid((sdf + step * 0.5) * inv_s)
    next_cdf = torch.sigmoid((sdf - step * 0.5) * inv_s)
    return ((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)).clip(0.0, 1.0)


def _cumulative_weights(alpha: torch.Tensor) -> torch.Tensor:
    """``w_i = alpha_i prod_{j<i} (1 - alpha_j + 1e-7)`` along the last dimension."""
    ones = torch.ones_like(alpha[..., :1])
    return alpha * torch.cumprod(torch.cat((ones, 1.0 - alpha + 1e-7), dim=-1), dim=-1)[..., :-1]


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, count: int, deterministic: bool = True) -> torch.Tensor:
    """``count`` distances per ray drawn from the piecewise-constant density ``weights`` over ``bins``.

    Args:
        bins: ``(B, S + 1)`` section ends, increasing.
        weights: ``(B, S)`` non-negative section weights (1e-5 is added, so all-zero rows are uniform).
        deterministic: evenly spaced quantiles (NeuS's up-sampling) instead of random ones.
    """
    weights = weights + 1e-5
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat((torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)), dim=-1)
    if deterministic:
        u = torch.linspace(0.5 / count, 1.0 - 0.5 / count, count, device=bins.device, dtype=bins.dtype)
        u = u.expand(bins.shape[0], count).contiguous()
    else:
        u = torch.rand(bins.shape[0], count, device=bins.device, dtype=bins.dtype)
    above = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1)
    below = (above - 1).clamp(min=0)
    cdf_below, cdf_above = cdf.gather(1, below), cdf.gather(1, above)
    bins_below, bins_above = bins.gather(1, below), bins.gather(1, above)
    span = cdf_above - cdf_below
    span = torch.where(span < 1e-5, torch.ones_like(span), span)
    return bins_below + (u - cdf_below) / span * (bins_above - bins_below)


def up_sample(
    origins: torch.Tensor,
    directions: torch.Tensor,
    z_vals: torch.Tensor,
    sdf: torch.Tensor,
    count: int,
    inv_s: float,
) -> torch.Tensor:
    """NeuS's up-sampling round: ``count`` new distances where a sharpness ``inv_s`` puts the weight.

    The slope of each section is the smaller of its own and the previous one's (robust where a
    ray grazes the surface); sections outside the unit sphere get slope 0.
    """
    points = origins[:, None, :] + directions[:, None, :] * z_vals[..., None]
    radius = points.norm(dim=-1)
    inside = (radius[:, :-1] < 1.0) | (radius[:, 1:] < 1.0)
    prev_sdf, next_sdf = sdf[:, :-1], sdf[:, 1:]
    dists = z_vals[:, 1:] - z_vals[:, :-1]
    middle_sdf = (prev_sdf + next_sdf) * 0.5
    cos = (next_sdf - prev_sdf) / (dists + 1e-5)
    previous_cos = torch.cat((torch.zeros_like(cos[:, :1]), cos[:, :-1]), dim=-1)
    cos = torch.minimum(previous_cos, cos).clip(-1e3, 0.0) * inside
    prev_cdf = torch.sigmoid((middle_sdf - cos * dists * 0.5) * inv_s)
    next_cdf = torch.sigmoid((middle_sdf + cos * dists * 0.5) * inv_s)
    alpha = (prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)
    return sample_pdf(z_vals, _cumulative_weights(alpha), count, deterministic=True)


def _sample_colors(
    model: NeuSModel,
    points: torch.Tensor,
    gradients: torch.Tensor,
    view: torch.Tensor,
    features: torch.Tensor,
    grey: bool,
) -> torch.Tensor:
    """The colour network's output at the samples, or white for a grey (albedo-free) render."""
    if grey:
        return torch.ones_like(points)
    return model.color(points, gradients, view, features)


def _shade(
    colors: torch.Tensor,
    gradients: torch.Tensor,
    weights: torch.Tensor,
    lights: torch.Tensor | None,
    relu_shading: bool,
) -> torch.Tensor:
    """Composite ``(B, S, 3)`` colours, or albedos lit by ``lights (L, B, 3)``, with ``(B, S)`` weights."""
    if lights is None:
        return (weights[..., None] * colors).sum(dim=1)
    shading = torch.einsum("bsd,lbd->lbs", gradients, lights)
    if relu_shading:
        shading = torch.relu(shading)
    return torch.einsum("bs,bsc,lbs->lbc", weights, colors, shading)


def render_neus(
    model: NeuSModel,
    origins: torch.Tensor,
    directions: torch.Tensor,
    *,
    n_samples: int = 64,
    n_importance: int = 64,
    up_sample_steps: int = 4,
    n_outside: int = 0,
    perturb: bool = False,
    cos_anneal_ratio: float = 1.0,
    background_rgb: torch.Tensor | None = None,
    lights: torch.Tensor | None = None,
    relu_shading: bool = False,
    grey: bool = False,
    create_graph: bool = True,
) -> SurfaceRender:
    """NeuS's renderer for unit-direction rays in the normalised space (the object in the unit sphere).

    Args:
        n_samples: evenly spaced samples between the sphere's near and far points.
        n_importance: samples added by ``up_sample_steps`` rounds of :func:`up_sample`.
        n_outside: NeRF++ background samples beyond the sphere (needs ``model.background``).
        perturb: jitter the samples (training).
        cos_anneal_ratio: 0 to 1 over NeuS's ``anneal_end`` steps (1 without annealing).
        background_rgb: a constant colour behind everything (e.g. white); None is black.
        lights: ``(L, B, 3)`` light directions per ray: shade albedos by them (RNb-NeuS).
        relu_shading: clamp the shading at 0 (RNb's warm-up).
        grey: shade a white albedo instead of the colour network's (RNb without albedo maps).
        create_graph: keep the SDF gradient differentiable (training).
    """
    if n_outside > 0 and model.background is None:
        raise ValueError("n_outside > 0 needs a background field in the model")
    batch = origins.shape[0]
    near, far = sphere_intersection(origins, directions)
    near, far = near[:, None], far[:, None]
    steps = torch.linspace(0.0, 1.0, n_samples, device=origins.device)
    z_vals = near + (far - near) * steps[None, :]
    if perturb:
        z_vals = z_vals + (torch.rand(batch, 1, device=origins.device) - 0.5) * 2.0 / n_samples
    z_outside = None
    if n_outside > 0:
        z_outside = torch.linspace(1e-3, 1.0 - 1.0 / (n_outside + 1.0), n_outside, device=origins.device)
        z_outside = z_outside.expand(batch, n_outside)
        if perturb:
            mids = 0.5 * (z_outside[:, 1:] + z_outside[:, :-1])
            upper = torch.cat((mids, z_outside[:, -1:]), dim=-1)
            lower = torch.cat((z_outside[:, :1], mids), dim=-1)
            z_outside = lower + (upper - lower) * torch.rand(batch, n_outside, device=origins.device)
        z_outside = far / torch.flip(z_outside, dims=[-1]) + 1.0 / n_samples

    if n_importance > 0:
        with torch.no_grad():
            points = origins[:, None, :] + directions[:, None, :] * z_vals[..., None]
            sdf = model.sdf.sdf(points.reshape(-1, 3)).reshape(batch, -1)
            per_round = n_importance // up_sample_steps
            for round_index in range(up_sample_steps):
                new_z = up_sample(origins, directions, z_vals, sdf, per_round, 64.0 * 2**round_index)
                z_vals, order = torch.sort(torch.cat((z_vals, new_z), dim=-1), dim=-1)
                if round_index + 1 < up_sample_steps:
                    new_points = origins[:, None, :] + directions[:, None, :] * new_z[..., None]
                    new_sdf = model.sdf.sdf(new_points.reshape(-1, 3)).reshape(batch, -1)
                    sdf = torch.cat((sdf, new_sdf), dim=-1).gather(1, order)

    sample_dist = 2.0 / n_samples
    dists = torch.cat((z_vals[:, 1:] - z_vals[:, :-1], torch.full_like(z_vals[:, :1], sample_dist)), dim=-1)
    middles = z_vals + dists * 0.5
    count = z_vals.shape[1]
    points = (origins[:, None, :] + directions[:, None, :] * middles[..., None]).reshape(-1, 3)
    view = directions[:, None, :].expand(batch, count, 3).reshape(-1, 3)
    sdf, features, gradients = model.sdf.sdf_and_gradient(points, create_graph=create_graph)
    colors = _sample_colors(model, points, gradients, view, features, grey).reshape(batch, count, 3)
    inv_s = model.variance()
    alpha = neus_alpha(sdf, (view * gradients).sum(dim=-1), dists.reshape(-1), inv_s, cos_anneal_ratio)
    alpha = alpha.reshape(batch, count)
    radius = points.norm(dim=-1).reshape(batch, count)
    inside = (radius < 1.0).to(alpha.dtype)
    gradients = gradients.reshape(batch, count, 3)

    if z_outside is not None:
        fed = torch.sort(torch.cat((z_vals, z_outside), dim=-1), dim=-1).values
        outside_alpha, outside_colors = _background_samples(model.background, origins, directions, fed, sample_dist)
        alpha = torch.cat((alpha * inside + outside_alpha[:, :count] * (1.0 - inside), outside_alpha[:, count:]), -1)
        colors = torch.cat(
            (
                colors * inside[..., None] + outside_colors[:, :count] * (1.0 - inside[..., None]),
                outside_colors[:, count:],
            ),
            dim=1,
        )
        gradients = torch.cat((gradients, torch.zeros_like(outside_colors[:, count:])), dim=1)
    weights = _cumulative_weights(alpha)
    color = _shade(colors, gradients, weights, lights, relu_shading)
    inner_weights = weights[:, :count]
    opacity = weights.sum(dim=-1)
    if background_rgb is not None:
        color = color + background_rgb * (1.0 - opacity[..., None])
    relaxed = (radius < 1.2).to(alpha.dtype)
    error = (gradients[:, :count].norm(dim=-1) - 1.0).square()
    return SurfaceRender(
        color=color,
        opacity=opacity,
        normal=(gradients[:, :count] * (inner_weights * inside)[..., None]).sum(dim=1),
        depth=(inner_weights * middles).sum(dim=-1),
        gradient_error=(relaxed * error).sum() / (relaxed.sum() + 1e-5),
        inv_s=inv_s,
        num_samples=batch * count,
    )


def _background_samples(
    background: BackgroundField, origins: torch.Tensor, directions: torch.Tensor, z_vals: torch.Tensor, last: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """NeRF++'s background: ``alpha (B, S)`` and ``colors (B, S, 3)`` at the sections ``z_vals`` start."""
    batch, count = z_vals.shape
    dists = torch.cat((z_vals[:, 1:] - z_vals[:, :-1], torch.full_like(z_vals[:, :1], last)), dim=-1)
    points = origins[:, None, :] + directions[:, None, :] * (z_vals + dists * 0.5)[..., None]
    view = directions[:, None, :].expand(batch, count, 3)
    density, colors = background(points.reshape(-1, 3), view.reshape(-1, 3))
    alpha = 1.0 - torch.exp(-density.reshape(batch, count) * dists)
    return alpha, colors.reshape(batch, count, 3)


def render_neus_marched(
    model: NeuSModel,
    origins: torch.Tensor,
    directions: torch.Tensor,
    *,
    step_size: float,
    max_samples: int,
    occupied: Callable[[torch.Tensor], torch.Tensor] | None = None,
    jitter: bool = False,
    cos_anneal_ratio: float = 1.0,
    background_rgb: torch.Tensor | None = None,
    lights: torch.Tensor | None = None,
    relu_shading: bool = False,
    grey: bool = False,
    create_graph: bool = True,
) -> SurfaceRender:
    """March unit-direction rays through the unit sphere at ``step_size``, keeping ``occupied`` samples.

    The same opacity as :func:`render_neus` per section (its length is the step), packed samples,
    no background field. Arguments as there; ``occupied`` maps ``(M, 3)`` points to a bool mask
    (an :class:`~foveate.models.occupancy.OccupancyGrid`).
    """
    batch = origins.shape[0]
    near, far = _exact_sphere_span(origins, directions)
    samples = march(origins, directions, near, far, step_size, max_samples, occupied, jitter)
    rays = samples.ray_indices
    points = samples.points(origins, directions)
    view = directions[rays]
    sdf, features, gradients = model.sdf.sdf_and_gradient(points, create_graph=create_graph)
    colors = _sample_colors(model, points, gradients, view, features, grey)
    inv_s = model.variance()
    dists = samples.t_ends - samples.t_starts
    alpha = neus_alpha(sdf, (view * gradients).sum(dim=-1), dists, inv_s, cos_anneal_ratio)
    optical = -torch.log1p(-(alpha * (1.0 - 1e-7)))
    weights = alpha * exclusive_transmittance(rays, optical)

    def per_ray(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((batch, *values.shape[1:]), device=values.device, dtype=values.dtype)
        return out.index_add_(0, rays, values)

    if lights is None:
        color = per_ray(weights[:, None] * colors)
    else:
        shading = torch.einsum("sd,lsd->ls", gradients, lights[:, rays])
        if relu_shading:
            shading = torch.relu(shading)
        lit = weights[None, :, None] * colors[None] * shading[..., None]  # (L, S, 3)
        color = per_ray(lit.transpose(0, 1)).transpose(0, 1)
    opacity = per_ray(weights)
    if background_rgb is not None:
        color = color + background_rgb * (1.0 - opacity[..., None])
    error = (gradients.norm(dim=-1) - 1.0).square()
    return SurfaceRender(
        color=color,
        opacity=opacity,
        normal=per_ray(weights[:, None] * gradients),
        depth=per_ray(weights * samples.t_mids),
        gradient_error=error.mean() if error.numel() else error.sum(),
        inv_s=inv_s,
        num_samples=int(rays.numel()),
    )
