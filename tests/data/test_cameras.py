"""Cameras, rays, distortion and the downsample schedule against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from foveate.data.cameras import (
    Cameras,
    DownsampleSchedule,
    camera_positions,
    distort,
    look_at,
    undistort,
)


def _camera(device, c2w=None, distortion=None, width=100, height=80) -> Cameras:
    c2w = torch.eye(4) if c2w is None else c2w
    intrinsics = torch.tensor([[100.0, 120.0, 50.0, 40.0]])
    return Cameras(c2w[None].to(device), intrinsics.to(device), width, height, distortion)


def test_rays_of_an_identity_camera_match_hand_computation(device):
    cameras = _camera(device)
    image = torch.zeros(3, dtype=torch.long, device=device)
    y = torch.tensor([0, 39, 79], device=device)
    x = torch.tensor([0, 49, 99], device=device)
    origins, directions = cameras.rays(image, y, x)
    # Pixel (0, 0) has its centre at (0.5, 0.5): ((0.5 - 50) / 100, (0.5 - 40) / 120, 1).
    corner = torch.tensor([-0.495, -39.5 / 120.0, 1.0])
    centre = torch.tensor([-0.005, -0.5 / 120.0, 1.0])
    last = torch.tensor([0.495, 39.5 / 120.0, 1.0])
    expected = torch.stack([corner, centre, last])
    expected = expected / expected.norm(dim=1, keepdim=True)
    torch.testing.assert_close(directions.cpu(), expected)
    torch.testing.assert_close(origins.cpu(), torch.zeros(3, 3))


def test_rays_follow_the_camera_pose(device):
    # Rotate 90 degrees about world y (camera z goes to world +x), then move to (1, 2, 3).
    c2w = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 2.0], [-1.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 1.0]])
    cameras = _camera(device, c2w)
    origins, directions = cameras.rays(
        torch.zeros(1, dtype=torch.long, device=device),
        torch.tensor([0], device=device),
        torch.tensor([0], device=device),
    )
    local = torch.tensor([-0.495, -39.5 / 120.0, 1.0])
    # x_world = z_cam, y_world = y_cam, z_world = -x_cam.
    expected = torch.tensor([local[2], local[1], -local[0]])
    torch.testing.assert_close(directions[0].cpu(), expected / expected.norm())
    torch.testing.assert_close(origins[0].cpu(), torch.tensor([1.0, 2.0, 3.0]))


def test_look_at_puts_the_target_at_the_image_centre_and_up_at_the_top():
    c2w = look_at(torch.tensor([[0.0, 0.0, 5.0]]), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    cameras = Cameras.from_fov(c2w, 64, 48, 60.0)
    _, directions = cameras.image_rays(0)
    centre = (directions[23, 31] + directions[24, 32]) / 2
    torch.testing.assert_close(centre / centre.norm(), torch.tensor([0.0, 0.0, -1.0]), atol=1e-6, rtol=0)
    assert directions[0, 32, 1] > 0.2  # the top row looks up (+y)
    assert directions[24, 0, 0] < -0.2  # the left column looks towards -x
    assert math.isclose(float(cameras.intrinsics[0, 0]), 32.0 / math.tan(math.radians(30.0)), rel_tol=1e-6)


def test_look_at_rejects_a_view_parallel_to_up():
    with pytest.raises(ValueError, match="parallel"):
        look_at(torch.tensor([[0.0, 5.0, 0.0]]), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def test_projection_inverts_rays(device):
    c2w = look_at(torch.tensor([[1.0, 2.0, 4.0]]), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))[0]
    for distortion in (None, torch.tensor([[-0.2, 0.05, 0.001, -0.002, 0.01]])):
        cameras = _camera(device, c2w, None if distortion is None else distortion.to(device))
        y, x = torch.meshgrid(torch.arange(0, 80, 7), torch.arange(0, 100, 9), indexing="ij")
        y, x = y.reshape(-1).to(device), x.reshape(-1).to(device)
        image = torch.zeros_like(y)
        origins, directions = cameras.rays(image, y, x)
        u, v, z = cameras.project(origins + 3.0 * directions, image)
        torch.testing.assert_close(u, x + 0.5, atol=2e-3, rtol=0)
        torch.testing.assert_close(v, y + 0.5, atol=2e-3, rtol=0)
        assert bool((z > 0).all())


def test_undistort_inverts_distort():
    grid = torch.linspace(-0.6, 0.6, 25)
    x, y = torch.meshgrid(grid, grid, indexing="ij")
    coefficients = torch.tensor([-0.25, 0.08, 0.002, -0.003, -0.01])
    xd, yd = distort(x, y, coefficients)
    assert float((xd - x).abs().max()) > 0.02  # the distortion is not negligible
    xu, yu = undistort(xd, yd, coefficients)
    torch.testing.assert_close(xu, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(yu, y, atol=1e-5, rtol=0)


def test_downsampled_cameras_keep_pixel_edges_fixed():
    cameras = _camera("cpu")
    half = cameras.downsampled(2)
    assert (half.width, half.height) == (50, 40)
    torch.testing.assert_close(half.intrinsics, torch.tensor([[50.0, 60.0, 25.0, 20.0]]))
    zero = torch.zeros(1, dtype=torch.long)
    # Continuous point (1, 1) at full resolution is the centre of coarse pixel (0, 0).
    _, fine = cameras.rays(zero, torch.tensor([1]), torch.tensor([1]), offset=0.0)
    _, coarse = half.rays(zero, torch.tensor([0]), torch.tensor([0]))
    torch.testing.assert_close(fine, coarse)
    odd = Cameras(torch.eye(4)[None], torch.tensor([[10.0, 10.0, 5.5, 3.5]]), 11, 7).downsampled(4)
    assert (odd.width, odd.height) == (2, 1)  # the partial blocks are dropped, the edges stay put
    torch.testing.assert_close(odd.intrinsics, torch.tensor([[2.5, 2.5, 1.375, 0.875]]))
    with pytest.raises(ValueError, match="exceeds"):
        odd.downsampled(8)


def test_downsample_schedule_follows_radfoam():
    schedule = DownsampleSchedule()
    factors = [schedule.factor_at(step) for step in (0, 149, 150, 499, 500, 10**6)]
    assert factors == [4, 4, 2, 2, 1, 1]
    assert DownsampleSchedule.constant(2).factor_at(10) == 2
    for factors, steps in (((4, 2), (0,)), ((4, 2), (10, 20)), ((2, 1), (0, 0)), ((0,), (0,))):
        with pytest.raises(ValueError):
            DownsampleSchedule(factors, steps)


@pytest.mark.parametrize("layout", ["sphere", "hemisphere", "orbit", "cap"])
def test_camera_layouts_stay_on_their_part_of_the_sphere(layout):
    up = torch.tensor([0.0, 1.0, 0.0])
    axis = (0.0, 0.0, 1.0)
    positions = camera_positions(
        layout,
        40,
        radius=2.0,
        center=(1.0, 0.0, 0.0),
        up=up.tolist(),
        axis=axis if layout == "cap" else None,
        cap_degrees=25.0,
        elevation_degrees=30.0,
    )
    offsets = positions - torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(offsets.norm(dim=1), torch.full((40,), 2.0))
    unit = offsets / 2.0
    if layout == "hemisphere":
        assert bool((unit @ up >= 0).all())
    elif layout == "cap":
        assert bool((unit @ torch.tensor(axis) >= math.cos(math.radians(25.0)) - 1e-6).all())
    elif layout == "orbit":
        torch.testing.assert_close(unit @ up, torch.full((40,), 0.5))
    else:
        assert float(unit.mean(0).norm()) < 0.05  # spread over the whole sphere
    shifted = camera_positions(
        layout,
        40,
        radius=2.0,
        center=(1.0, 0.0, 0.0),
        up=up.tolist(),
        axis=axis if layout == "cap" else None,
        phase=0.5,
    )
    assert float(torch.cdist(positions, shifted).min()) > 1e-3  # held-out views fall between


def test_cameras_validate_shapes():
    with pytest.raises(ValueError, match="intrinsics"):
        Cameras(torch.eye(4)[None], torch.zeros(2, 4), 4, 4)
    with pytest.raises(ValueError, match="distortion"):
        Cameras(torch.eye(4)[None], torch.ones(1, 4), 4, 4, torch.zeros(1, 4))
