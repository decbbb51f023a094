"""COLMAP and single-transforms.json scenes: round trips, hand-made files, and errors that name the file."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from foveate.data import load_colmap, load_transforms, save_colmap
from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.formats.colmap import rotation_to_quaternion
from foveate.data.scenes import Scene, SceneFormatError, detect_format, load_scene

SQRT_HALF = math.sqrt(0.5)


def make_scene(views: int = 4, distortion: bool = False, masks: bool = False, points: bool = True) -> Scene:
    width, height = 8, 6
    generator = torch.Generator().manual_seed(3)
    alpha = torch.randint(0, 256, (views, height, width), generator=generator, dtype=torch.int32)
    straight = torch.randint(0, 256, (views, height, width, 3), generator=generator, dtype=torch.int32)
    images = (straight * alpha[..., None] + 127) // 255 if masks else straight  # colour over black
    c2w = look_at(camera_positions("sphere", views, radius=3.0), (0.0, 0.2, 0.0), (0.0, 1.0, 0.0))
    intrinsics = torch.tensor([[7.0, 7.5, 4.1, 2.9]]).repeat(views, 1)
    intrinsics[2, 0] = 6.5  # one view with its own camera
    coefficients = torch.tensor([[-0.1, 0.02, 0.001, -0.002, 0.0]]).repeat(views, 1) if distortion else None
    return Scene(
        images=images.to(torch.uint8),
        cameras=Cameras(c2w, intrinsics, width, height, coefficients),
        names=[f"view_{i}" for i in range(views)],
        masks=alpha.to(torch.uint8) if masks else None,
        points=torch.randn(20, 3, generator=generator) if points else None,
        point_colors=torch.randint(0, 256, (20, 3), generator=generator, dtype=torch.uint8) if points else None,
    )


def write_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def solid(width: int, height: int, value: int, channels: int = 3) -> np.ndarray:
    return np.full((height, width, channels), value, dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# COLMAP


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_colmap_round_trip_keeps_cameras_images_masks_and_points(tmp_path, binary):
    scene = make_scene(distortion=True, masks=True)
    save_colmap(scene, tmp_path, binary=binary)
    suffix = ".bin" if binary else ".txt"
    assert {p.name for p in (tmp_path / "sparse" / "0").iterdir()} == {
        f"{stem}{suffix}" for stem in ("cameras", "images", "points3D")
    }
    assert detect_format(tmp_path) == "colmap"
    loaded = load_colmap(tmp_path)
    assert loaded.names == scene.names  # view_0 .. view_3 are already in name order
    assert torch.equal(loaded.images, scene.images) and torch.equal(loaded.masks, scene.masks)
    torch.testing.assert_close(loaded.cameras.camera_to_world, scene.cameras.camera_to_world, atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded.cameras.intrinsics, scene.cameras.intrinsics, atol=0, rtol=0)
    torch.testing.assert_close(loaded.cameras.distortion, scene.cameras.distortion, atol=0, rtol=0)
    assert torch.equal(loaded.points, scene.points) and torch.equal(loaded.point_colors, scene.point_colors)
    assert loaded.splits == {"train": [0, 1, 2, 3]}


def test_colmap_views_sharing_intrinsics_share_a_camera(tmp_path):
    save_colmap(make_scene(), tmp_path, binary=False)
    lines = (tmp_path / "sparse" / "0" / "cameras.txt").read_text().splitlines()
    cameras = [line.split() for line in lines if not line.startswith("#")]
    assert [camera[:4] for camera in cameras] == [["1", "PINHOLE", "8", "6"], ["2", "PINHOLE", "8", "6"]]
    assert [float(v) for v in cameras[1][4:]] == pytest.approx([6.5, 7.5, 4.1, 2.9])


def test_saving_one_form_removes_the_other_so_it_cannot_shadow_it(tmp_path):
    save_colmap(make_scene(), tmp_path, binary=True)
    scene = make_scene(points=False)
    save_colmap(scene, tmp_path, binary=False)
    assert not list((tmp_path / "sparse" / "0").glob("*.bin"))
    assert load_colmap(tmp_path).points is None


def test_save_colmap_refuses_k3(tmp_path):
    scene = make_scene(distortion=True)
    scene.cameras.distortion[:, 4] = 0.01
    with pytest.raises(ValueError, match="no k3"):
        save_colmap(scene, tmp_path, binary=True)


def test_rotation_to_quaternion_by_hand():
    quarter_turn_about_y = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    half_turn_about_x = np.diag([1.0, -1.0, -1.0])
    q = rotation_to_quaternion(np.stack([np.eye(3), quarter_turn_about_y, half_turn_about_x]))
    np.testing.assert_allclose(q[:2], [[1, 0, 0, 0], [SQRT_HALF, 0, SQRT_HALF, 0]], atol=1e-12)
    np.testing.assert_allclose(np.abs(q[2]), [0, 1, 0, 0], atol=1e-12)  # qw = 0: the sign is free


# A hand-made model. Image "b.png" has qvec = (cos 45deg, 0, sin 45deg, 0): a quarter turn about
# y, R = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], and t = (1, 2, 3). Its centre is -R^T t = (3, -2, -1);
# it looks along R^T (0, 0, 1) = (-1, 0, 0), its image x axis is R^T (1, 0, 0) = (0, 0, 1) and its
# y axis (down) R^T (0, 1, 0) = (0, 1, 0). World point (1, -2, -1) is 2 in front of it, on its axis.
# Image "a.png" has the identity pose: at the origin, looking along +z.
CAMERAS_TXT = "# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n1 PINHOLE 4 3 2.0 2.5 2.0 1.5\n"
IMAGES_TXT = (
    "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME\n"
    f"1 {SQRT_HALF} 0 {SQRT_HALF} 0 1 2 3 1 b.png\n"
    "10.0 20.0 -1 30.0 40.0 7\n"
    "2 1 0 0 0 0 0 0 1 a.png\n"
    "\n"
)
POINTS_TXT = "# POINT3D_ID X Y Z R G B ERROR TRACK[]\n7 1 -2 -1 10 20 30 0.5 1 1\n"


def write_text_model(root: Path, folder: str = "sparse/0", cameras: str = CAMERAS_TXT, images: str = IMAGES_TXT):
    model = root / folder
    model.mkdir(parents=True, exist_ok=True)
    (model / "cameras.txt").write_text(cameras)
    (model / "images.txt").write_text(images)
    (model / "points3D.txt").write_text(POINTS_TXT)
    write_image(root / "images" / "a.png", solid(4, 3, 50))
    write_image(root / "images" / "b.png", solid(4, 3, 90))


def test_hand_written_text_model_gives_the_hand_computed_cameras(tmp_path):
    write_text_model(tmp_path)
    scene = load_colmap(tmp_path)
    assert scene.names == ["a", "b"]  # sorted by name, not by id
    assert scene.images[0, 0, 0].tolist() == [50, 50, 50] and scene.images[1, 0, 0].tolist() == [90, 90, 90]
    torch.testing.assert_close(scene.cameras.camera_to_world[0], torch.eye(4))
    b = scene.cameras.camera_to_world[1]
    torch.testing.assert_close(b[:3, 3], torch.tensor([3.0, -2.0, -1.0]))
    torch.testing.assert_close(b[:3, 0], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(b[:3, 1], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(b[:3, 2], torch.tensor([-1.0, 0.0, 0.0]))
    torch.testing.assert_close(scene.cameras.intrinsics[1], torch.tensor([2.0, 2.5, 2.0, 1.5]))
    x, y, z = scene.cameras.project(torch.tensor([[1.0, -2.0, -1.0]]), torch.tensor([1]))
    torch.testing.assert_close(torch.cat([x, y, z]), torch.tensor([2.0, 1.5, 2.0]))  # the principal point
    assert scene.cameras.distortion is None
    assert scene.points.tolist() == [[1.0, -2.0, -1.0]] and scene.point_colors.tolist() == [[10, 20, 30]]
    # One point gives no sphere, so the cameras do: the point nearest both optical axes (x = 0 on
    # a's, and y = -1, z = -1 halfway between a's axis y = 0 and b's y = -2, at b's z = -1) is
    # (0, -1, -1); it is sqrt(2) from a and sqrt(10) from b; the radius is half the median distance.
    expected = torch.eye(4, dtype=torch.float64) * (math.sqrt(2) + math.sqrt(10)) / 4
    expected[3, 3], expected[:3, 3] = 1.0, torch.tensor([0.0, -1.0, -1.0])
    torch.testing.assert_close(scene.normalization, expected)


def write_binary_model(folder: Path, model_id: int = 1, params: tuple[float, ...] = (2.0, 2.5, 2.0, 1.5)) -> None:
    """The hand-made model, packed by hand in COLMAP's documented little-endian layout."""
    folder.mkdir(parents=True, exist_ok=True)
    cameras = struct.pack("<Q", 1) + struct.pack(f"<iiQQ{len(params)}d", 1, model_id, 4, 3, *params)
    images = struct.pack("<Q", 2)
    images += struct.pack("<i4d3di", 1, SQRT_HALF, 0, SQRT_HALF, 0, 1, 2, 3, 1) + b"b.png\0"
    images += struct.pack("<Q", 2) + struct.pack("<ddq", 10, 20, -1) + struct.pack("<ddq", 30, 40, 7)
    images += struct.pack("<i4d3di", 2, 1, 0, 0, 0, 0, 0, 0, 1) + b"a.png\0" + struct.pack("<Q", 0)
    points = struct.pack("<Q", 1) + struct.pack("<Q3d3Bd", 7, 1, -2, -1, 10, 20, 30, 0.5)
    points += struct.pack("<Q", 1) + struct.pack("<ii", 1, 1)
    (folder / "cameras.bin").write_bytes(cameras)
    (folder / "images.bin").write_bytes(images)
    (folder / "points3D.bin").write_bytes(points)


def test_binary_model_in_colmaps_documented_layout_reads_like_the_text_one(tmp_path):
    write_text_model(tmp_path / "text")
    write_text_model(tmp_path / "binary")
    for file in (tmp_path / "binary" / "sparse" / "0").iterdir():
        file.unlink()
    write_binary_model(tmp_path / "binary" / "sparse" / "0")
    text, binary = load_colmap(tmp_path / "text"), load_colmap(tmp_path / "binary")
    assert binary.names == text.names
    assert torch.equal(binary.cameras.camera_to_world, text.cameras.camera_to_world)
    assert torch.equal(binary.cameras.intrinsics, text.cameras.intrinsics)
    assert torch.equal(binary.points, text.points) and torch.equal(binary.point_colors, text.point_colors)


@pytest.mark.parametrize(
    ("model", "params", "intrinsics", "distortion"),
    [
        ("SIMPLE_PINHOLE", "3.0 2.0 1.5", [3.0, 3.0, 2.0, 1.5], None),
        ("SIMPLE_RADIAL", "3.0 2.0 1.5 0.1", [3.0, 3.0, 2.0, 1.5], [0.1, 0, 0, 0, 0]),
        ("RADIAL", "3.0 2.0 1.5 0.1 -0.02", [3.0, 3.0, 2.0, 1.5], [0.1, -0.02, 0, 0, 0]),
        ("OPENCV", "3.0 3.5 2.0 1.5 0.1 -0.02 0.003 -0.004", [3.0, 3.5, 2.0, 1.5], [0.1, -0.02, 0.003, -0.004, 0]),
    ],
)
def test_colmap_camera_models_map_to_opencv_intrinsics_and_distortion(tmp_path, model, params, intrinsics, distortion):
    write_text_model(tmp_path, cameras=f"1 {model} 4 3 {params}\n")
    cameras = load_colmap(tmp_path).cameras
    torch.testing.assert_close(cameras.intrinsics, torch.tensor([intrinsics] * 2))
    if distortion is None:
        assert cameras.distortion is None
    else:
        torch.testing.assert_close(cameras.distortion, torch.tensor([distortion] * 2))


def test_simple_radial_distorts_as_colmap_does(tmp_path):
    # COLMAP's SIMPLE_RADIAL: u' = u (1 + k r^2). At (u, v) = (0.5, 0), k = 0.1:
    # u' = 0.5 * 1.025 = 0.5125, so x = f u' + cx = 3 * 0.5125 + 2 = 3.5375.
    write_text_model(tmp_path, cameras="1 SIMPLE_RADIAL 4 3 3.0 2.0 1.5 0.1\n")
    cameras = load_colmap(tmp_path).cameras
    x, y, _ = cameras.project(torch.tensor([[0.5, 0.0, 1.0]]), torch.tensor([0]))  # view "a": identity
    torch.testing.assert_close(torch.cat([x, y]), torch.tensor([3.5375, 1.5]))


def test_colmap_normalisation_ignores_outlying_points(tmp_path):
    # 24 points at distance 1 from (1, 2, 3), along the axes, and one 100 away. The coordinate-wise
    # median is (1, 2, 3); the 95th percentile of the 25 distances is at rank 0.95 * 24 = 22.8,
    # between two distances of 1, so the radius is 1.
    center = np.array([1.0, 2.0, 3.0])
    offsets = [sign * axis for axis in np.eye(3) for sign in (1.0, -1.0)] * 4 + [np.array([100.0, 0.0, 0.0])]
    lines = [f"{i + 1} {' '.join(map(str, center + offset))} 0 0 0 0.1" for i, offset in enumerate(offsets)]
    write_text_model(tmp_path)
    (tmp_path / "sparse" / "0" / "points3D.txt").write_text("\n".join(lines) + "\n")
    expected = np.eye(4)
    expected[:3, 3] = center
    np.testing.assert_allclose(load_colmap(tmp_path).normalization.numpy(), expected)


@pytest.mark.parametrize("folder", ["sparse/0", "sparse", "."])
def test_colmap_model_is_found_in_each_usual_folder(tmp_path, folder):
    write_text_model(tmp_path, folder=folder)
    assert detect_format(tmp_path) == "colmap"
    assert load_scene(tmp_path).names == ["a", "b"]
    assert load_scene(tmp_path, "colmap").num_views == 2


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ("1 FOV 4 3 2.0 2.0 1.5 0.1", r"cameras\.txt: line 1: camera model 'FOV' is not supported"),
        ("1 FISH 4 3 2.0 2.0 1.5", r"cameras\.txt: line 1: unknown camera model 'FISH'"),
        ("1 PINHOLE 4 3 2.0 2.0 1.5", r"cameras\.txt: line 1: camera model PINHOLE takes 4 parameters, got 3"),
    ],
)
def test_bad_text_cameras_name_the_model_and_line(tmp_path, camera, message):
    write_text_model(tmp_path, cameras=camera + "\n")
    with pytest.raises(SceneFormatError, match=message):
        load_colmap(tmp_path)


def test_unsupported_binary_camera_model_is_named(tmp_path):
    write_text_model(tmp_path, folder=".")
    write_binary_model(tmp_path / "sparse", model_id=5, params=(2.0, 2.0, 2.0, 1.5, 0, 0, 0, 0))
    with pytest.raises(SceneFormatError, match=r"sparse/cameras\.bin: camera 1: camera model 'OPENCV_FISHEYE' is not"):
        load_colmap(tmp_path)


@pytest.mark.parametrize("file", ["cameras.bin", "images.bin", "points3D.bin"])
def test_truncated_binary_file_is_named(tmp_path, file):
    write_text_model(tmp_path)
    write_binary_model(tmp_path / "sparse" / "0")
    path = tmp_path / "sparse" / "0" / file
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(SceneFormatError, match=rf"{file.replace('.', '[.]')}: truncated"):
        load_colmap(tmp_path)


def test_missing_image_names_the_entry_and_the_file(tmp_path):
    write_text_model(tmp_path)
    (tmp_path / "images" / "a.png").unlink()
    with pytest.raises(SceneFormatError, match=r"images\.txt: image 2 \('a\.png'\): image .*a\.png not found"):
        load_colmap(tmp_path)


def test_images_of_different_sizes_name_the_file(tmp_path):
    cameras = "1 PINHOLE 4 3 2.0 2.5 2.0 1.5\n2 PINHOLE 5 3 2.0 2.5 2.0 1.5\n"
    write_text_model(tmp_path, cameras=cameras, images=IMAGES_TXT.replace("1 b.png", "2 b.png"))
    write_image(tmp_path / "images" / "b.png", solid(5, 3, 90))
    with pytest.raises(SceneFormatError, match=r"b\.png: image is 5x3, but earlier frames are 4x3 .*share one size"):
        load_colmap(tmp_path)


def test_image_not_the_size_of_its_camera_names_the_file(tmp_path):
    write_text_model(tmp_path)
    write_image(tmp_path / "images" / "a.png", solid(7, 7, 50))
    with pytest.raises(SceneFormatError, match=r"a\.png: image is 7x7, but camera 1 in .*cameras\.txt is 4x3"):
        load_colmap(tmp_path)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (IMAGES_TXT.replace("0 1 a.png", "0 9 a.png"), r"image 2 \('a\.png'\): camera 9 is not in .*cameras\.txt"),
        (IMAGES_TXT.replace("2 1 0 0 0", "2 0 0 0 0"), r"image 2 \('a\.png'\): quaternion .* is zero"),
        (IMAGES_TXT.replace("30.0 40.0 7", "30.0 40.0"), r"images\.txt: line 3: expected image 1's 2-D points"),
        (IMAGES_TXT.replace("1 b.png", "b.png"), r"images\.txt: line 2: expected IMAGE_ID"),
    ],
)
def test_bad_image_entries_name_the_line_or_image(tmp_path, images, message):
    write_text_model(tmp_path, images=images)
    with pytest.raises(SceneFormatError, match=message):
        load_colmap(tmp_path)


# ------------------------------------------------------------------------------------------------
# A single transforms.json


def gl_pose(position, right, up) -> list[list[float]]:
    """A camera-to-world matrix in OpenGL axes (x right, y up, z backwards) as nerfstudio writes it."""
    right, up, position = np.asarray(right, float), np.asarray(up, float), np.asarray(position, float)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, np.cross(right, up), position
    return pose.tolist()


def nerfstudio_dir(root: Path) -> None:
    """Four cameras 4 from (0, 0, 1) in the plane z = 1, each looking at it, with up = +z."""
    positions = [(4, 0, 1), (0, 4, 1), (-4, 0, 1), (0, -4, 1)]
    rights = [(0, 1, 0), (-1, 0, 0), (0, -1, 0), (1, 0, 0)]  # so that right x up points away from the centre
    frames = []
    for i, (position, right) in enumerate(zip(positions, rights, strict=True)):
        suffix = ".jpg" if i == 3 else ".png"
        write_image(root / "images" / f"frame_{i + 1:05d}{suffix}", solid(6, 4, 40 * (i + 1)))
        frames.append(
            {
                "file_path": f"images/frame_{i + 1:05d}",
                "transform_matrix": gl_pose(position, right, (0, 0, 1)),
                "fl_x": 5.0 + i,
                "fl_y": 5.5,
                "cx": 3.0,
                "cy": 2.0,
                "w": 6,
                "h": 4,
                "k1": 0.01 * i,
            }
        )
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[:, :3] = 255
    write_image(root / "masks" / "mask_00001.png", mask)
    frames[0]["mask_path"] = "masks/mask_00001.png"
    meta = {"camera_model": "OPENCV", "applied_transform": np.eye(4)[:3].tolist(), "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


def test_nerfstudio_transforms_with_per_frame_intrinsics_and_no_suffixes(tmp_path):
    nerfstudio_dir(tmp_path)
    assert detect_format(tmp_path) == "transforms"
    scene = load_scene(tmp_path)
    assert scene.names == ["frame_00001", "frame_00002", "frame_00003", "frame_00004"]
    assert scene.splits == {"train": [0, 1, 2, 3]}
    assert scene.images[1, 0, 0].tolist() == [80, 80, 80]  # no mask: colours as they are
    assert scene.images[0, 0, 5].tolist() == [40, 40, 40]  # masked out, yet colours as they are (as NeuS)
    assert scene.masks[0, :, :3].eq(255).all() and scene.masks[0, :, 3:].eq(0).all()
    assert scene.masks[1:].eq(255).all()  # views without a mask are fully covered
    torch.testing.assert_close(scene.cameras.intrinsics[:, 0], torch.tensor([5.0, 6.0, 7.0, 8.0]))
    torch.testing.assert_close(scene.cameras.intrinsics[0], torch.tensor([5.0, 5.5, 3.0, 2.0]))
    torch.testing.assert_close(scene.cameras.distortion[:, 0], torch.tensor([0.0, 0.01, 0.02, 0.03]))
    # OpenGL to OpenCV: the first camera, at (4, 0, 1), looks along -x, with +z up (so down is -z).
    c2w = scene.cameras.camera_to_world[0]
    torch.testing.assert_close(c2w[:3, 3], torch.tensor([4.0, 0.0, 1.0]))
    torch.testing.assert_close(c2w[:3, 2], torch.tensor([-1.0, 0.0, 0.0]))
    torch.testing.assert_close(c2w[:3, 1], torch.tensor([0.0, 0.0, -1.0]))
    # All optical axes meet at (0, 0, 1), 4 from each camera: a sphere of radius 4 / 2 there.
    expected = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    expected[:3, 3] = torch.tensor([0.0, 0.0, 1.0])
    torch.testing.assert_close(scene.normalization, expected)


def ngp_dir(root: Path, **settings) -> None:
    """instant-ngp style: shared intrinsics by field of view, RGBA images, suffixes in file_path."""
    frames = []
    for i in range(2):
        rgba = solid(8, 6, 200, channels=4)
        rgba[..., 3] = 255 if i == 0 else 51  # the second view is 20% opaque
        write_image(root / "train" / f"r_{i}.png", rgba)
        frames.append(
            {"file_path": f"./train/r_{i}.png", "transform_matrix": gl_pose((0, 0, 4 + i), (1, 0, 0), (0, 1, 0))}
        )
    # tan(camera_angle_x / 2) = 0.5, so fx = (8 / 2) / 0.5 = 8.
    distortion = {"k1": 0.1, "k2": 0.01, "k3": 0.001, "p1": 0.002, "p2": 0.003}
    meta = {"camera_angle_x": 2 * math.atan(0.5), "w": 8, "h": 6, "frames": frames, **distortion, **settings}
    (root / "transforms.json").write_text(json.dumps(meta))


def test_instant_ngp_transforms_with_field_of_view_alpha_and_unit_cube(tmp_path):
    ngp_dir(tmp_path, aabb_scale=16, scale=0.25, offset=[1.0, 0.5, 0.0])
    scene = load_transforms(tmp_path / "transforms.json")
    assert scene.names == ["r_0", "r_1"]
    torch.testing.assert_close(scene.cameras.intrinsics[0], torch.tensor([8.0, 8.0, 4.0, 3.0]))
    torch.testing.assert_close(scene.cameras.distortion[0], torch.tensor([0.1, 0.01, 0.002, 0.003, 0.001]))
    assert scene.masks[:, 0, 0].tolist() == [255, 51]
    assert scene.images[:, 0, 0, 0].tolist() == [200, 40]  # colour over black: 200 * 51 / 255
    torch.testing.assert_close(scene.cameras.camera_to_world[1, :3, 3], torch.tensor([0.0, 0.0, 5.0]))
    torch.testing.assert_close(scene.cameras.camera_to_world[1, :3, 2], torch.tensor([0.0, 0.0, -1.0]))
    # instant-ngp's unit cube holds p with p * 0.25 + offset in [0, 1]^3: centre (0.5 - offset) / 0.25
    # = (-2, 0, 2), half-side 0.5 / 0.25 = 2.
    expected = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    expected[:3, 3] = torch.tensor([-2.0, 0.0, 2.0])
    torch.testing.assert_close(scene.normalization, expected)


def test_instant_ngp_defaults_apply_when_only_aabb_scale_is_given(tmp_path):
    ngp_dir(tmp_path, aabb_scale=4)
    scene = load_transforms(tmp_path)
    # Defaults scale 0.33, offset 0.5: centre (0.5 - 0.5) / 0.33 = 0, half-side 0.5 / 0.33.
    expected = torch.diag(torch.tensor([0.5 / 0.33] * 3 + [1.0], dtype=torch.float64))
    torch.testing.assert_close(scene.normalization, expected)


@pytest.mark.parametrize(
    ("settings", "model"), [({"camera_model": "OPENCV_FISHEYE"}, "OPENCV_FISHEYE"), ({"is_fisheye": True}, "OPENCV")]
)
def test_fisheye_transforms_are_refused_naming_the_file(tmp_path, settings, model):
    ngp_dir(tmp_path, **settings)
    with pytest.raises(SceneFormatError, match=rf"transforms\.json: frame 0 .*camera_model '{model}'.*not supported"):
        load_transforms(tmp_path)


def test_is_fisheye_without_distortion_is_a_pinhole_as_in_instant_ngp(tmp_path):
    ngp_dir(tmp_path, is_fisheye=True, k1=0.0, k2=0.0, k3=0.0, p1=0.0, p2=0.0)
    assert load_transforms(tmp_path).cameras.distortion is None


def test_transforms_missing_image_names_the_frame(tmp_path):
    nerfstudio_dir(tmp_path)
    (tmp_path / "images" / "frame_00002.png").unlink()
    with pytest.raises(
        SceneFormatError, match=r"transforms\.json: frame 1 \('images/frame_00002'\): image .*not found"
    ):
        load_transforms(tmp_path)


def test_transforms_mask_of_another_size_names_the_frame(tmp_path):
    nerfstudio_dir(tmp_path)
    write_image(tmp_path / "masks" / "mask_00001.png", np.zeros((5, 5), dtype=np.uint8))
    with pytest.raises(SceneFormatError, match=r"frame 0 .*: mask is 5x5, but earlier frames are 6x4"):
        load_transforms(tmp_path)


@pytest.mark.parametrize("angle", [0.0, float("nan"), "wide", 3.2])
def test_an_unusable_field_of_view_names_the_file_and_field(tmp_path, angle):
    import json

    from foveate.data.scenes import SceneFormatError, load_scene, save_blender

    save_blender(_tiny_scene_for_robustness(), tmp_path)
    meta = json.loads((tmp_path / "transforms_train.json").read_text())
    for key in ("fl_x", "fl_y"):
        meta.pop(key, None)
    meta["camera_angle_x"] = angle
    (tmp_path / "transforms_train.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match=r"transforms_train\.json.*'camera_angle_x'"):
        load_scene(tmp_path)


def test_a_file_path_outside_the_scene_folder_is_refused(tmp_path):
    import json

    from foveate.data.scenes import SceneFormatError, load_scene, save_blender

    save_blender(_tiny_scene_for_robustness(), tmp_path / "scene")
    meta = json.loads((tmp_path / "scene" / "transforms_train.json").read_text())
    meta["frames"][0]["file_path"] = "../../etc/passwd"
    (tmp_path / "scene" / "transforms_train.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match=r"'file_path' = '\.\./\.\./etc/passwd' points outside the scene folder"):
        load_scene(tmp_path / "scene")


def test_a_torn_cameras_archive_names_the_file(tmp_path):
    from foveate.data.scenes import SceneFormatError, load_scene, save_neus

    save_neus(_tiny_scene_for_robustness(), tmp_path)
    archive = tmp_path / "cameras_sphere.npz"
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(SceneFormatError, match=r"cameras_sphere\.npz: cannot read it as a NumPy archive"):
        load_scene(tmp_path)


def _tiny_scene_for_robustness():
    import torch

    from foveate.data.cameras import Cameras, camera_positions, look_at
    from foveate.data.scenes import Scene

    c2w = look_at(camera_positions("sphere", 3, radius=2.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    images = torch.randint(0, 255, (3, 6, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return Scene(images, Cameras.from_fov(c2w, 8, 6, 50.0), ["a", "b", "c"])
