from __future__ import annotations

import numpy as np
import pytest
import torch

from foveate.data.timeline import MotionCommandSampler
from foveate.pipelines.motion.env import MotionTrackingEnv
from foveate.pipelines.motion.vec_env import TimelineVecEnv


def test_reset_tracks_the_reference_and_rewards_are_bounded(walker_reference):
    env = MotionTrackingEnv(walker_reference, 3, episode_frames=100)
    env.reset_envs(np.arange(3), np.array([0, 100, 400]))
    assert np.allclose(env.qpos, walker_reference.qpos[[0, 100, 400]])
    obs = env.observations()
    assert obs.shape == (3, env.observation_size) and obs.dtype == np.float32
    assert np.isclose(obs[:, 0], np.array([0, 100, 400]) / (env.num_frames - 1)).all()
    result = env.step(np.zeros((3, env.action_size)))
    assert np.array_equal(result.frames, [1, 101, 401])
    assert ((result.reward > 0.5) & (result.reward <= 1.0)).all(), result.reward
    assert not result.terminated.any() and not result.time_out.any()


def test_falling_terminates_and_the_motion_end_times_out(walker_reference):
    env = MotionTrackingEnv(walker_reference, 2, episode_frames=1000)
    last = env.num_frames - 2
    env.reset_envs(np.arange(2), np.array([10, last]))
    data = env.datas[0]
    data.qpos[1] -= 0.5  # drop the torso half a metre below the reference
    env.mujoco.mj_kinematics(env.model, data)
    result = env.step(np.zeros((2, env.action_size)))
    assert result.terminated[0] and not result.time_out[0]
    assert result.time_out[1] and not result.terminated[1]


def test_episode_length_times_out(walker_reference):
    env = MotionTrackingEnv(walker_reference, 1, episode_frames=3)
    env.reset_envs(np.arange(1), np.array([0]))
    flags = [env.step(np.zeros((1, env.action_size))).time_out[0] for _ in range(3)]
    assert flags == [False, False, True]


def test_bad_inputs_are_named(walker_reference):
    env = MotionTrackingEnv(walker_reference, 2, episode_frames=10)
    with pytest.raises(ValueError, match="actions must have shape"):
        env.step(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="start frames must lie"):
        env.reset_envs(np.arange(1), np.array([env.num_frames]))


def test_vector_env_starts_where_the_command_says(walker_reference):
    env = MotionTrackingEnv(walker_reference, 6, episode_frames=5)
    command = MotionCommandSampler(env.num_frames, env.control_rate, 6, "official", seed=0)
    vec = TimelineVecEnv(env, command)
    obs, _ = vec.reset()
    assert obs.shape == (6, env.observation_size)
    assert np.array_equal(env.frames, command.time_steps.numpy())
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(12):
        obs, _, terminated, truncated, info = vec.step(rng.normal(size=(6, env.action_size)))
        assert np.array_equal(env.frames, command.time_steps.numpy())
        done = terminated | truncated
        if done.any():
            ended += int(done.sum())
            assert np.array_equal(info["_final_obs"], done)
            assert info["episode"]["l"].max() <= 5
    assert ended >= 6, "every episode lasts at most 5 steps"
    assert command.sampler.starts.sum() == 6 + ended


def _timeline_vec(reference, num_envs: int) -> TimelineVecEnv:
    """A walker vec env with 4-frame episodes, so episodes end and restart inside a few steps."""
    env = MotionTrackingEnv(reference, num_envs, episode_frames=4)
    command = MotionCommandSampler(env.num_frames, env.control_rate, num_envs, "official", seed=0)
    return TimelineVecEnv(env, command)


def _play(vec: TimelineVecEnv, actions: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Step through ``actions`` (steps, num_envs, action_size); every step's results, as arrays."""
    record = []
    for action in actions:
        obs, reward, terminated, time_out, info = vec.step(action)
        episode = info.get("episode", {"r": np.zeros(0), "l": np.zeros(0, dtype=np.int64)})
        record.append(
            {
                "obs": obs,
                "reward": reward,
                "terminated": terminated,
                "time_out": time_out,
                "frame": info["frame"],
                "final_obs": info.get("final_obs", np.zeros(0, dtype=np.float32)),
                "episode_return": episode["r"],
                "episode_length": episode["l"],
            }
        )
    return record


def _assert_same_state(a, b, where: str = "state") -> None:
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_resume_continues_exactly(walker_reference, tmp_path):
    num_envs, warmup, steps = 6, 9, 12
    # large random actions (clamped as in training) make walkers fall as well as time out
    actions = np.clip(5.0 * np.random.default_rng(0).normal(size=(warmup + steps, num_envs, 6)), -5.0, 5.0)
    vec = _timeline_vec(walker_reference, num_envs)
    vec.reset()
    before = _play(vec, actions[:warmup])
    state = vec.state_dict()
    torch.save(state, tmp_path / "vec.pt")
    last_obs = before[-1]["obs"]
    after = _play(vec, actions[warmup:])
    for record in (before, after):
        assert any(r["terminated"].any() for r in record), "some episodes must fail before and after the checkpoint"
        assert any(r["time_out"].any() for r in record), "some episodes must time out before and after it"
    assert vec.env.elapsed.any(), "the checkpoint must fall inside running episodes"
    _assert_same_state(state, torch.load(tmp_path / "vec.pt", weights_only=True))  # a snapshot, not a view

    for loaded in (state, torch.load(tmp_path / "vec.pt", weights_only=True)):
        resumed = _timeline_vec(walker_reference, num_envs)
        resumed.load_state_dict(loaded)
        np.testing.assert_array_equal(resumed.env.observations(), last_obs)
        replay = _play(resumed, actions[warmup:])
        for step, (mine, theirs) in enumerate(zip(replay, after, strict=True)):
            for name in theirs:
                np.testing.assert_array_equal(mine[name], theirs[name], err_msg=f"{name} differs at step {step}")
        np.testing.assert_array_equal(resumed.command.time_steps.numpy(), vec.command.time_steps.numpy())


def test_env_state_continues_exactly_in_contact(walker_reference):
    # 30 steps of mild actions keep the walkers on their feet, so the contact solver's warm start
    # is live at the checkpoint: restoring qpos and qvel alone would drift in the last bits
    env = MotionTrackingEnv(walker_reference, 3, episode_frames=1000)
    env.reset_envs(np.arange(3), np.array([0, 150, 300]))
    actions = 0.3 * np.random.default_rng(1).normal(size=(50, 3, env.action_size))
    for action in actions[:30]:
        env.step(action)
    assert all(data.ncon > 0 for data in env.datas)
    fresh = MotionTrackingEnv(walker_reference, 3, episode_frames=1000)
    fresh.load_state_dict(env.state_dict())
    for name in ("qpos", "qvel", "body_pos", "anchor_pos", "anchor_rot", "frames", "elapsed"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(env, name), err_msg=name)
    assert [data.time for data in fresh.datas] == [data.time for data in env.datas]
    for step, action in enumerate(actions[30:]):
        mine, theirs = fresh.step(action), env.step(action)
        for name in ("reward", "terminated", "time_out", "frames"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name), err_msg=f"{name}, step {step}")
        np.testing.assert_array_equal(fresh.observations(), env.observations(), err_msg=f"obs, step {step}")
    assert not theirs.terminated.any()


def test_loading_another_num_envs_or_robot_is_named(walker_reference):
    state = _timeline_vec(walker_reference, 3).state_dict()
    with pytest.raises(ValueError, match="num_envs 3 \\(this env: 4\\)"):
        _timeline_vec(walker_reference, 4).load_state_dict(state)
    with pytest.raises(ValueError, match="num_envs 3 \\(this env: 2\\)"):
        MotionTrackingEnv(walker_reference, 2, episode_frames=4).load_state_dict(state["env"])
    with pytest.raises(ValueError, match="robot 'humanoid' \\(this env: 'walker2d'\\)"):
        MotionTrackingEnv(walker_reference, 3, episode_frames=4).load_state_dict({**state["env"], "robot": "humanoid"})
