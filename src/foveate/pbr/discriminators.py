"""PatchGAN discriminators over material maps, and the receptive field they judge.

A PatchGAN (Isola et al. 2017) is a stack of 4x4 convolutions ending in one logit per output
position; each logit judges one square patch of the input, its receptive field. NeuroPBR has two:

- ``simple``: four stride-2 layers (widths ndf, 2, 4, 8 ndf, instance norm after the first) and a
  stride-1 output layer: a 94-pixel receptive field, output ``H / 16 - 1`` per side.
- ``configurable``: ``n_layers`` stride-2 layers (widths doubling up to 8 ndf, batch norm after the
  first), a stride-1 layer, a stride-1 output layer: 142, 286 and 574 pixels for 4, 5 and 6 layers,
  output ``H / 2**n_layers - 2`` per side.

The input is the 8 map channels (:func:`~foveate.pbr.networks.maps_to_tensor`), or 17 for a
conditional discriminator that also sees the three input views (:func:`discriminator_input`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .maps import MAP_CHANNELS
from .networks import NUM_VIEWS, ModelConfig, maps_to_tensor

__all__ = ["PatchDiscriminator", "build_discriminator", "discriminator_input", "receptive_field"]

MAP_INPUT_CHANNELS = sum(MAP_CHANNELS.values())


class PatchDiscriminator(nn.Module):
    """A PatchGAN: ``strided_layers`` 4x4 stride-2 convs, ``extra_layers`` 4x4 stride-1 ones, a 4x4 logit conv.

    Widths start at ``ndf`` and double per layer up to ``8 * ndf``; every layer but the first is
    normalised (``norm``: ``"batch"`` or ``"instance"``) and all use LeakyReLU(0.2). Weights start
    from N(0, 0.02) as in DCGAN.

    Args:
        in_channels: input channels (8 for maps, 17 with the views).
        ndf: width of the first layer.
        strided_layers: stride-2 layers (each halves the resolution).
        extra_layers: stride-1 hidden layers after them.
        norm: ``"batch"`` or ``"instance"``.
        use_sigmoid: end with a sigmoid (probabilities instead of logits).
    """

    def __init__(
        self,
        in_channels: int = MAP_INPUT_CHANNELS,
        ndf: int = 64,
        strided_layers: int = 3,
        extra_layers: int = 1,
        norm: str = "batch",
        use_sigmoid: bool = False,
    ) -> None:
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
        if strided_layers < 1 or extra_layers < 0:
            raise ValueError(f"need strided_layers >= 1 and extra_layers >= 0, got {strided_layers}, {extra_layers}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for index in range(1, strided_layers + extra_layers):
            out = ndf * min(2**index, 8)
            stride = 2 if index < strided_layers else 1
            normalise = nn.BatchNorm2d(out) if norm == "batch" else nn.InstanceNorm2d(out)
            layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=norm != "batch"), normalise]
            layers.append(nn.LeakyReLU(0.2, True))
            width = out
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        if use_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` to ``(B, 1, h, w)`` patch logits."""
        return self.model(x)


def receptive_field(module: nn.Module) -> int:
    """Side in pixels of the input square one output position of a chain of convolutions depends on.

    Walks the convolutions backwards: ``r <- (r - 1) * stride + kernel`` from ``r = 1``. Assumes the
    convolutions run one after another (true of :class:`PatchDiscriminator`).
    """
    field = 1
    for conv in reversed([m for m in module.modules() if isinstance(m, nn.Conv2d)]):
        field = (field - 1) * conv.stride[0] + conv.kernel_size[0]
    return field


def build_discriminator(config: ModelConfig) -> PatchDiscriminator:
    """The discriminator ``config`` asks for, its input widened by the 9 view channels when conditional."""
    config.check()
    in_channels = MAP_INPUT_CHANNELS + (3 * NUM_VIEWS if config.discriminator_conditional else 0)
    if config.discriminator_type == "simple":
        return PatchDiscriminator(in_channels, config.discriminator_ndf, 4, 0, "instance", False)
    return PatchDiscriminator(
        in_channels,
        config.discriminator_ndf,
        config.discriminator_n_layers,
        1,
        "batch",
        config.discriminator_use_sigmoid,
    )


def discriminator_input(maps: dict[str, torch.Tensor], views: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 8, H, W)`` maps, or ``(B, 17, H, W)`` with the ``(B, 3, 3, h, w)`` views stacked on, resized to H x W."""
    x = maps_to_tensor(maps)
    if views is None:
        return x
    stacked = views.flatten(1, 2)
    if stacked.shape[-2:] != x.shape[-2:]:
        stacked = F.interpolate(stacked, size=x.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return torch.cat((x, stacked.to(x.dtype)), dim=1)
