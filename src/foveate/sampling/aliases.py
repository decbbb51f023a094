"""The seeds' class names, as thin documented wrappers over :class:`Sampler`.

``ErrorBasedRaySampler`` keeps RadFoam's constructor and method names (seed 000);
``AdaptiveSampler`` keeps the BeyondMimic planning document's (seed 001). New code
should use :class:`Sampler` directly.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .sampler import Sampler

__all__ = ["AdaptiveSampler", "ErrorBasedRaySampler"]


class ErrorBasedRaySampler(Sampler):
    """RadFoam's error sampler: ``Sampler`` over ``total_rays`` units, same defaults.

    Unlike the original it draws error-weighted at any number of rays, judges warm-up
    from each call's ``iteration``, and averages duplicate ids.
    """

    def __init__(
        self,
        total_rays: int,
        device: torch.device | str | None = None,
        update_frequency: int = 100,
        decay: float = 0.9,
        warmup_iterations: int = 1000,
        min_error_weight: float = 0.1,
        strategy: str = "error_weighted",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            total_rays,
            strategy,
            device=device,
            update_frequency=update_frequency,
            decay=decay,
            warmup_iterations=warmup_iterations,
            min_error_weight=min_error_weight,
            **kwargs,
        )
        self._iteration = 0

    def sample_ray_indices(self, num_rays: int, iteration: int) -> torch.Tensor:
        """Ray ids for ``iteration`` (uniform during warm-up)."""
        self._iteration = iteration
        return self.sample(num_rays, iteration).ids

    def update_error_map(self, ray_indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Feed back per-ray losses for the rays last drawn."""
        self.update(ray_indices, losses, self._iteration)

    def should_use_error_sampling(self, iteration: int) -> bool:
        return not self.in_warmup(iteration)

    def get_sampling_info(self) -> dict[str, Any]:
        return self.stats()


class AdaptiveSampler(Sampler):
    """BeyondMimic's start-phase sampler over one-second bins (``failure_bins``, paper form).

    ``num_bins = ceil(motion_duration / bin_size_seconds)``; ``gamma``, ``K`` and
    ``lambda_uniform`` are the paper's kernel decay, kernel size and uniform mix.
    """

    def __init__(
        self,
        motion_fps: float,
        motion_duration: float,
        bin_size_seconds: float = 1.0,
        gamma: float = 0.9,
        lambda_uniform: float = 0.1,
        K: int = 5,
        alpha: float = 0.1,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ) -> None:
        if motion_duration <= 0 or bin_size_seconds <= 0 or motion_fps <= 0:
            raise ValueError("motion_fps, motion_duration and bin_size_seconds must be > 0")
        self.motion_fps = motion_fps
        self.motion_duration = motion_duration
        self.bin_size_seconds = bin_size_seconds
        num_bins = math.ceil(motion_duration / bin_size_seconds)
        super().__init__(
            num_bins,
            "failure_bins",
            update_frequency=1,
            warmup_iterations=0,
            device=device,
            seed=seed,
            form="paper",
            kernel_size=K,
            kernel_decay=gamma,
            uniform_ratio=lambda_uniform,
            alpha=alpha,
        )

    def sample_starting_phases(self, batch_size: int, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Phases in [0, 1) (a uniform offset inside each drawn bin) and the bins drawn."""
        bins = self.sample(batch_size, step).ids
        offset = torch.rand(batch_size, generator=self.generator, device=self.device)
        phases = ((bins + offset) * self.bin_size_seconds / self.motion_duration).clamp_(max=1.0 - 1e-7)
        return phases, bins

    def update_failure_statistics(self, starting_bins: torch.Tensor, failures: torch.Tensor, step: int = 0) -> None:
        """Record finished episodes: their starting bins and whether each failed."""
        self.update(starting_bins, failures.to(torch.float32), step)
