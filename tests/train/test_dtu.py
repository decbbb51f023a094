"""DTU's evaluation on a synthetic scan: a 40 mm square seen 0.5 mm off, stray fragments, a masked region."""

import numpy as np
import pytest
from plyfile import PlyData, PlyElement
from scipy.io import savemat

from foveate.cli import main
from foveate.train.dtu import dtu_distance, load_dtu_scan, thin_points

SCAN = 7


def square(z: float, low: float = 0.0, high: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.array([[low, low, z], [high, low, z], [high, high, z], [low, high, z]], dtype=np.float64)
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


@pytest.fixture
def dtu_dir(tmp_path):
    (tmp_path / "ObsMask").mkdir()
    (tmp_path / "Points" / "stl").mkdir(parents=True)
    mask = np.ones((91, 91, 41), dtype=np.uint8)
    mask[:, :, 30:] = 0  # nothing is observed above z = 20 mm
    box = [[-10, -10, -10], [80, 80, 30]]
    savemat(tmp_path / "ObsMask" / f"ObsMask{SCAN}_10.mat", {"ObsMask": mask, "BB": box, "Res": 1.0})
    savemat(tmp_path / "ObsMask" / f"Plane{SCAN}.mat", {"P": [[0.0], [0.0], [1.0], [-5.0]]})  # z > 5 is above the table
    grid = np.mgrid[0:40.05:0.1, 0:40.05:0.1].reshape(2, -1).T
    truth = np.concatenate((np.c_[grid, np.full(len(grid), 10.0)], np.c_[grid[::50], np.zeros(len(grid[::50]))]))
    vertex = np.array([tuple(p) for p in truth], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(vertex, "vertex")]).write(
        str(tmp_path / "Points" / "stl" / f"stl{SCAN:03d}_total.ply")
    )
    return tmp_path


def test_a_shifted_square_scores_its_shift(dtu_dir):
    scan = load_dtu_scan(dtu_dir, SCAN)
    result = dtu_distance(*square(10.5), scan)
    assert result.accuracy == pytest.approx(0.5, abs=0.02)
    assert result.completeness == pytest.approx(0.5, abs=0.02)
    assert result.chamfer == pytest.approx((result.accuracy + result.completeness) / 2)


def test_fragments_outside_the_mask_or_20_mm_away_do_not_count(dtu_dir):
    scan = load_dtu_scan(dtu_dir, SCAN)
    vertices, faces = square(10.5)
    unobserved, _ = square(25.0, 0, 10)  # above z = 20 mm: outside the observation mask
    far, _ = square(10.0, 70, 75)  # observed, but 30 mm from every true point
    clean = dtu_distance(vertices, faces, scan)
    noisy = dtu_distance(
        np.concatenate((vertices, unobserved, far)), np.concatenate((faces, faces + 4, faces + 8)), scan
    )
    assert noisy.points_in_mask > clean.points_in_mask  # the far square is in the mask ...
    assert noisy.accuracy == pytest.approx(clean.accuracy, abs=0.01)  # ... but beyond 20 mm, so left out
    assert noisy.completeness == pytest.approx(clean.completeness, abs=0.01)


def test_thinning_keeps_no_two_points_closer_than_the_radius():
    from scipy.spatial import cKDTree

    points = np.random.default_rng(0).random((2000, 3))
    thinned = thin_points(points, 0.1)
    distances, _ = cKDTree(thinned).query(thinned, k=2)
    assert distances[:, 1].min() >= 0.1 and 10 < len(thinned) < 2000


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ObsMask3_10\.mat"):
        load_dtu_scan(tmp_path, 3)


def test_the_command_runs_dtus_protocol(dtu_dir, tmp_path, capsys):
    import trimesh

    trimesh.Trimesh(*square(10.5)).export(tmp_path / "rec.ply")
    assert (
        main(["neus", "evaluate", "--mesh", str(tmp_path / "rec.ply"), "--dtu", str(dtu_dir), "--scan", str(SCAN)]) == 0
    )
    out = capsys.readouterr().out
    assert "Chamfer-L1" in out and "mm (DTU scan 7)" in out
    assert main(["neus", "evaluate", "--mesh", str(tmp_path / "rec.ply")]) == 2
    assert "give the true mesh" in capsys.readouterr().err
