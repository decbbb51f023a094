"""``foveate universe build``: a star catalogue binned into HLG cells, written as HELIOS writes it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .catalog import LIGHT_YEAR, StarTable, bv_to_rgb, magnitude_to_opacity, star_positions, visual_radius
from .cells import CellFile, UniverseIndex, index_entry, write_cell, write_index
from .grid import CellId, HLGConfig, HLGGrid

__all__ = ["BuildSummary", "build_universe", "landmarks_of"]

MATCH_RADIANS = math.radians(5.0 / 60.0)
"""A named star matches the catalogue's star within 5 arcminutes (and the brightest such)."""


@dataclass
class BuildSummary:
    """What a build read, dropped and wrote."""

    stars: int
    no_parallax: int = 0
    too_far_or_near: int = 0
    fainter: int = 0
    inside_r_min: int = 0
    cells: int = 0
    splats: int = 0
    bytes: int = 0
    landmarks: int = 0
    largest_cell: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            f"{self.stars:,} stars read; {self.no_parallax:,} with a non-positive or missing parallax and "
            f"{self.too_far_or_near:,} outside 0.1-100,000 pc left out, {self.fainter:,} fainter than --max-mag, "
            f"{self.inside_r_min:,} inside r_min",
            f"{self.splats:,} splats in {self.cells:,} cells ({self.bytes / 1e6:.2f} MB, at most {self.largest_cell:,} "
            f"a cell), {self.landmarks} landmarks",
        ]


def build_universe(
    table: StarTable,
    output: Path,
    *,
    max_mag: float | None = None,
    limit: int | None = None,
    landmarks_top: int = 0,
    config: HLGConfig | None = None,
) -> BuildSummary:
    """Bin ``table``'s stars into cells under ``output/cells/`` with ``index.json`` and ``landmarks.json``.

    ``max_mag`` drops fainter stars; ``limit`` keeps the brightest ``limit`` of the rest;
    ``landmarks_top`` adds that many of the brightest stars to the named ones as landmarks.
    """
    grid = HLGGrid(config)
    summary = BuildSummary(stars=len(table))
    positions, valid = star_positions(table)
    measured = np.isfinite(table.parallax) & (table.parallax > 0)
    summary.no_parallax = int((~measured).sum())
    summary.too_far_or_near = int((measured & ~valid).sum())
    keep = valid & np.isfinite(table.mag)
    if max_mag is not None:
        fainter = keep & (table.mag > max_mag)
        summary.fainter = int(fainter.sum())
        keep &= ~fainter
    rows = np.flatnonzero(keep)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        rows = rows[np.argsort(table.mag[rows], kind="stable")[:limit]]
    cells = grid.cells_of(positions[rows])
    inside = cells[:, 0] < 0
    summary.inside_r_min = int(inside.sum())
    rows, cells = rows[~inside], cells[~inside]

    (output / "cells").mkdir(parents=True, exist_ok=True)
    opacity = magnitude_to_opacity(table.mag[rows])
    radius = visual_radius(np.linalg.norm(positions[rows], axis=1), opacity)
    colors = bv_to_rgb(table.b_v[rows])
    keys = cells[:, 0] * (grid.config.n_theta * grid.config.n_phi) + cells[:, 1] * grid.config.n_phi + cells[:, 2]
    order = np.argsort(keys, kind="stable")
    boundaries = np.flatnonzero(np.diff(keys[order])) + 1
    entries = []
    for members in np.split(order, boundaries):
        if len(members) == 0:
            continue
        cell = CellId(*(int(v) for v in cells[members[0]]))
        count = len(members)
        rotations = np.tile([0.0, 0.0, 0.0, 1.0], (count, 1))
        data = CellFile.from_absolute(
            grid,
            cell,
            positions[rows[members]],
            np.repeat(radius[members, None], 3, axis=1),
            rotations,
            colors[members],
            opacity[members],
        )
        size = write_cell(output / "cells" / cell.file_name, data)
        entries.append(index_entry(cell, count, size))
        summary.largest_cell = max(summary.largest_cell, count)
    index = UniverseIndex(grid.config, entries)
    write_index(output, index)
    summary.cells, summary.splats, summary.bytes = len(entries), index.total_splats, index.total_size_bytes
    landmarks = landmarks_of(table.take(rows), positions[rows], landmarks_top)
    (output / "landmarks.json").write_text(json.dumps(landmarks, indent=2))
    summary.landmarks = len(landmarks)
    return summary


def landmarks_of(table: StarTable, positions: np.ndarray, top: int = 0) -> list[dict]:
    """HELIOS's landmarks: the named bright stars ``ephem`` ships, found in ``table`` by position, then
    the ``top`` brightest others; each ``{id, name, kind, pos_meters, description, source}``."""
    chosen: dict[int, str] = {}
    for name, ra, dec in _named_stars():
        separation = _angular_distance(table.ra, table.dec, ra, dec)
        near = np.flatnonzero(separation < MATCH_RADIANS)
        if len(near):
            chosen.setdefault(int(near[np.argmin(table.mag[near])]), name)
    added = 0
    for row in np.argsort(table.mag, kind="stable"):
        if added >= top:
            break
        if int(row) not in chosen:
            chosen[int(row)] = ""
            added += 1
    landmarks = []
    for row, name in sorted(chosen.items(), key=lambda item: table.mag[item[0]]):
        x, y, z = (float(v) for v in positions[row])
        distance_ly = float(np.linalg.norm(positions[row])) / LIGHT_YEAR
        star = f"HIP {table.ids[row]}" if table.source == "hipparcos" else f"star {table.ids[row]}"
        landmarks.append(
            {
                "id": f"star-{table.source.split(' ')[0] or 'catalog'}-{table.ids[row]}",
                "name": name or star,
                "kind": "star",
                "pos_meters": {"x": x, "y": y, "z": z},
                "description": f"{star}, mag {table.mag[row]:.2f}, {distance_ly:,.1f} ly",
                "source": "ephem + catalogue" if name else "catalogue",
            }
        )
    return landmarks


def _named_stars() -> list[tuple[str, float, float]]:
    """``(name, ra, dec)`` in radians (J2000) of the bright stars ``ephem`` names; none without ephem."""
    try:
        import ephem.stars
    except ImportError:
        return []
    named = []
    for line in ephem.stars.db.splitlines():
        fields = line.split(",")
        ra_hours = float(fields[2].split("|")[0])
        dec_degrees = float(fields[3].split("|")[0])
        named.append((fields[0], math.radians(ra_hours * 15.0), math.radians(dec_degrees)))
    return named


def _angular_distance(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    cosine = np.sin(dec) * math.sin(dec0) + np.cos(dec) * math.cos(dec0) * np.cos(ra - ra0)
    return np.arccos(np.clip(cosine, -1.0, 1.0))
