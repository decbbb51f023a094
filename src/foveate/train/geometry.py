"""How close a reconstructed mesh is to the true one: accuracy, completeness, Chamfer-L1, F-score, normals.

Both meshes are sampled densely and uniformly by area (:func:`sample_surface`); distances between
the two point sets come from a k-d tree (scipy). The definitions follow the DTU evaluation
(``jzhangbs/DTUeval-python``) and the usual F-score of Knapitsch et al.:

- **accuracy**: mean distance from the reconstruction's samples to the true surface (lower is better);
- **completeness**: mean distance from the true surface's samples to the reconstruction;
- **Chamfer-L1**: the mean of the two;
- **F-score at tau**: harmonic mean of precision (share of reconstruction samples within tau of the
  truth) and recall (share of true samples within tau of the reconstruction);
- **normal consistency**: mean absolute cosine between each sample's normal and the nearest
  sample's normal on the other mesh, both ways (1 is perfect).

Distances are capped at ``max_distance`` when given (DTU caps at 20 mm) so stray fragments far from
the object cannot dominate the means. Meshes are read with trimesh (PLY, OBJ, STL, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foveate.data.meshes import read_mesh

__all__ = ["MeshDistance", "SurfaceSamples", "compare_meshes", "load_mesh", "mesh_distance", "sample_surface"]


@dataclass(frozen=True)
class SurfaceSamples:
    """Points spread uniformly over a mesh's area, with the unit normal of the face each lies on."""

    points: np.ndarray
    normals: np.ndarray


@dataclass(frozen=True)
class MeshDistance:
    """The distances between two surfaces (see the module docstring), in the meshes' own units."""

    accuracy: float
    completeness: float
    chamfer: float
    fscore: dict[float, float]
    precision: dict[float, float]
    recall: dict[float, float]
    normal_consistency: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("fscore", "precision", "recall"):
            data[key] = {f"{tau:g}": value for tau, value in data[key].items()}
        return data


def load_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float64, faces (F, 3) int64)`` of a triangle mesh file, or a one-line error naming it.

    See :func:`foveate.data.meshes.read_mesh`: ``FileNotFoundError``, or a ``ValueError`` for a file
    that cannot be read or holds no triangles.
    """
    mesh = read_mesh(path)
    return mesh.vertices, mesh.faces


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> SurfaceSamples:
    """``count`` points uniformly distributed over the surface by area, with their faces' normals.

    Faces are chosen in proportion to their area, points uniformly inside them (the square-root
    barycentric construction); degenerate faces are never chosen.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    doubled_area = np.linalg.norm(cross, axis=1)
    if not doubled_area.sum() > 0:
        raise ValueError("the mesh has no area to sample")
    generator = np.random.default_rng(seed)
    chosen = generator.choice(len(faces), size=count, p=doubled_area / doubled_area.sum())
    root = np.sqrt(generator.random(count))
    second = generator.random(count)
    weights = np.stack([1.0 - root, root * (1.0 - second), root * second], axis=1)
    points = (corners[chosen] * weights[:, :, None]).sum(axis=1)
    normals = cross[chosen] / doubled_area[chosen, None]
    return SurfaceSamples(points, normals)


def mesh_distance(
    reconstruction: SurfaceSamples,
    truth: SurfaceSamples,
    thresholds: Sequence[float] = (),
    max_distance: float | None = None,
) -> MeshDistance:
    """Distances between two sampled surfaces (see the module docstring)."""
    from scipy.spatial import cKDTree

    to_truth, nearest_truth = cKDTree(truth.points).query(reconstruction.points, workers=-1)
    to_reconstruction, nearest_reconstruction = cKDTree(reconstruction.points).query(truth.points, workers=-1)
    if max_distance is not None:
        to_truth = np.minimum(to_truth, max_distance)
        to_reconstruction = np.minimum(to_reconstruction, max_distance)
    accuracy, completeness = float(to_truth.mean()), float(to_reconstruction.mean())
    precision = {tau: float((to_truth < tau).mean()) for tau in thresholds}
    recall = {tau: float((to_reconstruction < tau).mean()) for tau in thresholds}
    fscore = {
        tau: 0.0
        if precision[tau] + recall[tau] == 0
        else 2 * precision[tau] * recall[tau] / (precision[tau] + recall[tau])
        for tau in thresholds
    }
    forward = np.abs((reconstruction.normals * truth.normals[nearest_truth]).sum(axis=1))
    backward = np.abs((truth.normals * reconstruction.normals[nearest_reconstruction]).sum(axis=1))
    return MeshDistance(
        accuracy=accuracy,
        completeness=completeness,
        chamfer=(accuracy + completeness) / 2.0,
        fscore=fscore,
        precision=precision,
        recall=recall,
        normal_consistency=float((forward.mean() + backward.mean()) / 2.0),
        samples=len(reconstruction.points),
    )


def compare_meshes(
    reconstruction: str | Path | tuple[np.ndarray, np.ndarray],
    truth: str | Path | tuple[np.ndarray, np.ndarray],
    *,
    samples: int = 200_000,
    thresholds: Sequence[float] | None = None,
    max_distance: float | None = None,
    seed: int = 0,
) -> MeshDistance:
    """Sample both meshes (files, or ``(vertices, faces)``) and measure their distance.

    ``thresholds`` default to 0.5%, 1% and 2% of the true mesh's bounding-box diagonal.
    """
    reconstruction = load_mesh(reconstruction) if isinstance(reconstruction, (str, Path)) else reconstruction
    truth = load_mesh(truth) if isinstance(truth, (str, Path)) else truth
    if thresholds is None:
        diagonal = float(np.linalg.norm(truth[0].max(axis=0) - truth[0].min(axis=0)))
        thresholds = tuple(fraction * diagonal for fraction in (0.005, 0.01, 0.02))
    return mesh_distance(
        sample_surface(*reconstruction, samples, seed),
        sample_surface(*truth, samples, seed + 1),
        thresholds,
        max_distance,
    )
