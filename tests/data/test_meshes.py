"""Mesh files: vertex colours, merged STL corners, and one-line errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.data.meshes import MeshError, read_mesh

trimesh = pytest.importorskip("trimesh", reason="meshes are read with trimesh: pip install 'foveate[neus]'")


def test_ply_vertex_colours_are_read_over_255(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=1)
    sphere.visual.vertex_colors = np.tile([255, 51, 0, 255], (len(sphere.vertices), 1)).astype(np.uint8)
    sphere.export(tmp_path / "coloured.ply")
    mesh = read_mesh(tmp_path / "coloured.ply")
    assert mesh.vertices.shape == (42, 3) and mesh.faces.shape == (80, 3)  # 12 + 30 vertices, 20 * 4 faces
    np.testing.assert_allclose(mesh.colors, np.tile([1.0, 0.2, 0.0], (42, 1)), atol=1e-7)
    trimesh.creation.icosphere(subdivisions=1).export(tmp_path / "plain.ply")
    assert read_mesh(tmp_path / "plain.ply").colors is None


def test_stl_corners_are_merged_on_request(tmp_path):
    trimesh.creation.icosphere(subdivisions=1).export(tmp_path / "sphere.stl")
    assert len(read_mesh(tmp_path / "sphere.stl").vertices) == 80 * 3  # STL repeats every corner
    merged = read_mesh(tmp_path / "sphere.stl", merge_vertices=True)
    assert merged.vertices.shape == (42, 3) and merged.faces.shape == (80, 3)


def test_bad_mesh_files_are_one_line_errors_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mesh not found: .*none\.ply"):
        read_mesh(tmp_path / "none.ply")
    (tmp_path / "broken.ply").write_text("not a mesh\n")
    with pytest.raises(MeshError, match=r"cannot read .*broken\.ply as a triangle mesh") as caught:
        read_mesh(tmp_path / "broken.ply")
    assert "\n" not in str(caught.value)
    trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=int)).export(tmp_path / "empty.stl")
    with pytest.raises(MeshError, match=r"empty\.stl holds no triangles"):
        read_mesh(tmp_path / "empty.stl")
