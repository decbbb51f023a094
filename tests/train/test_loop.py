"""The shared loop: exact resume, Ctrl-C, non-finite losses, run-directory files, mismatched resumes."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from foveate.train import ConfigMismatchError, Trainer, load_checkpoint, make_sampler
from foveate.train.config import SamplingConfig

from .toy import ToyConfig, ToyTask


def _trainer(tmp_path, config=None, resume=None, name="run", **task_options):
    torch.manual_seed(0)
    config = config or ToyConfig()
    task = ToyTask(config.units, **task_options)
    return Trainer(task, config, device=torch.device("cpu"), run_dir=tmp_path / name, resume_from=resume)


def _train_losses(run_dir):
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    return {line["step"]: line["loss"] for line in lines if line["kind"] == "train"}


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path, name="straight")
    assert straight.fit().status == "completed"

    first = _trainer(tmp_path, name="split")
    result = first.fit(stop_at=20)
    assert (result.status, result.step) == ("stopped", 20)
    latest = tmp_path / "split" / "checkpoints" / "latest.pt"
    resumed = _trainer(tmp_path, name="split", resume=latest)
    assert resumed.step == 20
    assert resumed.fit().status == "completed"

    expected, got = _train_losses(tmp_path / "straight"), _train_losses(tmp_path / "split")
    assert sorted(got) == list(range(1, 41))
    assert got == expected
    torch.testing.assert_close(resumed.task.model.weight, straight.task.model.weight, rtol=0, atol=0)
    adam = [t.task.optimizers["model"].state_dict()["state"][0]["exp_avg"] for t in (resumed, straight)]
    assert adam[0].equal(adam[1])
    errors = [t.sampler.state_dict()["statistics"]["error"] for t in (resumed, straight)]
    assert errors[0].equal(errors[1])


def test_stop_at_in_the_config_stops_on_the_full_runs_schedule(tmp_path):
    straight = _trainer(tmp_path, name="straight")
    straight.fit()
    stopping = ToyConfig()
    stopping.train.stop_at = 20
    first = _trainer(tmp_path, config=stopping, name="split")
    result = first.fit()
    assert (result.status, result.step) == ("stopped", 20)
    # Resumed with it still set, the run goes on to --steps exactly as the straight one: the same schedule.
    latest = tmp_path / "split" / "checkpoints" / "latest.pt"
    resumed = _trainer(tmp_path, config=stopping, name="split", resume=latest)
    assert resumed.fit().status == "completed"
    assert _train_losses(tmp_path / "split") == _train_losses(tmp_path / "straight")


def test_run_directory_holds_config_logs_and_checkpoints(tmp_path):
    config = ToyConfig()
    config.train.tensorboard = True
    trainer = _trainer(tmp_path, config=config)
    result = trainer.fit()
    run = tmp_path / "run"
    assert (run / "config.yaml").read_text().startswith("units: 256")
    stats = json.loads((run / "error_sampling_stats.json").read_text())
    assert [entry["step"] for entry in stats["history"]] == list(range(5, 41, 5))
    assert stats["history"][-1]["strategy"] == "adaptive"
    assert any((run / "tb").iterdir())
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.pt", "latest.pt", "step_00000030.pt", "step_00000040.pt"]
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 40
    assert [record["step"] for record in result.history] == [0, 10, 20, 30, 40]
    assert [record["step"] for record in result.full_history] == [40]
    assert result.best is not None and result.best["psnr"] == max(r["psnr"] for r in result.history if r["step"] > 0)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_saves_latest_and_the_run_continues_exactly(tmp_path, number):
    straight = _trainer(tmp_path, name="straight")
    straight.fit()
    trainer = _trainer(tmp_path, signal_at=12, signal_number=number)
    result = trainer.fit()
    assert result.status == "interrupted"
    assert result.step == 13
    assert "--resume latest" in result.message
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert load_checkpoint(latest)["step"] == 13
    resumed = _trainer(tmp_path, resume=latest)
    assert resumed.fit().status == "completed"
    assert resumed.task.model.weight.equal(straight.task.model.weight)


def test_non_finite_loss_stops_and_names_the_step(tmp_path):
    trainer = _trainer(tmp_path, nan_from=17)
    result = trainer.fit()
    assert result.status == "nonfinite"
    assert "non-finite at step 17" in result.message
    assert (tmp_path / "run" / "checkpoints" / "nonfinite.pt").exists()
    # The last finite checkpoint (step 10) is kept as latest and named in the message.
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 10
    assert "latest.pt" in result.message


def test_resume_with_a_different_config_is_refused(tmp_path):
    _trainer(tmp_path).fit(stop_at=10)
    changed = ToyConfig()
    changed.train.batch_size = 64
    changed.optim.lr = 0.1
    with pytest.raises(ConfigMismatchError) as error:
        _trainer(tmp_path, config=changed, resume=tmp_path / "run" / "checkpoints" / "latest.pt")
    assert "train.batch_size: checkpoint 32, now 64" in str(error.value)
    assert "optim.lr" in str(error.value)


def test_in_memory_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    trainer = Trainer(ToyTask(), ToyConfig(), device=torch.device("cpu"), run_dir=None)
    result = trainer.fit()
    assert result.status == "completed" and result.checkpoint is None
    assert list(tmp_path.iterdir()) == []


def test_a_ramped_correction_spans_the_run_and_resumes_exactly(tmp_path):
    def ramped() -> ToyConfig:
        config = ToyConfig()
        config.sampling.correction, config.sampling.correction_ramp = "0.5", True
        return config

    straight = _trainer(tmp_path, ramped(), name="straight")
    assert straight.sampler.correction_ramp == 40
    assert straight.fit().status == "completed"
    first = _trainer(tmp_path, ramped(), name="split")
    first.fit(stop_at=21)
    resumed = _trainer(tmp_path, ramped(), name="split", resume=tmp_path / "split" / "checkpoints" / "latest.pt")
    assert resumed.fit().status == "completed"
    assert _train_losses(tmp_path / "split") == _train_losses(tmp_path / "straight")


def test_draw_seed_offset_changes_the_draws_alone():
    def draws(seed: int, offset: int) -> torch.Tensor:
        config = SamplingConfig(strategy="uniform", draw_seed_offset=offset)
        return make_sampler(config, 1000, torch.device("cpu"), seed=seed).sample(64, 0).ids

    assert not torch.equal(draws(0, 0), draws(0, 7))
    assert not torch.equal(draws(0, 7), draws(1, 7))  # each seed's draws stay its own
    assert torch.equal(draws(0, 7), draws(7, 0))
