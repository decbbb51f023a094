from __future__ import annotations

import numpy as np
import pytest

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
