"""The occupancy grid finds where density is, and lets go of where it was."""

from __future__ import annotations

import math

import torch

from foveate.models.occupancy import OccupancyGrid

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def ball(center: tuple[float, float, float], radius: float = 0.4):
    center_tensor = torch.tensor(center)

    def density(points: torch.Tensor) -> torch.Tensor:
        return ((points - center_tensor).norm(dim=1) < radius).float() * 50.0

    return density


def test_grid_marks_a_ball_and_nothing_else():
    grid = OccupancyGrid(BOX, resolution=32, step_size=0.01, warmup_updates=4)
    assert bool(grid(torch.tensor([[0.9, 0.9, 0.9]])).all())  # before any update, everything may be occupied
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        grid.update(ball((0.0, 0.0, 0.0)), generator)
    inside = grid(torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]]))
    outside = grid(torch.tensor([[0.8, 0.8, 0.8], [0.0, 0.7, 0.0], [1.5, 0.0, 0.0]]))
    assert bool(inside.all()) and not bool(outside.any())
    ball_fraction = 4.0 / 3.0 * math.pi * 0.4**3 / 8.0
    assert ball_fraction < grid.occupancy() < 2.0 * ball_fraction  # the ball's cells, with their boundary


def test_grid_follows_density_that_moves():
    grid = OccupancyGrid(BOX, resolution=16, step_size=0.01, warmup_updates=2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        grid.update(ball((-0.5, 0.0, 0.0)), generator)
    old, new = torch.tensor([[-0.5, 0.0, 0.0]]), torch.tensor([[0.5, 0.0, 0.0]])
    assert bool(grid(old).all()) and not bool(grid(new).any())
    for _ in range(80):  # past warm-up: partial refreshes, with the old cells decaying
        grid.update(ball((0.5, 0.0, 0.0)), generator)
    assert bool(grid(new).all()) and not bool(grid(old).any())


def test_state_dict_round_trip():
    grid = OccupancyGrid(BOX, resolution=8)
    grid.update(ball((0.0, 0.0, 0.0)))
    copy = OccupancyGrid(BOX, resolution=8)
    copy.load_state_dict(grid.state_dict())
    assert torch.equal(copy.occupied, grid.occupied) and int(copy.updates) == 1
