"""Atomic checkpoint writes, RNG capture and clear errors for unusable checkpoints."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from foveate.files import atomic_save
from foveate.train import CheckpointError, CheckpointStore, load_checkpoint
from foveate.train.checkpoint import CHECKPOINT_FORMAT, capture_rng, resolve_checkpoint, restore_rng


def _state(step: int) -> dict:
    return {"format": CHECKPOINT_FORMAT, "step": step, "weights": torch.full((1000,), float(step))}


def test_crash_during_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    atomic_save(_state(1), path)
    real_save = torch.save

    def crashing_save(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        file.truncate(10)  # half-written file, then the "kill"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_unusable_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"corrupt\.pt"):
        load_checkpoint(tmp_path / "corrupt.pt")
    torch.save({"step": 3}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a foveate checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": 1, "step": 3}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format 1; this foveate reads format 2"):
        load_checkpoint(tmp_path / "old.pt")


def test_store_rotates_numbered_checkpoints_and_keeps_the_best_by_direction(tmp_path):
    lower_is_better = CheckpointStore(tmp_path, keep=2, better=lambda v, than: than is None or v < than, metric="cd")
    for step in (10, 20, 30):
        lower_is_better.save(_state(step), step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "step_00000020.pt", "step_00000030.pt"]
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 30
    for step, value in ((10, 3.0), (20, 1.0), (30, 2.0)):
        lower_is_better.consider({"step": step, "cd": value}, lambda step=step: _state(step))
    assert lower_is_better.best == {"step": 20, "cd": 1.0}
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 20


def test_resolve_latest_picks_the_named_or_newest_run(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        atomic_save(_state(0), tmp_path / name / "checkpoints" / "latest.pt")
    assert resolve_checkpoint("latest", tmp_path, "a") == tmp_path / "a" / "checkpoints" / "latest.pt"
    assert resolve_checkpoint("latest", tmp_path, None).parent.parent.name in ("a", "b")
    assert resolve_checkpoint(str(tmp_path / "b"), tmp_path, None).parent.parent.name == "b"
    with pytest.raises(CheckpointError, match="no run under"):
        resolve_checkpoint("latest", tmp_path / "empty", None)


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    atomic_save({"rng": capture_rng()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]
