"""Why the radiance field's ``cpu`` preset stalled on some seeds, and what its learning rate does.

Uniform runs of ``foveate train nerf --preset cpu --steps 300`` per setting, scene and seed.
A setting is a name and extra flags (``--setting NAME "FLAGS"``). For every run the table gives the
settled PSNR (the mean of the last 3 validations) and how much of the colour the field renders is
pinned at white: the share of the opacity-weighted colour, at points drawn in the occupied cells of
the final checkpoint, whose every channel is above 0.99. A sigmoid pinned there passes no gradient,
so a field whose colour saturated early learns the image's luminance through its density and
stays grey.

    python benchmarks/nerf_cpu_rate.py --scenes scenes/suite/cow64-clean scenes/suite/airplane64-clean \\
        --seeds 7 --setting lr0.02 "--optim.lr 0.02" --setting lr0.01 "--optim.lr 0.01"
    python benchmarks/nerf_cpu_rate.py --summarise runs/nerf-cpu-rate --out benchmarks/results/nerf_cpu_rate
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

STEPS = 300
STALL_DB = 3.0
"""A run settled this far below its scene's median (over every setting) counts as stalled."""


def run_dir(root: Path, setting: str, scene: Path, seed: int) -> Path:
    return root / setting / "nerf" / f"{scene.name}-s{seed}"


def train(root: Path, setting: str, flags: str, scene: Path, seed: int) -> None:
    if (run_dir(root, setting, scene, seed) / "checkpoints" / "latest.pt").exists():
        return
    command = [sys.executable, "-m", "foveate", "train", "nerf", "--scene", str(scene), "--preset", "cpu"]
    command += ["--steps", str(STEPS), "--train.validate-every", "15", "--seed", str(seed), "--strategy", "uniform"]
    command += ["--train.runs-dir", str(root / setting), "--name", f"{scene.name}-s{seed}", "--train.no-progress"]
    subprocess.run([*command, *shlex.split(flags)], check=True, stdout=subprocess.DEVNULL)


def settled(path: Path) -> float:
    lines = [json.loads(line) for line in (path / "stats.jsonl").read_text().splitlines()]
    psnr = [line["psnr"] for line in lines if line["kind"] == "val"]
    return sum(psnr[-3:]) / len(psnr[-3:])


@torch.no_grad()
def white_share(path: Path, points: int = 20_000) -> float:
    """Share of the opacity-weighted colour in occupied cells with every channel above 0.99."""
    from foveate.models.nerf import RadianceField

    checkpoint = torch.load(path / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    state = checkpoint["task"]["model"]
    model = checkpoint["config"]["model"]
    aabb = state["field.aabb"]
    field = RadianceField(
        aabb,
        levels=model["levels"],
        log2_table_size=model["log2_table_size"],
        features_per_level=model["features_per_level"],
        base_resolution=model["base_resolution"],
        finest_resolution=model["finest_resolution"],
        geometry_features=model["geometry_features"],
        hidden=model["hidden"],
        direction_degree=model["direction_degree"],
        density_bias=model["density_bias"],
    )
    field.load_state_dict({k.removeprefix("field."): v for k, v in state.items() if k.startswith("field.")})
    occupied = state["occupancy.occupied"].nonzero().squeeze(1)
    r = round(state["occupancy.occupied"].numel() ** (1 / 3))
    generator = torch.Generator().manual_seed(0)
    cells = occupied[torch.randint(occupied.numel(), (points,), generator=generator)]
    ijk = torch.stack((cells // (r * r), (cells // r) % r, cells % r), dim=-1).float()
    xyz = aabb[0] + (ijk + torch.rand(ijk.shape, generator=generator)) / r * (aabb[1] - aabb[0])
    directions = torch.nn.functional.normalize(torch.randn(xyz.shape, generator=generator), dim=-1)
    density, color = field(xyz, directions)
    weight = 1.0 - torch.exp(-density * 0.01)
    return float((weight * (color > 0.99).all(dim=-1)).sum() / weight.sum().clamp_min(1e-12))


def summarise(root: Path) -> tuple[str, dict]:
    runs = {}
    for path in sorted(root.glob("*/nerf/*-s*")):
        if not (path / "checkpoints" / "latest.pt").exists():
            continue
        scene, seed = path.name.rsplit("-s", 1)
        runs[(path.parts[-3], scene, int(seed))] = {"settled": settled(path), "white": white_share(path)}
    scenes = sorted({scene for _, scene, _ in runs})
    median = {s: statistics.median(v["settled"] for k, v in runs.items() if k[1] == s) for s in scenes}
    lines = [
        "| setting | scene | settled PSNR per seed (dB) | mean | stalled | colour pinned white per seed |",
        "|---|---|---|---|---|---|",
    ]
    table = {}
    for setting in sorted({k[0] for k in runs}):
        for scene in scenes:
            cell = sorted((k[2], v) for k, v in runs.items() if k[0] == setting and k[1] == scene)
            if not cell:
                continue
            values = [v["settled"] for _, v in cell]
            white = " / ".join(f"{v['white']:.2f}" for _, v in cell)
            stalled = [seed for seed, v in cell if v["settled"] < median[scene] - STALL_DB]
            table[f"{setting}/{scene}"] = {str(seed): v for seed, v in cell}
            lines.append(
                f"| {setting} | {scene} | {' / '.join(f'{x:.2f}' for x in values)} | {statistics.mean(values):.2f} "
                f"| {len(stalled)} of {len(cell)}{f' (seeds {stalled})' if stalled else ''} "
                f"| {white} |"
            )
    return "\n".join(lines) + "\n", table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", nargs="+", type=Path, default=[])
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--setting", nargs=2, action="append", default=[], metavar=("NAME", "FLAGS"))
    parser.add_argument("--workers", type=int, default=2, help="training processes at a time")
    parser.add_argument("--root", type=Path, default=Path("runs/nerf-cpu-rate"), help="where the runs go")
    parser.add_argument("--summarise", type=Path, help="train nothing: summarise the runs under this folder")
    parser.add_argument("--out", type=Path, help="write summary.md and summary.json here")
    args = parser.parse_args()
    if args.summarise is None:
        jobs = [(n, f, s, seed) for n, f in args.setting for s in args.scenes for seed in range(args.seeds)]
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda job: train(args.root, *job), jobs))
    text, table = summarise(args.summarise or args.root)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.md").write_text(text)
        (args.out / "summary.json").write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
