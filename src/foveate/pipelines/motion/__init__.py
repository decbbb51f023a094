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

import torch

from ..registry import PipelineSpec, register_pipeline
from .config import PRESETS, VARIANTS, MotionConfig, preset
from .task import MotionTask

__all__ = ["PRESETS", "SPEC", "VARIANTS", "MotionConfig", "MotionTask", "build_task", "preset"]


def build_task(config: MotionConfig, device: torch.device) -> MotionTask:
    return MotionTask(config, device)


def run_name(config: MotionConfig) -> str:
    variant = config.sampling.strategy
    if variant == "failure_bins":
        variant = config.sampling.failure_bins.form
    return f"{config.robot}-{variant}-s{config.train.seed}"


SPEC = register_pipeline(
    PipelineSpec(
        name="motion",
        config_type=MotionConfig,
        task_type=MotionTask,
        presets=PRESETS,
        build_task=build_task,
        run_name=run_name,
        description="Track a reference motion with PPO on MuJoCo, starting episodes in the timeline bins that fail.",
        variants=VARIANTS,
        default_variants=3,
    )
)
