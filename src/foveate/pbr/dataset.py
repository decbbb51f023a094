"""NeuroPBR's dataset folder: write it, check it (naming every problem), load it into memory.

The layout (NeuroPBR's training guide)::

    root/input/clean/sample_XXXX/{0,1,2}.png    three rendered views (optional when dirty is used)
    root/input/dirty/sample_XXXX/{0,1,2}.png    the same with artefacts (optional when clean is used)
    root/input/render_metadata.json             {"sample_XXXX": "material name", ...}
    root/output/<material>/{albedo,roughness,metallic,normal}.png

Roughness and metallic are read from the R (or grey) channel of whatever mode their PNG has;
the normal map must be RGB. NeuroPBR's renderer writes each sample into *either* ``clean`` or
``dirty``, so a metadata entry only needs a folder in one of the two.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from foveate.files import atomic_write_json

from .maps import MAP_CHANNELS, MAP_NAMES, decode_normal, image_to_array, to_uint8, write_maps

__all__ = [
    "METADATA",
    "RENDERS",
    "VIEW_FILES",
    "PBRData",
    "check_dataset",
    "copy_views",
    "load_dataset",
    "sample_name",
    "split_indices",
    "write_material",
    "write_metadata",
    "write_views",
]

RENDERS = ("clean", "dirty")
VIEW_FILES = ("0.png", "1.png", "2.png")
METADATA = "input/render_metadata.json"
MAP_FILES = tuple(f"{name}.png" for name in MAP_NAMES)
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
"""What Pillow raises for a missing, truncated or corrupt image."""
SAMPLE_PATTERN = re.compile(r"sample_\w+")
PNG_COMPRESSION = 1
"""zlib level of written views: 1.5x faster than Pillow's default (6) for 4% larger files."""
EIGHT_BIT_MODES = ("L", "LA", "RGB", "RGBA", "P", "PA", "1")


def sample_name(index: int) -> str:
    """``sample_0007``: NeuroPBR's sample folder names (four digits, more past 9999)."""
    return f"sample_{index:04d}"


def write_views(root: str | Path, renders: str, sample: str, views: torch.Tensor) -> None:
    """Write ``views`` ``(3, 3, S, S)`` (uint8, or floats in [0, 1]) to ``input/<renders>/<sample>/{0,1,2}.png``."""
    folder = Path(root) / "input" / renders / sample
    folder.mkdir(parents=True, exist_ok=True)
    views = views if views.dtype == torch.uint8 else to_uint8(views)
    for view, file in zip(views, VIEW_FILES, strict=True):
        Image.fromarray(view.permute(1, 2, 0).cpu().numpy()).save(folder / file, compress_level=PNG_COMPRESSION)


def copy_views(root: str | Path, sample: str, source: str, target: str) -> None:
    """Copy a sample's three view files from ``input/<source>`` to ``input/<target>`` (unchanged bytes)."""
    folder = Path(root) / "input" / target / sample
    folder.mkdir(parents=True, exist_ok=True)
    for file in VIEW_FILES:
        shutil.copyfile(Path(root) / "input" / source / sample / file, folder / file)


def write_metadata(root: str | Path, materials: Mapping[str, str]) -> None:
    """Write ``input/render_metadata.json``: sample name to material name."""
    path = Path(root) / METADATA
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, dict(materials))


def write_material(root: str | Path, material: str, maps: Mapping[str, torch.Tensor]) -> None:
    """Write an unbatched material's four PNGs to ``output/<material>/``."""
    write_maps(Path(root) / "output" / material, maps)


def check_dataset(root: str | Path, renders: Literal["clean", "dirty"] = "clean") -> list[str]:
    """Every problem that stops ``renders`` of the dataset at ``root`` from loading, one line each, naming the file.

    Paths in the lines are relative to ``root``. An empty list means :func:`load_dataset` will
    load it. Images are checked by their headers and chunk checksums (Pillow's ``verify``), not decoded.
    """
    root = Path(root)
    if renders not in RENDERS:
        raise ValueError(f"renders must be 'clean' or 'dirty', got {renders!r}")
    if not root.is_dir():
        return [f"{root}: no such folder"]
    metadata, problems = _read_metadata(root)
    if metadata is None:
        return problems
    render_dir = root / "input" / renders
    if not render_dir.is_dir():
        problems.append(f"input/{renders}: missing (renders={renders!r} reads input/{renders}/sample_XXXX/0.png ...)")
    else:
        samples = _sample_folders(render_dir)
        if not samples:
            problems.append(f"input/{renders}: no sample_XXXX folders")
        for sample in samples:
            if sample not in metadata:
                problems.append(f"input/{renders}/{sample}: no entry in {METADATA}")
            else:
                problems += _image_set_problems(root, f"input/{renders}/{sample}", VIEW_FILES)
        rendered = {name for kind in RENDERS for name in _sample_folders(root / "input" / kind)}
        for sample in metadata:
            if sample not in rendered:
                problems.append(
                    f"{METADATA}: {sample} has no folder input/{renders}/{sample} (nor in the other renders)"
                )
    named_by: dict[str, list[str]] = {}
    for sample, material in metadata.items():
        named_by.setdefault(material, []).append(sample)
    for material, samples in named_by.items():
        if not (root / "output" / material).is_dir():
            more = f" and {len(samples) - 1} more" if len(samples) > 1 else ""
            problems.append(f"output/{material}: missing (named by {samples[0]}{more} in {METADATA})")
        else:
            problems += _image_set_problems(root, f"output/{material}", MAP_FILES)
    return problems


@dataclass
class PBRData:
    """A dataset in memory as bytes: ``views (N, 3, 3, S, S)`` and per-sample maps ``(N, C, S, S)``, uint8.

    Samples that share a material share its maps (copied per sample). ``maps(ids)`` gives a
    batch as the float material of :mod:`foveate.pbr.maps` (albedo sRGB, normals decoded).
    """

    views: torch.Tensor
    map_bytes: dict[str, torch.Tensor]
    sample_names: list[str]
    material_names: list[str]

    def __len__(self) -> int:
        return self.views.shape[0]

    def to(self, device: torch.device | str) -> PBRData:
        moved = {name: data.to(device) for name, data in self.map_bytes.items()}
        return PBRData(self.views.to(device), moved, self.sample_names, self.material_names)

    def maps(self, samples: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        """The float maps of ``samples``: ``(B, C, S, S)`` each, normals unit length."""
        maps = {name: self.map_bytes[name][samples].float() / 255.0 for name in MAP_NAMES}
        maps["normal"] = decode_normal(maps["normal"])
        return maps


def load_dataset(root: str | Path, image_size: int, renders: Literal["clean", "dirty"] = "clean") -> PBRData:
    """Load every sample of ``input/<renders>`` and its material, resized to ``image_size`` (antialiased).

    Raises:
        ValueError: the dataset has a problem; the message starts with :func:`check_dataset`'s first line.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    problems = check_dataset(root, renders)
    if problems:
        more = f" (and {len(problems) - 1} more problems: foveate pbr check {root})" if len(problems) > 1 else ""
        raise ValueError(f"{problems[0]}{more}")
    root = Path(root)
    metadata, _ = _read_metadata(root)
    samples = _sample_folders(root / "input" / renders)
    materials = [metadata[sample] for sample in samples]
    views = torch.stack(
        [
            torch.stack([_read_bytes(root, f"input/{renders}/{sample}/{file}", 3, image_size) for file in VIEW_FILES])
            for sample in samples
        ]
    )
    unique = list(dict.fromkeys(materials))
    index = torch.tensor([unique.index(material) for material in materials], dtype=torch.long)
    map_bytes = {}
    for name in MAP_NAMES:
        stack = torch.stack(
            [
                _read_bytes(root, f"output/{material}/{name}.png", MAP_CHANNELS[name], image_size, name)
                for material in unique
            ]
        )
        map_bytes[name] = stack[index]
    return PBRData(views, map_bytes, samples, materials)


def split_indices(n: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and validation sample indices: a seeded shuffle split, no overlap, at least one of each when ``n >= 2``.

    ``round(n * val_ratio)`` samples (at least 1, at most ``n - 1``) go to validation; the same
    ``(n, val_ratio, seed)`` always gives the same split. Both lists come back sorted.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if not 0.0 < val_ratio < 1.0:
        raise ValueError(f"val_ratio must be in (0, 1), got {val_ratio!r}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val_count = min(max(round(n * val_ratio), 1), n - 1) if n >= 2 else 0
    return sorted(order[val_count:]), sorted(order[:val_count])


def _read_metadata(root: Path) -> tuple[dict[str, str] | None, list[str]]:
    """The metadata's valid entries and the problems found; ``None`` when it cannot be used at all."""
    path = root / METADATA
    if not path.is_file():
        return None, [f"{METADATA}: missing"]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return None, [f"{METADATA}: not valid JSON ({error})"]
    if not isinstance(data, dict):
        return None, [f"{METADATA}: must be a JSON object of sample name to material name, got {type(data).__name__}"]
    entries, problems = {}, []
    for sample, material in data.items():
        if not isinstance(material, str):
            problems.append(f"{METADATA}: {sample} maps to {material!r}, not a material name (a string)")
        elif not material or material in (".", "..") or "/" in material or "\\" in material:
            problems.append(f"{METADATA}: {sample} names material {material!r}, not a folder name")
        else:
            entries[sample] = material
    return entries, problems


def _sample_folders(render_dir: Path) -> list[str]:
    if not render_dir.is_dir():
        return []
    return sorted(
        entry.name for entry in render_dir.iterdir() if entry.is_dir() and SAMPLE_PATTERN.fullmatch(entry.name)
    )


def _image_set_problems(root: Path, folder: str, files: Sequence[str]) -> list[str]:
    """Missing or unreadable files of one sample's views or one material's maps, and size mismatches among them."""
    problems, sizes = [], {}
    for file in files:
        relative = f"{folder}/{file}"
        path = root / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
            continue
        try:
            with Image.open(path) as image:
                size, mode = image.size, image.mode
                image.verify()
        except IMAGE_ERRORS as error:
            problems.append(f"{relative}: unreadable PNG ({error})")
            continue
        if file == "normal.png" and mode not in ("RGB", "RGBA"):
            problems.append(f"{relative}: mode {mode}, but a normal map must be RGB")
        sizes[file] = size
    first = next(iter(sizes), None)
    for file, size in sizes.items():
        if size != sizes[first]:
            problems.append(f"{folder}/{file}: {size[0]}x{size[1]}, but {first} is {sizes[first][0]}x{sizes[first][1]}")
    return problems


def _read_bytes(root: Path, relative: str, channels: int, size: int, name: str = "view") -> torch.Tensor:
    """One PNG as uint8 ``(channels, size, size)``, resized if needed; ValueError worded as :func:`check_dataset`."""
    try:
        with Image.open(root / relative) as image:
            image.load()
            if image.mode in EIGHT_BIT_MODES:
                array = np.asarray(image.convert("RGB"), dtype=np.uint8)
            else:
                array = to_uint8(torch.from_numpy(image_to_array(image))).numpy()
    except IMAGE_ERRORS as error:
        raise ValueError(f"{relative}: unreadable PNG ({error})") from error
    array = np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]
    if array.shape[:2] != (size, size):
        array = np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR))
        if name == "normal":
            normal = decode_normal(torch.from_numpy(array.transpose(2, 0, 1).astype(np.float32) / 255.0))
            array = to_uint8((normal + 1.0) * 0.5).numpy().transpose(1, 2, 0)
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor[:channels]
