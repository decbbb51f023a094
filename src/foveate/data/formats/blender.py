"""Blender / NeRF-synthetic scenes: ``transforms_{train,val,test}.json`` and their images.

Camera axes in the files are OpenGL's; the image's alpha channel is the mask. Optional
nerfstudio-style keys ``fl_x, fl_y, cx, cy, w, h, k1, k2, k3, p1, p2`` (top level or per
frame) and foveate's per-frame ``depth_file_path`` / ``normal_file_path`` (``.npy``) and
top-level ``normalization`` are read and written. Without ``normalization`` the scene's is the
identity: NeRF-synthetic objects sit around the origin.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..scenes import Scene, SceneFormatError
from ._common import DISTORTION_KEYS, OPENGL_TO_OPENCV, file_names, image_to_write, write_geometry, write_png
from .transforms import Frame, meta_normalization, read_transforms_file, scene_from_frames

__all__ = ["BLENDER_SPLITS", "load_blender", "save_blender"]

BLENDER_SPLITS = ("train", "val", "test")
LOOKS_FOR = "transforms_{train,val,test}.json (Blender)"


def detect(root: Path) -> bool:
    """Whether ``root`` holds a ``transforms_<split>.json``."""
    return any((root / f"transforms_{split}.json").is_file() for split in BLENDER_SPLITS)


def load_blender(path: str | Path, require_masks: bool = False) -> Scene:
    """Read ``transforms_{train,val,test}.json`` and their images (at least one split must exist).

    Views are ordered by split (train, val, test), then as listed in each file.

    Args:
        path: the scene directory.
        require_masks: fail, naming the frame, if an image has no alpha channel.
    """
    root = Path(path)
    files = [(split, root / f"transforms_{split}.json") for split in BLENDER_SPLITS]
    files = [(split, file) for split, file in files if file.is_file()]
    if not files:
        raise SceneFormatError(f"{root}: no transforms_{{train,val,test}}.json found")
    frames: list[Frame] = []
    splits: dict[str, list[int]] = {}
    normalization = np.eye(4)
    for split, file in files:
        size = frames[0].rgb.shape[:2] if frames else None
        meta, split_frames = read_transforms_file(file, require_masks, geometry=True, size=size)
        own = meta_normalization(meta, file)
        normalization = normalization if own is None else own
        splits[split] = list(range(len(frames), len(frames) + len(split_frames)))
        frames += split_frames
    return scene_from_frames(frames, splits, normalization)


def save_blender(scene: Scene, path: str | Path, geometry: bool = True) -> None:
    """Write ``transforms_<split>.json`` and ``<split>/<name>.png`` for every split of ``scene``.

    Images are RGBA (straight alpha) when the scene has masks, else RGB. With ``geometry``,
    depths and normals go to ``depth/<index>.npy`` and ``normal/<index>.npy``, referenced by
    each frame's ``depth_file_path`` / ``normal_file_path``. Sparse points are not written.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    poses = scene.cameras.camera_to_world.detach().cpu().double().numpy() @ OPENGL_TO_OPENCV
    intrinsics = scene.cameras.intrinsics.detach().cpu().double().numpy()
    distortion = scene.cameras.distortion.detach().cpu().double().numpy() if scene.cameras.has_distortion else None
    if geometry:
        write_geometry(scene, root)
    for split, indices in scene.splits.items():
        if not indices:
            continue
        shared = _camera_settings(
            intrinsics[indices[0]], None if distortion is None else distortion[indices[0]], scene.width, scene.height
        )
        frames = []
        for i, name in zip(indices, file_names(scene, indices), strict=True):
            file_path = f"{split}/{name}"
            write_png(root / f"{file_path}.png", image_to_write(scene, i))
            frame: dict[str, Any] = {"file_path": f"./{file_path}", "transform_matrix": poses[i].tolist()}
            own = _camera_settings(
                intrinsics[i], None if distortion is None else distortion[i], scene.width, scene.height
            )
            frame.update({k: v for k, v in own.items() if shared.get(k) != v})
            if geometry and scene.depths is not None:
                frame["depth_file_path"] = f"depth/{i:03d}.npy"
            if geometry and scene.normals is not None:
                frame["normal_file_path"] = f"normal/{i:03d}.npy"
            frames.append(frame)
        meta = {**shared, "frames": frames}
        if not torch.equal(scene.normalization, torch.eye(4, dtype=torch.float64)):
            meta["normalization"] = scene.normalization.tolist()
        (root / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))


def _camera_settings(k: np.ndarray, distortion: np.ndarray | None, width: int, height: int) -> dict[str, Any]:
    fx, fy, cx, cy = (float(v) for v in k)
    settings: dict[str, Any] = {
        "camera_angle_x": 2.0 * math.atan(width / 2.0 / fx),
        "fl_x": fx,
        "fl_y": fy,
        "cx": cx,
        "cy": cy,
        "w": width,
        "h": height,
    }
    if distortion is not None:
        settings.update({key: float(v) for key, v in zip(DISTORTION_KEYS, distortion, strict=True)})
    return settings
