"""NeuS / IDR scenes: ``image/*.png``, ``mask/*.png`` and ``cameras_sphere.npz``.

``cameras_sphere.npz`` holds ``world_mat_i`` (``K @ world_to_camera``, OpenCV axes, pixel
centres at integer coordinates) and ``scale_mat_i`` (maps the unit sphere around the object
to the world: the scene's normalisation). foveate also writes ``depth/*.npy``,
``normal/*.npy`` and a ``views.json`` with names and splits; other readers ignore them.
RNb-NeuS (:mod:`.rnb`) keeps its cameras in the same archive under another name, so the
archive is read and written here for both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..scenes import Scene, SceneFormatError
from ._common import (
    check_size,
    checked_pose,
    frame_label,
    make_cameras,
    mask_channel,
    read_array,
    read_image,
    read_json,
    write_geometry,
    write_png,
)

__all__ = ["NEUS_CAMERAS", "load_neus", "save_neus"]

NEUS_CAMERAS = "cameras_sphere.npz"
NEUS_VIEWS = "views.json"
LOOKS_FOR = "cameras_sphere.npz (NeuS)"


def detect(root: Path) -> bool:
    """Whether ``root`` holds a ``cameras_sphere.npz``."""
    return (root / NEUS_CAMERAS).is_file()


def load_neus(path: str | Path, require_masks: bool = False) -> Scene:
    """Read ``image/``, ``mask/`` and ``cameras_sphere.npz`` (views in sorted file-name order).

    Args:
        path: the scene directory.
        require_masks: fail if ``mask/`` is absent; when it exists every image needs a mask.
    """
    root = Path(path)
    image_dir, mask_dir, camera_file = root / "image", root / "mask", root / NEUS_CAMERAS
    image_paths = sorted(p for p in image_dir.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not image_paths:
        raise SceneFormatError(f"{image_dir}: no images (.png or .jpg) found")
    cameras_npz = read_camera_archive(camera_file)
    if require_masks and not mask_dir.is_dir():
        raise SceneFormatError(f"{mask_dir}: mask directory not found (masks are required)")

    names = [p.stem for p in image_paths]
    poses, intrinsics, scale = idr_cameras(cameras_npz, camera_file, [p.name for p in image_paths], "image")
    images, masks = [], []
    size: tuple[int, int] | None = None
    for index, image_path in enumerate(image_paths):
        array = read_image(image_path, frame_label(image_dir, index, image_path.name))
        size = check_size(array, size, frame_label(image_dir, index, image_path.name))
        images.append(np.repeat(array[..., :1], 3, axis=2) if array.shape[2] == 1 else array[..., :3])
        if mask_dir.is_dir():
            candidates = [mask_dir / image_path.name, mask_dir / f"{image_path.stem}.png"]
            mask_path = next((p for p in candidates if p.is_file()), candidates[-1])
            mask_where = frame_label(mask_dir, index, mask_path.name)
            if not mask_path.is_file():
                raise SceneFormatError(f"{mask_where}: mask {mask_path} not found for image {image_path.name}")
            mask = read_image(mask_path, mask_where)
            check_size(mask, size, mask_where, "mask")
            masks.append(mask_channel(mask))

    height, width = size
    extra = read_views_file(root, len(names))
    depths = _optional_neus_arrays(root / "depth", len(names), (height, width))
    normals = _optional_neus_arrays(root / "normal", len(names), (height, width, 3))
    return Scene(
        images=torch.from_numpy(np.stack(images)),
        cameras=make_cameras(poses, intrinsics, np.zeros((len(names), 5)), size),
        names=extra.get("names", names),
        masks=torch.from_numpy(np.stack(masks)) if masks else None,
        depths=depths,
        normals=normals,
        splits=extra.get("splits", {"train": list(range(len(names)))}),
        normalization=torch.from_numpy(scale),
    )


def read_camera_archive(file: Path) -> dict[str, np.ndarray]:
    """The arrays of an IDR camera archive (NeuS's ``cameras_sphere.npz``, RNb-NeuS's ``cameras.npz``)."""
    if not file.is_file():
        raise SceneFormatError(f"{file}: camera file not found")
    try:
        return dict(np.load(file, allow_pickle=False))
    except Exception as error:  # a torn archive fails in many ways (BadZipFile, EOFError, ValueError, ...)
        raise SceneFormatError(f"{file}: cannot read it as a NumPy archive ({error})") from error


def idr_cameras(
    arrays: dict[str, np.ndarray], file: Path, names: list[str], what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cameras of views ``0 .. len(names) - 1`` from ``world_mat_i``, and the scene's ``scale_mat``.

    Args:
        arrays: the archive's arrays (:func:`read_camera_archive`).
        file: the archive, for errors.
        names: the file of each view, for errors.
        what: what the views are (``"image"``, ``"normal map"``), for errors.

    Returns:
        Camera-to-world poses ``(N, 4, 4)`` (OpenCV axes), intrinsics ``(N, 4)`` (``fx fy cx cy``,
        foveate's pixel centres at +0.5) and the ``(4, 4)`` ``scale_mat`` every view shares
        (identity where absent), all float64.
    """
    poses, intrinsics = [], []
    scale: np.ndarray | None = None
    for index, name in enumerate(names):
        where = frame_label(file, index, name)
        key = f"world_mat_{index}"
        if key not in arrays:
            raise SceneFormatError(f"{where}: '{key}' missing (one world_mat per {what} is required)")
        scale_i = np.asarray(arrays.get(f"scale_mat_{index}", np.eye(4)), dtype=np.float64)
        if scale_i.shape != (4, 4) or not np.isfinite(scale_i).all():
            raise SceneFormatError(f"{where}: 'scale_mat_{index}' must be a finite 4x4 matrix")
        if scale is None:
            scale = scale_i
        elif not np.allclose(scale, scale_i):
            raise SceneFormatError(
                f"{where}: 'scale_mat_{index}' differs from 'scale_mat_0' (one normalisation per scene)"
            )
        k, pose = _decompose_projection(np.asarray(arrays[key], dtype=np.float64), where)
        poses.append(checked_pose(pose, where))
        # NeuS puts pixel centres at integer coordinates; foveate at +0.5.
        intrinsics.append([k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5])
    return np.stack(poses), np.asarray(intrinsics, dtype=np.float64), scale


def write_camera_archive(scene: Scene, file: Path) -> None:
    """``world_mat_i``, ``scale_mat_i`` and their inverses, as IDR, NeuS and RNb-NeuS read them.

    IDR cameras have no lens distortion: scenes whose cameras have any raise ``ValueError``.
    """
    if scene.cameras.has_distortion:
        raise ValueError(
            f"{file.name} cameras (NeuS, RNb-NeuS) have no lens distortion; undistort the images before saving"
        )
    poses = scene.cameras.camera_to_world.detach().cpu().double().numpy()
    intrinsics = scene.cameras.intrinsics.detach().cpu().double().numpy()
    scale = scene.normalization.numpy()
    arrays: dict[str, np.ndarray] = {}
    for i in range(scene.num_views):
        fx, fy, cx, cy = intrinsics[i]
        k = np.array([[fx, 0.0, cx - 0.5, 0.0], [0.0, fy, cy - 0.5, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
        world = k @ np.linalg.inv(poses[i])
        arrays[f"world_mat_{i}"] = world
        arrays[f"world_mat_inv_{i}"] = np.linalg.inv(world)
        arrays[f"scale_mat_{i}"] = scale
        arrays[f"scale_mat_inv_{i}"] = np.linalg.inv(scale)
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, **arrays)


def write_views_file(scene: Scene, root: Path) -> None:
    """foveate's ``views.json`` beside the archive: the views' names and splits."""
    (root / NEUS_VIEWS).write_text(json.dumps({"names": scene.names, "splits": scene.splits}, indent=2))


def _decompose_projection(matrix: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``P = K [R | t]`` into intrinsics ``K`` (3x3, ``K[2, 2] = 1``) and a camera-to-world pose."""
    if matrix.shape not in ((4, 4), (3, 4)):
        raise SceneFormatError(f"{where}: world_mat must be 3x4 or 4x4, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise SceneFormatError(f"{where}: world_mat contains NaN or infinite values")
    projection = matrix[:3, :4]
    left = projection[:, :3]
    determinant = np.linalg.det(left)
    if abs(determinant) < 1e-12 * max(1.0, np.abs(left).max() ** 3):
        raise SceneFormatError(f"{where}: world_mat is not invertible (its left 3x3 block is singular)")
    if determinant < 0:
        projection, left = -projection, -left
    # RQ decomposition via QR of the row-reversed transpose.
    reverse = np.eye(3)[::-1]
    q, r = np.linalg.qr((reverse @ left).T)
    k = reverse @ r.T @ reverse
    rotation = reverse @ q.T
    signs = np.diag(np.sign(np.diag(k)))
    k, rotation = k @ signs, signs @ rotation
    translation = np.linalg.solve(k, projection[:, 3])
    k = k / k[2, 2]
    if abs(k[0, 1]) > 1e-3 * abs(k[0, 0]):
        raise SceneFormatError(f"{where}: world_mat has skewed intrinsics (K[0, 1] = {k[0, 1]:.4g}), unsupported")
    pose = np.eye(4)
    pose[:3, :3] = rotation.T
    pose[:3, 3] = -rotation.T @ translation
    return k, pose


def _optional_neus_arrays(folder: Path, count: int, shape: tuple[int, ...]) -> torch.Tensor | None:
    """foveate's ``<folder>/<index>.npy`` arrays, or ``None`` without any (``normal/`` may hold RNb-NeuS's PNGs)."""
    if not folder.is_dir() or not any(folder.glob("*.npy")):
        return None
    arrays = [read_array(folder / f"{i:03d}.npy", shape, frame_label(folder, i)) for i in range(count)]
    return torch.from_numpy(np.stack(arrays))


def read_views_file(root: Path, count: int) -> dict:
    """Names and splits from foveate's ``views.json`` (``{}`` without one), checked against ``count`` views."""
    file = root / NEUS_VIEWS
    if not file.is_file():
        return {}
    extra = read_json(file)
    names = extra.get("names")
    if names is not None and len(names) != count:
        raise SceneFormatError(f"{file}: lists {len(names)} names for {count} images")
    splits = extra.get("splits", {})
    for split, indices in splits.items():
        if any(not isinstance(i, int) or not 0 <= i < count for i in indices):
            raise SceneFormatError(f"{file}: split {split!r} names views outside [0, {count})")
    return {key: value for key, value in (("names", names), ("splits", splits or None)) if value is not None}


def save_neus(scene: Scene, path: str | Path, geometry: bool = True) -> None:
    """Write ``image/<i>.png``, ``mask/<i>.png`` (if the scene has masks), ``cameras_sphere.npz`` and ``views.json``.

    NeuS has no lens distortion: scenes whose cameras have any raise ``ValueError``. Sparse points are not written.
    """
    root = Path(path)
    write_camera_archive(scene, root / NEUS_CAMERAS)
    images = scene.images.numpy()
    masks = None if scene.masks is None else scene.masks.numpy()
    for i in range(scene.num_views):
        write_png(root / "image" / f"{i:03d}.png", images[i])
        if masks is not None:
            write_png(root / "mask" / f"{i:03d}.png", masks[i])
    if geometry:
        write_geometry(scene, root)
    write_views_file(scene, root)
