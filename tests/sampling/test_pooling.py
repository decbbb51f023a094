"""Neighbourhood pooling: rarely seen units are judged by the tiles around them, draws stay exact."""

from __future__ import annotations

import pytest
import torch

from foveate.sampling import Layout, Sampler, UnitStatistics
from foveate.sampling.strategies import pooled_error

from .helpers import chi_square_ok


def _stats(errors: list[float], visits: list[int]) -> UnitStatistics:
    stats = UnitStatistics(len(errors), 0.9, torch.float32, torch.device("cpu"))
    stats.error.copy_(torch.tensor(errors))
    stats.visits.copy_(torch.tensor(visits, dtype=torch.uint8))
    return stats


def test_a_two_by_two_image_by_hand():
    # Units (0,0) seen twice at 1.0 and (1,0) once at 0.4; the rest never.
    stats = _stats([1.0, 0.0, 0.4, 0.0], [2, 0, 1, 0])
    top = (2 * 1.0 + 1 * 0.4) / 3  # 0.8: the population's visited mean
    image = (2.4 + top) / (3 + 1)  # 0.8
    expected = [(2.0 + image) / 3, image, (0.4 + image) / 2, image]
    got = pooled_error(stats, Layout.from_shape((1, 2, 2)), strength=1.0)
    torch.testing.assert_close(got, torch.tensor(expected))
    torch.testing.assert_close(stats.error, torch.tensor([1.0, 0.0, 0.4, 0.0]), msg="statistics must not change")


def test_a_flat_population_shrinks_toward_its_visited_mean():
    stats = _stats([2.0, 0.0, 1.0], [4, 0, 1])
    mean = (8.0 + 1.0) / 5
    got = pooled_error(stats, Layout.from_shape(3), strength=2.0)
    torch.testing.assert_close(got, torch.tensor([(8.0 + 2 * mean) / 6, mean, (1.0 + 2 * mean) / 3]))


def test_a_well_seen_unit_keeps_its_error_and_unseen_ones_take_their_neighbourhood():
    height = width = 16
    error = torch.zeros(height, width)
    visits = torch.zeros(height, width, dtype=torch.uint8)
    error[:8, :8], visits[:8, :8] = 1.0, 1  # a hot quadrant, seen once a unit, with holes
    visits[2, 3] = visits[5, 5] = 0
    error[8:, 8:], visits[8:, 8:] = 0.1, 1  # a cold one
    visits[12, 12] = 0
    error[0, 15], visits[0, 15] = 0.5, 255  # one unit seen often
    stats = _stats(error.flatten().tolist(), visits.flatten().tolist())
    got = pooled_error(stats, Layout.from_shape((1, height, width)), strength=4.0).view(height, width)
    assert got[2, 3] > 0.8 and got[5, 5] > 0.8, "holes in the hot quadrant look hot"
    assert got[12, 12] < 0.25, "a hole in the cold quadrant looks cold"
    assert abs(float(got[0, 15]) - 0.5) < 0.02


@pytest.mark.parametrize("shape", [(2, 9, 13), 300])
@pytest.mark.parametrize("strategy", ["error_weighted", "spatial", "adaptive"])
def test_pooled_draws_follow_the_pooled_distribution_exactly(shape, strategy):
    if strategy == "spatial" and isinstance(shape, int):
        pytest.skip("spatial needs an image layout")
    extra = {"patch_size": 4} if strategy == "spatial" else {}
    sampler = Sampler(shape, strategy, seed=0, warmup_iterations=0, update_frequency=1, pool_visits=3.0, **extra)
    generator = torch.Generator().manual_seed(1)
    for step in range(20):
        ids = sampler.sample(64, step).ids
        sampler.update(ids, (ids % 17).float() / 17 + 0.05 * torch.rand(64, generator=generator), step)
    expected = sampler.probabilities()
    pooled = pooled_error(sampler.statistics, sampler.layout, 3.0)
    assert not torch.allclose(pooled, sampler.statistics.filled_error("max")), "pooling changed nothing"
    draws = 200_000
    ids = torch.cat([sampler.sample(20_000, 100 + i).ids for i in range(draws // 20_000)])
    ok, statistic = chi_square_ok(torch.bincount(ids, minlength=sampler.num_units), expected, draws)
    assert ok, statistic


def test_pool_visits_must_be_a_non_negative_number():
    with pytest.raises(ValueError, match="pool_visits"):
        Sampler(10, "error_weighted", pool_visits=-1.0)
