"""RNb-NeuS scenes: hand-decoded normal maps, round trips, the layout beside NeuS's, and errors that name the view."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import png
import pytest
import torch
from PIL import Image

from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.formats.rnb import load_rnb, save_rnb
from foveate.data.scenes import Scene, SceneFormatError, detect_format, load_scene, save_neus

# A camera at (0, 0, -2) turned a quarter about y: its rotation R = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
# (columns: the camera's x, y, z axes in the world) sends camera (x, y, z) to world (z, y, -x), so
# it looks along world +x. Intrinsics f = 2, principal point at NeuS's pixel (0, 0), which is
# foveate's (0.5, 0.5): the centre of the first pixel, whose ray is then the optical axis.
QUARTER_TURN_Y = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
CENTRE = np.array([0.0, 0.0, -2.0])


def world_mat(rotation: np.ndarray = QUARTER_TURN_Y, centre: np.ndarray = CENTRE) -> np.ndarray:
    """IDR's ``K @ world_to_camera`` built by hand."""
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = rotation.T
    world_to_camera[:3, 3] = -rotation.T @ centre
    k = np.diag([2.0, 2.0, 1.0, 1.0])
    return k @ world_to_camera


def write_png16(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width, planes = samples.shape
    with path.open("wb") as file:
        writer = png.Writer(width, height, greyscale=planes == 1, bitdepth=16)
        writer.write(file, samples.astype(np.uint16).reshape(height, width * planes))


def write_png8(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(samples, dtype=np.uint8)).save(path)


def hand_made_scene(root: Path, normals: np.ndarray, masks: np.ndarray | None = None, bits: int = 8) -> None:
    """One view per normal map in ``normals`` (V, H, W, 3), all with the camera above."""
    np.savez(root / "cameras.npz", **{f"world_mat_{i}": world_mat() for i in range(len(normals))})
    for i, samples in enumerate(normals):
        (write_png8 if bits == 8 else write_png16)(root / "normal" / f"{i:03d}.png", samples)
        if masks is not None:
            write_png8(root / "mask" / f"{i:03d}.png", masks[i])


def to_world(camera: list[float]) -> list[float]:
    """Camera (x, y, z), unit length, to world (z, y, -x) under the quarter turn."""
    x, y, z = np.asarray(camera) / np.linalg.norm(camera)
    return [z, y, -x]


@pytest.mark.parametrize("bits", [8, 16])
def test_hand_made_normal_pixels_decode_to_hand_computed_world_normals(tmp_path, bits):
    top = 2**bits - 1
    # Pixel 0: (128, 64, 255) at 8 bits, (32768, 16384, 65535) at 16. Pixel 1: the same normal,
    # its mask just below half. Pixel 2: mid-grey (background), its mask on.
    if bits == 8:
        normal = [128, 64, 255]
        camera = [2 * 128 / 255 - 1, -(2 * 64 / 255 - 1), -(2 * 255 / 255 - 1)]
    else:
        normal = [32768, 16384, 65535]
        camera = [2 * 32768 / 65535 - 1, -(2 * 16384 / 65535 - 1), -(2 * 65535 / 65535 - 1)]
    mid = (top + 1) // 2
    normals = np.array([[[normal, normal, [mid, mid, mid]]]])
    masks = np.array([[[128, 127, 255]]])
    hand_made_scene(tmp_path, normals, masks, bits)
    scene = load_rnb(tmp_path)

    assert scene.names == ["000"] and (scene.width, scene.height) == (3, 1)
    assert scene.masks[0, 0].tolist() == [255, 0, 255]  # 128 / 255 > 0.5 > 127 / 255
    torch.testing.assert_close(
        scene.normals[0, 0, 0], torch.tensor(to_world(camera), dtype=torch.float32), atol=1e-6, rtol=0
    )
    assert scene.normals[0, 0, 1:].eq(0).all()  # masked out; decoded length about 0 (background)
    assert scene.albedos is None
    # The camera sits at (0, 0, -2) and its optical axis, pixel 0's ray, points along world
    # R (0, 0, 1) = (1, 0, 0); the preview is grey max(0, n . v) with v = -(1, 0, 0).
    torch.testing.assert_close(scene.cameras.camera_to_world[0, :3, 3], torch.tensor([0.0, 0.0, -2.0]))
    torch.testing.assert_close(scene.cameras.intrinsics[0], torch.tensor([2.0, 2.0, 0.5, 0.5]))
    shade = -to_world(camera)[0]
    assert scene.images[0, 0, 0].tolist() == [round(255 * shade)] * 3
    assert scene.images[0, 0, 1:].eq(0).all()


@pytest.mark.parametrize("planes", [1, 3])
def test_16_bit_masks_are_thresholded_at_half_their_range(tmp_path, planes):
    hand_made_scene(tmp_path, np.array([[[[128, 64, 255]] * 3]]))
    write_png16(tmp_path / "mask" / "000.png", np.repeat(np.array([[[32768], [32767], [65535]]]), planes, axis=2))
    assert load_rnb(tmp_path).masks[0, 0].tolist() == [255, 0, 255]  # 32768 / 65535 > 0.5 > 32767 / 65535


def test_albedo_maps_of_either_depth_are_read_as_linear_values(tmp_path):
    hand_made_scene(tmp_path, np.array([[[[128, 128, 0]]], [[[128, 128, 0]]]]))
    write_png8(tmp_path / "albedo" / "000.png", [[[255, 51, 0]]])
    write_png16(tmp_path / "albedo" / "001.png", np.array([[[65535, 13107, 32896]]]))  # 0.2 and 0.50196 = 128 / 255
    scene = load_rnb(tmp_path)
    assert scene.albedos[:, 0, 0].tolist() == [[255, 51, 0], [255, 51, 128]]
    # Sample (128, 128, 0) decodes to about (0, 0, 1) in the camera frame (z negated from -1): the
    # normal faces away from the camera, so the preview is black.
    assert scene.images.eq(0).all()


def make_scene(views: int = 3, width: int = 10, height: int = 7) -> Scene:
    generator = torch.Generator().manual_seed(5)
    c2w = look_at(camera_positions("sphere", views, radius=3.0), (0.0, 0.1, 0.0), (0.0, 1.0, 0.0))
    normals = torch.nn.functional.normalize(torch.randn(views, height, width, 3, generator=generator), dim=-1)
    masks = torch.randint(0, 2, (views, height, width), generator=generator, dtype=torch.uint8) * 255
    normals[masks == 0] = 0.0
    albedos = torch.randint(0, 256, (views, height, width, 3), generator=generator, dtype=torch.uint8)
    normalization = torch.diag(torch.tensor([1.5, 1.5, 1.5, 1.0], dtype=torch.float64))
    normalization[:3, 3] = torch.tensor([0.0, 0.1, 0.0])
    return Scene(
        images=torch.zeros(views, height, width, 3, dtype=torch.uint8),
        cameras=Cameras.from_fov(c2w, width, height, 50.0),
        names=[f"view_{i}" for i in range(views)],
        masks=masks,
        normals=normals,
        albedos=albedos * (masks[..., None] > 0),
        splits={"train": [0, 2], "val": [1]},
        normalization=normalization,
    )


def test_round_trip_keeps_world_normals_albedos_masks_and_cameras(tmp_path):
    scene = make_scene()
    save_rnb(scene, tmp_path)
    with Image.open(tmp_path / "normal" / "000.png") as image:
        assert image.size == (10, 7)
    assert png.Reader(filename=str(tmp_path / "normal" / "000.png")).read()[3]["bitdepth"] == 16
    assert detect_format(tmp_path) == "rnb"
    loaded = load_scene(tmp_path)
    # 16 bits: each stored component is within 1 / 65535 of the true one.
    torch.testing.assert_close(loaded.normals, scene.normals, atol=1e-4, rtol=0)
    assert torch.equal(loaded.albedos, scene.albedos) and torch.equal(loaded.masks, scene.masks)
    torch.testing.assert_close(loaded.cameras.camera_to_world, scene.cameras.camera_to_world, atol=1e-5, rtol=0)
    torch.testing.assert_close(loaded.cameras.intrinsics, scene.cameras.intrinsics, atol=1e-4, rtol=0)
    torch.testing.assert_close(loaded.normalization, scene.normalization)
    assert loaded.names == scene.names and loaded.splits == scene.splits
    # Background pixels are mid-grey in the file: (32768, 32768, 32768).
    background = np.argwhere(scene.masks[0].numpy() == 0)[0]
    samples = png.Reader(filename=str(tmp_path / "normal" / "000.png")).asDirect()[2]
    row = np.vstack(list(samples))[background[0]].reshape(-1, 3)
    assert row[background[1]].tolist() == [32768] * 3


def test_a_scene_without_normals_cannot_be_saved(tmp_path):
    scene = make_scene()
    scene.normals = None
    with pytest.raises(ValueError, match="needs a scene with normals"):
        save_rnb(scene, tmp_path)


def test_neus_and_rnb_side_by_side_load_as_neus_unless_rnb_is_asked_for(tmp_path):
    scene = make_scene()
    save_neus(scene, tmp_path, geometry=False)
    save_rnb(scene, tmp_path)
    assert detect_format(tmp_path) == "neus"
    neus = load_scene(tmp_path)
    assert neus.normals is None  # normal/ holds RNb's PNGs, no NeuS arrays
    rnb = load_scene(tmp_path, "rnb")
    assert rnb.albedos is not None
    torch.testing.assert_close(rnb.cameras.camera_to_world, neus.cameras.camera_to_world)


# ------------------------------------------------------------------------------------------------
# Malformed input: every message names the file and the view


@pytest.fixture
def saved(tmp_path) -> Path:
    save_rnb(make_scene(), tmp_path)
    return tmp_path


def test_missing_normal_folder_says_rnb_needs_normal_maps(tmp_path):
    np.savez(tmp_path / "cameras.npz", world_mat_0=world_mat())
    with pytest.raises(SceneFormatError, match=r"normal/: not found \(RNb-NeuS scenes need normal maps\)"):
        load_rnb(tmp_path)


def test_normal_map_of_another_size_names_the_view(saved):
    write_png8(saved / "normal" / "001.png", np.zeros((2, 3, 3)))
    with pytest.raises(SceneFormatError, match=r"normal: frame 1 \('001\.png'\): normal map is 3x2, but earlier"):
        load_rnb(saved)


def test_grey_normal_map_names_the_view(saved):
    write_png8(saved / "normal" / "002.png", np.zeros((7, 10)))
    with pytest.raises(SceneFormatError, match=r"normal: frame 2 \('002\.png'\): normal map .*002\.png has 1 channel"):
        load_rnb(saved)


def test_camera_count_not_the_normal_map_count_names_both_and_the_file(saved):
    arrays = dict(np.load(saved / "cameras.npz"))
    del arrays["world_mat_2"]
    np.savez(saved / "cameras.npz", **arrays)
    with pytest.raises(SceneFormatError, match=r"cameras\.npz: 2 world_mat entries for 3 normal maps in .*normal/"):
        load_rnb(saved)


def test_missing_mask_names_the_view(saved):
    (saved / "mask" / "001.png").unlink()
    with pytest.raises(SceneFormatError, match=r"mask: frame 1 \('001\.png'\): mask .*001\.png not found"):
        load_rnb(saved)


def test_masks_can_be_required(saved):
    for file in (saved / "mask").iterdir():
        file.unlink()
    (saved / "mask").rmdir()
    assert load_rnb(saved).masks is None
    with pytest.raises(SceneFormatError, match=r"mask/: mask directory not found"):
        load_rnb(saved, require_masks=True)


def test_albedo_count_not_the_normal_map_count_names_both(saved):
    (saved / "albedo" / "002.png").unlink()
    with pytest.raises(SceneFormatError, match=r"albedo/: 2 albedo maps for 3 normal maps"):
        load_rnb(saved)


def test_singular_world_mat_names_the_view(saved):
    arrays = dict(np.load(saved / "cameras.npz"))
    arrays["world_mat_1"] = np.zeros((4, 4))
    np.savez(saved / "cameras.npz", **arrays)
    with pytest.raises(SceneFormatError, match=r"cameras\.npz: frame 1 \('001\.png'\): world_mat is not invertible"):
        load_rnb(saved)


def test_rnb_is_among_the_formats_looked_for(tmp_path):
    with pytest.raises(SceneFormatError, match=r"NeuS.*cameras\.npz and normal/\*\.png \(RNb-NeuS\).*COLMAP"):
        detect_format(tmp_path)


def test_preview_is_the_albedo_lit_from_the_camera():
    # One pixel on the optical axis of a camera looking along +z: v = (0, 0, -1). A normal at
    # 60 degrees from v gives cos = 0.5, so albedo (200, 100, 0) shows as (100, 50, 0).
    from foveate.data.formats.rnb import shaded_preview

    cameras = Cameras(torch.eye(4)[None], torch.tensor([[1.0, 1.0, 0.5, 0.5]]), 1, 1)
    normal = torch.tensor([[[[math.sin(math.pi / 3), 0.0, -0.5]]]])
    albedo = torch.tensor([[[[200, 100, 0]]]], dtype=torch.uint8)
    assert shaded_preview(normal, albedo, cameras)[0, 0, 0].tolist() == [100, 50, 0]
    assert shaded_preview(normal, None, cameras)[0, 0, 0].tolist() == [128] * 3  # 127.5 rounds to even
    assert shaded_preview(-normal, albedo, cameras).eq(0).all()  # facing away: max(0, .)
