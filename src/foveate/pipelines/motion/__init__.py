"""Motion-tracking RL on MuJoCo with BeyondMimic's adaptive start sampling (seed 001).

A registered pipeline (``foveate train motion``, ``foveate compare motion``): PPO iterations are
its steps, the motion timeline's bins its units. Modules (MuJoCo and gymnasium come with
``pip install 'foveate[motion]'`` and are imported only when a task is built):

- ``config``: the config, its presets and the compared variants (uniform, paper, official);
- ``task``: the task (rollouts, PPO, evaluation per bin, export of the policy);
- ``robots``: gymnasium's humanoid and walker2d, their motors turned into PD position servos;
- ``reference``: scripted reference motions played through physics (reproducible, no mocap);
- ``env``: the batched tracking environment; ``vec_env``: its gymnasium vector env with
  start frames from :class:`foveate.data.timeline.MotionCommandSampler`;
- ``ppo``: a compact vectorised PPO;
- ``simulator``: a synthetic per-bin difficulty simulator for tests and defaults;
- ``commands``: the ``foveate motion ...`` commands.
"""

from __future__ import annotations

from ..registry import PipelineSpec, register_pipeline
from .config import PRESETS, VARIANTS, MotionConfig, preset
from .task import MotionTask

__all__ = ["PRESETS", "SPEC", "VARIANTS", "MotionConfig", "MotionTask", "preset"]


SPEC = register_pipeline(
    PipelineSpec(
        "motion",
        MotionConfig,
        MotionTask,
        PRESETS,
        "Track a reference motion with PPO on MuJoCo (BeyondMimic).",
        variants=VARIANTS,
        default_variants=3,
    )
)
