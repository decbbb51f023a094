"""Training cells: star views, one cell's fit, landmark selection, and a universe that resumes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from foveate.cli import main
from foveate.data import Cameras, look_at
from foveate.universe import CellFile, CellId, HLGGrid, build_universe, read_cell, read_index, synthetic_stars
from foveate.universe.schedule import landmark_cells, train_universe
from foveate.universe.train import CellTrainConfig, splats_from_cell, splats_to_cell, train_cell
from foveate.universe.views import CellFrame, cell_frame, render_stars, star_views

FAST = CellTrainConfig(iterations=40, image_size=32, views=12, held_out=4, densify_interval=20, densify_until=30)


def star_cell(count: int = 12, seed: int = 0) -> CellFile:
    """A cell of ``count`` stars scattered around a point 30 pc away, magnitudes 2 to 8."""
    grid = HLGGrid()
    rng = np.random.default_rng(seed)
    centre = np.array([30 * 3.0857e16, 0.0, 0.0])
    positions = centre + rng.normal(size=(count, 3)) * 2e15
    cell = grid.cell_of(centre)
    positions = positions[[grid.cell_of(p) == cell for p in positions]]
    count = len(positions)
    magnitude = rng.uniform(2, 8, count)
    return CellFile.from_absolute(
        grid,
        cell,
        positions,
        np.full((count, 3), 1e14),
        np.tile([0.0, 0.0, 0.0, 1.0], (count, 1)),
        rng.uniform(0.5, 1.0, (count, 3)),
        10 ** (-magnitude / 5),
    )


def test_star_views_see_every_star_and_follow_the_inverse_square_law():
    cell = star_cell()
    frame, views = star_views(cell, views=8, size=48)
    assert views.images.shape == (8, 48, 48, 3) and float(views.images.max()) <= 1.0
    assert float(frame.positions.norm(dim=1).max()) == pytest.approx(1.0)
    assert int((views.images.amax(dim=(1, 2, 3)) > 0.05).sum()) == 8  # every view sees stars


def test_a_star_dims_with_the_square_of_the_camera_distance():
    frame = CellFrame(np.zeros(3), 1.0, torch.zeros(1, 3), torch.ones(1), torch.ones(1, 3))
    positions = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]])
    cameras = Cameras.from_fov(look_at(positions, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)), 33, 33, 60.0)
    peaks = render_stars(frame, cameras, exposure=1.0).amax(dim=(1, 2, 3))
    # Fluxes 1/4 and 1/16 at the pixel under the star, through the film curve 1 - exp(-x).
    assert peaks.tolist() == pytest.approx([1 - math.exp(-1 / 4), 1 - math.exp(-1 / 16)], rel=1e-5)


def test_splats_survive_the_trip_into_cell_units_and_back():
    cell = star_cell()
    frame = cell_frame(cell)
    back = splats_to_cell(splats_from_cell(cell, frame, torch.device("cpu")), frame, cell)
    np.testing.assert_allclose(back.positions, cell.positions, rtol=1e-6, atol=1e9)
    np.testing.assert_allclose(back.splats[:, 3:], cell.splats[:, 3:], rtol=1e-5, atol=1e-6)


def test_training_a_cell_lowers_its_loss_and_raises_held_out_psnr():
    torch.manual_seed(0)
    trained, result = train_cell(star_cell(), FAST)
    assert result.loss_after < 0.8 * result.loss_before
    assert result.psnr_after > result.psnr_before + 1.0
    assert trained.cell == star_cell().cell and trained.splats.shape[1] == 14
    _, guided_result = train_cell(star_cell(), CellTrainConfig(**{**FAST.__dict__, "view_sampling": "error_weighted"}))
    assert guided_result.loss_after < guided_result.loss_before


def test_landmark_cells_are_the_existing_neighbours():
    grid = HLGGrid()
    index = type("Index", (), {})()
    index.config = grid.config
    home = CellId(20, 5, 0)
    existing = [home, CellId(20, 4, 1), CellId(21, 5, 0), CellId(20, 9, 9), CellId(19, 63, 0)]
    index.ids = lambda: existing
    theta = -np.pi + 5.5 * 2 * np.pi / 64
    phi = 0.5 * np.pi / 32
    r = 4.6e10 * 2**20.5
    position = {"x": r * np.sin(phi) * np.cos(theta), "y": r * np.sin(phi) * np.sin(theta), "z": r * np.cos(phi)}
    landmarks = [{"pos_meters": position}]
    assert landmark_cells(index, landmarks, 0) == [home]
    assert landmark_cells(index, landmarks, 1) == sorted([home, CellId(20, 4, 1), CellId(21, 5, 0)])


def test_a_universe_trains_copies_the_rest_and_resumes(tmp_path, capsys):
    source = tmp_path / "u"
    build_universe(synthetic_stars(3000, seed=3), source, landmarks_top=3)
    index = read_index(source)
    busy = sorted(index.cells, key=lambda e: -e["splat_count"])[:2]
    assert busy[1]["splat_count"] >= 2
    cells = [CellId.parse(e["file_name"]) for e in busy]
    target = tmp_path / "t"
    records = train_universe(source, target, FAST, cells)
    assert [r["file_name"] for r in records] == [e["file_name"] for e in index.cells if e in busy]
    assert all(r["loss_after"] < r["loss_before"] for r in records)
    out = read_index(target)
    assert len(out.cells) == len(index.cells)
    for entry in index.cells:
        if entry not in busy:
            assert (target / "cells" / entry["file_name"]).read_bytes() == (
                source / "cells" / entry["file_name"]
            ).read_bytes()
    metrics = json.loads((target / "training_metrics.json").read_text())
    assert metrics["trained"] == 2
    assert train_universe(source, target, FAST, cells) == records  # nothing left to train
    assert any((target / "views").iterdir())
    flags = ["--neighbors", "0", "--iterations", "5", "--image-size", "24", "--views", "6", "--held-out", "2"]
    landmarks_run = ["universe", "train-landmarks", "--input", str(source), "--output", str(tmp_path / "l")]
    assert main([*landmarks_run, *flags]) == 0
    assert "cells within 0 of the landmarks" in capsys.readouterr().out
    assert read_cell(next((tmp_path / "l" / "cells").iterdir())).splats.shape[1] == 14


def test_validate_and_report_and_fail_on_a_broken_universe(tmp_path, capsys):
    source, target = tmp_path / "u", tmp_path / "t"
    build_universe(synthetic_stars(3000, seed=4), source)
    busy = max(read_index(source).cells, key=lambda e: e["splat_count"])
    train_universe(source, target, FAST, [CellId.parse(busy["file_name"])])
    assert main(["universe", "validate", "--input", str(source), "--trained", str(target)]) == 0
    out = capsys.readouterr().out
    assert "loss lower in 1/1 trained cells" in out and "validation ok" in out
    assert main(["universe", "report", "--trained", str(target)]) == 0
    summary = json.loads((target / "report" / "summary.json").read_text())
    assert summary["cells_trained"] == 1 and summary["loss_reduction_percent"]["min"] > 0
    assert all((target / "report" / f"{name}.png").stat().st_size > 1000 for name in ("loss", "reduction", "sky"))
    (target / "cells" / busy["file_name"]).write_bytes(b"\x00\x00\x00\x00")
    assert main(["universe", "validate", "--input", str(source), "--trained", str(target)]) == 1
    assert "unreadable files: 1" in capsys.readouterr().out


def test_the_engine_gives_hard_cells_more_rounds():
    from foveate.sampling import Sampler
    from foveate.universe.schedule import allocate, feed_back

    errors = np.array([0.01] * 8 + [0.2, 0.4])  # two hard cells among ten
    weights = np.ones(10)
    weights[0] = 30.0  # a landmark cell, weighted up until it matters
    sampler = Sampler(10, "error_weighted", warmup_iterations=0, update_frequency=1, decay=0.0, seed=0)
    sampler.update(torch.arange(10), torch.as_tensor(errors * weights, dtype=torch.float32), 0)
    picks = np.zeros(10)
    for round_index in range(200):
        chosen = allocate(sampler, 2, round_index)
        assert len(chosen) == 2
        feed_back(sampler, chosen, errors, weights, round_index)
        np.add.at(picks, chosen, 1)
    assert picks[9] > picks[8] > 3 * picks[1:8].max()
    assert picks[0] > 3 * picks[1:8].max()  # 30 x 0.01 = 0.3: as hard as the hard ones


def test_adaptive_over_cells_credits_the_component_that_drew_them():
    from foveate.sampling import Sampler
    from foveate.universe.schedule import allocate, feed_back

    errors = np.array([1.0] * 6)
    weights = np.ones(6)
    sampler = Sampler(6, "adaptive", warmup_iterations=0, update_frequency=1, decay=0.0, seed=0)
    sampler.update(torch.arange(6), torch.as_tensor(errors, dtype=torch.float32), 0)
    for round_index in range(20):
        chosen = allocate(sampler, 2, round_index)
        errors[chosen] *= 0.9  # a trained cell's loss falls
        feed_back(sampler, chosen, errors, weights, round_index)
    drops, _, _, counts = sampler.strategy.progress
    assert counts.sum() > 10 and bool((drops > 0).any())


def _small_universe(tmp_path, seed: int = 5, cells: int = 3):
    from foveate.universe.cells import UniverseIndex, write_index

    source = tmp_path / "u"
    build_universe(synthetic_stars(3000, seed=seed), source)
    small = tmp_path / "small"
    keep = sorted(read_index(source).cells, key=lambda e: -e["splat_count"])[:cells]
    (small / "cells").mkdir(parents=True)
    for entry in keep:
        (small / "cells" / entry["file_name"]).write_bytes((source / "cells" / entry["file_name"]).read_bytes())
    write_index(small, UniverseIndex(read_index(source).config, keep))
    return small


def test_a_budget_is_spent_exactly_and_resumes(tmp_path):
    from foveate.universe.schedule import train_with_budget

    small, target = _small_universe(tmp_path), tmp_path / "t"
    config = CellTrainConfig(**{**FAST.__dict__, "iterations": 0})
    with pytest.raises(ValueError, match="less than one chunk"):
        train_with_budget(small, target, config, budget=20, chunk=10)
    records = train_with_budget(small, target, config, budget=80, chunk=10)
    assert sum(r["iterations"] for r in records) == 80 and min(r["iterations"] for r in records) >= 10
    assert all(r["loss_after"] < r["loss_before"] for r in records)
    schedule = json.loads((target / "schedule.json").read_text())
    assert sum(schedule["steps"]) == 80
    again = train_with_budget(small, target, config, budget=80, chunk=10)  # nothing left: the same cells back
    assert [r["iterations"] for r in again] == [r["iterations"] for r in records]
    assert main(["universe", "validate", "--input", str(small), "--trained", str(target)]) == 0
    other = train_with_budget(small, target, config, budget=80, chunk=10, seed=1)  # another schedule: afresh
    assert sum(r["iterations"] for r in other) == 80
    assert json.loads((target / "schedule.json").read_text())["seed"] == 1


def test_an_interrupted_budget_continues_exactly(tmp_path):
    from foveate.universe.schedule import train_with_budget

    small = _small_universe(tmp_path)
    config = CellTrainConfig(**{**FAST.__dict__, "iterations": 0})
    whole = train_with_budget(small, tmp_path / "whole", config, budget=90, chunk=10, strategy="adaptive")

    def stop_at_round_5(message: str) -> None:
        if message.startswith("round 5:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_with_budget(small, tmp_path / "cut", config, 90, 10, "adaptive", progress=stop_at_round_5)
    resumed = train_with_budget(small, tmp_path / "cut", config, budget=90, chunk=10, strategy="adaptive")
    schedules = [json.loads((tmp_path / d / "schedule.json").read_text()) for d in ("whole", "cut")]
    assert schedules[0]["steps"] == schedules[1]["steps"] and schedules[0]["errors"] == schedules[1]["errors"]
    assert [r["loss_after"] for r in resumed] == [r["loss_after"] for r in whole]


def test_a_budget_over_chosen_cells_copies_the_others(tmp_path):
    from foveate.universe.schedule import train_with_budget

    source, target = tmp_path / "u", tmp_path / "t"
    build_universe(synthetic_stars(3000, seed=6), source)
    entries = sorted(read_index(source).cells, key=lambda e: -e["splat_count"])
    chosen = CellId.parse(entries[0]["file_name"])
    records = train_with_budget(source, target, FAST, budget=20, chunk=10, cells=[chosen])
    assert [r["file_name"] for r in records] == [chosen.file_name] and records[0]["iterations"] == 20
    other = entries[1]["file_name"]
    assert (target / "cells" / other).read_bytes() == (source / "cells" / other).read_bytes()
    assert len(read_index(target).cells) == len(entries)


def test_chunks_add_up_to_one_run():
    from foveate.universe.train import CellFit

    config = CellTrainConfig(**{**FAST.__dict__, "densify_interval": 5, "densify_until": 30})
    whole = CellFit(star_cell(), config)
    whole.run(20)
    first = CellFit(star_cell(), config)
    first.run(10)
    torch.manual_seed(123)  # whatever else the process draws in between
    second = CellFit(star_cell(), config, measure_start=False)
    second.load_state_dict(first.state_dict())
    second.run(10)
    assert len(second.params["means"]) == len(whole.params["means"]) > len(star_cell().splats)
    for name in whole.params:
        torch.testing.assert_close(second.params[name], whole.params[name], rtol=0, atol=0)
    assert second.losses == whole.losses and second.loss_before == whole.loss_before
