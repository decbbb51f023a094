"""Atomic checkpoint writes, RNG capture and clear errors for unusable checkpoints."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from foveate.files import atomic_save
from foveate.train import CheckpointError, CheckpointLayout, CheckpointStore, load_checkpoint
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


def test_latest_is_a_copy_so_damage_to_it_cannot_reach_the_numbered_file(tmp_path):
    store = CheckpointStore(tmp_path, keep=2, better=lambda v, than: True, metric="m")
    store.save(_state(10), 10)
    numbered, latest = tmp_path / "step_00000010.pt", tmp_path / "latest.pt"
    assert numbered.stat().st_ino != latest.stat().st_ino
    latest.write_bytes(b"damaged")
    assert load_checkpoint(numbered)["step"] == 10


def test_a_corrupt_checkpoint_names_the_newest_loadable_one(tmp_path):
    store = CheckpointStore(tmp_path, keep=3, better=lambda v, than: True, metric="m")
    for step in (10, 20, 30):
        store.save(_state(step), step)
    (tmp_path / "latest.pt").write_bytes(b"torn")
    (tmp_path / "step_00000030.pt").write_bytes(b"torn too")
    with pytest.raises(CheckpointError, match=r"newest loadable checkpoint beside it is .*step_00000020\.pt"):
        load_checkpoint(tmp_path / "latest.pt")


def test_a_layout_names_every_file_and_the_fallback_follows_it(tmp_path):
    epochs = CheckpointLayout("", "latest.pth", "best_model.pth", "checkpoint_epoch_{:04d}.pth", steps_per_number=5)
    store = CheckpointStore(epochs.directory(tmp_path), keep=2, better=lambda v, than: True, metric="m", layout=epochs)
    for step in (5, 10, 15):
        store.save(_state(step), step)
    store.consider({"step": 15, "m": 1.0}, lambda: _state(15))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best_model.pth", "checkpoint_epoch_0002.pth", "checkpoint_epoch_0003.pth", "latest.pth"]
    (tmp_path / "latest.pth").write_bytes(b"torn")
    (tmp_path / "checkpoint_epoch_0003.pth").write_bytes(b"torn too")
    with pytest.raises(CheckpointError, match=r"beside it is .*checkpoint_epoch_0002\.pth"):
        load_checkpoint(tmp_path / "latest.pth", layout=epochs)


def test_a_second_process_cannot_train_a_locked_run(tmp_path):
    from foveate.train.checkpoint import RunLock

    # flock locks belong to open files: a second open file is refused like another process.
    with RunLock(tmp_path), pytest.raises(CheckpointError, match=f"in use by process {os.getpid()}"), RunLock(tmp_path):
        pass
    with RunLock(tmp_path):  # released with its holder
        pass


def test_resume_latest_continues_the_run_started_last(tmp_path):
    import time

    from foveate.train.checkpoint import note_last_run

    for name in ("older", "newer"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        atomic_save(_state(0), tmp_path / name / "checkpoints" / "latest.pt")
    note_last_run(tmp_path / "older")
    time.sleep(0.01)
    os.utime(tmp_path / "newer" / "checkpoints" / "latest.pt")  # written to more recently, started earlier
    assert resolve_checkpoint("latest", tmp_path, None) == tmp_path / "older" / "checkpoints" / "latest.pt"
    note_last_run(tmp_path / "fresh")
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        resolve_checkpoint("latest", tmp_path, None)
