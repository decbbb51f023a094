from __future__ import annotations

import numpy as np
import pytest

from foveate.pipelines.motion.reference import describe, generate_reference, load_reference


def test_reference_is_reproducible_long_and_upright(walker_reference):
    again = generate_reference("walker2d")
    assert np.array_equal(again.qpos, walker_reference.qpos)
    summary = describe(walker_reference)
    assert summary["bins"] >= 15
    assert summary["duration_s"] >= 15.0
    torso_height = walker_reference.qpos[:, 1]
    assert torso_height.min() > 0.9, "the scripted reference must not fall"
    # Balanced by feedback through its own actuators: no outside force ever acts.
    assert not walker_reference.assist.any()


def test_humanoid_reference_records_the_harness_help():
    summary = describe(generate_reference("humanoid"))
    assert summary["bins"] >= 15
    # The hard segments (single-leg balance, kicks) need more outside help than standing.
    assist = np.array(summary["assist_per_bin"])
    assert assist.max() > 3.0 * assist[:3].mean()


def test_save_load_round_trip_and_bad_files(tmp_path, walker_reference):
    path = tmp_path / "ref.npz"
    walker_reference.save(path)
    loaded = load_reference(path)
    assert np.array_equal(loaded.qpos, walker_reference.qpos)
    assert loaded.control_rate == walker_reference.control_rate
    assert loaded.segments == walker_reference.segments
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"bad\.npz"):
        load_reference(bad)
    np.savez(tmp_path / "partial.npz", qpos=np.zeros((3, 9)))
    with pytest.raises(ValueError, match=r"partial\.npz"):
        load_reference(tmp_path / "partial.npz")


def test_unknown_robot_is_named():
    with pytest.raises(ValueError, match="robot must be one of"):
        generate_reference("ant")


def test_long_walker_reference_has_rare_hard_moves():
    reference = generate_reference("walker2d", script="walker2d-long")
    summary = describe(reference)
    assert summary["bins"] >= 40
    assert reference.qpos[:, 1].min() > 0.9, "the scripted reference must not fall"
    hard = {int(t) for t, name in reference.segments if name.startswith(("fast", "quick"))}
    assert 0 < len(hard) <= 0.1 * summary["bins"]
    # The hard moves are the fast ones: joint speeds in their bins exceed every slow bin's.
    rate = reference.control_rate
    speed = np.abs(reference.qvel[:, 3:]).max(axis=1)
    per_bin = [speed[int(b * rate) : int((b + 1) * rate)].max() for b in range(int(reference.duration))]
    slowest_hard = min(per_bin[b] for b in hard)
    easy = [v for b, v in enumerate(per_bin) if b not in hard and b - 1 not in hard]
    assert slowest_hard > 2.0 * max(easy)


def test_script_must_suit_the_robot():
    with pytest.raises(ValueError, match="is for the walker2d"):
        generate_reference("humanoid", script="walker2d-long")
    with pytest.raises(ValueError, match="script must be one of"):
        generate_reference("walker2d", script="moonwalk")
