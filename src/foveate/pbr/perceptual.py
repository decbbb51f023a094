"""A VGG16 feature (perceptual) loss that builds only from a local torchvision ``vgg16`` state dict.

VGG16's convolutional trunk is written here with torchvision's layer indices (``features.0``,
``features.2``, ``features.5``, ...), so the ``features.*`` entries of a torchvision ``vgg16``
state-dict file load into it unchanged; the classifier entries are ignored. Nothing is downloaded:
without a file there is no perceptual loss.

The loss compares the activations after relu1_2, relu2_2, relu3_3 and relu4_3 (Johnson et al.
2016): per sample, the sum over those layers of the mean absolute difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["VGG16_LAYOUT", "PerceptualLoss", "VGG16Features"]

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
"""VGG16's convolution widths and max pools ("M"), in order (Simonyan and Zisserman 2015, configuration D)."""

FEATURE_LAYERS = (3, 8, 15, 22)
"""Indices into ``features`` of relu1_2, relu2_2, relu3_3 and relu4_3."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """VGG16's ``features`` up to layer ``last`` (relu4_3 by default), returning the activations at ``taps``."""

    def __init__(self, last: int = FEATURE_LAYERS[-1], taps: tuple[int, ...] = FEATURE_LAYERS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers[: last + 1])
        self.taps = taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                out.append(x)
        return out

    def load_torchvision(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load the ``features.*`` entries this trunk has from a torchvision vgg16 state dict, strictly."""
        own = self.state_dict()
        missing = [key for key in own if key not in state]
        if missing:
            raise ValueError(f"not a torchvision vgg16 state dict: it lacks {missing[0]} ({len(missing)} keys missing)")
        self.load_state_dict({key: state[key] for key in own}, strict=True)


class PerceptualLoss(nn.Module):
    """``(B,)`` VGG16 feature distance between ``(B, 3, H, W)`` images in [0, 1]; frozen, always in eval mode.

    Args:
        weights: a torchvision vgg16 state-dict file, or the state dict itself.
    """

    def __init__(self, weights: str | Path | Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        if isinstance(weights, (str, Path)):
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"perceptual loss weights not found: {path} (a torchvision vgg16 state dict)")
            weights = torch.load(path, map_location="cpu", weights_only=True)
        self.vgg = VGG16Features()
        self.vgg.load_torchvision(weights)
        self.vgg.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Stay in eval mode: the network is a fixed measuring instrument."""
        return super().train(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        batch = pred.shape[0]
        both = (torch.cat((pred, target.to(pred.dtype))) - self.mean) / self.std
        total = pred.new_zeros(batch)
        for feature in self.vgg(both):
            total = total + (feature[:batch] - feature[batch:]).abs().flatten(1).mean(dim=1)
        return total
