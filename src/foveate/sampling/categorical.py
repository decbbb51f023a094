"""Exact categorical draws over very large populations.

``torch.multinomial`` refuses more than 2^24 categories and a float32 CDF loses
per-entry resolution once its running sum is large (near 3.3e7 its spacing is 2-4).
:class:`BlockCategorical` keeps a float64 CDF over blocks of :data:`BLOCK` units and
float32 prefix sums inside each block. Memory is about 4.6 bytes per unit; a draw
costs one ``searchsorted`` over the blocks and one gather of its block's prefix sums (a
64-byte row), about a dozen kernels with no host synchronisation.
"""

from __future__ import annotations

import math

import torch

__all__ = ["BLOCK", "BlockCategorical", "sorted_uniforms"]

BLOCK = 16
"""Units per block of the two-level distribution."""

_CHUNK_BLOCKS = 2**20


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

    Two levels: a float64 CDF over blocks of :data:`BLOCK` units, and inside each block the
    inclusive prefix sums of its weights in float32. A unit's stored share is thus resolved
    to float32 precision *of its own block's mass*, never of the running total, and draws
    and :meth:`probability` use exactly the stored numbers, so importance weights match the
    distribution actually drawn from.

    Args:
        weights: non-negative float weights, one per unit, not all zero.
    """

    def __init__(self, weights: torch.Tensor) -> None:
        if weights.ndim != 1 or weights.numel() == 0:
            raise ValueError(f"weights must be a non-empty 1-D tensor, got shape {tuple(weights.shape)}")
        self.num_units = weights.numel()
        num_blocks = -(-self.num_units // BLOCK)
        device = weights.device
        if self.num_units == num_blocks * BLOCK:
            blocks = weights.to(torch.float32).view(num_blocks, BLOCK)
        else:
            blocks = torch.zeros(num_blocks, BLOCK, dtype=torch.float32, device=device)
            blocks.view(-1)[: self.num_units] = weights
        prefix = torch.empty_like(blocks)
        # Prefix sums in float64, a slice at a time, to bound the temporary memory.
        for start in range(0, num_blocks, _CHUNK_BLOCKS):
            part = slice(start, start + _CHUNK_BLOCKS)
            sums = blocks[part].to(torch.float64).cumsum(1).to(torch.float32)
            prefix[part] = _lifted(sums, blocks[part] > 0)
        self._index(prefix)

    @classmethod
    def from_prefix(cls, prefix: torch.Tensor, num_units: int) -> BlockCategorical:
        """Rebuild from saved in-block prefix sums (``self.prefix``), bit for bit."""
        if prefix.ndim != 2 or prefix.shape[1] != BLOCK or prefix.numel() < num_units:
            raise ValueError(f"prefix must have shape (blocks, {BLOCK}) covering {num_units} units")
        self = cls.__new__(cls)
        self.num_units = num_units
        self._index(prefix.to(torch.float32))
        return self

    def _index(self, prefix: torch.Tensor) -> None:
        self.prefix = prefix
        self.last_positive = _last_positive(prefix)
        self._sum_blocks()

    def _sum_blocks(self) -> None:
        """The block CDF, the total and the last block with mass, from the prefix sums."""
        # Mass before each block, then the total: a drawn block's start is one gather away.
        block_mass = self.prefix[:, -1].contiguous()
        self.block_cdf = torch.cat(
            (block_mass.new_zeros(1, dtype=torch.float64), block_mass.cumsum(0, dtype=torch.float64))
        )
        self.total = self.block_cdf[-1]
        # Kept on the device: a draw clamps against it without a host round trip.
        has_mass = (block_mass > 0).flip(0).view(torch.uint8)
        self._last_block = len(block_mass) - 1 - has_mass.argmax()

    @property
    def device(self) -> torch.device:
        return self.prefix.device

    def refresh(self, ids: torch.Tensor, weights: torch.Tensor) -> None:
        """Give the units ``ids`` new ``weights`` in place, touching only their blocks.

        ``ids`` must be sorted (repeats allowed; a repeated id's first weight counts). Every other
        unit keeps its stored share bit for bit; the block CDF is summed again (one pass over the
        blocks, a sixteenth of the units), so a refresh costs a few passes over the batch's rows
        where a rebuild costs a dozen over every unit.
        """
        block = torch.div(ids, BLOCK, rounding_mode="floor")
        column = ids - block * BLOCK
        rows = self.prefix.index_select(0, block).to(torch.float64)
        # The stored masses: differences of float32 prefix sums, exact in float64.
        mass = rows.clone()
        mass[:, 1:].sub_(rows[:, :-1])
        # Each row's cell for its own id, and the run of rows sharing its block (a sorted batch).
        row_start = torch.arange(0, len(ids) * BLOCK, BLOCK, device=ids.device)
        first = _starts_of_runs(ids)
        change = torch.where(first, weights.to(torch.float64) - mass.view(-1).index_select(0, row_start + column), 0.0)
        run = _starts_of_runs(block).cumsum(0).sub_(1)
        # Every change of a block's run, gathered into one row, then given to each row of the run.
        changes = torch.zeros_like(mass).view(-1).index_add_(0, run * BLOCK + column, change).view_as(mass)
        mass.add_(changes.index_select(0, run)).clamp_(min=0.0)
        fresh, count = _lifted_with_count(mass.cumsum(1).to(torch.float32), mass > 0)
        self.prefix.index_copy_(0, block, fresh)
        # The running count of positive units first reaches its total at the last positive unit.
        self.last_positive.index_copy_(0, block, count.argmax(1).to(torch.uint8))
        self._sum_blocks()

    def nbytes(self) -> int:
        """Bytes held by the distribution."""
        return self.prefix.numel() * 4 + self.block_cdf.numel() * 8 + self.last_positive.numel()

    def sample_from_uniforms(self, u: torch.Tensor) -> torch.Tensor:
        """Map float64 uniforms in [0, 1) to unit ids (ascending uniforms give ascending ids)."""
        x = u * self.total
        block = torch.minimum(torch.searchsorted(self.block_cdf[1:], x, right=True), self._last_block)
        residual = x - self.block_cdf.index_select(0, block)
        # The first prefix sum of the block above the residual: count those at or below it in the
        # block's one 64-byte row (a fixed handful of kernels, where a binary search takes four
        # dependent gathers).
        rows = self.prefix.index_select(0, block)
        at_or_below = rows <= _round_down_to_float32(residual).unsqueeze(1)
        offset = at_or_below.view(torch.uint8).sum(1, dtype=torch.uint8)  # 0..16; int64 sums cost 10x
        # Rounding can leave the residual at or past the block's total: take its last positive unit.
        offset = torch.minimum(offset, self.last_positive.index_select(0, block))
        return block * BLOCK + offset

    def _unit_mass(self, ids: torch.Tensor) -> torch.Tensor:
        flat = self.prefix.view(-1)
        upper = flat.index_select(0, ids).to(torch.float64)
        below = flat.index_select(0, (ids - 1).clamp(min=0)).to(torch.float64)
        lower = torch.where(ids % BLOCK > 0, below, torch.zeros_like(upper))
        return upper - lower

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        """Probability of drawing each id under the stored distribution, float64."""
        return self._unit_mass(ids) / self.total

    def probabilities(self) -> torch.Tensor:
        """The whole distribution as a float32 tensor summing to 1."""
        prefix = self.prefix.to(torch.float64)
        mass = torch.diff(prefix, dim=1, prepend=prefix.new_zeros(len(prefix), 1))
        return (mass.view(-1)[: self.num_units] / self.total).to(torch.float32)


def _last_positive(prefix: torch.Tensor) -> torch.Tensor:
    """Each row's last position whose prefix sum rises (uint8; 0 for a row without mass)."""
    positive = torch.diff(prefix, dim=1, prepend=torch.zeros_like(prefix[:, :1])) > 0
    positions = torch.arange(BLOCK, device=prefix.device, dtype=torch.uint8)
    return torch.where(positive, positions, torch.zeros_like(positions)).amax(1)


def _lifted(prefix: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """In-block prefix sums with every positive unit at least one ulp above its predecessor.

    A share below float32 resolution of its block would otherwise round to zero and never be
    drawn. The floor is ``q[p] = max(prefix[p], nextafter(q[p - 1]))`` where unit ``p`` is
    positive (``q[p - 1]`` elsewhere). Non-negative float32 values order like their bit patterns,
    where ``nextafter`` adds one, so with ``c`` the running count of positive units,
    ``q - c`` is a running maximum of ``prefix - c``: one pass instead of a step per position.
    """
    return _lifted_with_count(prefix, positive)[0]


def _lifted_with_count(prefix: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_lifted`, and the running count of positive units per row (int32)."""
    count = positive.to(torch.int32).cumsum(1, dtype=torch.int32)
    floor = (prefix.view(torch.int32) - count).cummax(1).values
    return (floor + count).view(torch.float32), count


def _starts_of_runs(values: torch.Tensor) -> torch.Tensor:
    """Where each run of equal neighbours in ``values`` begins (bool)."""
    starts = torch.ones_like(values, dtype=torch.bool)
    torch.ne(values[1:], values[:-1], out=starts[1:])
    return starts


def _round_down_to_float32(x: torch.Tensor) -> torch.Tensor:
    """The largest float32 at or below each float64 ``x``: for a float32 ``p``, ``p <= x`` exactly when
    ``p <= _round_down_to_float32(x)``, so comparisons against float32 data stay in float32."""
    nearest = x.to(torch.float32)
    below = torch.nextafter(nearest, nearest.new_full((), -math.inf))
    return torch.where(nearest.to(torch.float64) > x, below, nearest)
