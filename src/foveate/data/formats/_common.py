"""Checks and image helpers shared by the scene format readers and writers.

Every error is a :class:`~foveate.data.scenes.SceneFormatError` whose message starts with the
place it concerns (``where``: a file, and the frame or line within it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cameras import Cameras
from ..scenes import Scene, SceneFormatError

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""Flips camera y and z: Blender / OpenGL camera axes to OpenCV's (its own inverse)."""

DISTORTION_KEYS = ("k1", "k2", "p1", "p2", "k3")
"""foveate's (and OpenCV's) order of the distortion coefficients."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def frame_label(path: Path, index: int, name: str | None = None) -> str:
    """``"<path>: frame <index> ('<name>')"``, the prefix of errors about one frame."""
    return f"{path}: frame {index}" + (f" ({name!r})" if name else "")


def read_json(file: Path) -> dict[str, Any]:
    """A JSON object read from ``file``."""
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SceneFormatError(f"{file}: cannot parse JSON: {error}") from error
    if not isinstance(meta, dict):
        raise SceneFormatError(f"{file}: expected a JSON object at the top level, got {type(meta).__name__}")
    return meta


def checked_pose(matrix: np.ndarray, where: str) -> np.ndarray:
    """A 4x4 rigid camera-to-world transform, or an error saying what is wrong with it."""
    if matrix.shape not in ((4, 4), (3, 4)):
        raise SceneFormatError(f"{where}: pose must be 3x4 or 4x4, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise SceneFormatError(f"{where}: pose contains NaN or infinite values")
    pose = np.eye(4)
    pose[: matrix.shape[0]] = matrix
    if not np.allclose(pose[3], [0.0, 0.0, 0.0, 1.0]):
        raise SceneFormatError(f"{where}: pose's last row must be [0, 0, 0, 1], got {pose[3].tolist()}")
    rotation = pose[:3, :3]
    if abs(np.linalg.det(rotation)) < 1e-6:
        raise SceneFormatError(f"{where}: pose is not invertible (its rotation part is singular)")
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-3):
        raise SceneFormatError(f"{where}: pose's rotation part is not orthonormal (it scales or shears)")
    return pose


def numeric_matrix(value: object, key: str, where: str) -> np.ndarray:
    """``value`` as a float64 array, or an error naming ``key``."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise SceneFormatError(f"{where}: '{key}' is not a numeric matrix") from error


def read_image(path: Path, where: str) -> np.ndarray:
    """An 8-bit image as an (H, W, C) array with C in {1, 3, 4}."""
    from PIL import Image

    if not path.is_file():
        raise SceneFormatError(f"{where}: image {path} not found")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I"):
                return (np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8)[..., None]
            mode = {"L": "L", "LA": "RGBA", "RGB": "RGB", "RGBA": "RGBA", "P": "RGBA", "1": "L"}.get(image.mode, "RGB")
            array = np.asarray(image.convert(mode))
    except OSError as error:
        raise SceneFormatError(f"{where}: cannot read image {path}: {error}") from error
    return array[..., None] if array.ndim == 2 else array


def read_unit_image(path: Path, where: str) -> np.ndarray:
    """An 8- or 16-bit grey or RGB image at full precision: ``(H, W, C)`` float64, each sample over ``2^bits - 1``.

    :func:`read_image` keeps 8 bits, which is right for photographs; normal and albedo maps
    are often 16-bit and need all of them.
    """
    from ..images import ImageError, load_photo

    if not path.is_file():
        raise SceneFormatError(f"{where}: image {path} not found")
    try:
        photo = load_photo(path)
    except ImageError as error:
        raise SceneFormatError(f"{where}: {error}") from error
    return photo.pixels.numpy().astype(np.float64) / photo.max_value


def inside(root: Path, relative: object, key: str, where: str) -> Path:
    """``root / relative``, refusing a path that leaves ``root`` (``../``, absolute paths, links out)."""
    path = (root / str(relative)).resolve()
    if not path.is_relative_to(root.resolve()):
        raise SceneFormatError(f"{where}: '{key}' = {str(relative)!r} points outside the scene folder {root}")
    return path


def find_image(path: Path) -> Path:
    """``path`` itself if it has a suffix, else the first existing ``path.<suffix>`` (``.png`` if none does)."""
    if path.suffix:
        return path
    candidates = [path.with_name(path.name + suffix) for suffix in IMAGE_SUFFIXES]
    return next((p for p in candidates if p.is_file()), candidates[0])


def colour_and_alpha(
    array: np.ndarray, path: Path, where: str, require_alpha: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB over black and the alpha channel (``None`` without one) of an image read by :func:`read_image`."""
    if array.shape[2] == 4:
        return premultiply(array)
    if require_alpha:
        raise SceneFormatError(f"{where}: image {path} has no alpha channel to use as mask")
    return (np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array), None


def mask_channel(array: np.ndarray) -> np.ndarray:
    """Coverage from a mask image: its alpha if it has one, else its brightest channel."""
    return array[..., 3] if array.shape[2] == 4 else array[..., :3].max(axis=2)


def read_array(path: Path, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A float32 ``.npy`` array of the given shape."""
    if not path.is_file():
        raise SceneFormatError(f"{where}: {path} not found")
    try:
        array = np.load(path)
    except (OSError, ValueError) as error:
        raise SceneFormatError(f"{where}: cannot read {path}: {error}") from error
    if array.shape != shape:
        raise SceneFormatError(f"{where}: {path} has shape {array.shape}, expected {shape}")
    return array.astype(np.float32)


def check_size(array: np.ndarray, size: tuple[int, int] | None, where: str, what: str = "image") -> tuple[int, int]:
    """The ``(H, W)`` of ``array``, which must equal ``size`` (the earlier frames') unless that is ``None``."""
    if size is not None and array.shape[:2] != size:
        raise SceneFormatError(
            f"{where}: {what} is {array.shape[1]}x{array.shape[0]}, but earlier frames are {size[1]}x{size[0]} "
            "(all views must share one size)"
        )
    return array.shape[:2]


def premultiply(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour over black, and alpha, from straight RGBA."""
    alpha = rgba[..., 3].astype(np.uint32)
    rgb = (rgba[..., :3].astype(np.uint32) * alpha[..., None] + 127) // 255
    return rgb.astype(np.uint8), rgba[..., 3]


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight colour from colour over black; exact inverse of :func:`premultiply` where rgb <= alpha."""
    a = alpha.astype(np.float64)[..., None]
    straight = np.where(a > 0, np.rint(rgb.astype(np.float64) * 255.0 / np.maximum(a, 1.0)), 0.0)
    return np.clip(straight, 0, 255).astype(np.uint8)


def image_to_write(scene: Scene, index: int) -> np.ndarray:
    """View ``index`` as a file holds it: straight RGBA when the scene has masks, else RGB."""
    rgb = scene.images[index].numpy()
    if scene.masks is None:
        return rgb
    mask = scene.masks[index].numpy()
    return np.concatenate([unpremultiply(rgb, mask), mask[..., None]], axis=2)


def write_png(path: Path, array: np.ndarray) -> None:
    """``(H, W)`` or ``(H, W, C)`` samples as a PNG: 8 bits per sample from uint8, 16 from uint16."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16:  # Pillow writes 16-bit grey only; pypng writes any layout
        import png

        height, width = array.shape[:2]
        planes = 1 if array.ndim == 2 else array.shape[2]
        writer = png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16)
        with path.open("wb") as file:
            writer.write(file, array.reshape(height, width * planes))
        return
    from PIL import Image

    Image.fromarray(array).save(path)


def file_names(scene: Scene, indices: Sequence[int]) -> list[str]:
    """File stems for the views at ``indices``: their names if safe and distinct, else their indices."""
    names = [re.sub(r"[^A-Za-z0-9_.-]", "_", Path(scene.names[i]).name) or f"{i:03d}" for i in indices]
    if len(set(names)) != len(names):
        names = [f"{i:03d}" for i in indices]
    return names


def write_geometry(scene: Scene, root: Path) -> None:
    """Depths and normals, if the scene has them, as ``depth/<index>.npy`` and ``normal/<index>.npy``."""
    for folder, values in (("depth", scene.depths), ("normal", scene.normals)):
        if values is None:
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(scene.num_views):
            np.save(root / folder / f"{i:03d}.npy", values[i].numpy())


def stack_optional(values: list[np.ndarray | None], what: str, wheres: list[str]) -> np.ndarray | None:
    """Stack per-frame arrays that are all present, or return None if none is; partial is an error."""
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        missing = present.index(False)
        raise SceneFormatError(f"{wheres[missing]}: has no {what} file, but other frames do")
    return np.stack(values)


def stack_masks(masks: list[np.ndarray | None], size: tuple[int, int]) -> torch.Tensor | None:
    """``(N, H, W)`` masks, a view without one fully covered; ``None`` if no view has one."""
    if all(m is None for m in masks):
        return None
    full = np.full(size, 255, dtype=np.uint8)
    return torch.from_numpy(np.stack([full if m is None else m for m in masks]))


def make_cameras(
    poses: Sequence[np.ndarray],
    intrinsics: Sequence[Sequence[float]],
    distortions: Sequence[Sequence[float]],
    size: tuple[int, int],
) -> Cameras:
    """Cameras of ``(H, W) = size`` from per-view poses, ``fx fy cx cy`` and ``k1 k2 p1 p2 k3`` (all zero: none)."""
    distortion = torch.tensor(np.asarray(distortions, dtype=np.float64).reshape(-1, 5), dtype=torch.float32)
    return Cameras(
        torch.from_numpy(np.stack(poses)).to(torch.float32),
        torch.tensor(np.asarray(intrinsics, dtype=np.float64), dtype=torch.float32),
        size[1],
        size[0],
        distortion if bool((distortion != 0).any()) else None,
    )


def check_intrinsics(values: Sequence[float], where: str) -> list[float]:
    """``fx fy cx cy`` as floats; focal lengths positive and everything finite."""
    fx, fy, cx, cy = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise SceneFormatError(f"{where}: invalid intrinsics fx={fx}, fy={fy}, cx={cx}, cy={cy}")
    return [fx, fy, cx, cy]


# ----------------------------------------------------------------------------------------------
# Normalisation: the sphere around the region to reconstruct


def sphere_to_world(center: np.ndarray, radius: float) -> np.ndarray:
    """The ``(4, 4)`` map from the unit sphere to the sphere of ``radius`` around ``center``."""
    matrix = np.diag([radius, radius, radius, 1.0])
    matrix[:3, 3] = center
    return matrix


def normalization_from_points(points: np.ndarray, percentile: float = 95.0) -> np.ndarray | None:
    """A sphere around most of ``points`` (P, 3), robust to outliers; ``None`` if it would be empty.

    The centre is the coordinate-wise median and the radius the ``percentile``-th percentile of
    the distances to it, so a few stray points (which sparse reconstructions always have) move
    neither.
    """
    if len(points) == 0:
        return None
    center = np.median(points, axis=0)
    radius = float(np.percentile(np.linalg.norm(points - center, axis=1), percentile))
    return sphere_to_world(center, radius) if radius > 0 and math.isfinite(radius) else None


def normalization_from_cameras(camera_to_world: np.ndarray, shrink: float = 0.5) -> np.ndarray:
    """A sphere around where cameras ``(N, 4, 4)`` (OpenCV axes) look, for scenes with nothing better.

    The centre is the point nearest, in least squares, to all optical axes (where an inward-facing
    capture converges); the radius is ``shrink`` times the median distance from it to the cameras.
    When the axes do not converge (nearly parallel, as in forward-facing captures, or a single
    camera), the centre is the mean camera position and the radius the largest distance from it
    to a camera (1 if all cameras coincide).
    """
    origins = camera_to_world[:, :3, 3].astype(np.float64)
    forward = camera_to_world[:, :3, 2].astype(np.float64)
    forward = forward / np.linalg.norm(forward, axis=1, keepdims=True)
    projectors = np.eye(3) - forward[:, :, None] * forward[:, None, :]
    system = projectors.sum(axis=0)
    if np.linalg.eigvalsh(system)[0] > 0.05 * len(origins):
        center = np.linalg.solve(system, np.einsum("nij,nj->i", projectors, origins))
        radius = shrink * float(np.median(np.linalg.norm(origins - center, axis=1)))
    else:
        center = origins.mean(axis=0)
        radius = float(np.linalg.norm(origins - center, axis=1).max())
    return sphere_to_world(center, radius if radius > 0 else 1.0)
