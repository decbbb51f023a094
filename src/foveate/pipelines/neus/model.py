"""The NeuS task's model and frame: networks sized by the config, cameras in the normalised space."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from foveate.data import Cameras, Scene
from foveate.models import HashGrid
from foveate.models.neus_rendering import NeuSModel
from foveate.models.sdf import (
    BackgroundField,
    ColorNetwork,
    FrequencyEncoding,
    GridEncoding,
    SDFNetwork,
    VarianceNetwork,
)

from .config import NeuSConfig

__all__ = ["build_model", "normalized_cameras"]


def build_model(config: NeuSConfig) -> NeuSModel:
    """NeuS's networks as ``config`` sizes them."""
    s, c = config.sdf, config.color
    if s.encoding == "hash":
        grid = HashGrid(3, **s.grid.encoding_arguments(2048))
        encoding: nn.Module | None = GridEncoding(grid, bound=1.0)
    else:
        encoding = FrequencyEncoding(s.multires) if s.multires > 0 else None
    sdf = SDFNetwork(
        encoding,
        hidden=s.hidden,
        layers=s.layers,
        skip_in=s.skip_in,
        features=s.features,
        bias=s.bias,
        scale=s.scale,
        geometric_init=s.geometric_init,
        weight_norm=s.weight_norm,
        inside_outside=s.inside_outside,
        gradient=s.gradient,
        epsilon=s.epsilon,
        activation=s.activation,
    )
    mode = c.mode if c.mode != "auto" else ("no_view_dir" if config.mode == "rnb" else "idr")
    color = ColorNetwork(s.features, mode, c.hidden, c.layers, c.view_encoding, c.view_degree, c.weight_norm)
    background = None
    if config.render.n_outside > 0:
        b = config.background
        background = BackgroundField(b.hidden, b.layers, (4,) if b.layers > 5 else (), b.multires, b.multires_view)
    return NeuSModel(sdf, VarianceNetwork(s.variance_init), color, background)


def normalized_cameras(scene: Scene) -> Cameras:
    """The scene's cameras moved into the normalised space (the unit sphere around the object).

    NeuS's scale matrix must be a uniform scale and a translation; anything else is refused.
    """
    matrix = scene.normalization
    scale = float(matrix[0, 0])
    if not (scale > 0 and torch.allclose(matrix[:3, :3], torch.eye(3, dtype=matrix.dtype) * scale, atol=1e-6 * scale)):
        raise ValueError(f"the scene's scale matrix must be a uniform scale and a translation, got {matrix.tolist()}")
    c2w = scene.cameras.camera_to_world.clone().double()
    c2w[:, :3, 3] = (c2w[:, :3, 3] - matrix[:3, 3]) / scale
    return dataclasses.replace(scene.cameras, camera_to_world=c2w.float())
