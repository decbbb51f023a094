"""Shared test fixtures: CPU always, CUDA when present.

Hypothesis runs derandomised by default so that CI is reproducible; set
``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples and more of them.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)
