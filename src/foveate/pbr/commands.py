"""``foveate pbr ...``: make a dataset, check it, train, infer maps from three photos, export the generator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

__all__ = [
    "CheckArgs",
    "DataArgs",
    "ExportArgs",
    "InferArgs",
    "check_main",
    "data_main",
    "export_main",
    "infer_main",
    "train_main",
]


@dataclass
class DataArgs:
    """Write a NeuroPBR dataset offline: procedural materials (and the real texture sets found), three views each."""

    out: Path
    """Dataset folder to write (must be empty or absent)."""
    samples: int = 200
    """Samples (materials) to write."""
    size: int = 256
    """Side of the views and maps, in pixels."""
    dirty_fraction: float = 0.25
    """Share of input/dirty samples with shadows, smudges and scratches (the rest repeat the clean views)."""
    seed: int = 0
    """Seeds materials, cameras, lights and dirt."""
    textures: list[Path] | None = None
    """Real texture sets: material folders or pypbr wheels (default: FOVEATE_TEXTURES, ~/.cache/foveate/textures)."""
    progress: bool = True
    """Show a progress bar."""


def data_main(argv: list[str]) -> int:
    """``foveate pbr data``."""
    from foveate.pipelines.registry import one_line

    from .data import generate_dataset

    args = tyro.cli(DataArgs, args=argv, prog="foveate pbr data", description=DataArgs.__doc__)
    try:
        summary = generate_dataset(
            args.out,
            args.samples,
            args.size,
            dirty_fraction=args.dirty_fraction,
            seed=args.seed,
            textures=args.textures,
            progress=args.progress,
        )
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as error:
        print(f"foveate pbr data: error: {one_line(error)}")
        return 2
    print(summary)
    return 0


@dataclass
class CheckArgs:
    """Check a dataset folder against NeuroPBR's layout; name every missing or mismatched file."""

    root: tyro.conf.Positional[Path]
    """Dataset folder (holding input/ and output/)."""
    renders: Literal["clean", "dirty", "both"] = "both"
    """Which input renders must be there."""


def check_main(argv: list[str]) -> int:
    """``foveate pbr check DIR``: exit 0 when the dataset is sound, 1 with one line per problem otherwise."""
    from .dataset import check_dataset

    args = tyro.cli(CheckArgs, args=argv, prog="foveate pbr check", description=CheckArgs.__doc__)
    kinds = ("clean", "dirty") if args.renders == "both" else (args.renders,)
    problems = [line for kind in kinds for line in check_dataset(args.root, kind)]
    problems = list(dict.fromkeys(problems))
    for line in problems:
        print(line)
    if problems:
        print(f"{args.root}: {len(problems)} problem(s)")
        return 1
    print(f"{args.root}: sound")
    return 0


def train_main(argv: list[str]) -> int:
    """``foveate pbr train`` (also ``foveate train pbr``): NeuroPBR's flags over a preset or a config file."""
    from .training import train_command

    return train_command(argv)


@dataclass
class InferArgs:
    """Estimate a material's maps from three views with a trained generator; write PNGs and a glTF material."""

    checkpoint: Path
    """A training checkpoint (best_model.pth, latest.pth, checkpoint_epoch_XXXX.pth) or its folder."""
    views: list[Path]
    """A folder holding 0.png, 1.png and 2.png, or three image files."""
    out: Path
    """Folder for albedo.png, roughness.png, metallic.png, normal.png and material.gltf."""
    image_size: int | None = None
    """Side the views are resized to (default: the training size)."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""


def infer_main(argv: list[str]) -> int:
    """``foveate pbr infer``."""
    from foveate.pipelines.registry import USAGE_ERRORS, one_line

    from .inference import infer_maps

    args = tyro.cli(InferArgs, args=argv, prog="foveate pbr infer", description=InferArgs.__doc__)
    try:
        written = infer_maps(args.checkpoint, args.views, args.out, args.image_size, args.device)
    except USAGE_ERRORS as error:
        print(f"foveate pbr infer: error: {one_line(error)}")
        return 2
    for path in written:
        print(path)
    return 0


@dataclass
class ExportArgs:
    """Export a trained generator for deployment: TorchScript or ONNX, checked against PyTorch on export."""

    checkpoint: Path
    """A training checkpoint (best_model.pth, latest.pth, checkpoint_epoch_XXXX.pth) or its folder."""
    format: Literal["torchscript", "onnx"]
    """torchscript (a traced module for torch.jit.load) or onnx (for onnxruntime and other runtimes)."""
    out: Path
    """File to write (.pt for TorchScript, .onnx for ONNX)."""
    image_size: int | None = None
    """Input side the exported model takes (default: the training size)."""


def export_main(argv: list[str]) -> int:
    """``foveate pbr export``."""
    from foveate.pipelines.registry import USAGE_ERRORS, one_line

    from .inference import export_generator

    args = tyro.cli(ExportArgs, args=argv, prog="foveate pbr export", description=ExportArgs.__doc__)
    try:
        path, error = export_generator(args.checkpoint, args.format, args.out, args.image_size)
    except (*USAGE_ERRORS, ImportError) as failure:
        print(f"foveate pbr export: error: {one_line(failure)}")
        return 2
    print(f"{path} (largest difference from PyTorch on a test input: {error:.2e})")
    return 0
