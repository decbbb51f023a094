"""HELIOS's Heliocentric Logarithmic Grid: shells doubling in radius, cut into longitude and polar bins.

A position ``(x, y, z)`` in metres (heliocentric, ecliptic J2000) at radius ``r`` lies in shell
``l = floor(ln(r / r_min) / ln(base))``, longitude bin ``floor((atan2(y, x) + pi) / 2 pi * n_theta)``
and polar bin ``floor(acos(z / r) / pi * n_phi)`` (both clamped to their last bin); positions
inside ``r_min`` (Mercury's perihelion) belong to no cell. A cell's bounds are the box around its
eight corners, as HELIOS computes them (conservative only at the corners), and its centroid, to which
the positions in its file are relative, is that box's centre. Everything here is float64: absolute
positions reach 1e21 m.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["CellId", "HLGConfig", "HLGGrid"]


@dataclass(frozen=True, order=True)
class CellId:
    """One cell: shell ``l``, longitude bin ``theta``, polar bin ``phi``."""

    l: int  # noqa: E741 (HELIOS's name)
    theta: int
    phi: int

    @property
    def name(self) -> str:
        """``{l}_{theta}_{phi}``, HELIOS's cell id."""
        return f"{self.l}_{self.theta}_{self.phi}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.bin"

    @classmethod
    def parse(cls, text: str) -> CellId:
        """From ``l_theta_phi`` or ``l_theta_phi.bin``."""
        parts = text.removesuffix(".bin").split("_")
        if len(parts) != 3 or not all(part.isdigit() for part in parts):
            raise ValueError(f"not a cell id (l_theta_phi): {text!r}")
        return cls(*(int(part) for part in parts))

    def to_json(self) -> dict[str, int]:
        return {"l": self.l, "theta": self.theta, "phi": self.phi}


@dataclass(frozen=True)
class HLGConfig:
    """The grid's parameters, HELIOS's defaults (its ``HLGConfig``)."""

    r_min: float = 4.6e10
    log_base: float = 2.0
    n_theta: int = 64
    n_phi: int = 32

    def to_json(self) -> dict[str, float | int]:
        return {"r_min": self.r_min, "log_base": self.log_base, "n_theta": self.n_theta, "n_phi": self.n_phi}


class HLGGrid:
    """Cell lookup, bounds and neighbourhoods of an :class:`HLGConfig`."""

    def __init__(self, config: HLGConfig | None = None) -> None:
        self.config = config or HLGConfig()

    def cells_of(self, positions: np.ndarray) -> np.ndarray:
        """``(N, 3)`` int64 ``(l, theta, phi)`` of ``(N, 3)`` positions in metres; ``l = -1`` inside ``r_min``."""
        positions = np.asarray(positions, dtype=np.float64)
        c = self.config
        radius = np.linalg.norm(positions, axis=1)
        inside = radius >= c.r_min
        safe = np.where(inside, radius, c.r_min)
        shell = np.floor((np.log(safe) - math.log(c.r_min)) / math.log(c.log_base)).astype(np.int64)
        theta = np.arctan2(positions[:, 1], positions[:, 0])
        phi = np.arccos(np.clip(positions[:, 2] / safe, -1.0, 1.0))
        theta_bin = np.minimum(np.floor((theta + math.pi) / (2 * math.pi) * c.n_theta).astype(np.int64), c.n_theta - 1)
        phi_bin = np.minimum(np.floor(phi / math.pi * c.n_phi).astype(np.int64), c.n_phi - 1)
        return np.stack((np.where(inside, shell, -1), theta_bin, phi_bin), axis=1)

    def cell_of(self, position: Iterable[float]) -> CellId | None:
        """The cell holding one position, or None inside ``r_min``."""
        shell, theta, phi = self.cells_of(np.asarray([list(position)]))[0].tolist()
        return None if shell < 0 else CellId(shell, theta, phi)

    def shell_radii(self, l: int) -> tuple[float, float]:  # noqa: E741
        """Inner and outer radius of shell ``l``."""
        inner = self.config.r_min * self.config.log_base**l
        return inner, inner * self.config.log_base

    def angular_bounds(self, cell: CellId) -> tuple[float, float, float, float]:
        """``theta_min, theta_max, phi_min, phi_max`` in radians."""
        theta_step = 2 * math.pi / self.config.n_theta
        phi_step = math.pi / self.config.n_phi
        theta_min = -math.pi + cell.theta * theta_step
        phi_min = cell.phi * phi_step
        return theta_min, theta_min + theta_step, phi_min, phi_min + phi_step

    def bounds(self, cell: CellId) -> dict[str, dict[str, float]]:
        """HELIOS's ``CellBounds``: ``min``, ``max`` and ``centroid`` of the box around the cell's 8 corners."""
        inner, outer = self.shell_radii(cell.l)
        theta_min, theta_max, phi_min, phi_max = self.angular_bounds(cell)
        corners = np.array(
            [
                _cartesian(r, theta, phi)
                for r in (inner, outer)
                for theta in (theta_min, theta_max)
                for phi in (phi_min, phi_max)
            ]
        )
        low, high = corners.min(axis=0), corners.max(axis=0)
        centre = (low + high) / 2
        return {
            name: dict(zip("xyz", map(float, v), strict=True))
            for name, v in (("min", low), ("max", high), ("centroid", centre))
        }

    def centroid(self, cell: CellId) -> np.ndarray:
        """``(3,)`` float64: the centre of :meth:`bounds`, the origin of a cell file's positions."""
        centre = self.bounds(cell)["centroid"]
        return np.array([centre["x"], centre["y"], centre["z"]])

    def neighbours(self, cell: CellId, reach: int) -> list[CellId]:
        """Every cell within ``reach`` steps on each index (the cell included): theta wraps around,
        phi is clamped to the poles, l stops at 0. Sorted, without repeats."""
        if reach < 0:
            raise ValueError(f"--neighbors must be >= 0, got {reach}")
        c = self.config
        found = set()
        for dl in range(-reach, reach + 1):
            l = cell.l + dl  # noqa: E741
            if l < 0:
                continue
            for dt in range(-reach, reach + 1):
                theta = (cell.theta + dt) % c.n_theta
                for dp in range(-reach, reach + 1):
                    phi = min(max(cell.phi + dp, 0), c.n_phi - 1)
                    found.add(CellId(l, theta, phi))
        return sorted(found)


def _cartesian(r: float, theta: float, phi: float) -> tuple[float, float, float]:
    return (r * math.sin(phi) * math.cos(theta), r * math.sin(phi) * math.sin(theta), r * math.cos(phi))
