"""Reports of motion runs: a Table-II-style table, success-per-bin heatmaps, sampling curves.

Reads each run's ``stats.jsonl`` and ``report/summary.json``; writes ``report.json``,
``table.md`` and PNG figures (matplotlib, Agg backend).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

__all__ = ["build_report", "read_run", "table_markdown"]


def read_run(run_dir: Path) -> dict[str, Any]:
    """A run's summary plus its evaluation and sampling histories."""
    summary_path = run_dir / "report" / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path} is missing: the run did not finish")
    summary = json.loads(summary_path.read_text())
    evals, sampling = [], []
    stats_path = run_dir / "stats.jsonl"
    for number, line in enumerate(stats_path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{stats_path}:{number}: not JSON ({error})") from error
        if record.get("kind") == "eval":
            evals.append(record)
        elif record.get("kind") == "sampling":
            sampling.append(record)
    return {"dir": str(run_dir), "summary": summary, "evals": evals, "sampling": sampling}


def table_markdown(runs: list[dict[str, Any]]) -> str:
    """Iterations (env steps) until the whole motion is completed, per variant and seed."""
    by_form: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_form.setdefault(run["summary"]["form"], []).append(run["summary"])
    seeds = sorted({s["seed"] for group in by_form.values() for s in group})
    header = "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | completed | median iterations |"
    lines = [header, "|" + "---|" * (len(seeds) + 3)]
    for form in sorted(by_form, key=_form_order):
        cells, done = [], []
        group = {s["seed"]: s for s in by_form[form]}
        for seed in seeds:
            s = group.get(seed)
            if s is None:
                cells.append("")
            elif s["iterations_to_complete"] is None:
                cells.append(f"never (> {s['iterations']} it, {s['env_steps']:,} steps)")
            else:
                done.append(s["iterations_to_complete"])
                cells.append(f"{s['iterations_to_complete']} it ({s['env_steps_to_complete']:,} steps)")
        median = f"{statistics.median(done):g}" if len(done) == len(group) and done else "—"
        lines.append(f"| {form} | " + " | ".join(cells) + f" | {len(done)}/{len(group)} | {median} |")
    return "\n".join(lines) + "\n"


def build_report(run_dirs: list[Path], out: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``report.json``, ``table.md`` and figures for the runs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    runs = [read_run(d) for d in run_dirs]
    report = {
        **(meta or {}),
        "runs": [
            {
                "variant": r["summary"]["form"],
                "seed": r["summary"]["seed"],
                "iterations_to_complete": r["summary"]["iterations_to_complete"],
                "env_steps_to_complete": r["summary"]["env_steps_to_complete"],
                "iterations": r["summary"]["iterations"],
                "env_steps": r["summary"]["env_steps"],
                "wall_seconds": r["summary"]["wall_seconds"],
                "final_success_rate": r["evals"][-1]["success_rate"] if r["evals"] else None,
                "final_fraction_played": r["evals"][-1]["fraction_played"] if r["evals"] else None,
                "frames_share_per_bin": _share(r["summary"]["frames_per_bin_played"]),
                "dir": r["dir"],
            }
            for r in runs
        ],
    }
    _write(out / "report.json", json.dumps(report, indent=1))
    _write(out / "table.md", table_markdown(runs))
    _figures(runs, out)
    return report


def _share(values: list[float]) -> list[float]:
    total = sum(values) or 1.0
    return [v / total for v in values]


def _form_order(form: str) -> int:
    return {"uniform": 0, "paper": 1, "official": 2}.get(form, 3)


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def _figures(runs: list[dict[str, Any]], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("motion reports need matplotlib: pip install 'foveate[motion]'") from error
    import numpy as np

    runs = sorted(runs, key=lambda r: (_form_order(r["summary"]["form"]), r["summary"]["seed"]))
    forms = sorted({r["summary"]["form"] for r in runs}, key=_form_order)
    seeds = sorted({r["summary"]["seed"] for r in runs})

    width = max(6.0, 3.6 * len(seeds))
    fig, axes = plt.subplots(len(forms), len(seeds), figsize=(width, 2.4 * len(forms)), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for r in runs:
        ax = axes[forms.index(r["summary"]["form"])][seeds.index(r["summary"]["seed"])]
        ax.set_axis_on()
        if r["evals"]:
            grid = np.array([e["success_per_bin"] for e in r["evals"]]).T
            steps = [e["step"] for e in r["evals"]]
            ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1,
                      extent=(steps[0] - 0.5, steps[-1] + 0.5, -0.5, grid.shape[0] - 0.5), interpolation="nearest")
        done = r["summary"]["iterations_to_complete"]
        ax.set_title(f"{r['summary']['form']} s{r['summary']['seed']}" + (f" (done @{done})" if done else ""),
                     fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("bin", fontsize=8)
    fig.suptitle("success per bin (yellow), deterministic policy started at each bin", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "success_heatmaps.png", dpi=110)
    plt.close(fig)

    fig, (entropy_ax, top_ax, share_ax) = plt.subplots(1, 3, figsize=(14, 3.6))
    colors = {"uniform": "tab:gray", "paper": "tab:blue", "official": "tab:orange"}
    for r in runs:
        form = r["summary"]["form"]
        steps = [s["step"] for s in r["sampling"]]
        kw = {"color": colors.get(form), "alpha": 0.8, "lw": 1,
              "label": form if r["summary"]["seed"] == seeds[0] else None}
        entropy_ax.plot(steps, [s["normalized_entropy"] for s in r["sampling"]], **kw)
        top_ax.plot(steps, [s["top1_probability"] for s in r["sampling"]], **kw)
        share = _share(r["summary"]["frames_per_bin_played"])
        share_ax.plot(range(len(share)), share, marker=".", **kw)
    entropy_ax.set(title="normalised sampling entropy", xlabel="iteration")
    top_ax.set(title="top-1 bin probability", xlabel="iteration")
    share_ax.set(title="share of frames played per bin (whole run)", xlabel="bin")
    reference = runs[0]["summary"].get("reference", {}).get("assist_per_bin") if runs else None
    if reference and any(reference):
        twin = share_ax.twinx()
        twin.bar(range(len(reference)), reference, color="k", alpha=0.12)
        twin.set_ylabel("reference harness wrench (bars)", fontsize=8)
    entropy_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sampling_curves.png", dpi=110)
    plt.close(fig)
