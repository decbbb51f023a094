"""Figures for reports: PSNR curves and per-pixel maps, drawn with matplotlib (Agg, no display)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["plot_curves", "plot_maps"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("reports need matplotlib: pip install 'foveate[train]'") from error
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(runs: Sequence[Any], by_step: Path, by_wall: Path, target: float | None = None) -> None:
    """Validation PSNR against steps and against training wall-clock, one line per strategy.

    ``runs`` are objects with ``strategy`` and ``curve`` (``[step, psnr, wall_seconds]`` rows).
    """
    plt = _pyplot()
    for path, column, label in ((by_step, 0, "step"), (by_wall, 2, "training wall-clock (s)")):
        figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        for run in runs:
            points = [row for row in run.curve if row[0] > 0] or run.curve
            axes.plot([row[column] for row in points], [row[1] for row in points], label=run.strategy)
        if target is not None:
            axes.axhline(target, color="grey", linestyle=":", linewidth=1, label="uniform's final")
        axes.set_xlabel(label)
        axes.set_ylabel("PSNR (dB)")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)


def plot_maps(maps: Mapping[str, torch.Tensor], path: Path, *, title: str, label: str) -> None:
    """One panel per map on a shared logarithmic colour scale, with a colour bar."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    names = list(maps)
    count = max(len(names), 1)
    figure, axes = plt.subplots(1, count, figsize=(3.6 * count + 0.8, 3.8), dpi=120, squeeze=False)
    positive = [m[m > 0] for m in maps.values() if bool((m > 0).any())]
    if positive:
        high = max(float(p.max()) for p in positive)
        low = max(min(float(p.min()) for p in positive), high * 1e-4)
        norm = LogNorm(vmin=low, vmax=max(high, low * 1.0001))
    else:
        norm = None
    image = None
    for axis, name in zip(axes[0], names, strict=False):
        values = maps[name].to(torch.float32).clamp(min=norm.vmin if norm else 0.0).numpy()
        image = axis.imshow(values, cmap="magma", norm=norm, interpolation="nearest")
        axis.set_title(name)
        axis.set_axis_off()
    for axis in axes[0][len(names) :]:
        axis.set_axis_off()
    if image is not None:
        figure.colorbar(image, ax=axes[0].tolist(), label=label, shrink=0.85)
    else:
        axes[0][0].text(0.5, 0.5, "no map (every strategy still in warm-up)", ha="center", va="center")
    figure.suptitle(title)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
