"""The ``foveate motion ...`` commands: train, ablate, reference, simulate."""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from foveate.data.timeline import FORMS

__all__ = ["PRESETS", "ablate_main", "reference_main", "report_main", "simulate_main", "train_main"]


def _presets():
    from .ppo import PPOConfig
    from .train import MotionConfig

    return {
        "humanoid": MotionConfig(robot="humanoid", num_envs=64),
        "walker2d": MotionConfig(robot="walker2d", num_envs=64),
        "smoke": MotionConfig(robot="walker2d", num_envs=4, steps_per_env=8, iterations=2, eval_every=1,
                              ppo=PPOConfig(hidden=(32,), epochs=1, minibatches=2)),
    }


PRESETS = ("humanoid", "walker2d", "smoke")


def _parse_motion_config(argv: Sequence[str], prog: str, description: str):
    """``--preset NAME`` picks the defaults (first: humanoid); every MotionConfig field is a flag."""
    import tyro

    from .train import MotionConfig

    argv = list(argv)
    preset = "humanoid"
    if "--preset" in argv:
        index = argv.index("--preset")
        if index + 1 >= len(argv):
            raise SystemExit(f"{prog}: --preset needs a name: {', '.join(PRESETS)}")
        preset = argv[index + 1]
        del argv[index : index + 2]
    presets = _presets()
    if preset not in presets:
        raise SystemExit(f"{prog}: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    text = f"{description}\n\nPresets (--preset NAME, default humanoid): {', '.join(PRESETS)}."
    return tyro.cli(MotionConfig, default=copy.deepcopy(presets[preset]), args=argv, prog=prog, description=text,
                    config=(tyro.conf.OmitArgPrefixes,))


def train_main(argv: Sequence[str]) -> int:
    """``foveate motion train``: one PPO run on the MuJoCo tracking testbed."""
    from foveate.train.checkpoint import CheckpointError

    from .report import build_report
    from .train import run_name, train

    config = _parse_motion_config(argv, "foveate motion train", "Train a motion-tracking policy with PPO.")
    try:
        summary = train(config)
    except (ValueError, FileNotFoundError, CheckpointError) as error:
        print(f"foveate motion train: {error}", file=sys.stderr)
        return 2
    run_dir = Path(config.out) / run_name(config)
    build_report([run_dir], run_dir / "report", {"commands": ["foveate motion train " + shlex.join(argv)]})
    done = summary["iterations_to_complete"]
    print(f"{summary['name']}: {summary['iterations']} iterations, {summary['env_steps']:,} env steps, "
          f"{summary['wall_seconds']:.0f} s; " + (f"completed the motion at iteration {done}" if done
                                                   else "never completed the whole motion"))
    print(f"run directory: {run_dir}")
    return 0


def ablate_main(argv: Sequence[str]) -> int:
    """``foveate motion ablate``: variants x seeds, in parallel processes, then the report."""
    from .ablate import ablate

    parser = argparse.ArgumentParser(
        prog="foveate motion ablate",
        description="Train every start-sampling variant with several seeds and report iterations to "
        "complete the motion. Other flags (e.g. --preset walker2d --iterations 300 --max-minutes 10) "
        "set the shared training config; see 'foveate motion train --help'.",
    )
    parser.add_argument("--variants", nargs="+", default=list(FORMS), choices=FORMS)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per variant")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--out", type=Path, default=Path("runs/motion/ablation"))
    parser.add_argument("--workers", type=int, default=1, help="parallel training processes")
    args, rest = parser.parse_known_args(list(argv))
    if args.seeds < 1 or args.workers < 1 or args.first_seed < 0:
        parser.error("--seeds and --workers must be >= 1, --first-seed >= 0")
    base = _parse_motion_config(rest, "foveate motion ablate", "Shared training config of the ablation.")
    command = "foveate motion ablate " + shlex.join(argv)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    report = ablate(base, args.variants, seeds, args.out, workers=args.workers, command=command)
    table = args.out / "report" / "table.md"
    if table.is_file():
        print(table.read_text())
    for failure in report.get("failed_runs", []):
        print(f"run {failure['name']} failed:\n{failure['error']}", file=sys.stderr)
    print(f"report: {args.out / 'report'}")
    return 1 if report.get("failed_runs") else 0


def report_main(argv: Sequence[str]) -> int:
    """``foveate motion report``: rebuild the report of an ablation directory (or of single runs)."""
    from .ablate import machine_description
    from .report import build_report

    parser = argparse.ArgumentParser(prog="foveate motion report", description=report_main.__doc__)
    parser.add_argument("directory", type=Path, help="an ablation directory holding runs, or one run")
    args = parser.parse_args(list(argv))
    if (args.directory / "report" / "summary.json").is_file():
        runs = [args.directory]
    else:
        runs = sorted(p.parent.parent for p in args.directory.glob("*/report/summary.json"))
    if not runs:
        print(f"foveate motion report: no finished run under {args.directory}", file=sys.stderr)
        return 2
    previous = args.directory / "report" / "report.json"
    meta = json.loads(previous.read_text()) if previous.is_file() else {"hardware": machine_description()}
    meta.pop("runs", None)
    build_report(runs, args.directory / "report", meta)
    print((args.directory / "report" / "table.md").read_text())
    return 0


def reference_main(argv: Sequence[str]) -> int:
    """``foveate motion reference``: generate a scripted reference motion and describe it."""
    from .reference import SCRIPTS, describe, generate_reference

    parser = argparse.ArgumentParser(prog="foveate motion reference", description=generate_reference.__doc__)
    parser.add_argument("--robot", choices=sorted(SCRIPTS), default="humanoid")
    parser.add_argument("--out", type=Path, default=None, help="write the reference .npz here")
    parser.add_argument("--bin-seconds", type=float, default=1.0)
    args = parser.parse_args(list(argv))
    reference = generate_reference(args.robot)
    if args.out is not None:
        reference.save(args.out)
        print(f"wrote {args.out}")
    print(json.dumps(describe(reference, args.bin_seconds), indent=1))
    return 0


def simulate_main(argv: Sequence[str]) -> int:
    """``foveate motion simulate``: the forms on the synthetic difficulty simulator (seconds, no physics)."""
    import torch

    from foveate.data.timeline import Timeline

    from .simulator import DifficultyProfile, simulate

    parser = argparse.ArgumentParser(prog="foveate motion simulate", description=simulate_main.__doc__)
    parser.add_argument("--variants", nargs="+", default=list(FORMS), choices=FORMS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="motion length")
    parser.add_argument("--control-rate", type=float, default=50.0)
    parser.add_argument("--hard-bins", type=int, nargs="*", default=[6, 13, 17])
    parser.add_argument("--episode-seconds", type=float, default=10.0)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(list(argv))
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation
    timeline = Timeline(round(args.seconds * args.control_rate) + 1, args.control_rate)
    profile = DifficultyProfile.with_hard_bins(timeline.num_bins, tuple(args.hard_bins))
    episode_frames = round(args.episode_seconds * args.control_rate)
    rows = []
    for form in args.variants:
        for seed in range(args.seeds):
            result = simulate(form, profile, timeline, num_envs=args.num_envs, iterations=args.iterations,
                              episode_frames=episode_frames, seed=seed)
            played = torch.tensor(result.frames_per_bin)
            hard_share = float(played[list(args.hard_bins)].sum() / played.sum())
            rows.append({"variant": form, "seed": seed, "iterations_to_complete": result.iterations_to_complete,
                         "final_completion": result.completion[-1], "hard_bins_frame_share": hard_share})
            print(f"{form:9s} seed {seed}: complete at {result.iterations_to_complete}, "
                  f"final completion {result.completion[-1]:.3f}, hard-bin share of frames {hard_share:.3f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v
                                                  for k, v in vars(args).items()}, "runs": rows}, indent=1))
    return 0
