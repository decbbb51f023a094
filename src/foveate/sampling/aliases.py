"""The seeds' class names over :class:`Sampler`: RadFoam's ``ErrorBasedRaySampler`` (seed 000) and
the BeyondMimic planning document's ``AdaptiveSampler`` (seed 001).

Both keep their seed's constructor and method names so that the seed's code runs unchanged; new
code should use :class:`Sampler` directly. ``docs/radfoam.md`` tables every difference between
foveate's engine, its ``semantics="radfoam"`` mode and RadFoam's own code.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .proposals import CategoricalProposal, Proposal
from .sampler import Draw, Sampler, _check_int
from .statistics import UnitStatistics, reduce_duplicates
from .strategies import Adaptive, ErrorWeighted, Spatial, Strategy

__all__ = ["SEMANTICS", "AdaptiveSampler", "ErrorBasedRaySampler", "RadFoamWeighted"]

SEMANTICS = ("foveate", "radfoam")
"""Values of ``ErrorBasedRaySampler(semantics=...)``."""

RADFOAM_INITIAL_ERROR = 1.0
"""RadFoam's error map starts at this value for every ray."""

ERROR_STATISTICS = ("mean_error", "std_error", "max_error", "min_error")
"""The keys of ``ErrorBasedRaySampler.error_stats``."""


@dataclass
class RadFoamWeighted(Strategy):
    """RadFoam's error weighting: p proportional to error + min_error_weight, every error starting at 1.0.

    A ray's first loss blends with that 1.0 like any later one (decay * 1.0 + (1 - decay) * loss),
    and the weights are normalised as they stand, with no uniform share. Weights that are all zero
    (only possible with min_error_weight = 0) give the uniform distribution, which is what RadFoam
    ends up drawing when its multinomial refuses them.
    """

    name: ClassVar[str] = "radfoam_weighted"

    def observe(self, stats, ids, errors, labels, *, ascending=False) -> None:
        batch = reduce_duplicates(ids, errors, ascending=ascending)
        # The statistics take a unit's first observation as its error; RadFoam blends it with 1.0.
        first = stats.visits.index_select(0, batch.ids) == 0
        blended = stats.decay * RADFOAM_INITIAL_ERROR + (1.0 - stats.decay) * batch.mean
        batch.mean = torch.where(first, blended, batch.mean)
        stats.observe(batch)

    def build(self, stats: UnitStatistics) -> Proposal:
        weights = stats.filled_error(RADFOAM_INITIAL_ERROR).add_(self.shaping.min_error_weight)
        weights = torch.where(weights.sum() > 0, weights, torch.ones_like(weights))
        return CategoricalProposal(weights)


class ErrorBasedRaySampler(Sampler):
    """RadFoam's error sampler (``error_sampling.py``) on foveate's engine: same constructor, verbs and attributes.

    Args:
        total_rays: number of rays, or ``(images, H, W)`` for the spatial strategy (ids row-major).
        device, update_frequency, decay, warmup_iterations, min_error_weight: RadFoam's arguments, with
            the meaning ``semantics`` gives them.
        strategy: foveate's strategy (``semantics="foveate"`` only).
        semantics: ``"foveate"`` (default) runs foveate's engine: unseen rays at an optimistic prior,
            ``min_error_weight`` a floor relative to the mean error, a uniform share mixed in, the
            distribution rebuilt every ``update_frequency`` updates. ``"radfoam"`` reproduces RadFoam's
            sampler: every error starts at 1.0, weights are ``error + min_error_weight``, the
            distribution follows every update (``update_frequency`` only paces ``error_stats``),
            warm-up draws hold no repeats, and no uniform share. Draws stay exact at any number of
            rays either way (RadFoam's fall back to uniform above 2^24).
        **kwargs: further :class:`Sampler` arguments (``seed``, ``correction``, ``check_inputs``, ...),
            and under ``"foveate"`` the strategy's own.

    RadFoam's verbs accept what RadFoam's accept: :meth:`update_error_map` takes one aggregated loss
    (shape ``(1,)``) for every ray, a list, losses longer than the ids (the extra ignored), drops ids
    outside ``[0, total_rays)`` with a warning, and does nothing for ``None`` ids or empty losses.
    Unlike RadFoam's it rejects negative losses (``ValueError``) and ignores non-finite ones, as
    :meth:`Sampler.update` does. It costs one host synchronisation (the range check), as RadFoam's
    does; :meth:`Sampler.update` is the synchronisation-free verb.

    ``error_map`` reads each ray's running error as a float32 copy (rays never observed read as the
    prior: 1.0 under ``"radfoam"``); assign a whole ``(total_rays,)`` tensor to set every ray's error.

    Examples:
        >>> sampler = ErrorBasedRaySampler(1000, "cpu", warmup_iterations=0, semantics="radfoam", seed=0)
        >>> ids = sampler.sample_ray_indices(64, iteration=0)
        >>> sampler.update_error_map(ids, torch.rand(64))
        >>> sampler.get_sampling_info()["iteration_count"]
        1
    """

    def __init__(
        self,
        total_rays: int | Sequence[int],
        device: torch.device | str | None = None,
        update_frequency: int = 100,
        decay: float = 0.9,
        warmup_iterations: int = 1000,
        min_error_weight: float = 0.1,
        strategy: str | Strategy = "error_weighted",
        *,
        semantics: str = "foveate",
        **kwargs: Any,
    ) -> None:
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
        if semantics == "radfoam":
            if strategy != "error_weighted":
                raise ValueError(
                    f"semantics='radfoam' draws with RadFoam's error weighting; strategy must be "
                    f"'error_weighted', got {strategy!r}"
                )
            if "uniform_fraction" in kwargs:
                raise ValueError("semantics='radfoam' mixes in no uniform share: drop uniform_fraction")
            strategy = RadFoamWeighted()
            kwargs["uniform_fraction"] = 0.0
            kwargs.setdefault("error_dtype", torch.float32)  # RadFoam's map is float32 at any size
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
        self.semantics = semantics
        self.last_sampled_indices: torch.Tensor | None = None
        self.error_stats: dict[str, list[float]] = {key: [] for key in ERROR_STATISTICS}

    # RadFoam's attributes ---------------------------------------------------------------------

    @property
    def total_rays(self) -> int:
        return self.num_units

    @property
    def iteration_count(self) -> int:
        """Updates so far (RadFoam counts ``update_error_map`` calls)."""
        return self.updates

    @property
    def decay(self) -> float:
        return self.statistics.decay

    @property
    def min_error_weight(self) -> float:
        return self.shaping.min_error_weight

    @property
    def error_map(self) -> torch.Tensor:
        """Each ray's running error, float32, a copy; never-observed rays read as the strategy's prior."""
        if self.semantics == "radfoam":
            prior: float | str = RADFOAM_INITIAL_ERROR
        elif isinstance(self.strategy, (ErrorWeighted, Spatial, Adaptive)):
            prior = self.strategy.prior
        else:
            prior = 0.0
        return self.statistics.filled_error(prior)

    @error_map.setter
    def error_map(self, value: torch.Tensor) -> None:
        value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        if value.shape != (self.num_units,):
            raise ValueError(f"error_map must have shape ({self.num_units},), got {tuple(value.shape)}")
        if not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
            raise ValueError("error_map must hold finite errors >= 0")
        self.statistics.error.copy_(value)
        self.statistics.visits.clamp_(min=1)  # every ray now has an error: the next loss blends with it
        self._stale = True

    # Drawing and feeding back -----------------------------------------------------------------

    def sample(self, n: int, step: int) -> Draw:
        """As :meth:`Sampler.sample`; under ``"radfoam"`` warm-up draws hold no repeats (as few as ``n`` allows)."""
        if self.semantics == "radfoam" and isinstance(step, int) and self.in_warmup(step):
            _check_int("n", n, 1)
            _check_int("step", step, 0)
            self.last_step = step
            self._labels = None
            draw = Draw(self._without_repeats(n), torch.ones(n, dtype=torch.float32, device=self.device))
        else:
            draw = super().sample(n, step)
        self.last_sampled_indices = draw.ids
        return draw

    def _without_repeats(self, n: int) -> torch.Tensor:
        """``n`` ids in random order, each ray ``n // N`` or ``n // N + 1`` times (once at most when n <= N)."""
        total = self.num_units
        whole, rest = divmod(n, total)
        index = torch.int32 if total < 2**31 else torch.int64  # halves the permutation's memory
        parts = [torch.arange(total, device=self.device).repeat(whole)] if whole else []
        if rest:
            parts.append(torch.randperm(total, generator=self.generator, device=self.device, dtype=index)[:rest].long())
        ids = torch.cat(parts) if len(parts) > 1 else parts[0]
        if whole:
            ids = ids[torch.randperm(n, generator=self.generator, device=self.device)]
        return ids

    def update(self, ids: torch.Tensor, errors: torch.Tensor, step: int) -> None:
        super().update(ids, errors, step)
        if self.semantics == "radfoam":
            self._stale = True  # the distribution follows every update

    def sample_ray_indices(self, num_rays: int, iteration: int) -> torch.Tensor:
        """Ray ids for ``iteration``: a warm-up draw before ``warmup_iterations``, error-guided after."""
        return self.sample(num_rays, iteration).ids

    def update_error_map(self, ray_indices: torch.Tensor | None, losses: torch.Tensor | Sequence[float]) -> None:
        """Feed back per-ray losses of the rays ``ray_indices`` (see the class docstring for the inputs accepted)."""
        if ray_indices is None:
            return
        if isinstance(losses, torch.Tensor):
            losses = losses.detach()
        losses = torch.as_tensor(losses, dtype=torch.float32, device=self.device)
        if losses.ndim > 1:
            raise ValueError(f"losses must be one per ray, shape (B,), got {tuple(losses.shape)}")
        losses = losses.reshape(-1)
        if losses.numel() == 0:
            return
        ids = torch.as_tensor(ray_indices, device=self.device).reshape(-1)
        if losses.numel() == 1 and ids.numel() > 1:
            losses = losses.expand(ids.numel())  # one aggregated loss for every ray
        elif losses.numel() < ids.numel():
            raise ValueError(f"{ids.numel()} ray ids but only {losses.numel()} losses")
        losses = losses[: ids.numel()]
        inside = (ids >= 0) & (ids < self.num_units)
        outside = int(ids.numel() - inside.sum())
        if outside:
            warnings.warn(
                f"update_error_map: dropped {outside} of {ids.numel()} ray ids outside [0, {self.num_units})",
                stacklevel=2,
            )
            ids, losses = ids[inside], losses[inside]
        self.update(ids, losses, self.last_step)
        if self.updates % self.update_frequency == 0:
            self._log_error_statistics()

    # Reporting --------------------------------------------------------------------------------

    def _error_summary(self) -> dict[str, float]:
        """Mean, population standard deviation, max and min of ``error_map`` (one host synchronisation)."""
        error = self.error_map.to(torch.float64)
        mean, std, high, low = torch.stack((error.mean(), error.std(correction=0), error.max(), error.min())).tolist()
        return {"mean_error": mean, "std_error": std, "max_error": high, "min_error": low}

    def _log_error_statistics(self) -> None:
        for key, value in self._error_summary().items():
            self.error_stats[key].append(value)

    def get_error_statistics(self) -> dict[str, list[float]]:
        """``error_stats``: the error map's mean, std, max and min, one entry per ``update_frequency`` updates."""
        return {key: list(values) for key, values in self.error_stats.items()}

    def should_use_error_sampling(self, iteration: int) -> bool:
        return not self.in_warmup(iteration)

    def get_sampling_info(self) -> dict[str, Any]:
        """RadFoam's summary of ``error_map`` (``mean_error``, ``std_error``, ``max_error``, ``min_error``,
        ``error_range``, ``iteration_count``) over :meth:`Sampler.stats`, whose ``mean_error`` (over
        observed rays only) gives way to RadFoam's (over every ray)."""
        summary = self._error_summary()
        return {
            **self.stats(),
            **summary,
            "error_range": summary["max_error"] - summary["min_error"],
            "iteration_count": self.iteration_count,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "error_stats": self.get_error_statistics()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state.get("error_stats", {})
        self.error_stats = {key: list(saved.get(key, [])) for key in self.error_stats}


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
