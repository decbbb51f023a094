"""The motion-tracking config and presets (no MuJoCo needed to read them)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from foveate.train import OptimConfig, Preset, SamplingConfig, TrainConfig, apply_changes

from .ppo import PPOConfig

__all__ = ["PRESETS", "VARIANTS", "MotionConfig", "preset"]


@dataclass
class MotionConfig:
    """Train a policy with PPO to track a reference motion on MuJoCo; episodes start where the policy fails.

    One training step is one PPO iteration: batch_size environment steps (num_envs environments
    for batch_size / num_envs control steps), then the policy update. The units the sampler draws
    are the timeline's bins (the start of each new episode): failure_bins is BeyondMimic's
    adaptive sampling, in its released form (official) or its paper's (paper).
    """

    robot: Literal["humanoid", "walker2d"] = "humanoid"
    """gymnasium's humanoid or walker2d model, its motors turned into PD servos."""
    reference: Path | None = None
    """A reference motion (.npz from 'foveate motion reference'); none: the scripted one --script names."""
    script: Literal["humanoid", "walker2d", "walker2d-long"] | None = None
    """The scripted reference when --reference is not given (default: the robot's own;
    walker2d-long: 45 s of slow moves with four short hard ones)."""
    num_envs: int = 64
    """Environments stepped side by side; batch_size must be a multiple of it."""
    episode_seconds: float = 10.0
    """The longest episode (BeyondMimic: 10 s); it is cut (a time-out, not a failure) after this."""
    bin_seconds: float = 1.0
    """Width of the timeline's bins, the units the start frames are drawn from."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=500,
            batch_size=64 * 24,
            log_every=1,
            validate_every=10,
            checkpoint_every=25,
            sampler_stats_every=10,
            stop_at_target=True,
        )
    )
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(strategy="failure_bins", update_frequency=1, warmup_iterations=0)
    )
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, clip_grad_norm=1.0, schedule="none")
    )


VARIANTS = {
    "uniform": {"sampling__strategy": "uniform"},
    "paper": {"sampling__strategy": "failure_bins", "sampling__failure_bins__form": "paper"},
    "official": {"sampling__strategy": "failure_bins", "sampling__failure_bins__form": "official"},
}
"""What 'foveate compare motion' trains: uniform start frames (DeepMimic's reference-state
initialisation) against BeyondMimic's adaptive sampling in its two forms."""


def _preset(**changes: object) -> MotionConfig:
    return apply_changes(MotionConfig(), changes)


PRESETS: dict[str, Preset[MotionConfig]] = {
    "humanoid": Preset("gymnasium's humanoid, 64 environments, 24 control steps each per iteration", _preset()),
    "walker2d": Preset("gymnasium's walker2d (planar), 64 environments", _preset(robot="walker2d")),
    "walker2d-long": Preset(
        "walker2d on a 45 s reference whose hard moves are rare (4 of 46 bins); 2 s episodes, 64 environments",
        _preset(robot="walker2d", script="walker2d-long", episode_seconds=2.0, train__steps=1000),
    ),
    "tiny": Preset(
        "for tests and smoke runs: walker2d, 4 environments, 2 iterations",
        _preset(
            robot="walker2d",
            num_envs=4,
            ppo=PPOConfig(hidden=(32,), epochs=1, minibatches=2),
            train__steps=2,
            train__batch_size=4 * 8,
            train__validate_every=1,
            train__checkpoint_every=1,
            train__sampler_stats_every=1,
            train__stop_at_target=False,
        ),
    ),
}


def preset(name: str, **overrides: object) -> MotionConfig:
    """A copy of the named preset with ``section__field=value`` overrides applied."""
    return apply_changes(copy.deepcopy(PRESETS[name].config), overrides)
