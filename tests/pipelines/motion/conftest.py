"""Fixtures of the motion tests: MuJoCo and gymnasium are optional, so these tests skip without them."""

from __future__ import annotations

import pytest

pytest.importorskip("mujoco", reason="the motion tests need MuJoCo: pip install 'foveate[motion]'")
pytest.importorskip("gymnasium", reason="the motion tests need gymnasium: pip install 'foveate[motion]'")


@pytest.fixture(scope="session")
def walker_reference():
    from foveate.pipelines.motion.reference import generate_reference

    return generate_reference("walker2d")
