"""The ``foveate`` command: a thin dispatcher; each command lives in its own module.

Commands are imported only when called, so ``foveate --help`` stays fast and optional
extras are needed only by the commands that use them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# "command" or "command sub" -> ("module", "function", "one-line help").
# Each function takes the remaining argv (a list of str) and returns an exit code.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train image": ("foveate.pipelines.image", "train_main", "fit a photo with a neural field, pixels drawn by error"),
    "compare image": ("foveate.report.compare", "compare_main", "compare sampling strategies on one photo"),
    "train nerf": ("foveate.pipelines.nerf", "train_main", "fit a radiance field to a multi-view scene, rays by error"),
    "compare nerf": ("foveate.report.compare_nerf", "compare_main", "compare sampling strategies on one NeRF scene"),
    "render": ("foveate.pipelines.nerf", "render_main", "render a novel-view orbit (gif, mp4) of a NeRF run"),
    "demo": ("foveate.report.compare", "demo_main", "a few-minute comparison on a bundled photo"),
    "motion train": ("foveate.pipelines.motion.commands", "train_main", "PPO motion tracking on MuJoCo"),
    "motion ablate": ("foveate.pipelines.motion.commands", "ablate_main", "start-sampling ablation, seeds in parallel"),
    "motion report": ("foveate.pipelines.motion.commands", "report_main", "rebuild a motion ablation's report"),
    "motion reference": ("foveate.pipelines.motion.commands", "reference_main", "make a scripted reference motion"),
    "motion simulate": ("foveate.pipelines.motion.commands", "simulate_main", "start sampling, synthetic simulator"),
    "data render": ("foveate.data.render", "main", "render a multi-view scene with Mitsuba 3 (Blender + NeuS formats)"),
}


def _usage() -> str:
    lines = ["usage: foveate <command> [options]", "", "commands:"]
    width = max((len(name) for name in COMMANDS), default=0)
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in sorted(COMMANDS.items())]
    lines += ["", "Run 'foveate <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``foveate`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from foveate import __version__

        print(__version__)
        return 0
    for words in (2, 1):
        name = " ".join(args[:words])
        if len(args) >= words and name in COMMANDS:
            module_name, function_name, _ = COMMANDS[name]
            function = getattr(importlib.import_module(module_name), function_name)
            return int(function(args[words:]) or 0)
    print(f"foveate: unknown command {' '.join(args[:2])!r}\n\n{_usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
