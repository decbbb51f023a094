"""What a material's maps are, in one place: names, channels, encodings, PNG files.

A material is a ``dict[str, Tensor]`` keyed by :data:`MAP_NAMES`, float32, each ``(C, H, W)`` or
batched ``(B, C, H, W)`` (channels at dim -3 everywhere in :mod:`foveate.pbr`):

- ``albedo`` (3): base colour in [0, 1], **sRGB-encoded** as stored in the PNG; renderers call
  :func:`srgb_to_linear` on it.
- ``roughness`` (1): perceptual roughness in [0, 1]; the GGX width is ``alpha = roughness ** 2``.
- ``metallic`` (1): in [0, 1].
- ``normal`` (3): unit tangent-space vectors, +x along u (image right), +y along v (image up: the
  OpenGL convention), +z out of the surface; a PNG stores ``(n + 1) / 2``.

Image row 0 is the top of the texture, so texture "up" (+v, +y) points towards row 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "MAP_CHANNELS",
    "MAP_NAMES",
    "decode_normal",
    "encode_normal",
    "image_to_array",
    "linear_to_srgb",
    "normals_from_height",
    "orient_maps",
    "read_image",
    "read_maps",
    "resize_maps",
    "srgb_to_linear",
    "to_uint8",
    "write_maps",
]

MAP_NAMES = ("albedo", "roughness", "metallic", "normal")
MAP_CHANNELS = {"albedo": 3, "roughness": 1, "metallic": 1, "normal": 3}


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer function inverted (IEC 61966-2-1): display values in [0, 1] to linear."""
    srgb = srgb.clamp(0.0, 1.0)
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055).clamp_min(1e-12) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear values in [0, 1] to sRGB display values (IEC 61966-2-1); inputs are clamped to [0, 1]."""
    linear = linear.clamp(0.0, 1.0)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(1e-12) ** (1.0 / 2.4) - 0.055)


def encode_normal(normal: torch.Tensor) -> torch.Tensor:
    """Unit normals ``(..., 3, H, W)`` to the [0, 1] colours a normal-map PNG stores."""
    return ((normal + 1.0) * 0.5).clamp(0.0, 1.0)


def decode_normal(encoded: torch.Tensor) -> torch.Tensor:
    """Normal-map colours ``(..., 3, H, W)`` in [0, 1] to unit normals (renormalised: 8 bits are not unit length)."""
    return F.normalize(encoded * 2.0 - 1.0, dim=-3, eps=1e-6)


def normals_from_height(height: torch.Tensor, strength: float) -> torch.Tensor:
    """Tangent-space unit normals of a height field, by central differences that wrap around (tileable).

    Args:
        height: ``(H, W)``, ``(1, H, W)`` or ``(B, 1, H, W)``; the surface is ``z = strength * height``
            with the texture spanning one unit in u and in v, so the slopes (and the normals) do not
            depend on the resolution: ``strength`` is the relief's height as a fraction of the texture's width.
        strength: relief scale; 0 gives flat ``(0, 0, 1)`` normals.

    Returns:
        ``(3, H, W)`` or ``(B, 3, H, W)``: ``normalize(-dz/du, -dz/dv, 1)``, with v pointing up (towards row 0).
    """
    batched = height.dim() == 4
    if height.dim() == 2:
        height = height[None]
    if height.dim() != 3 and not batched:
        raise ValueError(f"height must be (H, W), (1, H, W) or (B, 1, H, W), got {tuple(height.shape)}")
    rows, cols = height.shape[-2:]
    dz_du = (height.roll(-1, dims=-1) - height.roll(1, dims=-1)) * (0.5 * cols * strength)
    dz_dv = (height.roll(1, dims=-2) - height.roll(-1, dims=-2)) * (0.5 * rows * strength)
    normal = torch.cat([-dz_du, -dz_dv, torch.ones_like(height)], dim=-3)
    return F.normalize(normal, dim=-3)


def orient_maps(maps: Mapping[str, torch.Tensor], quarter_turns: int, flip: bool) -> dict[str, torch.Tensor]:
    """The material turned by ``quarter_turns`` x 90 degrees counter-clockwise, mirrored left-right first if ``flip``.

    Images move as images do; the normals' tangent-space x and y turn with them (a mirror negates
    x, a counter-clockwise quarter turn maps ``(x, y)`` to ``(-y, x)``), so the result is the
    turned surface, not the old normals in new places.
    """
    turned = {}
    for name, image in maps.items():
        if flip:
            image = image.flip(-1)
        image = torch.rot90(image, quarter_turns % 4, dims=(-2, -1))
        turned[name] = image
    if "normal" in turned:
        x, y, z = turned["normal"].unbind(-3)
        if flip:
            x = -x
        for _ in range(quarter_turns % 4):
            x, y = -y, x
        turned["normal"] = torch.stack([x, y, z], dim=-3)
    return turned


def resize_maps(maps: Mapping[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Every map resized to ``size x size`` (bilinear, antialiased when shrinking); normals renormalised after."""
    resized = {}
    for name, image in maps.items():
        if image.shape[-2:] == (size, size):
            resized[name] = image
            continue
        batch = image if image.dim() == 4 else image[None]
        out = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out = F.normalize(out, dim=-3, eps=1e-6) if name == "normal" else out.clamp(0.0, 1.0)
        resized[name] = out if image.dim() == 4 else out[0]
    return resized


def image_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as float32 ``(H, W, C)`` in [0, 1], whatever its mode (8 or 16 bit, palette, grey)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return (np.asarray(image, dtype=np.float32) / 65535.0).clip(0.0, 1.0)[..., None]
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)[..., None]
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[..., None] if array.ndim == 2 else array


def read_image(path: str | Path, channels: int) -> torch.Tensor:
    """A PNG as float32 ``(channels, H, W)`` in [0, 1] (``channels`` 1 or 3).

    Grey is repeated to colour, a one-channel read of a colour file takes R, alpha is dropped.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    with Image.open(path) as image:
        array = image_to_array(image)
    color_channels = 1 if array.shape[-1] in (1, 2) else 3
    array = array[..., :color_channels]
    if channels == 1:
        array = array[..., :1]
    elif color_channels == 1:
        array = np.repeat(array, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def read_maps(folder: str | Path, size: int | None = None) -> dict[str, torch.Tensor]:
    """``folder/{albedo,roughness,metallic,normal}.png`` as a material (unbatched), resized to ``size`` if given.

    Roughness and metallic come from the R (or grey) channel of whatever mode the PNG has.
    """
    folder = Path(folder)
    maps = {name: read_image(folder / f"{name}.png", MAP_CHANNELS[name]) for name in MAP_NAMES}
    maps["normal"] = decode_normal(maps["normal"])
    return resize_maps(maps, size) if size is not None else maps


def write_maps(folder: str | Path, maps: Mapping[str, torch.Tensor]) -> None:
    """Write an unbatched material as 8-bit PNGs: albedo and the encoded normal as RGB, roughness and metallic grey."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in MAP_NAMES:
        image = maps[name]
        if image.dim() != 3 or image.shape[0] != MAP_CHANNELS[name]:
            raise ValueError(f"{name} must be ({MAP_CHANNELS[name]}, H, W), got {tuple(image.shape)}")
        if name == "normal":
            image = encode_normal(image)
        array = to_uint8(image).permute(1, 2, 0).numpy()
        Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(folder / f"{name}.png")


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to bytes, rounded to nearest."""
    return (image.detach().float().clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu()
