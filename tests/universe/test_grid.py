"""HELIOS's grid: cell ids of hand-placed positions, bounds, and neighbourhoods at the poles and the seam."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foveate.universe import CellId, HLGGrid

R_MIN = 4.6e10


def at(r: float, theta: float, phi: float) -> list[float]:
    """A position at radius r, azimuth theta (from +x towards +y) and polar angle phi (from +z)."""
    return [r * math.sin(phi) * math.cos(theta), r * math.sin(phi) * math.sin(theta), r * math.cos(phi)]


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (at(1.5 * R_MIN, 0.01, math.pi / 2 + 0.01), CellId(0, 32, 16)),  # shell 0; theta 0 is bin 32 of 64
        (at(2.0 * R_MIN * 1.0001, 0.01, math.pi / 2 + 0.01), CellId(1, 32, 16)),  # just past the first doubling
        (at(1024.5 * R_MIN, -math.pi + 1e-9, 0.5), CellId(10, 0, 5)),  # theta -pi opens bin 0
        (at(3 * R_MIN, math.pi - 1e-9, 0.5), CellId(1, 63, 5)),  # just below +pi: the last bin
        ([0.0, 0.0, 5 * R_MIN], CellId(2, 32, 0)),  # the north pole: atan2(0, 0) = 0, phi 0
        ([0.0, 0.0, -5 * R_MIN], CellId(2, 32, 31)),  # the south pole clamps into the last polar bin
        (at(R_MIN * 2**30 * 1.5, 2 * math.pi / 64 * 3.5 - math.pi, math.pi / 32 * 7.5), CellId(30, 3, 7)),
    ],
)
def test_cell_ids_of_hand_placed_positions(position, expected):
    assert HLGGrid().cell_of(position) == expected


def test_inside_r_min_there_is_no_cell_and_arrays_agree_with_single_lookups():
    grid = HLGGrid()
    assert grid.cell_of([R_MIN * 0.99, 0.0, 0.0]) is None
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(200, 3)) * 10.0 ** rng.uniform(10, 20, size=(200, 1))
    rows = grid.cells_of(positions)
    for position, row in zip(positions, rows, strict=True):
        cell = grid.cell_of(position)
        assert (row[0] == -1 and cell is None) or tuple(row) == (cell.l, cell.theta, cell.phi)


def test_bounds_are_the_box_of_the_eight_corners_and_hold_the_cell_centre():
    grid = HLGGrid()
    cell = CellId(3, 10, 20)
    bounds = grid.bounds(cell)
    theta = -math.pi + 10.5 * 2 * math.pi / 64
    phi = 20.5 * math.pi / 32
    inside = at(R_MIN * 8 * 1.5, theta, phi)
    for axis, value in zip("xyz", inside, strict=True):
        assert bounds["min"][axis] <= value <= bounds["max"][axis]
        assert bounds["centroid"][axis] == pytest.approx((bounds["min"][axis] + bounds["max"][axis]) / 2)
    assert grid.cell_of(inside) == cell


def test_neighbours_wrap_in_theta_clamp_in_phi_and_floor_in_l():
    grid = HLGGrid()
    assert grid.neighbours(CellId(5, 7, 9), 0) == [CellId(5, 7, 9)]
    assert len(grid.neighbours(CellId(5, 7, 9), 1)) == 27
    assert len(grid.neighbours(CellId(5, 7, 9), 2)) == 125
    seam = grid.neighbours(CellId(5, 0, 9), 1)
    assert {c.theta for c in seam} == {63, 0, 1}
    pole = grid.neighbours(CellId(5, 7, 0), 1)
    assert {c.phi for c in pole} == {0, 1} and len(pole) == 3 * 3 * 2
    south = grid.neighbours(CellId(5, 7, 31), 2)
    assert {c.phi for c in south} == {29, 30, 31} and len(south) == 5 * 5 * 3
    floor = grid.neighbours(CellId(0, 63, 0), 1)
    assert {c.l for c in floor} == {0, 1} and {c.theta for c in floor} == {62, 63, 0} and len(floor) == 2 * 3 * 2
    with pytest.raises(ValueError, match="--neighbors"):
        grid.neighbours(CellId(0, 0, 0), -1)


def test_cell_ids_parse_and_name_files_as_helios():
    assert CellId.parse("12_3_45.bin") == CellId(12, 3, 45) == CellId.parse("12_3_45")
    assert CellId(12, 3, 45).file_name == "12_3_45.bin"
    with pytest.raises(ValueError, match="not a cell id"):
        CellId.parse("12_x_45")
