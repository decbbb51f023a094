"""Volume rendering: box intersection, marching, and compositing against closed forms."""

from __future__ import annotations

import math

import torch

from foveate.models.volume_rendering import PackedSamples, composite, march, ray_aabb, render_rays

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def test_ray_aabb_hand_values():
    origins = torch.tensor([[-2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-2.0, 5.0, 0.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    near, far = ray_aabb(origins, directions, BOX, near_plane=0.1)
    torch.testing.assert_close(near[:2], torch.tensor([1.0, 0.1]))  # inside the box: starts at near_plane
    torch.testing.assert_close(far[:2], torch.tensor([3.0, 1.0]))
    assert float(far[2] - near[2]) == 0.0  # a miss has an empty interval


def test_composite_matches_a_homogeneous_medium():
    sigma, length, n = 2.0, 1.5, 3000
    edges = torch.linspace(0.0, length, n + 1)
    samples = PackedSamples(torch.zeros(n, dtype=torch.long), edges[:-1], edges[1:], num_rays=1)
    color = torch.tensor([0.2, 0.5, 0.9])
    weights, rgb, opacity, depth = composite(samples, torch.full((n,), sigma), color.expand(n, 3))
    expected_opacity = 1.0 - math.exp(-sigma * length)
    torch.testing.assert_close(opacity, torch.tensor([[expected_opacity]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(rgb, (color * expected_opacity)[None], atol=1e-4, rtol=0)
    # Integral of t * sigma * exp(-sigma t) over [0, L].
    expected_depth = (1.0 - math.exp(-sigma * length) * (1.0 + sigma * length)) / sigma
    torch.testing.assert_close(depth, torch.tensor([[expected_depth]]), atol=1e-4, rtol=0)
    assert math.isclose(float(weights.sum()), float(opacity), rel_tol=1e-5)


def test_packed_rays_are_composited_independently():
    generator = torch.Generator().manual_seed(0)
    counts = [5, 0, 3, 7]
    rays, starts, ends, densities, colors = [], [], [], [], []
    for ray, count in enumerate(counts):
        edges = torch.sort(torch.rand(count + 1, generator=generator) * 4).values
        rays.append(torch.full((count,), ray))
        starts.append(edges[:-1])
        ends.append(edges[1:])
        densities.append(torch.rand(count, generator=generator) * 3)
        colors.append(torch.rand(count, 3, generator=generator))
    packed = PackedSamples(torch.cat(rays), torch.cat(starts), torch.cat(ends), num_rays=len(counts))
    _, rgb, opacity, depth = composite(packed, torch.cat(densities), torch.cat(colors))
    for ray, count in enumerate(counts):
        alone = PackedSamples(torch.zeros(count, dtype=torch.long), starts[ray], ends[ray], num_rays=1)
        _, rgb_alone, opacity_alone, depth_alone = composite(alone, densities[ray], colors[ray])
        torch.testing.assert_close(rgb[ray : ray + 1], rgb_alone)
        torch.testing.assert_close(opacity[ray : ray + 1], opacity_alone)
        torch.testing.assert_close(depth[ray : ray + 1], depth_alone)
    assert float(opacity[1]) == 0.0


def test_march_keeps_occupied_samples_in_order():
    origins = torch.tensor([[-2.0, 0.0, 0.0], [-2.0, 0.5, 0.0], [-2.0, 5.0, 0.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0]]).expand(3, 3)
    near, far = ray_aabb(origins, directions, BOX)
    samples = march(origins, directions, near, far, 0.1, 64)
    assert torch.equal(samples.ray_indices, torch.sort(samples.ray_indices).values)
    assert torch.equal(torch.bincount(samples.ray_indices, minlength=3), torch.tensor([20, 20, 0]))
    assert bool((samples.t_starts >= 1.0 - 1e-6).all() and (samples.t_ends <= 3.0 + 1e-6).all())
    positive_x = march(origins, directions, near, far, 0.1, 64, occupied=lambda points: points[:, 0] > 0)
    assert torch.equal(torch.bincount(positive_x.ray_indices, minlength=3), torch.tensor([10, 10, 0]))


def test_march_in_chunks_matches_ray_by_ray():
    generator = torch.Generator().manual_seed(1)
    origins = torch.randn(10, 3, generator=generator) * 0.2 - torch.tensor([3.0, 0.0, 0.0])
    directions = torch.nn.functional.normalize(
        torch.tensor([1.0, 0.0, 0.0]) + 0.1 * torch.randn(10, 3, generator=generator), dim=1
    )
    near, far = ray_aabb(origins, directions, BOX)
    max_samples = 2**20  # forces chunks of 4 rays
    together = march(origins, directions, near, far, 0.25, max_samples)
    singles = [
        march(origins[i : i + 1], directions[i : i + 1], near[i : i + 1], far[i : i + 1], 0.25, max_samples)
        for i in range(10)
    ]
    torch.testing.assert_close(together.t_starts, torch.cat([s.t_starts for s in singles]))
    assert torch.equal(together.ray_indices, torch.cat([s.ray_indices + i for i, s in enumerate(singles)]))


def test_render_rays_differentiates_and_fills_background():
    log_density = torch.tensor(0.0, requires_grad=True)

    def field(points, directions):
        inside_ball = (points.norm(dim=1) < 0.5).float()
        return inside_ball * log_density.exp() * 10.0, torch.full_like(points, 0.8)

    origins = torch.tensor([[0.0, 0.0, -3.0], [0.0, 2.0, -3.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = render_rays(field, origins, directions, BOX, 0.01, 400, background=torch.tensor([0.0, 0.0, 1.0]))
    expected = 1.0 - math.exp(-10.0 * 1.0)  # the ball's diameter is 1
    torch.testing.assert_close(out.opacity[:, 0], torch.tensor([expected, 0.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.rgb[1], torch.tensor([0.0, 0.0, 1.0]))
    # The ray enters the ball at t = 2.5; the mean free path inside is 1 / 10.
    expected_depth = 2.5 + (1.0 - math.exp(-10.0) * 11.0) / 10.0 / expected
    torch.testing.assert_close(out.depth[0, 0] / out.opacity[0, 0], torch.tensor(expected_depth), atol=0.01, rtol=0)
    out.opacity[0].sum().backward()
    assert log_density.grad is not None and float(log_density.grad) > 0
