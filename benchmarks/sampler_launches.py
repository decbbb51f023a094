"""Dispatched operations and time of the sampler's ``sample`` + ``update``: this tree against a revision.

On a GPU the engine's per-step cost at the pipelines' batches is set by how many kernels it
launches from Python, not by their work (``benchmarks/sampler_compile.py``). This benchmark counts
the operations one ``sample`` + ``update`` dispatches (the profiler's top-level ATen calls; views
and no-op conversions among them cost a dispatch but no kernel) and times the pair, and a rebuild
of the distribution, for this tree's ``foveate.sampling`` and for the same package at a git
revision, imported side by side (``git archive`` into a temporary folder), alternating calls so
load hits both alike. Both draw from the same statistics with the same seed, so it also reports
whether their ids (and rebuilt distributions) agree.

At small batches a CPU is launch-bound too, so its time there stands in for the GPU's overhead;
at large batches the CPU measures the work.

    python benchmarks/sampler_launches.py --against HEAD~1
    python benchmarks/sampler_launches.py --against 90a5471 --batches 1024 65536 1048576 --json out.json
    python benchmarks/sampler_launches.py --against path/to/old/sampling     # a copy of the package
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import torch
from timing import side_by_side
from torch.profiler import ProfilerActivity, profile, record_function

import foveate.sampling

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "src/foveate/sampling"


def engine_at(revision: str, into: Path) -> object:
    """``foveate.sampling`` as it was at a git ``revision`` (or as in a folder holding that package's
    files, for machines without the repository), imported as a package of its own."""
    name = "sampling_" + "".join(c if c.isalnum() else "_" for c in revision)
    if Path(revision).is_dir():
        shutil.copytree(revision, into / name)
    else:
        archive = subprocess.run(
            ["git", "archive", revision, PACKAGE], cwd=ROOT, check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(into, filter="data")
        (into / PACKAGE).rename(into / name)
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def dispatched(call: Callable[[], object]) -> int:
    """Top-level ATen operations one call dispatches."""
    with profile(activities=[ProfilerActivity.CPU]) as prof, record_function("call"):
        call()
    root = next(event for event in prof.events() if event.name == "call")
    return sum(1 for child in root.cpu_children if child.name.startswith("aten::"))


class Stepper:
    """One ``sample`` + ``update`` per call, the step advancing, with the image preset's sampling settings.

    ``strategy`` may carry a switch: ``error_weighted+refresh`` is ``error_weighted`` with ``refresh=True``."""

    def __init__(self, engine: object, strategy: str, shape: tuple[int, ...], batch: int, device: torch.device) -> None:
        name, _, switch = strategy.partition("+")
        self.sampler = engine.Sampler(
            shape,
            name,
            **({switch: True} if switch else {}),
            decay=0.5,
            update_frequency=10,
            warmup_iterations=0,
            check_inputs=False,
            device=device,
            seed=0,
        )
        self.batch, self.step, self.ids = batch, 0, None
        self.errors = torch.rand(batch, generator=torch.Generator().manual_seed(1)).to(device)
        for _ in range(25):  # past two rebuilds, so the timed calls draw from the errors
            self()

    def __call__(self) -> None:
        draw = self.sampler.sample(self.batch, self.step)
        self.sampler.update(draw.ids, self.errors, self.step)
        self.step += 1
        self.ids = draw.ids


def compared(name: str, batch: int | str, theirs: Callable, mine: Callable, device: torch.device, repeats: int) -> dict:
    """Dispatched operations and median time of the baseline's call and this tree's, side by side."""
    ops = (dispatched(theirs), dispatched(mine))
    before, after = side_by_side(theirs, mine, device, repeats)
    return {
        "strategy": name,
        "batch": batch,
        "ops_before": ops[0],
        "ops_after": ops[1],
        "ms_before": before * 1e3,
        "ms_after": after * 1e3,
        "ratio": after / before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--against",
        required=True,
        help="git revision (or a copy of its src/foveate/sampling) whose engine is the baseline",
    )
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted", "adaptive"])
    parser.add_argument("--units", nargs="+", type=int, default=[1, 1411, 1411], help="the population's shape")
    parser.add_argument("--batches", nargs="+", type=int, default=[1024, 8192, 65536, 1048576])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = tuple(args.units)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        baseline = engine_at(args.against, Path(folder))
        print(f"{device}, units {shape}, this tree against {args.against}; ms are medians of {args.repeats}")
        print(
            f"{'strategy':>15} {'batch':>8} {'ops':>11} {'ms':>17} {'ratio':>6}  same ids (rebuild: same distribution)"
        )
        for strategy in args.strategies:
            for batch in args.batches:
                mine = Stepper(foveate.sampling, strategy, shape, batch, device)
                theirs = Stepper(baseline, strategy, shape, batch, device)
                row = compared(strategy, batch, theirs, mine, device, max(5, args.repeats * 65536 // max(batch, 65536)))
                row["same_ids"] = torch.equal(mine.ids, theirs.ids)
                rows.append(row)
            # A rebuild (every update_frequency updates): the statistics of the last batch's runs.
            row = compared(strategy, "rebuild", theirs.sampler.rebuild, mine.sampler.rebuild, device, 5)
            row["same_ids"] = torch.equal(theirs.sampler.probabilities(), mine.sampler.probabilities())
            rows.append(row)
        for row in rows:
            print(
                f"{row['strategy']:>15} {row['batch']:>8} {row['ops_before']:>4} -> {row['ops_after']:<4} "
                f"{row['ms_before']:>7.3f} -> {row['ms_after']:<7.3f} {row['ratio']:>6.2f}  "
                f"{'yes' if row['same_ids'] else 'no'}"
            )
    if args.json:
        meta = {"device": str(device), "units": shape, "against": args.against, "threads": args.threads}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
