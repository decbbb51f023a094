"""A synthetic stand-in for a motion-tracking policy: per-bin failure that falls with practice.

No physics and no network: each bin of the timeline has a probability of failing while
playing it, which decays with the number of frames played there (summed over environments).
It reproduces what adaptive start sampling acts on (hard bins, episodes that fail before
reaching later bins, a fixed episode length) in milliseconds, for tests and for choosing defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from foveate.data.timeline import Timeline, TimelineSampler

__all__ = ["DifficultyProfile", "SimulationResult", "SyntheticTrackingEnv", "simulate"]


@dataclass
class DifficultyProfile:
    """Per-bin difficulty.

    Args:
        initial_failure: (bins,) probability of failing while playing a whole bin, before practice.
        practice_frames: (bins,) frames of practice in a bin that divide its failure by e.
    """

    initial_failure: torch.Tensor
    practice_frames: torch.Tensor

    def __post_init__(self) -> None:
        if self.initial_failure.shape != self.practice_frames.shape or self.initial_failure.ndim != 1:
            raise ValueError("initial_failure and practice_frames must be 1-D tensors of the same length")
        if bool(((self.initial_failure < 0) | (self.initial_failure >= 1)).any()):
            raise ValueError("initial_failure must lie in [0, 1)")
        if bool((self.practice_frames <= 0).any()):
            raise ValueError("practice_frames must be > 0")

    @classmethod
    def with_hard_bins(
        cls,
        num_bins: int,
        hard_bins: tuple[int, ...],
        *,
        easy: tuple[float, float] = (0.05, 500.0),
        hard: tuple[float, float] = (0.9, 4_000.0),
    ) -> DifficultyProfile:
        """Easy bins everywhere except ``hard_bins``; each pair is (initial_failure, practice_frames)."""
        if any(not 0 <= b < num_bins for b in hard_bins):
            raise ValueError(f"hard_bins must lie in [0, {num_bins}), got {hard_bins}")
        failure = torch.full((num_bins,), easy[0], dtype=torch.float64)
        practice = torch.full((num_bins,), easy[1], dtype=torch.float64)
        index = torch.tensor(hard_bins, dtype=torch.long)
        failure[index], practice[index] = hard
        return cls(failure, practice)


class SyntheticTrackingEnv:
    """``num_envs`` simulated episodes on a timeline; failures drawn from the current competence.

    Follows the same protocol as the MuJoCo tracking env: ``frames``, ``reset_envs(ids, frames)``
    and ``step()`` returning ``(terminated, time_out)`` for the frame just tracked.
    """

    def __init__(
        self,
        timeline: Timeline,
        num_envs: int,
        profile: DifficultyProfile,
        *,
        episode_frames: int,
        seed: int = 0,
    ) -> None:
        if profile.initial_failure.numel() != timeline.num_bins:
            raise ValueError(
                f"profile has {profile.initial_failure.numel()} bins, the timeline has {timeline.num_bins}"
            )
        self.timeline = timeline
        self.num_envs = num_envs
        self.profile = profile
        self.episode_frames = episode_frames
        self.generator = torch.Generator().manual_seed(seed)
        self.practice = torch.zeros(timeline.num_bins, dtype=torch.float64)
        self.frames = torch.zeros(num_envs, dtype=torch.long)
        self.elapsed = torch.zeros(num_envs, dtype=torch.long)

    def failure_per_bin(self) -> torch.Tensor:
        """Probability of failing while playing each whole bin, given the practice so far."""
        return self.profile.initial_failure * torch.exp(-self.practice / self.profile.practice_frames)

    def completion_probability(self) -> float:
        """Probability of playing the whole motion from frame 0 without a failure."""
        survive = torch.log1p(-self.failure_per_bin())
        lengths = self.timeline.bin_lengths().to(torch.float64) / self.timeline.frames_per_bin
        return math.exp(float((survive * lengths).sum()))

    def reset_envs(self, env_ids: torch.Tensor, start_frames: torch.Tensor) -> None:
        self.frames[env_ids] = start_frames
        self.elapsed[env_ids] = 0

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Play one frame in every env; practice accrues where frames are played."""
        self.frames = self.frames + 1
        self.elapsed = self.elapsed + 1
        bins = self.timeline.bin_of(self.frames)
        per_frame = -torch.expm1(torch.log1p(-self.failure_per_bin()) / self.timeline.frames_per_bin)
        terminated = torch.rand(self.num_envs, generator=self.generator, dtype=torch.float64) < per_frame[bins]
        self.practice += torch.bincount(bins, minlength=self.timeline.num_bins).to(torch.float64)
        time_out = (self.frames >= self.timeline.num_frames - 1) | (self.elapsed >= self.episode_frames)
        return terminated, time_out & ~terminated


@dataclass
class SimulationResult:
    """What one simulated training run did, per iteration."""

    form: str
    iterations_to_complete: int | None
    completion: list[float] = field(default_factory=list)
    failure_per_bin: list[list[float]] = field(default_factory=list)
    starts_per_bin: list[float] = field(default_factory=list)
    frames_per_bin: list[float] = field(default_factory=list)
    normalized_entropy: list[float] = field(default_factory=list)
    top1_probability: list[float] = field(default_factory=list)


def simulate(
    form: str,
    profile: DifficultyProfile,
    timeline: Timeline,
    *,
    num_envs: int = 64,
    steps_per_iteration: int = 24,
    iterations: int = 300,
    episode_frames: int | None = None,
    completion_threshold: float = 0.9,
    seed: int = 0,
    **failure_bins_args,
) -> SimulationResult:
    """Train the synthetic policy with start frames from ``form``; report when it completes the motion.

    ``iterations_to_complete`` is the first iteration after which the probability of playing
    the whole motion from frame 0 reaches ``completion_threshold`` (``None`` if never).
    """
    episode_frames = episode_frames or 10 * timeline.frames_per_bin
    env = SyntheticTrackingEnv(timeline, num_envs, profile, episode_frames=episode_frames, seed=seed)
    sampler = TimelineSampler(timeline, num_envs, form, seed=seed, **failure_bins_args)
    everyone = torch.arange(num_envs)
    env.reset_envs(everyone, sampler.draw(everyone))
    result = SimulationResult(form=form, iterations_to_complete=None)
    for iteration in range(1, iterations + 1):
        for _ in range(steps_per_iteration):
            terminated, time_out = env.step()
            sampler.observe(env.frames, terminated, time_out)
            done = torch.nonzero(terminated | time_out).flatten()
            if done.numel():
                env.reset_envs(done, sampler.draw(done))
        completion = env.completion_probability()
        stats = sampler.stats()
        result.completion.append(completion)
        result.failure_per_bin.append(env.failure_per_bin().tolist())
        result.normalized_entropy.append(stats["normalized_entropy"])
        result.top1_probability.append(stats["top1_probability"])
        if result.iterations_to_complete is None and completion >= completion_threshold:
            result.iterations_to_complete = iteration
    result.starts_per_bin = sampler.starts.tolist()
    result.frames_per_bin = sampler.frames_played.tolist()
    return result
