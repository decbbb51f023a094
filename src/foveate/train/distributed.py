"""Training under ``torchrun``: this process's rank, and the few collective steps the loop needs.

``torchrun`` (or ``python -m torch.distributed.run``) starts one process per device and sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`join` makes every process join one
torch.distributed group (NCCL when training on CUDA, gloo otherwise) and returns its
:class:`Ranks`. Alone, every method is a no-op and the process is rank 0 of 1, so the loop calls
them unconditionally.

How the loop spreads a run (see ``docs/distributed.md``): every rank holds the whole model and the
whole sampler; the sampler draws the global batch identically on every rank and each takes its
slice; gradients are averaged with one all-reduce per optimizer step; the per-unit errors are
all-gathered so every rank's statistics stay identical; rank 0 validates, logs and writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["ALONE", "Ranks", "first_process", "join", "leave", "local_batch", "rank_device", "ranks", "world_size"]

_joined: Ranks | None = None


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of a run.

    Attributes:
        rank: this process's rank, 0 to ``world - 1``.
        world: the number of processes.
        local_rank: the rank on this machine (which GPU it uses).
        control: a gloo group for host-side flags (stop requests); None uses the default group.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    control: Any = None

    @property
    def leader(self) -> bool:
        """Rank 0: the one that validates, logs and writes."""
        return self.rank == 0

    @property
    def alone(self) -> bool:
        return self.world == 1

    def share(self, items: list[Any]) -> list[Any]:
        """This rank's share of ``items``: every ``world``-th, from its own rank."""
        return items[self.rank :: self.world]

    def local(self, values: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (its length must divide by the world size)."""
        if self.world == 1:
            return values
        size = local_batch(len(values), self.world)
        return values[self.rank * size : (self.rank + 1) * size]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, *flags: bool) -> list[bool]:
        """For each flag, whether any rank raised it (host values, over the control group: no device sync)."""
        if self.world == 1:
            return list(flags)
        import torch.distributed as dist

        values = torch.tensor([int(flag) for flag in flags], dtype=torch.int32)
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self.control)
        return [bool(value) for value in values.tolist()]

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of each of ``values`` (same keys on every rank)."""
        if self.world == 1 or not values:
            return values
        import torch.distributed as dist

        keys = sorted(values)
        stacked = torch.tensor([float(values[key]) for key in keys], dtype=torch.float64)
        dist.all_reduce(stacked, group=self.control)
        return {key: value / self.world for key, value in zip(keys, stacked.tolist(), strict=True)}

    def sum_(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over the ranks, in place."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor)

    def average_gradients(self, parameters: list[nn.Parameter]) -> None:
        """Replace each gradient by its mean over the ranks: one all-reduce per dtype, as DDP's buckets do.

        Every rank must hold gradients for the same parameters (the same graph on different data).
        """
        if self.world == 1:
            return
        import torch.distributed as dist

        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for parameter in parameters:
            if parameter.grad is not None:
                by_dtype.setdefault(parameter.grad.dtype, []).append(parameter.grad)
        for grads in by_dtype.values():
            flat = torch.cat([grad.reshape(-1) for grad in grads])
            dist.all_reduce(flat)
            flat /= self.world
            offset = 0
            for grad in grads:
                grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
                offset += grad.numel()

    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``module`` (what DDP does at start)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def check_identical(self, module: nn.Module, step: int) -> None:
        """Raise if the ranks' copies of ``module`` differ (sizes or a float64 sum per tensor).

        The loop checks at every checkpoint: ranks that drifted apart would train different models
        while rank 0 saved only its own.
        """
        if self.world == 1:
            return
        tensors = [*module.parameters()]
        sizes = [tensor.numel() for tensor in tensors]
        with torch.no_grad():
            sums = torch.stack([tensor.detach().double().sum() for tensor in tensors]).cpu() if tensors else None
        prints = self.gather((sizes, sums))
        first_sizes, first_sums = prints[0]
        for rank, (other_sizes, other_sums) in enumerate(prints[1:], start=1):
            same = other_sizes == first_sizes and (first_sums is None or torch.equal(other_sums, first_sums))
            if not same:
                raise RuntimeError(
                    f"rank {rank}'s model differs from rank 0's at step {step} "
                    f"({sum(other_sizes)} against {sum(first_sizes)} values): the ranks diverged; please report it"
                )

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm's running statistics) to every rank."""
        if self.world == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for buffer in module.buffers():
                dist.broadcast(buffer.data, src=0)


ALONE = Ranks()
"""A process on its own: rank 0 of 1."""


def local_batch(batch: int, world: int) -> int:
    """Each rank's share of a global batch; it must divide evenly."""
    if batch % world:
        raise ValueError(f"the batch ({batch}) must divide by the number of processes ({world}) under torchrun")
    return batch // world


def first_process() -> bool:
    """Whether this process is rank 0 (or alone): the one that prints what every rank would."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """The number of processes ``torchrun`` started (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join(device: torch.device | None = None) -> Ranks:
    """Join the run's process group (once) and return this process's ranks; a lone process gets ``Ranks()``.

    The backend is NCCL when ``device`` is CUDA, gloo otherwise; a second gloo group carries
    host-side flags so that agreeing on a stop never waits for the GPU.
    """
    global _joined
    if world_size() <= 1:
        return ALONE
    if _joined is not None:
        return _joined
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    control = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    _joined = Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), control)
    return _joined


def leave() -> None:
    """Leave the process group together, if this process joined one.

    Every rank waits for the others before the group is torn down, so no rank exits (and, on the
    node that hosts the rendezvous store, takes the store with it) while another still uses it.
    """
    global _joined
    if _joined is None:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _joined = None


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when several ranks train on CUDA without an index."""
    if ranks.alone or device.type != "cuda" or device.index is not None:
        return device
    device = torch.device("cuda", ranks.local_rank)
    torch.cuda.set_device(device)
    return device


def ranks() -> Ranks:
    """The ranks ``torchrun`` started, joined over gloo (for work that stays off the process group's GPUs)."""
    return join(None)
