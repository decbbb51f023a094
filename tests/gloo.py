"""Run a function on two (or more) gloo ranks spawned on this machine and collect what each returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run_on_ranks(worker: Callable[[int], Any], folder: Path, world: int = 2) -> list[Any]:
    """``worker(rank)`` in ``world`` spawned processes joined in one gloo group; their results in rank order.

    ``worker`` must be a module-level function (it is pickled into the spawned processes).
    """
    mp.spawn(_entry, args=(world, str(folder), worker), nprocs=world, join=True)
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in range(world)]


def _entry(rank: int, world: int, folder: str, worker: Callable[[int], Any]) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    torch.save(worker(rank), Path(folder) / f"rank{rank}.pt")
    dist.destroy_process_group()
