"""report.md: a comparison's numbers as a readable table, with its figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["write_markdown"]


def _text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def _format(value: float | None, pattern: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, pattern)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """Write the comparison ``report`` (the content of report.json) as Markdown."""
    steps = report["steps"]
    target = report["uniform_final_psnr"]
    uniform = report["strategies"].get("uniform")
    lines = [
        f"# Sampling strategies on {report['image']} ({report['width']} x {report['height']})",
        "",
        f"{steps} steps of {report['batch_size']} pixels each, seed {report['seed']}, on "
        f"{report['machine']['device']} ({report['machine']['cpus']} CPUs, {report['machine']['torch_threads']} "
        f"torch threads), {report['date']}.",
        "Every strategy trains the same model from the same initialisation; only the sampler differs.",
        "",
        "| strategy | final PSNR (dB) | vs uniform (dB) | final SSIM | steps to uniform's final | "
        f"wall-clock to uniform's final | PSNR at {report['equal_wall_seconds']:.1f} s (dB) | training time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in report["strategies"].items():
        delta = None if target is None else result["final_psnr"] - target
        reached = result["steps_to_uniform_final"]
        wall = result["wall_to_uniform_final"]
        step_text = "not reached" if target is not None and reached is None else _format(reached, "d")
        if reached is not None:
            step_text += f" ({reached / steps:.2f}x)"
        wall_text = "not reached" if target is not None and wall is None else _format(wall, ".1f")
        if wall is not None and uniform is not None and uniform["train_seconds"] > 0:
            wall_text += f" s ({wall / uniform['train_seconds']:.2f}x)"
        lines.append(
            f"| {name} | {result['final_psnr']:.2f} | {_format(delta, '+.2f')} | "
            f"{_format(result['final_ssim'], '.4f')} | {step_text} | {wall_text} | "
            f"{_format(result['psnr_at_equal_wall'], '.2f')} | {result['train_seconds']:.1f} |"
        )
    lines += [
        "",
        "Steps and wall-clock to uniform's final PSNR are read at validation points, so they are "
        "upper bounds at the validation interval's resolution. Wall-clock counts training only "
        "(validation excluded). PSNR at equal wall-clock is read, linearly between validations, at the "
        "shortest run's training time.",
        "",
        "![PSNR against steps](psnr_vs_step.png) ![PSNR against wall-clock](psnr_vs_wall_clock.png)",
        "",
        "![Per-pixel error of each final model](error_heatmap.png)",
        "",
        "![Final sampling density of each strategy](sampling_density.png)",
        "",
    ]
    _text_atomic(path, "\n".join(lines))
