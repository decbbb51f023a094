from __future__ import annotations

import json

import pytest

from foveate.pipelines.motion.ablate import ablate
from foveate.pipelines.motion.commands import _presets, report_main
from foveate.pipelines.motion.train import MotionConfig, train
from foveate.train.config import ConfigMismatchError


def smoke(tmp_path, **overrides) -> MotionConfig:
    import dataclasses

    return dataclasses.replace(_presets()["smoke"], out=tmp_path, **overrides)


def test_ppo_smoke_run_writes_the_run_directory_and_resumes(tmp_path):
    config = smoke(tmp_path, form="official", iterations=2)
    summary = train(config)
    run = tmp_path / "walker2d-official-s0"
    for name in ("config.yaml", "reference.npz", "checkpoints/latest.pt", "stats.jsonl", "report/summary.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    assert summary["iterations"] == 2 and summary["env_steps"] == 2 * 4 * 8
    kinds = [json.loads(line)["kind"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert kinds.count("eval") == 2 and kinds.count("ppo") == 2
    resumed = train(smoke(tmp_path, form="official", iterations=3, resume="latest"))
    assert resumed["iterations"] == 3 and resumed["env_steps"] == 3 * 4 * 8
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "ppo"]
    assert steps == [1, 2, 3]
    with pytest.raises(ConfigMismatchError, match="num_envs"):
        train(smoke(tmp_path, form="official", iterations=4, num_envs=5, resume="latest"))


def test_ablate_writes_a_table_ii_report(tmp_path):
    base = smoke(tmp_path, iterations=1)
    report = ablate(base, ["uniform", "paper"], seeds=[0], out=tmp_path / "ablation")
    assert not report["failed_runs"]
    saved = json.loads((tmp_path / "ablation" / "report" / "report.json").read_text())
    assert {(r["variant"], r["seed"]) for r in saved["runs"]} == {("uniform", 0), ("paper", 0)}
    assert all(r["iterations_to_complete"] is None or r["iterations_to_complete"] >= 1 for r in saved["runs"])
    table = (tmp_path / "ablation" / "report" / "table.md").read_text()
    assert "| uniform |" in table and "| paper |" in table
    for figure in ("success_heatmaps.png", "sampling_curves.png"):
        assert (tmp_path / "ablation" / "report" / figure).stat().st_size > 1000
    (tmp_path / "ablation" / "report" / "table.md").unlink()
    assert report_main([str(tmp_path / "ablation")]) == 0
    assert (tmp_path / "ablation" / "report" / "table.md").read_text() == table
