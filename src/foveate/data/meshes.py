"""Triangle meshes from files (PLY, OBJ, STL and whatever else trimesh reads), for rendering and evaluation.

Errors are one line naming the file: ``FileNotFoundError`` for a missing file, :class:`MeshError`
(a ``ValueError``) for one that cannot be read or holds no triangles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MeshError", "TriangleMesh", "read_mesh"]

INSTALL_HINT = "pip install 'foveate[neus]'"


class MeshError(ValueError):
    """A mesh file that cannot be read, or that holds no triangles; the message names the file."""


@dataclass(frozen=True)
class TriangleMesh:
    """A triangle mesh as its file holds it.

    Attributes:
        vertices: ``(V, 3)`` float64 positions.
        faces: ``(F, 3)`` int64 vertex indices, ``F >= 1``.
        colors: ``(V, 3)`` float32 vertex colours in [0, 1] (the file's 8-bit values over 255), or
            ``None`` when the file has none.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None


def read_mesh(path: str | Path, merge_vertices: bool = False) -> TriangleMesh:
    """Read a triangle mesh file (a scene of several meshes is concatenated).

    Args:
        path: the file; trimesh picks the reader by its suffix.
        merge_vertices: merge vertices at the same position, so faces share them. STL files
            repeat each corner per triangle; merged, their normals can be smooth.
    """
    try:
        import trimesh
    except ImportError as error:
        raise ImportError(f"reading meshes needs trimesh: {INSTALL_HINT}") from error
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh not found: {path}")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh's loaders fail in their own ways on damaged files
        raise MeshError(f"cannot read {path} as a triangle mesh ({' '.join(str(error).split())})") from error
    if len(getattr(mesh, "faces", ())) == 0 or len(mesh.vertices) == 0:
        raise MeshError(f"{path} holds no triangles")
    if merge_vertices:
        mesh.merge_vertices()
    colors = None
    if mesh.visual.kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors, dtype=np.float32)[:, :3] / 255.0
    return TriangleMesh(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64), colors)
