import numpy as np
import pytest
import torch

from foveate.pipelines.neus.mesh import extract_mesh, to_world, write_ply


def sphere(points: torch.Tensor) -> torch.Tensor:
    return points.norm(dim=-1) - 0.5


def test_marching_cubes_finds_the_sphere_with_outward_faces():
    vertices, faces = extract_mesh(sphere, 48, chunk=5000)
    radii = np.linalg.norm(vertices, axis=1)
    assert np.abs(radii - 0.5).max() < 0.01
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    centres = corners.mean(axis=1)
    assert ((normals * centres).sum(axis=1) > 0).mean() > 0.99


def test_the_threshold_picks_another_level_and_no_crossing_gives_an_empty_mesh():
    vertices, _ = extract_mesh(sphere, 32, threshold=0.2)
    assert np.abs(np.linalg.norm(vertices, axis=1) - 0.7).max() < 0.02
    vertices, faces = extract_mesh(lambda p: p.norm(dim=-1) + 1.0, 16)
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)


def test_a_diverged_field_is_an_error():
    with pytest.raises(ValueError, match="non-finite"):
        extract_mesh(lambda p: p[:, 0] / 0.0, 8)


def test_to_world_applies_the_scale_matrix():
    matrix = np.diag([2.0, 2.0, 2.0, 1.0])
    matrix[:3, 3] = [1.0, 0.0, -1.0]
    assert np.allclose(to_world(np.array([[0.5, 0.0, 0.0]]), matrix), [[2.0, 0.0, -1.0]])


def test_ply_round_trips_vertices_faces_and_colours(tmp_path):
    import trimesh

    vertices = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    path = write_ply(tmp_path / "meshes" / "t.ply", vertices, np.array([[0, 1, 2]]), colors)
    mesh = trimesh.load(path, process=False)
    assert np.allclose(mesh.vertices, vertices) and mesh.faces.tolist() == [[0, 1, 2]]
    assert np.array_equal(mesh.visual.vertex_colors[:, :3], colors)
