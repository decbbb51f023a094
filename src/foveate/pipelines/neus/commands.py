"""``foveate neus evaluate``: how close a reconstructed mesh is to the true one."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EvaluateOptions", "evaluate_main"]


@dataclass
class EvaluateOptions:
    """Compare a reconstructed mesh with the true one: accuracy, completeness, Chamfer-L1, F-score, normals."""

    mesh: Path
    """The reconstruction (PLY, OBJ, STL, ...)."""
    gt: Path
    """The true mesh, in the same units and frame."""
    samples: int = 200_000
    """Points sampled on each surface, uniformly by area."""
    thresholds: tuple[float, ...] = ()
    """F-score distances (default: 0.5%, 1% and 2% of the true mesh's bounding-box diagonal)."""
    max_distance: float | None = None
    """Cap on each distance before averaging (DTU caps at 20 mm), so stray fragments cannot dominate."""
    seed: int = 0
    """Seeds the surface samples."""
    json: bool = False
    """Print the numbers as JSON instead of a table."""


def evaluate_main(argv: Sequence[str]) -> int:
    """``foveate neus evaluate --mesh A.ply --gt B.ply [--json]``."""
    import tyro

    from foveate.train.geometry import compare_meshes

    options = tyro.cli(EvaluateOptions, args=list(argv), prog="foveate neus evaluate")
    try:
        if options.samples < 1:
            raise ValueError(f"--samples must be >= 1, got {options.samples}")
        if options.max_distance is not None and not options.max_distance > 0:
            raise ValueError(f"--max-distance must be > 0, got {options.max_distance}")
        if any(not (math.isfinite(t) and t > 0) for t in options.thresholds):
            raise ValueError(f"--thresholds must be positive distances, got {list(options.thresholds)}")
        result = compare_meshes(
            options.mesh,
            options.gt,
            samples=options.samples,
            thresholds=options.thresholds or None,
            max_distance=options.max_distance,
            seed=options.seed,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"foveate neus evaluate: error: {error}", file=sys.stderr)
        return 2
    if options.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(f"accuracy            {result.accuracy:.6g}")
    print(f"completeness        {result.completeness:.6g}")
    print(f"Chamfer-L1          {result.chamfer:.6g}")
    for tau, value in result.fscore.items():
        shares = f"precision {result.precision[tau]:.4f}, recall {result.recall[tau]:.4f}"
        print(f"F-score at {tau:<8.4g} {value:.4f} ({shares})")
    print(f"normal consistency  {result.normal_consistency:.4f}")
    print(f"({result.samples} samples a surface)")
    return 0
