"""Refreshing the distribution between rebuilds: the blocks a batch touched, re-weighted at once."""

from __future__ import annotations

import pytest
import torch

from foveate.sampling import BLOCK, BlockCategorical, Sampler, Shaping, sorted_uniforms
from tests.sampling.helpers import chi_square_ok
from tests.sampling.test_sampler import feed, host_syncs


def test_refresh_matches_a_rebuild_from_the_new_weights(device):
    g = torch.Generator(device=device).manual_seed(0)
    weights = torch.rand(2000, generator=g, device=device)
    weights[::7] = 0.0
    weights[-3 * BLOCK :] = 0.0  # trailing empty blocks: a refresh may give them mass
    dist = BlockCategorical(weights.clone())
    untouched_rows = dist.mass.clone()
    ids = torch.sort(torch.randint(2000, (500,), generator=g, device=device)).values
    fresh = torch.rand(2000, generator=g, device=device) * 3
    fresh[::5] = 0.0
    dist.refresh(ids, fresh[ids])
    changed = weights.clone()
    changed[ids] = fresh[ids]
    rebuilt = BlockCategorical(changed)
    assert torch.allclose(dist.probabilities(), rebuilt.probabilities(), rtol=0, atol=1e-7)
    assert torch.equal(dist.last_positive, rebuilt.last_positive)
    assert torch.equal(dist._last_block, rebuilt._last_block)
    touched = torch.zeros(len(dist.mass), dtype=torch.bool, device=device)
    touched[ids // BLOCK] = True
    assert torch.equal(dist.mass[~touched], untouched_rows[~touched]), "other blocks keep their bits"
    draws = 200_000
    drawn = dist.sample_from_uniforms(sorted_uniforms(draws, generator=g, device=device))
    assert bool((changed[drawn] > 0).all()), "a unit without weight was drawn"
    ok, statistic = chi_square_ok(torch.bincount(drawn, minlength=2000), changed / changed.sum(), draws)
    assert ok, statistic


def test_a_repeated_id_counts_once():
    dist = BlockCategorical(torch.ones(32))
    dist.refresh(torch.tensor([3, 3, 3, 20]), torch.tensor([5.0, 5.0, 5.0, 0.0]))
    expected = torch.ones(32)
    expected[3], expected[20] = 5.0, 0.0
    assert torch.allclose(dist.probabilities(), expected / expected.sum())


def test_a_weight_map_repeats_its_rebuild_bit_for_bit():
    """A unit refreshed with the score it had at the rebuild gets the weight the rebuild gave it."""
    g = torch.Generator().manual_seed(4)
    score = torch.rand(1000, generator=g) * 3
    score[::9], score[::11] = 0.0, -0.5  # no error, and an error below the noise estimate
    weights, weight_map = Shaping(0.1, 0.25).weights_and_map(score.clone())
    assert torch.equal(weight_map(score), weights)


def refreshing(strategy: str = "error_weighted", **options) -> Sampler:
    return Sampler((2, 24, 30), strategy, refresh=True, warmup_iterations=0, update_frequency=50, seed=3, **options)


def test_an_update_reweights_its_units_at_once_by_the_rebuilds_map():
    sampler = refreshing()
    feed(sampler, 3, lambda ids: (ids % 13).float() / 10, n=512)
    before = sampler.probabilities()
    ids = sampler.sample(512, 3).ids
    sampler.update(ids, torch.full((512,), 5.0), 3)
    after = sampler.probabilities()
    strategy = sampler.strategy
    everyone = torch.arange(sampler.num_units)
    expected = strategy.weight_map(sampler.statistics.filled_error_of(everyone, strategy.prior_value))
    assert torch.allclose(after, expected / expected.sum(), rtol=1e-5, atol=1e-9)
    drawn = torch.zeros(sampler.num_units, dtype=torch.bool)
    drawn[ids] = True
    # Against the units it did not touch (whose weights stand), every updated unit now weighs more.
    relative_after, relative_before = after / after[~drawn].sum(), before / before[~drawn].sum()
    assert bool((relative_after[drawn] > relative_before[drawn]).all()), "errors that rose to 5 count at once"
    assert torch.allclose(relative_after[~drawn], relative_before[~drawn])
    assert sampler.rebuilds == 1, "no rebuild: the distribution was refreshed in place"


@pytest.mark.parametrize("strategy", ["error_weighted", "adaptive"])
@pytest.mark.parametrize("correction", ["none", 0.5])
def test_refresh_never_waits_for_the_device(strategy, correction):
    sampler = refreshing(strategy, check_inputs=False, correction=correction)
    assert host_syncs(sampler, range(12)) == []


@pytest.mark.parametrize("option", [{"pool_visits": 2.0}, {"staleness": 0.1}])
def test_refresh_refuses_neighbourhood_and_age_weighting(option):
    with pytest.raises(ValueError, match="refresh"):
        Sampler(100, "error_weighted", refresh=True, **option)


def test_adaptive_refreshes_its_error_weighted_component_at_once():
    sampler = refreshing("adaptive")
    feed(sampler, 3, lambda ids: (ids % 13).float() / 10, n=512)
    uniform, guided = sampler.proposal.components
    before_uniform, before_guided = uniform.probabilities(), guided.probabilities()
    ids = sampler.sample(512, 3).ids
    sampler.update(ids, torch.full((512,), 5.0), 3)
    child = sampler.strategy.children[1]
    everyone = torch.arange(sampler.num_units)
    expected = child.weight_map(sampler.statistics.filled_error_of(everyone, child.prior_value))
    assert torch.allclose(guided.probabilities(), expected / expected.sum(), rtol=1e-5, atol=1e-9)
    assert not torch.allclose(guided.probabilities(), before_guided)
    assert torch.equal(uniform.probabilities(), before_uniform)
    assert torch.allclose(
        sampler.probabilities(),
        sum(s * c.probabilities() for s, c in zip(sampler.proposal.shares, (uniform, guided), strict=True)),
    )
    assert sampler.rebuilds == 1


@pytest.mark.parametrize("ascending", [True, False])
def test_power_sums_follow_refreshes_without_a_pass(ascending):
    g = torch.Generator().manual_seed(7)
    weights = torch.rand(3000, generator=g) + 0.05  # none small enough to be lifted
    weights[::11] = 0.0
    dist = BlockCategorical(weights.clone())
    exact = weights.double().pow(0.5).sum()
    assert float(dist.power_sum(0.5)) == pytest.approx(float(exact), rel=1e-6)
    changed = weights.clone()
    for _ in range(5):
        ids = torch.randint(3000, (400,), generator=g)
        ids = torch.cat((ids, ids[:50]))  # repeats, carrying the same weight
        fresh = torch.rand(3000, generator=g) * 2 + 0.05
        fresh[::7] = 0.0
        if ascending:
            ids = ids.sort().values
        dist.refresh(ids, fresh[ids], ascending=ascending)
        changed[ids] = fresh[ids]
    rebuilt = BlockCategorical(changed)
    assert float(dist.power_sum(0.5)) == pytest.approx(float(rebuilt.power_sum(0.5)), rel=1e-6)
    assert float(dist.power_sum(0.25)) == pytest.approx(float(changed.double().pow(0.25).sum()), rel=1e-6)
    with pytest.raises(ValueError, match="exponent"):
        dist.power_sum(0.0)


def test_soft_weights_keep_mean_one_between_rebuilds_under_refresh():
    sampler = refreshing(correction=0.5)
    feed(sampler, 3, lambda ids: (ids % 13).float() / 10, n=512)
    everyone = torch.arange(sampler.num_units)
    for step in range(3, 9):
        ids = sampler.sample(512, step).ids
        sampler.update(ids, torch.rand(512, generator=torch.Generator().manual_seed(step)) * 5, step)
        p = sampler.probabilities().double()
        weights = sampler._importance_weights(sampler.proposal, everyone, step).double()
        assert float((p * weights).sum()) == pytest.approx(1.0, rel=1e-5)
    assert sampler.rebuilds == 1, "the normaliser followed the refreshes, not rebuilds"


def test_a_mixtures_power_sum_is_its_probabilities():
    sampler = refreshing("adaptive")
    feed(sampler, 3, lambda ids: (ids % 13).float() / 10, n=512)
    mixture = sampler.proposal
    p = mixture.probabilities().double()
    assert float(mixture.power_sum(0.5)) == pytest.approx(float(p.pow(0.5).sum()), rel=1e-6)
    uniform = mixture.components[0]
    assert float(uniform.power_sum(0.3)) == pytest.approx(sampler.num_units**0.7)
