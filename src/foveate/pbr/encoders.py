"""Per-view image encoders for the PBR generator: a ResNet and two plain U-Net encoders.

Every encoder maps ``(N, 3, H, W)`` images to ``(bottleneck, skips)``: the deepest feature map and
the list of skip features from shallow to deep, each skip twice the resolution of the next one and
the last skip twice the bottleneck's. ``skip_channels``, ``out_channels`` and ``reduction`` (how
many times the bottleneck is smaller than the input per side) describe them to the decoder.

The ResNet is written here (torchvision does not import beside the CPU torch wheel) with
torchvision's parameter names, so a torchvision ``resnet*`` state dict on disk loads into it with
:func:`load_resnet_weights`. As in NeuroPBR, ``stride=1`` keeps the stem at full resolution
(a 2048 input gives 2048, 1024, 512, 256 skips and a 128 bottleneck) and ``stride=2`` is
torchvision's stem (everything half that).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "RESNET_LAYOUTS",
    "BasicBlock",
    "Bottleneck",
    "ResNetEncoder",
    "UNetEncoder",
    "load_resnet_weights",
]


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """torchvision's ``downsample``: a strided 1x1 conv and a BatchNorm where the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or projected) shortcut: resnet18 and resnet34."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's "v1.5"), 1x1 expand by 4: resnet50, 101 and 152."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


RESNET_LAYOUTS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}
"""Block type and blocks per stage of each ResNet depth (He et al. 2016, Table 1)."""


class ResNetEncoder(nn.Module):
    """A ResNet without its classifier, returning the stem and stages 1-3 as skips and stage 4 as bottleneck.

    Args:
        backbone: ``resnet18`` ... ``resnet152``.
        stride: 1 keeps the 7x7 stem at full resolution (NeuroPBR's default), 2 is torchvision's stem.
        base_channels: the stem's width; stages are 1, 2, 4 and 8 times it (times 4 after a bottleneck
            block). 64 is torchvision's; only 64 loads pretrained weights.
        in_channels: channels of one input image.
        freeze_backbone: stop gradients to the convolutions of the stem, stage 1 and stage 2.
        freeze_bn: fix the BatchNorms of the stem, stage 1 and stage 2: no gradient to their scale and
            shift, and their running statistics held (they stay in eval mode while the model trains).
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        stride: int = 1,
        base_channels: int = 64,
        in_channels: int = 3,
        freeze_backbone: bool = False,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        if backbone not in RESNET_LAYOUTS:
            raise ValueError(f"backbone must be one of {sorted(RESNET_LAYOUTS)}, got {backbone!r}")
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        block, depths = RESNET_LAYOUTS[backbone]
        self.conv1 = nn.Conv2d(in_channels, base_channels, 7, stride=stride, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = base_channels
        stages = []
        for index, depth in enumerate(depths):
            width = base_channels * 2**index
            blocks = []
            for position in range(depth):
                blocks.append(block(channels, width, stride=2 if index > 0 and position == 0 else 1))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        expansion = block.expansion
        self.skip_channels = [base_channels] + [base_channels * 2**i * expansion for i in range(3)]
        self.out_channels = channels
        self.reduction = 16 * stride
        self._reset_parameters()
        early = [m for part in (self.conv1, self.bn1, self.layer1, self.layer2) for m in part.modules()]
        if freeze_backbone:
            for conv in (m for m in early if isinstance(m, nn.Conv2d)):
                conv.requires_grad_(False)
        self._frozen_norms = [m for m in early if isinstance(m, nn.BatchNorm2d)] if freeze_bn else []
        for norm in self._frozen_norms:
            norm.requires_grad_(False)
        self.train()

    def _reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> ResNetEncoder:
        """Switch modes, keeping frozen BatchNorms (``freeze_bn``) in eval mode."""
        super().train(mode)
        for norm in self._frozen_norms:
            norm.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        stem = self.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(self.maxpool(stem))
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        return self.layer4(s3), [stem, s1, s2, s3]


def load_resnet_weights(encoder: ResNetEncoder, weights: str | Path | Mapping[str, torch.Tensor]) -> None:
    """Load a torchvision ResNet state dict (a file or a mapping) into ``encoder``, strictly.

    The classifier (``fc.*``) is dropped; every other key must match in name and shape, so a
    resnet50 file refuses to load into a resnet18 and a file for another width is refused.
    """
    if isinstance(weights, (str, Path)):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"encoder weights file not found: {path}")
        weights = torch.load(path, map_location="cpu", weights_only=True)
    state = {key: value for key, value in weights.items() if not key.startswith("fc.")}
    own = encoder.state_dict()
    wrong = [key for key in state if key in own and own[key].shape != state[key].shape]
    if wrong:
        raise ValueError(
            f"encoder weights do not fit this ResNet: {wrong[0]} is {tuple(state[wrong[0]].shape)}, "
            f"the encoder's is {tuple(own[wrong[0]].shape)} ({len(wrong)} keys differ)"
        )
    encoder.load_state_dict(state, strict=True)


class UNetEncoder(nn.Module):
    """A plain U-Net encoder: a double 3x3 conv at full resolution, then one halving stage per channel count.

    Args:
        channels: widths from the full-resolution block to the bottleneck (NeuroPBR: 64 ... 2048);
            ``len(channels) - 1`` stages halve the resolution.
        strided: halve with a stride-2 3x3 conv (NeuroPBR's ``unet_stride``) instead of a 2x2 max pool.
        in_channels: channels of one input image.
    """

    def __init__(self, channels: Sequence[int], strided: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"channels needs at least 2 widths, got {list(channels)}")
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, channels[0]), *_conv_bn_relu(channels[0], channels[0]))
        stages = []
        for width_in, width_out in itertools.pairwise(channels):
            if strided:
                stages.append(
                    nn.Sequential(*_conv_bn_relu(width_in, width_out, 2), *_conv_bn_relu(width_out, width_out))
                )
            else:
                down = nn.MaxPool2d(2)
                stages.append(
                    nn.Sequential(down, *_conv_bn_relu(width_in, width_out), *_conv_bn_relu(width_out, width_out))
                )
        self.stages = nn.ModuleList(stages)
        self.skip_channels = list(channels[:-1])
        self.out_channels = channels[-1]
        self.reduction = 2 ** (len(channels) - 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = [self.stem(x)]
        for stage in self.stages:
            skips.append(stage(skips[-1]))
        return skips[-1], skips[:-1]
