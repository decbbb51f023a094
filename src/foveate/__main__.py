"""``python -m foveate``: the command line, for launchers that start modules (``torchrun ... -m foveate``)."""

import sys

from foveate.cli import main

sys.exit(main())
