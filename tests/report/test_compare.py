"""Comparisons: the one definition of steps-to-reach and of quality at equal wall-clock, seed pooling, the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveate.pipelines import get_pipeline
from foveate.pipelines.image import preset
from foveate.report import RunRecord, compare, crossing, pool, pool_saved, value_at
from foveate.report.pooling import COST, best_so_far, late_fall, matched_fraction, pool_budgets, settled, smoothed
from foveate.report.writing import budget_lines, budget_table, cost_lines, late_fall_warnings

PIL = pytest.importorskip("PIL.Image")


def record(variant, seed, curve, seconds=None):
    seconds = curve[-1][2] if seconds is None else seconds
    return RunRecord(variant, seed, curve, {}, seconds, int(curve[-1][0]), "completed", [], {})


def test_crossing_interpolates_between_the_validations_around_the_target():
    curve = [[0, 5.0, 0.0], [10, 20.0, 1.0], [20, 30.0, 2.0], [30, 29.0, 3.0]]
    assert crossing(curve, 25.0) == pytest.approx(15.0)
    assert crossing(curve, 25.0, column=2) == pytest.approx(1.5)
    assert crossing(curve, 20.0) == 10.0
    assert crossing(curve, 31.0) is None
    assert crossing(curve, 4.0) == 0.0, "already reached at the first validation"
    falling = [[0, 9.0, 0.0], [10, 5.0, 1.0], [20, 1.0, 2.0]]
    assert crossing(falling, 3.0, higher_is_better=False) == pytest.approx(15.0)


def test_value_at_reads_the_curve_linearly_in_time():
    curve = [[0, 10.0, 0.0], [10, 20.0, 2.0], [20, 30.0, 4.0]]
    assert value_at(curve, 1.0) == pytest.approx(15.0)
    assert value_at(curve, 3.5) == pytest.approx(27.5)
    assert value_at(curve, 9.0) == 30.0
    assert value_at([[10, 20.0, 2.0]], 1.0) is None
    assert value_at([], 1.0) is None


def test_pooling_pairs_seeds_with_the_reference_and_names_the_worst():
    records = [
        record("uniform", 0, [[0, 10.0, 0.0], [10, 20.0, 1.0], [20, 30.0, 2.0]]),
        record("focused", 0, [[0, 10.0, 0.0], [10, 30.0, 1.0], [20, 32.0, 2.0]]),
        record("uniform", 1, [[0, 10.0, 0.0], [10, 20.0, 1.0], [20, 30.0, 2.0]]),
        record("focused", 1, [[0, 10.0, 0.0], [10, 20.0, 1.0], [20, 29.0, 2.0]]),
    ]
    pooled = pool(records, "uniform")
    focused = pooled["focused"]
    assert focused["final_mean"] == pytest.approx(30.5) and focused["final_std"] == pytest.approx(1.5)
    assert focused["delta_mean"] == pytest.approx(0.5) and focused["delta_worst"] == pytest.approx(-1.0)
    # Seed 0 reaches uniform's final (30 dB) at step 10 (uniform at 20): 0.5x; seed 1 never does.
    assert focused["steps_to_reach"] == [10.0, None] and focused["reached"] == 1
    assert focused["steps_ratio_median"] is None, "half the seeds never got there: the median is not reached"
    assert pooled["uniform"]["steps_ratio_median"] == 1.0
    assert focused["equal_wall_delta_mean"] == pytest.approx(0.5)
    lower = pool(records, "uniform", higher_is_better=False)
    assert lower["focused"]["delta_worst"] == pytest.approx(2.0), "worse means higher when lower is better"


def test_work_per_unit_is_pooled_and_written_where_every_run_reports_it():
    curve = [[0, 10.0, 0.0], [10, 20.0, 1.0]]
    costs = {("uniform", 0): 8.0, ("focused", 0): 12.0, ("uniform", 1): 6.0, ("focused", 1): 12.0}
    records = [record(variant, seed, curve) for variant, seed in costs]
    for run in records:
        run.final[COST] = costs[run.variant, run.seed]
    pooled = pool(records, "uniform")
    assert pooled["focused"]["cost_mean"] == pytest.approx(12.0)
    assert pooled["focused"]["cost_ratio_median"] == pytest.approx((1.5 + 2.0) / 2)
    assert pooled["uniform"]["cost_ratio_median"] == 1.0
    report = {"cost_label": "field queries per drawn ray", "reference": "uniform", "variants": pooled}
    assert cost_lines(report) == [
        "**Cost.** Field queries per drawn ray, over training (mean over seeds): uniform 7.0; focused 12.0 "
        "(1.75x uniform's).",
        "",
    ]
    del records[1].final[COST]
    assert "cost_mean" not in pool(records, "uniform")["focused"], "one run without it: no cost"
    assert cost_lines({**report, "variants": pool(records, "uniform")}) == []


def test_best_so_far_keeps_the_best_value_up_to_each_validation():
    curve = [[0, 10.0, 0.0], [10, 25.0, 1.0], [20, 18.0, 2.0], [30, 27.0, 3.0]]
    assert [p[1] for p in best_so_far(curve)] == [10.0, 25.0, 25.0, 27.0]
    assert [p[1] for p in best_so_far(curve, higher_is_better=False)] == [10.0, 10.0, 10.0, 10.0]
    assert [p[0] for p in best_so_far(curve)] == [0, 10, 20, 30] and settled(curve) == pytest.approx(70.0 / 3)


def test_settled_numbers_do_not_follow_a_swinging_final():
    # Uniform swings: its last validation (20 dB) is a dip; its last three average 24 dB.
    swinging = [[0, 10.0, 0.0], [10, 26.0, 1.0], [20, 26.0, 2.0], [30, 20.0, 3.0]]
    steady = [[0, 10.0, 0.0], [10, 22.0, 1.0], [20, 23.0, 2.0], [30, 24.0, 3.0]]
    pooled = pool([record("uniform", 0, swinging), record("steady", 0, steady)], "uniform")["steady"]
    assert pooled["delta_mean"] == pytest.approx(4.0), "the final compares a dip"
    assert pooled["settled_delta_mean"] == pytest.approx(23.0 - 24.0)
    # Uniform's settled 24 dB: its spike at step 10 is one validation, not its arrival. Means of three
    # validations reach 24 at step 20 (the middle of its last three); steady's means never reach it.
    assert pooled["settled_steps_ratio_median"] is None and pooled["settled_reached"] == 0
    rising = [[0, 10.0, 0.0], [10, 23.0, 1.0], [20, 25.0, 2.0], [30, 25.0, 3.0]]
    faster = pool([record("uniform", 0, swinging), record("rising", 0, rising)], "uniform")["rising"]
    # Rising's means: 19.33 at step 10, 24.33 at step 20: 24 dB at step 10 + 10 * (24 - 19.33) / 5.
    assert faster["settled_steps_ratio_median"] == pytest.approx((10.0 + 10.0 * (24.0 - 58.0 / 3) / 5.0) / 20.0)


def test_smoothed_curves_end_at_the_settled_value():
    curve = [[0, 10.0, 0.0], [10, 26.0, 1.0], [20, 26.0, 2.0], [30, 20.0, 3.0]]
    assert smoothed(curve) == [[10, pytest.approx(62.0 / 3), 1.0], [20, 24.0, 2.0]]
    assert smoothed(curve)[-1][1] == settled(curve)
    assert smoothed(curve[:2]) == [[0, 18.0, 0.0]], "shorter than the window: one mean"


def test_an_absolute_target_measures_steps_to_it_against_the_references():
    records = [
        record("uniform", 0, [[0, 0.2, 0.0], [10, 0.6, 1.0], [20, 1.0, 2.0]]),
        record("official", 0, [[0, 0.2, 0.0], [10, 1.0, 1.0], [20, 1.0, 2.0]]),
    ]
    pooled = pool(records, "uniform", target=1.0)
    assert pooled["official"]["steps_to_reach"] == [10.0] and pooled["official"]["steps_ratio_median"] == 0.5


def flat(variant, seed, value, seconds):
    """A run whose last three validations sit at ``value``, its training over in ``seconds``."""
    return record(variant, seed, [[s, value, seconds * s / 30] for s in (0, 10, 20, 30)])


def test_matched_schedules_interpolate_where_the_shorter_runs_settle_level_with_the_reference():
    full = [flat("uniform", 0, 30.0, 10.0), flat("uniform", 1, 32.0, 10.0), flat("guided", 0, 31.0, 11.0)]
    full.append(flat("guided", 1, 33.0, 11.0))
    shorter = {
        0.5: [flat("guided", 0, 29.0, 6.0), flat("guided", 1, 30.0, 6.0)],  # -1 and -2: mean -1.5
        0.75: [flat("guided", 0, 30.5, 8.0), flat("guided", 1, 32.5, 8.0)],  # +0.5 on both
    }
    guided = pool_budgets(full, shorter, "uniform")["guided"]
    assert [p["fraction"] for p in guided["points"]] == [0.5, 0.75, 1.0]
    assert [p["delta_mean"] for p in guided["points"]] == pytest.approx([-1.5, 0.5, 1.0])
    assert guided["points"][0]["delta_worst"] == pytest.approx(-2.0)
    assert guided["points"][0]["wall_ratio"] == pytest.approx(0.6)
    # Level three quarters of the way from 0.5 (-1.5) to 0.75 (+0.5), as is the training time (0.6 to 0.8).
    assert guided["matched"] == pytest.approx(0.6875) and not guided["at_most"]
    assert guided["matched_wall"] == pytest.approx(0.75)
    ahead = pool_budgets(full, {0.5: [flat("guided", s, 40.0, 6.0) for s in (0, 1)]}, "uniform")["guided"]
    assert ahead["matched"] == 0.5 and ahead["at_most"], "level already at the smallest budget: at most there"
    behind = pool_budgets(full, {0.5: [flat("guided", s, 20.0, 6.0) for s in (0, 1)]}, "uniform")["guided"]
    assert behind["matched"] == pytest.approx(0.5 + 0.5 * 11 / 12), "the variant's own full run is the point at 1"
    lower = pool_budgets(full, shorter, "uniform", higher_is_better=False)["guided"]
    assert lower["matched"] == 0.5 and lower["at_most"], "lower is better: settling below uniform is level at once"


def test_a_variant_behind_at_every_budget_is_not_matched_and_says_how_close_it_came():
    points = [{"fraction": 0.5, "delta_mean": -2.0}, {"fraction": 0.7, "delta_mean": -0.4}]
    assert matched_fraction(points) is None
    assert matched_fraction(points, higher_is_better=False) == 0.5
    full = [flat("uniform", 0, 30.0, 10.0), flat("guided", 0, 29.0, 10.0)]
    budgets = pool_budgets(full, {0.5: [flat("guided", 0, 28.0, 5.0)]}, "uniform")
    report = {
        "reference": "uniform",
        "step_noun": "steps",
        "metric": {"higher_is_better": True},
        "budgets": budgets,
    }
    line = "settles below uniform's full run at every share of its steps: 0.5x -2, 1x -1"
    assert budget_lines(report) == [f"         guided: {line}"]
    table = budget_table(report)
    assert table[2] == "| variant | 0.5x | 1x | level with uniform at |"
    assert table[4] == "| guided | -2.00 / -2.00 | -1.00 / -1.00 | not level |"


def test_a_late_fall_is_the_largest_worsening_in_the_runs_last_third():
    curve = [[0, 10.0, 0.0], [30, 20.0, 1.0], [60, 15.0, 2.0], [70, 25.0, 3.0], [80, 22.0, 4.0], [90, 23.0, 5.0]]
    assert late_fall(curve) == pytest.approx(3.0), "the 5 dB fall at step 60 is before the last third"
    assert late_fall(curve, after=0.0) == pytest.approx(5.0)
    assert late_fall(curve, higher_is_better=False) == pytest.approx(10.0), "a lower-is-better metric rising"
    assert late_fall([[0, 1.0, 0.0], [10, 2.0, 1.0]]) == 0.0 and late_fall([]) == 0.0


def report_of_curves(curves: dict[str, list[list[list[float]]]], correction: str = "none") -> dict:
    records = [record(variant, seed, curve) for variant, runs in curves.items() for seed, curve in enumerate(runs)]
    return {
        "metric": {"name": "psnr"},
        "reference": "uniform",
        "variants": pool(records, "uniform"),
        "config": {"sampling": {"correction": correction}},
    }


def test_a_guided_run_falling_late_where_uniform_does_not_is_named():
    climbing = [[0, 10.0, 0.0], [50, 30.0, 1.0], [80, 35.0, 2.0], [90, 36.0, 3.0], [100, 36.5, 4.0]]
    falling = [[0, 10.0, 0.0], [50, 32.0, 1.0], [80, 38.0, 2.0], [90, 35.0, 3.0], [100, 35.5, 4.0]]
    report = report_of_curves({"uniform": [climbing, climbing], "error_weighted": [climbing, falling]})
    (warning,) = late_fall_warnings(report)
    assert warning.startswith("error_weighted's validation fell by 3.00 dB") and "seed 1" in warning
    assert "--sampling.correction 0.5" in warning
    corrected = report_of_curves({"uniform": [climbing], "error_weighted": [falling]}, correction="0.5")
    (corrected_warning,) = late_fall_warnings(corrected)
    assert "--sampling.correction" not in corrected_warning, "a corrected run is not told to correct"
    assert "--strategy adaptive" in corrected_warning, "a corrected error_weighted run is pointed to the fall back"
    adaptive = report_of_curves({"uniform": [climbing], "adaptive": [falling]}, correction="0.5")
    assert "--strategy" not in late_fall_warnings(adaptive)[0], "adaptive is not told to become adaptive"
    # Uniform falling as far on its own explains the guided run's fall: nothing is named.
    assert late_fall_warnings(report_of_curves({"uniform": [falling, climbing], "error_weighted": [falling]})) == []
    # Nor a fall within 1% of uniform's settled value (36 dB: 0.36 dB).
    wobble = [[0, 10.0, 0.0], [50, 30.0, 1.0], [80, 35.0, 2.0], [90, 34.7, 3.0], [100, 36.5, 4.0]]
    assert late_fall_warnings(report_of_curves({"uniform": [climbing], "error_weighted": [wobble]})) == []


@pytest.fixture
def noise_png(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    PIL.fromarray(rgb).save(tmp_path / "noise.png")
    return str(tmp_path / "noise.png")


def test_a_comparison_over_two_seeds_writes_its_report_and_pools_again(noise_png, tmp_path):
    config = preset("tiny", image=noise_png, train__progress=False, train__tensorboard=False)
    out = tmp_path / "out"
    comparison = compare(get_pipeline("image"), config, ["uniform", "error_weighted"], [3, 4], out)
    names = {p.name for p in out.iterdir()}
    assert {
        "psnr_vs_step.png",
        "psnr_vs_wall_clock.png",
        "error_heatmap.png",
        "sampling_density.png",
        "reconstructions.png",
        "sampling_entropy.png",
        "report.md",
        "report.json",
    } == names
    saved = json.loads((out / "report.json").read_text())
    assert saved["seeds"] == [3, 4] and saved["source"] == "noise.png (24 x 16)"
    assert {(r["variant"], r["seed"]) for r in saved["runs"]} == {
        (v, s) for v in ("uniform", "error_weighted") for s in (3, 4)
    }
    for run in saved["runs"]:
        assert [row[0] for row in run["curve"]] == [0, 10, 20] and "ssim" in run["final"]
    assert saved["variants"] == comparison.report["variants"]
    assert "| error_weighted |" in (out / "report.md").read_text()
    repooled = pool_saved([out], tmp_path / "again")
    assert repooled["variants"] == saved["variants"]
    with pytest.raises(ValueError, match="more than one report"):
        pool_saved([out, out / "report.json"], tmp_path / "twice")


def test_a_comparison_stopped_early_on_the_full_schedule_reports_its_runs(noise_png, tmp_path):
    config = preset("tiny", image=noise_png, train__progress=False, train__tensorboard=False, train__stop_at=10)
    comparison = compare(get_pipeline("image"), config, ["uniform", "error_weighted"], [0], tmp_path / "out")
    assert comparison.report["steps"] == 10
    assert all(run["curve"][-1][0] == 10 and run["status"] == "stopped" for run in comparison.report["runs"])


def test_unknown_variants_fail_before_any_training(tmp_path):
    with pytest.raises(ValueError, match="no variant 'nonsense'"):
        compare(get_pipeline("image"), preset("tiny"), ["uniform", "nonsense"], [0], tmp_path)
    assert not any(tmp_path.iterdir())


def test_budgets_train_the_guided_variants_on_shorter_schedules_and_pool_again(noise_png, tmp_path):
    config = preset("tiny", image=noise_png, train__progress=False, train__tensorboard=False)
    out = tmp_path / "out"
    comparison = compare(get_pipeline("image"), config, ["uniform", "error_weighted"], [0], out, budgets=[0.5])
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 20 and {(r["variant"], r["steps"]) for r in report["runs"]} == {
        ("uniform", 20),
        ("error_weighted", 20),
    }
    shorter = report["budget_runs"]
    assert [(r["fraction"], r["variant"], r["steps"]) for r in shorter] == [(0.5, "error_weighted", 10)]
    assert shorter[0]["curve"][-1][0] == 10, "the shorter run ends at its own last step"
    points = report["budgets"]["error_weighted"]["points"]
    assert [p["fraction"] for p in points] == [0.5, 1.0]
    uniform = next(r for r in report["runs"] if r["variant"] == "uniform")
    assert points[0]["delta_mean"] == pytest.approx(settled(shorter[0]["curve"]) - settled(uniform["curve"]))
    assert report["budgets"] == comparison.report["budgets"]
    assert "**Matched schedules.**" in (out / "report.md").read_text()
    assert (out / "matched_schedules.png").is_file() and "](matched_schedules.png)" in (out / "report.md").read_text()
    repooled = pool_saved([out], tmp_path / "again")
    assert repooled["budgets"] == report["budgets"] and repooled["budget_runs"] == shorter


@pytest.mark.parametrize(
    ("budgets", "changes", "message"),
    [
        ([0.5, 1.0], {}, "between 0 and 1"),
        ([0.5, 0.5], {}, "distinct fractions"),
        ([0.51, 0.52], {}, "of 20 steps round to the same lengths"),
        ([0.5], {"train__stop_at": 10}, "--train.stop-at"),
    ],
)
def test_bad_budgets_fail_before_any_training(noise_png, tmp_path, budgets, changes, message):
    config = preset("tiny", image=noise_png, **changes)
    with pytest.raises(ValueError, match=message):
        compare(get_pipeline("image"), config, ["uniform", "error_weighted"], [0], tmp_path / "out", budgets=budgets)
    assert not (tmp_path / "out").exists()
