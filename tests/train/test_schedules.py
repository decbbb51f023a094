"""Learning-rate schedules."""

from __future__ import annotations

import pytest
import torch

from foveate.train import OptimConfig, cosine_factor, make_scheduler


def test_cosine_warms_up_linearly_then_decays_to_alpha():
    assert cosine_factor(0, 100, 10, 0.05) == pytest.approx(0.1)
    assert cosine_factor(9, 100, 10, 0.05) == pytest.approx(1.0)
    assert cosine_factor(10, 100, 10, 0.05) == pytest.approx(1.0)
    assert cosine_factor(55, 100, 10, 0.05) == pytest.approx(0.525)
    assert cosine_factor(100, 100, 10, 0.05) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("none", 1.0), ("step", 0.25), ("cosine", 0.05)],
)
def test_schedules_after_the_whole_run(schedule, expected):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = make_scheduler(optimizer, OptimConfig(schedule=schedule, step_size=5, gamma=0.5), total_steps=10)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_plateau_decays_after_patience_validations():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    scheduler = make_scheduler(optimizer, OptimConfig(schedule="plateau", plateau_patience=1, gamma=0.5), 10)
    for metric in (1.0, 1.0, 1.0):
        scheduler.step(metric)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
