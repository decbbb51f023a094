"""foveate universe build: catalogues in, HELIOS's cells, index and landmarks out."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from foveate.cli import main
from foveate.universe import HLGGrid, build_universe, load_csv, read_cell, read_index, synthetic_stars
from foveate.universe.catalog import PARSEC, bv_to_rgb, magnitude_to_opacity, star_positions

# Sirius (J2000, Hipparcos-2): RA 101.2872 deg, Dec -16.7161 deg, parallax 379.21 mas, Hp -1.09, B-V 0.009.
CATALOG = """id,ra,dec,parallax,mag,b_v
32349,101.28715533,-16.71611586,379.21,-1.0876,0.009
1,10.0,20.0,-1.5,5.0,1.2
2,30.0,-40.0,0.0,4.0,
3,200.0,60.0,12.5,7.5,1.6
4,300.0,5.0,50.0,3.0,-0.2
5,45.0,45.0,25.0,9.0,
"""


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "stars.csv"
    path.write_text(CATALOG)
    return path


def test_positions_follow_parallax_and_the_ecliptic():
    table = load_csv_text(CATALOG)
    positions, valid = star_positions(table)
    assert valid.tolist() == [True, False, False, True, True, True]
    assert np.linalg.norm(positions[0]) == pytest.approx(1000 / 379.21 * PARSEC, rel=1e-12)
    # The north equatorial pole lies 23.44 deg from the north ecliptic pole, towards ecliptic longitude 90 deg.
    pole = load_csv_text("id,ra,dec,parallax,mag,b_v\n0,0,90,100,1,0\n")
    direction = star_positions(pole)[0][0] / np.linalg.norm(star_positions(pole)[0][0])
    np.testing.assert_allclose(
        direction, [0.0, math.sin(math.radians(23.4392911)), math.cos(math.radians(23.4392911))], atol=1e-12
    )


def load_csv_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.csv"
        path.write_text(text)
        return load_csv(path)


def test_colours_and_opacities_follow_b_v_and_magnitude():
    rgb = bv_to_rgb(np.array([-0.3, 0.65, 1.6, np.nan]))
    assert rgb[0, 2] > rgb[0, 0]  # hot stars are blue
    assert rgb[2, 0] > rgb[2, 2]  # cool stars are red
    np.testing.assert_allclose(rgb[3], [1.0, 0.98, 0.95])  # unknown: HELIOS's near-white
    np.testing.assert_allclose(magnitude_to_opacity(np.array([-2.0, 0.0, 5.0, 20.0])), [1.0, 1.0, 0.1, 0.001])


def test_build_bins_counts_and_names(catalog, tmp_path):
    out = tmp_path / "universe"
    summary = build_universe(load_csv(catalog), out, max_mag=8.0, landmarks_top=1)
    assert summary.stars == 6 and summary.no_parallax == 2 and summary.fainter == 1 and summary.splats == 3
    index = read_index(out)
    assert index.total_splats == 3 and len(index.cells) == summary.cells == 3
    grid = HLGGrid()
    for entry in index.cells:
        cell = read_cell(out / "cells" / entry["file_name"])
        assert (
            entry["splat_count"] == len(cell.splats)
            and entry["file_size_bytes"] == (out / "cells" / entry["file_name"]).stat().st_size
        )
        assert all(grid.cell_of(p) == cell.cell for p in cell.positions)
    landmarks = json.loads((out / "landmarks.json").read_text())
    assert landmarks[0]["name"] == "Sirius" and landmarks[0]["kind"] == "star"
    assert "8.6 ly" in landmarks[0]["description"]
    assert {"id", "name", "kind", "pos_meters", "description"} <= set(landmarks[0])
    assert len(landmarks) == 2  # Sirius by name, then the brightest other star (--landmarks-top 1)


def test_limit_keeps_the_brightest(catalog, tmp_path):
    summary = build_universe(load_csv(catalog), tmp_path / "u", limit=2)
    assert summary.splats == 2
    magnitudes = sorted(-5 * np.log10(read_cell(p).splats[0, 13]) for p in (tmp_path / "u" / "cells").iterdir())
    np.testing.assert_allclose(magnitudes, [0.0, 3.0], atol=1e-5)  # Sirius's opacity clamps at 1 (mag 0)


def test_synthetic_universe_and_the_command(tmp_path, capsys):
    table = synthetic_stars(500, seed=1)
    assert len(table) == 500 and bool(np.isfinite(table.parallax).all())
    assert main(["universe", "build", "--output", str(tmp_path / "s"), "--synthetic", "300"]) == 0
    assert read_index(tmp_path / "s").total_splats == 300
    assert main(["universe", "build", "--output", str(tmp_path / "s"), "--synthetic", "300"]) == 2
    assert "already holds cells" in capsys.readouterr().out


def test_bad_catalogues_are_named(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec,mag\n1,2,3\n")
    with pytest.raises(ValueError, match=r"missing column.*parallax"):
        load_csv(bad)
    assert main(["universe", "build", "--output", str(tmp_path / "o"), "--catalog", str(bad)]) == 2
    assert "bad.csv" in capsys.readouterr().out and not (tmp_path / "o").exists()


def test_pack_command_writes_helios_pack(tmp_path, capsys):
    assert main(["universe", "build", "--output", str(tmp_path / "u"), "--synthetic", "50"]) == 0
    assert main(["universe", "pack", "--universe", str(tmp_path / "u")]) == 0
    table = json.loads((tmp_path / "u" / "cells.pack.json").read_text())
    assert len(table["cells"]) == len(read_index(tmp_path / "u").cells)
    assert (tmp_path / "u" / "cells.pack.bin").stat().st_size == table["total_size_bytes"]
    next((tmp_path / "u" / "cells").iterdir()).unlink()
    assert main(["universe", "pack", "--universe", str(tmp_path / "u")]) == 2
    assert "missing" in capsys.readouterr().out
