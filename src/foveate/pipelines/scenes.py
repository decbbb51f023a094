"""What the scene pipelines (nerf, splat) share: loading, held-out views and the reconstruction box."""

from __future__ import annotations

import torch

from foveate.data import Scene, load_scene

__all__ = ["load_training_scene", "scene_box", "split_views"]


def load_training_scene(path: str, downsample: int = 1) -> Scene:
    """The scene at ``path`` (``--scene``), shrunk by ``downsample``."""
    if not path:
        raise ValueError("no scene given: pass --scene DIR (a scene directory, e.g. from 'foveate data render')")
    scene = load_scene(path)
    return scene.downsampled(downsample) if downsample > 1 else scene


def scene_box(scene: Scene, scale: float = 1.0) -> torch.Tensor:
    """``(2, 3)`` box around the region to reconstruct: the one bounding the scene's normalised
    unit sphere (:attr:`~foveate.data.scenes.Scene.normalization`), scaled by ``scale`` about its centre."""
    if scale <= 0:
        raise ValueError(f"box scale must be positive, got {scale}")
    normalization = scene.normalization
    center = normalization[:3, 3]
    half = normalization[:3, :3].norm(dim=1) * scale
    return torch.stack((center - half, center + half)).to(torch.float32)


def split_views(scene: Scene, every: int) -> tuple[list[int], list[int]]:
    """Training and held-out view indices: the scene's train/val splits, or every ``every``-th view held out."""
    if scene.splits.get("val"):
        train = scene.splits.get("train") or [i for i in range(scene.num_views) if i not in scene.splits["val"]]
        return list(train), list(scene.splits["val"])
    if every < 2 or scene.num_views < 2:
        raise ValueError(
            f"cannot hold out every {every}-th of {scene.num_views} views; need val_every >= 2 and 2 views"
        )
    held_out = list(range(0, scene.num_views, every))
    return [i for i in range(scene.num_views) if i not in held_out], held_out
