"""The DTU MVS benchmark's surface evaluation, as ``jzhangbs/DTUeval-python`` (the NeuS papers' script) runs it.

For a reconstruction of scan ``s`` in DTU's world coordinates (millimetres):

1. the mesh is sampled densely and thinned so no two points are closer than ``density`` (0.2 mm);
2. **accuracy** is the mean distance from the points inside the scan's observation mask
   (``ObsMask/ObsMask{s}_10.mat``: a voxel grid ``ObsMask`` over the box ``BB`` at ``Res`` mm,
   looked up for points within ``patch`` mm of the box) to the structured-light points
   (``Points/stl/stl{s:03d}_total.ply``);
3. **completeness** is the mean distance from the structured-light points above the table
   (``ObsMask/Plane{s}.mat``: ``P . [x, 1] > 0``) to the points near the box;
4. both means leave out distances of ``max_dist`` (20 mm) or more, as the script does (it drops
   them rather than capping them); **Chamfer** is the mean of the two.

The script samples each triangle on a regular lattice; here triangles are sampled at random,
uniformly by area, twice as densely, before the same greedy thinning: the thinned clouds differ
only in which points survive, not in their spacing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import sample_surface

__all__ = ["DTUDistance", "DTUScan", "dtu_distance", "load_dtu_scan", "thin_points"]


@dataclass(frozen=True)
class DTUScan:
    """What the evaluation of one scan needs: its observation mask, its table plane and its true points."""

    obs_mask: np.ndarray
    bounds: np.ndarray
    resolution: float
    plane: np.ndarray
    points: np.ndarray


@dataclass(frozen=True)
class DTUDistance:
    """DTU's accuracy, completeness and Chamfer distance (mm), with the point counts behind them."""

    accuracy: float
    completeness: float
    chamfer: float
    points: int
    points_in_mask: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_dtu_scan(dataset_dir: str | Path, scan: int) -> DTUScan:
    """Read scan ``scan``'s ``ObsMask{scan}_10.mat``, ``Plane{scan}.mat`` and ``stl{scan:03d}_total.ply``."""
    from scipy.io import loadmat

    root = Path(dataset_dir)
    files = {
        "mask": root / "ObsMask" / f"ObsMask{scan}_10.mat",
        "plane": root / "ObsMask" / f"Plane{scan}.mat",
        "points": root / "Points" / "stl" / f"stl{scan:03d}_total.ply",
    }
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"DTU evaluation file not found: {path}")
    try:
        mask_file = loadmat(files["mask"])
        obs_mask, bounds, resolution = (mask_file[key] for key in ("ObsMask", "BB", "Res"))
        plane = np.asarray(loadmat(files["plane"])["P"], dtype=np.float64).reshape(4)
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(
            f"{files['mask'].parent}: cannot read scan {scan}'s observation mask or plane ({error})"
        ) from error
    bounds = np.asarray(bounds, dtype=np.float64).reshape(2, 3)
    return DTUScan(
        np.asarray(obs_mask, dtype=bool),
        bounds,
        float(np.asarray(resolution).reshape(-1)[0]),
        plane,
        _read_points(files["points"]),
    )


def _read_points(path: Path) -> np.ndarray:
    from plyfile import PlyData

    try:
        vertex = PlyData.read(str(path))["vertex"]
        points = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=1)
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(f"{path}: cannot read it as a PLY point cloud ({error})") from error
    if len(points) == 0:
        raise ValueError(f"{path}: holds no points")
    return points


def thin_points(points: np.ndarray, radius: float) -> np.ndarray:
    """Greedy thinning in the given order: keep a point, drop every other point within ``radius`` of it."""
    from scipy.spatial import cKDTree

    neighbours = cKDTree(points).query_ball_point(points, r=radius, workers=-1)
    keep = np.ones(len(points), dtype=bool)
    for index, near in enumerate(neighbours):
        if keep[index]:
            keep[near] = False
            keep[index] = True
    return points[keep]


def dtu_distance(
    vertices: np.ndarray,
    faces: np.ndarray,
    scan: DTUScan,
    *,
    density: float = 0.2,
    patch: float = 60.0,
    max_dist: float = 20.0,
    seed: int = 0,
) -> DTUDistance:
    """DTU's accuracy, completeness and Chamfer distance of a world-space mesh (see the module docstring)."""
    from scipy.spatial import cKDTree

    corners = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
    count = max(1, int(np.ceil(2.0 * area / density**2)))
    dense = np.concatenate((vertices, sample_surface(vertices, faces, count, seed).points))
    dense = dense[np.random.default_rng(seed).permutation(len(dense))]
    thinned = thin_points(dense, density)
    low, high = scan.bounds
    near_box = thinned[np.all((thinned >= low - patch) & (thinned < high + 2 * patch), axis=1)]
    voxel = np.around((near_box - low) / scan.resolution).astype(np.int64)
    in_grid = np.all((voxel >= 0) & (voxel < np.array(scan.obs_mask.shape)), axis=1)
    observed = np.zeros(len(near_box), dtype=bool)
    observed[in_grid] = scan.obs_mask[tuple(voxel[in_grid].T)]
    in_mask = near_box[observed]
    if len(in_mask) == 0 or len(near_box) == 0:
        raise ValueError(
            "no point of the reconstruction lies in the scan's observation mask; is the mesh in DTU's frame?"
        )
    to_truth = cKDTree(scan.points).query(in_mask, workers=-1)[0]
    above = scan.points[np.concatenate((scan.points, np.ones((len(scan.points), 1))), axis=1) @ scan.plane > 0]
    to_reconstruction = cKDTree(near_box).query(above, workers=-1)[0]
    accuracy = _mean_below(to_truth, max_dist)
    completeness = _mean_below(to_reconstruction, max_dist)
    return DTUDistance(accuracy, completeness, (accuracy + completeness) / 2.0, len(thinned), len(in_mask))


def _mean_below(distances: np.ndarray, limit: float) -> float:
    kept = distances[distances < limit]
    return float(kept.mean()) if len(kept) else float(limit)
