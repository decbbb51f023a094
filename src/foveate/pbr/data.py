"""``generate_dataset``: a NeuroPBR dataset written offline from procedural and real materials.

Each sample is its own material (``bricks_0007``; a crop of a real set is ``real_rocks_0012``: pypbr's
``tiles`` set would otherwise share its prefix with the procedural family) seen by
three cameras drawn as NeuroPBR draws them, under one environment (a Blender world HDRI when
Debian's ``blender-data`` and Mitsuba are installed, else a procedural sky), turned about the
plane's normal at random, plus 0 to 2 point lights. The exposure makes an 18% grey card under the
sample's lighting come out at 0.18 x 2^U(-0.5, 0.5) (so albedo stays readable against the
light), then :func:`~foveate.pbr.shading.tonemap` gives the PNGs.

Clean and dirty renders. NeuroPBR's renderer writes each sample into *one* folder: ``dirty``
with probability 1 - ``P_CLEAN`` = 0.25, else ``clean``; a dirty sample has shadows with
probability 0.75 and lens artefacts with probability 0.6 (see :mod:`foveate.pbr.dirt`). Its
``use_dirty_renders`` training therefore sees only a quarter of the materials. Here both
folders hold every sample: ``input/clean`` the clean views, ``input/dirty`` the same views
except for a ``dirty_fraction`` share of the samples (default 0.25, NeuroPBR's), which are
dirty as NeuroPBR's are (shadows 0.75, lens 0.6, independently). So ``input/dirty`` has
NeuroPBR's mix of clean and dirty renders over all materials, and either folder trains on all
of them. ``generation.json`` at the root records what each sample got.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from foveate.files import atomic_write_json

from .dataset import copy_views, sample_name, write_material, write_metadata, write_views
from .dirt import P_SHADOW, P_SMUDGE, apply_lens, lens_overlay, lens_scratches, lens_smudge, shadow_mask
from .lighting import Lighting, environment_paths, load_environment, procedural_sky, sample_environment
from .materials import load_texture_sets, random_crop, random_material, texture_sources
from .shading import plane_lookup, render_views, sample_cameras, tonemap

__all__ = ["REAL_SHARE", "GenerationSummary", "generate_dataset"]

REAL_SHARE = 1 / 8
"""Share of samples cut from real texture sets when any are found."""
ENVIRONMENT_SAMPLES = 48
"""Directional samples per environment: with lobes widened to each sample's solid angle, 48 look like 1024 on
rough materials and blur glossy reflections a little; 64 cost a fifth more time."""
LUMINANCE = torch.tensor([0.2126, 0.7152, 0.0722])


@dataclass
class GenerationSummary:
    """What :func:`generate_dataset` wrote."""

    root: Path
    samples: int
    size: int
    sources: dict[str, int] = field(default_factory=dict)
    """Samples per procedural family or real set."""
    real_samples: int = 0
    dirty_samples: int = 0
    shadowed: int = 0
    lens: int = 0
    environments: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        sources = ", ".join(f"{name} {count}" for name, count in sorted(self.sources.items()))
        return (
            f"{self.root}: {self.samples} samples at {self.size}x{self.size} in {self.seconds:.1f} s "
            f"({self.real_samples} from real texture sets); materials: {sources}; "
            f"input/dirty: {self.dirty_samples} dirty ({self.shadowed} with shadows, {self.lens} with lens artefacts); "
            f"environments: {', '.join(self.environments)}"
        )


def generate_dataset(
    out: str | Path,
    samples: int,
    size: int,
    dirty_fraction: float = 0.25,
    seed: int = 0,
    textures: Sequence[str | Path] | None = None,
    environments: Sequence[str | Path] | None = None,
    progress: bool = True,
    real_share: float = REAL_SHARE,
) -> GenerationSummary:
    """Write ``samples`` samples at ``size`` to the empty or new folder ``out`` (see the module docstring).

    Args:
        textures: real texture sources (folders of material folders, pypbr wheels); ``None``
            looks in :func:`~foveate.pbr.materials.texture_sources`, ``[]`` uses none.
        environments: equirectangular HDR files; ``None`` takes the Blender worlds when
            present (and Mitsuba is installed to read them), else a procedural sky per sample.
        real_share: share of samples cut from the real sets (exactly ``round(samples x real_share)``).

    Raises:
        ValueError: a bad argument or a non-empty ``out`` (nothing is written then).
        FileNotFoundError: a texture or environment path that does not exist.
    """
    started = time.perf_counter()
    out = Path(out)
    _check_int("samples", samples, 1)
    _check_int("size", size, 8)
    _check_int("seed", seed, 0)
    for name, value in (("dirty_fraction", dirty_fraction), ("real_share", real_share)):
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {value!r}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder; choose a new one")
    sources = texture_sources() if textures is None else [Path(path) for path in textures]
    real_sets = {name: maps for source in sources for name, maps in load_texture_sets(source).items()}
    environment_files = _environment_files(environments)
    loaded = [load_environment(path) for path in environment_files]

    chooser = torch.Generator().manual_seed(seed)
    real = set(_choose(samples, real_share if real_sets else 0.0, chooser))
    dirty = set(_choose(samples, dirty_fraction, chooser))
    summary = GenerationSummary(out, samples, size, environments=[path.stem for path in environment_files] or ["sky"])
    metadata, records = {}, {}
    indices = range(samples)
    if progress:
        from rich.progress import track

        indices = track(indices, description=f"writing {samples} samples to {out}")
    for index in indices:
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
        if index in real:
            set_name = sorted(real_sets)[int(torch.randint(len(real_sets), (), generator=generator))]
            family, maps, tiling = f"real_{set_name}", random_crop(real_sets[set_name], size, generator), "mirror"
        else:
            family, maps = random_material(size, generator)
            tiling = "repeat"
        material = f"{family}_{index:04d}"
        environment = int(torch.randint(len(loaded), (), generator=generator)) if loaded else None
        lighting = _lighting(loaded[environment] if loaded else procedural_sky(generator), generator)
        cameras = sample_cameras(1, 3, generator)
        batched = {name: image[None] for name, image in maps.items()}
        clean = render_views(batched, cameras, lighting, size, tiling=tiling)
        gray_card = 0.18 * (lighting.irradiance()[0] * LUMINANCE).sum() / math.pi
        exposure = (0.18 * 2.0 ** (torch.rand((), generator=generator) - 0.5) / gray_card.clamp_min(1e-8)).item()
        clean_png = tonemap(clean[0], exposure)
        record = {"material": material, "environment": _environment_name(environment_files, environment)}
        record |= {"point_lights": lighting.point_positions.shape[1], "exposure": exposure}
        dirty_png = clean_png
        if index in dirty:
            shadows = bool(torch.rand((), generator=generator) < P_SHADOW)
            lens = bool(torch.rand((), generator=generator) < P_SMUDGE)
            dirty_png = _dirty_views(clean, cameras, size, exposure, shadows, lens, generator)
            record |= {"shadows": shadows, "lens": lens}
            summary.shadowed += shadows
            summary.lens += lens
        sample = sample_name(index)
        write_views(out, "clean", sample, clean_png)
        if dirty_png is clean_png:
            copy_views(out, sample, "clean", "dirty")
        else:
            write_views(out, "dirty", sample, dirty_png)
        write_material(out, material, maps)
        metadata[sample] = material
        records[sample] = record
        summary.sources[family] = summary.sources.get(family, 0) + 1
    write_metadata(out, metadata)
    summary.real_samples, summary.dirty_samples = len(real), len(dirty)
    summary.seconds = time.perf_counter() - started
    settings = {"samples": samples, "size": size, "dirty_fraction": dirty_fraction, "seed": seed}
    settings |= {"real_share": real_share, "textures": [str(path) for path in sources]}
    atomic_write_json(out / "generation.json", {"settings": settings, "samples": records, "summary": str(summary)})
    return summary


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"--{name} must be an int >= {minimum}, got {value!r}")


def _choose(count: int, share: float, generator: torch.Generator) -> list[int]:
    """``round(count x share)`` distinct indices below ``count``, drawn by ``generator``."""
    return torch.randperm(count, generator=generator)[: round(count * share)].tolist()


def _environment_files(environments: Sequence[str | Path] | None) -> list[Path]:
    if environments is None:
        return environment_paths() if importlib.util.find_spec("mitsuba") is not None else []
    paths = [Path(path) for path in environments]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such environment map")
    return paths


def _environment_name(files: list[Path], index: int | None) -> str:
    return files[index].stem if index is not None else "procedural sky"


def _lighting(environment: torch.Tensor, generator: torch.Generator) -> Lighting:
    """The environment's samples, turned at random about +z, plus 0 to 2 point lights.

    Each point light sits 0.8 to 2 units away at 10 to 60 degrees from the zenith and gives the
    plane's centre 0.2 to 1.5 times the environment's irradiance, in a slightly warm or cool white.
    """
    rotation = float(torch.rand((), generator=generator)) * 2.0 * math.pi
    lighting = sample_environment(environment, ENVIRONMENT_SAMPLES, generator, rotation=rotation)
    count = int(torch.randint(0, 3, (), generator=generator))
    if count == 0:
        return lighting
    uniform = torch.rand(count, 6, generator=generator)
    polar = torch.deg2rad(10.0 + 50.0 * uniform[:, 0])
    azimuth = 2.0 * math.pi * uniform[:, 1]
    distance = 0.8 + 1.2 * uniform[:, 2]
    direction = torch.stack([polar.sin() * azimuth.cos(), polar.sin() * azimuth.sin(), polar.cos()], -1)
    environment_irradiance = (lighting.irradiance()[0] * LUMINANCE).sum()
    share = 0.2 + 1.3 * uniform[:, 3]
    intensity = share * environment_irradiance * distance**2 / polar.cos()
    tint = torch.stack([1.0 + 0.15 * (uniform[:, 4] - 0.5), torch.ones(count), 1.0 - 0.15 * (uniform[:, 4] - 0.5)], -1)
    points = Lighting.points((direction * distance[:, None])[None], (intensity[:, None] * tint)[None])
    return lighting + points


def _dirty_views(
    clean: torch.Tensor,
    cameras: torch.Tensor,
    size: int,
    exposure: float,
    shadows: bool,
    lens: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """Display views ``(3, 3, S, S)``: a shadow mask on the plane and a lens overlay on screen, shared by the views.

    The shadow multiplies all incoming light: the shadowed render is the clean one times the mask each view sees.
    """
    linear = clean
    if shadows:
        linear = clean * plane_lookup(shadow_mask(1, max(size, 64), generator), cameras, size)
    exposed = linear[0] * exposure
    if lens:
        color, alpha = lens_overlay(lens_smudge(1, size, generator), lens_scratches(1, size, generator))
        exposed = apply_lens(exposed, color, alpha)
    return tonemap(exposed)
