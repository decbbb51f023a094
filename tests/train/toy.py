"""A tiny task for exercising the loop: learn one value per unit by squared error."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

import torch
from torch import nn

from foveate.train import OptimConfig, SamplingConfig, Task, TrainConfig, Validation, psnr_from_mse


@dataclass
class ToyConfig:
    units: int = 256
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=40,
            batch_size=32,
            log_every=1,
            validate_every=10,
            checkpoint_every=10,
            sampler_stats_every=5,
            progress=False,
            tensorboard=False,
        )
    )
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(strategy="adaptive", warmup_iterations=3, update_frequency=2)
    )
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05, schedule="cosine", warmup_steps=3))


class ToyTask(Task):
    """Units on a 1 x 16 x 16 grid; the model is one learned value per unit.

    ``signal_at`` sends this process that signal (SIGINT by default) during that step;
    ``nan_from`` makes the loss NaN from that step on.
    """

    name = "toy"

    def __init__(
        self,
        units: int = 256,
        signal_at: int | None = None,
        nan_from: int | None = None,
        signal_number: int = signal.SIGINT,
    ) -> None:
        side = int(units**0.5)
        self.unit_shape = (1, side, side)
        generator = torch.Generator().manual_seed(1234)
        self.target = torch.rand(side * side, generator=generator)
        self.model = nn.Embedding(side * side, 1)
        self.calls = 0
        self.signal_at = signal_at
        self.signal_number = signal_number
        self.nan_from = nan_from

    def per_unit_loss(self, ids: torch.Tensor) -> torch.Tensor:
        step = self.calls
        self.calls += 1
        if step == self.signal_at:
            os.kill(os.getpid(), self.signal_number)
        loss = (self.model(ids)[:, 0] - self.target[ids]).square()
        if self.nan_from is not None and step >= self.nan_from:
            loss = loss * float("nan")
        return loss

    def validate(self, full: bool) -> Validation:
        mse = (self.model.weight[:, 0] - self.target).square().mean()
        return Validation({"psnr": float(psnr_from_mse(mse))})
