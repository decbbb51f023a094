"""The ``foveate`` command: a thin dispatcher; each command lives in its own module.

``train``, ``compare`` and ``render`` take a pipeline name and are built from the pipeline
registry, so a pipeline gets all three by registering. Commands are imported only when
called, so ``foveate --help`` stays fast and optional extras are needed only where used.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

# "command" or "command sub" -> ("module", "function", "one-line help"); each function takes the
# remaining argv (a list of str) and returns an exit code.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("foveate.report.compare", "demo_main", "uniform against error-guided pixels on a bundled photo"),
    "motion train": ("foveate.pipelines.motion.commands", "train_main", "alias of 'foveate train motion'"),
    "motion ablate": ("foveate.pipelines.motion.commands", "ablate_main", "alias of 'foveate compare motion'"),
    "motion report": ("foveate.pipelines.motion.commands", "report_main", "rebuild a motion comparison's report"),
    "motion reference": ("foveate.pipelines.motion.commands", "reference_main", "make a scripted reference motion"),
    "motion simulate": ("foveate.pipelines.motion.commands", "simulate_main", "start sampling, synthetic simulator"),
    "data render": (
        "foveate.data.render",
        "main",
        "render a scene or a mesh file with Mitsuba 3 (Blender, NeuS, RNb-NeuS)",
    ),
    "neus": (
        "foveate.pipelines.neus.commands",
        "runner_main",
        "NeuS's experiment runner: --mode train|train_rnb|validate_*",
    ),
    "neus evaluate": ("foveate.pipelines.neus.commands", "evaluate_main", "accuracy, completeness, Chamfer of a mesh"),
    "view": ("foveate.viewer", "main", "serve trained splats to a browser: RUN_DIR or point_cloud.ply"),
    "universe build": ("foveate.universe.commands", "build_main", "bin a star catalogue into HELIOS's cells"),
    "universe pack": ("foveate.universe.commands", "pack_main", "concatenate a universe's cells into HELIOS's pack"),
    "universe train-cell": ("foveate.universe.commands", "train_cell_main", "train one cell against its star views"),
    "universe train-all": ("foveate.universe.commands", "train_all_main", "train every cell of a universe"),
    "universe train-landmarks": ("foveate.universe.commands", "train_landmarks_main", "train the cells near landmarks"),
    "universe validate": (
        "foveate.universe.commands",
        "validate_main",
        "check a trained universe: cells, splats, loss",
    ),
    "universe report": ("foveate.universe.commands", "report_main", "plot loss per cell and where training went"),
    "universe serve": ("foveate.universe.commands", "serve_main", "a universe in the browser: fly to its landmarks"),
    "pbr data": ("foveate.pbr.commands", "data_main", "write a NeuroPBR dataset offline: materials and three views"),
    "pbr check": ("foveate.pbr.commands", "check_main", "check a dataset's layout; name every bad file"),
    "pbr train": ("foveate.pbr.commands", "train_main", "train the multi-view PBR generator (NeuroPBR's flags)"),
    "pbr infer": ("foveate.pbr.commands", "infer_main", "estimate four maps from three views; write PNGs and glTF"),
    "pbr export": ("foveate.pbr.commands", "export_main", "export the generator to TorchScript or ONNX"),
}
# Commands that take a pipeline name first: "command" -> ("module", "function", "one-line help").
PIPELINE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("foveate.pipelines.registry", "train_command", "train a pipeline: PIPELINE [options]"),
    "compare": ("foveate.report.compare", "compare_command", "compare sampling variants: PIPELINE [options]"),
    "render": ("foveate.pipelines.registry", "render_command", "render a trained run: [PIPELINE] --run DIR"),
}


def _usage() -> str:
    from foveate.pipelines import available_pipelines

    rows = {f"{name} PIPELINE": text for name, (_, _, text) in PIPELINE_COMMANDS.items()}
    rows.update({name: text for name, (_, _, text) in COMMANDS.items()})
    width = max(len(name) for name in rows)
    lines = ["usage: foveate <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, text in rows.items()]
    lines += ["", f"pipelines: {', '.join(available_pipelines())}", "Run 'foveate <command> --help' for its options."]
    return "\n".join(lines)


def _pipeline_usage(command: str) -> str:
    from foveate.pipelines import available_pipelines, get_pipeline

    lines = [f"usage: foveate {command} PIPELINE [options]", "", "pipelines:"]
    for name in available_pipelines():
        spec = get_pipeline(name)
        if command == "render" and spec.render_options is None:
            continue
        lines.append(f"  {name.ljust(8)}  {spec.description}")
    lines += ["", f"Run 'foveate {command} PIPELINE --help' for its options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``foveate`` console script; Ctrl-C outside a training step ends it without a traceback,
    and so does a reader that stops early (``foveate compare image --help | head``)."""
    from foveate.allocator import keep_freed_memory

    keep_freed_memory()
    try:
        code = _dispatch(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("foveate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Python would report the closed pipe again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    from foveate.train.distributed import leave

    leave()
    return code


def entry() -> None:
    """The console script and ``python -m foveate``: :func:`main`, then exit with its code.

    Under ``torchrun`` the process leaves without the interpreter's teardown (after flushing its
    output): the process group's C++ worker threads can otherwise be destroyed there while still
    joinable, and an occasional rank then aborts at exit ("terminate called without an active
    exception") after a run that finished and saved.
    """
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from foveate import __version__

        print(__version__)
        return 0
    if args[0] in PIPELINE_COMMANDS:
        return _pipeline_command(args[0], args[1:])
    for words in (2, 1):
        name = " ".join(args[:words])
        if len(args) >= words and name in COMMANDS:
            module_name, function_name, _ = COMMANDS[name]
            function = getattr(importlib.import_module(module_name), function_name)
            return int(function(args[words:]) or 0)
    group = {name: text for name, (_, _, text) in COMMANDS.items() if name.split()[0] == args[0] and " " in name}
    if group:
        width = max(len(name) for name in group)
        usage = "\n".join(
            [f"usage: foveate {args[0]} <command> [options]", "", "commands:"]
            + [f"  {name.ljust(width)}  {text}" for name, text in group.items()]
        )
        asked = args[1:2] in (["-h"], ["--help"])
        bare = len(args) == 1
        print(
            usage if asked or bare else f"foveate: unknown command {' '.join(args[:2])!r}\n\n{usage}",
            file=sys.stdout if asked else sys.stderr,
        )
        return 0 if asked else 2
    print(f"foveate: unknown command {' '.join(args[:2])!r}\n\n{_usage()}", file=sys.stderr)
    return 2


def _pipeline_command(command: str, args: list[str]) -> int:
    from foveate.pipelines import available_pipelines

    module_name, function_name, _ = PIPELINE_COMMANDS[command]
    function = getattr(importlib.import_module(module_name), function_name)
    if command == "render" and args and args[0].startswith("--") and args[0] not in ("-h", "--help"):
        return int(function(None, args) or 0)
    if not args or args[0] in ("-h", "--help"):
        print(_pipeline_usage(command))
        return 0
    if args[0] not in available_pipelines():
        print(f"foveate {command}: unknown pipeline {args[0]!r}\n\n{_pipeline_usage(command)}", file=sys.stderr)
        return 2
    return int(function(args[0], args[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
