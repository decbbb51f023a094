"""Exact categorical draws over very large populations.

``torch.multinomial`` refuses more than 2^24 categories and a float32 CDF loses
per-entry resolution once its running sum is large. :class:`BlockCategorical`
keeps the per-unit weights in float32 (exact relative precision) and a float64
CDF over blocks of :data:`BLOCK` units; a draw finds its block by binary search
and its unit by a float64 prefix sum over that block's weights. Memory is
4 bytes per unit plus 8 bytes per block; a draw costs one ``searchsorted`` and
one gather of ``BLOCK`` weights per id, with no host synchronisation.
"""

from __future__ import annotations

import torch

__all__ = ["BLOCK", "BlockCategorical", "sorted_uniforms"]

BLOCK = 16
"""Units per block of the two-level distribution."""


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

    Args:
        weights: non-negative float weights, one per unit, not all zero.
    """

    def __init__(self, weights: torch.Tensor) -> None:
        if weights.ndim != 1 or weights.numel() == 0:
            raise ValueError(f"weights must be a non-empty 1-D tensor, got shape {tuple(weights.shape)}")
        self.num_units = weights.numel()
        num_blocks = -(-self.num_units // BLOCK)
        padded = torch.zeros(num_blocks * BLOCK, dtype=torch.float32, device=weights.device)
        padded[: self.num_units] = weights
        self.weights = padded.view(num_blocks, BLOCK)
        block_mass = self.weights.sum(dim=1, dtype=torch.float64)
        self.block_cdf = block_mass.cumsum(0)
        self.total = self.block_cdf[-1]
        # Kept on the device: a draw clamps against it without a host round trip.
        block_index = torch.arange(num_blocks, device=weights.device)
        self._last_block = torch.where(block_mass > 0, block_index, torch.zeros_like(block_index)).amax()

    @property
    def device(self) -> torch.device:
        return self.weights.device

    def nbytes(self) -> int:
        """Bytes held by the distribution."""
        return self.weights.numel() * 4 + self.block_cdf.numel() * 8

    def sample_from_uniforms(self, u: torch.Tensor) -> torch.Tensor:
        """Map float64 uniforms in [0, 1) to unit ids (ascending uniforms give ascending ids)."""
        x = u * self.total
        block = torch.searchsorted(self.block_cdf, x, right=True)
        block = torch.minimum(block, self._last_block)
        prev = torch.where(block > 0, self.block_cdf[(block - 1).clamp_(min=0)], torch.zeros_like(x))
        residual = (x - prev).unsqueeze(1)
        local = self.weights[block].to(torch.float64)
        within = (local.cumsum(1) <= residual).sum(1)
        # Rounding can push the residual past the block's last positive weight: clamp to it.
        positions = torch.arange(BLOCK, device=self.device)
        last_positive = torch.where(local > 0, positions, torch.zeros_like(positions)).amax(1)
        within = torch.minimum(within, last_positive)
        return block * BLOCK + within

    def probability(self, ids: torch.Tensor) -> torch.Tensor:
        """Exact probability of each id, float64."""
        return self.weights.view(-1)[ids].to(torch.float64) / self.total

    def probabilities(self) -> torch.Tensor:
        """The whole distribution as a float32 tensor summing to 1."""
        return (self.weights.view(-1)[: self.num_units].to(torch.float64) / self.total).to(torch.float32)
