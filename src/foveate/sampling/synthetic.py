"""Synthetic populations on which the best strategy is known: a model-free check of a sampler.

Each unit has a reducible error, cut by ``shrink`` whenever the unit is drawn, and an
irreducible floor; the sampler sees their sum, as a training loop sees a loss that the model can
lower only in part, plus, in one case, fresh noise at every measurement (a Monte Carlo target).
Quality is the mean reducible error averaged over the run (an area under the error curve: lower
is faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .sampler import Sampler

__all__ = ["CASES", "Simulation", "population", "simulate"]

CASES = ("concentrated", "noise_floors", "measurement_noise", "flat")
"""concentrated: 5% of the units hold error 1, the rest 0.01 (focusing pays); noise_floors: every
unit 0.3 and 20% carry a floor of 3 no draw removes (focusing wastes draws); measurement_noise:
every unit 0.3, each measurement adding exponential noise of mean 1 (an error map of noise, whose
high values regress when measured again); flat: every unit 0.3."""
MEASUREMENT_NOISE = {"measurement_noise": 1.0}
"""Mean of the exponential noise added to every measurement, by case (none elsewhere)."""


def population(
    case: Literal["concentrated", "noise_floors", "measurement_noise", "flat"], units: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(reducible, floor)`` errors of ``units`` units for one of :data:`CASES`."""
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    chosen = torch.randperm(units, generator=torch.Generator().manual_seed(seed))
    reducible, floor = torch.full((units,), 0.01), torch.zeros(units)
    if case == "concentrated":
        reducible[chosen[: units // 20]] = 1.0
    else:
        reducible[:] = 0.3
        if case == "noise_floors":
            floor[chosen[: units // 5]] = 3.0
    return reducible, floor


@dataclass(frozen=True)
class Simulation:
    """The outcome of :func:`simulate`: the area under the error curve and the mixture half-way."""

    area: float
    mixture: dict[str, float]


def simulate(
    case: Literal["concentrated", "noise_floors", "measurement_noise", "flat"],
    strategy: str,
    *,
    steps: int,
    seed: int = 0,
    units: int = 2000,
    batch: int = 100,
    shrink: float = 0.9,
    **options: object,
) -> Simulation:
    """Draw ``batch`` units a step for ``steps`` steps with ``strategy`` (and its ``options``)."""
    reducible, floor = population(case, units, seed)
    sampler = Sampler(units, strategy, warmup_iterations=0, update_frequency=10, seed=seed, **options)
    noise = MEASUREMENT_NOISE.get(case, 0.0)
    generator = torch.Generator().manual_seed(seed + 1)
    area, mixture = 0.0, {}
    for step in range(steps):
        area += float(reducible.mean()) / steps
        ids = sampler.sample(batch, step).ids
        measured = floor[ids] + reducible[ids]
        if noise > 0:
            measured += noise * torch.empty(batch).exponential_(generator=generator)
        sampler.update(ids, measured, step)
        reducible[ids] *= shrink
        if step == steps // 2:
            mixture = sampler.stats()["mixture"]
    return Simulation(area, mixture)
