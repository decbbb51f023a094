"""Start phases on a motion timeline, drawn where episodes fail (BeyondMimic, arXiv 2508.08241).

A reference motion of ``num_frames`` frames plays at the control rate. Episodes start at a
frame chosen by a :class:`TimelineSampler`: a bin of the timeline is drawn from the engine's
``failure_bins`` strategy (or uniformly), and the start is uniform inside it. Three forms:

- ``uniform``: every bin equally likely, so every start frame too (DeepMimic's reference-state
  initialisation);
- ``paper``: each finished episode is credited to the bin it STARTED in (failed 0/1);
- ``official``: every control step, failures are credited to the bin where they HAPPENED.

A failure is a termination; an episode cut by a time-out (or by the motion's end) is a success.

**The layout of the bins**, for every form, is the released code's (``MotionCommand`` in
``HybridRobotics/whole_body_tracking``): ``S = T // (bin_seconds * rate) + 1`` bins over the
timeline of ``T`` frames; a start is drawn as ``floor((bin + U(0, 1)) / S * (T - 1))``, so every bin
covers the same share of the start phases (no short last bin draws its frames more often, and
uniform bins give exactly uniform start frames); a failure at frame ``t`` is credited to bin
``min(t * S // T, S - 1)``.

:class:`MotionCommandSampler` wraps the same mechanism in the shape of IsaacLab's
``MotionCommand`` and works in either hook order (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from foveate.sampling import Sampler

__all__ = ["FORMS", "MotionCommandSampler", "Timeline", "TimelineSampler"]

FORMS = ("uniform", "paper", "official")


@dataclass(frozen=True)
class Timeline:
    """Frames of a reference motion and their bins, laid out as BeyondMimic's released code does.

    An episode may start at frames ``0 .. num_frames - 2`` (it needs a next frame to track).
    ``num_bins = num_frames // (bin_seconds * control_rate) + 1``; bin ``b`` holds the start
    phases ``[b, b + 1) / num_bins`` of the span ``[0, num_frames - 1)``.
    """

    num_frames: int
    control_rate: float
    bin_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.num_frames, int) or self.num_frames < 2:
            raise ValueError(f"num_frames must be an int >= 2, got {self.num_frames!r}")
        if not self.control_rate > 0:
            raise ValueError(f"control_rate must be > 0 (frames per second), got {self.control_rate!r}")
        if not self.bin_seconds > 0:
            raise ValueError(f"bin_seconds must be > 0, got {self.bin_seconds!r}")

    @property
    def num_bins(self) -> int:
        return int(self.num_frames // (self.bin_seconds * self.control_rate)) + 1

    @property
    def num_starts(self) -> int:
        return self.num_frames - 1

    @property
    def frames_per_bin(self) -> float:
        """Width of a bin in start frames: ``(T - 1) / S`` (at most ``bin_seconds * control_rate``)."""
        return self.num_starts / self.num_bins

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.control_rate

    def bin_of(self, frames: torch.Tensor) -> torch.Tensor:
        """The bin a failure at each frame is credited to (int64): ``min(t * S // T, S - 1)``."""
        bins = self.num_bins
        return torch.div(frames.long() * bins, self.num_frames, rounding_mode="floor").clamp(0, bins - 1)

    def start_frames(self, bins: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
        """Start frames (int64) of ``bins`` at ``phases`` in [0, 1): ``floor((bin + phase) / S * (T - 1))``."""
        return ((bins + phases) / self.num_bins * (self.num_frames - 1)).long()

    def bin_starts(self, device: torch.device | str | None = None) -> torch.Tensor:
        """First start frame of every bin (int64): the smallest ``t`` with ``t * S >= b * (T - 1)``."""
        span, bins = self.num_frames - 1, self.num_bins
        return torch.div(torch.arange(bins, device=device) * span + bins - 1, bins, rounding_mode="floor")

    def bin_lengths(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Number of start frames in every bin (int64): each bin's share of the ``T - 1`` starts, +-1 frame."""
        starts = self.bin_starts(device)
        return torch.diff(starts, append=torch.tensor([self.num_starts], device=starts.device))


class TimelineSampler:
    """Vectorised start-frame sampler for ``num_envs`` environments on one :class:`Timeline`.

    Call :meth:`draw` when environments reset. Outcomes arrive one of two ways, once per control step:

    - after the step, before any reset: :meth:`observe` with the frame each environment tracked
      and its ``terminated`` / ``time_out`` flags (foveate's own vector env);
    - at each reset: :meth:`credit` with the ending episodes, their frames and failure flags, then
      :meth:`advance` once per step after the resets (IsaacLab's and mjlab's order: the reset runs
      before the command's update).

    Both give the released code's arithmetic: the official form's failure counts move their EMA
    once per control step, with the failures of that step.

    Args:
        timeline: the motion's frames and bins.
        num_envs: number of environments.
        form: ``"uniform"``, ``"paper"`` or ``"official"`` (see the module docstring).
        device: where every tensor lives.
        seed: seeds the bin draws and the phases inside bins.
        sampler: a sampler over the timeline's bins owned elsewhere (foveate's training loop owns
            one); its strategy sets the form (uniform, or failure_bins' form), and it should
            rebuild at every update with no warm-up, as the sampler made here does.
        distributed: share one distribution among the ranks of a ``torch.distributed`` process
            group, each with its own ``num_envs`` environments (IsaacLab's multi-GPU training):
            every update gathers all ranks' outcomes (their numbers may differ), so every rank
            learns what one process with all the environments would; each rank draws its own
            starts from it (rank-offset streams). Every rank calls each update method together.
            The diagnostics (``starts``, ``frames_played``, ``failures``) stay per rank.
        **failure_bins_args: ``kernel_size``, ``kernel_decay``, ``uniform_ratio``, ``alpha`` of the
            engine's ``failure_bins`` strategy; ``None`` or absent takes the form's default.
    """

    def __init__(
        self,
        timeline: Timeline,
        num_envs: int,
        form: str = "official",
        *,
        device: torch.device | str | None = None,
        seed: int = 0,
        sampler: Sampler | None = None,
        distributed: bool = False,
        **failure_bins_args: Any,
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.timeline = timeline
        self.num_envs = num_envs
        if sampler is not None:
            form = _form_of(sampler, timeline, failure_bins_args)
            device = sampler.device
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        arguments = {k: v for k, v in failure_bins_args.items() if v is not None}
        if form == "uniform" and arguments:
            raise ValueError(f"form 'uniform' takes no failure_bins arguments, got {sorted(arguments)}")
        self.form = form
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.rank, self.world = _place() if distributed else (0, 1)
        self.seed = seed
        if sampler is None:
            strategy, extra = ("uniform", {}) if form == "uniform" else ("failure_bins", {"form": form, **arguments})
            sampler = Sampler(
                timeline.num_bins,
                strategy,
                update_frequency=1,
                warmup_iterations=0,
                check_inputs=False,
                device=self.device,
                seed=seed + _RANK_STRIDE * self.rank,
                **extra,
            )
        self.sampler = sampler
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed + 1 + _RANK_STRIDE * self.rank)
        bins = timeline.num_bins
        self.start_bins = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.step = 0
        # Diagnostics, for every form: how training time was spent and where it failed.
        self.starts = torch.zeros(bins, dtype=torch.float64, device=self.device)
        self.frames_played = torch.zeros(bins, dtype=torch.float64, device=self.device)
        self.failures = torch.zeros(bins, dtype=torch.float64, device=self.device)
        self._pending = torch.zeros(bins, dtype=torch.float32, device=self.device)

    @property
    def num_bins(self) -> int:
        return self.timeline.num_bins

    def draw(self, env_ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Start frames (int64) for the environments ``env_ids``, which are starting new episodes."""
        env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device)
        n = env_ids.numel()
        if n == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        bins = self.sampler.sample(n, self.step).ids
        # Error-guided draws come back sorted; shuffle so env index and bin are unrelated.
        bins = bins[torch.randperm(n, generator=self.generator, device=self.device)]
        phase = torch.rand(n, generator=self.generator, device=self.device)
        self.start_bins[env_ids] = bins
        self.starts += torch.bincount(bins, minlength=self.num_bins).to(torch.float64)
        return self.timeline.start_frames(bins, phase)

    def observe(self, frames: torch.Tensor, terminated: torch.Tensor, time_out: torch.Tensor) -> None:
        """Record one control step for all environments.

        Args:
            frames: (num_envs,) the reference frame each environment tracked in this step.
            terminated: (num_envs,) bool, episodes that failed in this step.
            time_out: (num_envs,) bool, episodes cut by the episode length or the motion's end.
        """
        frames, terminated, time_out = self._checked(frames, terminated, time_out)
        current = self.timeline.bin_of(frames)
        failed = terminated.to(torch.float32)
        if self.form == "official":
            # Non-failures add zero counts: passing every env avoids a data-dependent selection.
            self._update(current, failed)
        elif self.form == "paper":
            ended = terminated | time_out
            self._update(self.start_bins[ended], failed[ended])
        self.frames_played += torch.bincount(current, minlength=self.num_bins).to(torch.float64)
        self.failures += torch.bincount(current, weights=failed, minlength=self.num_bins).to(torch.float64)
        self.step += 1

    def credit(self, env_ids: torch.Tensor, frames: torch.Tensor, failed: torch.Tensor) -> None:
        """Episodes of ``env_ids`` end now (IsaacLab's order: called at their reset, before :meth:`advance`).

        Args:
            env_ids: (n,) the environments whose episodes end.
            frames: (n,) the frame each was tracking when it ended.
            failed: (n,) bool, terminations (failures); the others timed out or ran out of motion.
        """
        env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device)
        frames = torch.as_tensor(frames, dtype=torch.long, device=self.device)
        failed = torch.as_tensor(failed, device=self.device).to(torch.bool)
        if not env_ids.shape == frames.shape == failed.shape or env_ids.ndim != 1:
            raise ValueError(
                f"env_ids, frames and failed must be 1-D of one length, got {tuple(env_ids.shape)}, "
                f"{tuple(frames.shape)} and {tuple(failed.shape)}"
            )
        if not env_ids.numel() and self.world == 1:
            return
        where = self.timeline.bin_of(frames)
        counts = torch.bincount(where, weights=failed.to(torch.float32), minlength=self.num_bins)
        if self.form == "official":
            self._pending += counts
        elif self.form == "paper":
            self._update(self.start_bins[env_ids], failed.to(torch.float32))
        self.failures += counts.to(torch.float64)

    def advance(self, frames: torch.Tensor) -> None:
        """One control step has passed (IsaacLab's order, after its resets and :meth:`credit` calls).

        The official form's counts take this step's failures into their EMA; ``frames`` (num_envs,)
        are the frames the environments track next, counted as practice per bin.
        """
        frames = torch.as_tensor(frames, dtype=torch.long, device=self.device)
        if frames.shape != (self.num_envs,):
            raise ValueError(f"frames must have shape {(self.num_envs,)}, got {tuple(frames.shape)}")
        if self.form == "official":
            self._update(torch.arange(self.num_bins, device=self.device), self._pending)
            self._pending.zero_()
        self.frames_played += torch.bincount(self.timeline.bin_of(frames), minlength=self.num_bins).to(torch.float64)
        self.step += 1

    def _update(self, bins: torch.Tensor, errors: torch.Tensor) -> None:
        """Feed the sampler: this rank's outcomes, or, distributed, every rank's in rank order."""
        if self.world > 1:
            bins, errors = _gathered(bins, errors.to(torch.float32))
        if bins.numel():
            self.sampler.update(bins, errors, self.step)

    def probabilities(self) -> torch.Tensor:
        """The current distribution over bins (float32, sums to 1)."""
        return self.sampler.probabilities()

    def stats(self) -> dict[str, Any]:
        """Normalised entropy, top-1 probability and bin, and the per-bin distribution (JSON-ready)."""
        p = self.probabilities().to(torch.float64)
        entropy = float(-(p * p.clamp(min=1e-300).log()).sum())
        top = int(p.argmax())
        return {
            "form": self.form,
            "control_steps": self.step,
            "normalized_entropy": entropy / math.log(self.num_bins) if self.num_bins > 1 else 1.0,
            "top1_probability": float(p[top]),
            "top1_bin": top,
            "probabilities": p.tolist(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "num_bins": self.num_bins,
            "sampler": self.sampler.state_dict(),
            "generator": self.generator.get_state(),
            "start_bins": self.start_bins.clone(),
            "step": self.step,
            "starts": self.starts.clone(),
            "frames_played": self.frames_played.clone(),
            "failures": self.failures.clone(),
            "pending": self._pending.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["form"] != self.form or state["num_bins"] != self.num_bins:
            raise ValueError(
                f"state is for form {state['form']!r} with {state['num_bins']} bins, this sampler has "
                f"form {self.form!r} with {self.num_bins} bins"
            )
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        if self.rank > 0:  # a checkpoint holds rank 0's streams: the others continue on fresh ones of their own
            offset = self.seed + _RANK_STRIDE * self.rank + 7919 * self.step
            self.sampler.generator.manual_seed(offset)
            self.sampler.host_rng.seed(offset)
            self.generator.manual_seed(offset + 1)
        for name in ("start_bins", "starts", "frames_played", "failures"):
            getattr(self, name).copy_(state[name])
        self._pending.copy_(state["pending"])

    def _checked(self, frames, terminated, time_out) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = (self.num_envs,)
        for name, value in (("frames", frames), ("terminated", terminated), ("time_out", time_out)):
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"{name} must be a tensor of shape {shape}, got {got}")
        return frames.to(self.device), terminated.to(self.device, torch.bool), time_out.to(self.device, torch.bool)


_RANK_STRIDE = 1_000_003
"""Seed offset between the ranks' draw streams."""


def _place() -> tuple[int, int]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("distributed=True needs an initialised torch.distributed process group (run under torchrun)")
    return dist.get_rank(), dist.get_world_size()


def _gathered(bins: torch.Tensor, errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (bins, errors), concatenated in rank order: sizes first, then one padded all-gather."""
    import torch.distributed as dist

    world = dist.get_world_size()
    size = torch.tensor([bins.numel()], device=bins.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(count) for count in torch.cat(sizes).tolist()]
    packed = torch.zeros(2, max(counts), dtype=torch.float64, device=bins.device)
    packed[0, : bins.numel()] = bins.to(torch.float64)
    packed[1, : bins.numel()] = errors.to(torch.float64)
    parts = [torch.empty_like(packed) for _ in range(world)]
    dist.all_gather(parts, packed)
    whole = torch.cat([part[:, :count] for part, count in zip(parts, counts, strict=True)], dim=1)
    return whole[0].to(torch.long), whole[1].to(torch.float32)


def _form_of(sampler: Sampler, timeline: Timeline, failure_bins_args: dict[str, Any]) -> str:
    """The form a given sampler implements: its strategy, or failure_bins' form."""
    if failure_bins_args:
        raise ValueError("with a sampler given, its strategy carries the failure_bins arguments")
    if sampler.shape != (timeline.num_bins,):
        raise ValueError(f"the sampler's shape {sampler.shape} is not the timeline's {timeline.num_bins} bins")
    if sampler.strategy.name == "uniform":
        return "uniform"
    if sampler.strategy.name == "failure_bins":
        return sampler.strategy.form
    raise ValueError(f"a timeline needs a uniform or failure_bins sampler, got {sampler.strategy.name!r}")


class MotionCommandSampler:
    """Adaptive start phases with the hooks of IsaacLab's ``MotionCommand``, in either hook order.

    ``time_steps[i]`` is the reference frame environment ``i`` tracks.

    **IsaacLab and mjlab** (``env.step`` resets terminated environments, calling
    ``_resample_command``, before ``command_manager.compute`` calls ``_update_command``)::

        def _resample_command(self, env_ids):
            failed = self._env.termination_manager.terminated[env_ids]
            self.sampler.resample(env_ids, failed)          # credits failures at the frames they were at
            ...                                             # write the reference state at time_steps[env_ids]

        def _update_command(self):
            ended = self.sampler.update()                   # advance; returns envs past the motion's end,
            ...                                             # already given new starts: reset their state

    **foveate's vector env** (outcomes first, then resets): after the physics step call
    ``update(terminated, time_out)``, then ``resample(env_ids)`` for the environments that reset.

    Both orders credit a failure to the bin of the frame the environment was tracking when it
    failed, as the released code does, and move the official form's counts once per control step.

    Args:
        num_frames: frames of the reference motion (``time_step_total``).
        control_rate: control steps per second (1 / (decimation * sim dt)).
        num_envs: number of environments.
        form: ``"uniform"``, ``"paper"`` or ``"official"``.
        bin_seconds: bin width in seconds (the released code: 1).
        device, seed, sampler, distributed, **failure_bins_args: passed to :class:`TimelineSampler`.
    """

    def __init__(
        self,
        num_frames: int,
        control_rate: float,
        num_envs: int,
        form: str = "official",
        *,
        bin_seconds: float = 1.0,
        device: torch.device | str | None = None,
        seed: int = 0,
        sampler: Sampler | None = None,
        distributed: bool = False,
        **failure_bins_args: Any,
    ) -> None:
        timeline = Timeline(num_frames, control_rate, bin_seconds)
        self.sampler = TimelineSampler(
            timeline,
            num_envs,
            form,
            device=device,
            seed=seed,
            sampler=sampler,
            distributed=distributed,
            **failure_bins_args,
        )
        self.time_steps = torch.zeros(num_envs, dtype=torch.long, device=self.sampler.device)

    @property
    def timeline(self) -> Timeline:
        return self.sampler.timeline

    def resample(self, env_ids: torch.Tensor | Sequence[int], failed: torch.Tensor | None = None) -> torch.Tensor:
        """New start frames for ``env_ids``; written to ``time_steps`` and returned.

        ``failed`` (bool per env id, the termination manager's ``terminated``) says which of the
        ending episodes failed, at the frames they were tracking: give it in IsaacLab's hook order,
        leave it out in foveate's (where :meth:`update` received the outcomes already).
        """
        env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.time_steps.device)
        if failed is not None:
            failed = torch.as_tensor(failed, device=self.time_steps.device)
            self.sampler.credit(env_ids, self.time_steps[env_ids], failed)
        frames = self.sampler.draw(env_ids)
        self.time_steps[env_ids] = frames
        return frames

    def update(self, terminated: torch.Tensor | None = None, time_out: torch.Tensor | None = None) -> torch.Tensor:
        """Advance every environment one frame; returns the environments given new starts because they
        ran past the motion's end (IsaacLab's order; none in foveate's).

        With ``terminated`` and ``time_out`` (foveate's order) the step's outcomes are recorded here,
        at the frames just tracked. Without them (IsaacLab's order) the failures credited at this
        step's resets enter the counts, and environments past the last frame start anew, as the
        released ``_update_command`` does.
        """
        if (terminated is None) != (time_out is None):
            raise ValueError("give both terminated and time_out (foveate's order), or neither (IsaacLab's)")
        last = self.timeline.num_frames - 1
        if terminated is not None:
            self.time_steps = (self.time_steps + 1).clamp(max=last)
            self.sampler.observe(self.time_steps, terminated, time_out)
            return torch.zeros(0, dtype=torch.long, device=self.time_steps.device)
        self.time_steps += 1
        ended = torch.nonzero(self.time_steps > last).flatten()
        if ended.numel():
            self.time_steps[ended] = last
            self.resample(ended, torch.zeros(ended.numel(), dtype=torch.bool, device=ended.device))
        self.sampler.advance(self.time_steps)
        return ended

    def stats(self) -> dict[str, Any]:
        return self.sampler.stats()

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "time_steps": self.time_steps.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.time_steps.copy_(state["time_steps"])
