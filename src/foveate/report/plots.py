"""Figures for comparison reports, drawn with matplotlib (Agg, no display)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_budgets", "plot_curves", "plot_images", "plot_maps", "plot_profiles", "plot_sampling"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("reports need matplotlib: pip install 'foveate[train]'") from error
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _band(curves: Sequence[Sequence[Sequence[float]]], column: int) -> tuple[np.ndarray, ...]:
    """The seeds' curves on the union of their positions (``column``: 0 steps, 2 seconds): x, mean, min, max.

    A seed whose run ended early (it stopped at the task's target) holds its last value.
    """
    rows = [np.asarray(c, dtype=np.float64) for c in curves]
    x = np.unique(np.concatenate([r[:, column] for r in rows]))
    values = np.stack([np.interp(x, r[:, column], r[:, 1]) for r in rows])
    return x, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def plot_curves(
    curves: Mapping[str, Sequence[Sequence[Sequence[float]]]],
    by_step: Path,
    by_wall: Path,
    *,
    label: str,
    step_noun: str = "step",
    target: float | None = None,
    target_label: str = "target",
) -> None:
    """The metric against steps and against training wall-clock: per variant the mean over seeds,
    shaded between the lowest and highest seed.

    ``curves`` maps a variant to its seeds' ``[step, value, wall_seconds]`` curves.
    """
    plt = _pyplot()
    for path, column, axis_label in ((by_step, 0, step_noun), (by_wall, 2, "training wall-clock (s)")):
        figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        for variant, seeds in curves.items():
            x, mean, low, high = _band(seeds, column)
            line = axes.plot(x, mean, label=variant if len(seeds) == 1 else f"{variant} ({len(seeds)} seeds)")[0]
            if len(seeds) > 1:
                axes.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        if target is not None:
            axes.axhline(target, color="grey", linestyle=":", linewidth=1, label=target_label)
        axes.set_xlabel(axis_label)
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)


def plot_maps(maps: Mapping[str, np.ndarray], path: Path, *, title: str, label: str) -> None:
    """One panel per map on a shared colour scale: 2-D maps as images (log scale), 1-D ones as bars."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    names = list(maps)
    count = max(len(names), 1)
    flat = any(np.asarray(m).ndim == 1 for m in maps.values())
    figure, axes = plt.subplots(1, count, figsize=(3.6 * count + 0.8, 3.0 if flat else 3.8), dpi=120, squeeze=False)
    if flat:
        top = max((float(np.max(m)) for m in maps.values()), default=1.0) or 1.0
        for axis, name in zip(axes[0], names, strict=False):
            values = np.asarray(maps[name], dtype=np.float64)
            axis.bar(np.arange(values.size), values, color="tab:blue")
            axis.set_ylim(0, top * 1.05)
            axis.set_title(name)
            axis.set_xlabel("unit")
        axes[0][0].set_ylabel(label)
    else:
        positive = [np.asarray(m)[np.asarray(m) > 0] for m in maps.values() if (np.asarray(m) > 0).any()]
        norm = None
        if positive:
            high = max(float(p.max()) for p in positive)
            low = max(min(float(p.min()) for p in positive), high * 1e-4)
            norm = LogNorm(vmin=low, vmax=max(high, low * 1.0001))
        image = None
        for axis, name in zip(axes[0], names, strict=False):
            values = np.clip(np.asarray(maps[name], dtype=np.float32), norm.vmin if norm else 0.0, None)
            image = axis.imshow(values, cmap="magma", norm=norm, interpolation="nearest")
            axis.set_title(name)
            axis.set_axis_off()
        if image is not None:
            figure.colorbar(image, ax=axes[0].tolist(), label=label, shrink=0.85)
        else:
            axes[0][0].text(0.5, 0.5, "no map (every variant still in warm-up)", ha="center", va="center")
            axes[0][0].set_axis_off()
    figure.suptitle(title)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def plot_profiles(
    profiles: Mapping[str, tuple[Sequence[float], Sequence[Sequence[float]]]],
    path: Path,
    *,
    title: str,
    step_noun: str,
    unit: str = "unit",
) -> None:
    """Per variant, a per-unit quantity over the validations as a heatmap (units up, steps across).

    ``profiles`` maps a variant to ``(steps, rows)``, one row of per-unit values per validation;
    every panel shares one colour scale, from 0 to the largest value.
    """
    plt = _pyplot()
    names = list(profiles)
    top = max((float(np.max(rows)) for _, rows in profiles.values() if len(rows)), default=1.0) or 1.0
    figure, axes = plt.subplots(
        1, len(names), figsize=(3.8 * len(names) + 0.8, 3.4), dpi=120, squeeze=False, layout="constrained"
    )
    image = None
    for axis, name in zip(axes[0], names, strict=True):
        steps, rows = profiles[name]
        grid = np.asarray(rows, dtype=np.float64).T
        extent = (steps[0] - 0.5, steps[-1] + 0.5, -0.5, grid.shape[0] - 0.5)
        image = axis.imshow(
            grid,
            aspect="auto",
            origin="lower",
            cmap="viridis",
            vmin=0,
            vmax=top,
            extent=extent,
            interpolation="nearest",
        )
        axis.set_title(name)
        axis.set_xlabel(step_noun)
        axis.set_ylabel(unit)
    if image is not None:
        figure.colorbar(image, ax=axes[0].tolist(), shrink=0.85)
    figure.suptitle(title)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def plot_images(images: Mapping[str, np.ndarray], path: Path, *, title: str) -> None:
    """Pictures side by side, (H, W, C) in [0, 1]: the target first, then each variant's reconstruction."""
    plt = _pyplot()
    names = list(images)
    figure, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.6), dpi=120, squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        picture = np.clip(np.asarray(images[name], dtype=np.float32), 0.0, 1.0)
        if picture.ndim == 3 and picture.shape[2] == 1:
            picture = picture[:, :, 0]
        axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(name)
        axis.set_axis_off()
    figure.suptitle(title)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def plot_sampling(histories: Mapping[str, Sequence[Sequence[float]]], path: Path, *, step_noun: str) -> None:
    """The sampler's normalised entropy and top-1% probability mass against steps, per variant."""
    plt = _pyplot()
    figure, (entropy, top) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    for variant, rows in histories.items():
        if not rows:
            continue
        steps, entropies, masses = np.asarray(rows, dtype=np.float64).T
        entropy.plot(steps, entropies, label=variant)
        top.plot(steps, masses, label=variant)
    entropy.set(title="normalised entropy of the sampling distribution (1 = uniform)", xlabel=step_noun)
    top.set(title="probability mass of the top 1% of units", xlabel=step_noun)
    for axis in (entropy, top):
        axis.grid(alpha=0.3)
    if entropy.get_legend_handles_labels()[0]:
        entropy.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_budgets(
    budgets: Mapping[str, Mapping[str, Any]], path: Path, *, label: str, reference: str, step_noun: str
) -> None:
    """Matched schedules: each variant's settled delta to the reference's full run against its share of the steps.

    ``budgets`` is a report's ``budgets`` (:func:`foveate.report.pooling.pool_budgets`): the mean over
    seeds as a solid line, the worst seed dashed, and a dotted mark where the mean reaches the reference.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    axis.axhline(0.0, color="black", linewidth=1.0, label=f"{reference}'s full run")
    for variant, budget in budgets.items():
        points = sorted(budget["points"], key=lambda p: p["fraction"])
        x = [p["fraction"] for p in points]
        (line,) = axis.plot(x, [p["delta_mean"] for p in points], marker="o", label=f"{variant} (mean)")
        axis.plot(x, [p["delta_worst"] for p in points], linestyle="--", color=line.get_color(), alpha=0.6)
        if budget["matched"] is not None:
            axis.axvline(budget["matched"], linestyle=":", color=line.get_color())
            axis.annotate(
                f"{budget['matched']:.2f}x",
                (budget["matched"], 0.0),
                textcoords="offset points",
                xytext=(4, 6),
                color=line.get_color(),
                fontsize=8,
            )
    axis.set(
        title=f"settled {label} vs {reference}'s full run (dashed: worst seed)",
        xlabel=f"share of {reference}'s {step_noun}, each run on its own schedule",
        ylabel=f"difference in {label}",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
