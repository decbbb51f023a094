"""The motion-tracking task: PPO iterations are its steps, the timeline's bins its units.

Each step collects a rollout from the batched MuJoCo tracker, whose finished episodes restart at
start frames drawn from the loop's sampler (through a
:class:`~foveate.data.timeline.MotionCommandSampler`, fed every control step), then updates the
policy with PPO. Every validation plays the deterministic policy from the first frame of every
bin through that bin (success per bin) and from frame 0 through the whole motion; the metric is
the share of the motion tracked from frame 0 before a failure, and the motion is complete (the
target) at 1.0. Nothing is drawn by the loop itself: the task draws when episodes reset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from foveate.data.timeline import MotionCommandSampler, Timeline
from foveate.files import atomic_write_json
from foveate.sampling import Draw, Sampler
from foveate.train import Metric, Optimization, StepOutput, Task, Validation, make_adam

from .config import MotionConfig
from .ppo import PPO, ActorCritic, Rollout
from .reference import ReferenceMotion, describe, generate_reference, load_reference

__all__ = ["MotionTask", "evaluate"]

ACTION_LIMIT = 5.0
"""Actions are clamped to this before they reach the servos."""


def evaluate(policy: ActorCritic, env: Any, timeline: Timeline) -> dict[str, Any]:
    """Deterministic rollouts: one from each bin's first frame through that bin, one through the motion.

    ``env`` must hold ``timeline.num_bins + 1`` environments with no episode limit. Returns the
    success of each bin, and ``completion``: the share of the motion tracked from frame 0 before
    the first failure (1.0 exactly when the whole motion is played without one).
    """
    bins = timeline.num_bins
    starts = np.append(timeline.bin_starts().numpy(), 0)
    budget = np.append(timeline.bin_lengths().numpy(), timeline.num_frames - 1)
    env.reset_envs(np.arange(bins + 1), starts)
    active = np.ones(bins + 1, dtype=bool)
    failed = np.zeros(bins + 1, dtype=bool)
    played = np.zeros(bins + 1, dtype=np.int64)
    while active.any():
        actions = policy.act(torch.from_numpy(env.observations()), deterministic=True).actions.numpy()
        result = env.step(actions, active=active)
        played += active
        failed |= active & result.terminated
        active &= ~result.terminated & (played < budget) & (env.frames < timeline.num_frames - 1)
    return {
        "success_per_bin": (~failed[:bins]).astype(np.float64),
        "completion": float((played[bins] - failed[bins]) / budget[bins]),
        "completed": float(not failed[bins] and played[bins] >= budget[bins]),
    }


class MotionTask(Task):
    """PPO on the MuJoCo tracking testbed with start frames drawn by the loop's sampler.

    Args:
        config: the pipeline's config.
        device: must be the CPU (MuJoCo and the small policy run there).
    """

    name = "motion"
    distributable = False
    metric = Metric("completion", True, "share of the motion tracked from frame 0", target=1.0)
    unit_noun = "bins"
    step_noun = "iterations"
    draws_units = False
    quick_validation = False

    def __init__(self, config: MotionConfig, device: torch.device) -> None:
        from .env import MotionTrackingEnv

        if device.type != "cpu":
            raise ValueError(f"the motion pipeline runs on the CPU (MuJoCo), not on {device}; pass --train.device cpu")
        if config.num_envs < 1 or config.train.batch_size % config.num_envs:
            raise ValueError(
                f"--batch-size (env steps per iteration, {config.train.batch_size}) must be a positive multiple of "
                f"--num-envs ({config.num_envs})"
            )
        self.config = config
        self.steps_per_env = config.train.batch_size // config.num_envs
        self.reference = self._reference(config)
        rate = self.reference.control_rate
        episode_frames = max(1, round(config.episode_seconds * rate))
        self.timeline = Timeline(self.reference.num_frames, rate, config.bin_seconds)
        self.env = MotionTrackingEnv(self.reference, config.num_envs, episode_frames)
        self.eval_env = MotionTrackingEnv(self.reference, self.timeline.num_bins + 1, episode_frames=10**9)
        self.unit_shape = self.timeline.num_bins
        seed = config.train.seed
        torch.manual_seed(seed)  # the policy's initialisation depends on the seed alone
        self.model = ActorCritic(self.env.observation_size, self.env.action_size, config.ppo)
        self.generator = torch.Generator().manual_seed(seed)
        self.env_steps = 0

    @classmethod
    def from_config(cls, config: MotionConfig, device: torch.device) -> MotionTask:
        return cls(config, device)

    @classmethod
    def run_name(cls, config: MotionConfig) -> str:
        sampling = config.sampling
        variant = sampling.failure_bins.form if sampling.strategy == "failure_bins" else sampling.strategy
        return f"{config.robot}-{variant}-s{config.train.seed}"

    @staticmethod
    def _reference(config: MotionConfig) -> ReferenceMotion:
        if config.reference is None:
            return generate_reference(config.robot, script=config.script)
        if config.script is not None:
            raise ValueError("give --reference or --script, not both")
        reference = load_reference(config.reference)
        if reference.robot != config.robot:
            raise ValueError(f"{config.reference}: a {reference.robot} reference, but --robot is {config.robot!r}")
        return reference

    def describe(self) -> str:
        timeline = self.timeline
        return (
            f"{self.config.robot} tracking a {timeline.duration:.1f} s reference ({timeline.num_bins} bins of "
            f"{self.config.bin_seconds:g} s; {self.config.num_envs} envs x {self.steps_per_env} steps an iteration)"
        )

    def bind(self, sampler: Sampler) -> None:
        """Wire the loop's sampler into the start-frame command and the vector env, and reset it."""
        from .vec_env import TimelineVecEnv

        super().bind(sampler)
        command = MotionCommandSampler(
            self.reference.num_frames,
            self.reference.control_rate,
            self.config.num_envs,
            bin_seconds=self.config.bin_seconds,
            seed=self.config.train.seed,
            sampler=sampler,
        )
        self.vec = TimelineVecEnv(self.env, command)
        self.observations, _ = self.vec.reset()

    def configure_optimizers(self, config: Any, total_steps: int) -> None:
        optimizer = make_adam(self.model.parameters(), config)
        self.optimizers = {"policy": optimizer}
        self.schedulers = {}  # PPO adapts the learning rate to the KL divergence itself
        self.ppo = PPO(self.model, self.config.ppo, optimizer, self.generator)

    def training_step(self, batch: Draw | None, step: int, optimization: Optimization) -> StepOutput:
        """Collect ``batch_size`` env steps, update the policy with PPO, update the observation normaliser."""
        rollout, values = self._collect()
        last_values = self.model.value(torch.from_numpy(self.observations)).detach()
        metrics = self.ppo.update(rollout, last_values, optimization.minimize)
        self.model.norm.update(rollout.obs.flatten(0, 1))
        values.update({k: v for k, v in metrics.items() if k != "loss"}, env_steps=float(self.env_steps))
        return StepOutput(torch.tensor(metrics["loss"]), None, values)

    def _collect(self) -> tuple[Rollout, dict[str, float]]:
        """One rollout; time-outs bootstrap the value of their final state."""
        gamma = self.config.ppo.gamma
        rollout = Rollout(self.steps_per_env, self.config.num_envs, self.env.observation_size, self.env.action_size)
        rewards, lengths, failed = [], [], []
        std = self.model.log_std.exp().detach()
        observations = self.observations
        for _ in range(self.steps_per_env):
            observation = torch.from_numpy(observations)
            act = self.model.act(observation)
            actions = act.actions.clamp(-ACTION_LIMIT, ACTION_LIMIT).numpy()
            observations, reward, terminated, time_out, info = self.vec.step(actions)
            reward = torch.from_numpy(reward)
            if time_out.any():
                final = torch.from_numpy(info["final_obs"][time_out])
                reward[torch.from_numpy(time_out)] += gamma * self.model.value(final).detach()
            rollout.add(observation, act, std, reward, torch.from_numpy(terminated | time_out).float())
            if "episode" in info:
                rewards.extend(info["episode"]["r"].tolist())
                lengths.extend(info["episode"]["l"].tolist())
                failed.extend(info["episode"]["failed"].tolist())
        self.observations = observations
        self.env_steps += self.steps_per_env * self.config.num_envs
        values = {"mean_step_reward": float(rollout.rewards.mean())}
        if lengths:
            values.update(
                episodes=float(len(lengths)),
                episode_length=float(np.mean(lengths)),
                episode_return=float(np.mean(rewards)),
                failure_fraction=float(np.mean(failed)),
            )
        return rollout, values

    def validate(self, full: bool) -> Validation:
        """Success per bin and completion of the whole motion; the share of practice each bin got so far."""
        result = evaluate(self.model, self.eval_env, self.timeline)
        success = torch.from_numpy(result["success_per_bin"]).float()
        practice = self.vec.command.sampler.frames_played.float()
        metrics = {
            "completion": result["completion"],
            "completed": result["completed"],
            "success_rate": float(success.mean()),
            "env_steps": float(self.env_steps),
        }
        return Validation(metrics, maps={"success": success, "practice": practice / practice.sum().clamp(min=1.0)})

    def export(self, run_dir: Path) -> list[Path]:
        """The deterministic policy (an exported program, observations in, actions out), the reference,
        and where practice and failures fell per bin."""
        written = [run_dir / "policy.pt2", run_dir / "reference.npz", run_dir / "bins.json"]
        example = torch.from_numpy(self.observations[:2]).expand(2, -1).contiguous()
        batch = {0: torch.export.Dim("batch", min=1)}
        program = torch.export.export(_DeterministicPolicy(self.model).eval(), (example,), dynamic_shapes=(batch,))
        torch.export.save(program, written[0])
        self.reference.save(written[1])
        command = self.vec.command.sampler
        atomic_write_json(
            written[2],
            {
                "reference": describe(self.reference, self.config.bin_seconds),
                "env_steps": self.env_steps,
                "starts_per_bin": command.starts.tolist(),
                "frames_per_bin_played": command.frames_played.tolist(),
                "failures_per_bin": command.failures.tolist(),
            },
        )
        return written

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "ppo": self.ppo.state_dict(),
            "vec": self.vec.state_dict(),
            "env_steps": self.env_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ppo.load_state_dict(state["ppo"])
        self.vec.load_state_dict(state["vec"])
        self.observations = self.env.observations()
        self.env_steps = int(state["env_steps"])


class _DeterministicPolicy(torch.nn.Module):
    """The policy's mean action for raw observations (normaliser included), for deployment."""

    def __init__(self, policy: ActorCritic) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.policy.actor(self.policy.norm(observations)).clamp(-ACTION_LIMIT, ACTION_LIMIT)
