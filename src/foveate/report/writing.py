"""report.md: a comparison's numbers as a readable table, with its figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foveate.files import atomic_write_text

from .pooling import LATE, SETTLE, late_falls

__all__ = [
    "budget_lines",
    "budget_table",
    "cost_lines",
    "late_fall_warnings",
    "settings_markdown",
    "summary_table",
    "write_markdown",
]


def _format(value: float | None, pattern: str, missing: str = "n/a", suffix: str = "") -> str:
    return missing if value is None else format(value, pattern) + suffix


def summary_table(report: dict[str, Any], label: str | None = None) -> list[str]:
    """The pooled numbers of ``report`` as Markdown table rows (header included).

    ``label`` prefixes every row with a column naming the setting, for tables over several.
    """
    metric = report["metric"]
    reference = report["reference"]
    name = metric["label"] or metric["name"]
    seeds = len(report["seeds"])
    goal = "target" if metric["target"] is not None else f"{reference}'s final"
    head = "| setting " if label is not None else ""
    lines = [
        f"{head}| variant | final {name} | vs {reference}: mean / worst seed | {report['step_noun']} to {goal} "
        f"(x {reference}'s) | wall-clock to {goal} (x {reference}'s) | reached | {name} at equal wall-clock vs "
        f"{reference}: mean / worst | training time (x {reference}'s) | settled (last {SETTLE}) vs {reference}: "
        f"mean / worst | {report['step_noun']} to {reference}'s settled, best so far (x {reference}'s) |",
        ("|---" * (11 if label is not None else 10)) + "|",
    ]
    for variant, result in report["variants"].items():
        spread = f" ± {result['final_std']:.2f}" if seeds > 1 else ""
        paired = "" if variant == reference else f"{result['delta_mean']:+.2f} / {result['delta_worst']:+.2f}"
        equal = ""
        if variant != reference and result["equal_wall_delta_mean"] is not None:
            equal = f"{result['equal_wall_delta_mean']:+.2f} / {result['equal_wall_delta_worst']:+.2f}"
        steps = _reach(result["steps_ratio_median"], result["steps_median"], result["reached"])
        wall = (
            "not reached" if result["steps_median"] is None else _format(result["wall_ratio_median"], ".2f", suffix="x")
        )
        prefix = f"| {label} " if label is not None else ""
        calm, calm_steps = "", ""
        if variant != reference and "settled_delta_mean" in result:
            calm = f"{result['settled_delta_mean']:+.2f} / {result['settled_delta_worst']:+.2f}"
            calm_steps = _format(result["settled_steps_ratio_median"], ".2f", "not reached", "x")
        lines.append(
            f"{prefix}| {variant} | {result['final_mean']:.2f}{spread} | {paired} | {steps} | {wall} | "
            f"{result['reached']}/{len(result['seeds'])} | {equal} | {result['train_time_ratio_median']:.2f}x | "
            f"{calm} | {calm_steps} |"
        )
    return lines


def cost_lines(report: dict[str, Any]) -> list[str]:
    """A paragraph of each variant's work per drawn unit, where every variant's runs report it (else none)."""
    label, reference, variants = report.get("cost_label"), report["reference"], report["variants"]
    if not label or not all("cost_mean" in result for result in variants.values()):
        return []
    parts = [
        f"{variant} {result['cost_mean']:.1f}"
        + ("" if variant == reference else f" ({result['cost_ratio_median']:.2f}x {reference}'s)")
        for variant, result in variants.items()
    ]
    return [f"**Cost.** {label.capitalize()}, over training (mean over seeds): {'; '.join(parts)}.", ""]


def budget_lines(report: dict[str, Any]) -> list[str]:
    """A sentence per variant trained on shorter schedules: where it settles level with the reference's full run."""
    reference, noun = report["reference"], report["step_noun"]
    lines = []
    for variant, budget in report.get("budgets", {}).items():
        match = budget["matched"]
        if match is None:
            each = ", ".join(f"{p['fraction']:g}x {p['delta_mean']:+.3g}" for p in budget["points"])
            lines.append(f"{variant:>15}: settles below {reference}'s full run at every share of its {noun}: {each}")
            continue
        where = f"{'at most ' if budget['at_most'] else ''}{match:.2f}x {reference}'s {noun}"
        wall = budget["matched_wall"]
        lines.append(
            f"{variant:>15}: on its own schedule, settles level with {reference}'s full run at {where}"
            + ("" if wall is None else f" ({wall:.2f}x {reference}'s training time)")
        )
    return lines


def budget_table(report: dict[str, Any]) -> list[str]:
    """The matched-schedule table: each budget's settled delta to the reference's full run, and the match."""
    budgets = report.get("budgets")
    if not budgets:
        return []
    reference, noun = report["reference"], report["step_noun"]
    fractions = sorted({p["fraction"] for b in budgets.values() for p in b["points"]})
    lines = [
        f"**Matched schedules.** Each variant trained again for fractions of {reference}'s {noun}, each run on its "
        f"own shorter schedule, its settled value (last {SETTLE} validations) against {reference}'s full run of the "
        "same seed: mean / worst seed (1x is the main comparison). 'Level at' interpolates where the mean reaches "
        f"{reference}'s, with the training time there; unlike the {noun} read on one curve it charges the "
        "shorter schedule too.",
        "",
        "| variant | " + " | ".join(f"{f:g}x" for f in fractions) + f" | level with {reference} at |",
        "|---|" + "---|" * (len(fractions) + 1),
    ]
    for variant, budget in budgets.items():
        by_fraction = {p["fraction"]: p for p in budget["points"]}
        cells = [
            f"{by_fraction[f]['delta_mean']:+.2f} / {by_fraction[f]['delta_worst']:+.2f}" if f in by_fraction else ""
            for f in fractions
        ]
        match, wall = budget["matched"], budget["matched_wall"]
        where = "not level" if match is None else f"{'<= ' if budget['at_most'] else ''}{match:.2f}x"
        where += f" (training time {wall:.2f}x)" if match is not None and wall is not None else ""
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {where} |")
    return [*lines, ""]


def _sign(report: dict[str, Any]) -> float:
    return 1.0 if report["metric"]["higher_is_better"] else -1.0


def late_fall_warnings(report: dict[str, Any]) -> list[str]:
    """A sentence per variant whose validation fell late in a run where the reference's did not."""
    metric = report["metric"]
    unit = " dB" if metric["name"] == "psnr" else ""
    sampling = (report.get("config") or {}).get("sampling") or {}
    reference = report["reference"]
    digits = ".2f" if unit else ".3g"
    return [
        f"{variant}'s validation fell by {fall:{digits}}{unit} from one validation to the next after {LATE:.0%} of "
        f"seed {seed}'s run; {reference}'s fell by at most {worst:{digits}}{unit} there."
        + _late_fall_hint(variant, sampling)
        for variant, seed, fall, worst in late_falls(report)
    ]


def _late_fall_hint(variant: str, sampling: dict[str, Any]) -> str:
    """What to try against a late fall: soft weights where there were none, else adaptive's fall back."""
    if sampling.get("correction") == "none":
        return (
            " Uncorrected error-guided draws train an error-weighted objective, which can pull the fit away from "
            "the population's late in a run: try `--sampling.correction 0.5`, which restores half of the "
            "population's loss (it stopped such falls on images of flat regions and lines)."
        )
    if variant == "error_weighted":
        return (
            " `adaptive` hands the draw back to uniform when the errors on its uniform draws rise: try "
            "`--strategy adaptive` (with soft weights it stayed above uniform on the images where "
            "`error_weighted` fell)."
        )
    return ""


def _reach(ratio: float | None, steps: float | None, reached: int) -> str:
    if not reached or steps is None:
        return "not reached"
    return f"{ratio:.2f}x ({steps:.0f})" if ratio is not None else f"{steps:.0f} (reference never)"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """Write the comparison ``report`` (the content of report.json) as Markdown."""
    machine = report["machine"]
    seeds = report["seeds"]
    reference = report["reference"]
    metric = report["metric"]
    lines = [
        f"# Sampling variants: {report['pipeline']} on {report['source']}",
        "",
        f"{report['steps']} {report['step_noun']}" + (f" of {report['batch']} each" if report["batch"] else "") + ", "
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}, on {machine['device']} "
        f"({machine['cpus']} CPUs{_model(machine)}, {machine['torch_threads']} torch threads, "
        f"torch {machine['torch']}), "
        f"{report['date']}.",
        f"Command: `{report['command']}`" if report.get("command") else "",
        "",
        "Every variant of a seed trains the same model from the same initialisation; only the sampler differs. "
        "Numbers are over seeds: the final value (a full validation) as mean ± spread between seeds; its difference "
        f"to {reference} of the same seed (mean, and the worst seed); the steps and training time at which the curve "
        "first reaches "
        + ("the task's target" if metric["target"] is not None else f"{reference}'s final value")
        + f", interpolated between validations, as ratios of {reference}'s own (medians over the seeds, "
        "a seed that never got there counting as never; steps in brackets); the curve's value at the shortest run's "
        f"training time against {reference}'s at that time. Curves are quick validations (a fixed subset where the "
        "task has one); wall-clock counts training only.",
        "",
        *summary_table(report),
        "",
        *budget_table(report),
        *cost_lines(report),
    ]
    warnings = late_fall_warnings(report)
    if warnings:
        lines += ["**Late falls.**", "", *(f"- {w}" for w in warnings), ""]
    for kind in ("curves", "budgets", "reconstructions", "maps", "density", "profiles", "sampling"):
        for name in report.get("figures", {}).get(kind, []):
            lines.append(f"![{Path(name).stem.replace('_', ' ')}]({name})")
    for source in report.get("pooled_from", []):
        lines.append(f"- pooled from `{source['path']}` ({source['date']}): `{source['command']}`")
    atomic_write_text(path, "\n".join(lines) + "\n")


def settings_markdown(title: str, reports: dict[str, dict[str, Any]], command: str, seconds: float | None) -> str:
    """One Markdown summary of comparisons over several settings (photos, scenes): a row per setting and variant."""
    first = next(iter(reports.values()))
    machine = first["machine"]
    reference = first["reference"]
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`" + ("" if seconds is None else f" ({seconds / 60:.1f} min)") + "  ",
        f"Machine: {machine['platform']}{_model(machine)}, {machine['torch_threads']} torch thread(s), "
        f"torch {machine['torch']}; "
        f"{first['date']}.",
        "",
        "Numbers from foveate.report.pooling: the final value of a full validation (mean ± spread over seeds); its "
        f"difference to {reference} of the same seed (mean / worst seed); steps and training time at which the curve "
        f"first reaches {reference}'s final value, interpolated between validations, as ratios of {reference}'s own "
        "(medians over the seeds, a seed that never reached it counting as never; steps in brackets); the curve's "
        f"value at the shortest run's training time against {reference}'s.",
        "",
    ]
    for index, (setting, report) in enumerate(reports.items()):
        table = summary_table(report, label=setting)
        lines += table if index == 0 else table[2:]
    return "\n".join(lines) + "\n"


def write_settings_summary(
    out: Path, title: str, reports: dict[str, dict[str, Any]], command: str, seconds: float | None, extra: str = ""
) -> str:
    """Write :func:`settings_markdown` (plus ``extra`` Markdown) to ``out/summary.md`` and each setting's pooled
    numbers to ``out/summary.json``; returns the Markdown (benchmarks print it)."""
    out.mkdir(parents=True, exist_ok=True)
    text = settings_markdown(title, reports, command, seconds) + (f"\n{extra}\n" if extra else "")
    atomic_write_text(out / "summary.md", text)
    atomic_write_text(out / "summary.json", json.dumps({k: r["variants"] for k, r in reports.items()}, indent=1))
    return text


def _model(machine: dict[str, Any]) -> str:
    """``", <CPU model>"`` where the report recorded one (reports before 2026-11-29 did not)."""
    return f", {machine['cpu_model']}" if machine.get("cpu_model") else ""
