"""foveate.models: encodings and fields (pure PyTorch)."""

from .hash_grid import HashGrid, dense_level_encode, hash_grid_encode, hashed_level_encode, level_resolutions
from .mlp import MLP, NeuralField

__all__ = [
    "MLP",
    "HashGrid",
    "NeuralField",
    "dense_level_encode",
    "hash_grid_encode",
    "hashed_level_encode",
    "level_resolutions",
]
