"""Exact categorical draws over very large populations.

``torch.multinomial`` refuses more than 2^24 categories and a float32 CDF loses
per-entry resolution once its running sum is large (near 3.3e7 its spacing is 2-4).
:class:`BlockCategorical` keeps a float64 CDF over blocks of :data:`BLOCK` units and each
unit's float32 weight; a draw sums its block's 16 weights on the way (one gather of a 64-byte
row). Memory is about 4.6 bytes per unit; a draw is about a dozen kernels with
no host synchronisation, and re-weighting some units touches only their blocks' rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["BLOCK", "BlockCategorical", "sorted_uniforms"]

BLOCK = 16
"""Units per block of the two-level distribution."""

_CHUNK_BLOCKS = 2**20

_ROWS_PER_PASS = 2**14
"""Draws whose rows a CPU draw handles at a time (a 1 MiB slice of rows; larger draws are sliced)."""


def sorted_uniforms(
    n: int, *, generator: torch.Generator | None, device: torch.device, stratified: bool = False
) -> torch.Tensor:
    """``n`` independent U[0, 1) variates in ascending order, float64, without a sort.

    Normalised prefix sums of n + 1 exponential variates are the order statistics of n
    uniforms. ``stratified=True`` instead places one variate in each of n equal strata.
    """
    if stratified:
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        return (torch.arange(n, device=device, dtype=torch.float64) + u) / n
    spacings = torch.empty(n + 1, device=device, dtype=torch.float64).exponential_(generator=generator)
    sums = spacings.cumsum(0)
    return (sums[:-1] / sums[-1]).clamp_(max=1.0 - 2.0**-53)


class BlockCategorical:
    """A categorical distribution over ``num_units`` ids, drawn exactly at any size.

    Two levels: a float64 CDF over blocks of :data:`BLOCK` units, and each unit's float32 weight
    (its mass). Inside a block, draws and :meth:`probability` both read the float32 running sum
    of the block's masses, and a block's entry in the CDF is that running sum's last value, so
    importance weights match the distribution actually drawn from. A positive mass below 2^-21 of
    its block's total is raised to that floor: smaller ones could vanish in the running sum.

    Args:
        weights: non-negative float weights, one per unit, not all zero.
    """

    def __init__(self, weights: torch.Tensor) -> None:
        if weights.ndim != 1 or weights.numel() == 0:
            raise ValueError(f"weights must be a non-empty 1-D tensor, got shape {tuple(weights.shape)}")
        self.num_units = weights.numel()
        num_blocks = -(-self.num_units // BLOCK)
        mass = torch.zeros(num_blocks, BLOCK, dtype=torch.float32, device=weights.device)
        mass.view(-1)[: self.num_units] = weights
        block_mass = torch.empty(num_blocks, dtype=torch.float64, device=weights.device)
        self.last_positive = torch.empty(num_blocks, dtype=torch.uint8, device=weights.device)
        # A slice at a time, to bound the temporary memory.
        for start in range(0, num_blocks, _CHUNK_BLOCKS):
            part = slice(start, start + _CHUNK_BLOCKS)
            block_mass[part], positive = _lift(mass[part])
            self.last_positive[part] = _last_of(positive)
        self.mass = mass
        self._power_sums: dict[float, torch.Tensor] = {}
        self._sum_blocks(block_mass)

    @classmethod
    def from_mass(cls, mass: torch.Tensor, block_cdf: torch.Tensor, num_units: int) -> BlockCategorical:
        """Rebuild from saved masses and block CDF (``self.mass``, ``self.block_cdf``), bit for bit."""
        if mass.ndim != 2 or mass.shape[1] != BLOCK or mass.numel() < num_units or block_cdf.shape != (len(mass) + 1,):
            raise ValueError(f"mass must have shape (blocks, {BLOCK}) covering {num_units} units, block_cdf blocks + 1")
        self = cls.__new__(cls)
        self.num_units = num_units
        self.mass = mass.to(torch.float32)
        self._power_sums = {}
        self.last_positive = torch.empty(len(mass), dtype=torch.uint8, device=mass.device)
        for start in range(0, len(mass), _CHUNK_BLOCKS):
            part = slice(start, start + _CHUNK_BLOCKS)
            self.last_positive[part] = _last_of(self.mass[part] > 0)
        self._index_blocks(block_cdf.to(torch.float64))
        return self

    @classmethod
    def from_prefix(cls, prefix: torch.Tensor, num_units: int) -> BlockCategorical:
        """From in-block float32 prefix sums (states saved before the distribution kept masses):
        the same distribution up to float32 rounding of each unit's mass."""
        if prefix.ndim != 2 or prefix.shape[1] != BLOCK or prefix.numel() < num_units:
            raise ValueError(f"prefix must have shape (blocks, {BLOCK}) covering {num_units} units")
        wide = prefix.to(torch.float64)
        mass = torch.diff(wide, dim=1, prepend=wide.new_zeros(len(wide), 1)).clamp_(min=0.0)
        return cls(mass.view(-1)[:num_units].to(torch.float32))

    def _sum_blocks(self, block_mass: torch.Tensor) -> None:
        """The block CDF from the blocks' totals (float64): mass before each block, then the total."""
        self._index_blocks(torch.cat((block_mass.new_zeros(1), block_mass.cumsum(0))))

    def _index_blocks(self, block_cdf: torch.Tensor) -> None:
        self.block_cdf = block_cdf
        self.total = block_cdf[-1]
        # Kept on the device: a draw clamps against it without a host round trip.
        has_mass = (block_cdf[1:] > block_cdf[:-1]).flip(0).view(torch.uint8)
        self._last_block = len(block_cdf) - 2 - has_mass.argmax()

    @property
    def device(self) -> torch.device:
        return self.mass.device

    def refresh(self, ids: torch.Tensor, weights: torch.Tensor, *, ascending: bool = False) -> None:
        """Give the units ``ids`` new ``weights`` in place, touching only their blocks.

        A repeated id must carry the same weight each time; ``ascending=True`` promises the ids are
        sorted, which spares a sort when power sums are kept. Every other unit keeps its mass bit for
        bit (unless its block's new total lifts it to the floor); the block CDF is summed again (one
        pass over the blocks, a sixteenth of the units), so a refresh costs a few passes over the
        batch's rows where a rebuild costs several over every unit.
        """
        if self._power_sums and not ascending:
            ids, order = torch.sort(ids)
            weights = weights.index_select(0, order)
        previous = self.mass.view(-1).index_select(0, ids) if self._power_sums else None
        block = torch.div(ids, BLOCK, rounding_mode="floor")
        self.mass.view(-1).index_copy_(0, ids, weights.to(torch.float32))
        # Each touched block's row, lifted and summed again; rows of a repeated block are identical.
        rows = self.mass.index_select(0, block)
        totals, positive = _lift(rows)
        self.mass.index_copy_(0, block, rows)
        self.last_positive.index_copy_(0, block, _last_of(positive))
        # Every other block keeps the share it has in the CDF (the CDF's own differences; no array
        # of block totals is kept, which holds the state at 4.6 bytes a unit).
        self._sum_blocks(torch.diff(self.block_cdf).index_copy_(0, block, totals))
        if previous is not None:
            current = self.mass.view(-1).index_select(0, ids)
            first = torch.ones_like(ids, dtype=torch.bool)
            first[1:] = ids[1:] != ids[:-1]
            for exponent, total in self._power_sums.items():
                change = current.to(torch.float64).pow(exponent) - previous.to(torch.float64).pow(exponent)
                total.add_(torch.where(first, change, 0.0).sum())

    def power_sum(self, exponent: float) -> torch.Tensor:
        """The sum over units of ``mass ** exponent`` (float64, 0-d), for exponents in (0, 1].

        Soft importance weights are normalised by it. The first call for an exponent is one pass over
        every unit; later refreshes then update the sum by the units they re-weight, so a sampler that
        refreshes at every update need not pass over the population again until its next rebuild.
        Masses a refresh lifts to the floor beside the re-weighted units are not followed.
        """
        if not 0.0 < exponent <= 1.0:
            raise ValueError(f"exponent must be in (0, 1], got {exponent!r}")
        if exponent not in self._power_sums:
            # float32 powers (a few ulps each) summed in float64: a third of the float64 pass's time.
            masses = self.mass.view(-1)[: self.num_units]
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for part in masses.split(_CHUNK_BLOCKS * BLOCK):
                total += part.pow(exponent).sum(dtype=torch.float64)
            self._power_sums[exponent] = total
        return self._power_sums[exponent].clone()

    def power_sums(self) -> dict[float, torch.Tensor]:
        """The power sums kept so far, by exponent (for a state dict)."""
        return {exponent: total.clone() for exponent, total in self._power_sums.items()}

    def load_power_sums(self, sums: dict[float, torch.Tensor]) -> None:
        """Take power sums saved with :meth:`power_sums` for these masses."""
        self._power_sums = {float(e): t.to(self.device, torch.float64).clone() for e, t in sums.items()}

    def nbytes(self) -> int:
        """Bytes held by the distribution."""
        return self.mass.numel() * 4 + self.block_cdf.numel() * 8 + self.last_positive.numel()

    def sample_from_uniforms(self, u: torch.Tensor) -> torch.Tensor:
        """Map float64 uniforms in [0, 1) to unit ids (ascending uniforms give ascending ids)."""
        x = u * self.total
        block = torch.minimum(torch.searchsorted(self.block_cdf[1:], x, right=True), self._last_block)
        # Compared in float32 against the residual rounded down, which is exact.
        bound = _round_down_to_float32(x - self.block_cdf.index_select(0, block))
        return block * BLOCK + _by_slices(self._offsets, block, bound)

    def _offsets(self, block: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        """The unit of each ``block`` whose interval of the block's running sum holds ``bound``: the count
        of running sums at or below it in the block's one 64-byte row."""
        at_or_below = _running_sums(self.mass.index_select(0, block)) <= bound.unsqueeze(1)
        offset = at_or_below.view(torch.uint8).sum(1, dtype=torch.uint8)  # 0..16; int64 sums cost 10x
        # Rounding can leave the residual at or past the block's total: take its last positive unit.
        return torch.minimum(offset, self.last_positive.index_select(0, block))

    def _unit_mass(self, ids: torch.Tensor) -> torch.Tensor:
        """Each unit's interval in its block's running sum: what a draw gives it, exactly."""
        return _by_slices(self._intervals_of, ids)

    def _intervals_of(self, ids: torch.Tensor) -> torch.Tensor:
        block = torch.div(ids, BLOCK, rounding_mode="floor")
        return _intervals(_running_sums(self.mass.index_select(0, block)), (ids - block * BLOCK).unsqueeze(1))

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        """Probability of drawing each id under the stored distribution, float64."""
        return self._unit_mass(ids) / self.total

    def masses_between(self, start: int, stop: int) -> torch.Tensor:
        """The float32 masses of units ``start`` to ``stop`` (a view; the total is :attr:`total`)."""
        return self.mass.view(-1)[start:stop]

    def probabilities(self) -> torch.Tensor:
        """The whole distribution as a float32 tensor summing to 1."""
        sums = _running_sums(self.mass).to(torch.float64)
        mass = torch.diff(sums, dim=1, prepend=sums.new_zeros(len(sums), 1))
        return (mass.view(-1)[: self.num_units] / self.total).to(torch.float32)


_LIFT = 2.0**-21
"""A positive mass's floor, relative to its block's total: at least 4 ulps of any float32 running sum in the block."""


def _by_slices(rows_of: Callable[..., torch.Tensor], *per_id: torch.Tensor) -> torch.Tensor:
    """``rows_of(*per_id)``, which gathers a 64-byte row per id; on the CPU, large batches go
    :data:`_ROWS_PER_PASS` ids at a time so that the rows and their running sums stay in cache
    (a draw of 2^20 ids from 2^24 units takes about 0.6x the time). The result is the same."""
    if per_id[0].device.type != "cpu" or len(per_id[0]) <= _ROWS_PER_PASS:
        return rows_of(*per_id)
    slices = zip(*(t.split(_ROWS_PER_PASS) for t in per_id), strict=True)
    return torch.cat([rows_of(*part) for part in slices])


def _running_sums(rows: torch.Tensor) -> torch.Tensor:
    """Each row's inclusive running sum (float32): the one definition draws and probabilities read."""
    return rows.cumsum(1)


def _intervals(sums: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
    """The length of each row's interval ``column`` (a column of indices) in its running sums."""
    upper = sums.gather(1, column)
    lower = torch.where(column > 0, sums.gather(1, (column - 1).clamp_(min=0)), 0.0)
    return (upper.to(torch.float64) - lower.to(torch.float64)).squeeze(1)  # float32 differences, exact


def _lift(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise every positive mass of the float32 ``rows`` (in place) to at least :data:`_LIFT` of its
    row's total, so that it moves the row's running sum. Returns each row's total (that sum's last
    value, float64) and where the masses are positive."""
    floor = (rows.to(torch.float64).sum(1, keepdim=True) * _LIFT).to(torch.float32)
    positive = rows > 0
    # Masses are non-negative: a zero stays zero against a floor of 0 (cheaper than a select on a CPU).
    torch.maximum(rows, floor * positive.view(torch.uint8), out=rows)
    return _running_sums(rows)[:, -1].to(torch.float64), positive


def _last_of(positive: torch.Tensor) -> torch.Tensor:
    """Each row's last true position (uint8; 0 for a row without one)."""
    positions = torch.arange(BLOCK, device=positive.device, dtype=torch.uint8)
    return (positive.view(torch.uint8) * positions).amax(1)


def _round_down_to_float32(x: torch.Tensor) -> torch.Tensor:
    """The largest float32 at or below each float64 ``x``: for a float32 ``p``, ``p <= x`` exactly when
    ``p <= _round_down_to_float32(x)``, so comparisons against float32 data stay in float32."""
    nearest = x.to(torch.float32)
    below = torch.nextafter(nearest, nearest.new_full((), -math.inf))
    return torch.where(nearest.to(torch.float64) > x, below, nearest)
