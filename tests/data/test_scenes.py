"""Scene formats: round trips through Blender and NeuS files, and errors that name the frame."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.scenes import (
    Scene,
    SceneFormatError,
    detect_format,
    load_blender,
    load_neus,
    load_scene,
    save_blender,
    save_neus,
)


def make_scene(views: int = 5, width: int = 12, height: int = 9, distortion: bool = False, masks: bool = True) -> Scene:
    generator = torch.Generator().manual_seed(1)
    alpha = torch.randint(0, 256, (views, height, width), generator=generator, dtype=torch.int32)
    alpha[:, :2] = 0
    alpha[:, -2:] = 255
    straight = torch.randint(0, 256, (views, height, width, 3), generator=generator, dtype=torch.int32)
    images = straight if not masks else (straight * alpha[..., None] + 127) // 255  # colour over black
    c2w = look_at(camera_positions("sphere", views, radius=3.0), (0.0, 0.1, 0.0), (0.0, 1.0, 0.0))
    intrinsics = torch.tensor([[11.0, 12.5, 6.2, 4.4]]).repeat(views, 1)
    intrinsics[1, 0] = 13.0  # one view with its own focal length
    coefficients = torch.tensor([[-0.1, 0.02, 0.001, -0.002, 0.0]]).repeat(views, 1) if distortion else None
    normalization = torch.eye(4, dtype=torch.float64) * 1.7
    normalization[3, 3] = 1.0
    normalization[:3, 3] = torch.tensor([0.0, 0.1, 0.0])
    return Scene(
        images=images.to(torch.uint8),
        cameras=Cameras(c2w, intrinsics, width, height, coefficients),
        names=[f"view_{i}" for i in range(views)],
        masks=alpha.to(torch.uint8) if masks else None,
        depths=torch.rand(views, height, width, generator=generator),
        normals=torch.nn.functional.normalize(torch.randn(views, height, width, 3, generator=generator), dim=-1),
        splits={"train": [0, 2, 4], "val": [1], "test": [3]},
        normalization=normalization,
    )


def assert_same_scene(a: Scene, b: Scene, names: bool = True) -> None:
    assert torch.equal(a.images, b.images)
    assert (a.masks is None) == (b.masks is None)
    if a.masks is not None:
        assert torch.equal(a.masks, b.masks)
    torch.testing.assert_close(a.cameras.camera_to_world, b.cameras.camera_to_world, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.cameras.intrinsics, b.cameras.intrinsics, atol=1e-4, rtol=0)
    assert (a.cameras.width, a.cameras.height) == (b.cameras.width, b.cameras.height)
    assert a.splits == b.splits
    if names:
        assert a.names == b.names
    torch.testing.assert_close(a.normalization, b.normalization)
    assert torch.equal(a.depths, b.depths)
    assert torch.equal(a.normals, b.normals)


def test_blender_round_trip(tmp_path):
    scene = make_scene()
    save_blender(scene, tmp_path)
    assert detect_format(tmp_path) == "blender"
    meta = json.loads((tmp_path / "transforms_train.json").read_text())
    assert meta["w"] == 12 and meta["h"] == 9 and "camera_angle_x" in meta
    with Image.open(tmp_path / "train" / "view_0.png") as image:
        assert image.mode == "RGBA"
    loaded = load_blender(tmp_path)
    # Blender files hold views split by split: train first, then val, then test.
    order = scene.splits["train"] + scene.splits["val"] + scene.splits["test"]
    reordered = scene.select(order)
    reordered.splits = {"train": [0, 1, 2], "val": [3], "test": [4]}
    assert_same_scene(reordered, loaded)


def test_blender_round_trip_keeps_distortion(tmp_path):
    scene = make_scene(distortion=True)
    save_blender(scene, tmp_path)
    loaded = load_blender(tmp_path).split("train")
    torch.testing.assert_close(loaded.cameras.distortion, scene.split("train").cameras.distortion)


def test_neus_round_trip(tmp_path):
    scene = make_scene()
    save_neus(scene, tmp_path)
    assert detect_format(tmp_path) == "neus"
    cameras = np.load(tmp_path / "cameras_sphere.npz")
    assert {"world_mat_0", "scale_mat_0", "world_mat_inv_0", "scale_mat_inv_0"} <= set(cameras.files)
    # NeuS puts pixel centres at integer coordinates: its principal point sits half a pixel lower.
    world = cameras["world_mat_0"]
    c2w = scene.cameras.camera_to_world[0].double().numpy()
    projected = world @ c2w[:, 3]  # the camera centre projects to infinity...
    assert abs(projected[2]) < 1e-9
    point = c2w @ np.array([0.0, 0.0, 2.0, 1.0])  # ...and a point on its axis to the principal point
    pixel = world @ point
    np.testing.assert_allclose(pixel[:2] / pixel[2], [6.2 - 0.5, 4.4 - 0.5], atol=1e-9)
    assert_same_scene(scene, load_neus(tmp_path))


def test_formats_agree_on_the_same_scene(tmp_path):
    scene = make_scene()
    save_blender(scene, tmp_path)
    save_neus(scene, tmp_path, geometry=False)
    blender, neus = load_scene(tmp_path, "blender"), load_scene(tmp_path, "neus")
    for split in ("train", "val", "test"):
        assert_same_scene(blender.split(split), neus.split(split))


def test_scene_without_masks_round_trips_as_rgb(tmp_path):
    scene = make_scene(masks=False)
    save_blender(scene, tmp_path / "blender")
    save_neus(scene, tmp_path / "neus")
    with Image.open(tmp_path / "blender" / "train" / "view_0.png") as image:
        assert image.mode == "RGB"
    assert load_blender(tmp_path / "blender").masks is None
    assert load_neus(tmp_path / "neus").masks is None
    assert torch.equal(load_neus(tmp_path / "neus").images, scene.images)


def test_neus_refuses_distortion(tmp_path):
    with pytest.raises(ValueError, match="distortion"):
        save_neus(make_scene(distortion=True), tmp_path)


def test_downsampled_scene():
    scene = make_scene(width=12, height=9)
    half = scene.downsampled(2)
    assert half.images.shape == (5, 4, 6, 3) and half.masks.shape == (5, 4, 6)
    assert half.depths is None
    expected = scene.images[0, :2, :2].double().mean(dim=(0, 1)).round()
    assert torch.equal(half.images[0, 0, 0].double(), expected)
    torch.testing.assert_close(half.cameras.intrinsics, scene.cameras.intrinsics / 2)


# ------------------------------------------------------------------------------------------------
# Malformed input


def _blender_dir(tmp_path, masks: bool = True):
    save_blender(make_scene(masks=masks), tmp_path)
    return tmp_path, tmp_path / "transforms_train.json"


def _edit(file, edit) -> None:
    meta = json.loads(file.read_text())
    edit(meta)
    file.write_text(json.dumps(meta))


def test_missing_image_names_file_and_frame(tmp_path):
    root, _ = _blender_dir(tmp_path)
    (root / "train" / "view_2.png").unlink()
    with pytest.raises(SceneFormatError, match=r"transforms_train\.json: frame 1 \('\./train/view_2'\).*not found"):
        load_blender(root)


def test_mixed_image_sizes_name_the_frame(tmp_path):
    root, _ = _blender_dir(tmp_path)
    Image.new("RGBA", (7, 7)).save(root / "test" / "view_3.png")
    with pytest.raises(SceneFormatError, match=r"transforms_test\.json: frame 0 .*7x7.*share one size"):
        load_blender(root)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[float("nan"), 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "NaN"),
        ([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "not invertible"),
        ([[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "not orthonormal"),
        ([[1, 0, 0], [0, 1, 0]], "3x4 or 4x4"),
    ],
)
def test_bad_poses_name_the_frame(tmp_path, matrix, message):
    root, file = _blender_dir(tmp_path)

    def edit(meta):
        meta["frames"][2]["transform_matrix"] = matrix

    _edit(file, edit)
    with pytest.raises(SceneFormatError, match=rf"transforms_train\.json: frame 2 .*{message}"):
        load_blender(root)


def test_empty_or_broken_json(tmp_path):
    root, file = _blender_dir(tmp_path)
    _edit(file, lambda meta: meta.update(frames=[]))
    with pytest.raises(SceneFormatError, match=r"transforms_train\.json: no 'frames'"):
        load_blender(root)
    file.write_text("{not json")
    with pytest.raises(SceneFormatError, match=r"transforms_train\.json: cannot parse JSON"):
        load_blender(root)


def test_missing_masks_where_required(tmp_path):
    root, _ = _blender_dir(tmp_path, masks=False)
    with pytest.raises(SceneFormatError, match=r"transforms_train\.json: frame 0 .*no alpha channel"):
        load_blender(root, require_masks=True)
    neus = tmp_path / "neus"
    save_neus(make_scene(masks=False), neus)
    with pytest.raises(SceneFormatError, match=r"mask.*not found"):
        load_neus(neus, require_masks=True)


def test_neus_missing_mask_names_the_frame(tmp_path):
    save_neus(make_scene(), tmp_path)
    (tmp_path / "mask" / "003.png").unlink()
    with pytest.raises(SceneFormatError, match=r"mask: frame 3 \('003\.png'\): mask .* not found"):
        load_neus(tmp_path)


def test_neus_missing_or_singular_world_mat_names_the_frame(tmp_path):
    save_neus(make_scene(), tmp_path)
    arrays = dict(np.load(tmp_path / "cameras_sphere.npz"))
    del arrays["world_mat_1"]
    np.savez(tmp_path / "cameras_sphere.npz", **arrays)
    with pytest.raises(SceneFormatError, match=r"cameras_sphere\.npz: frame 1 \('001\.png'\): 'world_mat_1' missing"):
        load_neus(tmp_path)
    arrays["world_mat_1"] = np.zeros((4, 4))
    np.savez(tmp_path / "cameras_sphere.npz", **arrays)
    with pytest.raises(SceneFormatError, match=r"frame 1 .*not invertible"):
        load_neus(tmp_path)


def test_unknown_directory_names_the_formats_looked_for(tmp_path):
    with pytest.raises(SceneFormatError, match=r"no scene found; looked for .*Blender.*transforms\.json.*NeuS.*COLMAP"):
        detect_format(tmp_path)
    with pytest.raises(SceneFormatError, match="scene directory not found"):
        load_scene(tmp_path / "missing")
    with pytest.raises(ValueError, match="scene format must be one of"):
        load_scene(tmp_path, "ply")


def test_moved_readers_are_the_format_modules_own():
    from foveate.data.formats import blender, neus

    assert (load_blender, save_blender, load_neus, save_neus) == (
        blender.load_blender,
        blender.save_blender,
        neus.load_neus,
        neus.save_neus,
    )


# ------------------------------------------------------------------------------------------------
# Sparse points


def test_points_are_validated_and_kept_by_select_split_and_downsampled():
    scene = make_scene()
    points = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    colors = torch.tensor([[255, 0, 0], [0, 255, 0]], dtype=torch.uint8)
    scene = replace(scene, points=points, point_colors=colors)
    for derived in (scene.select([3, 1]), scene.split("val"), scene.downsampled(3)):
        assert torch.equal(derived.points, points) and torch.equal(derived.point_colors, colors)
    with pytest.raises(ValueError, match="points must be float32"):
        replace(scene, points=points.double())
    with pytest.raises(ValueError, match="point_colors must be uint8"):
        replace(scene, point_colors=colors[:1])
    with pytest.raises(ValueError, match="without points"):
        replace(scene, points=None)


# ------------------------------------------------------------------------------------------------
# Albedos, and what downsampling keeps


def test_albedos_are_validated_and_kept_by_select():
    scene = make_scene()
    albedos = torch.arange(5 * 9 * 12 * 3).remainder(256).to(torch.uint8).reshape(5, 9, 12, 3)
    scene = replace(scene, albedos=albedos)
    assert torch.equal(scene.select([3, 1]).albedos, albedos[[3, 1]])
    with pytest.raises(ValueError, match=r"albedos must be torch\.uint8"):
        replace(scene, albedos=albedos.float())
    with pytest.raises(ValueError, match="albedos must be"):
        replace(scene, albedos=albedos[:, :, :, :1])


def test_downsampled_shrinks_albedos_and_renormalises_normals():
    scene = make_scene(width=4, height=2).select([0])
    normals = torch.zeros(1, 2, 4, 3)
    # Block (0, 0): two normals along +x and two along +y average to (1, 1, 0) / 2, renormalised
    # to (1, 1, 0) / sqrt(2). Block (0, 1): one normal along +z, three pixels without: (0, 0, 1).
    normals[0, 0, 0] = normals[0, 1, 0] = torch.tensor([1.0, 0.0, 0.0])
    normals[0, 0, 1] = normals[0, 1, 1] = torch.tensor([0.0, 1.0, 0.0])
    normals[0, 0, 2] = torch.tensor([0.0, 0.0, 1.0])
    albedos = torch.tensor([[10, 20, 30, 40], [50, 60, 70, 80]], dtype=torch.uint8)[None, ..., None].expand(1, 2, 4, 3)
    masks = torch.full((1, 2, 4), 255, dtype=torch.uint8)
    half = replace(scene, normals=normals, albedos=albedos.contiguous(), masks=masks).downsampled(2)
    assert half.depths is None
    assert half.albedos[0, 0].tolist() == [[35] * 3, [55] * 3]  # (10 + 20 + 50 + 60) / 4, (30 + 40 + 70 + 80) / 4
    torch.testing.assert_close(half.normals[0, 0, 0], torch.tensor([1.0, 1.0, 0.0]) / 2**0.5)
    torch.testing.assert_close(half.normals[0, 0, 1], torch.tensor([0.0, 0.0, 1.0]))
    # Where the shrunk mask is 0 (block (0, 1) holds 1, 0, 0, 0: 0.25 rounds to 0), no normal.
    masks[0, :, 2:] = 0
    masks[0, 0, 2] = 1
    half = replace(scene, normals=normals, masks=masks).downsampled(2)
    assert half.masks[0, 0].tolist() == [255, 0] and half.normals[0, 0, 1].eq(0).all()
