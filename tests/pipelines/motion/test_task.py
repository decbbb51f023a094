"""The motion pipeline on the shared seam: a tiny run, its files, a comparison and its report rebuilt."""

from __future__ import annotations

import json

import pytest
import torch

from foveate.cli import main
from foveate.pipelines import get_pipeline, run_pipeline
from foveate.pipelines.motion import preset

QUIET = ["--train.no-progress", "--train.no-tensorboard"]


def test_a_tiny_run_writes_its_directory_and_feeds_the_loops_sampler(tmp_path):
    config = preset("tiny", train__runs_dir=str(tmp_path), train__name="run", train__tensorboard=True)
    result, trainer = run_pipeline(get_pipeline("motion"), config)
    assert result.status == "completed" and result.step == 2
    run = tmp_path / "motion" / "run"
    for name in ("config.yaml", "stats.jsonl", "checkpoints/latest.pt", "policy.pt2", "reference.npz", "bins.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    assert trainer.task.vec.command.sampler.sampler is trainer.sampler
    assert trainer.sampler.statistics.visits.sum() > 0, "failures reached the loop's sampler"
    assert [r["step"] for r in result.history] == [0, 1, 2]
    assert len(result.profiles["success"]) == 3 and len(result.profiles["success"][0]) == trainer.task.unit_shape
    assert 0.0 <= result.history[-1]["completion"] <= 1.0
    policy = torch.export.load(run / "policy.pt2").module()
    assert policy(torch.zeros(2, trainer.task.env.observation_size)).shape == (2, trainer.task.env.action_size)


def test_batch_size_must_be_a_multiple_of_the_environments(tmp_path, capsys):
    code = main(
        ["train", "motion", "--preset", "tiny", "--batch-size", "30", "--train.runs-dir", str(tmp_path), *QUIET]
    )
    assert code == 2
    assert "multiple of --num-envs (4)" in capsys.readouterr().err


def test_ablate_is_compare_and_report_rebuilds_it(tmp_path, capsys):
    out = tmp_path / "ablation"
    argv = ["--preset", "tiny", "--strategies", "uniform", "paper", "--out", str(out), *QUIET]
    assert main(["motion", "ablate", *argv]) == 0
    printed = capsys.readouterr().out
    assert "paper: final share of the motion tracked from frame 0" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["variants"]) == {"uniform", "paper"} and report["metric"]["target"] == 1.0
    assert (out / "success_over_time.png").stat().st_size > 1000
    table = (out / "report.md").read_text()
    (out / "report.md").unlink()
    assert main(["motion", "report", str(out)]) == 0
    assert "| paper |" in (out / "report.md").read_text() and "| paper |" in table


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_variants_set_the_failure_bins_form(variant):
    spec = get_pipeline("motion")
    config = spec.with_variant(preset("tiny"), variant)
    assert config.sampling.strategy == "failure_bins" and config.sampling.failure_bins.form == variant
