"""A setting tried on the suite's cases, read against the suite's own runs, seed by seed.

Train guided strategies with a changed setting the way the suite trains its case (same preset,
steps, batch and seeds), for example::

    foveate compare image --image rocket --preset cpu --steps 300 --batch-size 8192 \\
        --train.validate-every 15 --no-ssim --strategies error_weighted --seeds 3 --workers 2 \\
        --sampling.correction 0.5 --out runs/settings/correction-0.5/image-rocket

then read every case folder of such a run against the suite's uniform and the same strategy at the
suite's settings::

    python benchmarks/against_suite.py runs/settings/correction-0.5 --json out.json

Settled values and steps to uniform's settled quality are read exactly as the suite reads them.
A trial that trained uniform beside its strategy (``--strategies uniform error_weighted``) is
also read against that uniform of its own, run under the same load, so its wall-clock counts:
``--own-uniform`` prints that table, with the wall-clock to uniform's settled quality.

A trial of fewer steps, each run on its own schedule, is read against the full runs of uniform in
another trial's folder with ``--budget-against FOLDER`` (the matched-schedule test: does a shorter
guided run end where uniform's full run does?)::

    python benchmarks/against_suite.py runs/settings/half --budget-against runs/settings/full
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from suite import _ratio, read_case, settled

SUITE = Path(__file__).with_name("results") / "suite"
OWN_HEADER = "| trial | case | strategy | vs its own uniform: mean / worst | steps | wall-clock |"
HEADER = "| trial | case | strategy | vs uniform: trial mean / worst | suite's | trial - suite | steps: trial / suite |"


def runs_of(report: dict, variant: str) -> dict[int, dict]:
    return {run["seed"]: run for run in report["runs"] if run["variant"] == variant}


def read(case: Path, suite: Path) -> list[dict]:
    """Each guided strategy of the trial and the suite's, against the suite's uniform, for one case."""
    trial = json.loads((case / "report.json").read_text())
    reference = json.loads((suite / case.name / "report.json").read_text())
    higher = trial["metric"]["higher_is_better"]
    uniform = runs_of(reference, "uniform")
    rows = []
    for strategy in sorted({run["variant"] for run in trial["runs"]} - {"uniform"}):
        row = {"case": case.name, "strategy": strategy}
        # Seed by seed: the suite's runs are read on the trial's seeds alone.
        paired = set(runs_of(trial, strategy)) & set(uniform)
        for label, runs in (("trial", runs_of(trial, strategy)), ("suite", runs_of(reference, strategy))):
            seeds = sorted(set(runs) & paired)
            deltas = [settled(runs[s]["curve"]) - settled(uniform[s]["curve"]) for s in seeds]
            steps = [
                _ratio(runs[s]["curve"], uniform[s]["curve"], settled(uniform[s]["curve"]), higher, 0) for s in seeds
            ]
            row[label] = {
                "seeds": seeds,
                "delta_mean": statistics.fmean(deltas),
                "delta_worst": min(deltas) if higher else max(deltas),
                "steps_ratio_median": statistics.median(float("inf") if s is None else s for s in steps),
            }
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trials", nargs="+", type=Path, help="folders of case folders (image-rocket, ...)")
    parser.add_argument("--suite", type=Path, default=SUITE, help="the suite's results")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--own-uniform", action="store_true", help="read each trial against the uniform it trained")
    parser.add_argument(
        "--budget-against",
        type=Path,
        help="read shorter runs against the uniform runs of the same cases in this folder",
    )
    args = parser.parse_args()
    if args.own_uniform:
        return own_uniform(args.trials, args.json)
    if args.budget_against:
        return budget_against(args.trials, args.budget_against, args.json)
    rows = []
    print(HEADER)
    print("|---|---|---|---|---|---|---|")
    for trial in args.trials:
        for case in sorted(path.parent for path in trial.glob("*/report.json")):
            for row in read(case, args.suite):
                rows.append({"setting": trial.name, **row})
                mine, theirs = row["trial"], row["suite"]
                print(
                    f"| {trial.name} | {row['case']} | {row['strategy']} | {mine['delta_mean']:+.2f} / "
                    f"{mine['delta_worst']:+.2f} | {theirs['delta_mean']:+.2f} / {theirs['delta_worst']:+.2f} | "
                    f"{mine['delta_mean'] - theirs['delta_mean']:+.2f} | {mine['steps_ratio_median']:.2f}x / "
                    f"{theirs['steps_ratio_median']:.2f}x |"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def own_uniform(trials: list[Path], out: Path | None) -> None:
    """Each trial case against the uniform runs it trained itself: settled deltas, steps and wall-clock."""
    rows = []
    print(OWN_HEADER)
    print("|---|---|---|---|---|---|")
    for trial in trials:
        for case in sorted(path.parent for path in trial.glob("*/report.json")):
            read = read_case(json.loads((case / "report.json").read_text()), None)
            for strategy, row in read["strategies"].items():
                rows.append({"setting": trial.name, "case": case.name, "strategy": strategy, **row})
                steps, wall = row["steps_ratio_median"], row["wall_ratio_median"]
                print(
                    f"| {trial.name} | {case.name} | {strategy} | {row['settled_delta_mean']:+.2f} / "
                    f"{row['settled_delta_worst']:+.2f} | {'not reached' if steps is None else f'{steps:.2f}x'} | "
                    f"{'not reached' if wall is None else f'{wall:.2f}x'} |"
                )
    if out:
        out.write_text(json.dumps(rows, indent=1) + "\n")


def budget_against(trials: list[Path], full: Path, out: Path | None) -> None:
    """Each trial case, a shorter run on its own schedule, against uniform's full runs in ``full``, seed by seed."""
    cases = [case for trial in trials for case in sorted(path.parent for path in trial.glob("*/report.json"))]
    missing = [str(full / c.name / "report.json") for c in cases if not (full / c.name / "report.json").is_file()]
    if missing:
        raise SystemExit(f"no uniform run to read against: {', '.join(missing)}")
    rows = []
    print("| trial | case | strategy | steps against uniform's | settled vs uniform's full run, by seed | wall-clock |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        trial = json.loads((case / "report.json").read_text())
        reference = json.loads((full / case.name / "report.json").read_text())
        sign = 1.0 if reference["metric"]["higher_is_better"] else -1.0
        uniform = runs_of(reference, "uniform")
        for strategy in sorted({run["variant"] for run in trial["runs"]} - {"uniform"}):
            runs = runs_of(trial, strategy)
            seeds = sorted(set(runs) & set(uniform))
            deltas = [sign * (settled(runs[s]["curve"]) - settled(uniform[s]["curve"])) for s in seeds]
            walls = [runs[s]["curve"][-1][2] / uniform[s]["curve"][-1][2] for s in seeds]
            steps = trial["steps"] / reference["steps"]
            rows.append(
                {"setting": case.parent.name, "case": case.name, "strategy": strategy, "seeds": seeds, "steps": steps}
                | {"settled_deltas": deltas, "wall_ratios": walls}
            )
            print(
                f"| {case.parent.name} | {case.name} | {strategy} | {steps:.2f}x | "
                f"{' / '.join(f'{d:+.2f}' for d in deltas)} | {statistics.median(walls):.2f}x |"
            )
    if out:
        out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
