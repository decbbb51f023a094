"""The radiance field: its encodings, and a few training steps on a tiny rendered scene."""

from __future__ import annotations

import math

import torch

from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.handler import ErrorAwareDataHandler
from foveate.data.scenes import Scene
from foveate.models.nerf import RadianceField, spherical_harmonics, trunc_exp
from foveate.models.occupancy import OccupancyGrid
from foveate.models.volume_rendering import render_rays

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def sphere_scene(views: int = 8, size: int = 16, radius: float = 0.6) -> Scene:
    """A ray-traced ball coloured by its normal, over a black, transparent background."""
    c2w = look_at(camera_positions("sphere", views, radius=2.5), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    cameras = Cameras.from_fov(c2w, size, size, 45.0)
    images, masks = [], []
    for view in range(views):
        origins, directions = cameras.image_rays(view)
        half_b = (origins * directions).sum(-1)
        discriminant = half_b**2 - ((origins * origins).sum(-1) - radius**2)
        hit = discriminant > 0
        t = -half_b - discriminant.clamp(min=0).sqrt()
        normal = torch.nn.functional.normalize(origins + directions * t[..., None], dim=-1)
        rgb = torch.where(hit[..., None], 0.5 + 0.5 * normal, torch.zeros(3))
        images.append((rgb * 255).round().to(torch.uint8))
        masks.append(hit.to(torch.uint8) * 255)
    return Scene(torch.stack(images), cameras, [str(v) for v in range(views)], masks=torch.stack(masks))


def test_spherical_harmonics_are_orthonormal():
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=generator, dtype=torch.float64), dim=1)
    basis = spherical_harmonics(directions, degree=4)
    gram = basis.T @ basis / directions.shape[0] * 4.0 * math.pi  # Monte Carlo integral over the sphere
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.02, rtol=0)


def test_trunc_exp_has_a_finite_gradient():
    x = torch.tensor([0.0, 100.0], requires_grad=True)
    trunc_exp(x).sum().backward()
    assert torch.isfinite(x.grad).all() and math.isclose(float(x.grad[0]), 1.0)


def test_field_is_empty_outside_its_box():
    field = RadianceField(BOX, levels=4, log2_table_size=10, base_resolution=4, finest_resolution=16, hidden=16)
    points = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])
    with torch.no_grad():
        density, color = field(points, torch.tensor([[0.0, 0.0, 1.0]]).expand(2, 3))
    assert float(density[0]) > 0 and float(density[1]) == 0.0
    assert color.shape == (2, 3) and bool(((color >= 0) & (color <= 1)).all())


def test_a_few_steps_on_a_rendered_scene_reduce_the_loss():
    torch.manual_seed(0)
    scene = sphere_scene()
    field = RadianceField(BOX, levels=8, log2_table_size=14, base_resolution=4, finest_resolution=64, hidden=32)
    step_size = 2.0 * math.sqrt(3.0) / 64
    grid = OccupancyGrid(BOX, resolution=16, step_size=step_size, warmup_updates=8)
    handler = ErrorAwareDataHandler(scene, 256, {"warmup_iterations": 5, "update_frequency": 5}, seed=0)
    optimizer = torch.optim.Adam(field.parameters(), lr=3e-2, eps=1e-15)
    held_out = handler.gather(torch.arange(0, scene.num_rays, 5))

    def held_out_loss() -> float:
        with torch.no_grad():
            out = render_rays(field, held_out.rays[:, :3], held_out.rays[:, 3:], BOX, step_size, 128, grid)
            return float(((out.rgb - held_out.rgb) ** 2).mean())

    before = held_out_loss()
    for step in range(15):
        if step % 4 == 0:
            grid.update(field.density)
        batch = handler.sample()
        out = render_rays(field, batch.rays[:, :3], batch.rays[:, 3:], BOX, step_size, 128, grid, jitter=True)
        per_ray = ((out.rgb - batch.rgb) ** 2).mean(dim=1)
        handler.update(batch.ids, per_ray.detach(), step)
        optimizer.zero_grad()
        (batch.weights * per_ray).mean().backward()
        optimizer.step()
    after = held_out_loss()
    assert after < 0.5 * before, f"held-out loss went from {before:.4f} to {after:.4f}"
    assert handler.stats()["fallback"] is None and not handler.stats()["in_warmup"]
