"""Pictures of PBR predictions for logs and reports: input views, prediction against truth, error heatmaps.

Every picture is ``(H, W, 3)`` float in [0, 1], as the training loop's image logs take them.
Maps are shown as they are stored: albedo as is, roughness and metallic in grey, normals as
``(n + 1) / 2``.
"""

from __future__ import annotations

import torch

from foveate.train.visuals import normalise_log

from .maps import MAP_NAMES, encode_normal

__all__ = ["comparison_grid", "error_heatmaps", "map_pictures", "view_strip"]


def view_strip(views: torch.Tensor) -> torch.Tensor:
    """``(3, 3, H, W)`` views in [0, 1] side by side: ``(H, 3W, 3)``."""
    return torch.cat(list(views.float().clamp(0, 1).permute(0, 2, 3, 1)), dim=1)


def map_pictures(maps: dict[str, torch.Tensor], index: int = 0) -> dict[str, torch.Tensor]:
    """Sample ``index``'s maps as ``(H, W, 3)`` pictures."""
    pictures = {}
    for name in MAP_NAMES:
        value = maps[name][index].float()
        if name == "normal":
            value = encode_normal(value)
        if value.shape[0] == 1:
            value = value.expand(3, -1, -1)
        pictures[name] = value.clamp(0, 1).permute(1, 2, 0)
    return pictures


def comparison_grid(prediction: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """Prediction (top row) over truth (bottom row), one column per map: ``(2H, 4W, 3)``."""
    predicted, true = map_pictures(prediction), map_pictures(target)
    top = torch.cat([predicted[name] for name in MAP_NAMES], dim=1)
    bottom = torch.cat([true[name] for name in MAP_NAMES], dim=1)
    return torch.cat([top, bottom], dim=0)


def error_heatmaps(prediction: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-map absolute error of the first sample (normals: the angle), log-scaled, one column per map."""
    columns = []
    for name in MAP_NAMES:
        p, t = prediction[name][0].float(), target[name][0].float()
        if name == "normal":
            error = torch.rad2deg(torch.arccos((p * t).sum(0).clamp(-1.0, 1.0)))
        else:
            error = (p - t).abs().mean(0)
        columns.append(_heat(normalise_log(error)))
    return torch.cat(columns, dim=1)


def _heat(values: torch.Tensor) -> torch.Tensor:
    """A [0, 1] map through a black-red-yellow-white ramp: ``(H, W, 3)``."""
    v = values.clamp(0, 1)
    return torch.stack([(3 * v).clamp(0, 1), (3 * v - 1).clamp(0, 1), (3 * v - 2).clamp(0, 1)], dim=-1)
