"""Multi-view scenes: posed images with masks, read from and written to two common formats.

- **Blender / NeRF-synthetic**: ``transforms_{train,val,test}.json`` (OpenGL camera axes, the
  image's alpha channel as mask). Optional nerfstudio-style keys ``fl_x, fl_y, cx, cy, w, h,
  k1, k2, k3, p1, p2`` (top level or per frame) and per-frame ``depth_file_path`` /
  ``normal_file_path`` (``.npy``) are read and written.
- **NeuS / IDR**: ``image/*.png``, ``mask/*.png`` and ``cameras_sphere.npz`` holding
  ``world_mat_i`` (``K @ world_to_camera``, OpenCV axes, pixel centres at integer coordinates)
  and ``scale_mat_i`` (maps the unit sphere around the object to the world). foveate also
  writes ``depth/*.npy``, ``normal/*.npy`` and a ``views.json`` with names and splits; other
  readers ignore them.

Both formats can live in one directory (``foveate data render`` writes them side by side).
Malformed input raises :class:`SceneFormatError` naming the file and the frame.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .cameras import Cameras

__all__ = [
    "BLENDER_SPLITS",
    "Scene",
    "SceneFormatError",
    "detect_format",
    "load_blender",
    "load_neus",
    "load_scene",
    "save_blender",
    "save_neus",
]

BLENDER_SPLITS = ("train", "val", "test")
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""Flips camera y and z: Blender / OpenGL camera axes to OpenCV's (its own inverse)."""
NEUS_CAMERAS = "cameras_sphere.npz"
NEUS_VIEWS = "views.json"


class SceneFormatError(ValueError):
    """A scene file is missing or malformed; the message names the file and the frame."""


@dataclass
class Scene:
    """Posed images of one scene, held on the CPU.

    Attributes:
        images: ``(N, H, W, 3)`` uint8: the colour each camera saw, over black where the view
            is transparent (colours read from RGBA files are premultiplied by alpha).
        cameras: the ``N`` cameras, OpenCV axes (see :mod:`foveate.data.cameras`).
        names: one name per view (file stems).
        masks: ``(N, H, W)`` uint8 coverage (255 = object), or ``None``.
        depths: ``(N, H, W)`` float32 distance along each pixel's ray, 0 where nothing is hit.
        normals: ``(N, H, W, 3)`` float32 world-space unit normals, 0 where nothing is hit.
        splits: view indices per split, e.g. ``{"train": [...], "val": [...], "test": [...]}``.
        normalization: ``(4, 4)`` float64 map from the unit sphere around the region to
            reconstruct to world coordinates (NeuS's ``scale_mat``).
    """

    images: torch.Tensor
    cameras: Cameras
    names: list[str]
    masks: torch.Tensor | None = None
    depths: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    splits: dict[str, list[int]] = field(default_factory=dict)
    normalization: torch.Tensor = field(default_factory=lambda: torch.eye(4, dtype=torch.float64))

    def __post_init__(self) -> None:
        n, h, w = self.num_views, self.height, self.width
        if self.images.dtype != torch.uint8 or self.images.shape != (n, h, w, 3):
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.cameras) != n or (self.cameras.height, self.cameras.width) != (h, w):
            raise ValueError(
                f"{len(self.cameras)} cameras of {self.cameras.width}x{self.cameras.height} "
                f"do not match {n} images of {w}x{h}"
            )
        if len(self.names) != n:
            raise ValueError(f"need one name per view: {len(self.names)} names for {n} views")
        expected = {
            "masks": ((n, h, w), torch.uint8),
            "depths": ((n, h, w), torch.float32),
            "normals": ((n, h, w, 3), torch.float32),
        }
        for name, (shape, dtype) in expected.items():
            value = getattr(self, name)
            if value is not None and (value.shape != shape or value.dtype != dtype):
                raise ValueError(f"{name} must be {dtype} {shape}, got {value.dtype} {tuple(value.shape)}")
        if not self.splits:
            self.splits = {"train": list(range(n))}
        for split, indices in self.splits.items():
            if any(not 0 <= i < n for i in indices):
                raise ValueError(f"split {split!r} names views outside [0, {n})")
        self.normalization = torch.as_tensor(self.normalization, dtype=torch.float64)

    @property
    def num_views(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    @property
    def num_rays(self) -> int:
        return self.num_views * self.height * self.width

    def select(self, indices: Sequence[int]) -> Scene:
        """The views at ``indices``, as a scene with a single ``train`` split."""
        indices = list(indices)
        if not indices:
            raise ValueError("cannot select an empty set of views")
        if indices == list(range(self.num_views)):
            return replace(self, splits={"train": indices})
        index = torch.as_tensor(indices, dtype=torch.long)

        def take(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value[index]

        return replace(
            self,
            images=self.images[index],
            cameras=self.cameras[index.to(self.cameras.device)],
            names=[self.names[i] for i in index.tolist()],
            masks=take(self.masks),
            depths=take(self.depths),
            normals=take(self.normals),
            splits={"train": list(range(index.numel()))},
        )

    def split(self, name: str) -> Scene:
        """The views of split ``name`` (``train``, ``val``, ``test``)."""
        if name not in self.splits or not self.splits[name]:
            raise KeyError(f"scene has no views in split {name!r}; splits: {sorted(self.splits)}")
        return self.select(self.splits[name])

    def downsampled(self, factor: int) -> Scene:
        """Images, masks and cameras shrunk by an integer ``factor`` (box filter; no depths or normals)."""
        if factor == 1:
            return self
        cameras = self.cameras.downsampled(factor)
        images = torch.cat([shrink_uint8(self.images[i : i + 1], factor) for i in range(self.num_views)])
        masks = None
        if self.masks is not None:
            masks = torch.cat(
                [shrink_uint8(self.masks[i : i + 1, ..., None], factor)[..., 0] for i in range(self.num_views)]
            )
        return replace(self, images=images, cameras=cameras, masks=masks, depths=None, normals=None)


def shrink_uint8(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor x factor`` blocks of ``(N, H, W, C)`` uint8 images (partial blocks dropped)."""
    planar = images.permute(0, 3, 1, 2).to(torch.float32)
    shrunk = F.avg_pool2d(planar, factor)
    return shrunk.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def detect_format(path: str | Path) -> str:
    """``"blender"`` if ``transforms_*.json`` are present, else ``"neus"`` if ``cameras_sphere.npz`` is."""
    root = Path(path)
    if not root.is_dir():
        raise SceneFormatError(f"{root}: scene directory not found")
    if any((root / f"transforms_{split}.json").exists() for split in BLENDER_SPLITS):
        return "blender"
    if (root / NEUS_CAMERAS).exists():
        return "neus"
    raise SceneFormatError(
        f"{root}: neither transforms_{{train,val,test}}.json (Blender) nor {NEUS_CAMERAS} (NeuS) found"
    )


def load_scene(path: str | Path, format: str | None = None, require_masks: bool = False) -> Scene:
    """Read a scene directory in ``format`` (``"blender"``, ``"neus"``, or ``None`` to detect it)."""
    format = format or detect_format(path)
    if format == "blender":
        return load_blender(path, require_masks=require_masks)
    if format == "neus":
        return load_neus(path, require_masks=require_masks)
    raise ValueError(f"scene format must be 'blender' or 'neus', got {format!r}")


# ----------------------------------------------------------------------------------------------
# Shared checks


def _frame(path: Path, index: int, name: str | None = None) -> str:
    return f"{path}: frame {index}" + (f" ({name!r})" if name else "")


def _checked_pose(matrix: np.ndarray, where: str) -> np.ndarray:
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


def _read_image(path: Path, where: str) -> np.ndarray:
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


def _read_array(path: Path, shape: tuple[int, ...], where: str) -> np.ndarray:
    if not path.is_file():
        raise SceneFormatError(f"{where}: {path} not found")
    try:
        array = np.load(path)
    except (OSError, ValueError) as error:
        raise SceneFormatError(f"{where}: cannot read {path}: {error}") from error
    if array.shape != shape:
        raise SceneFormatError(f"{where}: {path} has shape {array.shape}, expected {shape}")
    return array.astype(np.float32)


def _check_size(array: np.ndarray, size: tuple[int, int] | None, where: str, what: str = "image") -> tuple[int, int]:
    if size is not None and array.shape[:2] != size:
        raise SceneFormatError(
            f"{where}: {what} is {array.shape[1]}x{array.shape[0]}, but earlier frames are {size[1]}x{size[0]} "
            "(all views must share one size)"
        )
    return array.shape[:2]


def _premultiply(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alpha = rgba[..., 3].astype(np.uint32)
    rgb = (rgba[..., :3].astype(np.uint32) * alpha[..., None] + 127) // 255
    return rgb.astype(np.uint8), rgba[..., 3]


def _unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight colour from colour over black; exact inverse of :func:`_premultiply` where rgb <= alpha."""
    a = alpha.astype(np.float64)[..., None]
    straight = np.where(a > 0, np.rint(rgb.astype(np.float64) * 255.0 / np.maximum(a, 1.0)), 0.0)
    return np.clip(straight, 0, 255).astype(np.uint8)


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)


def _safe_name(name: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name)
    return cleaned or fallback


def _file_names(scene: Scene, indices: Sequence[int]) -> list[str]:
    """File stems for the views at ``indices``: their names if safe and distinct, else their indices."""
    names = [_safe_name(scene.names[i], f"{i:03d}") for i in indices]
    if len(set(names)) != len(names):
        names = [f"{i:03d}" for i in indices]
    return names


def _stack_optional(
    values: list[np.ndarray | None], what: str, frames: list[tuple[Path, int]], names: list[str]
) -> np.ndarray | None:
    """Stack per-frame arrays that are all present, or return None if none is; partial is an error."""
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        missing = present.index(False)
        file, index = frames[missing]
        raise SceneFormatError(f"{_frame(file, index, names[missing])}: has no {what} file, but other frames do")
    return np.stack(values)


# ----------------------------------------------------------------------------------------------
# Blender / NeRF-synthetic


def load_blender(path: str | Path, require_masks: bool = False) -> Scene:
    """Read ``transforms_{train,val,test}.json`` and their images (at least one split must exist).

    Args:
        path: the scene directory.
        require_masks: fail, naming the frame, if an image has no alpha channel.
    """
    root = Path(path)
    files = [(split, root / f"transforms_{split}.json") for split in BLENDER_SPLITS]
    files = [(split, file) for split, file in files if file.is_file()]
    if not files:
        raise SceneFormatError(f"{root}: no transforms_{{train,val,test}}.json found")

    images, masks, poses, intrinsics, distortions, names, depths, normals = [], [], [], [], [], [], [], []
    frame_files: list[tuple[Path, int]] = []
    splits: dict[str, list[int]] = {}
    normalization = np.eye(4)
    size: tuple[int, int] | None = None
    for split, file in files:
        try:
            meta = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SceneFormatError(f"{file}: cannot parse JSON: {error}") from error
        frames = meta.get("frames") if isinstance(meta, dict) else None
        if not isinstance(frames, list) or not frames:
            raise SceneFormatError(f"{file}: no 'frames' list (or it is empty)")
        if "normalization" in meta:
            try:
                normalization = np.asarray(meta["normalization"], dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise SceneFormatError(f"{file}: 'normalization' is not a numeric matrix") from error
            if normalization.shape != (4, 4) or not np.isfinite(normalization).all():
                raise SceneFormatError(f"{file}: 'normalization' must be a finite 4x4 matrix")
        splits[split] = []
        for index, frame in enumerate(frames):
            if not isinstance(frame, dict) or "file_path" not in frame:
                raise SceneFormatError(f"{_frame(file, index)}: missing 'file_path'")
            file_path = str(frame["file_path"])
            where = _frame(file, index, file_path)
            if "transform_matrix" not in frame:
                raise SceneFormatError(f"{where}: missing 'transform_matrix'")
            try:
                matrix = np.asarray(frame["transform_matrix"], dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise SceneFormatError(f"{where}: 'transform_matrix' is not a numeric matrix") from error
            pose = _checked_pose(matrix, where) @ OPENGL_TO_OPENCV
            image_path = root / file_path
            if not image_path.suffix:
                image_path = image_path.with_suffix(".png")
            array = _read_image(image_path, where)
            size = _check_size(array, size, where)
            height, width = size
            if array.shape[2] == 4:
                rgb, alpha = _premultiply(array)
            elif require_masks:
                raise SceneFormatError(f"{where}: image {image_path} has no alpha channel to use as mask")
            else:
                rgb, alpha = (np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array), None
            settings = {**meta, **frame}
            intrinsics.append(_blender_intrinsics(settings, width, height, where))
            distortions.append([float(settings.get(key, 0.0)) for key in ("k1", "k2", "p1", "p2", "k3")])
            for key, store, shape in (
                ("depth_file_path", depths, (height, width)),
                ("normal_file_path", normals, (height, width, 3)),
            ):
                store.append(_read_array(root / frame[key], shape, where) if key in frame else None)
            splits[split].append(len(images))
            images.append(rgb)
            masks.append(alpha)
            poses.append(pose)
            names.append(Path(file_path).name)
            frame_files.append((file, index))

    if any(m is not None for m in masks):
        full = np.full(size, 255, dtype=np.uint8)
        masks = [full if m is None else m for m in masks]
        mask_tensor = torch.from_numpy(np.stack(masks))
    else:
        mask_tensor = None
    depth = _stack_optional(depths, "depth", frame_files, names)
    normal = _stack_optional(normals, "normals", frame_files, names)
    distortion = torch.tensor(distortions, dtype=torch.float32)
    cameras = Cameras(
        torch.from_numpy(np.stack(poses)).to(torch.float32),
        torch.tensor(intrinsics, dtype=torch.float32),
        size[1],
        size[0],
        distortion if bool((distortion != 0).any()) else None,
    )
    return Scene(
        images=torch.from_numpy(np.stack(images)),
        cameras=cameras,
        names=names,
        masks=mask_tensor,
        depths=None if depth is None else torch.from_numpy(depth),
        normals=None if normal is None else torch.from_numpy(normal),
        splits=splits,
        normalization=torch.from_numpy(normalization),
    )


def _blender_intrinsics(settings: dict, width: int, height: int, where: str) -> list[float]:
    for key in ("w", "h"):
        if key in settings and int(settings[key]) != (width if key == "w" else height):
            raise SceneFormatError(f"{where}: '{key}' = {settings[key]} in the JSON, but the image is {width}x{height}")
    if "fl_x" in settings:
        fx = float(settings["fl_x"])
        fy = float(settings.get("fl_y", fx))
    elif "camera_angle_x" in settings:
        fx = width / 2.0 / math.tan(float(settings["camera_angle_x"]) / 2.0)
        fy = height / 2.0 / math.tan(float(settings["camera_angle_y"]) / 2.0) if "camera_angle_y" in settings else fx
    else:
        raise SceneFormatError(f"{where}: no focal length ('camera_angle_x' or 'fl_x')")
    cx, cy = float(settings.get("cx", width / 2.0)), float(settings.get("cy", height / 2.0))
    values = [fx, fy, cx, cy]
    if not all(math.isfinite(v) for v in values) or fx <= 0 or fy <= 0:
        raise SceneFormatError(f"{where}: invalid intrinsics fx={fx}, fy={fy}, cx={cx}, cy={cy}")
    return values


def save_blender(scene: Scene, path: str | Path, geometry: bool = True) -> None:
    """Write ``transforms_<split>.json`` and ``<split>/<name>.png`` for every split of ``scene``.

    Images are RGBA (straight alpha) when the scene has masks, else RGB. With ``geometry``,
    depths and normals go to ``depth/<index>.npy`` and ``normal/<index>.npy``, referenced by
    each frame's ``depth_file_path`` / ``normal_file_path``.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    images = scene.images.numpy()
    masks = None if scene.masks is None else scene.masks.numpy()
    poses = scene.cameras.camera_to_world.detach().cpu().double().numpy() @ OPENGL_TO_OPENCV
    intrinsics = scene.cameras.intrinsics.detach().cpu().double().numpy()
    distortion = scene.cameras.distortion.detach().cpu().double().numpy() if scene.cameras.has_distortion else None
    _write_geometry(scene, root, geometry)
    for split, indices in scene.splits.items():
        if not indices:
            continue
        shared = _blender_camera_settings(
            intrinsics[indices[0]], None if distortion is None else distortion[indices[0]], scene.width, scene.height
        )
        frames = []
        for i, name in zip(indices, _file_names(scene, indices), strict=True):
            file_path = f"{split}/{name}"
            rgb = images[i]
            if masks is not None:
                rgba = np.concatenate([_unpremultiply(rgb, masks[i]), masks[i][..., None]], axis=2)
                _write_png(root / f"{file_path}.png", rgba)
            else:
                _write_png(root / f"{file_path}.png", rgb)
            frame = {"file_path": f"./{file_path}", "transform_matrix": poses[i].tolist()}
            own = _blender_camera_settings(
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


def _blender_camera_settings(k: np.ndarray, distortion: np.ndarray | None, width: int, height: int) -> dict:
    fx, fy, cx, cy = (float(v) for v in k)
    settings = {
        "camera_angle_x": 2.0 * math.atan(width / 2.0 / fx),
        "fl_x": fx,
        "fl_y": fy,
        "cx": cx,
        "cy": cy,
        "w": width,
        "h": height,
    }
    if distortion is not None:
        settings.update({key: float(v) for key, v in zip(("k1", "k2", "p1", "p2", "k3"), distortion, strict=True)})
    return settings


def _write_geometry(scene: Scene, root: Path, geometry: bool) -> None:
    if not geometry:
        return
    for folder, values in (("depth", scene.depths), ("normal", scene.normals)):
        if values is None:
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(scene.num_views):
            np.save(root / folder / f"{i:03d}.npy", values[i].numpy())


# ----------------------------------------------------------------------------------------------
# NeuS / IDR


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
    if not camera_file.is_file():
        raise SceneFormatError(f"{camera_file}: camera file not found")
    try:
        cameras_npz = dict(np.load(camera_file))
    except (OSError, ValueError) as error:
        raise SceneFormatError(f"{camera_file}: cannot read: {error}") from error
    if require_masks and not mask_dir.is_dir():
        raise SceneFormatError(f"{mask_dir}: mask directory not found (masks are required)")

    names = [p.stem for p in image_paths]
    images, masks, poses, intrinsics = [], [], [], []
    size: tuple[int, int] | None = None
    scale: np.ndarray | None = None
    for index, image_path in enumerate(image_paths):
        where = _frame(camera_file, index, image_path.name)
        key = f"world_mat_{index}"
        if key not in cameras_npz:
            raise SceneFormatError(f"{where}: '{key}' missing (one world_mat per image is required)")
        scale_i = np.asarray(cameras_npz.get(f"scale_mat_{index}", np.eye(4)), dtype=np.float64)
        if scale_i.shape != (4, 4) or not np.isfinite(scale_i).all():
            raise SceneFormatError(f"{where}: 'scale_mat_{index}' must be a finite 4x4 matrix")
        if scale is None:
            scale = scale_i
        elif not np.allclose(scale, scale_i):
            raise SceneFormatError(
                f"{where}: 'scale_mat_{index}' differs from 'scale_mat_0' (one normalisation per scene)"
            )
        k, pose = _decompose_projection(np.asarray(cameras_npz[key], dtype=np.float64), where)
        poses.append(_checked_pose(pose, where))
        # NeuS puts pixel centres at integer coordinates; foveate at +0.5.
        intrinsics.append([k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5])
        array = _read_image(image_path, _frame(image_dir, index, image_path.name))
        size = _check_size(array, size, _frame(image_dir, index, image_path.name))
        images.append(np.repeat(array[..., :1], 3, axis=2) if array.shape[2] == 1 else array[..., :3])
        if mask_dir.is_dir():
            candidates = [mask_dir / image_path.name, mask_dir / f"{image_path.stem}.png"]
            mask_path = next((p for p in candidates if p.is_file()), candidates[-1])
            mask_where = _frame(mask_dir, index, mask_path.name)
            if not mask_path.is_file():
                raise SceneFormatError(f"{mask_where}: mask {mask_path} not found for image {image_path.name}")
            mask = _read_image(mask_path, mask_where)
            _check_size(mask, size, mask_where, "mask")
            masks.append(mask[..., 3] if mask.shape[2] == 4 else mask[..., :3].max(axis=2))

    height, width = size
    extra = _read_views_file(root, len(names))
    depths = _optional_neus_arrays(root / "depth", len(names), (height, width))
    normals = _optional_neus_arrays(root / "normal", len(names), (height, width, 3))
    return Scene(
        images=torch.from_numpy(np.stack(images)),
        cameras=Cameras(
            torch.from_numpy(np.stack(poses)).to(torch.float32),
            torch.tensor(intrinsics, dtype=torch.float32),
            width,
            height,
        ),
        names=extra.get("names", names),
        masks=torch.from_numpy(np.stack(masks)) if masks else None,
        depths=depths,
        normals=normals,
        splits=extra.get("splits", {"train": list(range(len(names)))}),
        normalization=torch.from_numpy(scale),
    )


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
    if not folder.is_dir():
        return None
    arrays = [_read_array(folder / f"{i:03d}.npy", shape, _frame(folder, i)) for i in range(count)]
    return torch.from_numpy(np.stack(arrays))


def _read_views_file(root: Path, count: int) -> dict:
    file = root / NEUS_VIEWS
    if not file.is_file():
        return {}
    try:
        extra = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SceneFormatError(f"{file}: cannot parse JSON: {error}") from error
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

    NeuS has no lens distortion: scenes whose cameras have any raise ``ValueError``.
    """
    if scene.cameras.has_distortion:
        raise ValueError("the NeuS format has no lens distortion; undistort the images before saving as NeuS")
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    images = scene.images.numpy()
    masks = None if scene.masks is None else scene.masks.numpy()
    poses = scene.cameras.camera_to_world.detach().cpu().double().numpy()
    intrinsics = scene.cameras.intrinsics.detach().cpu().double().numpy()
    scale = scene.normalization.numpy()
    arrays: dict[str, np.ndarray] = {}
    for i in range(scene.num_views):
        _write_png(root / "image" / f"{i:03d}.png", images[i])
        if masks is not None:
            _write_png(root / "mask" / f"{i:03d}.png", masks[i])
        fx, fy, cx, cy = intrinsics[i]
        k = np.array([[fx, 0.0, cx - 0.5, 0.0], [0.0, fy, cy - 0.5, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
        world = k @ np.linalg.inv(poses[i])
        arrays[f"world_mat_{i}"] = world
        arrays[f"world_mat_inv_{i}"] = np.linalg.inv(world)
        arrays[f"scale_mat_{i}"] = scale
        arrays[f"scale_mat_inv_{i}"] = np.linalg.inv(scale)
    np.savez(root / NEUS_CAMERAS, **arrays)
    _write_geometry(scene, root, geometry)
    (root / NEUS_VIEWS).write_text(json.dumps({"names": scene.names, "splits": scene.splits}, indent=2))
