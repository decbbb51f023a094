"""Training a universe on several machines: ``torchrun`` ranks sharing one schedule.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every rank joins one process group
(gloo, which runs everywhere; the cells' own work stays on each rank's device) and takes its share
of the cells: every ``world``-th job of the equal schedule, or of each round the budget's engine
draws on rank 0 and broadcasts. Results come back to every rank with ``gather``; rank 0 writes the
shared files. Alone, every method is a no-op and the rank is 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Ranks", "ranks"]


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks, and the few collective steps a universe run needs."""

    rank: int = 0
    world: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def share(self, items: list[Any]) -> list[Any]:
        """This rank's share of ``items``: every ``world``-th, from its own rank."""
        return items[self.rank :: self.world]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def ranks() -> Ranks:
    """The ranks ``torchrun`` started (joining their process group on first use), or a lone rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())
