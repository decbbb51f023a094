"""foveate: make training spend its compute where the model is wrong."""

__version__ = "0.1.0"
