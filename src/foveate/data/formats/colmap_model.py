"""COLMAP sparse model files: ``cameras``, ``images`` and ``points3D``, as ``.txt`` or ``.bin``.

Text files have one line per camera (``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``), two lines per
image (``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME``, then its 2-D points as ``X Y
POINT3D_ID`` triples, possibly an empty line) and one line per point (``POINT3D_ID X Y Z R G B
ERROR TRACK...``); ``#`` starts a comment.

Binary files are little-endian. ``cameras.bin``: a uint64 count, then per camera int32 id,
int32 model id, uint64 width, uint64 height and the model's float64 parameters.
``images.bin``: a uint64 count, then per image int32 id, 4 float64 ``qvec``, 3 float64
``tvec``, int32 camera id, the name (NUL-terminated), a uint64 count of 2-D points and per
point float64 x, float64 y, int64 point id. ``points3D.bin``: a uint64 count, then per point
uint64 id, 3 float64 ``xyz``, 3 uint8 ``rgb``, float64 error, a uint64 track length and per
track element int32 image id, int32 point index.

Only what a scene needs is kept: 2-D points, reprojection errors and tracks are skipped (and
written empty). Errors name the file and the line (text) or the entry (binary).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..scenes import SceneFormatError

__all__ = [
    "CAMERA_MODELS",
    "SUPPORTED_MODELS",
    "ColmapCamera",
    "ColmapImage",
    "ColmapModel",
    "read_model",
    "write_model",
]

CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
}
"""COLMAP's camera model ids, names and parameter counts."""
MODEL_IDS = {name: model_id for model_id, (name, _) in CAMERA_MODELS.items()}
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
"""The pinhole models with (at most) OpenCV's radial-tangential distortion, which foveate reads."""
POINT_RECORD = np.dtype([("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("error", "<f8")])
"""The fixed part of a point in ``points3D.bin`` (43 bytes, packed); its track length follows."""


@dataclass(frozen=True)
class ColmapCamera:
    """One entry of ``cameras``: a supported model, the image size and the model's parameters."""

    model: str
    width: int
    height: int
    params: tuple[float, ...]


@dataclass(frozen=True)
class ColmapImage:
    """One entry of ``images``: a world-to-camera pose (Hamilton ``qvec = qw qx qy qz``, ``tvec``), camera and name."""

    image_id: int
    qvec: tuple[float, float, float, float]
    tvec: tuple[float, float, float]
    camera_id: int
    name: str


@dataclass
class ColmapModel:
    """A sparse model: cameras by id, images in file order, ``(P, 3)`` float64 points and uint8 colours."""

    cameras: dict[int, ColmapCamera]
    images: list[ColmapImage]
    points: np.ndarray
    colors: np.ndarray


def read_model(folder: Path, suffix: str) -> ColmapModel:
    """The model in ``folder`` stored as ``suffix`` (``.txt`` or ``.bin``); ``points3D`` may be absent (no points)."""
    binary = suffix == ".bin"
    cameras = (_read_cameras_binary if binary else _read_cameras_text)(folder / f"cameras{suffix}")
    images = (_read_images_binary if binary else _read_images_text)(folder / f"images{suffix}")
    points_file = folder / f"points3D{suffix}"
    if not points_file.is_file():
        return ColmapModel(cameras, images, np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8))
    points, colors = (_read_points_binary if binary else _read_points_text)(points_file)
    return ColmapModel(cameras, images, points, colors)


def write_model(model: ColmapModel, folder: Path, binary: bool) -> None:
    """Write ``cameras``, ``images`` and ``points3D`` into ``folder`` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (_write_binary if binary else _write_text)(model, folder)


def checked_camera(model: str, width: int, height: int, params: tuple[float, ...], where: str) -> ColmapCamera:
    """A camera of a supported model with the right number of parameters, or an error naming what is wrong."""
    if model not in SUPPORTED_MODELS:
        known = "" if model in MODEL_IDS else "unknown "
        raise SceneFormatError(
            f"{where}: {known}camera model {model!r} is not supported; foveate reads {', '.join(SUPPORTED_MODELS)}"
        )
    expected = CAMERA_MODELS[MODEL_IDS[model]][1]
    if len(params) != expected:
        raise SceneFormatError(f"{where}: camera model {model} takes {expected} parameters, got {len(params)}")
    if width < 1 or height < 1:
        raise SceneFormatError(f"{where}: image size must be positive, got {width}x{height}")
    return ColmapCamera(model, width, height, params)


def _checked_points(xyz: np.ndarray, rgb: np.ndarray, file: Path) -> tuple[np.ndarray, np.ndarray]:
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise SceneFormatError(f"{file}: point {int(np.flatnonzero(bad)[0])} (in file order) is not finite")
    bad = ((rgb < 0) | (rgb > 255) | (rgb != np.round(rgb))).any(axis=1)
    if bad.any():
        raise SceneFormatError(f"{file}: point {int(np.flatnonzero(bad)[0])} (in file order): colours must be 0..255")
    return xyz, rgb.astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Text


def _lines(file: Path) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of every line of ``file``, comments and blank lines included."""
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise SceneFormatError(f"{file}: cannot read: {error}") from error
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]


def _is_data(line: str) -> bool:
    return bool(line) and not line.startswith("#")


def _read_cameras_text(file: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for number, line in _lines(file):
        if not _is_data(line):
            continue
        where = f"{file}: line {number}"
        fields = line.split()
        try:
            if len(fields) < 4:
                raise ValueError(f"expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., got {line!r}")
            camera_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
            params = tuple(float(v) for v in fields[4:])
        except ValueError as error:
            raise SceneFormatError(f"{where}: {error}") from error
        cameras[camera_id] = checked_camera(fields[1], width, height, params, where)
    return cameras


def _read_images_text(file: Path) -> list[ColmapImage]:
    lines = _lines(file)
    images = []
    index = 0
    while index < len(lines):
        number, line = lines[index]
        index += 1
        if not _is_data(line):
            continue
        fields = line.split(maxsplit=9)
        try:
            if len(fields) < 10:
                raise ValueError(f"expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got {line!r}")
            image_id, values, camera_id = int(fields[0]), [float(v) for v in fields[1:8]], int(fields[8])
        except ValueError as error:
            raise SceneFormatError(f"{file}: line {number}: {error}") from error
        if index < len(lines):  # the 2-D points line; the last one may be missing
            points_number, points_line = lines[index]
            index += 1
            if len(points_line.split()) % 3 != 0:
                raise SceneFormatError(
                    f"{file}: line {points_number}: expected image {image_id}'s 2-D points as X Y POINT3D_ID "
                    "triples (an empty line if none)"
                )
        images.append(ColmapImage(image_id, tuple(values[:4]), tuple(values[4:]), camera_id, fields[9]))
    return images


def _read_points_text(file: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for number, line in _lines(file):
        if not _is_data(line):
            continue
        fields = line.split(maxsplit=8)
        try:
            if len(fields) < 8:
                raise ValueError(f"expected POINT3D_ID X Y Z R G B ERROR TRACK..., got {line!r}")
            rows.append([float(v) for v in fields[1:7]])
        except ValueError as error:
            raise SceneFormatError(f"{file}: line {number}: {error}") from error
    values = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return _checked_points(values[:, :3], values[:, 3:], file)


def _write_text(model: ColmapModel, folder: Path) -> None:
    def numbers(values: object) -> str:
        return " ".join(str(float(v)) for v in np.asarray(values).reshape(-1))

    lines = ["# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]"]
    lines += [f"{i} {c.model} {c.width} {c.height} {numbers(c.params)}" for i, c in model.cameras.items()]
    (folder / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME", "# POINTS2D[] as (X Y POINT3D_ID)"]
    for image in model.images:
        lines += [f"{image.image_id} {numbers(image.qvec)} {numbers(image.tvec)} {image.camera_id} {image.name}", ""]
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    lines = ["# POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID POINT2D_IDX)"]
    points, colors = np.asarray(model.points, dtype=np.float64).tolist(), np.asarray(model.colors).tolist()
    for i, ((x, y, z), (r, g, b)) in enumerate(zip(points, colors, strict=True)):
        lines.append(f"{i + 1} {x!r} {y!r} {z!r} {r} {g} {b} 0.0")
    (folder / "points3D.txt").write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------
# Binary


class _Bytes:
    """A cursor over a binary file's bytes; reading past the end is an error naming the file."""

    def __init__(self, file: Path) -> None:
        try:
            self.data = file.read_bytes()
        except OSError as error:
            raise SceneFormatError(f"{file}: cannot read: {error}") from error
        self.file, self.offset = file, 0

    def need(self, size: int, what: str) -> None:
        if self.offset + size > len(self.data):
            raise SceneFormatError(
                f"{self.file}: truncated: {what} needs {size} bytes at offset {self.offset}, "
                f"but the file has {len(self.data)}"
            )

    def unpack(self, layout: str, what: str) -> tuple:
        size = struct.calcsize(layout)
        self.need(size, what)
        values = struct.unpack_from(layout, self.data, self.offset)
        self.offset += size
        return values

    def skip(self, size: int, what: str) -> None:
        self.need(size, what)
        self.offset += size

    def count(self, least_bytes_each: int, what: str) -> int:
        """A uint64 count of records at least ``least_bytes_each`` long each (so a corrupt count fails early)."""
        (count,) = self.unpack("<Q", f"the number of {what}")
        self.need(count * least_bytes_each, f"{count} {what}")
        return count

    def done(self) -> None:
        if self.offset != len(self.data):
            raise SceneFormatError(f"{self.file}: {len(self.data) - self.offset} unexpected bytes after the last entry")


def _read_cameras_binary(file: Path) -> dict[int, ColmapCamera]:
    data = _Bytes(file)
    cameras = {}
    for index in range(data.count(24, "cameras")):
        camera_id, model_id, width, height = data.unpack("<iiQQ", f"camera {index}")
        where = f"{file}: camera {camera_id}"
        if model_id not in CAMERA_MODELS:
            raise SceneFormatError(f"{where}: unknown camera model id {model_id}")
        model, count = CAMERA_MODELS[model_id]
        if model not in SUPPORTED_MODELS:  # refuse it before its parameters, whose count we know anyway
            checked_camera(model, width, height, (), where)
        params = data.unpack(f"<{count}d", f"camera {camera_id}'s parameters")
        cameras[camera_id] = checked_camera(model, width, height, params, where)
    data.done()
    return cameras


def _read_images_binary(file: Path) -> list[ColmapImage]:
    data = _Bytes(file)
    images = []
    for index in range(data.count(64 + 1 + 8, "images")):
        image_id, *values, camera_id = data.unpack("<i7di", f"image {index}")
        end = data.data.find(b"\0", data.offset)
        if end < 0:
            raise SceneFormatError(f"{file}: truncated: image {image_id}'s name has no terminating NUL")
        try:
            name = data.data[data.offset : end].decode()
        except UnicodeDecodeError as error:
            raise SceneFormatError(f"{file}: image {image_id}: name is not UTF-8: {error}") from error
        data.offset = end + 1
        (points,) = data.unpack("<Q", f"image {image_id}'s number of 2-D points")
        data.skip(24 * points, f"image {image_id}'s {points} 2-D points")
        images.append(ColmapImage(image_id, tuple(values[:4]), tuple(values[4:]), camera_id, name))
    data.done()
    return images


def _read_points_binary(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """A walk over the track lengths finds each record; one vectorised gather then reads them all."""
    data = _Bytes(file)
    count = data.count(POINT_RECORD.itemsize + 8, "points")
    track_length = struct.Struct("<Q").unpack_from
    size, fixed = len(data.data), POINT_RECORD.itemsize + 8
    starts: list[int] = []
    offset = data.offset
    while len(starts) < count and offset + fixed <= size:
        starts.append(offset)
        offset += fixed + 8 * track_length(data.data, offset + POINT_RECORD.itemsize)[0]
    if offset > size or len(starts) < count:
        cut = len(starts) - 1 if offset > size else len(starts)
        raise SceneFormatError(f"{file}: truncated: point {cut} (of {count}) ends past the file's {size} bytes")
    data.offset = offset
    data.done()
    raw = np.frombuffer(data.data, dtype=np.uint8)
    indices = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(POINT_RECORD.itemsize)
    records = raw[indices].view(POINT_RECORD).reshape(count)
    return _checked_points(records["xyz"].astype(np.float64), records["rgb"].astype(np.float64), file)


def _write_binary(model: ColmapModel, folder: Path) -> None:
    chunks = [struct.pack("<Q", len(model.cameras))]
    for camera_id, c in model.cameras.items():
        layout = f"<iiQQ{len(c.params)}d"
        chunks.append(struct.pack(layout, camera_id, MODEL_IDS[c.model], c.width, c.height, *c.params))
    (folder / "cameras.bin").write_bytes(b"".join(chunks))
    chunks = [struct.pack("<Q", len(model.images))]
    for image in model.images:
        chunks.append(struct.pack("<i7di", image.image_id, *image.qvec, *image.tvec, image.camera_id))
        chunks.append(image.name.encode() + b"\0" + struct.pack("<Q", 0))
    (folder / "images.bin").write_bytes(b"".join(chunks))
    records = np.zeros(len(model.points), dtype=np.dtype([*POINT_RECORD.descr, ("track", "<u8")]))
    records["id"] = np.arange(1, len(model.points) + 1)
    records["xyz"], records["rgb"] = model.points, model.colors
    (folder / "points3D.bin").write_bytes(struct.pack("<Q", len(model.points)) + records.tobytes())
