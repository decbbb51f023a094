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
COMMANDS: dict[str, tuple[str, str, str]] = {}


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
