"""Photographs as populations of pixel units: loading, validation and per-id access.

A :class:`Photo` keeps the decoded samples in their own integer type (uint8 or uint16), so
an image costs its file's bytes and nothing per pixel beyond them; colours and positions of
a batch of pixel ids are computed on the fly. Ids run row-major over (H, W), matching a
sampler of shape ``(1, H, W)``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from foveate.sampling import Layout

__all__ = [
    "BUNDLED_PHOTOS",
    "MAX_PIXELS",
    "SUPPORTED_SUFFIXES",
    "ImageError",
    "Photo",
    "load_photo",
    "pixel_points",
]

BUNDLED_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
"""scikit-image sample photos that ship with the package (no download needed)."""

SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_PIXELS = 16384 * 16384
"""Largest image accepted; 8192 x 8192 fits four times over."""


class ImageError(ValueError):
    """An image that cannot be used: unreadable, corrupt, or of an unsupported kind."""


@dataclass(frozen=True)
class Photo:
    """A decoded photograph held in its own sample type.

    Attributes:
        pixels: (H, W, C) uint8 or uint16 samples, C = 1 (grey) or 3 (RGB).
        name: the bundled name or the file path it came from.
    """

    pixels: torch.Tensor
    name: str

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def num_pixels(self) -> int:
        return self.height * self.width

    @property
    def max_value(self) -> float:
        return 65535.0 if self.pixels.dtype == torch.uint16 else 255.0

    @property
    def unit_shape(self) -> tuple[int, int, int]:
        """The sampler shape of this photo's pixels: ``(1, H, W)``."""
        return (1, self.height, self.width)

    def to(self, device: torch.device | str) -> Photo:
        return Photo(self.pixels.to(device), self.name)

    def colors(self, ids: torch.Tensor) -> torch.Tensor:
        """(B,) pixel ids -> (B, C) float32 colours in [0, 1]."""
        samples = self.pixels.view(-1, self.channels).index_select(0, ids)
        return samples.to(torch.float32) / self.max_value

    def points(self, ids: torch.Tensor) -> torch.Tensor:
        """(B,) pixel ids -> (B, 2) pixel-centre positions (x, y) in [0, 1]."""
        return pixel_points(ids, self.height, self.width)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``[start, stop)`` as (rows, W, C) float32 in [0, 1]."""
        return self.pixels[start:stop].to(torch.float32) / self.max_value


def pixel_points(ids: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel-centre positions of row-major ids in an H x W image, scaled by the longer side.

    Both axes share one scale, so grid cells stay square on non-square images.
    """
    _, y, x = Layout((1, height, width)).unravel(ids)
    return torch.stack((x, y), dim=1).to(torch.float32).add_(0.5).mul_(1.0 / max(height, width))


def load_photo(source: str | Path, *, max_pixels: int = MAX_PIXELS) -> Photo:
    """Load a bundled photo by name (see :data:`BUNDLED_PHOTOS`) or an image file.

    Files may be PNG, JPEG or TIFF, 8 or 16 bit, grey or RGB (an alpha channel is dropped
    only when fully opaque). Raises ``FileNotFoundError`` for a missing file and
    :class:`ImageError`, naming the file and the problem, for anything unusable.
    """
    text = str(source)
    if text in BUNDLED_PHOTOS and not Path(text).exists():
        return Photo(_as_tensor(_bundled(text), text, max_pixels), text)
    path = Path(text).expanduser()
    if not path.exists():
        hint = "" if path.suffix else f"; bundled photos are: {', '.join(BUNDLED_PHOTOS)}"
        raise FileNotFoundError(f"image not found: {text}{hint}")
    if path.is_dir():
        raise ImageError(f"{path} is a directory, not an image file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ImageError(
            f"unsupported image format {path.suffix or '(no suffix)'!r} for {path}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    kind = _sniff(path)  # by content: a JPEG named .png is still a JPEG
    width, height = _header_size(path, kind)
    if width * height > max_pixels:
        side = math.isqrt(max_pixels)
        raise ImageError(f"{path} is too large: {width} x {height} pixels, the limit is {side} x {side}")
    try:
        if kind == "tiff":
            array = _read_tiff(path)
        elif kind == "png" and _png_bit_depth(path) == 16:
            array = _read_png16(path)
        else:
            array = _read_pillow(path, max_pixels)
    except ImageError:
        raise
    except Exception as error:  # a decoder's own failure on a truncated or damaged file
        raise ImageError(f"cannot decode {path}: the file is corrupt or truncated ({error})") from error
    return Photo(_as_tensor(array, str(path), max_pixels), str(path))


_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg", b"II*\x00": "tiff", b"MM\x00*": "tiff"}


def _sniff(path: Path) -> str:
    """``png``, ``jpeg`` or ``tiff`` from the file's first bytes."""
    with path.open("rb") as file:
        head = file.read(8)
    for signature, kind in _SIGNATURES.items():
        if head.startswith(signature):
            return kind
    raise ImageError(f"cannot decode {path}: its content is not a PNG, JPEG or TIFF image")


def _header_size(path: Path, kind: str) -> tuple[int, int]:
    """(width, height) from the header alone, without decoding the pixels."""
    try:
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                shape = tiff.pages[0].shape
            return int(shape[1]), int(shape[0])
        if kind == "png":
            with path.open("rb") as file:
                header = file.read(24)
            return struct.unpack(">II", header[16:24]) if len(header) == 24 else (0, 0)
        from PIL import Image

        with Image.open(path) as image:
            return image.size
    except ImageError:
        raise
    except Exception as error:  # a header too damaged to read
        raise ImageError(f"cannot decode {path}: the file is corrupt or truncated ({error})") from error


def _bundled(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError as error:
        raise ImportError("bundled photos come from scikit-image: pip install 'foveate[train]'") from error
    try:
        return np.asarray(getattr(skimage.data, name)())
    except Exception as error:
        raise ImageError(f"bundled photo {name!r} could not be loaded from scikit-image: {error}") from error


def _read_pillow(path: Path, max_pixels: int) -> np.ndarray:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the size was checked against max_pixels from the header already
    with Image.open(path) as image:
        image.load()
        mode = image.mode
        if mode in ("P", "PA"):
            image = image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
        elif mode == "CMYK" or mode == "YCbCr":
            image = image.convert("RGB")
        elif mode in ("I;16", "I;16B", "I;16L"):
            return np.array(image, dtype=np.uint16)
        elif mode == "I":
            values = np.asarray(image)
            if values.min() < 0 or values.max() > 65535:
                raise ImageError(f"unsupported 32-bit integer samples in {path}; use 8- or 16-bit images")
            return values.astype(np.uint16)
        elif mode in ("1", "F"):
            raise ImageError(f"unsupported image mode {mode!r} in {path}; use 8- or 16-bit grey or RGB")
        return np.array(image)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path)
    except (tifffile.TiffFileError, ValueError, OSError, EOFError) as error:
        raise ImageError(f"cannot decode {path}: the file is corrupt or not a TIFF ({error})") from error


def _png_bit_depth(path: Path) -> int:
    """Bit depth from a PNG's IHDR chunk (Pillow silently reduces 16-bit RGB to 8 bits)."""
    with path.open("rb") as file:
        header = file.read(26)
    if len(header) < 26 or header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR":
        raise ImageError(f"cannot decode {path}: not a PNG file (bad signature or header)")
    return struct.unpack(">B", header[24:25])[0]


def _read_png16(path: Path) -> np.ndarray:
    try:
        import png
    except ImportError as error:
        raise ImportError(f"reading the 16-bit PNG {path} needs pypng: pip install 'foveate[train]'") from error
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, planes) if planes > 1 else array.reshape(height, width)


def _as_tensor(array: np.ndarray, where: str, max_pixels: int) -> torch.Tensor:
    """Validate a decoded array and return it as (H, W, C) uint8/uint16 without copying samples."""
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"unsupported sample type {array.dtype} in {where}; foveate reads 8- or 16-bit integer images")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ImageError(f"unsupported image shape {array.shape} in {where}; expected H x W or H x W x C")
    channels = array.shape[2]
    if channels in (2, 4):
        alpha = array[:, :, -1]
        if alpha.min() != np.iinfo(array.dtype).max:
            raise ImageError(f"{where} has a transparent alpha channel; flatten it onto a background first")
        array = array[:, :, :-1]
    elif channels not in (1, 3):
        raise ImageError(f"unsupported number of channels ({channels}) in {where}; expected grey or RGB")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ImageError(f"{where} is empty ({height} x {width} pixels)")
    if height * width > max_pixels:
        side = math.isqrt(max_pixels)
        raise ImageError(f"{where} has {height} x {width} pixels, more than the {side} x {side} supported")
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))
