"""A tiny Mitsuba render: files in both formats, geometry consistent with the cameras."""

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
