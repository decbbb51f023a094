"""The ``foveate motion ...`` commands: aliases of the shared ones, and the motion-only tools.

``foveate motion train`` is ``foveate train motion``; ``foveate motion ablate`` is
``foveate compare motion`` (variants x seeds, in parallel with ``--workers``); ``foveate motion
report DIR`` rebuilds a comparison's report from its report.json. ``reference`` and ``simulate``
belong to motion alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from foveate.data.timeline import FORMS

__all__ = ["ablate_main", "reference_main", "report_main", "simulate_main", "train_main"]


def train_main(argv: Sequence[str]) -> int:
    """``foveate motion train``: ``foveate train motion``."""
    from foveate.pipelines import train_command

    return train_command("motion", argv)


def ablate_main(argv: Sequence[str]) -> int:
    """``foveate motion ablate``: ``foveate compare motion`` (uniform, paper and official, over seeds)."""
    from foveate.report.compare import compare_command

    return compare_command("motion", argv, prog="foveate motion ablate", default_out="runs/motion/ablation")


def report_main(argv: Sequence[str]) -> int:
    """``foveate motion report DIR``: rebuild the report of a motion comparison from its report.json."""
    from foveate.report.compare import compare_command

    parser = argparse.ArgumentParser(prog="foveate motion report", description=report_main.__doc__)
    parser.add_argument("directory", type=Path, help="a comparison's directory (holding report.json)")
    args = parser.parse_args(list(argv))
    return compare_command(
        "motion",
        ["--pool", str(args.directory), "--out", str(args.directory)],
        prog="foveate motion report",
        command=shlex.join(["foveate", "motion", "report", *argv]),
    )


def reference_main(argv: Sequence[str]) -> int:
    """``foveate motion reference``: generate a scripted reference motion and describe it."""
    from .reference import SCRIPTS, describe, generate_reference

    parser = argparse.ArgumentParser(prog="foveate motion reference", description=generate_reference.__doc__)
    parser.add_argument("--robot", choices=sorted({robot for robot, _ in SCRIPTS.values()}), default="humanoid")
    parser.add_argument(
        "--script",
        choices=sorted(SCRIPTS),
        default=None,
        help="the scripted motion (default: the robot's own; walker2d-long: 45 s with four short hard moves)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the reference .npz here")
    parser.add_argument("--bin-seconds", type=float, default=1.0)
    args = parser.parse_args(list(argv))
    script = args.script if args.script is not None else args.robot
    if SCRIPTS[script][0] != args.robot:
        parser.error(f"--script {script} is for the {SCRIPTS[script][0]}: add --robot {SCRIPTS[script][0]}")
    reference = generate_reference(args.robot, script=script)
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
            result = simulate(
                form,
                profile,
                timeline,
                num_envs=args.num_envs,
                iterations=args.iterations,
                episode_frames=episode_frames,
                seed=seed,
            )
            played = torch.tensor(result.frames_per_bin)
            hard_share = float(played[list(args.hard_bins)].sum() / played.sum())
            rows.append(
                {
                    "variant": form,
                    "seed": seed,
                    "iterations_to_complete": result.iterations_to_complete,
                    "final_completion": result.completion[-1],
                    "hard_bins_frame_share": hard_share,
                }
            )
            print(
                f"{form:9s} seed {seed}: complete at {result.iterations_to_complete}, "
                f"final completion {result.completion[-1]:.3f}, hard-bin share of frames {hard_share:.3f}"
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "runs": rows},
                indent=1,
            )
        )
    return 0
