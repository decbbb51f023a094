"""Small fully connected networks and the encoding + MLP field built from them."""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["MLP", "NeuralField"]


class MLP(nn.Sequential):
    """``hidden_layers`` ReLU layers of width ``hidden``, then a linear output layer.

    Args:
        in_features: input width.
        out_features: output width.
        hidden: width of every hidden layer.
        hidden_layers: number of hidden layers (0 gives a single linear map).
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, hidden_layers: int = 2) -> None:
        if hidden_layers < 0 or hidden < 1:
            raise ValueError(f"need hidden >= 1 and hidden_layers >= 0, got {hidden} and {hidden_layers}")
        widths = [in_features] + [hidden] * hidden_layers
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(widths[-1], out_features))
        super().__init__(*layers)


class NeuralField(nn.Module):
    """A coordinate network: an encoding of points followed by an MLP.

    Args:
        encoding: a module mapping (B, d) points to (B, ``encoding.output_dim``) features.
        out_features: values predicted per point (3 for RGB).
        hidden, hidden_layers: the MLP's width and depth.
    """

    def __init__(self, encoding: nn.Module, out_features: int, hidden: int = 64, hidden_layers: int = 2) -> None:
        super().__init__()
        self.encoding = encoding
        self.mlp = MLP(encoding.output_dim, out_features, hidden, hidden_layers)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encoding(points))
