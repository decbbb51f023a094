"""``foveate compare PIPELINE`` and ``foveate demo``: sampling variants side by side, over seeds.

Every variant trains the same task from the same seed with the same budget; only the sampler
differs. Each seed is a paired experiment against the reference variant (uniform). The numbers
come from :mod:`foveate.report.pooling`; the comparison writes into its output directory:
``<metric>_vs_step.png``, ``<metric>_vs_wall_clock.png``, the final maps of each variant
(``error_heatmap.png``), ``sampling_density.png``, ``sampling_entropy.png``, ``reconstructions.png``
(target and each variant's result, where the task returns images), ``<map>_over_time.png`` for
per-unit profiles (a motion's success per bin), ``matched_schedules.png`` where ``--budgets`` trained
shorter runs, ``report.md`` and ``report.json``.

``--budgets F ...`` also trains every variant but the reference for each fraction F of the run, each
on its own shorter schedule, and reports where each settles level with the reference's full run
(:func:`foveate.report.pooling.pool_budgets`): the steps ratio that charges the schedule as well.

``--pool DIR ...`` trains nothing: it pools the runs stored in earlier comparisons' report.json.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from tyro.conf import arg

from foveate.allocator import keep_freed_memory
from foveate.files import atomic_write_json
from foveate.pipelines import PipelineSpec, get_pipeline, make_trainer
from foveate.pipelines.registry import USAGE_ERRORS, one_line
from foveate.train import Metric, Preset, check_config, config_to_dict, parse_config
from foveate.train.distributed import first_process, ranks
from foveate.train.visuals import density_map, downsample_map

from .plots import plot_budgets, plot_curves, plot_images, plot_maps, plot_profiles, plot_sampling
from .pooling import RunRecord, pool, pool_budgets
from .writing import budget_lines, late_fall_warnings, write_markdown

__all__ = [
    "Comparison",
    "compare",
    "compare_command",
    "demo_main",
    "headline",
    "pool_saved",
    "report_of",
    "train_variant",
]

MAP_SIDE = 384
"""Longest side of the maps and pictures kept for the report."""
DENSITY_VIEWS = 4
"""Images of an (images, H, W) layout shown side by side in the sampling-density figure."""


@dataclasses.dataclass
class Artefacts:
    """What a run leaves for the figures only (not for report.json): final maps, pictures, density."""

    maps: dict[str, np.ndarray]
    images: dict[str, np.ndarray]
    density: np.ndarray | None


@dataclasses.dataclass
class Comparison:
    """A finished comparison: its runs, pooled numbers and what the report says about them."""

    report: dict[str, Any]
    records: list[RunRecord]
    artefacts: dict[str, Artefacts]


def train_variant(pipeline: str, config: Any, variant: str, seed: int) -> tuple[RunRecord, Artefacts, str]:
    """Train one variant x seed in memory; returns its record, its artefacts and the task's description.

    Module-level so that worker processes can run it.
    """
    spec = get_pipeline(pipeline)
    config = spec.with_variant(copy.deepcopy(config), variant)
    config.train.seed = seed
    config.train.resume = None
    trainer = make_trainer(spec, config, in_memory=True, alone=True)
    if trainer.task.metric != spec.task_type.metric:
        raise ValueError(
            f"{trainer.task.describe()} is judged by {trainer.task.metric.name}, not by the {pipeline} pipeline's "
            f"{spec.task_type.metric.name}, which a comparison reports"
        )
    result = trainer.fit()
    if result.status == "interrupted":
        raise KeyboardInterrupt(f"{variant} (seed {seed}) was interrupted")
    stopped_as_asked = result.status == "stopped" and result.step == config.train.stop_at
    if result.status not in ("completed", "target") and not stopped_as_asked:
        raise RuntimeError(f"{variant} (seed {seed}) did not finish: {result.message}")
    metric = trainer.task.metric.name
    record = RunRecord(
        variant=variant,
        seed=seed,
        curve=[[r["step"], r[metric], r["wall_seconds"]] for r in result.history],
        final={k: v for k, v in result.full_history[-1].items() if k not in ("step", "wall_seconds")},
        train_seconds=result.train_seconds,
        steps=result.step if stopped_as_asked else config.train.steps,
        status=result.status,
        sampling=[[h["step"], h["normalized_entropy"], h["top1pct_mass"]] for h in result.sampler_history],
        profiles=result.profiles,
    )
    final = result.final
    artefacts = Artefacts(
        maps={name: _small(value) for name, value in final.maps.items()},
        images={name: _small(value) for name, value in final.images.items() if name in ("target", "prediction")},
        density=_density(trainer.sampler, trainer.step),
    )
    return record, artefacts, trainer.task.describe()


def _small(value: torch.Tensor) -> np.ndarray:
    value = value.detach().float().cpu()
    return (downsample_map(value, MAP_SIDE) if value.ndim >= 2 else value).numpy()


def _density(sampler: Any, step: int) -> np.ndarray | None:
    """The final sampling density relative to uniform: the first images of a grid side by side, or per unit."""
    if sampler.in_warmup(step):
        return None
    if len(sampler.shape) != 3:
        return (sampler.probabilities() * sampler.num_units).cpu().numpy()
    return density_map(sampler, DENSITY_VIEWS, MAP_SIDE * DENSITY_VIEWS).cpu().numpy()


def compare(
    spec: PipelineSpec,
    config: Any,
    variants: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    *,
    workers: int = 1,
    command: str = "",
    budgets: Sequence[float] = (),
) -> Comparison:
    """Train every variant for every seed (in ``workers`` processes), pool, and write the report into ``out``.

    ``budgets`` are fractions of the run (its steps; ``spec.length`` says which field) for which every
    variant but the reference is trained again on its own schedule (the report's ``budgets``). Under
    ``torchrun`` the jobs are spread over the ranks (each with its own ``workers``) and rank 0 writes
    the report of them all.
    """
    variants, seeds = list(variants), list(seeds)
    if not variants or not seeds:
        raise ValueError("give at least one variant and one seed")
    if len(set(variants)) != len(variants) or len(set(seeds)) != len(seeds):
        raise ValueError(f"variants and seeds must be distinct, got {variants} and {seeds}")
    reference = "uniform" if "uniform" in variants else variants[0]
    cuts = _budget_lengths(spec, config, budgets, variants)
    for variant in variants:  # an unknown name or a bad number fails here, before any training
        check_config(spec.with_variant(copy.deepcopy(config), variant))
        for length in cuts.values():
            check_config(spec.with_variant(_cut(spec, config, length), variant))
    jobs = [(spec.name, config, variant, seed) for seed in seeds for variant in variants]
    fractions = [None] * len(jobs)
    for fraction, length in cuts.items():
        shorter = _cut(spec, config, length)
        guided = [(spec.name, shorter, v, seed) for seed in seeds for v in variants if v != reference]
        jobs += guided
        fractions += [fraction] * len(guided)
    tagged = list(zip(fractions, jobs, strict=True))
    team = ranks()
    mine = team.share(tagged)
    where = "" if team.alone else f"rank {team.rank}: "
    metric = spec.task_type.metric.name
    outcomes = []

    def finished(fraction: float | None, outcome: tuple[RunRecord, Artefacts, str]) -> None:
        record = outcome[0]
        outcomes.append((fraction, outcome))
        budget = "" if fraction is None else f" at {fraction:g}x the {spec.task_type.step_noun}"
        print(
            f"{where}[{len(outcomes)}/{len(mine)}] {record.variant}{budget} seed {record.seed}: "
            f"{metric} {record.curve[-1][1]:.4g} "
            f"after {record.curve[-1][0]:.0f} {spec.task_type.step_noun}, {record.train_seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    if workers > 1:
        spawn = get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn, initializer=keep_freed_memory) as executor:
            futures = {executor.submit(train_variant, *job): fraction for fraction, job in mine}
            for future in as_completed(futures):
                finished(futures[future], future.result())
    else:
        for fraction, job in mine:
            finished(fraction, train_variant(*job))
    outcomes = [outcome for part in team.gather(outcomes) for outcome in part]
    order = {(fraction, job[2], job[3]): index for index, (fraction, job) in enumerate(tagged)}
    outcomes.sort(key=lambda done: order[done[0], done[1][0].variant, done[1][0].seed])
    records = [outcome[0] for fraction, outcome in outcomes if fraction is None]
    shorter_runs: dict[float, list[RunRecord]] = {}
    for fraction, outcome in outcomes:
        if fraction is not None:
            shorter_runs.setdefault(fraction, []).append(outcome[0])
    artefacts: dict[str, Artefacts] = {}
    for fraction, (record, artefact, _) in outcomes:
        if fraction is None:
            artefacts.setdefault(record.variant, artefact)
    task = spec.task_type
    report = build_report(
        records,
        pipeline=spec.name,
        source=outcomes[0][1][2],
        metric=task.metric,
        unit_noun=task.unit_noun,
        step_noun=task.step_noun,
        steps=max(record.steps for record in records),
        batch=task.batch_words(config),
        cost_label=task.cost_label,
        machine=machine(config.train.device, config.train.cpu_threads),
        command=command,
        config=config_to_dict(config),
        **_budget_entries(records, shorter_runs, reference, task.metric.higher_is_better),
    )
    if team.leader:
        write_report(out, report, records, artefacts)
    return Comparison(report, records, artefacts)


def _budget_lengths(
    spec: PipelineSpec, config: Any, budgets: Sequence[float], variants: Sequence[str]
) -> dict[float, int]:
    """The run length each budget fraction trains for (``spec.length``: steps, or epochs), at least 1, in order."""
    if not budgets:
        return {}
    fractions = sorted(set(budgets))
    if len(fractions) != len(budgets) or not all(0.0 < f < 1.0 for f in fractions):
        raise ValueError(f"--budgets must be distinct fractions of the run between 0 and 1, got {list(budgets)}")
    if len(variants) < 2:
        raise ValueError("--budgets needs a variant besides the reference to train on shorter schedules")
    if config.train.stop_at:
        raise ValueError("--budgets and --train.stop-at both cut the run; give one")
    *section, name = spec.length.split(".")
    full = getattr(functools.reduce(getattr, section, config), name)
    lengths = {fraction: max(1, round(fraction * full)) for fraction in fractions}
    if len(set(lengths.values())) != len(lengths) or full in lengths.values():
        raise ValueError(f"--budgets {list(budgets)} of {full} {name} round to the same lengths; space them further")
    return lengths


def _cut(spec: PipelineSpec, config: Any, length: int) -> Any:
    """A copy of ``config`` whose run is ``length`` long (``spec.length``), its schedules sized to it."""
    shorter = copy.deepcopy(config)
    *section, name = spec.length.split(".")
    setattr(functools.reduce(getattr, section, shorter), name, length)
    return shorter


def _budget_entries(
    records: Sequence[RunRecord], shorter_runs: dict[float, list[RunRecord]], reference: str, higher_is_better: bool
) -> dict[str, Any]:
    """The report's ``budget_runs`` (each a run's dict with its ``fraction``) and ``budgets``; none without runs."""
    if not shorter_runs:
        return {}
    return {
        "budgets": pool_budgets(records, shorter_runs, reference, higher_is_better),
        "budget_runs": [{"fraction": f, **r.to_dict()} for f, runs in shorter_runs.items() for r in runs],
    }


def report_of(
    records: Sequence[RunRecord], spec: PipelineSpec, source: str, command: str, threads: int, **extra: Any
) -> dict[str, Any]:
    """A report of saved runs of ``spec``'s pipeline (benchmarks pooling earlier runs): the task's facts filled in.

    ``threads`` is the torch threads the runs used; ``steps`` is the longest run's budget.
    """
    task = spec.task_type
    return build_report(
        records,
        pipeline=spec.name,
        source=source,
        metric=task.metric,
        unit_noun=task.unit_noun,
        step_noun=task.step_noun,
        steps=max(r.steps for r in records),
        batch=None,
        cost_label=task.cost_label,
        machine=machine(threads=threads),
        command=command,
        **extra,
    )


def build_report(
    records: Sequence[RunRecord],
    *,
    pipeline: str,
    source: str,
    metric: Metric,
    unit_noun: str,
    step_noun: str,
    steps: int,
    batch: str | None,
    machine: dict[str, Any],
    command: str,
    config: dict[str, Any] | None = None,
    cost_label: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The content of report.json: what was compared, the pooled numbers, every run, the machine.

    The reference is uniform when it was trained, else the first variant; ``batch`` says what
    one step trains on (``16384 pixels``), or None when the task draws its own units; ``cost_label``
    what the runs' ``cost_per_unit`` measures, where they report it.
    """
    variants = list(dict.fromkeys(r.variant for r in records))
    reference = "uniform" if "uniform" in variants else variants[0]
    return {
        "pipeline": pipeline,
        "source": source,
        "metric": dataclasses.asdict(metric),
        "unit_noun": unit_noun,
        "step_noun": step_noun,
        "steps": steps,
        "batch": batch,
        "cost_label": cost_label,
        "seeds": sorted({r.seed for r in records}),
        "reference": reference,
        "target": "absolute" if metric.target is not None else f"{reference}'s final value",
        "variants": pool(records, reference, metric.higher_is_better, metric.target, metric.name),
        "runs": [r.to_dict() for r in records],
        "machine": machine,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
        **extra,
        "config": config,
    }


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo``'s model name on Linux), or what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine(device: str = "auto", threads: int = 0) -> dict[str, Any]:
    """What the numbers were measured on; ``threads`` is the runs' torch threads (0: torch's default)."""
    cuda = (device in ("auto", "cuda") and torch.cuda.is_available()) or device.startswith("cuda")
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def write_report(
    out: Path, report: dict[str, Any], records: Sequence[RunRecord], artefacts: dict[str, Artefacts] | None = None
) -> None:
    """Write the figures, report.md and report.json into ``out`` (maps and pictures need ``artefacts``)."""
    out.mkdir(parents=True, exist_ok=True)
    metric = Metric(**report["metric"])
    reference = report["reference"]
    curves: dict[str, list[list[list[float]]]] = {}
    for record in records:
        curves.setdefault(record.variant, []).append(record.curve)
    figures = {}
    by_step, by_wall = out / f"{metric.name}_vs_step.png", out / f"{metric.name}_vs_wall_clock.png"
    target = metric.target
    if target is None and len(report["seeds"]) == 1:
        target = report["variants"][reference]["final_mean"]
    plot_curves(
        curves,
        by_step,
        by_wall,
        label=metric.label or metric.name,
        step_noun=report["step_noun"],
        target=target,
        target_label="target" if metric.target is not None else f"{reference}'s final",
    )
    figures["curves"] = [by_step.name, by_wall.name]
    if report.get("budgets"):
        plot_budgets(
            report["budgets"],
            out / "matched_schedules.png",
            label=metric.label or metric.name,
            reference=reference,
            step_noun=report["step_noun"],
        )
        figures["budgets"] = ["matched_schedules.png"]
    histories = {r.variant: r.sampling for r in records if r.seed == report["seeds"][0]}
    plot_sampling(histories, out / "sampling_entropy.png", step_noun=report["step_noun"])
    figures["sampling"] = ["sampling_entropy.png"]
    first = [r for r in records if r.seed == report["seeds"][0]]
    for name in sorted({name for r in first for name in r.profiles}):
        profiles = {r.variant: ([row[0] for row in r.curve], r.profiles[name]) for r in first if name in r.profiles}
        path = out / f"{name}_over_time.png"
        unit = report["unit_noun"].removesuffix("s")
        plot_profiles(
            profiles,
            path,
            title=f"{name} per {unit} at each validation (seed {report['seeds'][0]})",
            step_noun=report["step_noun"],
            unit=unit,
        )
        figures.setdefault("profiles", []).append(path.name)
    if artefacts:
        figures.update(_artefact_figures(out, report, artefacts))
    report["figures"] = figures
    write_markdown(report, out / "report.md")
    atomic_write_json(out / "report.json", report)


def _artefact_figures(out: Path, report: dict[str, Any], artefacts: dict[str, Artefacts]) -> dict[str, list[str]]:
    figures: dict[str, list[str]] = {}
    seed = report["seeds"][0]
    for name in sorted({name for a in artefacts.values() for name in a.maps}):
        path = out / f"{name}_heatmap.png"
        maps = {variant: a.maps[name] for variant, a in artefacts.items() if name in a.maps}
        plot_maps(maps, path, title=f"{name} of each final model (seed {seed})", label=name)
        figures.setdefault("maps", []).append(path.name)
    densities = {variant: a.density for variant, a in artefacts.items() if a.density is not None}
    if densities:
        plot_maps(
            densities,
            out / "sampling_density.png",
            title=f"final sampling density (1 = uniform, seed {seed})",
            label="density relative to uniform",
        )
        figures["density"] = ["sampling_density.png"]
    pictures = {}
    target = next((a.images["target"] for a in artefacts.values() if "target" in a.images), None)
    if target is not None:
        pictures["target"] = target
        pictures.update({v: a.images["prediction"] for v, a in artefacts.items() if "prediction" in a.images})
        plot_images(pictures, out / "reconstructions.png", title=f"target and each variant's result (seed {seed})")
        figures["reconstructions"] = ["reconstructions.png"]
    return figures


def pool_saved(reports: Sequence[Path], out: Path, command: str = "") -> dict[str, Any]:
    """Pool the runs of earlier comparisons (their report.json files or directories) into one report in ``out``."""
    loaded = []
    for path in reports:
        path = Path(path)
        file = path / "report.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no report.json at {path}")
        loaded.append(json.loads(file.read_text()))
    first = loaded[0]
    for other in loaded[1:]:
        for key in ("pipeline", "metric", "steps", "batch"):
            if other[key] != first[key]:
                raise ValueError(f"cannot pool comparisons with different {key}: {first[key]!r} and {other[key]!r}")
    records = [RunRecord.from_dict(run) for report in loaded for run in report["runs"]]
    shorter_runs: dict[float, list[RunRecord]] = {}
    for run in sorted((run for report in loaded for run in report.get("budget_runs", [])), key=lambda r: r["fraction"]):
        fields = {k: v for k, v in run.items() if k != "fraction"}
        shorter_runs.setdefault(run["fraction"], []).append(RunRecord.from_dict(fields))
    seen = set()
    tagged = [(None, r) for r in records] + [(f, r) for f, runs in shorter_runs.items() for r in runs]
    for fraction, record in tagged:
        if (fraction, record.variant, record.seed) in seen:
            budget = "" if fraction is None else f" at {fraction:g}x the steps"
            raise ValueError(f"{record.variant}{budget} seed {record.seed} appears in more than one report")
        seen.add((fraction, record.variant, record.seed))
    metric = Metric(**first["metric"])
    reference = "uniform" if any(r.variant == "uniform" for r in records) else records[0].variant
    report = build_report(
        records,
        **{k: first[k] for k in ("pipeline", "source", "unit_noun", "step_noun", "steps", "batch", "machine")},
        metric=metric,
        cost_label=first.get("cost_label"),
        command=command,
        config=first["config"],
        **_budget_entries(records, shorter_runs, reference, metric.higher_is_better),
        pooled_from=[
            {"path": str(p), "command": r.get("command", ""), "date": r.get("date")}
            for p, r in zip(reports, loaded, strict=True)
        ],
    )
    write_report(out, report, records)
    return report


def headline(report: dict[str, Any]) -> list[str]:
    """One line per variant: final value, difference to the reference, steps to reach the target."""
    metric = Metric(**report["metric"])
    reference = report["reference"]
    lines = []
    for name, result in report["variants"].items():
        line = f"{name:>15}: final {metric.label or metric.name} {result['final_mean']:.4g}"
        if len(report["seeds"]) > 1:
            line += f" ± {result['final_std']:.2g}"
        if name != reference:
            line += f" ({result['delta_mean']:+.3g} vs {reference})"
        goal = "the target" if metric.target is not None else f"{reference}'s final"
        ratio = result["steps_ratio_median"]
        if result["reached"] == 0:
            line += f"; did not reach {goal}"
        elif ratio is not None and name != reference:
            line += f"; reached {goal} in {ratio:.2f}x {reference}'s {report['step_noun']}"
        elif result["steps_median"] is not None:
            line += f"; reached {goal} at {report['step_noun'][:-1]} {result['steps_median']:.0f}"
        lines.append(line)
    return lines + budget_lines(report) + [f"warning: {w}" for w in late_fall_warnings(report)]


def options_type(spec: PipelineSpec, default_out: str | None = None) -> type:
    """The flags ``foveate compare NAME`` adds to the pipeline's own: variants, seeds, output, workers, pooling."""
    names = tuple(spec.variants)
    out = default_out or f"runs/{spec.name}/compare"
    return dataclasses.make_dataclass(
        "CompareOptions",
        [
            (
                "strategies",
                Annotated[
                    tuple[Literal[names], ...],
                    arg(help="Variants to train side by side; uniform, when present, is the reference."),
                ],
                dataclasses.field(default=names[: spec.default_variants]),
            ),
            (
                "seeds",
                Annotated[int, arg(help="Seeds per variant: --seed, --seed + 1, ...; each seed a paired run.")],
                dataclasses.field(default=1),
            ),
            (
                "out",
                Annotated[Path, arg(help="Directory for the figures, report.md and report.json.")],
                dataclasses.field(default=Path(out)),
            ),
            (
                "workers",
                Annotated[int, arg(help="Training processes in parallel (1: one after another).")],
                dataclasses.field(default=1),
            ),
            (
                "budgets",
                Annotated[
                    tuple[float, ...],
                    arg(
                        help="Also train every variant but the reference for these fractions of the run (e.g. 0.5 "
                        "0.7 of --steps; of the epochs for pbr), each on its own shorter schedule, and report the "
                        "fraction at which each settles level with the reference's full run: the steps ratio that "
                        "charges the schedule too."
                    ),
                ],
                dataclasses.field(default=()),
            ),
            (
                "pool",
                Annotated[
                    tuple[Path, ...],
                    arg(help="Train nothing: pool the runs of earlier comparisons (their directories or report.json)."),
                ],
                dataclasses.field(default=()),
            ),
        ],
    )


def compare_command(
    name: str,
    argv: Sequence[str],
    *,
    presets: dict[str, Preset] | None = None,
    prog: str | None = None,
    default_out: str | None = None,
    command: str | None = None,
) -> int:
    """``foveate compare NAME [options]``: train the variants, print the headline, point at the report.

    ``command`` is recorded in the report (default: ``prog`` and ``argv``, as typed).
    """
    from rich.console import Console

    console = Console(stderr=True)
    prog = prog or f"foveate compare {name}"
    command = command or shlex.join([*prog.split(), *argv])
    try:
        spec = get_pipeline(name)
        config, options = parse_config(
            spec.config_type,
            argv,
            presets=presets or spec.presets,
            prog=prog,
            options=options_type(spec, default_out),
            readers=spec.config_readers,
            description=f"{spec.description} Trains each sampling variant with the same seed and budget, "
            "and reports them side by side.",
        )
        if config.train.resume:
            raise ValueError(f"a comparison always starts fresh; --resume is for 'foveate train {name}'")
        if options.seeds < 1 or options.workers < 1:
            raise ValueError("--seeds and --workers must be at least 1")
        started = time.perf_counter()
        if options.pool:
            if options.budgets:
                raise ValueError("--pool trains nothing; it pools the --budgets runs its reports hold")
            report = pool_saved(options.pool, options.out, command)
        else:
            seeds = range(config.train.seed, config.train.seed + options.seeds)
            report = compare(
                spec,
                config,
                options.strategies,
                seeds,
                options.out,
                workers=options.workers,
                command=command,
                budgets=options.budgets,
            ).report
    except USAGE_ERRORS as error:
        if first_process():
            console.print(f"[red]{prog}: error:[/] {one_line(error)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print(f"[yellow]{prog}: interrupted; no report written (comparisons run in memory)[/]", soft_wrap=True)
        return 130
    if not first_process():
        return 0
    budget = f"{report['steps']} {report['step_noun']}" + (f" x {report['batch']}" if report["batch"] else "")
    print(f"{report['source']}: {budget}, seeds {report['seeds']}, {time.perf_counter() - started:.0f} s in all")
    for line in headline(report):
        print(line)
    print(f"report: {options.out / 'report.md'}")
    return 0


def demo_main(argv: Sequence[str]) -> int:
    """``foveate demo``: uniform against error-guided pixels on a bundled photo, a few minutes on a CPU."""
    from foveate.pipelines.image import preset

    presets = {
        "demo": Preset(
            "astronaut, four strategies, 400 steps of 16,384 pixels: a few minutes on two CPU cores",
            preset("cpu", train__steps=400, train__batch_size=16384, train__log_every=25),
        ),
        "tiny": Preset("seconds, for a smoke test", preset("tiny")),
    }
    return compare_command("image", argv, presets=presets, prog="foveate demo", default_out="runs/demo")
