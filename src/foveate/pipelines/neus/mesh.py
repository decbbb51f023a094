"""Meshes from a signed-distance field: marching cubes, the scene's scale matrix, PLY files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = ["MESH_BOUND", "extract_mesh", "to_world", "write_ply"]

MESH_BOUND = 1.01
"""Half-size of the cube marched (NeuS's object box: the unit sphere's cube, slightly enlarged)."""


@torch.no_grad()
def extract_mesh(
    sdf: Callable[[torch.Tensor], torch.Tensor],
    resolution: int,
    threshold: float = 0.0,
    *,
    bound: float = MESH_BOUND,
    device: torch.device | str = "cpu",
    chunk: int = 1 << 18,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``sdf = threshold`` level set in ``[-bound, bound]^3``, in the SDF's own (normalised) space.

    ``sdf`` maps ``(M, 3)`` points to ``(M,)`` signed distances (negative inside). The field is
    sampled on a ``resolution^3`` lattice, ``chunk`` points at a time, and the surface extracted
    with scikit-image's marching cubes; faces wind so their normals point out of the object.

    Returns:
        ``vertices (V, 3) float64`` and ``faces (F, 3) int64``; both empty if the level is never crossed.
    """
    from skimage.measure import marching_cubes

    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    axis = torch.linspace(-bound, bound, resolution, device=device)
    values = np.empty((resolution, resolution, resolution), dtype=np.float32)
    rows = max(1, chunk // (resolution * resolution))
    for start in range(0, resolution, rows):
        xs = axis[start : start + rows]
        grid = torch.stack(torch.meshgrid(xs, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        values[start : start + len(xs)] = sdf(grid).reshape(len(xs), resolution, resolution).float().cpu().numpy()
    if not np.isfinite(values).all():
        raise ValueError("the SDF has non-finite values; the model has diverged")
    if values.min() >= threshold or values.max() <= threshold:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    spacing = 2.0 * bound / (resolution - 1)
    # On the SDF itself (negative inside), scikit-image's default winding faces out of the object.
    vertices, faces, _, _ = marching_cubes(values, level=threshold, spacing=(spacing,) * 3)
    return vertices.astype(np.float64) - bound, faces.astype(np.int64)


def to_world(vertices: np.ndarray, normalization: torch.Tensor | np.ndarray) -> np.ndarray:
    """Normalised-space points mapped to the world by the scene's ``(4, 4)`` scale matrix (NeuS's ``scale_mat``)."""
    matrix = np.asarray(normalization, dtype=np.float64)
    return vertices @ matrix[:3, :3].T + matrix[:3, 3]


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """A binary PLY of the triangles, with ``(V, 3)`` uint8 vertex colours when given; returns ``path``."""
    from plyfile import PlyData, PlyElement

    vertex_type = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if colors is not None:
        vertex_type += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.empty(len(vertices), dtype=vertex_type)
    for index, name in enumerate("xyz"):
        vertex[name] = vertices[:, index]
    if colors is not None:
        for index, name in enumerate(("red", "green", "blue")):
            vertex[name] = colors[:, index]
    face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
    face["vertex_indices"] = faces
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")]).write(str(path))
    return path
