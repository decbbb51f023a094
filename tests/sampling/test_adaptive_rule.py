"""The adaptive rule on synthetic populations where the best component is known.

Each unit has a reducible error, which shrinks by 10% whenever the unit is drawn, and an
irreducible floor. The measured error is their sum. Quality is the mean reducible error
averaged over the run (an area under the curve: lower means faster).
"""

import pytest
import torch

from foveate.sampling import Sampler

UNITS, BATCH = 2000, 100
STEPS = {"concentrated": 200, "noise_floors": 400}


def population(case: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(UNITS, generator=generator)
    reducible, floor = torch.full((UNITS,), 0.01), torch.zeros(UNITS)
    if case == "concentrated":  # 5% of units hold nearly all the error: focusing pays
        reducible[chosen[: UNITS // 20]] = 1.0
    elif case == "noise_floors":  # 20% of units carry error no draw removes: focusing wastes draws
        reducible[:] = 0.3
        floor[chosen[: UNITS // 5]] = 3.0
    else:
        raise ValueError(case)
    return reducible, floor


def run(case: str, strategy: str, seed: int) -> tuple[float, dict[str, float]]:
    reducible, floor = population(case, seed)
    steps = STEPS[case]
    sampler = Sampler(UNITS, strategy, warmup_iterations=0, update_frequency=10, seed=seed)
    area, mixture = 0.0, {}
    for step in range(steps):
        area += float(reducible.mean()) / steps
        ids = sampler.sample(BATCH, step).ids
        sampler.update(ids, floor[ids] + reducible[ids], step)
        reducible[ids] *= 0.9
        if step == steps // 2:
            mixture = sampler.stats()["mixture"]
    return area, mixture


@pytest.mark.parametrize("seed", [0, 1])
def test_concentrated_errors_go_to_error_weighted(seed):
    uniform, _ = run("concentrated", "uniform", seed)
    focused, _ = run("concentrated", "error_weighted", seed)
    adaptive, mixture = run("concentrated", "adaptive", seed)
    assert focused < 0.6 * uniform  # the case is what it claims: error_weighted is best
    assert mixture["error_weighted"] > 0.7
    assert adaptive < 0.6 * uniform
    assert adaptive - focused < 0.25 * (uniform - focused)  # most of the best component's gain


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_floors_fall_back_to_uniform(seed):
    uniform, _ = run("noise_floors", "uniform", seed)
    focused, _ = run("noise_floors", "error_weighted", seed)
    adaptive, mixture = run("noise_floors", "adaptive", seed)
    assert uniform < 0.9 * focused  # the case is what it claims: uniform is best
    assert mixture["uniform"] > 0.6
    assert adaptive < 1.03 * uniform


def test_progress_score_is_the_geometric_mean_of_relative_and_per_draw_drops():
    s = Sampler(8, "adaptive", warmup_iterations=0, update_frequency=1, progress_decay=0.0, seed=0)
    s.update(torch.arange(8), torch.tensor([4.0, 4.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]), 0)
    s.sample(4, 1)
    s._labels = torch.tensor([0, 0, 1, 1], dtype=torch.uint8)
    s.update(torch.tensor([0, 1, 2, 3]), torch.tensor([2.0, 4.0, 0.5, 0.5]), 1)
    # uniform: gain 2 over previous 8 in 2 draws -> 2 / sqrt(8 * 2); error_weighted: 1 / sqrt(2 * 2)
    expected = torch.tensor([2.0 / 4.0, 1.0 / 2.0])
    assert torch.allclose(s.strategy.scores, expected)


def test_sharpness_zero_keeps_equal_shares():
    s = Sampler(UNITS, "adaptive", warmup_iterations=0, update_frequency=5, sharpness=0.0, seed=0)
    reducible, floor = population("concentrated", 0)
    for step in range(40):
        ids = s.sample(BATCH, step).ids
        s.update(ids, floor[ids] + reducible[ids], step)
        reducible[ids] *= 0.9
    assert s.stats()["mixture"] == pytest.approx({"uniform": 0.5, "error_weighted": 0.5})


def test_sharpness_must_be_non_negative():
    with pytest.raises(ValueError, match="sharpness"):
        Sampler(10, "adaptive", sharpness=-1.0)
