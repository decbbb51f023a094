"""Tiny Mitsuba renders: files in the Blender, NeuS and RNb-NeuS layouts, geometry consistent with the cameras."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from foveate.data.render import RenderConfig, mitsuba_variant, render
from foveate.data.scenes import load_scene


def _mitsuba_or_skip() -> None:
    try:
        mitsuba_variant("scalar_rgb")
    except (ImportError, RuntimeError, ValueError) as error:
        pytest.skip(f"Mitsuba 3 cannot load here ({error}); install with pip install 'foveate[render]'")


def _interior(values: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood all agree (away from edges between surfaces)."""
    padded = torch.nn.functional.pad(values[None, None].float(), (1, 1, 1, 1), value=0.0)
    return torch.nn.functional.max_pool2d(-padded, 3, stride=1)[0, 0] == -1.0


@pytest.mark.parametrize("variant", ["auto", "scalar_rgb"])
def test_tiny_cornell_box_render(tmp_path, variant):
    _mitsuba_or_skip()
    config = RenderConfig(
        out=tmp_path,
        scene="cornell",
        views=2,
        val_views=1,
        test_views=0,
        width=24,
        height=20,
        spp=64,
        variant=variant,
        progress=False,
    )
    render(config)
    for name in (
        "transforms_train.json",
        "transforms_val.json",
        "cameras_sphere.npz",
        "image/000.png",
        "mask/002.png",
        "depth/000.npy",
        "normal/002.npy",
        "cameras.npz",
        "normal/002.png",
        "albedo/002.png",
        "mesh.ply",
        "render.json",
    ):
        assert (tmp_path / name).is_file(), f"{name} was not written"
    info = json.loads((tmp_path / "render.json").read_text())
    assert info["variant"] in ("llvm_ad_rgb", "scalar_rgb") and (variant == "auto" or info["variant"] == variant)

    blender, neus = load_scene(tmp_path, "blender"), load_scene(tmp_path, "neus")
    assert blender.images.shape == (3, 20, 24, 3) and blender.splits == {"train": [0, 1], "val": [2]}
    torch.testing.assert_close(blender.cameras.camera_to_world, neus.cameras.camera_to_world, atol=1e-5, rtol=0)
    assert torch.equal(blender.images, neus.images) and torch.equal(blender.masks, neus.masks)
    assert float(blender.images.float().mean()) > 20  # lit, not black

    # Rays from foveate's cameras, scaled by Mitsuba's depth, land on the walls they see:
    # the back wall (normal +z) lies at z = -1, the red wall (normal +x) at x = -1. Depths are
    # pixel averages, so they match pixel-centre rays to about 3e-3 here; rays half a pixel
    # off would miss the grazing red wall by about 5e-2.
    errors: dict[int, list[torch.Tensor]] = {2: [], 0: []}
    for view in range(blender.num_views):
        origins, directions = blender.cameras.image_rays(view)
        points = origins + directions * blender.depths[view][..., None]
        for axis, found in errors.items():
            on_wall = _interior(blender.normals[view][..., axis] > 0.999)
            found.append((points[..., axis][on_wall] + 1.0).abs())
    for axis, found in errors.items():
        error = torch.cat(found)
        assert error.numel() >= 20, f"too few pixels see the wall with normal along axis {axis}"
        assert float(error.median()) < 1e-2, f"axis {axis}: errors {error}"
        assert float(error.quantile(0.9)) < 2e-2, f"axis {axis}: errors {error}"

    # The albedo of the red wall (normal +x) is the reflectance Mitsuba's Cornell box gives it,
    # (0.570068, 0.0430135, 0.0443706), times 255.
    rnb = load_scene(tmp_path, "rnb")
    on_red_wall = torch.stack([_interior(normals[..., 0] > 0.999) for normals in blender.normals])
    assert int(on_red_wall.sum()) >= 20 and rnb.albedos[on_red_wall].unique(dim=0).tolist() == [[145, 11, 11]]


def test_tiny_bunny_render_and_mesh(tmp_path):
    _mitsuba_or_skip()
    pymeshlab = pytest.importorskip("pymeshlab", reason="the bunny ships with pymeshlab's sample meshes")
    render(
        RenderConfig(
            out=tmp_path,
            scene="bunny",
            views=1,
            val_views=0,
            test_views=0,
            width=16,
            height=16,
            spp=4,
            variant="scalar_rgb",
            progress=False,
        )
    )
    scene = load_scene(tmp_path, "neus", require_masks=True)
    covered = scene.masks[0] > 0
    assert 0.05 < float(covered.float().mean()) < 0.9  # the bunny fills part of the view
    assert bool((scene.images[0][~covered] == 0).all())  # background stays black and transparent
    distance = scene.depths[0][covered]
    assert float(distance.min()) > 3.2 - 1.0 and float(distance.max()) < 3.2 + 1.0
    meshes = pymeshlab.MeshSet()
    meshes.load_new_mesh(str(tmp_path / "mesh.ply"))
    vertices = meshes.current_mesh().vertex_matrix()
    assert len(vertices) == 28088  # the Stanford bunny as pymeshlab ships it
    assert np.linalg.norm(vertices, axis=1).max() == pytest.approx(0.95, abs=1e-4)


def test_cli_renders_and_says_what_it_wrote(tmp_path, capsys):
    _mitsuba_or_skip()
    from foveate.cli import main

    code = main(
        [
            "data",
            "render",
            "--out",
            str(tmp_path),
            "--scene",
            "cornell",
            "--views",
            "2",
            "--val-views",
            "1",
            "--test-views",
            "0",
            "--width",
            "8",
            "--height",
            "8",
            "--spp",
            "1",
            "--variant",
            "scalar_rgb",
            "--no-progress",
        ]
    )
    assert code == 0 and (tmp_path / "transforms_train.json").is_file()
    assert "wrote 3 views of cornell (2 train, 1 val) at 8x8" in capsys.readouterr().out


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="views"):
        RenderConfig(out=tmp_path, views=0)
    with pytest.raises(ValueError, match="fov"):
        RenderConfig(out=tmp_path, fov=200.0)


def test_a_crashing_fast_variant_falls_back_to_scalar(monkeypatch, caplog):
    _mitsuba_or_skip()
    import subprocess

    from foveate.data import render as render_module

    def aborting(command, **kwargs):
        return subprocess.CompletedProcess(command, returncode=-6, stdout="", stderr="LLVM ERROR (simulated)\n")

    monkeypatch.setattr(render_module.subprocess, "run", aborting)
    monkeypatch.delenv(render_module.VARIANT_ENV, raising=False)
    render_module.variant_works.cache_clear()
    render_module._fastest_working_variant.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="foveate.data.render"):
            assert mitsuba_variant("auto") == "scalar_rgb"
            assert mitsuba_variant("auto") == "scalar_rgb"
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        with pytest.raises(RuntimeError, match="fails to render"):
            mitsuba_variant("llvm_ad_rgb")
    finally:
        render_module.variant_works.cache_clear()
        render_module._fastest_working_variant.cache_clear()


def _sphere_file(tmp_path, suffix: str, colour: tuple[int, int, int] | None = None):
    """An icosphere of radius 5 around (2, -1, 3), written by trimesh: rendering must centre and shrink it."""
    trimesh = pytest.importorskip("trimesh", reason="mesh files are read with trimesh: pip install 'foveate[neus]'")
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=5.0)
    sphere.apply_translation([2.0, -1.0, 3.0])
    if colour is not None:
        sphere.visual.vertex_colors = np.tile([*colour, 255], (len(sphere.vertices), 1)).astype(np.uint8)
    path = tmp_path / f"sphere{suffix}"
    sphere.export(path)
    return path


@pytest.mark.parametrize(
    ("suffix", "colour", "albedo"),
    [
        # No vertex colours: the bunny's diffuse colour, round(255 * (0.72, 0.5, 0.32)).
        (".stl", None, (184, 128, 82)),
        # Vertex colours are the albedo, their 8-bit values taken as linear.
        (".ply", (200, 30, 30), (200, 30, 30)),
    ],
)
def test_a_mesh_file_renders_in_the_three_layouts(tmp_path, suffix, colour, albedo):
    _mitsuba_or_skip()
    mesh_file = _sphere_file(tmp_path, suffix, colour)
    out = tmp_path / "out"
    config = RenderConfig(
        out=out,
        scene=str(mesh_file),
        views=3,
        val_views=0,
        test_views=0,
        width=16,
        height=16,
        spp=4,
        variant="scalar_rgb",
        progress=False,
    )
    render(config)
    for name in ("transforms_train.json", "cameras_sphere.npz", "cameras.npz", "image/002.png", "normal/002.png"):
        assert (out / name).is_file(), f"{name} was not written"
    for name in ("albedo/002.png", "mask/002.png", "normal/002.npy", "mesh.ply"):
        assert (out / name).is_file(), f"{name} was not written"
    assert json.loads((out / "render.json").read_text())["formats"] == ["blender", "neus", "rnb"]
    blender, neus, rnb = (load_scene(out, name) for name in ("blender", "neus", "rnb"))
    assert torch.equal(blender.masks, neus.masks) and blender.albedos is None  # albedo maps are RNb-NeuS's

    # The sphere sits at the origin with radius 0.95 (its vertices; flat faces a little inside).
    covered, empty = blender.masks == 255, blender.masks == 0
    assert 0.1 < float(covered.float().mean()) < 0.6
    assert bool((rnb.albedos[empty] == 0).all())
    difference = (rnb.albedos[covered].int() - torch.tensor(albedo)).abs()
    assert int(difference.max()) <= 1, f"albedo on the sphere: {rnb.albedos[covered].unique(dim=0)}"
    for view in range(blender.num_views):
        origins, directions = blender.cameras.image_rays(view)
        # Pixels whose central ray passes within 0.75 of the centre are all sphere, beyond 1.1 all background
        # (a pixel is about 0.17 wide at this distance).
        miss = torch.linalg.cross(origins, directions).norm(dim=-1)
        assert bool(covered[view][miss < 0.75].all()) and bool(empty[view][miss > 1.1].all())
        # Where the central ray meets the sphere well inside the silhouette, Mitsuba's depth (an average
        # over 4 random samples in the pixel) and normal match the ray's hit on a sphere of radius 0.95.
        inside = miss < 0.4
        assert int(inside.sum()) >= 10
        along = -(origins * directions).sum(-1)
        hit = along - (0.95**2 - miss.clamp(max=0.95) ** 2).sqrt()
        error = (blender.depths[view] - hit)[inside].abs()
        radial = torch.nn.functional.normalize(origins + directions * hit[..., None], dim=-1)
        cosine = (radial * blender.normals[view]).sum(-1)[inside]
        assert float(error.max()) < 0.05 and float(cosine.min()) > 0.99
    # RNb-NeuS normal maps hold the same normals to 16 bits.
    torch.testing.assert_close(rnb.normals[covered], blender.normals[covered], atol=1e-4, rtol=0)
    trimesh = pytest.importorskip("trimesh")
    vertices = trimesh.load(out / "mesh.ply", force="mesh").vertices
    assert np.linalg.norm(vertices, axis=1).max() == pytest.approx(0.95, abs=1e-5)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("none.ply", None, "mesh not found: {path}"),
        ("broken.ply", "not a mesh\n", "cannot read {path} as a triangle mesh"),
        ("empty.obj", "# no faces\nv 0 0 0\n", "{path} holds no triangles"),
    ],
)
def test_a_bad_mesh_file_is_a_one_line_error_naming_it(tmp_path, capsys, name, content, message):
    _mitsuba_or_skip()
    from foveate.cli import main

    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    argv = ["data", "render", "--out", str(tmp_path / "out"), "--scene", str(path), "--views", "1", "--val-views", "0"]
    assert main([*argv, "--test-views", "0", "--width", "4", "--height", "4", "--variant", "scalar_rgb"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(path=path) in err


def test_config_rejects_a_scene_that_is_neither_named_nor_a_mesh_file(tmp_path):
    with pytest.raises(ValueError, match=r"scene must be one of \['bunny', 'cornell'\] or a mesh file"):
        RenderConfig(out=tmp_path, scene="teapot.fbx")


def test_the_noise_estimate_matches_the_spread_between_renders(tmp_path):
    """Predicted per-pixel variance (moments of one render) against the variance across 8 seeds."""
    _mitsuba_or_skip()
    images, predicted = [], []
    for seed in range(8):
        out = tmp_path / f"seed{seed}"
        config = RenderConfig(
            out=out, scene="cornell", views=1, val_views=0, test_views=0, width=24, height=20, spp=8, seed=seed
        )
        render(RenderConfig(**{**config.__dict__, "noise": True, "progress": False}))
        scene = load_scene(out)
        assert scene.noise is not None and scene.noise.shape == (1, 20, 24)
        images.append(scene.images[0].float() / 255.0)
        predicted.append(scene.noise[0])
    spread = torch.stack(images).var(dim=0).mean(dim=-1)  # across seeds, averaged over RGB
    expected = torch.stack(predicted).mean(dim=0)
    ratio = float(expected.mean() / spread.mean())
    assert 0.6 < ratio < 1.6, ratio
    assert torch.corrcoef(torch.stack([expected.flatten(), spread.flatten()]))[0, 1] > 0.5
    halved = load_scene(tmp_path / "seed0").downsampled(2)
    torch.testing.assert_close(halved.noise[0, 0, 0], predicted[0][:2, :2].mean() / 4)
