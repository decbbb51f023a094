"""Per-unit running statistics: an EMA of the error signal and a visit count."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["BatchReduction", "UnitStatistics", "reduce_duplicates"]

VISITS_MAX = 255
"""Visit counts saturate here: one byte per unit keeps large populations small."""


@dataclass
class BatchReduction:
    """One update batch with duplicate ids collapsed, in fixed-size tensors (no host sync).

    ``ids`` is sorted; every position of a run of equal ids carries the run's mean of the
    finite errors in ``mean`` and the number of finite errors in ``count`` (0: nothing to apply).
    """

    ids: torch.Tensor
    mean: torch.Tensor
    count: torch.Tensor
    nonfinite: torch.Tensor


def reduce_duplicates(ids: torch.Tensor, errors: torch.Tensor, *, ascending: bool = False) -> BatchReduction:
    """Collapse repeated ids to the mean of their finite errors; count the non-finite ones.

    ``ascending=True`` promises that ``ids`` are sorted already and skips the sort."""
    if ascending:
        sorted_ids, values = ids, errors.to(torch.float32)
    else:
        sorted_ids, order = torch.sort(ids)
        values = errors.index_select(0, order).to(torch.float32)
    finite = torch.isfinite(values)
    # Every position of a run of equal ids gets the run's number.
    run = torch.diff(sorted_ids, prepend=sorted_ids[:1]).ne_(0).cumsum(0)
    sums = torch.zeros_like(values).index_add_(0, run, torch.where(finite, values, 0.0))
    counts = torch.zeros_like(values).index_add_(0, run, finite.to(torch.float32))
    count = counts.index_select(0, run)
    mean = sums.index_select(0, run) / count.clamp(min=1.0)
    return BatchReduction(sorted_ids, mean, count, finite.numel() - finite.sum())


class UnitStatistics:
    """EMA error and visit count for every unit, held on one device.

    A unit never visited holds an error of exactly 0: only a visit writes a unit's error.

    Args:
        num_units: population size.
        decay: EMA decay; a visited unit's error becomes ``decay * old + (1 - decay) * new``.
            The first observation of a unit sets its error directly.
        error_dtype: storage dtype of the EMA (float32, or bfloat16 to halve memory).
        device: where the tensors live.
    """

    def __init__(self, num_units: int, decay: float, error_dtype: torch.dtype, device: torch.device) -> None:
        self.num_units = num_units
        self.decay = decay
        self.error = torch.zeros(num_units, dtype=error_dtype, device=device)
        self.visits = torch.zeros(num_units, dtype=torch.uint8, device=device)
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=device)

    def observe(self, batch: BatchReduction) -> torch.Tensor:
        """Fold a reduced batch in; returns each position's error before the update (float32)."""
        ids = batch.ids
        old = self.error.index_select(0, ids).to(torch.float32)
        visits = self.visits.index_select(0, ids)
        # A first visit sets the error; later ones blend into it.
        new = torch.where(visits > 0, self.decay * old + (1.0 - self.decay) * batch.mean, batch.mean)
        new = torch.where(batch.count > 0, new, old)
        # Every position of a run writes the same value, so duplicate writes agree.
        self.error.index_copy_(0, ids, new.to(self.error.dtype))
        visits = (visits.to(torch.float32) + batch.count).clamp_(max=VISITS_MAX).to(torch.uint8)
        self.visits.index_copy_(0, ids, visits)
        self.nonfinite += batch.nonfinite
        return old

    def visited(self) -> torch.Tensor:
        return self.visits > 0

    def filled_error(self, prior: float | str) -> torch.Tensor:
        """Errors as float32 with never-visited units set to the optimistic prior.

        ``prior="max"`` uses the largest error seen so far (1.0 before any observation),
        so unvisited units are drawn at least as often as the worst visited one.
        """
        # A never-visited unit's error is exactly 0 (only visits write it), so adding the prior
        # to those units alone fills them: the same values as a select, at a third of its time on a CPU.
        unvisited = (self.visits == 0).view(torch.uint8).to(torch.float32)
        return torch.addcmul(self.error.to(torch.float32), unvisited, self.prior_value(prior))

    def prior_value(self, prior: float | str) -> torch.Tensor:
        """The error assumed for never-visited units, a float32 scalar on the device (see ``filled_error``)."""
        if prior != "max":
            return torch.tensor(float(prior), device=self.error.device)
        # Never-visited units hold 0, so the largest error is the visited units' largest, or 0.
        worst = self.error.amax().to(torch.float32)
        return torch.where(self.visits.amax() > 0, worst, torch.ones_like(worst))

    def filled_error_of(self, ids: torch.Tensor, prior_value: torch.Tensor) -> torch.Tensor:
        """``filled_error`` at ``ids`` alone, with a given prior value (float32)."""
        error = self.error.index_select(0, ids).to(torch.float32)
        return torch.where(self.visits.index_select(0, ids) > 0, error, prior_value)

    def nbytes(self) -> int:
        return self.error.numel() * self.error.element_size() + self.visits.numel()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"error": self.error, "visits": self.visits, "nonfinite": self.nonfinite}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("error", "visits", "nonfinite"):
            current = getattr(self, name)
            value = state[name]
            if value.shape != current.shape:
                raise ValueError(
                    f"state_dict[{name!r}] has shape {tuple(value.shape)}, expected {tuple(current.shape)}"
                )
            current.copy_(value.to(device=current.device, dtype=current.dtype))
