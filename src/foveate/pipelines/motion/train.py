"""``foveate motion train``: PPO on the MuJoCo tracking testbed with adaptive start frames.

A run lives in ``runs/motion/<name>/``: ``config.yaml``, ``reference.npz``, ``checkpoints/``
(atomic, resumable), ``tb/``, ``stats.jsonl``, ``error_sampling_stats.json`` (the engine's
stats at every evaluation) and ``report/``. Every ``eval_every``
iterations the deterministic policy is evaluated from the start of every bin (success: it
plays the bin without a termination) and from frame 0 through the whole motion; the first
evaluation that completes the whole motion gives ``iterations_to_complete``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foveate.data.timeline import FORMS, MotionCommandSampler, Timeline
from foveate.train.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    capture_rng,
    load_checkpoint,
    resolve_checkpoint,
    restore_rng,
)
from foveate.train.config import check_resume_compatible, config_to_dict, save_config_yaml
from foveate.train.runlog import RunLog

from .env import MotionTrackingEnv
from .ppo import PPO, ActorCritic, PPOConfig, Rollout
from .reference import ReferenceMotion, describe, generate_reference, load_reference
from .robots import ROBOTS
from .vec_env import TimelineVecEnv

__all__ = ["MotionConfig", "SamplingArgs", "evaluate", "run_name", "train"]

RESUME_EXEMPT = frozenset({"iterations", "max_minutes", "resume", "tensorboard", "threads", "eval_every",
                           "checkpoint_every", "stop_when_complete"})


@dataclass
class SamplingArgs:
    """Overrides of the engine's ``failure_bins`` arguments (None: the form's default)."""

    kernel_size: int | None = None
    kernel_decay: float | None = None
    uniform_ratio: float | None = None
    alpha: float | None = None


@dataclass
class MotionConfig:
    """One training run of a tracking policy.

    Attributes:
        robot: ``humanoid`` or ``walker2d`` (gymnasium's bundled models).
        form: start-frame sampling: ``uniform``, ``paper`` or ``official``.
        name: run directory name under ``out`` (default ``<robot>-<form>-s<seed>``).
        num_envs, steps_per_env: one PPO iteration collects ``num_envs * steps_per_env`` steps.
        iterations: the most PPO iterations; ``max_minutes`` also stops the run.
        episode_seconds: the fixed episode length (BeyondMimic: 10 s).
        eval_every: iterations between evaluations (per-bin success, whole-motion completion).
        stop_when_complete: stop at the first evaluation that completes the whole motion.
        reference: a reference ``.npz``; None generates the robot's scripted reference.
        resume: a checkpoint, run directory, or ``latest`` (this run's latest checkpoint).
        threads: torch CPU threads (1 suits parallel seeds).
    """

    robot: str = "humanoid"
    form: str = "official"
    seed: int = 0
    name: str | None = None
    out: Path = Path("runs/motion")
    num_envs: int = 32
    steps_per_env: int = 24
    iterations: int = 500
    max_minutes: float | None = None
    episode_seconds: float = 10.0
    bin_seconds: float = 1.0
    eval_every: int = 10
    checkpoint_every: int = 25
    stop_when_complete: bool = True
    reference: Path | None = None
    resume: str | None = None
    tensorboard: bool = True
    threads: int = 1
    ppo: PPOConfig = field(default_factory=PPOConfig)
    sampling: SamplingArgs = field(default_factory=SamplingArgs)

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"robot must be one of {sorted(ROBOTS)}, got {self.robot!r}")
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        for name in ("num_envs", "steps_per_env", "iterations", "eval_every", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def run_name(config: MotionConfig) -> str:
    return config.name or f"{config.robot}-{config.form}-s{config.seed}"


def evaluate(policy: ActorCritic, env: MotionTrackingEnv, timeline: Timeline) -> dict[str, Any]:
    """Deterministic rollouts: one from each bin's first frame through that bin, one through the motion.

    ``env`` must hold ``timeline.num_bins + 1`` environments with no episode limit.
    """
    bins = timeline.num_bins
    starts = np.append(timeline.bin_starts().numpy(), 0)
    budget = np.append(timeline.bin_lengths().numpy(), timeline.num_frames - 1)
    env.reset_envs(np.arange(bins + 1), starts)
    active = np.ones(bins + 1, dtype=bool)
    failed = np.zeros(bins + 1, dtype=bool)
    played = np.zeros(bins + 1, dtype=np.int64)
    while active.any():
        obs = torch.from_numpy(env.observations())
        actions = policy.act(obs, deterministic=True).actions.numpy()
        result = env.step(actions, active=active)
        played += active
        failed |= active & result.terminated
        active &= ~result.terminated & (played < budget) & (env.frames < timeline.num_frames - 1)
    return {
        "success_per_bin": (~failed[:bins]).astype(float).tolist(),
        "completed": bool(not failed[bins] and played[bins] >= budget[bins]),
        "fraction_played": float(played[bins] / budget[bins]),
    }


class _Run:
    """The state of one training run, and its checkpoint."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self.dir = Path(config.out) / run_name(config)
        torch.set_num_threads(config.threads)
        self.reference = self._reference()
        reference = self.reference
        control_rate = reference.control_rate
        episode_frames = max(1, round(config.episode_seconds * control_rate))
        self.env = MotionTrackingEnv(reference, config.num_envs, episode_frames)
        sampling = {k: v for k, v in dataclasses.asdict(config.sampling).items() if v is not None}
        self.command = MotionCommandSampler(
            reference.num_frames, control_rate, config.num_envs, config.form,
            bin_seconds=config.bin_seconds, seed=config.seed, **sampling,
        )
        self.timeline = self.command.timeline
        self.vec = TimelineVecEnv(self.env, self.command)
        self.eval_env = MotionTrackingEnv(reference, self.timeline.num_bins + 1, episode_frames=10**9)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        self.policy = ActorCritic(self.env.observation_size, self.env.action_size, config.ppo)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.ppo = PPO(self.policy, config.ppo, self.generator)
        self.iteration = 0
        self.env_steps = 0
        self.wall_seconds = 0.0
        self.completed_at: dict[str, int] | None = None

    def _reference(self) -> ReferenceMotion:
        config = self.config
        if config.reference is not None:
            reference = load_reference(config.reference)
            if reference.robot != config.robot:
                raise ValueError(f"{config.reference}: a {reference.robot} reference, but robot is {config.robot!r}")
            return reference
        path = self.dir / "reference.npz"
        if path.is_file():
            return load_reference(path)
        reference = generate_reference(config.robot)
        reference.save(path)
        return reference

    def save(self) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.config),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "wall_seconds": self.wall_seconds,
            "completed_at": self.completed_at,
            "policy": self.policy.state_dict(),
            "ppo": self.ppo.state_dict(),
            "command": self.command.state_dict(),
            "generator": self.generator.get_state(),
            "rng": capture_rng(),
        }
        directory = self.dir / "checkpoints"
        directory.mkdir(parents=True, exist_ok=True)
        atomic_save(state, directory / "latest.pt")

    def load(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_resume_compatible(state["config"], config_to_dict(self.config), path, RESUME_EXEMPT)
        self.policy.load_state_dict(state["policy"])
        self.ppo.load_state_dict(state["ppo"])
        self.command.load_state_dict(state["command"])
        self.generator.set_state(state["generator"])
        restore_rng(state["rng"])
        self.iteration, self.env_steps = int(state["iteration"]), int(state["env_steps"])
        self.wall_seconds = float(state["wall_seconds"])
        self.completed_at = state["completed_at"]


def train(config: MotionConfig) -> dict[str, Any]:
    """Train one policy; returns the run's summary (also written to ``report/summary.json``)."""
    resume = None
    if config.resume is not None:
        resume = resolve_checkpoint(config.resume, Path(config.out), run_name(config))
    run = _Run(config)
    if resume is not None:
        run.load(resume)
    run.dir.mkdir(parents=True, exist_ok=True)
    save_config_yaml(config, run.dir / "config.yaml")
    log = RunLog(run.dir, resume_step=run.iteration if resume is not None else None, tensorboard=config.tensorboard)
    c = config
    rollout = Rollout(c.steps_per_env, c.num_envs, run.env.observation_size, run.env.action_size)
    obs, _ = run.vec.reset()
    started = time.perf_counter() - run.wall_seconds
    try:
        while run.iteration < c.iterations:
            if c.max_minutes is not None and time.perf_counter() - started > 60.0 * c.max_minutes:
                break
            if c.stop_when_complete and run.completed_at is not None:
                break
            run.iteration += 1
            obs = _collect(run, rollout, obs, log)
            last_values = run.policy.value(torch.from_numpy(obs)).detach()
            metrics = run.ppo.update(rollout, last_values)
            run.policy.norm.update(rollout.obs.flatten(0, 1))
            run.wall_seconds = time.perf_counter() - started
            metrics.update(env_steps=run.env_steps, wall_seconds=run.wall_seconds)
            log.scalars(run.iteration, "ppo", metrics)
            sampling = run.command.stats()
            log.scalars(run.iteration, "sampling", sampling)
            if run.iteration % c.eval_every == 0 or run.iteration == c.iterations:
                result = evaluate(run.policy, run.eval_env, run.timeline)
                log.scalars(run.iteration, "eval", {**result, "env_steps": run.env_steps,
                                                    "success_rate": float(np.mean(result["success_per_bin"]))})
                if result["completed"] and run.completed_at is None:
                    run.completed_at = {"iterations": run.iteration, "env_steps": run.env_steps}
                engine = run.command.sampler.sampler
                stats = engine.stats()
                stats["control_steps"] = stats.pop("step")  # the log's step is the PPO iteration
                log.sampler_stats(run.iteration, stats, engine.config)
            if run.iteration % c.checkpoint_every == 0 or run.completed_at is not None:
                run.save()
    finally:
        run.save()
        log.close()
    summary = _summary(run)
    report_dir = run.dir / "report"
    report_dir.mkdir(exist_ok=True)
    _write_json(report_dir / "summary.json", summary)
    return summary


def _collect(run: _Run, rollout: Rollout, obs: np.ndarray, log: RunLog) -> np.ndarray:
    """One rollout of ``steps_per_env`` steps; time-outs bootstrap the value of their final state."""
    gamma = run.config.ppo.gamma
    rollout.index = 0
    rewards, lengths, failed = [], [], []
    std = run.policy.log_std.exp().detach()
    for _ in range(run.config.steps_per_env):
        observation = torch.from_numpy(obs)
        act = run.policy.act(observation)
        obs, reward, terminated, time_out, info = run.vec.step(act.actions.clamp(-5.0, 5.0).numpy())
        reward = torch.from_numpy(reward)
        if time_out.any():
            final = torch.from_numpy(info["final_obs"][time_out])
            reward[torch.from_numpy(time_out)] += gamma * run.policy.value(final).detach()
        done = torch.from_numpy(terminated | time_out).float()
        rollout.add(observation, act, std, reward, done)
        if "episode" in info:
            rewards.extend(info["episode"]["r"].tolist())
            lengths.extend(info["episode"]["l"].tolist())
            failed.extend(info["episode"]["failed"].tolist())
    run.env_steps += run.config.steps_per_env * run.config.num_envs
    values = {"mean_step_reward": float(rollout.rewards.mean())}
    if lengths:
        values.update(episodes=len(lengths), episode_length=float(np.mean(lengths)),
                      episode_return=float(np.mean(rewards)), failure_fraction=float(np.mean(failed)))
    log.scalars(run.iteration, "rollout", values)
    return obs


def _summary(run: _Run) -> dict[str, Any]:
    completed = run.completed_at
    return {
        "name": run_name(run.config),
        "robot": run.config.robot,
        "form": run.config.form,
        "seed": run.config.seed,
        "iterations": run.iteration,
        "env_steps": run.env_steps,
        "wall_seconds": run.wall_seconds,
        "iterations_to_complete": completed["iterations"] if completed else None,
        "env_steps_to_complete": completed["env_steps"] if completed else None,
        "timeline": {"bins": run.timeline.num_bins, "frames_per_bin": run.timeline.frames_per_bin,
                     "frames": run.timeline.num_frames, "control_rate": run.timeline.control_rate},
        "reference": describe(run.reference, run.config.bin_seconds),
        "starts_per_bin": run.command.sampler.starts.tolist(),
        "frames_per_bin_played": run.command.sampler.frames_played.tolist(),
        "failures_per_bin": run.command.sampler.failures.tolist(),
    }


def _write_json(path: Path, data: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1, default=_plain))
    os.replace(temporary, path)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot serialise {type(value).__name__}")
