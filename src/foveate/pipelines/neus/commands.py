"""``foveate neus``: NeuS's experiment runner, every mode working, and ``foveate neus evaluate``.

``foveate neus --mode MODE --scene DIR [--conf FILE] [--preset NAME] [--name RUN] [--is-continue]``:

- ``train`` / ``train_rnb``: ``foveate train neus`` in rgb / rnb mode (any other training flag
  passes through); ``--is-continue`` continues the run ``--name`` names, or the newest of the scene;
- ``validate_mesh``, ``validate_mesh_texture``, ``validate_image``, ``validate_image_ps``,
  ``interpolate_I_J`` (e.g. ``interpolate_0_5``): load the latest checkpoint of the run
  ``--name`` names (the newest run of ``--scene`` without one, said on screen) and write into
  that run's folder (``meshes/``, ``validations/``, ``normals/``, ``videos/``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EvaluateOptions", "RunnerOptions", "evaluate_main", "find_run", "runner_main"]

MODES = (
    "train",
    "train_rnb",
    "validate_mesh",
    "validate_mesh_texture",
    "validate_image",
    "validate_image_ps",
    "interpolate_I_J",
)
INTERPOLATE = re.compile(r"interpolate_(\d+)_(\d+)")


@dataclass
class RunnerOptions:
    """NeuS's experiment runner: train, or validate and render a trained run (any flag of 'foveate train neus'
    is also accepted by the training modes)."""

    mode: str = "train"
    """train, train_rnb, validate_mesh, validate_mesh_texture, validate_image, validate_image_ps or
    interpolate_I_J (two view numbers, e.g. interpolate_0_5)."""
    scene: Path | None = None
    """Scene directory (training), or whose newest run to use (other modes, without --name)."""
    conf: Path | None = None
    """A config file: NeuS's HOCON .conf (confs/wmask.conf, wmask_rnb.conf) or a run's config.yaml."""
    case: str | None = None
    """Replaces CASE_NAME in a .conf file (NeuS's --case)."""
    preset: str | None = None
    """Named defaults of 'foveate train neus' (default: 'default' for train, 'rnb' for train_rnb)."""
    name: str | None = None
    """The run: its name under runs/neus/."""
    is_continue: bool = False
    """Training: continue the run (the one --name names, or the newest of the scene) from its latest checkpoint."""
    resolution: int | None = None
    """Meshes: marching-cubes cells per side (default: the run's mesh_resolution)."""
    mcube_threshold: float = 0.0
    """Meshes: the SDF level extracted."""
    view: int = 0
    """validate_image(_ps): the training view rendered."""
    light: int = 0
    """validate_image_ps: which of the three lights."""
    resolution_level: int = 4
    """Images and videos are rendered at 1 / this of the full resolution."""
    frames: int = 60
    """interpolate: frames from one view to the other (the video goes there and back)."""
    runs_dir: Path = Path("runs")
    """Root of all run directories."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""


def runner_main(argv: Sequence[str]) -> int:
    """``foveate neus --mode MODE ...``: one of NeuS's runner modes (see the module docstring)."""
    import tyro
    from rich.console import Console

    from ..registry import USAGE_ERRORS, one_line, train_command

    console = Console(stderr=True)
    prog = "foveate neus"
    if not argv or argv[0] in ("-h", "--help"):
        tyro.cli(RunnerOptions, args=["--help"], prog=prog)
    options, rest = tyro.cli(RunnerOptions, args=list(argv), prog=prog, return_unknown_args=True)
    try:
        if options.mode in ("train", "train_rnb"):
            return train_command("neus", _training_argv(options, rest))
        if rest:
            raise ValueError(f"--mode {options.mode} takes no training flags, got {' '.join(rest)}")
        written = _validate(options, console)
    except USAGE_ERRORS as error:
        console.print(f"[red]{prog}: error:[/] {one_line(error)}", highlight=False, soft_wrap=True)
        return 2
    for path in written:
        print(path)
    return 0


def _training_argv(options: RunnerOptions, rest: list[str]) -> list[str]:
    """``foveate train neus`` flags for a training mode."""
    if any(arg.split("=")[0] == "--train.runs-dir" for arg in rest):
        raise ValueError("give the runs' root as --runs-dir (the runner finds runs there too)")
    argv = list(rest)
    if options.conf is not None:
        if options.preset is not None:
            raise ValueError("give --preset or --conf, not both")
        argv += ["--config", str(_case_file(options))]
    else:
        argv += ["--preset", options.preset or ("rnb" if options.mode == "train_rnb" else "default")]
    if options.scene is not None:
        argv += ["--scene", str(options.scene)]
    argv += ["--mode", "rnb" if options.mode == "train_rnb" else "rgb", "--train.runs-dir", str(options.runs_dir)]
    if options.device != "auto":
        argv += ["--train.device", options.device]
    if options.is_continue:
        run = find_run(options.runs_dir, options.name, options.scene)
        argv += ["--resume", "latest", "--name", run.name]
    elif options.name is not None:
        argv += ["--name", options.name]
    return argv


def _case_file(options: RunnerOptions) -> Path:
    """The --conf file, or a copy with CASE_NAME replaced (NeuS's --case) beside the runs."""
    if options.case is None or options.conf.suffix != ".conf":
        return options.conf
    text = options.conf.read_text().replace("CASE_NAME", options.case)
    copy = options.runs_dir / "neus" / ".conf" / f"{options.conf.stem}-{options.case}.conf"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text)
    return copy


def find_run(runs_dir: Path, name: str | None, scene: Path | None) -> Path:
    """The run ``name`` names under ``runs_dir/neus``, or the newest run of ``scene``."""
    root = Path(runs_dir) / "neus"
    if name is not None:
        run = root / name
        if not (run / "checkpoints" / "latest.pt").is_file():
            raise FileNotFoundError(f"{run}: no run with a checkpoint there (checkpoints/latest.pt)")
        return run
    if scene is None:
        raise ValueError("give --name RUN, or --scene DIR to use the newest run of that scene")
    import yaml

    wanted = Path(scene).resolve()
    runs = []
    for config_file in root.glob("*/config.yaml"):
        saved = yaml.safe_load(config_file.read_text()) or {}
        if saved.get("scene") and Path(saved["scene"]).resolve() == wanted:
            latest = config_file.parent / "checkpoints" / "latest.pt"
            if latest.is_file():
                runs.append((latest.stat().st_mtime, config_file.parent))
    if not runs:
        raise FileNotFoundError(f"no run of {scene} with a checkpoint under {root}; train one with --mode train")
    return max(runs)[1]


def _validate(options: RunnerOptions, console) -> list[Path]:
    """Load the run and do what ``options.mode`` asks."""
    import torch

    from ..registry import load_run
    from . import runner

    interpolation = INTERPOLATE.fullmatch(options.mode)
    if options.mode not in MODES[2:-1] and interpolation is None:
        raise ValueError(f"--mode must be one of {', '.join(MODES)} (interpolate with two views: interpolate_0_5)")
    if options.resolution is not None and options.resolution < 2:
        raise ValueError(f"--resolution must be >= 2, got {options.resolution}")
    if options.resolution_level < 1:
        raise ValueError(f"--resolution-level must be >= 1, got {options.resolution_level}")
    run = find_run(options.runs_dir, options.name, options.scene)
    if options.name is None:
        console.print(f"using the newest run of {options.scene}: {run}", highlight=False, soft_wrap=True)
    trainer = load_run(run, "latest", options.device, expect="neus")
    task = trainer.task
    task.model.eval()
    resolution = options.resolution or task.config.mesh_resolution
    with torch.no_grad():
        if interpolation is not None:
            first, second = int(interpolation.group(1)), int(interpolation.group(2))
            return runner.interpolate(
                task, run / "videos", first, second, options.frames, options.resolution_level, True
            )
        if options.mode == "validate_mesh":
            return runner.validate_mesh(task, run, resolution, options.mcube_threshold)
        if options.mode == "validate_mesh_texture":
            return runner.validate_mesh_texture(task, run, resolution, options.mcube_threshold)
        if options.mode == "validate_image":
            return runner.validate_image(task, run, options.view, options.resolution_level)
        return runner.validate_image_ps(task, run, options.view, options.light, options.resolution_level)


@dataclass
class EvaluateOptions:
    """Compare a reconstructed mesh with the true one: accuracy, completeness, Chamfer-L1, F-score, normals."""

    mesh: Path
    """The reconstruction (PLY, OBJ, STL, ...)."""
    gt: Path | None = None
    """The true mesh, in the same units and frame."""
    dtu: Path | None = None
    """Instead of --gt: a DTU evaluation folder (ObsMask/, Points/stl/): DTU's protocol for --scan."""
    scan: int | None = None
    """The DTU scan number (with --dtu)."""
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
    """``foveate neus evaluate --mesh A.ply --gt B.ply [--json]`` (or ``--dtu DIR --scan N``)."""
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
        if (options.gt is None) == (options.dtu is None):
            raise ValueError("give the true mesh (--gt FILE) or a DTU evaluation folder (--dtu DIR --scan N)")
        if options.dtu is not None:
            return _evaluate_dtu(options)
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


def _evaluate_dtu(options: EvaluateOptions) -> int:
    """DTU's protocol (``jzhangbs/DTUeval-python``): accuracy in the observation mask, completeness above the table."""
    from foveate.train.dtu import dtu_distance, load_dtu_scan
    from foveate.train.geometry import load_mesh

    if options.scan is None:
        raise ValueError("--dtu needs --scan N (the scan number, e.g. 24)")
    vertices, faces = load_mesh(options.mesh)
    result = dtu_distance(vertices, faces, load_dtu_scan(options.dtu, options.scan), seed=options.seed)
    if options.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(f"accuracy            {result.accuracy:.4f} mm ({result.points_in_mask} points in the observation mask)")
    print(f"completeness        {result.completeness:.4f} mm")
    print(f"Chamfer-L1          {result.chamfer:.4f} mm (DTU scan {options.scan})")
    return 0
