"""Synthetic populations on which the best strategy is known: a check of a sampler in seconds.

In all but one case each unit has a reducible error, cut by ``shrink`` whenever the unit is
drawn, and an irreducible floor; the sampler sees their sum, as a training loop sees a loss that
the model can lower only in part, plus, in one case, fresh noise at every measurement (a Monte
Carlo target). Units are independent there: a draw helps the unit drawn and costs no other.
The ``capacity`` case is a model instead: a linear least-squares fit with fewer weights than
units, trained by SGD on the drawn units (each weighted by the sampler's importance weight), to
targets it cannot fit exactly. A unit's error is its squared residual, reducible down to the
least-squares fit's, and every step moves every unit: fitting some units costs the others.
Quality is the mean reducible error averaged over the run (an area under the error curve: lower
is faster), and at its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .sampler import Sampler

__all__ = ["CASES", "Simulation", "population", "simulate"]

CASES = ("concentrated", "noise_floors", "measurement_noise", "flat", "capacity")
"""concentrated: 5% of the units hold error 1, the rest 0.01 (focusing pays); noise_floors: every
unit 0.3 and 20% carry a floor of 3 no draw removes (focusing wastes draws); measurement_noise:
every unit 0.3, each measurement adding exponential noise of mean 1 (an error map of noise, whose
high values regress when measured again); flat: every unit 0.3; capacity: a linear model of
units / 50 weights fitting noisy targets (the memorising regime in small: the plain loss over
error-weighted draws is another objective, whose fit is worse for the population)."""
MEASUREMENT_NOISE = {"measurement_noise": 1.0}
"""Mean of the exponential noise added to every measurement, by case (none elsewhere)."""
Case = Literal["concentrated", "noise_floors", "measurement_noise", "flat", "capacity"]
UNITS_PER_WEIGHT = 50
"""capacity: units per weight of the linear model."""
TARGET_NOISE = 1.0
"""capacity: standard deviation of the targets' noise, which no fit removes."""
LEARNING_RATE = 0.5
"""capacity: SGD's step size (features are scaled so that a unit's squared norm is about 1)."""


def population(case: Case, units: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(reducible, floor)`` errors of ``units`` units for one of :data:`CASES` (but ``capacity``, a model)."""
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if case == "capacity":
        raise ValueError("the capacity case is a model, not a table of errors: simulate it")
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
    """The outcome of :func:`simulate`: the area under the error curve, the final error and the mixture half-way."""

    area: float
    final: float
    mixture: dict[str, float]


class _Independent:
    """Units whose reducible error falls by ``shrink`` when drawn, over a floor no draw removes."""

    def __init__(self, case: Case, units: int, seed: int, shrink: float) -> None:
        self.reducible, self.floor = population(case, units, seed)
        self.shrink = shrink
        self.noise = MEASUREMENT_NOISE.get(case, 0.0)
        self.generator = torch.Generator().manual_seed(seed + 1)

    def reducible_error(self) -> float:
        return float(self.reducible.mean())

    def visit(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        measured = self.floor[ids] + self.reducible[ids]
        if self.noise > 0:
            measured += self.noise * torch.empty(len(ids)).exponential_(generator=self.generator)
        self.reducible[ids] *= self.shrink
        return measured


class _LinearFit:
    """A linear model with fewer weights than units, fitted by SGD on the drawn units' squared residuals."""

    def __init__(self, units: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        dims = max(1, units // UNITS_PER_WEIGHT)
        self.features = torch.randn(units, dims, generator=generator) / dims**0.5
        truth = torch.randn(dims, generator=generator)
        self.targets = self.features @ truth + TARGET_NOISE * torch.randn(units, generator=generator)
        best = torch.linalg.lstsq(self.features, self.targets.unsqueeze(1)).solution.squeeze(1)
        self.best = float((self.features @ best - self.targets).square().mean())
        self.weights = torch.zeros(dims)

    def reducible_error(self) -> float:
        return float((self.features @ self.weights - self.targets).square().mean()) - self.best

    def visit(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        features = self.features[ids]
        residual = features @ self.weights - self.targets[ids]
        self.weights -= LEARNING_RATE * 2.0 * features.T @ (weights * residual) / len(ids)
        return residual.square()


def simulate(
    case: Case,
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
    world = _LinearFit(units, seed) if case == "capacity" else _Independent(case, units, seed, shrink)
    sampler = Sampler(units, strategy, warmup_iterations=0, update_frequency=10, seed=seed, **options)
    area, mixture = 0.0, {}
    for step in range(steps):
        area += world.reducible_error() / steps
        draw = sampler.sample(batch, step)
        sampler.update(draw.ids, world.visit(draw.ids, draw.weights), step)
        if step == steps // 2:
            mixture = sampler.stats()["mixture"]
    return Simulation(area, world.reducible_error(), mixture)
