"""``foveate compare image`` and ``foveate demo``: sampling strategies side by side on one photo.

Every strategy trains the same field from the same seed with the same budget; only the
sampler differs. The comparison writes, into its output directory: ``psnr_vs_step.png``,
``psnr_vs_wall_clock.png``, ``error_heatmap.png``, ``sampling_density.png``, ``report.md``
and ``report.json``.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from foveate.pipelines import get_pipeline, run_pipeline
from foveate.pipelines.image import ImageConfig, preset
from foveate.train import CheckpointError, config_to_dict, parse_config
from foveate.train.visuals import downsample_map

from .plots import plot_curves, plot_maps
from .writing import write_markdown

__all__ = [
    "DEMO_PRESETS",
    "REPORT_FILES",
    "CompareConfig",
    "StrategyRun",
    "build_report",
    "compare_main",
    "demo_main",
    "first_reaching",
    "image_density",
    "run_comparison",
    "run_strategies",
    "write_report",
]

REPORT_FILES = (
    "psnr_vs_step.png",
    "psnr_vs_wall_clock.png",
    "error_heatmap.png",
    "sampling_density.png",
    "report.md",
    "report.json",
)
MAP_SIDE = 384
"""Longest side of the error and density maps in the report."""


@dataclass
class CompareConfig:
    """Train one photo's field once per strategy (same seed and budget) and report side by side."""

    strategies: tuple[str, ...] = ("uniform", "error_weighted", "spatial", "adaptive")
    """Strategies to compare; include uniform for the steps-to-uniform's-final measure."""
    out: str = "runs/image/compare"
    """Directory for the plots, report.md and report.json."""
    run: ImageConfig = field(default_factory=ImageConfig)


@dataclass
class StrategyRun:
    """One strategy's outcome: validation curve, final maps and timing."""

    strategy: str
    curve: list[list[float]]
    final: dict[str, float]
    train_seconds: float
    error_map: torch.Tensor
    density_map: torch.Tensor | None


def _compare_presets(names: Sequence[str], **changes: Any) -> dict[str, CompareConfig]:
    return {name: CompareConfig(run=preset(name, **changes)) for name in names}


COMPARE_PRESETS = _compare_presets(("default", "cpu", "capacity", "tiny"))
DEMO_PRESETS = {
    # Sized so four strategies finish well inside five minutes on a 2-core CPU. One thread:
    # with two, a CPU shared with any other job slows several-fold (threads wait on each other).
    "demo": CompareConfig(
        out="runs/demo",
        run=preset(
            "cpu",
            train__steps=400,
            train__batch_size=16384,
            train__validate_every=25,
            train__log_every=25,
            train__cpu_threads=1,
        ),
    ),
    "tiny": CompareConfig(out="runs/demo", run=preset("tiny")),
}


def image_density(sampler: Any) -> torch.Tensor:
    """The sampler's density over a one-image (1, H, W) layout, relative to uniform."""
    _, height, width = sampler.shape
    return sampler.probabilities().view(height, width) * sampler.num_units


def run_strategies(
    config: Any,
    strategies: Sequence[str],
    console: Any = None,
    *,
    pipeline: str = "image",
    density: Callable[[Any], torch.Tensor] = image_density,
) -> list[StrategyRun]:
    """Train ``config`` of ``pipeline`` once per strategy, in memory, and collect curves and maps.

    ``density`` turns the final sampler into the 2-D map shown in ``sampling_density.png``.
    """
    if not strategies:
        raise ValueError("give at least one strategy")
    if len(set(strategies)) != len(strategies):
        raise ValueError(f"strategies must be distinct, got {list(strategies)}")
    spec = get_pipeline(pipeline)
    runs = []
    for strategy in strategies:
        run_config = copy.deepcopy(config)
        run_config.sampling.strategy = strategy
        run_config.train.resume = None
        result, trainer = run_pipeline(spec, run_config, console=console, in_memory=True)
        if result.status != "completed":
            raise RuntimeError(f"strategy {strategy!r} did not complete: {result.message}")
        curve = [[r["step"], r["psnr"], r["wall_seconds"]] for r in result.history]
        final = {k: v for k, v in result.history[-1].items() if k not in ("step", "wall_seconds")}
        density_map = None
        if not trainer.sampler.in_warmup(trainer.step):
            density_map = downsample_map(density(trainer.sampler), MAP_SIDE).cpu()
        error = downsample_map(trainer.task.maps["error"], MAP_SIDE).cpu()
        runs.append(StrategyRun(strategy, curve, final, result.train_seconds, error, density_map))
    return runs


def first_reaching(curve: Sequence[Sequence[float]], target: float) -> tuple[int, float] | None:
    """The first (step, wall_seconds) of a ``[step, psnr, wall]`` curve with psnr >= target."""
    for step, psnr, wall in curve:
        if psnr >= target:
            return int(step), float(wall)
    return None


def psnr_at_wall(curve: Sequence[Sequence[float]], seconds: float) -> float | None:
    """PSNR of a ``[step, psnr, wall]`` curve after ``seconds`` of training, linear between validations.

    None when the curve starts after ``seconds``; the last point's PSNR when it ends before.
    """
    previous = None
    for _, psnr, wall in curve:
        if wall >= seconds:
            if previous is None:
                return float(psnr) if wall == seconds else None
            wall_before, psnr_before = previous
            fraction = (seconds - wall_before) / (wall - wall_before) if wall > wall_before else 1.0
            return float(psnr_before + fraction * (psnr - psnr_before))
        previous = (wall, psnr)
    return None if previous is None else float(previous[1])


def build_report(
    config: Any,
    runs: Sequence[StrategyRun],
    height: int,
    width: int,
    *,
    source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of report.json; ``source`` names the photo or scene (default ``config.image``)."""
    uniform = next((r for r in runs if r.strategy == "uniform"), None)
    target = None if uniform is None else uniform.final["psnr"]
    # The equal wall-clock budget: the shortest run's training time, so every strategy has a point there.
    equal_wall = min(run.train_seconds for run in runs)
    strategies = {}
    for run in runs:
        reached = None if target is None else first_reaching(run.curve, target)
        strategies[run.strategy] = {
            "final_psnr": run.final["psnr"],
            "final_ssim": run.final.get("ssim"),
            "curve": run.curve,
            "steps_to_uniform_final": None if reached is None else reached[0],
            "wall_to_uniform_final": None if reached is None else reached[1],
            "train_seconds": run.train_seconds,
            "psnr_at_equal_wall": psnr_at_wall(run.curve, equal_wall),
        }
    return {
        "image": config.image if source is None else source,
        **(extra or {}),
        "height": height,
        "width": width,
        "steps": config.train.steps,
        "batch_size": config.train.batch_size,
        "seed": config.train.seed,
        "uniform_final_psnr": target,
        "equal_wall_seconds": equal_wall,
        "strategies": strategies,
        "machine": {
            "device": _device_name(config.train.device),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "config": config_to_dict(config),
    }


def _device_name(device: str) -> str:
    if (device in ("auto", "cuda") and torch.cuda.is_available()) or device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return "cpu"


def write_report(
    out: Path, report: dict[str, Any], runs: Sequence[StrategyRun], *, error_title: str, density_title: str
) -> None:
    """Write the curves, the two map figures, report.md and (atomically) report.json into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(runs, out / "psnr_vs_step.png", out / "psnr_vs_wall_clock.png", target=report["uniform_final_psnr"])
    plot_maps({r.strategy: r.error_map for r in runs}, out / "error_heatmap.png", title=error_title,
              label="squared error")
    densities = {r.strategy: r.density_map for r in runs if r.density_map is not None}
    plot_maps(densities, out / "sampling_density.png", title=density_title, label="density relative to uniform")
    write_markdown(report, out / "report.md")
    temporary = out / f".report.json.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(report, indent=1))
    os.replace(temporary, out / "report.json")


def run_comparison(compare: CompareConfig, console: Any = None) -> tuple[dict[str, Any], Path]:
    """Run every strategy and write the report files into ``compare.out``; returns (report, dir)."""
    from foveate.data import load_photo

    photo = load_photo(compare.run.image)
    runs = run_strategies(compare.run, compare.strategies, console)
    out = Path(compare.out)
    report = build_report(compare.run, runs, photo.height, photo.width)
    write_report(
        out,
        report,
        runs,
        error_title="per-pixel squared error of the final model",
        density_title="final sampling density (1 = uniform)",
    )
    return report, out


def headline(report: dict[str, Any]) -> list[str]:
    """One line per strategy: final PSNR, difference to uniform, steps to uniform's final."""
    lines = []
    target = report["uniform_final_psnr"]
    steps = report["steps"]
    for name, result in report["strategies"].items():
        line = f"{name:>15}: final PSNR {result['final_psnr']:.2f} dB"
        if target is not None and name != "uniform":
            line += f" ({result['final_psnr'] - target:+.2f} dB vs uniform)"
            reached = result["steps_to_uniform_final"]
            if reached is None:
                line += f"; did not reach uniform's final PSNR in {steps} steps"
            else:
                line += f"; reached uniform's final PSNR at step {reached} ({reached / steps:.2f}x)"
        lines.append(line)
    return lines


def _compare_command(argv: Sequence[str], presets: dict[str, CompareConfig], prog: str, description: str) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    try:
        compare = parse_config(CompareConfig, argv, presets=presets, prog=prog, description=description)
        if compare.run.train.resume:
            raise ValueError("a comparison always starts fresh; --resume is for 'foveate train image'")
        started = time.perf_counter()
        report, out = run_comparison(compare, console)
    except (FileNotFoundError, ValueError, CheckpointError) as error:
        console.print(f"[red]{prog}: error:[/] {error}", highlight=False)
        return 2
    print(
        f"{report['image']} ({report['width']} x {report['height']}), {report['steps']} steps x "
        f"{report['batch_size']} pixels, seed {report['seed']}, {time.perf_counter() - started:.0f} s in all"
    )
    for line in headline(report):
        print(line)
    print(f"report: {out / 'report.md'}")
    return 0


def compare_main(argv: Sequence[str]) -> int:
    """``foveate compare image``."""
    return _compare_command(
        argv,
        COMPARE_PRESETS,
        "foveate compare image",
        "Train the image field once per sampling strategy (same seed and budget) and write a report.",
    )


def demo_main(argv: Sequence[str]) -> int:
    """``foveate demo``: a small comparison on a bundled photo, a few minutes on a CPU."""
    return _compare_command(
        argv,
        DEMO_PRESETS,
        "foveate demo",
        "Compare uniform and error-guided pixel sampling on a bundled photo (a few minutes on a CPU).",
    )
