"""foveate.models: encodings, fields and renderers (pure PyTorch)."""

from .hash_grid import (
    HashGrid,
    HashGridConfig,
    dense_level_encode,
    hash_grid_encode,
    hashed_level_encode,
    level_resolutions,
)
from .mlp import MLP, NeuralField
from .nerf import RadianceField
from .occupancy import OccupancyGrid
from .volume_rendering import render_rays

__all__ = [
    "MLP",
    "HashGrid",
    "HashGridConfig",
    "NeuralField",
    "OccupancyGrid",
    "RadianceField",
    "dense_level_encode",
    "hash_grid_encode",
    "hashed_level_encode",
    "level_resolutions",
    "render_rays",
]
