"""Mesh distances: hand-checkable cases (a surface against itself, against a shifted copy) and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveate.train.geometry import compare_meshes, mesh_distance, sample_surface

pytest.importorskip("scipy")
SQUARE = (np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]), np.array([[0, 1, 2], [0, 2, 3]]))


def test_samples_are_uniform_by_area_and_on_the_surface():
    vertices, faces = SQUARE
    stretched = vertices * np.array([3.0, 1.0, 1.0])  # one face 3x the area of ... both: equal halves
    samples = sample_surface(stretched, faces, 20_000, seed=0)
    assert np.allclose(samples.points[:, 2], 0.0)
    assert samples.points[:, 0].min() >= 0.0 and samples.points[:, 0].max() <= 3.0
    # Uniform over the 3 x 1 rectangle: a third of the points in each unit of x.
    share = np.histogram(samples.points[:, 0], bins=3, range=(0, 3))[0] / 20_000
    assert np.allclose(share, 1 / 3, atol=0.02)
    assert np.allclose(np.abs(samples.normals[:, 2]), 1.0)


def test_a_surface_against_itself_is_at_distance_zero_and_a_shifted_copy_at_the_shift():
    samples = sample_surface(*SQUARE, 5000, seed=1)
    same = mesh_distance(samples, samples, thresholds=(0.001,))
    assert same.chamfer == 0.0 and same.fscore[0.001] == 1.0 and same.normal_consistency == pytest.approx(1.0)
    # Shifted along the normal, every sample's nearest neighbour is its own copy: distance = the shift.
    shifted = type(samples)(samples.points + np.array([0.0, 0.0, 0.01]), samples.normals)
    moved = mesh_distance(shifted, samples, thresholds=(0.005, 0.02))
    assert moved.accuracy == pytest.approx(0.01) and moved.completeness == pytest.approx(0.01)
    assert moved.chamfer == pytest.approx(0.01)
    assert moved.fscore[0.005] == 0.0 and moved.fscore[0.02] == 1.0
    capped = mesh_distance(shifted, samples, max_distance=0.004)
    assert capped.chamfer == pytest.approx(0.004)


def test_independent_samplings_of_one_mesh_are_close_and_a_different_mesh_is_not():
    sphere = _icosphere(3)
    near = compare_meshes(sphere, sphere, samples=20_000)
    # Two independent uniform samplings: the mean nearest-neighbour distance of a Poisson process on an
    # area A with N points is 0.5 * sqrt(A / N), here 0.5 * sqrt(4 pi / 20000) = 0.0125.
    assert near.chamfer == pytest.approx(0.5 * (4 * np.pi / 20_000) ** 0.5, rel=0.05)
    assert near.normal_consistency > 0.99
    bigger = (sphere[0] * 1.1, sphere[1])
    far = compare_meshes(bigger, sphere, samples=20_000)
    assert far.chamfer == pytest.approx(0.1, rel=0.05)


def test_the_command_compares_two_files_and_names_a_missing_one(tmp_path, capsys):
    trimesh = pytest.importorskip("trimesh")
    from foveate.cli import main

    vertices, faces = _icosphere(2)
    trimesh.Trimesh(vertices, faces).export(tmp_path / "gt.ply")
    trimesh.Trimesh(vertices + np.array([0.0, 0.0, 0.02]), faces).export(tmp_path / "mesh.obj")
    argv = ["neus", "evaluate", "--mesh", str(tmp_path / "mesh.obj"), "--gt", str(tmp_path / "gt.ply")]
    assert main([*argv, "--samples", "20000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.005 < result["chamfer"] < 0.02 and set(result["fscore"]) and result["samples"] == 20000
    assert main(["neus", "evaluate", "--mesh", str(tmp_path / "none.ply"), "--gt", str(tmp_path / "gt.ply")]) == 2
    assert "mesh not found" in capsys.readouterr().err


def _icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit sphere of triangles (no library): an icosahedron, subdivided and pushed onto the sphere."""
    t = (1 + 5**0.5) / 2
    vertices = [
        [-1, t, 0],
        [1, t, 0],
        [-1, -t, 0],
        [1, -t, 0],
        [0, -1, t],
        [0, 1, t],
        [0, -1, -t],
        [0, 1, -t],
        [t, 0, -1],
        [t, 0, 1],
        [-t, 0, -1],
        [-t, 0, 1],
    ]
    faces = [
        [0, 11, 5],
        [0, 5, 1],
        [0, 1, 7],
        [0, 7, 10],
        [0, 10, 11],
        [1, 5, 9],
        [5, 11, 4],
        [11, 10, 2],
        [10, 7, 6],
        [7, 1, 8],
        [3, 9, 4],
        [3, 4, 2],
        [3, 2, 6],
        [3, 6, 8],
        [3, 8, 9],
        [4, 9, 5],
        [2, 4, 11],
        [6, 2, 10],
        [8, 6, 7],
        [9, 8, 1],
    ]
    vertices = [np.array(v, dtype=np.float64) / np.linalg.norm(v) for v in vertices]
    for _ in range(subdivisions):
        cache, new_faces = {}, []

        def middle(a, b, cache=cache):
            key = (min(a, b), max(a, b))
            if key not in cache:
                point = vertices[a] + vertices[b]
                vertices.append(point / np.linalg.norm(point))
                cache[key] = len(vertices) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            new_faces += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        faces = new_faces
    return np.array(vertices), np.array(faces)
