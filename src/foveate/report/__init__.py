"""foveate.report: comparisons, plots and report files (the top layer, beside the CLI)."""

from .plots import plot_curves, plot_maps
from .writing import write_markdown

__all__ = ["plot_curves", "plot_maps", "write_markdown"]
