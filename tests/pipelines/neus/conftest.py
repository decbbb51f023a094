"""A tiny analytic scene for the NeuS pipeline: a ball seen from a sphere of cameras.

Ray-traced here, not rendered: exact masks, world normals and an albedo that varies with the
normal, so both NeuS (images) and RNb-NeuS (normal and albedo maps) can train on it in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from foveate.data import Cameras, Scene, camera_positions, look_at, save_neus, save_rnb

RADIUS = 0.5
SIZE = 20


def ball_scene(views: int = 8, size: int = SIZE, radius: float = RADIUS) -> Scene:
    """A ball of ``radius`` at the origin, lit from each camera: images, masks, normals and albedos."""
    c2w = look_at(camera_positions("sphere", views, radius=2.5), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    cameras = Cameras.from_fov(c2w, size, size, 40.0)
    images, masks, normals, albedos = [], [], [], []
    for view in range(views):
        origins, directions = cameras.image_rays(view)
        half_b = (origins * directions).sum(-1)
        discriminant = half_b**2 - ((origins * origins).sum(-1) - radius**2)
        hit = discriminant > 0
        t = -half_b - discriminant.clamp(min=0).sqrt()
        normal = torch.where(hit[..., None], (origins + directions * t[..., None]) / radius, torch.zeros(3))
        albedo = torch.where(hit[..., None], 0.55 + 0.4 * normal, torch.zeros(3))
        shading = (-directions * normal).sum(-1, keepdim=True).clamp(min=0)
        images.append((albedo * shading * 255).round().to(torch.uint8))
        masks.append(hit.to(torch.uint8) * 255)
        normals.append(normal.float())
        albedos.append((albedo * 255).round().to(torch.uint8))
    return Scene(
        torch.stack(images),
        cameras,
        [f"{v:03d}" for v in range(views)],
        torch.stack(masks),
        normals=torch.stack(normals),
        albedos=torch.stack(albedos),
    )


def write_ball(root: Path, scene: Scene | None = None) -> Path:
    """The ball in the NeuS and RNb layouts side by side, with its true mesh (``mesh.ply``)."""
    import trimesh

    scene = scene or ball_scene()
    save_neus(scene, root, geometry=False)
    save_rnb(scene, root)
    trimesh.creation.icosphere(subdivisions=3, radius=RADIUS).export(root / "mesh.ply")
    return root


@pytest.fixture(scope="session")
def ball_dir(tmp_path_factory) -> Path:
    return write_ball(tmp_path_factory.mktemp("ball"))


def tiny_flags(ball_dir: Path, tmp_path: Path) -> list[str]:
    """``foveate neus`` flags for a seconds-long run of the tiny preset on the ball."""
    return [
        "--scene",
        str(ball_dir),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--preset",
        "tiny",
        "--train.no-progress",
        "--train.no-tensorboard",
    ]


__all__ = ["RADIUS", "ball_scene", "tiny_flags", "write_ball"]
