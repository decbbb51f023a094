"""Reference motions made by the model itself: scripted joint keyframes played through physics.

No motion capture ships offline, so a reference is produced reproducibly: joint-target
keyframes (a script, in degrees) are smoothly interpolated and tracked by the model's own
PD servos in MuJoCo (same torque limits as the policy), and the recorded states are the
simulated ones, so they are contact-consistent and within joint and torque limits.

What keeps the model upright while it plays the script:

- walker2d: a hand-tuned balance feedback on top of the script (ankles move the centre of
  mass over the feet in contact, hips hold the torso upright). No outside force acts, so the
  reference is physically feasible by construction: a policy exists that tracks it exactly.
- humanoid: its point-contact (sphere) feet defeated a simple balance feedback, so a harness
  (a PD wrench on the torso toward upright and a fixed horizontal position; heading free)
  helps it. The wrench is recorded per frame (``assist``): segments that needed much help may
  not be trackable without it.

The scripts contain hard segments (fast swings, single-leg balance) between easy ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foveate.data.timeline import Timeline

from .robots import ROBOTS, RobotSpec, import_mujoco, load_model

__all__ = ["SCRIPTS", "Keyframe", "ReferenceMotion", "generate_reference", "load_reference"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Keyframe:
    """Joint targets (degrees; unnamed joints keep their stand value) reached at ``time`` seconds."""

    time: float
    pose: dict[str, float] = field(default_factory=dict)
    segment: str = ""


def _humanoid_script() -> tuple[dict[str, float], list[Keyframe]]:
    stand = {"right_knee": -12, "left_knee": -12, "right_hip_y": -6, "left_hip_y": -6}
    arms_up = {"right_shoulder1": 40, "left_shoulder1": -40, "right_shoulder2": -40, "left_shoulder2": 40}
    squat = {"right_knee": -70, "left_knee": -70, "right_hip_y": -45, "left_hip_y": -45, "abdomen_y": 10}
    right_knee_up = {"right_hip_y": -80, "right_knee": -90, "abdomen_x": -8, "left_hip_x": -6}
    left_knee_up = {"left_hip_y": -80, "left_knee": -90, "abdomen_x": 8, "right_hip_x": -6}
    kick_front = {"right_hip_y": -75, "right_knee": -8, "left_knee": -20}
    kick_back = {"right_hip_y": 15, "right_knee": -40, "left_knee": -20}
    swing_a = {"right_shoulder1": 55, "left_shoulder1": -55, "right_elbow": -60, "left_elbow": -60}
    swing_b = {"right_shoulder1": -60, "left_shoulder1": 60, "right_elbow": 30, "left_elbow": 30}
    keys = [
        Keyframe(0.0, {}, "stand"),
        Keyframe(1.5, {}, "stand"),
        Keyframe(3.0, arms_up, "raise arms"),
        Keyframe(4.5, {}, "lower arms"),
        Keyframe(6.0, squat, "squat"),
        Keyframe(7.5, {}, "rise"),
        Keyframe(8.5, right_knee_up, "right knee up (single-leg balance)"),
        Keyframe(10.0, right_knee_up, "hold on the left leg"),
        Keyframe(10.8, {}, "stand"),
        Keyframe(11.5, {}, "stand"),
    ]
    t = 11.5
    for i in range(4):  # fast arm swings, 0.3 s per half-cycle
        t += 0.3
        keys.append(Keyframe(t, swing_a if i % 2 == 0 else swing_b, "fast arm swings"))
    keys += [Keyframe(t + 0.5, {}, "stand"), Keyframe(t + 1.2, {}, "stand")]
    t += 1.2
    for i in range(4):  # fast kicks, 0.35 s per half-cycle
        t += 0.35
        keys.append(Keyframe(t, kick_front if i % 2 == 0 else kick_back, "fast kicks"))
    keys += [Keyframe(t + 0.6, {}, "stand"), Keyframe(t + 1.4, left_knee_up, "left knee up")]
    t += 1.4
    keys += [Keyframe(t + 1.5, left_knee_up, "hold on the right leg"), Keyframe(t + 2.5, {}, "stand")]
    keys.append(Keyframe(t + 4.0, {}, "stand"))
    return stand, keys


def _walker_poses() -> dict[str, dict[str, float]]:
    # walker2d faces +x; thigh, knee and ankle joints are negative for extension / flexion.
    return {
        "stand": {"leg_joint": -8, "leg_left_joint": -8, "thigh_joint": -4, "thigh_left_joint": -4},
        "tiptoe": {"foot_joint": 25, "foot_left_joint": 25, "leg_joint": -4, "leg_left_joint": -4},
        "flamingo_right": {"leg_joint": -95, "thigh_joint": -20, "foot_joint": 10},
        "flamingo_left": {"leg_left_joint": -95, "thigh_left_joint": -20, "foot_left_joint": 10},
        "swing_back": {"thigh_joint": -70, "leg_joint": -30, "thigh_left_joint": -2},
        "swing_mid": {"thigh_joint": -10, "leg_joint": -60, "thigh_left_joint": -2},
        "crouch": {
            "thigh_joint": -2,
            "thigh_left_joint": -2,
            "leg_joint": -50,
            "leg_left_joint": -50,
            "foot_joint": 30,
            "foot_left_joint": 30,
        },
        "half_crouch": {"leg_joint": -30, "leg_left_joint": -30, "foot_joint": 15, "foot_left_joint": 15},
    }


def _walker_script() -> tuple[dict[str, float], list[Keyframe]]:
    poses = _walker_poses()
    keys = [
        Keyframe(0.0, {}, "stand"),
        Keyframe(1.5, {}, "stand"),
        Keyframe(3.0, poses["tiptoe"], "rise on the toes"),
        Keyframe(4.5, {}, "lower"),
        Keyframe(6.0, poses["crouch"], "crouch"),
        Keyframe(7.5, {}, "rise"),
        Keyframe(8.3, poses["flamingo_right"], "right knee up (single-leg balance)"),
        Keyframe(10.0, poses["flamingo_right"], "hold on the left leg"),
        Keyframe(10.8, {}, "stand"),
        Keyframe(11.8, {}, "stand"),
    ]
    t = 11.8
    for i in range(6):  # fast leg swings, 0.3 s per half-cycle
        t += 0.3
        keys.append(Keyframe(t, poses["swing_back"] if i % 2 == 0 else poses["swing_mid"], "fast leg swings"))
    keys += [Keyframe(t + 0.6, {}, "stand"), Keyframe(t + 1.4, poses["flamingo_left"], "left knee up")]
    t += 1.4
    keys += [Keyframe(t + 1.5, poses["flamingo_left"], "hold on the right leg"), Keyframe(t + 2.5, {}, "stand")]
    keys.append(Keyframe(t + 3.8, {}, "stand"))
    return poses["stand"], keys


def _walker_long_script() -> tuple[dict[str, float], list[Keyframe]]:
    """44 s of slow, easy moves with four short hard ones: rare hard segments (<= 10% of the bins).

    Each hard move (a fast leg swing, a quick knee lift) starts on a whole second and is back to
    standing within it, so it is confined to about one 1-second bin.
    """
    poses = _walker_poses()
    keys = [Keyframe(0.0, {}, "stand"), Keyframe(2.0, {}, "stand")]
    t = 2.0

    def easy(seconds: float) -> None:
        nonlocal t
        end = t + seconds
        cycle = ("tiptoe", "half_crouch")
        i = 0
        while t + 3.0 <= end:  # a slow pose and back, 1.5 s each way
            keys.append(Keyframe(t + 1.5, poses[cycle[i % 2]], "slow " + cycle[i % 2].replace("_", " ")))
            keys.append(Keyframe(t + 3.0, {}, "stand"))
            t += 3.0
            i += 1
        keys.append(Keyframe(end, {}, "stand"))
        t = end

    def swing() -> None:
        nonlocal t
        for i, offset in enumerate((0.25, 0.5)):
            keys.append(Keyframe(t + offset, poses["swing_back"] if i == 0 else poses["swing_mid"], "fast leg swing"))
        keys.append(Keyframe(t + 0.8, {}, "stand"))
        t += 0.8

    def knee(side: str) -> None:
        nonlocal t
        keys.append(Keyframe(t + 0.35, poses[f"flamingo_{side}"], f"quick {side} knee lift"))
        keys.append(Keyframe(t + 0.8, {}, "stand"))
        t += 0.8

    easy(8.0)  # to 10 s
    swing()
    easy(10.2)  # to 21 s
    knee("right")
    easy(10.2)  # to 32 s
    swing()
    easy(8.2)  # to 41 s
    knee("left")
    easy(3.2)  # to 45 s
    return poses["stand"], keys


SCRIPTS = {
    "humanoid": ("humanoid", _humanoid_script),
    "walker2d": ("walker2d", _walker_script),
    "walker2d-long": ("walker2d", _walker_long_script),
}
"""Scripted references by name: (robot, script). A robot's own script has the robot's name."""


@dataclass
class ReferenceMotion:
    """A reference trajectory at the control rate, with world positions of every body."""

    robot: str
    control_rate: float
    qpos: np.ndarray
    qvel: np.ndarray
    body_pos: np.ndarray
    assist: np.ndarray
    segments: list[tuple[float, str]]

    @property
    def num_frames(self) -> int:
        return int(self.qpos.shape[0])

    @property
    def duration(self) -> float:
        return (self.num_frames - 1) / self.control_rate

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` (arrays plus JSON metadata); written to a temp file, then renamed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "version": FORMAT_VERSION,
            "robot": self.robot,
            "control_rate": self.control_rate,
            "segments": self.segments,
        }
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp,
            qpos=self.qpos,
            qvel=self.qvel,
            body_pos=self.body_pos,
            assist=self.assist,
            meta=np.array(json.dumps(meta)),
        )
        tmp.replace(path)

    def assist_per_bin(self, bin_seconds: float = 1.0) -> list[float]:
        """Mean harness wrench magnitude in each bin of start frames (the bins of :class:`Timeline`)."""
        timeline = Timeline(self.num_frames, self.control_rate, bin_seconds)
        starts, lengths = timeline.bin_starts().tolist(), timeline.bin_lengths().tolist()
        return [float(self.assist[s : s + n].mean()) for s, n in zip(starts, lengths, strict=True)]


def load_reference(path: str | Path) -> ReferenceMotion:
    """Read a reference written by :meth:`ReferenceMotion.save`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference motion not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("qpos", "qvel", "body_pos", "assist", "meta")}
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: not a foveate reference motion ({error})") from error
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("version") != FORMAT_VERSION or meta.get("robot") not in ROBOTS:
        raise ValueError(f"{path}: unsupported reference (version {meta.get('version')}, robot {meta.get('robot')})")
    frames = arrays["qpos"].shape[0]
    if any(a.shape[0] != frames for a in arrays.values()) or frames < 2:
        raise ValueError(f"{path}: arrays disagree on the number of frames")
    segments = [(float(t), str(s)) for t, s in meta["segments"]]
    return ReferenceMotion(meta["robot"], float(meta["control_rate"]), segments=segments, **arrays)


def _smoothstep(x: float) -> float:
    return x * x * (3.0 - 2.0 * x)


def _targets(model, stand: dict[str, float], keys: list[Keyframe], t: float) -> np.ndarray:
    """Actuator targets (radians) at time ``t``: smoothstep between keyframes."""
    names = [model.joint(int(j)).name for j in model.actuator_trnid[:, 0]]

    def pose(k: Keyframe) -> np.ndarray:
        merged = {**stand, **k.pose}
        unknown = set(merged) - set(names)
        if unknown:
            raise ValueError(f"keyframe at {k.time}s names unknown joints {sorted(unknown)}")
        return np.radians([merged.get(n, 0.0) for n in names])

    if t >= keys[-1].time:
        return pose(keys[-1])
    i = next(i for i in range(len(keys) - 1) if keys[i + 1].time > t)
    a, b = keys[i], keys[i + 1]
    w = _smoothstep((t - a.time) / (b.time - a.time))
    return (1.0 - w) * pose(a) + w * pose(b)


HARNESS_GAINS = {"humanoid": (1000.0, 150.0, 1500.0, 100.0)}
"""Per harnessed robot: position gain (N/m), position damping, angle gain (N m/rad), angle damping."""


@dataclass(frozen=True)
class Balance:
    """Feedback added to the scripted targets of a planar robot's stance legs.

    Each foot's weight ramps from 1 on the ground to 0 at ``lift`` metres above its resting
    height; ankles get ``com_gain * (x_com - x_support) + velocity_gain * v_com`` and hips
    ``pitch_gain * pitch + pitch_rate_gain * pitch_rate`` (radians), scaled by the weight.
    """

    feet: tuple[str, ...]
    ankles: tuple[str, ...]
    hips: tuple[str, ...]
    com_gain: float
    velocity_gain: float
    pitch_gain: float
    pitch_rate_gain: float
    rest_height: float = 0.06
    lift: float = 0.04


BALANCE = {
    "walker2d": Balance(
        feet=("foot_geom", "foot_left_geom"),
        ankles=("foot_joint", "foot_left_joint"),
        hips=("thigh_joint", "thigh_left_joint"),
        com_gain=-8.0,
        velocity_gain=-1.0,
        pitch_gain=-2.5,
        pitch_rate_gain=-0.25,
    )
}


class _Balancer:
    def __init__(self, mujoco, model, balance: Balance, root_body: int) -> None:
        self.mujoco, self.model, self.balance, self.root = mujoco, model, balance, root_body
        actuated = [model.joint(int(j)).name for j in model.actuator_trnid[:, 0]]
        self.feet = np.array([model.geom(name).id for name in balance.feet])
        self.ankles = np.array([actuated.index(name) for name in balance.ankles])
        self.hips = np.array([actuated.index(name) for name in balance.hips])

    def targets(self, data, scripted: np.ndarray) -> np.ndarray:
        b = self.balance
        self.mujoco.mj_subtreeVel(self.model, data)
        com, com_velocity = data.subtree_com[self.root, 0], data.subtree_linvel[self.root, 0]
        feet = data.geom_xpos[self.feet]
        weight = np.clip((b.rest_height + b.lift - feet[:, 2]) / b.lift, 0.0, 1.0)
        if weight.sum() == 0.0:
            weight[:] = 1.0
        support = float((weight * feet[:, 0]).sum() / weight.sum())
        pitch, pitch_rate = data.qpos[2], data.qvel[2]
        targets = scripted.copy()
        targets[self.ankles] += weight * (b.com_gain * (com - support) + b.velocity_gain * com_velocity)
        targets[self.hips] += weight * (b.pitch_gain * pitch + b.pitch_rate_gain * pitch_rate)
        return targets


def _harness_wrench(mujoco, model, data, anchor: int, spec: RobotSpec, home: np.ndarray) -> np.ndarray:
    """World-frame force and torque pulling the anchor upright and over its home position."""
    position_gain, position_damping, angle_gain, angle_damping = HARNESS_GAINS[spec.name]
    conjugate, difference, error = np.zeros(4), np.zeros(4), np.zeros(3)
    mujoco.mju_negQuat(conjugate, data.xquat[anchor])
    mujoco.mju_mulQuat(difference, np.array([1.0, 0.0, 0.0, 0.0]), conjugate)
    if difference[0] < 0:  # the short way round
        difference = -difference
    mujoco.mju_quat2Vel(error, difference, 1.0)
    velocity = np.zeros(6)
    mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, anchor, velocity, 0)
    angular, linear = velocity[:3], velocity[3:]
    force = np.zeros(3)
    offset = home[:2] - data.xipos[anchor, :2]
    force[:2] = position_gain * offset - position_damping * linear[:2]
    torque = angle_gain * error - angle_damping * angular
    torque[2] = 0.0  # heading is free: only tilt is held
    if spec.root == "planar":
        force[1] = 0.0
        torque[0] = 0.0
    return np.concatenate([force, torque])


def generate_reference(robot: str, *, script: str | None = None, settle_seconds: float = 1.0) -> ReferenceMotion:
    """Play a script (the robot's own by default) through physics and record it at the control rate.

    Deterministic: the same script gives the same reference."""
    robots = sorted({name for name, _ in SCRIPTS.values()})
    if robot not in robots:
        raise ValueError(f"robot must be one of {robots}, got {robot!r}")
    script = robot if script is None else script
    if script not in SCRIPTS:
        raise ValueError(f"script must be one of {sorted(SCRIPTS)}, got {script!r}")
    if SCRIPTS[script][0] != robot:
        raise ValueError(f"script {script!r} is for the {SCRIPTS[script][0]}, not the {robot}")
    mujoco = import_mujoco()
    spec = ROBOTS[robot]
    model = load_model(spec)
    data = mujoco.MjData(model)
    stand, keys = SCRIPTS[script][1]()
    anchor = model.body(spec.anchor).id
    balancer = _Balancer(mujoco, model, BALANCE[robot], anchor) if robot in BALANCE else None
    dt = model.opt.timestep * spec.frame_skip
    rate = 1.0 / dt
    mujoco.mj_resetData(model, data)
    mujoco.mj_forward(model, data)
    home = data.xipos[anchor].copy()
    settle = round(settle_seconds * rate)
    frames = settle + round(keys[-1].time * rate) + 1
    qpos, qvel, body_pos, assist = [], [], [], []
    for frame in range(frames):
        t = max(0.0, (frame - settle) * dt)
        scripted = _targets(model, stand, keys, t)
        wrench_sum = 0.0
        if frame >= settle:
            mujoco.mj_kinematics(model, data)
            qpos.append(data.qpos.copy())
            qvel.append(data.qvel.copy())
            body_pos.append(data.xpos.copy())
        for _ in range(spec.frame_skip):
            mujoco.mj_forward(model, data)
            if balancer is not None:
                data.ctrl[:] = balancer.targets(data, scripted)
            else:
                data.ctrl[:] = scripted
                wrench = _harness_wrench(mujoco, model, data, anchor, spec, home)
                data.xfrc_applied[anchor] = wrench
                wrench_sum += float(np.linalg.norm(wrench))
            mujoco.mj_step(model, data)
        if frame >= settle:
            assist.append(wrench_sum / spec.frame_skip)
    fallen = np.asarray(body_pos)[:, anchor, 2] < 0.6 * home[2]
    if fallen.any():
        raise RuntimeError(
            f"the {script} script falls at {int(np.argmax(fallen)) / rate:.2f} s: its balance or harness fails"
        )
    segments = [(k.time, k.segment) for k in keys]
    return ReferenceMotion(
        robot=robot,
        control_rate=rate,
        qpos=np.asarray(qpos),
        qvel=np.asarray(qvel),
        body_pos=np.asarray(body_pos),
        assist=np.asarray(assist),
        segments=segments,
    )


def describe(reference: ReferenceMotion, bin_seconds: float = 1.0) -> dict[str, Any]:
    """A JSON summary: frames, duration, bins, the segments and the harness help per bin."""
    return {
        "robot": reference.robot,
        "frames": reference.num_frames,
        "control_rate": reference.control_rate,
        "duration_s": reference.duration,
        "bins": Timeline(reference.num_frames, reference.control_rate, bin_seconds).num_bins,
        "segments": [(round(t, 3), name) for t, name in reference.segments],
        "assist_per_bin": reference.assist_per_bin(bin_seconds),
    }
