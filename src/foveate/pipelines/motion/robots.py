"""The MuJoCo models the tracking testbed runs on, and their conversion to joint position servos.

Both models ship with gymnasium (``gymnasium/envs/mujoco/assets``). Their torque motors are
replaced by PD position servos with the same torque limits (``kp * (target - q) - kd * qdot``,
clipped to the original ``gear * ctrlrange``), evaluated by MuJoCo at every physics substep, so
policy actions are joint targets as in BeyondMimic. The integrator changes from RK4 to
``implicitfast`` (MuJoCo's recommendation for damped actuators): at the same time step it
measured about 3x faster here; geometry, masses, joint ranges and torque limits are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["ROBOTS", "RobotSpec", "import_mujoco", "load_model"]


def import_mujoco():
    """Import mujoco, or say how to install it."""
    try:
        import mujoco
    except ImportError as error:
        raise ImportError("the motion pipeline needs MuJoCo: pip install 'foveate[motion]'") from error
    return mujoco


@dataclass(frozen=True)
class RobotSpec:
    """A bundled model and how the testbed uses it.

    Args:
        name: registry name.
        xml: file name inside gymnasium's MuJoCo assets.
        frame_skip: physics substeps per control step.
        root: ``"free"`` (6-DoF floating base) or ``"planar"`` (x, z, pitch slides/hinge).
        anchor: body whose height and orientation are tracked (BeyondMimic's anchor).
        end_effectors: bodies whose height errors terminate an episode.
        tracked_bodies: bodies whose root-relative positions enter the reward.
        stiffness_per_newton_meter: servo ``kp`` as a multiple of each joint's torque limit
            (``kp = limit * this``: the servo saturates at ``1 / this`` radians of error).
        damping_ratio: servo ``kd`` as a fraction of ``kp``.
        action_scale: radians of target offset per unit of action.
        height_limit, orientation_limit, end_effector_limit: termination thresholds on the anchor
            height error (m), anchor tilt error (rad) and any end effector's height error (m).
    """

    name: str
    xml: str
    frame_skip: int
    root: str
    anchor: str
    end_effectors: tuple[str, ...]
    tracked_bodies: tuple[str, ...]
    stiffness_per_newton_meter: float = 2.5
    damping_ratio: float = 0.05
    action_scale: float = 0.25
    height_limit: float = 0.25
    orientation_limit: float = 0.8
    end_effector_limit: float = 0.25

    @property
    def root_qpos(self) -> int:
        return 7 if self.root == "free" else 3

    @property
    def root_qvel(self) -> int:
        return 6 if self.root == "free" else 3


ROBOTS: dict[str, RobotSpec] = {
    "humanoid": RobotSpec(
        name="humanoid",
        xml="humanoid.xml",
        frame_skip=5,
        root="free",
        anchor="torso",
        end_effectors=("right_foot", "left_foot", "right_lower_arm", "left_lower_arm"),
        tracked_bodies=(
            "pelvis",
            "right_thigh",
            "right_shin",
            "right_foot",
            "left_thigh",
            "left_shin",
            "left_foot",
            "right_upper_arm",
            "right_lower_arm",
            "left_upper_arm",
            "left_lower_arm",
        ),
    ),
    "walker2d": RobotSpec(
        name="walker2d",
        xml="walker2d_v5.xml",
        frame_skip=10,
        root="planar",
        anchor="torso",
        end_effectors=("foot", "foot_left"),
        tracked_bodies=("thigh", "leg", "foot", "thigh_left", "leg_left", "foot_left"),
        height_limit=0.2,
        orientation_limit=0.6,
        end_effector_limit=0.2,
    ),
}


def load_model(spec: RobotSpec):
    """The spec's MjModel with its motors turned into clipped PD position servos."""
    mujoco = import_mujoco()
    try:
        assets = resources.files("gymnasium.envs.mujoco") / "assets"
    except ModuleNotFoundError as error:
        raise ImportError("the motion pipeline needs gymnasium: pip install 'foveate[motion]'") from error
    path = assets / spec.xml
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: gymnasium no longer bundles {spec.xml!r}")
    model = mujoco.MjModel.from_xml_path(str(path))
    model.opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    joint_ids = model.actuator_trnid[:, 0]
    torque_limit = model.actuator_gear[:, 0] * np.abs(model.actuator_ctrlrange).max(axis=1)
    kp = spec.stiffness_per_newton_meter * torque_limit
    kd = spec.damping_ratio * kp
    model.actuator_gaintype[:] = mujoco.mjtGain.mjGAIN_FIXED
    model.actuator_biastype[:] = mujoco.mjtBias.mjBIAS_AFFINE
    model.actuator_gainprm[:] = 0.0
    model.actuator_biasprm[:] = 0.0
    model.actuator_gainprm[:, 0] = kp
    model.actuator_biasprm[:, 1] = -kp
    model.actuator_biasprm[:, 2] = -kd
    model.actuator_gear[:] = 0.0
    model.actuator_gear[:, 0] = 1.0
    model.actuator_ctrlrange[:] = model.jnt_range[joint_ids]
    model.actuator_ctrllimited[:] = 1
    model.actuator_forcerange[:, 0] = -torque_limit
    model.actuator_forcerange[:, 1] = torque_limit
    model.actuator_forcelimited[:] = 1
    return model
