"""``foveate universe report``: what training did to a universe, as plots and one JSON file.

Reads ``training_metrics.json`` (written cell by cell while training) and writes into the trained
universe's ``report/``: ``loss.png`` (each cell's training loss against its iterations, and their
median), ``reduction.png`` (a histogram of the per-cell loss reduction), ``sky.png`` (every cell on
the sky, ecliptic longitude against latitude, the trained ones coloured by their loss reduction and
sized by their iterations: where the budget went) and ``summary.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .cells import read_index
from .grid import CellId, HLGGrid

__all__ = ["write_report"]


def write_report(trained: Path) -> list[Path]:
    """Write the report of the trained universe in ``trained``; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics_path = trained / "training_metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{trained}: no training_metrics.json (train with train-all or train-landmarks first)")
    records: list[dict[str, Any]] = json.loads(metrics_path.read_text())["cells"]
    if not records:
        raise ValueError(f"{metrics_path}: no trained cells")
    index = read_index(trained)
    grid = HLGGrid(index.config)
    out = trained / "report"
    out.mkdir(exist_ok=True)
    written = []

    figure, axis = plt.subplots(figsize=(7, 4.5))
    longest = max(len(r["losses"]) for r in records)
    for record in records:
        axis.plot(record["losses"], color="tab:blue", alpha=max(0.05, 1 / math.sqrt(len(records))), linewidth=0.8)
    padded = np.full((len(records), longest), np.nan)
    for row, record in enumerate(records):
        padded[row, : len(record["losses"])] = record["losses"]
    axis.plot(np.nanmedian(padded, axis=0), color="black", linewidth=2, label=f"median of {len(records)} cells")
    axis.set(yscale="log", xlabel="iteration", ylabel="training loss (L1 + D-SSIM)", title="Loss per cell")
    axis.legend()
    written.append(_save(figure, out / "loss.png"))

    reductions = np.array([100 * (1 - r["loss_after"] / r["loss_before"]) for r in records])
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.hist(reductions, bins=min(40, max(5, len(records) // 2)), color="tab:green")
    axis.axvline(0, color="black", linewidth=1)
    axis.set(xlabel="loss reduction (%)", ylabel="cells", title=f"Loss reduction, median {np.median(reductions):.1f}%")
    written.append(_save(figure, out / "reduction.png"))

    figure, axis = plt.subplots(figsize=(9, 4.5))
    all_cells = index.ids()
    longitude, latitude = _sky(grid, all_cells)
    axis.scatter(longitude, latitude, s=2, color="0.75", label=f"{len(all_cells):,} cells")
    trained_cells = [CellId.parse(r["file_name"]) for r in records]
    longitude, latitude = _sky(grid, trained_cells)
    sizes = np.array([r["iterations"] for r in records], dtype=float)
    shown = axis.scatter(
        longitude,
        latitude,
        s=8 + 60 * sizes / sizes.max(),
        c=reductions,
        cmap="viridis",
        label="trained (size: iterations)",
    )
    figure.colorbar(shown, ax=axis, label="loss reduction (%)")
    axis.set(xlabel="ecliptic longitude (deg)", ylabel="ecliptic latitude (deg)", xlim=(-180, 180), ylim=(-90, 90))
    axis.set_title("Where training went")
    axis.legend(loc="lower left", fontsize=8)
    written.append(_save(figure, out / "sky.png"))

    summary = {
        "cells_trained": len(records),
        "iterations": int(sizes.sum()),
        "loss_reduction_percent": {
            "median": float(np.median(reductions)),
            "min": float(reductions.min()),
            "max": float(reductions.max()),
        },
        "held_out_psnr": {
            "before_mean": float(np.mean([r["psnr_before"] for r in records])),
            "after_mean": float(np.mean([r["psnr_after"] for r in records])),
            "after_worst_decile": float(np.percentile([r["psnr_after"] for r in records], 10)),
        },
        "seconds": float(sum(r["seconds"] for r in records)),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    written.append(out / "summary.json")
    return written


def _sky(grid: HLGGrid, cells: list[CellId]) -> tuple[np.ndarray, np.ndarray]:
    """Ecliptic longitude and latitude in degrees of the centres of ``cells``."""
    if not cells:
        return np.zeros(0), np.zeros(0)
    bounds = np.array([grid.angular_bounds(c) for c in cells])
    theta, phi = (bounds[:, 0] + bounds[:, 1]) / 2, (bounds[:, 2] + bounds[:, 3]) / 2
    return np.degrees(theta), 90 - np.degrees(phi)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path
