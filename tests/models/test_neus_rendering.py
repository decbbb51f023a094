import math

import pytest
import torch
from torch import nn

from foveate.models.neus_rendering import (
    NeuSModel,
    neus_alpha,
    render_neus,
    render_neus_marched,
    sample_pdf,
    sdf_opacity,
    sphere_intersection,
)
from foveate.models.sdf import ColorNetwork, VarianceNetwork
from foveate.models.volume_rendering import exclusive_transmittance

RADIUS = 0.5


class SphereSDF(nn.Module):
    """An exact sphere: sdf = |x| - r, gradient x / |x|, one zero feature."""

    def sdf(self, points):
        return points.norm(dim=-1) - RADIUS

    def sdf_and_gradient(self, points, create_graph=True):
        return self.sdf(points), torch.zeros(points.shape[0], 1), points / points.norm(dim=-1, keepdim=True)


def sphere_model(variance: float = 0.8) -> NeuSModel:
    return NeuSModel(SphereSDF(), VarianceNetwork(variance), ColorNetwork(1, "no_view_dir", hidden=4, layers=1))


def rays(count: int = 64):
    """Rays from (0, 0, -3) fanning out towards +z; true hit distances (inf where they miss)."""
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(
        torch.randn(count, 3, generator=generator) * torch.tensor([0.15, 0.15, 0.0]) + torch.tensor([0.0, 0.0, 1.0]),
        dim=-1,
    )
    origins = torch.tensor([0.0, 0.0, -3.0]).expand(count, 3)
    b = (origins * directions).sum(-1)
    discriminant = b * b - ((origins * origins).sum(-1) - RADIUS**2)
    hit = -b - discriminant.clamp(min=0).sqrt()
    return origins, directions, torch.where(discriminant > 0, hit, torch.full_like(hit, math.inf))


def test_sphere_intersection_is_one_unit_either_side_of_the_closest_point():
    near, far = sphere_intersection(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]]))
    assert near.item() == pytest.approx(2.0) and far.item() == pytest.approx(4.0)


def test_sample_pdf_spreads_evenly_over_uniform_weights_and_stays_in_the_weighted_bin():
    bins = torch.linspace(0.0, 1.0, 5)[None]
    even = sample_pdf(bins, torch.ones(1, 4), 4)
    assert torch.allclose(even, torch.tensor([[0.125, 0.375, 0.625, 0.875]]), atol=1e-4)
    peaked = sample_pdf(bins, torch.tensor([[0.0, 0.0, 1.0, 0.0]]), 8)
    assert bool(((peaked > 0.5 - 1e-3) & (peaked < 0.75 + 1e-3)).all())


def test_alpha_is_one_across_a_sharp_surface_and_zero_far_from_it():
    s = torch.tensor(1e4)
    across = neus_alpha(torch.tensor([0.0]), torch.tensor([-1.0]), torch.tensor([0.1]), s, 1.0)
    far = neus_alpha(torch.tensor([0.3]), torch.tensor([-1.0]), torch.tensor([0.1]), s, 1.0)
    assert across.item() == pytest.approx(1.0, abs=1e-3) and far.item() < 1e-3
    assert sdf_opacity(torch.tensor([0.0]), s, 0.1).item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("renderer", ["upsample", "march"])
def test_a_sharp_sphere_renders_opaque_where_rays_hit_at_the_right_depth(renderer):
    origins, directions, truth = rays()
    model = sphere_model()
    if renderer == "upsample":
        out = render_neus(model, origins, directions, grey=True, create_graph=False)
    else:
        out = render_neus_marched(model, origins, directions, step_size=2 / 256, max_samples=256, grey=True)
    hit = torch.isfinite(truth)
    assert hit.any() and (~hit).any()
    assert torch.allclose(out.opacity[hit], torch.ones(int(hit.sum())), atol=1e-2)
    assert bool((out.opacity[~hit] < 0.05).all())
    depth = out.depth[hit] / out.opacity[hit]
    assert torch.allclose(depth, truth[hit], atol=0.02)
    assert out.gradient_error.item() < 1e-6
    normal = out.normal[hit] / out.opacity[hit, None]
    expected = torch.nn.functional.normalize(origins[hit] + directions[hit] * truth[hit, None], dim=-1)
    assert torch.allclose(normal, expected, atol=0.05)


@pytest.mark.parametrize("renderer", ["upsample", "march"])
def test_lights_shade_the_gradient_as_normal(renderer):
    origins, directions, truth = rays(16)
    model = sphere_model()
    towards_camera = -directions[None]  # (1, B, 3)
    kwargs = {"lights": towards_camera, "grey": True}
    if renderer == "upsample":
        out = render_neus(model, origins, directions, create_graph=False, **kwargs)
    else:
        out = render_neus_marched(model, origins, directions, step_size=2 / 256, max_samples=256, **kwargs)
    hit = torch.isfinite(truth)
    normal = torch.nn.functional.normalize(origins + directions * truth.clamp(max=10)[:, None], dim=-1)
    expected = (normal * -directions).sum(-1).clamp(min=0)
    assert out.color.shape == (1, 16, 3)
    assert torch.allclose(out.color[0, hit, 0], expected[hit], atol=0.03)


def test_exclusive_transmittance_matches_a_per_ray_product():
    rays_of = torch.tensor([0, 0, 0, 2, 2, 3])
    alpha = torch.tensor([0.5, 0.2, 0.9, 0.3, 0.4, 0.7])
    optical = -torch.log1p(-alpha)
    expected = torch.tensor([1.0, 0.5, 0.5 * 0.8, 1.0, 0.7, 1.0])
    assert torch.allclose(exclusive_transmittance(rays_of, optical), expected, atol=1e-6)


def test_rays_that_meet_no_occupied_cell_render_empty():
    from foveate.models import HashGrid, OccupancyGrid
    from foveate.models.sdf import GridEncoding, SDFNetwork

    sdf = SDFNetwork(
        GridEncoding(HashGrid(3, 2, 10, 2, 4, 8)),
        hidden=8,
        layers=1,
        skip_in=(),
        features=2,
        gradient="finite_difference",
        activation="relu",
    )
    model = NeuSModel(sdf, VarianceNetwork(0.3), ColorNetwork(2, hidden=4, layers=1))
    grid = OccupancyGrid(torch.tensor([[-1.0] * 3, [1.0] * 3]), resolution=4)
    grid.occupied.zero_()
    origins, directions, _ = rays(8)
    out = render_neus_marched(model, origins, directions, step_size=0.05, max_samples=64, occupied=grid)
    assert out.num_samples == 0 and torch.equal(out.opacity, torch.zeros(8)) and out.color.shape == (8, 3)
    assert out.gradient_error.item() == 0.0
