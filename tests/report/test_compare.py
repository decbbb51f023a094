"""Comparisons: the files and report.json keys the issue names, and the reaching-step measure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveate.pipelines.image import preset
from foveate.report.compare import (
    DEMO_PRESETS,
    REPORT_FILES,
    CompareConfig,
    first_reaching,
    psnr_at_wall,
    run_comparison,
)

PIL = pytest.importorskip("PIL.Image")


def test_first_reaching_reads_the_first_curve_point_at_or_above_target():
    curve = [[0, 5.0, 0.0], [10, 20.0, 1.0], [20, 30.0, 2.0], [30, 29.0, 3.0]]
    assert first_reaching(curve, 20.0) == (10, 1.0)
    assert first_reaching(curve, 29.5) == (20, 2.0)
    assert first_reaching(curve, 31.0) is None


def test_psnr_at_wall_interpolates_between_validations():
    curve = [[0, 10.0, 0.0], [10, 20.0, 2.0], [20, 30.0, 4.0]]
    assert psnr_at_wall(curve, 1.0) == pytest.approx(15.0)
    assert psnr_at_wall(curve, 2.0) == pytest.approx(20.0)
    assert psnr_at_wall(curve, 3.5) == pytest.approx(27.5)
    assert psnr_at_wall(curve, 9.0) == 30.0
    assert psnr_at_wall([[10, 20.0, 2.0]], 1.0) is None
    assert psnr_at_wall([], 1.0) is None


def test_comparison_writes_exactly_the_named_files_and_keys(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    PIL.fromarray(rgb).save(tmp_path / "noise.png")
    config = CompareConfig(
        strategies=("uniform", "error_weighted", "spatial", "adaptive"),
        out=str(tmp_path / "out"),
        run=preset("tiny", image=str(tmp_path / "noise.png"), train__progress=False),
    )
    _, out = run_comparison(config)
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    saved = json.loads((out / "report.json").read_text())
    assert saved["uniform_final_psnr"] == saved["strategies"]["uniform"]["final_psnr"]
    for name in config.strategies:
        entry = saved["strategies"][name]
        assert {"final_psnr", "curve", "steps_to_uniform_final", "psnr_at_equal_wall"} <= set(entry)
        assert entry["psnr_at_equal_wall"] is not None
        assert [row[0] for row in entry["curve"]] == [0, 10, 20]
        assert all(len(row) == 3 for row in entry["curve"])
    assert saved["strategies"]["uniform"]["steps_to_uniform_final"] == 20
    assert saved["equal_wall_seconds"] == min(e["train_seconds"] for e in saved["strategies"].values())
    assert "| adaptive |" in (out / "report.md").read_text()


def test_demo_preset_runs_on_the_bundled_default_photo():
    demo = DEMO_PRESETS["demo"].run
    assert demo.image == "astronaut"
    assert demo.train.steps * demo.train.batch_size <= 400 * 16384
