"""``foveate compare nerf``: sampling strategies side by side on one multi-view scene.

Every strategy trains the same radiance field from the same seed with the same budget; only
the sampler differs. It writes the same files (:data:`~foveate.report.compare.REPORT_FILES`)
and ``report.json`` keys as ``foveate compare image``, plus the scene's view counts. The
error heatmap is the first held-out view's; the sampling density shows the first training
views side by side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from foveate.pipelines.nerf import SPEC, NerfConfig, preset, scene_of, split_views
from foveate.train import CheckpointError, parse_config

from .compare import build_report, headline, run_strategies, write_report

__all__ = ["COMPARE_PRESETS", "NerfCompareConfig", "compare_main", "run_nerf_comparison", "training_views_density"]

DENSITY_VIEWS = 4
"""Training views shown side by side in the sampling-density figure."""


@dataclass
class NerfCompareConfig:
    """Train one scene's radiance field once per strategy (same seed and budget) and report side by side."""

    strategies: tuple[str, ...] = ("uniform", "error_weighted", "adaptive")
    """Strategies to compare; include uniform for the steps-to-uniform's-final measure."""
    out: str = "runs/nerf/compare"
    """Directory for the plots, report.md and report.json."""
    run: NerfConfig = field(default_factory=NerfConfig)


COMPARE_PRESETS = {name: NerfCompareConfig(run=preset(name)) for name in ("default", "cpu", "tiny")}


def training_views_density(sampler: Any) -> torch.Tensor:
    """The first :data:`DENSITY_VIEWS` training views' sampling density side by side, relative to uniform."""
    views, height, width = sampler.shape
    shown = min(views, DENSITY_VIEWS)
    relative = sampler.probabilities().view(views, height, width)[:shown] * sampler.num_units
    return relative.permute(1, 0, 2).reshape(height, shown * width)


def run_nerf_comparison(compare: NerfCompareConfig, console: Any = None) -> tuple[dict[str, Any], Path]:
    """Run every strategy and write the report files into ``compare.out``; returns (report, dir)."""
    scene = scene_of(compare.run)
    training_views, _ = split_views(scene, compare.run.val_every)
    runs = run_strategies(
        compare.run, compare.strategies, console, pipeline=SPEC.name, density=training_views_density
    )
    out = Path(compare.out)
    report = build_report(
        compare.run,
        runs,
        scene.height,
        scene.width,
        source=compare.run.scene,
        extra={"scene": compare.run.scene, "training_views": len(training_views)},
    )
    write_report(
        out,
        report,
        runs,
        error_title="per-pixel squared error of the final model (first held-out view)",
        density_title=f"final sampling density over the first {DENSITY_VIEWS} training views (1 = uniform)",
    )
    return report, out


def compare_main(argv: Sequence[str]) -> int:
    """``foveate compare nerf``."""
    from rich.console import Console

    prog = "foveate compare nerf"
    console = Console(stderr=True)
    try:
        compare = parse_config(
            NerfCompareConfig,
            argv,
            presets=COMPARE_PRESETS,
            prog=prog,
            description="Train the radiance field once per strategy (same seed and budget) and write a report.",
        )
        if compare.run.train.resume:
            raise ValueError("a comparison always starts fresh; --resume is for 'foveate train nerf'")
        started = time.perf_counter()
        report, out = run_nerf_comparison(compare, console)
    except (FileNotFoundError, ValueError, CheckpointError) as error:
        console.print(f"[red]{prog}: error:[/] {error}", highlight=False)
        return 2
    print(
        f"{report['scene']} ({report['training_views']} training views of {report['width']} x {report['height']}), "
        f"{report['steps']} steps x {report['batch_size']} rays, seed {report['seed']}, "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    for line in headline(report):
        print(line)
    print(f"report: {out / 'report.md'}")
    return 0
