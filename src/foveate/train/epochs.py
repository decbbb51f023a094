"""Shuffled epochs: how a data loader serves units, the baseline the engine's draws are compared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["ShuffledEpochs"]


class ShuffledEpochs:
    """Every unit once per epoch, in a fresh random order each epoch (``DataLoader(shuffle=True)``).

    A batch that crosses an epoch's end takes the rest of the old order and the start of a new
    one, so batches stay full and no unit is skipped. Orders come from the epochs' own generator
    (seeded by ``seed``; torch's global one without it), and the orders, the position and the
    generator are in :meth:`state_dict`: a resume continues the same sequence. An own generator
    keeps the orders identical on every rank of a distributed run, whatever else draws random
    numbers there.

    Args:
        count: the number of units.
        device: where the ids live.
        seed: seeds the epochs' own generator.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> epochs = ShuffledEpochs(4)
        >>> sorted(torch.cat([epochs.next(3), epochs.next(1)]).tolist())
        [0, 1, 2, 3]
    """

    def __init__(self, count: int, device: torch.device | str = "cpu", seed: int | None = None) -> None:
        if count < 1:
            raise ValueError(f"shuffled epochs need at least one unit, got {count}")
        self.count = count
        self.device = torch.device(device)
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.order = self._shuffled()
        self.cursor = 0

    def _shuffled(self) -> torch.Tensor:
        if self.generator is None:
            return torch.randperm(self.count, device=self.device)
        return torch.randperm(self.count, generator=self.generator).to(self.device)

    def next(self, batch: int) -> torch.Tensor:
        """The next ``batch`` unit ids (none for a batch of 0)."""
        taken = [self.order[:0]]
        while batch > 0:
            if self.cursor >= self.count:
                self.order = self._shuffled()
                self.cursor = 0
            ids = self.order[self.cursor : self.cursor + batch]
            taken.append(ids)
            self.cursor += len(ids)
            batch -= len(ids)
        return torch.cat(taken)

    def state_dict(self) -> dict[str, Any]:
        state = {"order": self.order.clone(), "cursor": self.cursor}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        order = state["order"]
        if len(order) != self.count:
            raise ValueError(f"the checkpoint's epoch order has {len(order)} units, this task has {self.count}")
        self.order = order.to(self.device)
        self.cursor = int(state["cursor"])
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])
