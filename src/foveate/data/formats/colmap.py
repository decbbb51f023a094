"""COLMAP scenes: ``images/`` and a sparse model, in text or binary form.

The model (``cameras``, ``images`` and optionally ``points3D``, all ``.txt`` or all ``.bin``;
binary is preferred when both exist, as COLMAP does) sits in ``sparse/0/``, ``sparse/`` or the
scene directory itself. COLMAP's conventions are foveate's: OpenCV camera axes, and pixel
centres at ``+0.5`` (the upper-left pixel's centre is ``(0.5, 0.5)``), so intrinsics are taken
as they are. Poses are world-to-camera: a Hamilton quaternion ``qw qx qy qz`` and a
translation ``t``; the camera centre is ``-R^T t``.

Camera models: ``SIMPLE_PINHOLE`` (``f cx cy``), ``PINHOLE`` (``fx fy cx cy``),
``SIMPLE_RADIAL`` (``f cx cy k``), ``RADIAL`` (``f cx cy k1 k2``) and ``OPENCV`` (``fx fy cx
cy k1 k2 p1 p2``); fisheye and other models are refused. Views are sorted by image name; all
must share one size. An RGBA image's alpha is its mask, as in Blender.

The model files are read and written by :mod:`foveate.data.formats.colmap_model`.

Normalisation comes from the sparse points, robustly (:func:`~foveate.data.formats._common.normalization_from_points`:
centre at their coordinate-wise median, radius at the 95th percentile of their distances to it),
or from the cameras when there are no points
(:func:`~foveate.data.formats._common.normalization_from_cameras`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..scenes import Scene, SceneFormatError
from ._common import (
    check_intrinsics,
    check_size,
    colour_and_alpha,
    file_names,
    image_to_write,
    make_cameras,
    normalization_from_cameras,
    normalization_from_points,
    read_image,
    write_png,
)
from .colmap_model import ColmapCamera, ColmapImage, ColmapModel, read_model, write_model

__all__ = ["find_model", "load_colmap", "quaternion_to_rotation", "rotation_to_quaternion", "save_colmap"]

LOOKS_FOR = "cameras and images .bin or .txt in sparse/0/, sparse/ or the directory itself (COLMAP)"
MODEL_FOLDERS = ("sparse/0", "sparse", ".")


def detect(root: Path) -> bool:
    """Whether ``root`` holds a sparse model where :func:`find_model` looks."""
    return find_model(root) is not None


def find_model(root: Path) -> tuple[Path, str] | None:
    """The folder of the sparse model under ``root`` and its suffix (``.bin`` or ``.txt``), or ``None``."""
    for folder in MODEL_FOLDERS:
        for suffix in (".bin", ".txt"):
            if (root / folder / f"cameras{suffix}").is_file() and (root / folder / f"images{suffix}").is_file():
                return root / folder, suffix
    return None


# ----------------------------------------------------------------------------------------------
# Scenes


def load_colmap(path: str | Path, require_masks: bool = False) -> Scene:
    """Read ``images/`` and the sparse model of a COLMAP scene directory (all views in ``train``).

    Args:
        path: the scene directory.
        require_masks: fail, naming the image, if an image has no alpha channel.
    """
    root = Path(path)
    found = find_model(root)
    if found is None:
        raise SceneFormatError(f"{root}: no COLMAP model found; looked for {LOOKS_FOR}")
    folder, suffix = found
    cameras_file, images_file = folder / f"cameras{suffix}", folder / f"images{suffix}"
    model = read_model(folder, suffix)
    if not model.images:
        raise SceneFormatError(f"{images_file}: lists no images")
    entries = sorted(model.images, key=lambda image: image.name)
    rgbs, masks, poses, intrinsics, distortions = [], [], [], [], []
    size: tuple[int, int] | None = None
    for entry in entries:
        where = f"{images_file}: image {entry.image_id} ({entry.name!r})"
        camera = model.cameras.get(entry.camera_id)
        if camera is None:
            raise SceneFormatError(f"{where}: camera {entry.camera_id} is not in {cameras_file}")
        image_path = root / "images" / entry.name
        array = read_image(image_path, where)
        if array.shape[:2] != (camera.height, camera.width):
            raise SceneFormatError(
                f"{image_path}: image is {array.shape[1]}x{array.shape[0]}, but camera {entry.camera_id} "
                f"in {cameras_file} is {camera.width}x{camera.height}"
            )
        size = check_size(array, size, str(image_path))
        rgb, alpha = colour_and_alpha(array, image_path, where, require_alpha=require_masks)
        k, distortion = camera_intrinsics(camera, f"{cameras_file}: camera {entry.camera_id}")
        rgbs.append(rgb)
        masks.append(alpha)
        poses.append(_camera_to_world(entry, where))
        intrinsics.append(k)
        distortions.append(distortion)

    has_points = len(model.points) > 0
    normalization = normalization_from_points(model.points)
    if normalization is None:
        normalization = normalization_from_cameras(np.stack(poses))
    return Scene(
        images=torch.from_numpy(np.stack(rgbs)),
        cameras=make_cameras(poses, intrinsics, distortions, size),
        names=[str(PurePosixPath(entry.name).with_suffix("")) for entry in entries],
        masks=None if all(m is None for m in masks) else torch.from_numpy(np.stack(masks)),
        normalization=torch.from_numpy(normalization),
        points=torch.from_numpy(model.points).to(torch.float32) if has_points else None,
        point_colors=torch.from_numpy(model.colors) if has_points else None,
    )


def camera_intrinsics(camera: ColmapCamera, where: str) -> tuple[list[float], list[float]]:
    """``fx fy cx cy`` and OpenCV ``k1 k2 p1 p2 k3`` of a supported camera."""
    p = camera.params
    zero = 0.0
    if camera.model == "SIMPLE_PINHOLE":
        k, distortion = (p[0], p[0], p[1], p[2]), (zero,) * 5
    elif camera.model == "PINHOLE":
        k, distortion = p[:4], (zero,) * 5
    elif camera.model == "SIMPLE_RADIAL":
        k, distortion = (p[0], p[0], p[1], p[2]), (p[3], zero, zero, zero, zero)
    elif camera.model == "RADIAL":
        k, distortion = (p[0], p[0], p[1], p[2]), (p[3], p[4], zero, zero, zero)
    else:
        k, distortion = p[:4], (*p[4:8], zero)
    if not np.isfinite(distortion).all():
        raise SceneFormatError(f"{where}: distortion parameters are not finite: {list(distortion)}")
    return check_intrinsics(k, where), [float(v) for v in distortion]


def _camera_to_world(entry: ColmapImage, where: str) -> np.ndarray:
    rotation = quaternion_to_rotation(np.asarray(entry.qvec, dtype=np.float64), where)
    pose = np.eye(4)
    pose[:3, :3] = rotation.T
    pose[:3, 3] = -rotation.T @ np.asarray(entry.tvec, dtype=np.float64)
    return pose


def quaternion_to_rotation(qvec: np.ndarray, where: str = "quaternion") -> np.ndarray:
    """The rotation of a Hamilton quaternion ``qw qx qy qz`` (normalised first; zero is an error)."""
    norm = float(np.linalg.norm(qvec))
    if not np.isfinite(qvec).all() or norm < 1e-12:
        raise SceneFormatError(f"{where}: quaternion {qvec.tolist()} is zero or not finite")
    w, x, y, z = qvec / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """``(N, 4)`` quaternions ``qw qx qy qz`` (``qw >= 0``) of ``(N, 3, 3)`` rotations.

    The quaternion is the top eigenvector of the symmetric 4x4 matrix below (Bar-Itzhack, 2000),
    which is stable for every angle and, for a matrix that is only nearly a rotation (float32
    poses), gives the quaternion of the nearest one.
    """
    r = np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = (r[:, i, j] for i in range(3) for j in range(3))
    k = np.stack(
        [
            np.stack([r00 + r11 + r22, r21 - r12, r02 - r20, r10 - r01], axis=-1),
            np.stack([r21 - r12, r00 - r11 - r22, r01 + r10, r02 + r20], axis=-1),
            np.stack([r02 - r20, r01 + r10, r11 - r00 - r22, r12 + r21], axis=-1),
            np.stack([r10 - r01, r02 + r20, r12 + r21, r22 - r00 - r11], axis=-1),
        ],
        axis=-2,
    )
    quaternions = np.linalg.eigh(k)[1][:, :, -1]
    return quaternions * np.where(quaternions[:, :1] < 0, -1.0, 1.0)


def save_colmap(scene: Scene, path: str | Path, binary: bool) -> None:
    """Write ``images/<name>.png`` and the model in ``sparse/0/`` (binary or text).

    Cameras are ``PINHOLE``, or ``OPENCV`` when the scene has distortion (``k3`` must then be
    0: ``OPENCV`` has none, and a ``ValueError`` says so); views with equal intrinsics share a
    camera. ``points3D`` holds ``scene.points`` (grey where the scene has no colours), or
    nothing. Images are RGBA (straight alpha) when the scene has masks. Splits, depths, normals
    and the normalisation are not written: COLMAP has no place for them. The other form's
    model files in ``sparse/0/``, if any, are removed so that they cannot shadow this one.
    """
    if scene.cameras.has_distortion and bool((scene.cameras.distortion[:, 4] != 0).any()):
        raise ValueError("COLMAP's OPENCV camera model has no k3; undistort the images before saving as COLMAP")
    root = Path(path)
    folder = root / "sparse" / "0"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{name}.png" for name in file_names(scene, range(scene.num_views))]
    for i, name in enumerate(names):
        write_png(root / "images" / name, image_to_write(scene, i))

    cameras, camera_ids = _colmap_cameras(scene)
    c2w = scene.cameras.camera_to_world.detach().cpu().double().numpy()
    rotations = c2w[:, :3, :3].transpose(0, 2, 1)
    qvecs = rotation_to_quaternion(rotations)
    tvecs = -np.einsum("nij,nj->ni", rotations, c2w[:, :3, 3])
    images = [
        ColmapImage(i + 1, tuple(qvecs[i].tolist()), tuple(tvecs[i].tolist()), camera_ids[i], name)
        for i, name in enumerate(names)
    ]
    points = np.zeros((0, 3)) if scene.points is None else scene.points.double().numpy()
    colors = np.full(points.shape, 128, dtype=np.uint8) if scene.point_colors is None else scene.point_colors.numpy()
    other = ".txt" if binary else ".bin"
    for stem in ("cameras", "images", "points3D"):
        (folder / f"{stem}{other}").unlink(missing_ok=True)
    write_model(ColmapModel(cameras, images, points, colors), folder, binary)


def _colmap_cameras(scene: Scene) -> tuple[dict[int, ColmapCamera], list[int]]:
    """One camera per distinct set of intrinsics, and each view's camera id."""
    intrinsics = scene.cameras.intrinsics.detach().cpu().double().numpy()
    distortion = scene.cameras.distortion.detach().cpu().double().numpy() if scene.cameras.has_distortion else None
    ids: dict[tuple[float, ...], int] = {}
    view_ids = []
    for i in range(scene.num_views):
        params = tuple(float(v) for v in intrinsics[i])
        if distortion is not None:
            params += tuple(float(v) for v in distortion[i, :4])
        view_ids.append(ids.setdefault(params, len(ids) + 1))
    model = "PINHOLE" if distortion is None else "OPENCV"
    cameras = {camera_id: ColmapCamera(model, scene.width, scene.height, params) for params, camera_id in ids.items()}
    return cameras, view_ids
