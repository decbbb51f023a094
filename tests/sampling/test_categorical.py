from __future__ import annotations

import pytest
import torch

from foveate.sampling import BLOCK, BlockCategorical, categorical, sorted_uniforms
from tests.sampling.helpers import chi_square_ok


def test_sorted_uniforms_are_sorted_uniform(device):
    g = torch.Generator(device=device).manual_seed(0)
    u = sorted_uniforms(200_000, generator=g, device=device)
    assert u.dtype == torch.float64
    assert bool((u[1:] >= u[:-1]).all())
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    counts = torch.histc(u.float(), bins=50, min=0.0, max=1.0)
    ok, statistic = chi_square_ok(counts, torch.full((50,), 1 / 50), u.numel())
    assert ok, statistic


def test_stratified_uniforms_have_one_per_stratum(device):
    g = torch.Generator(device=device).manual_seed(0)
    u = sorted_uniforms(1000, generator=g, device=device, stratified=True)
    assert torch.equal((u * 1000).floor().long().cpu(), torch.arange(1000))


@pytest.mark.parametrize("num_units", [1, 7, BLOCK, BLOCK + 1, 1000])
def test_draws_match_weights(device, num_units):
    g = torch.Generator(device=device).manual_seed(1)
    weights = torch.rand(num_units, generator=g, device=device) ** 3
    weights[::3] = 0.0
    if num_units == 1:
        weights[0] = 2.0
    dist = BlockCategorical(weights)
    draws = 100_000
    ids = dist.sample_from_uniforms(sorted_uniforms(draws, generator=g, device=device))
    assert int(ids.min()) >= 0 and int(ids.max()) < num_units
    assert bool((weights[ids] > 0).all()), "a zero-weight unit was drawn"
    counts = torch.bincount(ids, minlength=num_units)
    ok, statistic = chi_square_ok(counts, weights / weights.sum(), draws)
    assert ok, statistic
    assert torch.allclose(dist.probabilities().double().cpu(), (weights / weights.sum()).double().cpu(), atol=1e-7)


def test_draws_invert_the_stored_distribution(device):
    """The in-block count of prefix sums agrees with inverting the whole CDF of the stored masses."""
    g = torch.Generator(device=device).manual_seed(2)
    weights = torch.rand(4099, generator=g, device=device) ** 8
    weights[torch.rand(4099, generator=g, device=device) < 0.3] = 0.0
    weights[-BLOCK:] = 0.0  # a trailing empty block: uniforms near 1 must not land in it
    dist = BlockCategorical(weights)
    mass = dist.probabilities().double() * dist.total
    cdf = torch.cat((mass.new_zeros(1), mass.cumsum(0)))
    u = torch.cat((sorted_uniforms(50_000, generator=g, device=device), u_edges(device)))
    ids = dist.sample_from_uniforms(u)
    expected = (torch.searchsorted(cdf, u * dist.total, right=True) - 1).clamp(max=int(weights.nonzero().max()))
    assert torch.equal(ids, expected)
    assert bool((weights[ids] > 0).all())


def test_a_draw_sliced_on_the_cpu_equals_one_pass(monkeypatch):
    """Large CPU draws and probabilities handle their rows a slice at a time; nothing may depend on it."""
    g = torch.Generator().manual_seed(5)
    weights = torch.rand(10_007, generator=g) ** 6
    weights[torch.rand(10_007, generator=g) < 0.2] = 0.0
    dist = BlockCategorical(weights)
    u = torch.cat((sorted_uniforms(3_001, generator=g, device=torch.device("cpu")), u_edges(torch.device("cpu"))))
    monkeypatch.setattr(categorical, "_ROWS_PER_PASS", len(u))
    whole = dist.sample_from_uniforms(u)
    whole_probability = dist.probability(whole)
    monkeypatch.setattr(categorical, "_ROWS_PER_PASS", 97)
    assert torch.equal(dist.sample_from_uniforms(u), whole)
    assert torch.equal(dist.probability(whole), whole_probability)


def u_edges(device: torch.device) -> torch.Tensor:
    return torch.tensor([0.0, 0.5, 1.0 - 2.0**-53], dtype=torch.float64, device=device)


def test_exact_far_beyond_multinomial_limit():
    """2^24 + 3 units, most of the mass on three single units past the 2^24 boundary."""
    num_units = 2**24 + 3
    weights = torch.full((num_units,), 1e-3)
    special = torch.tensor([2**24, 2**24 + 1, 2**24 + 2])
    weights[special] = torch.tensor([2.0e4, 1.0e4, 5.0e3])
    dist = BlockCategorical(weights)
    p_special = dist.probability(special)
    total = 1e-3 * (num_units - 3) + 3.5e4
    assert torch.allclose(p_special, torch.tensor([2.0e4, 1.0e4, 5.0e3], dtype=torch.float64) / total, rtol=1e-6)
    g = torch.Generator().manual_seed(3)
    draws = 200_000
    ids = dist.sample_from_uniforms(sorted_uniforms(draws, generator=g, device=torch.device("cpu")))
    # Pool the bulk into 64 contiguous ranges; keep the three special units apart.
    bulk = ids[ids < 2**24]
    tail = ids[ids >= 2**24] - 2**24
    observed = torch.cat([torch.bincount(bulk // 2**18, minlength=64), torch.bincount(tail, minlength=3)])
    expected = torch.cat([torch.full((64,), 1e-3 * 2**18), torch.tensor([2.0e4, 1.0e4, 5.0e3])]) / total
    ok, statistic = chi_square_ok(observed, expected, draws)
    assert ok, statistic


def test_resolution_does_not_degrade_with_the_running_total():
    """A global float32 CDF near 3.3e7 has spacing 2-4 and loses small units; block prefix sums keep them."""
    num_units = 2**25 + BLOCK
    weights = torch.ones(num_units)
    weights[-BLOCK : -BLOCK + 2] = torch.tensor([0.5, 1e-3])
    small = torch.tensor([num_units - BLOCK, num_units - BLOCK + 1])
    naive = torch.cumsum(weights, 0)
    assert float(naive[small[1]] - naive[small[0]]) != pytest.approx(1e-3, rel=0.5), "float32 CDF lost it"
    dist = BlockCategorical(weights)
    total = float(weights.double().sum())
    assert torch.allclose(dist.probability(small), torch.tensor([0.5, 1e-3], dtype=torch.float64) / total, rtol=2e-4)
    # A uniform landing inside the 1e-3 unit's interval selects it.
    start = (num_units - BLOCK) + 0.5
    u = torch.tensor([(start + 0.5e-3) / total], dtype=torch.float64)
    assert int(dist.sample_from_uniforms(u)) == int(small[1])


def test_a_share_below_float32_resolution_stays_drawable():
    weights = torch.tensor([1.0, 1e-9, 0.0, 1e-12])
    p = BlockCategorical(weights).probabilities()
    assert bool((p[[1, 3]] > 0).all()) and float(p[2]) == 0.0


def test_only_shares_below_the_floor_are_lifted(device):
    """Masses are the weights, but for positive ones under 2^-21 of their block: raised to that floor, and drawable."""
    g = torch.Generator(device=device).manual_seed(4)
    blocks = torch.rand(512, BLOCK, generator=g, device=device)
    blocks[::2, 1:] *= 1e-12  # shares far below float32 resolution of the block's first unit
    blocks[torch.rand(blocks.shape, generator=g, device=device) < 0.3] = 0.0
    dist = BlockCategorical(blocks.view(-1))
    floor = (blocks.double().sum(1, keepdim=True) * 2.0**-21).float()
    tiny = (blocks > 0) & (blocks < floor)
    assert bool(tiny.any()), "the case must need lifting"
    assert torch.equal(dist.mass[~tiny], blocks[~tiny])
    assert torch.equal(dist.mass[tiny], floor.expand_as(blocks)[tiny])
    assert bool((dist.probabilities().view(512, BLOCK)[blocks > 0] > 0).all()), "every positive unit stays drawable"


def test_saved_masses_and_old_prefix_sums_load(device):
    g = torch.Generator(device=device).manual_seed(5)
    weights = torch.rand(1000, generator=g, device=device)
    weights[::4] = 0.0
    dist = BlockCategorical(weights)
    again = BlockCategorical.from_mass(dist.mass.clone(), dist.block_cdf.clone(), 1000)
    u = sorted_uniforms(10_000, generator=g, device=device)
    assert torch.equal(again.sample_from_uniforms(u), dist.sample_from_uniforms(u))
    assert torch.equal(again.block_cdf, dist.block_cdf) and torch.equal(again.last_positive, dist.last_positive)
    padded = torch.zeros(-(-1000 // BLOCK) * BLOCK, device=device)
    padded[:1000] = weights
    prefix = padded.view(-1, BLOCK).double().cumsum(1).float()
    old = BlockCategorical.from_prefix(prefix, 1000)
    assert torch.allclose(old.probabilities(), dist.probabilities(), rtol=1e-5, atol=1e-8)  # float32 prefix rounding


def test_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        BlockCategorical(torch.zeros(0))
    with pytest.raises(ValueError, match="weights"):
        BlockCategorical(torch.ones(2, 2))
