"""HELIOS's cell files, index and pack: byte layout, round trips, named errors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from foveate.universe import (
    CellFile,
    CellFormatError,
    CellId,
    HLGGrid,
    UniverseIndex,
    read_cell,
    write_cell,
    write_pack,
)
from foveate.universe.cells import index_entry, read_index, write_index


def literal_lz4_block(data: bytes) -> bytes:
    """An LZ4 block of one literal-only sequence, with lz4_flex's u32 LE size prefix: encoded by hand."""
    length = len(data)
    token = bytes([min(length, 15) << 4])
    extra = b""
    if length >= 15:
        rest = length - 15
        extra = b"\xff" * (rest // 255) + bytes([rest % 255])
    return struct.pack("<I", length) + token + extra + data


def hand_made_cell(cell: CellId, splats: np.ndarray) -> bytes:
    bounds = HLGGrid().bounds(cell)
    meta = {"id": cell.to_json(), "bounds": bounds, "splat_count": len(splats), "compressed": False}
    header = json.dumps(meta).encode()
    return struct.pack("<I", len(header)) + header + literal_lz4_block(splats.astype("<f4").tobytes())


def test_a_hand_encoded_cell_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    splats = rng.normal(size=(40, 14)).astype(np.float32)
    path = tmp_path / "7_3_30.bin"
    path.write_bytes(hand_made_cell(CellId(7, 3, 30), splats))
    cell = read_cell(path)
    assert cell.cell == CellId(7, 3, 30)
    np.testing.assert_array_equal(cell.splats, splats)
    assert cell.bounds == HLGGrid().bounds(CellId(7, 3, 30))


def test_written_cells_have_the_byte_layout_and_round_trip(tmp_path):
    grid = HLGGrid()
    cell = CellId(20, 40, 12)
    centre = grid.centroid(cell)
    positions = centre + np.array([[1e14, -2e14, 3e13], [0.0, 0.0, 0.0]])
    data = CellFile.from_absolute(
        grid,
        cell,
        positions,
        np.full((2, 3), 5e12),
        np.tile([0.0, 0.0, 0.0, 1.0], (2, 1)),
        np.array([[1.0, 0.9, 0.8], [0.5, 0.6, 1.0]]),
        np.array([0.5, 0.01]),
    )
    path = tmp_path / cell.file_name
    size = write_cell(path, data)
    raw = path.read_bytes()
    assert size == len(raw)
    (length,) = struct.unpack_from("<I", raw)
    meta = json.loads(raw[4 : 4 + length])
    assert meta["id"] == {"l": 20, "theta": 40, "phi": 12} and meta["splat_count"] == 2
    assert meta["compressed"] is False and set(meta["bounds"]) == {"min", "max", "centroid"}
    (stored,) = struct.unpack_from("<I", raw, 4 + length)
    assert stored == 2 * 14 * 4  # the size prefix counts the uncompressed splat bytes
    back = read_cell(path)
    np.testing.assert_array_equal(back.splats, data.splats)
    np.testing.assert_allclose(back.positions, positions, rtol=0, atol=1e7)  # float32 offsets of 1e14 m
    assert back.splats[0, 6:10].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_malformed_cells_name_the_file(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(b"\x05\x00\x00\x00{oops")
    with pytest.raises(CellFormatError, match=r"bad\.bin"):
        read_cell(path)
    splats = np.zeros((3, 14), np.float32)
    truncated = hand_made_cell(CellId(1, 2, 3), splats)
    meta_length = struct.unpack_from("<I", truncated)[0]
    header = json.loads(truncated[4 : 4 + meta_length])
    header["splat_count"] = 4
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<I", len(text)) + text + truncated[4 + meta_length :])
    with pytest.raises(CellFormatError, match="splat_count 4"):
        read_cell(path)


def test_index_and_pack_describe_the_cells(tmp_path):
    grid = HLGGrid()
    (tmp_path / "cells").mkdir()
    entries = []
    for n, cell in enumerate([CellId(3, 1, 2), CellId(4, 5, 6)], start=1):
        data = CellFile(cell, grid.bounds(cell), np.full((n, 14), float(n), np.float32))
        entries.append(index_entry(cell, n, write_cell(tmp_path / "cells" / cell.file_name, data)))
    write_index(tmp_path, UniverseIndex(grid.config, entries))
    index = read_index(tmp_path)
    assert index.total_splats == 3 and index.ids() == [CellId(3, 1, 2), CellId(4, 5, 6)]
    on_disk = json.loads((tmp_path / "index.json").read_text())
    assert on_disk["version"] == 1 and on_disk["config"] == {
        "r_min": 4.6e10,
        "log_base": 2.0,
        "n_theta": 64,
        "n_phi": 32,
    }
    pack, manifest = write_pack(tmp_path, index)
    table = json.loads(manifest.read_text())
    blob = pack.read_bytes()
    assert table["pack_file"] == "cells.pack.bin" and table["total_size_bytes"] == len(blob)
    for entry in table["cells"]:
        piece = blob[entry["offset"] : entry["offset"] + entry["size"]]
        assert piece == (tmp_path / "cells" / entry["file_name"]).read_bytes()
    with pytest.raises(FileNotFoundError, match=r"no index\.json"):
        read_index(tmp_path / "cells")
