"""Hash-grid encoding: both level kinds against explicit interpolation, shapes and gradients."""

from __future__ import annotations

import pytest
import torch

from foveate.models import MLP, HashGrid, NeuralField, level_resolutions
from foveate.models.hash_grid import PRIMES


def _bilinear(corner_value, point: torch.Tensor, resolution: int) -> torch.Tensor:
    """Reference: interpolate corner_value(ix, iy) -> (F,) at one point, written out longhand."""
    x, y = (point * resolution).tolist()
    ix, iy = min(int(x), resolution - 1), min(int(y), resolution - 1)
    fx, fy = x - ix, y - iy
    return (
        corner_value(ix, iy) * (1 - fx) * (1 - fy)
        + corner_value(ix + 1, iy) * fx * (1 - fy)
        + corner_value(ix, iy + 1) * (1 - fx) * fy
        + corner_value(ix + 1, iy + 1) * fx * fy
    )


def test_level_resolutions_run_geometrically_from_base_to_finest():
    resolutions = level_resolutions(5, 16, 256)
    assert resolutions == [16, 32, 64, 128, 256]
    assert level_resolutions(1, 8, 8) == [8]
    with pytest.raises(ValueError, match="base_resolution"):
        level_resolutions(4, 32, 16)


def test_dense_levels_match_explicit_bilinear_interpolation():
    grid = HashGrid(dims=2, levels=2, log2_table_size=12, features_per_level=3, base_resolution=4, finest_resolution=9)
    assert grid.num_dense_levels == 2
    for texture in grid.textures:
        torch.nn.init.normal_(texture)
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.3, 0.71], [0.999, 0.05]])
    encoded = grid(points).view(len(points), 2, 3)
    for level, (texture, resolution) in enumerate(zip(grid.textures, grid.resolutions, strict=True)):
        for i, point in enumerate(points):
            expected = _bilinear(lambda x, y, t=texture: t[:, y, x], point, resolution)
            torch.testing.assert_close(encoded[i, level], expected, rtol=1e-5, atol=1e-6)


def test_hashed_levels_match_explicit_spatial_hash():
    grid = HashGrid(dims=2, levels=1, log2_table_size=6, features_per_level=2, base_resolution=20, finest_resolution=20)
    assert grid.num_dense_levels == 0
    torch.nn.init.normal_(grid.table)
    rows = grid.table.shape[1]

    def corner(x: int, y: int) -> torch.Tensor:
        return grid.table[0, ((x * PRIMES[0]) ^ (y * PRIMES[1])) % rows]

    points = torch.tensor([[0.5, 0.5], [0.123, 0.987], [0.0, 1.0]])
    encoded = grid(points)
    for i, point in enumerate(points):
        torch.testing.assert_close(encoded[i], _bilinear(corner, point, 20), rtol=1e-5, atol=1e-6)


def test_mixed_levels_shape_and_gradients_reach_every_parameter():
    grid = HashGrid(dims=2, levels=6, log2_table_size=8, features_per_level=2, base_resolution=4, finest_resolution=64)
    assert 0 < grid.num_dense_levels < 6
    field = NeuralField(grid, out_features=3, hidden=8, hidden_layers=2)
    out = field(torch.rand(100, 2))
    assert out.shape == (100, 3)
    out.square().sum().backward()
    for name, parameter in field.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_three_dimensional_points_are_encoded():
    grid = HashGrid(dims=3, levels=3, log2_table_size=10, features_per_level=2, base_resolution=4, finest_resolution=32)
    assert grid(torch.rand(7, 3)).shape == (7, 6)
    with pytest.raises(ValueError, match="shape"):
        grid(torch.rand(7, 2))


def test_mlp_depth_and_width():
    mlp = MLP(5, 2, hidden=7, hidden_layers=3)
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp) == 4
    assert mlp(torch.rand(4, 5)).shape == (4, 2)
