"""Frozen sampling distributions: what a strategy hands the sampler between rebuilds."""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Protocol

import torch

from .categorical import BlockCategorical, sorted_uniforms

__all__ = ["CategoricalProposal", "MixtureProposal", "Proposal", "UniformProposal", "proposal_from_state"]


_POWER_SUM_SLICE = 2**22
"""Units a mixture's power sum handles at a time."""


class Proposal(Protocol):
    """A distribution over unit ids that can be drawn from and evaluated."""

    num_units: int

    def sample(
        self, n: int, generator: torch.Generator | None, host_rng: random.Random, stratified: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` ids, and for mixtures the index of the component that drew each.

        This module's proposals return their ids in ascending order: the sampler's update then skips its sort."""
        ...

    def probability(self, ids: torch.Tensor) -> torch.Tensor: ...

    def probabilities(self) -> torch.Tensor: ...

    def power_sum(self, exponent: float) -> torch.Tensor:
        """The sum over units of ``p ** exponent`` (float64, 0-d; ``exponent`` in (0, 1])."""
        ...

    def probabilities_between(self, start: int, stop: int) -> torch.Tensor:
        """Units ``start`` to ``stop``'s probabilities (float32) from their masses, to the float32
        rounding of a mass over the total (a 0-d tensor where every unit has the same)."""
        ...

    def nbytes(self) -> int: ...

    def state_dict(self) -> dict: ...


class UniformProposal:
    """Every unit equally likely; holds no per-unit memory."""

    def __init__(self, num_units: int, device: torch.device) -> None:
        self.num_units = num_units
        self.device = device

    def sample(self, n, generator, host_rng, stratified):
        # In ascending order, as a categorical draw: the update skips its sort, and a batch that
        # walks its population in order gathers and scatters with locality (a hash grid's rows).
        if stratified:
            u = sorted_uniforms(n, generator=generator, device=self.device, stratified=True)
            return (u * self.num_units).long().clamp_(max=self.num_units - 1), None
        return torch.randint(self.num_units, (n,), generator=generator, device=self.device).sort().values, None

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.full(ids.shape, 1.0 / self.num_units, dtype=torch.float64, device=ids.device)

    def probabilities(self) -> torch.Tensor:
        return torch.full((self.num_units,), 1.0 / self.num_units, dtype=torch.float32, device=self.device)

    def power_sum(self, exponent: float) -> torch.Tensor:
        return torch.tensor(float(self.num_units) ** (1.0 - exponent), dtype=torch.float64, device=self.device)

    def probabilities_between(self, start: int, stop: int) -> torch.Tensor:
        return torch.tensor(1.0 / self.num_units, dtype=torch.float32, device=self.device)

    def nbytes(self) -> int:
        return 0

    def state_dict(self) -> dict:
        return {"kind": "uniform", "num_units": self.num_units}


class CategoricalProposal:
    """Draws proportional to per-unit weights, exactly, at any population size."""

    def __init__(self, weights: torch.Tensor | BlockCategorical) -> None:
        self.categorical = weights if isinstance(weights, BlockCategorical) else BlockCategorical(weights)
        self.num_units = self.categorical.num_units

    def sample(self, n, generator, host_rng, stratified):
        u = sorted_uniforms(n, generator=generator, device=self.categorical.device, stratified=stratified)
        return self.categorical.sample_from_uniforms(u), None

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        return self.categorical.probability(ids)

    def probabilities(self) -> torch.Tensor:
        return self.categorical.probabilities()

    def power_sum(self, exponent: float) -> torch.Tensor:
        # Kept up to date by the categorical through refreshes: no pass over the units after the first.
        return self.categorical.power_sum(exponent) / self.categorical.total.pow(exponent)

    def probabilities_between(self, start: int, stop: int) -> torch.Tensor:
        return self.categorical.masses_between(start, stop) / self.categorical.total.to(torch.float32)

    def nbytes(self) -> int:
        return self.categorical.nbytes()

    def state_dict(self) -> dict:
        categorical = self.categorical
        return {
            "kind": "categorical",
            "mass": categorical.mass,
            "block_cdf": categorical.block_cdf,
            "num_units": self.num_units,
            # Refreshes update these sums rather than summing again: kept, a resumed run weighs its draws alike.
            "power_sums": categorical.power_sums(),
        }


class MixtureProposal:
    """A fixed mixture of proposals; each draw is split across components in proportion.

    Component counts use systematic allocation (one host uniform per draw), so the expected
    count of each component is exactly ``n * share`` and every id is labelled with the
    component that drew it: the adaptive strategy credits learning progress that way. The ids
    come back in ascending order, their labels with them.
    """

    def __init__(self, components: list[Proposal], shares: list[float]) -> None:
        if len(components) != len(shares) or not components:
            raise ValueError("a mixture needs one share per component")
        total = sum(shares)
        self.components = components
        self.shares = [s / total for s in shares]
        self.num_units = components[0].num_units

    def counts(self, n: int, host_rng: random.Random) -> list[int]:
        offset = host_rng.random()
        bounds, cumulative = [0], 0.0
        for share in self.shares:
            cumulative += share
            bounds.append(int(n * cumulative + offset))
        bounds[-1] = n
        return [max(b - a, 0) for a, b in pairwise(bounds)]

    def sample(self, n, generator, host_rng, stratified):
        ids, labels = [], []
        for index, (component, count) in enumerate(zip(self.components, self.counts(n, host_rng), strict=True)):
            if count == 0:
                continue
            drawn, _ = component.sample(count, generator, host_rng, stratified)
            ids.append(drawn)
            labels.append(torch.full((count,), index, dtype=torch.int8, device=drawn.device))
        # The parts come sorted: a stable sort merges their runs (on a CPU in under half an unstable
        # sort's time), and an id drawn by several components keeps their labels in component order.
        ids, order = torch.cat(ids).sort(stable=True)
        return ids, torch.cat(labels).index_select(0, order)

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        return sum(share * c.probability(ids) for share, c in zip(self.shares, self.components, strict=True))

    def probabilities(self) -> torch.Tensor:
        return sum(share * c.probabilities() for share, c in zip(self.shares, self.components, strict=True))

    def power_sum(self, exponent: float) -> torch.Tensor:
        # A slice of units at a time, in float32 summed in float64: one pass, no whole-population temporaries.
        bounds = [*range(0, self.num_units, _POWER_SUM_SLICE), self.num_units]
        return sum(
            self.probabilities_between(start, stop).expand(stop - start).pow(exponent).sum(dtype=torch.float64)
            for start, stop in pairwise(bounds)
        )

    def probabilities_between(self, start: int, stop: int) -> torch.Tensor:
        return sum(
            share * c.probabilities_between(start, stop) for share, c in zip(self.shares, self.components, strict=True)
        )

    def nbytes(self) -> int:
        return sum(c.nbytes() for c in self.components)

    def state_dict(self) -> dict:
        return {
            "kind": "mixture",
            "shares": list(self.shares),
            "components": [c.state_dict() for c in self.components],
        }


def proposal_from_state(state: dict, device: torch.device) -> Proposal:
    """Rebuild a proposal saved with ``state_dict()`` on ``device``."""
    kind = state["kind"]
    if kind == "uniform":
        return UniformProposal(state["num_units"], device)
    if kind == "categorical":
        if "prefix" in state:  # saved before masses were kept
            return CategoricalProposal(BlockCategorical.from_prefix(state["prefix"].to(device), state["num_units"]))
        mass, block_cdf = state["mass"].to(device), state["block_cdf"].to(device)
        categorical = BlockCategorical.from_mass(mass, block_cdf, state["num_units"])
        categorical.load_power_sums(state.get("power_sums", {}))
        return CategoricalProposal(categorical)
    if kind == "mixture":
        components = [proposal_from_state(c, device) for c in state["components"]]
        return MixtureProposal(components, state["shares"])
    raise ValueError(f"unknown proposal kind {kind!r} in state_dict")
