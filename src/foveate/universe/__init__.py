"""The star universe (seed 004, HELIOS): a star catalogue in Heliocentric Logarithmic Grid cells.

``grid`` is HELIOS's grid (cell ids, bounds, neighbourhoods), ``cells`` its file formats (cells,
``index.json``, the pack), ``catalog`` the catalogues and how a star becomes a splat, ``build``
``foveate universe build``. Everything reads and writes what HELIOS reads and writes.
"""

from .build import BuildSummary, build_universe, landmarks_of
from .catalog import StarTable, load_csv, load_hipparcos, synthetic_stars
from .cells import CellFile, CellFormatError, UniverseIndex, read_cell, read_index, write_cell, write_pack
from .grid import CellId, HLGConfig, HLGGrid

__all__ = [
    "BuildSummary",
    "CellFile",
    "CellFormatError",
    "CellId",
    "HLGConfig",
    "HLGGrid",
    "StarTable",
    "UniverseIndex",
    "build_universe",
    "landmarks_of",
    "load_csv",
    "load_hipparcos",
    "read_cell",
    "read_index",
    "synthetic_stars",
    "write_cell",
    "write_pack",
]
