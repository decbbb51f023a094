"""HELIOS's files: cells (``cells/{l}_{theta}_{phi}.bin``), ``index.json`` and the pack.

A cell file is ``[u32 LE length][JSON CellMetadata][LZ4 block with a u32 LE size prefix]``; the block
holds 14 little-endian float32 per splat: position (metres, relative to the cell's centroid), scale
3 (metres), rotation 4 (x, y, z, w), colour 3 (in [0, 1]), opacity. The metadata is
``{"id": {"l", "theta", "phi"}, "bounds": {"min", "max", "centroid": {"x", "y", "z"}}, "splat_count",
"compressed": false}`` (HELIOS's ``compressed`` names its quantised format, never used, not LZ4).
``index.json`` is HELIOS's ``CellManifest``; ``cells.pack.bin`` the cell files concatenated in
index order, with ``cells.pack.json`` giving each one's offset and size.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .grid import CellId, HLGConfig, HLGGrid

__all__ = [
    "SPLAT_FLOATS",
    "CellFile",
    "CellFormatError",
    "UniverseIndex",
    "parse_cell",
    "read_cell",
    "read_index",
    "read_pack",
    "write_cell",
    "write_index",
    "write_pack",
]

SPLAT_FLOATS = 14
"""float32 per splat: position 3, scale 3, rotation 4 (xyzw), colour 3, opacity."""


class CellFormatError(ValueError):
    """A cell, index or pack file that is not HELIOS's format; the message names the file."""


def _lz4() -> Any:
    try:
        import lz4.block
    except ImportError as error:
        raise ImportError("HELIOS cell files need lz4: pip install 'foveate[universe]'") from error
    return lz4.block


@dataclass
class CellFile:
    """One cell: its id, bounds (HELIOS's dict) and ``(N, 14)`` float32 splats."""

    cell: CellId
    bounds: dict[str, dict[str, float]]
    splats: np.ndarray

    @property
    def centroid(self) -> np.ndarray:
        c = self.bounds["centroid"]
        return np.array([c["x"], c["y"], c["z"]], dtype=np.float64)

    @property
    def positions(self) -> np.ndarray:
        """``(N, 3)`` float64 absolute positions in metres."""
        return self.splats[:, :3].astype(np.float64) + self.centroid

    @classmethod
    def from_absolute(
        cls,
        grid: HLGGrid,
        cell: CellId,
        positions: np.ndarray,
        scales: np.ndarray,
        rotations: np.ndarray,
        colors: np.ndarray,
        opacities: np.ndarray,
    ) -> CellFile:
        """A cell of splats at absolute ``positions``, stored relative to the cell's centroid."""
        bounds = grid.bounds(cell)
        centre = bounds["centroid"]
        relative = np.asarray(positions, np.float64) - np.array([centre["x"], centre["y"], centre["z"]])
        splats = np.concatenate(
            (relative, scales, rotations, colors, np.asarray(opacities)[:, None]), axis=1, dtype=np.float64
        ).astype(np.float32)
        return cls(cell, bounds, splats)


def write_cell(path: Path, cell: CellFile) -> int:
    """Write ``cell`` in HELIOS's format (atomically); returns the file's size in bytes."""
    splats = np.ascontiguousarray(cell.splats, dtype="<f4")
    if splats.ndim != 2 or splats.shape[1] != SPLAT_FLOATS:
        raise ValueError(f"splats must be (N, {SPLAT_FLOATS}), got {splats.shape}")
    meta = {"id": cell.cell.to_json(), "bounds": cell.bounds, "splat_count": len(splats), "compressed": False}
    # serde_json (ryu) writes 1e17 where Python writes 1e+17; match it so headers are HELIOS's bytes.
    header = json.dumps(meta, separators=(",", ":")).replace("e+", "e").encode()
    body = _lz4().compress(splats.tobytes(), store_size=True)
    data = struct.pack("<I", len(header)) + header + body
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return len(data)


def read_cell(path: str | Path) -> CellFile:
    """Read a HELIOS cell file (one foveate wrote or one of HELIOS's own)."""
    path = Path(path)
    return parse_cell(path.read_bytes(), str(path))


def parse_cell(data: bytes, name: str = "cell") -> CellFile:
    """A cell from its file's bytes (a file, or a slice of a pack); errors name ``name``."""
    try:
        (length,) = struct.unpack_from("<I", data, 0)
        meta = json.loads(data[4 : 4 + length])
        raw = _lz4().decompress(data[4 + length :])
        cell = CellId(int(meta["id"]["l"]), int(meta["id"]["theta"]), int(meta["id"]["phi"]))
        bounds = {k: {a: float(meta["bounds"][k][a]) for a in "xyz"} for k in ("min", "max", "centroid")}
        count = int(meta["splat_count"])
    except (struct.error, ValueError, KeyError, TypeError) as error:
        raise CellFormatError(f"{name}: not a HELIOS cell file ({error})") from error
    except Exception as error:  # lz4 raises its own LZ4BlockError
        raise CellFormatError(f"{name}: corrupt LZ4 block ({error})") from error
    if len(raw) != count * SPLAT_FLOATS * 4:
        raise CellFormatError(
            f"{name}: {len(raw)} bytes of splats for splat_count {count} ({SPLAT_FLOATS * 4} bytes each)"
        )
    splats = np.frombuffer(raw, dtype="<f4").reshape(count, SPLAT_FLOATS).astype(np.float32)
    return CellFile(cell, bounds, splats)


def read_pack(folder: str | Path) -> list[CellFile]:
    """Every cell of a universe's ``cells.pack.bin`` (as ``cells.pack.json`` lays them out)."""
    folder = Path(folder)
    manifest = folder / "cells.pack.json"
    try:
        table = json.loads(manifest.read_text())
        blob = (folder / table["pack_file"]).read_bytes()
        return [
            parse_cell(blob[e["offset"] : e["offset"] + e["size"]], f"{folder / table['pack_file']}:{e['file_name']}")
            for e in table["cells"]
        ]
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise CellFormatError(f"{manifest}: not a HELIOS cells.pack.json ({error})") from error


@dataclass
class UniverseIndex:
    """HELIOS's ``index.json``: the grid and one entry per cell (id, file, splats, bytes)."""

    config: HLGConfig
    cells: list[dict[str, Any]]

    @property
    def total_splats(self) -> int:
        return sum(int(entry["splat_count"]) for entry in self.cells)

    @property
    def total_size_bytes(self) -> int:
        return sum(int(entry["file_size_bytes"]) for entry in self.cells)

    def ids(self) -> list[CellId]:
        return [CellId(e["id"]["l"], e["id"]["theta"], e["id"]["phi"]) for e in self.cells]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "config": self.config.to_json(),
            "total_splats": self.total_splats,
            "total_size_bytes": self.total_size_bytes,
            "cells": self.cells,
        }


def index_entry(cell: CellId, splat_count: int, size: int) -> dict[str, Any]:
    return {"id": cell.to_json(), "file_name": cell.file_name, "splat_count": splat_count, "file_size_bytes": size}


def write_index(folder: Path, index: UniverseIndex) -> Path:
    path = folder / "index.json"
    path.write_text(json.dumps(index.to_json(), indent=2))
    return path


def read_index(folder: str | Path) -> UniverseIndex:
    """The ``index.json`` of a universe folder (foveate's or HELIOS's)."""
    path = Path(folder) / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no index.json (a universe folder from 'foveate universe build')")
    try:
        data = json.loads(path.read_text())
        config = HLGConfig(**{k: data["config"][k] for k in ("r_min", "log_base", "n_theta", "n_phi")})
        cells = list(data["cells"])
        for entry in cells:
            _ = entry["id"]["l"], entry["id"]["theta"], entry["id"]["phi"], entry["file_name"], entry["splat_count"]
    except (ValueError, KeyError, TypeError) as error:
        raise CellFormatError(f"{path}: not a HELIOS index.json ({error})") from error
    return UniverseIndex(config, cells)


def write_pack(folder: Path, index: UniverseIndex, output: Path | None = None) -> tuple[Path, Path]:
    """Concatenate the index's cell files into ``cells.pack.bin`` and describe them in ``cells.pack.json``.

    ``output`` names the pack file (its ``.json`` beside it); by default both go into ``folder``.
    """
    pack = output or folder / "cells.pack.bin"
    manifest = pack.with_suffix(".json")
    entries, offset = [], 0
    with open(pack, "wb") as out:
        for entry in index.cells:
            data = (folder / "cells" / entry["file_name"]).read_bytes()
            out.write(data)
            entries.append({"file_name": entry["file_name"], "offset": offset, "size": len(data)})
            offset += len(data)
    manifest.write_text(
        json.dumps({"version": 1, "pack_file": pack.name, "total_size_bytes": offset, "cells": entries}, indent=2)
    )
    return pack, manifest
