"""A batched MuJoCo motion-tracking environment (DeepMimic-style rewards, BeyondMimic-style terminations).

``num_envs`` copies of a robot each track a :class:`~.reference.ReferenceMotion` from a start
frame chosen by the caller. Actions are joint-target offsets around the next reference pose
(``target = q_ref + action_scale * action``), executed by the model's PD servos. One control
step advances the reference by one frame.

Observations (float32): the reference phase; the anchor's height, tilt (gravity in the anchor
frame) and root velocity; joint positions and velocities; the next reference frame's joint
targets, joint velocities, anchor height and tilt; the joint-target error; tracked body
positions relative to the anchor (heading frame) minus the reference's.

Reward, in [0, 1]: ``0.65 exp(-2 |q - q_ref|^2) + 0.1 exp(-0.1 |qd - qd_ref|^2)
+ 0.15 exp(-40 mean|p_ee - p_ee_ref|^2) + 0.1 exp(-10 (dh^2 + |u - u_ref|^2))`` with end-effector
positions relative to the anchor (heading frame), ``dh`` the anchor height error and ``u`` its
up axis. An episode terminates (a failure) when the anchor height error, the anchor tilt error
or any end effector's height error passes the robot's limit, and is cut (a time-out, not a
failure) at the motion's last frame or after ``episode_frames`` frames.

``state_dict`` / ``load_state_dict`` checkpoint the environments so that a resumed run steps
on bit-exactly (MuJoCo's integration state of every MjData, and the frame counters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .reference import ReferenceMotion
from .robots import ROBOTS, import_mujoco, load_model

__all__ = ["MotionTrackingEnv", "StepResult"]

REWARD_WEIGHTS = (0.65, 0.1, 0.15, 0.1)
REWARD_SCALES = (2.0, 0.1, 40.0, 10.0)
STATE_VERSION = 1


@dataclass
class StepResult:
    """One control step for every environment (numpy arrays of length ``num_envs``)."""

    reward: np.ndarray
    terminated: np.ndarray
    time_out: np.ndarray
    frames: np.ndarray


class MotionTrackingEnv:
    """``num_envs`` MjData of one robot tracking one reference; stepping is a loop over MjData.

    ``benchmarks/motion_stepping.py`` (one thread): MuJoCo's batched ``rollout`` steps the bare
    physics 10-16% faster than this loop, and the loop's kinematics, state reads and rewards
    add only 3-5%. Seeds run as separate processes, so rollout's threads would not help here;
    the plain loop keeps per-environment resets and partial stepping simple.

    Args:
        reference: the motion to track.
        num_envs: number of environments.
        episode_frames: the longest episode, in control steps.
    """

    def __init__(self, reference: ReferenceMotion, num_envs: int, episode_frames: int) -> None:
        if reference.robot not in ROBOTS:
            raise ValueError(f"unknown robot {reference.robot!r}; known: {sorted(ROBOTS)}")
        if num_envs < 1 or episode_frames < 1:
            raise ValueError(f"num_envs and episode_frames must be >= 1, got {num_envs}, {episode_frames}")
        self.mujoco = mujoco = import_mujoco()
        self.spec = spec = ROBOTS[reference.robot]
        self.model = load_model(spec)
        model = self.model
        if reference.qpos.shape[1] != model.nq or reference.qvel.shape[1] != model.nv:
            raise ValueError(
                f"reference has qpos/qvel of width {reference.qpos.shape[1]}/{reference.qvel.shape[1]}, "
                f"the {spec.name} model has {model.nq}/{model.nv}"
            )
        control_rate = 1.0 / (model.opt.timestep * spec.frame_skip)
        if abs(control_rate - reference.control_rate) > 1e-6 * control_rate:
            raise ValueError(
                f"reference was recorded at {reference.control_rate} Hz, the env runs at {control_rate} Hz"
            )
        self.reference = reference
        self.num_envs = num_envs
        self.episode_frames = episode_frames
        self.num_frames = reference.num_frames
        self.control_rate = control_rate
        self.datas = [mujoco.MjData(model) for _ in range(num_envs)]
        self.joint_qpos = model.jnt_qposadr[model.actuator_trnid[:, 0]]
        self.joint_qvel = model.jnt_dofadr[model.actuator_trnid[:, 0]]
        self.anchor = model.body(spec.anchor).id
        self.bodies = np.array([model.body(b).id for b in spec.tracked_bodies])
        self.effectors = np.array([spec.tracked_bodies.index(b) for b in spec.end_effectors])
        self.action_size = model.nu
        self._reference_kinematics()
        self.frames = np.zeros(num_envs, dtype=np.int64)
        self.elapsed = np.zeros(num_envs, dtype=np.int64)
        self.qpos = np.zeros((num_envs, model.nq))
        self.qvel = np.zeros((num_envs, model.nv))
        self.body_pos = np.zeros((num_envs, len(self.bodies), 3))
        self.anchor_pos = np.zeros((num_envs, 3))
        self.anchor_rot = np.tile(np.eye(3), (num_envs, 1, 1))
        self.reset_envs(np.arange(num_envs), np.zeros(num_envs, dtype=np.int64))
        self.observation_size = self.observations().shape[1]

    def _reference_kinematics(self) -> None:
        """Anchor pose and tracked body positions of every reference frame, from its qpos."""
        mujoco, model = self.mujoco, self.model
        data = mujoco.MjData(model)
        frames = self.reference.num_frames
        self.ref_anchor_pos = np.zeros((frames, 3))
        self.ref_anchor_rot = np.zeros((frames, 3, 3))
        self.ref_body_pos = np.zeros((frames, len(self.bodies), 3))
        for f in range(frames):
            data.qpos[:] = self.reference.qpos[f]
            mujoco.mj_kinematics(model, data)
            self.ref_anchor_pos[f] = data.xpos[self.anchor]
            self.ref_anchor_rot[f] = data.xmat[self.anchor].reshape(3, 3)
            self.ref_body_pos[f] = data.xpos[self.bodies]
        self.ref_relative = _heading_relative(self.ref_body_pos, self.ref_anchor_pos, self.ref_anchor_rot)
        self.ref_root_velocity = _root_velocity(self.spec.root, self.reference.qvel, self.ref_anchor_rot)

    def _read(self, i: int) -> None:
        data = self.datas[i]
        self.qpos[i] = data.qpos
        self.qvel[i] = data.qvel
        self.body_pos[i] = data.xpos[self.bodies]
        self.anchor_pos[i] = data.xpos[self.anchor]
        self.anchor_rot[i] = data.xmat[self.anchor].reshape(3, 3)

    def reset_envs(self, env_ids: np.ndarray, start_frames: np.ndarray) -> None:
        """Put environments ``env_ids`` in the reference state of ``start_frames``."""
        mujoco, model = self.mujoco, self.model
        start_frames = np.asarray(start_frames, dtype=np.int64)
        if start_frames.size and (start_frames.min() < 0 or start_frames.max() >= self.num_frames - 1):
            raise ValueError(f"start frames must lie in [0, {self.num_frames - 1}), got {start_frames}")
        for i, frame in zip(np.asarray(env_ids).tolist(), start_frames.tolist(), strict=True):
            data = self.datas[i]
            mujoco.mj_resetData(model, data)
            data.qpos[:] = self.reference.qpos[frame]
            data.qvel[:] = self.reference.qvel[frame]
            mujoco.mj_kinematics(model, data)
            self._read(i)
        self.frames[env_ids] = start_frames
        self.elapsed[env_ids] = 0

    def state_dict(self) -> dict[str, Any]:
        """A snapshot from which a fresh env of the same robot, reference and size continues bit-exactly.

        ``physics`` is MuJoCo's integration state of every MjData (``mj_getState`` with
        ``mjSTATE_INTEGRATION``: time, qpos, qvel, act, warm-start accelerations, controls,
        applied forces, mocap poses, ...) as a float64 (num_envs, state_size) tensor; ``frames``
        and ``elapsed`` are the reference frame and episode length of each env. Values are
        torch tensors, ints and strings, so ``torch.load(..., weights_only=True)`` accepts it.
        The kinematics the observations read are recomputed on load.
        """
        mujoco, model = self.mujoco, self.model
        signature = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.zeros((self.num_envs, mujoco.mj_stateSize(model, signature)))
        for i, data in enumerate(self.datas):
            mujoco.mj_getState(model, data, physics[i], signature)
        return {
            "version": STATE_VERSION,
            "robot": self.spec.name,
            "num_frames": self.num_frames,
            "physics": torch.from_numpy(physics),
            "frames": torch.from_numpy(self.frames.copy()),
            "elapsed": torch.from_numpy(self.elapsed.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; raises ValueError naming every field that does not fit this env."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported env state version {state.get('version')!r}, expected {STATE_VERSION}")
        mujoco, model = self.mujoco, self.model
        signature = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.ascontiguousarray(torch.as_tensor(state["physics"]).cpu().numpy(), dtype=np.float64)
        if physics.ndim != 2:
            raise ValueError(f"physics must have shape (num_envs, state_size), got {physics.shape}")
        saved = {
            "robot": state["robot"],
            "num_envs": physics.shape[0],
            "num_frames": state["num_frames"],
            "state_size": physics.shape[1],
        }
        mine = {
            "robot": self.spec.name,
            "num_envs": self.num_envs,
            "num_frames": self.num_frames,
            "state_size": mujoco.mj_stateSize(model, signature),
        }
        differ = [f"{key} {saved[key]!r} (this env: {mine[key]!r})" for key in saved if saved[key] != mine[key]]
        if differ:
            raise ValueError(f"env state does not fit this env: {', '.join(differ)}")
        for i, data in enumerate(self.datas):
            mujoco.mj_setState(model, data, physics[i], signature)
            mujoco.mj_kinematics(model, data)
            self._read(i)
        self.frames = torch.as_tensor(state["frames"]).cpu().numpy().astype(np.int64)
        self.elapsed = torch.as_tensor(state["elapsed"]).cpu().numpy().astype(np.int64)

    def observations(self) -> np.ndarray:
        """(num_envs, observation_size) float32 observations of the current states."""
        target = np.minimum(self.frames + 1, self.num_frames - 1)
        ref_rot = self.ref_anchor_rot[target]
        joints = self.qpos[:, self.joint_qpos]
        ref_joints = self.reference.qpos[target][:, self.joint_qpos]
        relative = _heading_relative(self.body_pos, self.anchor_pos, self.anchor_rot)
        parts = [
            (self.frames / (self.num_frames - 1))[:, None],
            self.anchor_pos[:, 2:3],
            -self.anchor_rot[:, 2, :],
            _root_velocity(self.spec.root, self.qvel, self.anchor_rot),
            joints,
            0.1 * self.qvel[:, self.joint_qvel],
            ref_joints,
            0.1 * self.reference.qvel[target][:, self.joint_qvel],
            self.ref_anchor_pos[target, 2:3],
            -ref_rot[:, 2, :],
            ref_joints - joints,
            (self.ref_relative[target] - relative).reshape(self.num_envs, -1),
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> StepResult:
        """Apply ``actions`` (num_envs, action_size) for one control step.

        ``active`` (bool, num_envs) skips the physics of inactive environments (their results
        are meaningless); evaluation uses it to stop finished rollouts.
        """
        mujoco, model, spec = self.mujoco, self.model, self.spec
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.action_size):
            raise ValueError(f"actions must have shape {(self.num_envs, self.action_size)}, got {actions.shape}")
        self.frames = np.minimum(self.frames + 1, self.num_frames - 1)
        self.elapsed += 1
        targets = self.reference.qpos[self.frames][:, self.joint_qpos] + spec.action_scale * actions
        ids = range(self.num_envs) if active is None else np.flatnonzero(active).tolist()
        for i in ids:
            data = self.datas[i]
            data.ctrl[:] = targets[i]
            mujoco.mj_step(model, data, nstep=spec.frame_skip)
            mujoco.mj_kinematics(model, data)
            self._read(i)
        reward, failed = self._track(self.frames)
        time_out = (self.frames >= self.num_frames - 1) | (self.elapsed >= self.episode_frames)
        return StepResult(reward, failed, time_out & ~failed, self.frames.copy())

    def _track(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        spec = self.spec
        joint_error = self.qpos[:, self.joint_qpos] - self.reference.qpos[frames][:, self.joint_qpos]
        velocity_error = self.qvel[:, self.joint_qvel] - self.reference.qvel[frames][:, self.joint_qvel]
        relative = _heading_relative(self.body_pos, self.anchor_pos, self.anchor_rot)
        body_error = relative - self.ref_relative[frames]
        effector_error = body_error[:, self.effectors]
        height_error = self.anchor_pos[:, 2] - self.ref_anchor_pos[frames, 2]
        up, ref_up = self.anchor_rot[:, :, 2], self.ref_anchor_rot[frames][:, :, 2]
        tilt_error = up - ref_up
        terms = (
            np.square(joint_error).sum(1),
            np.square(velocity_error).sum(1),
            np.square(effector_error).sum(2).mean(1),
            np.square(height_error) + np.square(tilt_error).sum(1),
        )
        reward = sum(w * np.exp(-s * t) for w, s, t in zip(REWARD_WEIGHTS, REWARD_SCALES, terms, strict=True))
        tilt = np.arccos(np.clip((up * ref_up).sum(1), -1.0, 1.0))
        effector_height = np.abs(
            self.body_pos[:, self.effectors, 2] - self.ref_body_pos[frames][:, self.effectors, 2]
        ).max(1)
        unstable = ~np.isfinite(self.qpos).all(1)
        failed = (
            (np.abs(height_error) > spec.height_limit)
            | (tilt > spec.orientation_limit)
            | (effector_height > spec.end_effector_limit)
            | unstable
        )
        return np.where(unstable, 0.0, reward), failed


def _heading_relative(body_pos: np.ndarray, anchor_pos: np.ndarray, anchor_rot: np.ndarray) -> np.ndarray:
    """Body positions relative to the anchor, rotated into the anchor's heading (yaw) frame."""
    forward = anchor_rot[..., :, 0]
    yaw = np.arctan2(forward[..., 1], forward[..., 0])
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    d = body_pos - anchor_pos[..., None, :]
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]], axis=-1)


def _root_velocity(root: str, qvel: np.ndarray, anchor_rot: np.ndarray) -> np.ndarray:
    """Root linear velocity in the heading frame and angular velocity, scaled for the policy."""
    if root == "planar":
        return 0.5 * qvel[..., :3]
    forward = anchor_rot[..., :, 0]
    yaw = np.arctan2(forward[..., 1], forward[..., 0])
    c, s = np.cos(yaw), np.sin(yaw)
    v = qvel[..., :3]
    linear = np.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1], v[..., 2]], axis=-1)
    return 0.5 * np.concatenate([linear, qvel[..., 3:6]], axis=-1)
