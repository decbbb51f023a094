"""A single ``transforms.json``, as instant-ngp and nerfstudio write it, and the frame reader it shares with Blender.

Each frame has a ``file_path`` (relative to the JSON file, with or without an image suffix)
and a ``transform_matrix`` (camera to world, OpenGL camera axes, converted to OpenCV's). The
intrinsics ``fl_x fl_y cx cy w h`` (or ``camera_angle_x``) and the distortion ``k1 k2 k3 p1
p2`` sit at the top level or, per view, in the frame. nerfstudio's ``camera_model`` must be a
pinhole one (``OPENCV``, ``PINHOLE``, ...); fisheye and panoramic lenses are refused. A
frame's ``mask_path`` (nerfstudio: 0 where a pixel is to be ignored) becomes its mask, as in
NeuS, and leaves its colours as they are; an RGBA image's alpha becomes its mask and its
colours are put over black, as in Blender. nerfstudio's ``applied_transform`` is ignored:
poses stay in the file's world. There are no splits: every view is ``train``.

Normalisation, in order of preference: foveate's own ``normalization`` key; instant-ngp's
unit cube when the file is written for instant-ngp (it has ``aabb_scale``, ``scale`` or
``offset``; the missing ones take instant-ngp's defaults 0.33 and 0.5); else a sphere around
where the cameras look (:func:`~foveate.data.formats._common.normalization_from_cameras`).
instant-ngp maps a world position ``p`` to ``p * scale + offset`` (then cycles the axes) and
treats ``[0, 1]^3`` as the unit cube, so the region is the cube of half-side ``0.5 / scale``
around ``(0.5 - offset) / scale``: the sphere inscribed in it, whose bounding box is that cube.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..scenes import Scene, SceneFormatError
from ._common import (
    DISTORTION_KEYS,
    IMAGE_SUFFIXES,
    OPENGL_TO_OPENCV,
    check_intrinsics,
    check_size,
    checked_pose,
    colour_and_alpha,
    find_image,
    frame_label,
    inside,
    make_cameras,
    mask_channel,
    normalization_from_cameras,
    numeric_matrix,
    read_array,
    read_image,
    read_json,
    sphere_to_world,
    stack_masks,
    stack_optional,
)

__all__ = ["TRANSFORMS_FILE", "Frame", "load_transforms", "read_transforms_file", "scene_from_frames"]

TRANSFORMS_FILE = "transforms.json"
LOOKS_FOR = "transforms.json (instant-ngp / nerfstudio)"
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
"""nerfstudio camera models that are pinholes with (at most) OpenCV's radial-tangential distortion."""
NGP_SCALE, NGP_OFFSET = 0.33, (0.5, 0.5, 0.5)
"""instant-ngp's defaults for ``scale`` and ``offset``."""


@dataclass
class Frame:
    """One view read from a transforms file; ``where`` names its file and frame for errors."""

    name: str
    where: str
    rgb: np.ndarray
    mask: np.ndarray | None
    pose: np.ndarray
    intrinsics: list[float]
    distortion: list[float]
    depth: np.ndarray | None = None
    normal: np.ndarray | None = None


def detect(root: Path) -> bool:
    """Whether ``root`` holds a ``transforms.json``."""
    return (root / TRANSFORMS_FILE).is_file()


def load_transforms(path: str | Path, require_masks: bool = False) -> Scene:
    """Read a ``transforms.json`` (or the directory holding one) and its images, all as the ``train`` split.

    Args:
        path: the scene directory, or the JSON file itself.
        require_masks: fail, naming the frame, where a view has neither an alpha channel nor a ``mask_path``.
    """
    file = Path(path)
    if file.is_dir():
        file = file / TRANSFORMS_FILE
    if not file.is_file():
        raise SceneFormatError(f"{file}: not found")
    meta, frames = read_transforms_file(file, require_masks, geometry=False)
    normalization = meta_normalization(meta, file)
    if normalization is None:
        normalization = ngp_normalization(meta, file)
    if normalization is None:
        normalization = normalization_from_cameras(np.stack([frame.pose for frame in frames]))
    return scene_from_frames(frames, {"train": list(range(len(frames)))}, normalization)


def read_transforms_file(
    file: Path, require_masks: bool, geometry: bool, size: tuple[int, int] | None = None
) -> tuple[dict[str, Any], list[Frame]]:
    """The top-level settings and the frames of one transforms file (at least one frame).

    Every image must be ``size`` (``(H, W)``; by default, the first image's size). With
    ``geometry``, a frame's ``depth_file_path`` / ``normal_file_path`` (foveate's ``.npy``
    depths and normals) are read too; otherwise they are ignored (nerfstudio's depth files are
    16-bit images in other units).
    """
    meta = read_json(file)
    entries = meta.get("frames")
    if not isinstance(entries, list) or not entries:
        raise SceneFormatError(f"{file}: no 'frames' list (or it is empty)")
    frames = []
    for index, entry in enumerate(entries):
        frames.append(_read_frame(file, index, entry, meta, require_masks, geometry, size))
        size = frames[-1].rgb.shape[:2]
    return meta, frames


def _read_frame(
    file: Path,
    index: int,
    frame: object,
    meta: dict[str, Any],
    require_masks: bool,
    geometry: bool,
    size: tuple[int, int] | None,
) -> Frame:
    if not isinstance(frame, dict) or "file_path" not in frame:
        raise SceneFormatError(f"{frame_label(file, index)}: missing 'file_path'")
    file_path = str(frame["file_path"])
    where = frame_label(file, index, file_path)
    if "transform_matrix" not in frame:
        raise SceneFormatError(f"{where}: missing 'transform_matrix'")
    pose = checked_pose(numeric_matrix(frame["transform_matrix"], "transform_matrix", where), where) @ OPENGL_TO_OPENCV
    settings = {**meta, **frame}
    _check_camera_model(settings, where)
    image_path = find_image(inside(file.parent, file_path, "file_path", where))
    array = read_image(image_path, where)
    height, width = check_size(array, size, where)
    mask = None
    if "mask_path" in frame:
        mask_image = read_image(inside(file.parent, frame["mask_path"], "mask_path", where), where)
        check_size(mask_image, (height, width), where, "mask")
        mask = mask_channel(mask_image)
    rgb, alpha = colour_and_alpha(array, image_path, where, require_alpha=require_masks and mask is None)
    depth = normal = None
    if geometry and "depth_file_path" in frame:
        depth_path = inside(file.parent, frame["depth_file_path"], "depth_file_path", where)
        depth = read_array(depth_path, (height, width), where)
    if geometry and "normal_file_path" in frame:
        normal_path = inside(file.parent, frame["normal_file_path"], "normal_file_path", where)
        normal = read_array(normal_path, (height, width, 3), where)
    return Frame(
        name=_view_name(file_path),
        where=where,
        rgb=rgb,
        mask=alpha if mask is None else mask,
        pose=pose,
        intrinsics=frame_intrinsics(settings, width, height, where),
        distortion=[_number(settings, key, where, 0.0) for key in DISTORTION_KEYS],
        depth=depth,
        normal=normal,
    )


def _view_name(file_path: str) -> str:
    """The file name of ``file_path`` without its image suffix."""
    name = Path(file_path).name
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix in IMAGE_SUFFIXES else name


def _check_camera_model(settings: dict[str, Any], where: str) -> None:
    """Refuse non-pinhole lenses: nerfstudio's other ``camera_model``s, and instant-ngp's ``is_fisheye`` with
    distortion (instant-ngp ignores the flag when every coefficient is 0)."""
    model = settings.get("camera_model", "OPENCV")
    fisheye = bool(settings.get("is_fisheye")) and any(settings.get(k, 0) for k in ("k1", "k2", "k3", "k4", "p1", "p2"))
    if model not in PINHOLE_MODELS or fisheye:
        raise SceneFormatError(
            f"{where}: camera_model {model!r}{' with is_fisheye' if fisheye else ''} is not supported; "
            f"foveate reads pinhole cameras with OpenCV distortion ({', '.join(PINHOLE_MODELS)})"
        )


def _number(settings: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    if key not in settings and default is not None:
        return default
    try:
        value = float(settings[key])
    except (TypeError, ValueError) as error:
        raise SceneFormatError(f"{where}: '{key}' = {settings[key]!r} is not a number") from error
    if not math.isfinite(value):
        raise SceneFormatError(f"{where}: '{key}' = {value} is not finite")
    return value


def _angle(settings: dict[str, Any], key: str, where: str) -> float:
    """A field of view in radians, strictly between 0 and pi."""
    value = _number(settings, key, where)
    if not 0.0 < value < math.pi:
        raise SceneFormatError(f"{where}: '{key}' = {value} is not a field of view in radians (between 0 and pi)")
    return value


def frame_intrinsics(settings: dict[str, Any], width: int, height: int, where: str) -> list[float]:
    """``fx fy cx cy`` from ``fl_x`` / ``fl_y`` or ``camera_angle_x`` / ``camera_angle_y`` and ``cx`` / ``cy``."""
    for key, actual in (("w", width), ("h", height)):
        if key in settings and _number(settings, key, where) != actual:
            raise SceneFormatError(f"{where}: '{key}' = {settings[key]} in the JSON, but the image is {width}x{height}")
    if "fl_x" in settings:
        fx = _number(settings, "fl_x", where)
        fy = _number(settings, "fl_y", where, fx)
    elif "camera_angle_x" in settings:
        fx = width / 2.0 / math.tan(_angle(settings, "camera_angle_x", where) / 2.0)
        fy = (
            fx
            if "camera_angle_y" not in settings
            else height / 2.0 / math.tan(_angle(settings, "camera_angle_y", where) / 2.0)
        )
    else:
        raise SceneFormatError(f"{where}: no focal length ('camera_angle_x' or 'fl_x')")
    cx, cy = _number(settings, "cx", where, width / 2.0), _number(settings, "cy", where, height / 2.0)
    return check_intrinsics((fx, fy, cx, cy), where)


def meta_normalization(meta: dict[str, Any], file: Path) -> np.ndarray | None:
    """foveate's ``normalization`` key of a transforms file, if it has one."""
    if "normalization" not in meta:
        return None
    normalization = numeric_matrix(meta["normalization"], "normalization", str(file))
    if normalization.shape != (4, 4) or not np.isfinite(normalization).all():
        raise SceneFormatError(f"{file}: 'normalization' must be a finite 4x4 matrix")
    return normalization


def ngp_normalization(meta: dict[str, Any], file: Path) -> np.ndarray | None:
    """The sphere inscribed in instant-ngp's unit cube (see the module docstring), for files written for it."""
    if not any(key in meta for key in ("aabb_scale", "scale", "offset")):
        return None
    scale = _number(meta, "scale", str(file), NGP_SCALE)
    offset = numeric_matrix(meta.get("offset", NGP_OFFSET), "offset", str(file))
    if scale <= 0 or offset.shape != (3,) or not np.isfinite(offset).all():
        raise SceneFormatError(f"{file}: instant-ngp 'scale' must be > 0 and 'offset' three finite numbers")
    return sphere_to_world((0.5 - offset) / scale, 0.5 / scale)


def scene_from_frames(frames: list[Frame], splits: dict[str, list[int]], normalization: np.ndarray) -> Scene:
    """A scene of ``frames``, all of one image size (:func:`read_transforms_file` checks it)."""
    size = frames[0].rgb.shape[:2]
    wheres = [frame.where for frame in frames]
    depth = stack_optional([frame.depth for frame in frames], "depth", wheres)
    normal = stack_optional([frame.normal for frame in frames], "normals", wheres)
    return Scene(
        images=torch.from_numpy(np.stack([frame.rgb for frame in frames])),
        cameras=make_cameras(
            [frame.pose for frame in frames],
            [frame.intrinsics for frame in frames],
            [frame.distortion for frame in frames],
            size,
        ),
        names=[frame.name for frame in frames],
        masks=stack_masks([frame.mask for frame in frames], size),
        depths=None if depth is None else torch.from_numpy(depth),
        normals=None if normal is None else torch.from_numpy(normal),
        splits=splits,
        normalization=torch.from_numpy(normalization),
    )
