"""A gymnasium vector env whose episodes start where the timeline sampler says.

:class:`TimelineVecEnv` wraps the batched MuJoCo tracker, or any env with its interface
(``num_envs``, ``num_frames``, ``observation_size``, ``action_size``, ``frames``,
``reset_envs(ids, start_frames)``, ``observations()``, and ``step(actions)`` returning rewards
and terminated / time-out flags), and resets finished episodes in the same step (gymnasium's
``SAME_STEP`` autoreset) at start frames drawn by a :class:`~foveate.data.timeline.MotionCommandSampler`.
Checkpointing (``state_dict`` / ``load_state_dict``) also needs the env's ``state_dict`` and
``load_state_dict``.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch

from foveate.data.timeline import MotionCommandSampler

from .env import MotionTrackingEnv

try:
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode, VectorEnv
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("the motion pipeline needs gymnasium: pip install 'foveate[motion]'") from error

__all__ = ["TimelineVecEnv"]

STATE_VERSION = 1


class TimelineVecEnv(VectorEnv):
    """Same-step autoreset vector env with adaptive start frames.

    ``step`` returns gymnasium's 5-tuple; ``info`` holds ``frame`` (the frame each env tracked),
    and for envs that finished in this step ``final_obs`` (dense, rows valid where ``_final_obs``)
    and ``episode`` (``r`` return, ``l`` length, ``failed``).

    Args:
        env: the batched env.
        command: the start-frame sampler, built for the same ``num_envs`` and ``num_frames``.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: MotionTrackingEnv, command: MotionCommandSampler) -> None:
        if command.time_steps.numel() != env.num_envs or command.timeline.num_frames != env.num_frames:
            raise ValueError(
                f"command is for {command.time_steps.numel()} envs and {command.timeline.num_frames} frames, "
                f"env has {env.num_envs} and {env.num_frames}"
            )
        self.env = env
        self.command = command
        self.num_envs = env.num_envs
        obs_size, act_size = env.observation_size, env.action_size
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_size,), np.float32)
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, (act_size,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_envs, obs_size), np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (self.num_envs, act_size), np.float32)
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        everyone = np.arange(self.num_envs)
        self.env.reset_envs(everyone, self.command.resample(torch.from_numpy(everyone)).numpy())
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self.env.observations(), {}

    def state_dict(self) -> dict[str, Any]:
        """A snapshot to continue bit-exactly: the env, the command sampler, the running returns and lengths.

        Values are torch tensors and plain Python values (``torch.load(..., weights_only=True)``
        accepts them); the command's state is deep-copied, so stepping on does not change it.
        After ``load_state_dict`` take the next observations from ``env.observations()``
        instead of calling ``reset``.
        """
        return {
            "version": STATE_VERSION,
            "env": self.env.state_dict(),
            "command": copy.deepcopy(self.command.state_dict()),
            "returns": torch.from_numpy(self._returns.copy()),
            "lengths": torch.from_numpy(self._lengths.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the env checks its part first and names what does not fit."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported vec env state version {state.get('version')!r}, expected {STATE_VERSION}")
        self.env.load_state_dict(state["env"])
        self.command.load_state_dict(state["command"])
        self._returns = torch.as_tensor(state["returns"]).cpu().numpy().astype(np.float64)
        self._lengths = torch.as_tensor(state["lengths"]).cpu().numpy().astype(np.int64)

    def step(self, actions):
        result = self.env.step(np.asarray(actions))
        terminated, time_out = result.terminated, result.time_out
        self.command.update(torch.from_numpy(terminated), torch.from_numpy(time_out))
        self._returns += result.reward
        self._lengths += 1
        done = np.flatnonzero(terminated | time_out)
        info: dict[str, Any] = {"frame": result.frames}
        if done.size:
            final = np.zeros((self.num_envs, self.env.observation_size), dtype=np.float32)
            final[done] = self.env.observations()[done]
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[done] = True
            info.update(
                final_obs=final,
                _final_obs=mask,
                episode={
                    "r": self._returns[done].copy(),
                    "l": self._lengths[done].copy(),
                    "failed": terminated[done].copy(),
                },
            )
            starts = self.command.resample(torch.from_numpy(done)).numpy()
            self.env.reset_envs(done, starts)
            self._returns[done] = 0.0
            self._lengths[done] = 0
        return self.env.observations(), result.reward.astype(np.float32), terminated, time_out, info
