"""How much a run's quality falls back late in training: the largest drop between consecutive validations.

A run that converges climbs (or levels off) to its end; one that oscillates loses decibels from
one validation to the next even while its learning rate decays. For every comparison report under
the folders given (``*/report.json``), each variant's runs are read from ``--after`` of the run on
(default: its last third) and the largest fall between neighbouring validations is printed per
seed (0.00: never fell), in the report metric's units, higher-is-better or not, with whether a
comparison's report (``foveate.report.pooling.late_falls``, over the last third) names the variant
as falling where uniform does not::

    python benchmarks/late_drops.py runs/check/concentrated runs/settings/correction-0.5-unseen
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from foveate.report.pooling import RunRecord, late_fall, late_falls, pool


def read(report: dict, after: float) -> dict[str, list[float]]:
    """Each variant's largest late drop, seed by seed (seeds in ascending order)."""
    higher = report["metric"]["higher_is_better"]
    drops: dict[str, list[tuple[int, float]]] = {}
    for run in report["runs"]:
        if run.get("curve"):
            drops.setdefault(run["variant"], []).append((run["seed"], late_fall(run["curve"], higher, after)))
    return {variant: [d for _, d in sorted(seeds)] for variant, seeds in drops.items()}


def named(report: dict) -> set[str] | None:
    """The variants a comparison's report warns about (re-pooled, so reports written before the warning
    count too); None without a uniform run to judge them by."""
    if not any(run["variant"] == "uniform" for run in report["runs"]):
        return None
    metric = report["metric"]
    records = [RunRecord.from_dict(run) for run in report["runs"] if run.get("curve")]
    pooled = pool(records, "uniform", metric["higher_is_better"], metric["target"], metric["name"])
    return {variant for variant, *_ in late_falls({"reference": "uniform", "variants": pooled})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="folders of case folders, each with a report.json")
    parser.add_argument("--after", type=float, default=2 / 3, help="share of the run's steps to read from")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not 0.0 <= args.after < 1.0:
        parser.error(f"--after must be in [0, 1), got {args.after}")
    reports = {folder: sorted(folder.glob("*/report.json")) for folder in args.folders}
    for folder, found in reports.items():
        if not found:
            parser.error(f"{folder}: no */report.json in it")
    rows = []
    print("| folder | case | variant | largest late drop, seed by seed | named by the report's warning |")
    print("|---|---|---|---|---|")
    for folder, found in reports.items():
        for path in found:
            report = json.loads(path.read_text())
            warned = named(report)
            for variant, drops in read(report, args.after).items():
                flag = None if warned is None or variant == "uniform" else variant in warned
                rows.append(
                    {"folder": folder.name, "case": path.parent.name, "variant": variant, "drops": drops, "named": flag}
                )
                shown = {None: "", True: "yes", False: "no"}[flag]
                drops_text = " / ".join(f"{d:.2f}" for d in drops)
                print(f"| {folder.name} | {path.parent.name} | {variant} | {drops_text} | {shown} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
