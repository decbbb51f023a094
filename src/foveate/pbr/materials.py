"""Procedural material families and real texture sets, as materials of :mod:`foveate.pbr.maps`.

Each family is ``f(size, generator) -> maps`` (unbatched ``(C, size, size)``), tileable, with its
parameters drawn from ``generator``; every map carries structure (no family has a constant
roughness). Families: ``stone`` (FBM: stone, concrete, plaster), ``cells`` (Voronoi cobbles),
``bricks``, ``tiles`` (ceramic or metal panels), ``wood`` (planks), ``brushed_metal`` (streaks and
scratches), ``rust`` (metal with dielectric rust: a genuinely mixed metallic map),
``painted_metal`` (paint chipped down to metal) and ``plastic``. Metal appears in four of the
nine: brushed metal, rust, painted metal, a third of the tiles.

Real sets come from folders or from the pypbr wheel (:func:`load_texture_sets`), found by
:func:`texture_sources`; :func:`random_crop` cuts training-sized pieces from them.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .maps import MAP_CHANNELS, decode_normal, image_to_array, normals_from_height, orient_maps, resize_maps
from .noise import pixel_grid, segment_distance, smoothstep, spectral_noise, worley

__all__ = [
    "FAMILIES",
    "TEXTURES_ENV",
    "load_texture_sets",
    "random_crop",
    "random_material",
    "texture_sources",
]

log = logging.getLogger(__name__)

TEXTURES_ENV = "FOVEATE_TEXTURES"
"""Paths (``os.pathsep``-separated) of texture sources: folders of material folders, or pypbr wheels."""
TEXTURE_CACHE = Path("~/.cache/foveate/textures")
ALBEDO_NAMES = ("basecolor", "albedo", "diffuse")
"""File stems taken as the base colour, in order of preference."""
Material = dict[str, torch.Tensor]


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _integer(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _color(
    generator: torch.Generator, hue: tuple[float, float], saturation: tuple[float, float], value: tuple[float, float]
) -> torch.Tensor:
    """An sRGB colour ``(3, 1, 1)`` drawn in HSV (hue in turns)."""
    h, s, v = (_uniform(generator, *bounds) for bounds in (hue, saturation, value))
    k = (torch.tensor([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    rgb = v - v * s * (torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return rgb.view(3, 1, 1)


def _noise(size: int, generator: torch.Generator, beta: float = 2.5, lowest: float = 1.0, **kwargs) -> torch.Tensor:
    """One ``(1, S, S)`` tileable noise image, zero mean, unit variance."""
    return spectral_noise(1, size, generator, beta=beta, lowest=lowest, **kwargs)[0]


def _assemble(albedo, roughness, metallic, height: torch.Tensor, strength: float) -> Material:
    """A material from its parts (broadcastable to ``(C, S, S)``), values clamped to their ranges."""
    size = height.shape[-1]

    def full(value, channels: int) -> torch.Tensor:
        value = torch.as_tensor(value, dtype=torch.float32)
        value = value.reshape((1,) * (3 - value.dim()) + tuple(value.shape))
        return value.expand(channels, size, size).contiguous()

    return {
        "albedo": full(albedo, 3).clamp(0.0, 1.0),
        "roughness": full(roughness, 1).clamp(0.02, 1.0),
        "metallic": full(metallic, 1).clamp(0.0, 1.0),
        "normal": normals_from_height(height, strength),
    }


def _metal_color(generator: torch.Generator) -> torch.Tensor:
    """sRGB base colour of a metal: iron, aluminium, silver, copper, gold, brass (jittered)."""
    palette = torch.tensor(
        [
            [0.77, 0.78, 0.78],
            [0.96, 0.96, 0.97],
            [0.98, 0.97, 0.95],
            [0.95, 0.64, 0.54],
            [1.0, 0.86, 0.57],
            [0.91, 0.78, 0.42],
        ]
    )
    base = palette[_integer(generator, 0, len(palette) - 1)]
    return (base * _uniform(generator, 0.85, 1.0)).view(3, 1, 1)


def stone(size: int, generator: torch.Generator) -> Material:
    """Stone, concrete or plaster: FBM relief and tint, pits, speckles; rough dielectric."""
    kind = _integer(generator, 0, 2)  # 0 stone, 1 concrete, 2 plaster
    base = _color(generator, (0.05, 0.15), (0.0, 0.3), (0.35, 0.8))
    relief = _noise(size, generator, beta=_uniform(generator, 2.2, 3.2))
    detail = _noise(size, generator, beta=1.5, lowest=size / 16)
    pits = smoothstep(2.0, 3.0, _noise(size, generator, beta=1.0, lowest=size / 12)) if kind == 1 else 0.0 * relief
    height = relief * (0.6 if kind == 2 else 1.0) + 0.3 * detail - 2.0 * pits
    tint = 1.0 + 0.18 * _noise(size, generator, beta=2.0) + 0.08 * detail - 0.3 * pits
    roughness = _uniform(generator, 0.55, 0.9) + 0.08 * detail + 0.06 * relief + 0.1 * pits
    strength = {0: (0.004, 0.012), 1: (0.002, 0.006), 2: (0.0008, 0.003)}[kind]
    return _assemble(base * tint, roughness, 0.0, height, _uniform(generator, *strength))


def cells(size: int, generator: torch.Generator) -> Material:
    """Voronoi cobbles: domed cells with their own tint in grout; dielectric."""
    count = _integer(generator, 10, 48)
    f1, f2, nearest = worley(torch.rand(1, count, 2, generator=generator), size)
    edge = (f2 - f1)[0]
    cell = 1.0 / math.sqrt(count)
    grout = _uniform(generator, 0.02, 0.07) * cell
    stone_mask = smoothstep(grout, grout + 0.05 * cell, edge)
    dome = smoothstep(grout, grout + _uniform(generator, 0.2, 0.5) * cell, edge)
    tints = 1.0 + 0.25 * torch.randn(count, generator=generator)
    tint = tints[nearest[0]]
    detail = _noise(size, generator, beta=2.0, lowest=4.0)
    stone_color = _color(generator, (0.0, 0.15), (0.05, 0.4), (0.3, 0.7)) * tint * (1.0 + 0.1 * detail)
    grout_color = _color(generator, (0.0, 0.15), (0.0, 0.15), (0.2, 0.6))
    albedo = grout_color + (stone_color - grout_color) * stone_mask
    roughness = 0.95 + (_uniform(generator, 0.35, 0.8) + 0.1 * detail - 0.95) * stone_mask
    height = dome + 0.15 * detail * stone_mask
    return _assemble(albedo, roughness, 0.0, height, _uniform(generator, 0.01, 0.03))


def _grid(size: int, rows: int, columns: int, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Running-bond grid: cell ids ``(1, S, S)`` (row * columns + column), distance to the cell edge (texture units)."""
    u, v = pixel_grid(size)
    row = (v * rows).floor()
    shifted = u * columns + offset * (row % 2)
    column = shifted.floor() % columns
    fx, fy = shifted - shifted.floor(), v * rows - row
    edge = torch.minimum(torch.minimum(fx, 1 - fx) / columns, torch.minimum(fy, 1 - fy) / rows)
    return (row * columns + column).long()[None], edge[None]


def _laid(
    size: int, generator: torch.Generator, rows: int, columns: int, offset: float, joint: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared by bricks and tiles: the cell id, a raised bevelled mask and a per-cell random value."""
    cell_id, edge = _grid(size, rows, columns, offset)
    mask = smoothstep(joint, joint * 1.8, edge)
    per_cell = torch.randn(rows * columns, generator=generator)[cell_id]
    return mask, per_cell


def bricks(size: int, generator: torch.Generator) -> Material:
    """Bricks in running bond: bevelled, per-brick tint, rough mortar joints; dielectric."""
    rows = 2 * _integer(generator, 2, 6)
    mask, per_brick = _laid(
        size, generator, rows, _integer(generator, 2, 4), 0.5, _uniform(generator, 0.08, 0.2) / rows
    )
    detail = _noise(size, generator, beta=2.0, lowest=3.0)
    brick = _color(generator, (-0.03, 0.1), (0.3, 0.75), (0.3, 0.7)) * (1.0 + 0.15 * per_brick + 0.1 * detail)
    mortar = _color(generator, (0.05, 0.15), (0.0, 0.15), (0.5, 0.8)) * (1.0 + 0.05 * detail)
    albedo = mortar + (brick - mortar) * mask
    roughness = 0.95 + (_uniform(generator, 0.6, 0.9) + 0.08 * detail - 0.95) * mask
    height = mask + 0.12 * detail
    return _assemble(albedo, roughness, 0.0, height, _uniform(generator, 0.008, 0.02))


def tiles(size: int, generator: torch.Generator) -> Material:
    """Square tiles: glossy ceramic in grout, or (one in three) metal panels in dark seams."""
    count = _integer(generator, 2, 8)
    offset = 0.5 if torch.rand((), generator=generator) < 0.25 else 0.0
    mask, per_tile = _laid(size, generator, count, count, offset, _uniform(generator, 0.015, 0.05) / count)
    detail = _noise(size, generator, beta=2.0, lowest=2.0)
    metal = bool(torch.rand((), generator=generator) < 1 / 3)
    if metal:
        tile_color = _metal_color(generator) * (1.0 + 0.03 * per_tile)
        tile_rough = _uniform(generator, 0.2, 0.5) + 0.08 * detail + 0.05 * per_tile
    else:
        tile_color = _color(generator, (0.0, 1.0), (0.0, 0.7), (0.3, 0.95)) * (1.0 + 0.04 * per_tile + 0.03 * detail)
        tile_rough = _uniform(generator, 0.05, 0.3) + 0.04 * detail
    grout = _color(generator, (0.05, 0.15), (0.0, 0.1), (0.1, 0.5) if metal else (0.4, 0.8))
    albedo = grout + (tile_color - grout) * mask
    roughness = 0.9 + (tile_rough - 0.9) * mask
    height = mask + 0.03 * detail
    return _assemble(albedo, roughness, float(metal) * mask, height, _uniform(generator, 0.004, 0.01))


def wood(size: int, generator: torch.Generator) -> Material:
    """Wood planks along v: ring grain warped by noise, per-plank tint, seams and end joints; dielectric."""
    planks = _integer(generator, 3, 7)
    u, v = pixel_grid(size)
    plank = (u * planks).floor()
    offsets = torch.rand(planks, generator=generator)[plank.long()]
    lengths = 2 ** torch.randint(0, 2, (planks,), generator=generator).float()
    along = (v * lengths[plank.long()] + offsets) % 1.0
    across = u * planks - plank
    edge = torch.minimum(
        torch.minimum(across, 1 - across) / planks, torch.minimum(along, 1 - along) / lengths[plank.long()]
    )
    seam = 1.0 - smoothstep(0.0, _uniform(generator, 0.002, 0.006), edge)
    warp = _noise(size, generator, beta=3.0, stretch=6.0)[0]
    grain = 0.5 + 0.5 * torch.sin(
        2 * math.pi * (_uniform(generator, 6, 20) * (across + 0.4 * warp) + 7 * plank / planks)
    )
    fibres = _noise(size, generator, beta=1.0, lowest=size / 8, stretch=10.0)[0]
    light, dark = (
        _color(generator, (0.05, 0.1), (0.35, 0.65), (0.5, 0.85)),
        _color(generator, (0.03, 0.08), (0.5, 0.8), (0.2, 0.45)),
    )
    tint = (1.0 + 0.15 * torch.randn(planks, generator=generator))[plank.long()]
    albedo = (dark + (light - dark) * (grain**1.5)) * tint * (1.0 + 0.06 * fibres) * (1.0 - 0.6 * seam)
    roughness = _uniform(generator, 0.4, 0.75) + 0.1 * grain + 0.05 * fibres + 0.2 * seam
    height = 0.3 * grain + 0.2 * fibres - 2.0 * seam
    return _assemble(albedo, roughness[None], 0.0, height[None], _uniform(generator, 0.002, 0.006))


def _scratches(size: int, generator: torch.Generator, count: int, longest: float) -> torch.Tensor:
    """``(1, S, S)`` in [0, 1]: thin random line scratches (1 to 2 texels wide), tileable."""
    starts = torch.rand(1, count, 2, generator=generator)
    angle = torch.rand(1, count, generator=generator) * math.pi
    length = longest * (0.2 + 0.8 * torch.rand(1, count, generator=generator))
    ends = starts + length[..., None] * torch.stack([angle.cos(), angle.sin()], -1)
    width = (1.0 + torch.rand(1, count, 1, 1, generator=generator)) / size
    depth = 0.4 + 0.6 * torch.rand(1, count, 1, 1, generator=generator)
    lines = depth * (1.0 - smoothstep(0.0, width, segment_distance(starts, ends, size)))
    return lines.amax(dim=1)


def brushed_metal(size: int, generator: torch.Generator) -> Material:
    """Brushed metal: long streaks along v modulate roughness and relief; scratches dent it and change its roughness."""
    streaks = _noise(size, generator, beta=1.5, lowest=2.0, stretch=_uniform(generator, 15.0, 40.0))
    smudge = _noise(size, generator, beta=3.0)
    scratch = _scratches(size, generator, _integer(generator, 10, 60), _uniform(generator, 0.1, 0.45))
    scratch_roughness = _uniform(generator, -0.25, 0.3)
    roughness = _uniform(generator, 0.15, 0.5) + 0.06 * streaks + 0.05 * smudge + scratch_roughness * scratch
    albedo = _metal_color(generator) * (1.0 + 0.03 * streaks + 0.02 * smudge - 0.1 * scratch)
    height = 0.05 * streaks - scratch
    return _assemble(albedo, roughness, 1.0, height, _uniform(generator, 0.002, 0.005))


def rust(size: int, generator: torch.Generator) -> Material:
    """Metal with patches of rust: a soft mask makes metallic fractional at the edges; rust is rough, raised, bumpy."""
    coverage = _uniform(generator, -0.6, 0.8)
    mask = smoothstep(coverage - 0.3, coverage + 0.3, _noise(size, generator, beta=_uniform(generator, 2.0, 3.0)))
    bumps = _noise(size, generator, beta=1.5, lowest=4.0)
    metal_color = _metal_color(generator) * _uniform(generator, 0.7, 1.0)
    rust_color = _color(generator, (0.02, 0.08), (0.55, 0.85), (0.2, 0.55)) * (1.0 + 0.2 * bumps)
    albedo = metal_color + (rust_color - metal_color) * mask
    roughness = _uniform(generator, 0.2, 0.5) + (_uniform(generator, 0.8, 0.95) - 0.35) * mask + 0.05 * bumps
    height = mask * (1.0 + 0.5 * bumps) + 0.05 * bumps
    return _assemble(albedo, roughness, 1.0 - mask, height, _uniform(generator, 0.002, 0.008))


def painted_metal(size: int, generator: torch.Generator) -> Material:
    """Paint over metal, chipped: the chips show the metal (metallic 1) a paint-thickness below."""
    coverage = _uniform(generator, 1.0, 2.2)
    chips = smoothstep(
        coverage, coverage + 0.15, _noise(size, generator, beta=_uniform(generator, 1.5, 2.5), lowest=2.0)
    )
    peel = _noise(size, generator, beta=1.0, lowest=size / 10)
    paint = _color(generator, (0.0, 1.0), (0.3, 0.9), (0.2, 0.9)) * (1.0 + 0.03 * peel)
    albedo = paint + (_metal_color(generator) - paint) * chips
    roughness = _uniform(generator, 0.25, 0.6) + 0.05 * peel + (_uniform(generator, 0.3, 0.5) - 0.45) * chips
    height = 0.05 * peel - chips
    return _assemble(albedo, roughness, chips, height, _uniform(generator, 0.002, 0.006))


def plastic(size: int, generator: torch.Generator) -> Material:
    """Plastic: saturated colour, a fine moulded grain (Voronoi bumps or noise), slight roughness variation."""
    if torch.rand((), generator=generator) < 0.5:
        f1, _, _ = worley(torch.rand(1, _integer(generator, 60, 200), 2, generator=generator), size)
        grain = 1.0 - f1[0] / f1.max()
    else:
        grain = _noise(size, generator, beta=1.0, lowest=size / 12)
    wear = _noise(size, generator, beta=3.0)
    albedo = _color(generator, (0.0, 1.0), (0.4, 1.0), (0.2, 0.95)) * (1.0 + 0.03 * wear)
    roughness = _uniform(generator, 0.1, 0.6) + 0.1 * wear + 0.04 * grain
    return _assemble(albedo, roughness, 0.0, grain + 0.2 * wear, _uniform(generator, 0.002, 0.006))


FAMILIES: dict[str, Callable[[int, torch.Generator], Material]] = {
    "stone": stone,
    "cells": cells,
    "bricks": bricks,
    "tiles": tiles,
    "wood": wood,
    "brushed_metal": brushed_metal,
    "rust": rust,
    "painted_metal": painted_metal,
    "plastic": plastic,
}


def random_material(size: int, generator: torch.Generator) -> tuple[str, Material]:
    """A random family's material, turned by a random multiple of 90 degrees and possibly mirrored."""
    name = list(FAMILIES)[_integer(generator, 0, len(FAMILIES) - 1)]
    maps = FAMILIES[name](size, generator)
    return name, orient_maps(maps, _integer(generator, 0, 3), bool(_integer(generator, 0, 1)))


def texture_sources() -> list[Path]:
    """Texture sources here: the existing paths in ``$FOVEATE_TEXTURES``, then ``~/.cache/foveate/textures/*``."""
    paths = [Path(entry).expanduser() for entry in os.environ.get(TEXTURES_ENV, "").split(os.pathsep) if entry]
    cache = TEXTURE_CACHE.expanduser()
    if cache.is_dir():
        paths += sorted(entry for entry in cache.iterdir() if entry.is_dir() or entry.suffix in (".whl", ".zip"))
    return [path for path in paths if path.exists()]


def load_texture_sets(source: str | Path) -> dict[str, Material]:
    """Full PBR sets from a folder of material folders, or from a pypbr wheel's ``tests/data/<set>/``.

    In a set, the base colour is ``basecolor.png``, ``albedo.png`` or ``diffuse.png`` (first
    found, names case-insensitive), with ``roughness.png``, ``normal.png`` and optionally
    ``metallic.png`` (zeros when absent). Normal maps are taken as OpenGL (+y up): pypbr's are,
    measured on its height maps: the green channel correlates with the height's downward
    (row) derivative at +0.81 (rocks) and +0.99 (tiles), and red with minus the rightward
    derivative at +0.82 and +0.99 -- exactly ``n ~ (-dh/du, -dh/dv, 1)`` with v up; DirectX maps
    would give negative green correlations. Folders missing a required map are skipped with a warning.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: no complete set in it.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such texture source")
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            members: dict[str, dict[str, str]] = {}
            for member in archive.namelist():
                match = re.fullmatch(r"(?:.*/)?tests/data/([^/]+)/([^/]+)\.png", member, flags=re.IGNORECASE)
                if match:
                    members.setdefault(match[1], {})[match[2].lower()] = member
            sets = _read_sets(source, members, lambda member: Image.open(io.BytesIO(archive.read(member))))
    else:
        paths: dict[str, dict[str, Path]] = {}
        for folder in sorted(entry for entry in source.iterdir() if entry.is_dir()):
            for path in folder.iterdir():
                if path.suffix.lower() == ".png":
                    paths.setdefault(folder.name, {})[path.stem.lower()] = path
        sets = _read_sets(source, paths, Image.open)
    if not sets:
        raise ValueError(f"{source}: no complete texture set (base colour, roughness and normal PNGs)")
    return sets


def _read_sets(
    source: Path, files: Mapping[str, Mapping[str, Any]], open_image: Callable[[Any], Image.Image]
) -> dict[str, Material]:
    """The complete sets among ``files`` (set name -> lower-case file stem -> what ``open_image`` opens)."""
    sets = {}
    for name, found in sorted(files.items()):
        albedo = next((found[stem] for stem in ALBEDO_NAMES if stem in found), None)
        if albedo is None or "roughness" not in found or "normal" not in found:
            log.warning("%s: texture set %s lacks a base colour, roughness or normal map; skipped", source, name)
            continue
        where = {"albedo": albedo, "roughness": found["roughness"], "normal": found["normal"]}
        maps = {key: _channels(open_image(item), MAP_CHANNELS[key]) for key, item in where.items()}
        maps["normal"] = decode_normal(maps["normal"])
        metallic = found.get("metallic")
        maps["metallic"] = _channels(open_image(metallic), 1) if metallic else torch.zeros_like(maps["roughness"])
        sets[name] = maps
    return sets


def _channels(image: Image.Image, channels: int) -> torch.Tensor:
    with image:
        array = image_to_array(image)
    array = np.repeat(array[..., :1], 3, axis=-1) if array.shape[-1] in (1, 2) and channels == 3 else array
    return torch.from_numpy(np.ascontiguousarray(array[..., :channels].transpose(2, 0, 1)))


def random_crop(maps: Mapping[str, torch.Tensor], size: int, generator: torch.Generator) -> Material:
    """A random square piece of a real set at ``size``: side 0.5 to 1 of the texture's, random place,
    random quarter turn and mirror (normals turned with it), resized with antialiasing."""
    height, width = maps["albedo"].shape[-2:]
    side = max(1, round(_uniform(generator, 0.5, 1.0) * min(height, width)))
    top, left = _integer(generator, 0, height - side), _integer(generator, 0, width - side)
    piece = {name: image[..., top : top + side, left : left + side] for name, image in maps.items()}
    piece = resize_maps(piece, size)
    return orient_maps(piece, _integer(generator, 0, 3), bool(_integer(generator, 0, 1)))
