"""``python -m foveate``: the command line, for launchers that start modules (``torchrun ... -m foveate``)."""

from foveate.cli import entry

entry()
