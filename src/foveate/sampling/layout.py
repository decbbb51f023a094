"""The shape of a population of units: flat, or a grid of images x height x width."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    """Unit ids run row-major over ``shape``: ``(N,)`` or ``(images, height, width)``."""

    shape: tuple[int, ...]

    @classmethod
    def from_shape(cls, shape: int | Sequence[int]) -> Layout:
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(dims) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise ValueError(f"shape must be an int N or a tuple (images, H, W) of ints, got {shape!r}")
        if any(d <= 0 for d in dims):
            raise ValueError(f"shape must have positive sizes (an empty population cannot be sampled), got {shape!r}")
        return cls(dims)

    @property
    def num_units(self) -> int:
        return math.prod(self.shape)

    @property
    def is_grid(self) -> bool:
        return len(self.shape) == 3

    def unravel(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image, y, x) of row-major ids on an (images, H, W) layout, each shaped like ``ids``.

        The inverse of ``(image * H + y) * W + x``, on the ids' device with no host sync.
        """
        if not self.is_grid:
            raise ValueError(f"unravel needs an (images, H, W) layout, this one is {self.shape}")
        _, height, width = self.shape
        image = torch.div(ids, height * width, rounding_mode="floor")
        pixel = ids - image * (height * width)
        y = torch.div(pixel, width, rounding_mode="floor")
        return image, y, pixel - y * width
