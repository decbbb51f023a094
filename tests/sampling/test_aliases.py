"""ErrorBasedRaySampler: RadFoam's surface and inputs, its radfoam semantics by hand, foveate's defaults kept."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from foveate.sampling import ErrorBasedRaySampler, Sampler
from tests.sampling.helpers import chi_square_ok


def radfoam(total_rays: int = 4, device: torch.device | str = "cpu", **overrides) -> ErrorBasedRaySampler:
    """RadFoam semantics, out of warm-up, logging every update unless told otherwise."""
    arguments = {"warmup_iterations": 0, "update_frequency": 1, "seed": 0, **overrides}
    return ErrorBasedRaySampler(total_rays, device, semantics="radfoam", **arguments)


def test_radfoams_attributes_are_there():
    s = ErrorBasedRaySampler(100, "cpu", update_frequency=7, decay=0.8, warmup_iterations=5, min_error_weight=0.2)
    assert (s.total_rays, s.update_frequency, s.warmup_iterations) == (100, 7, 5)
    assert (s.decay, s.min_error_weight, s.iteration_count) == (0.8, 0.2, 0)
    assert s.last_sampled_indices is None
    assert s.error_stats == {"mean_error": [], "std_error": [], "max_error": [], "min_error": []}
    ids = s.sample_ray_indices(10, iteration=0)
    assert s.last_sampled_indices is ids
    s.update_error_map(ids, torch.rand(10))
    assert s.iteration_count == 1
    assert not s.should_use_error_sampling(4) and s.should_use_error_sampling(5)


def test_radfoam_error_map_starts_at_one_and_a_first_loss_blends_with_it():
    s = radfoam()
    assert torch.equal(s.error_map, torch.ones(4))
    s.update_error_map(torch.tensor([1, 2]), torch.tensor([3.0, 0.0]))
    # 0.9 * 1.0 + 0.1 * loss
    torch.testing.assert_close(s.error_map, torch.tensor([1.0, 1.2, 0.9, 1.0]))
    s.update_error_map(torch.tensor([1]), torch.tensor([0.2]))
    torch.testing.assert_close(s.error_map, torch.tensor([1.0, 0.9 * 1.2 + 0.1 * 0.2, 0.9, 1.0]))


def test_one_aggregated_loss_is_given_to_every_ray():
    s = radfoam()
    s.update_error_map(torch.tensor([0, 1, 3]), torch.tensor([0.5]))
    torch.testing.assert_close(s.error_map, torch.tensor([0.95, 0.95, 1.0, 0.95]))


def test_a_list_of_losses_is_accepted():
    s = radfoam()
    s.update_error_map(torch.tensor([2, 3]), [2.0, 4.0])
    torch.testing.assert_close(s.error_map, torch.tensor([1.0, 1.0, 1.1, 1.3]))


def test_losses_beyond_the_ids_are_ignored():
    s = radfoam()
    s.update_error_map(torch.tensor([0]), torch.tensor([2.0, 100.0, 100.0]))
    torch.testing.assert_close(s.error_map, torch.tensor([1.1, 1.0, 1.0, 1.0]))


def test_ids_out_of_range_are_dropped_with_a_warning(device):
    s = radfoam(device=device)
    with pytest.warns(UserWarning, match="dropped 2 of 4 ray ids outside"):
        s.update_error_map(torch.tensor([-1, 0, 4, 3]), torch.tensor([9.0, 2.0, 9.0, 2.0]))
    torch.testing.assert_close(s.error_map.cpu(), torch.tensor([1.1, 1.0, 1.0, 1.1]))
    assert s.iteration_count == 1
    with pytest.warns(UserWarning, match="dropped 1 of 1"):
        s.update_error_map(torch.tensor([7]), torch.tensor([1.0]))
    assert s.iteration_count == 2, "a call whose ids were all dropped still counts, as RadFoam's does"


def test_none_ids_and_empty_losses_do_nothing():
    s = radfoam()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.update_error_map(None, torch.ones(3))
        s.update_error_map(torch.tensor([0, 1]), torch.zeros(0))
        s.update_error_map(torch.tensor([0, 1]), [])
    assert s.iteration_count == 0 and torch.equal(s.error_map, torch.ones(4))
    assert s.error_stats["mean_error"] == []


def test_inputs_radfoam_cannot_take_either_are_named_errors():
    s = radfoam()
    with pytest.raises(ValueError, match="3 ray ids but only 2 losses"):
        s.update_error_map(torch.tensor([0, 1, 2]), torch.ones(2))
    with pytest.raises(ValueError, match="one per ray"):
        s.update_error_map(torch.tensor([0, 1]), torch.ones(2, 3))
    with pytest.raises(ValueError, match="integer"):
        s.update_error_map(torch.tensor([0.0, 1.0]), torch.ones(2))


def test_negative_losses_are_rejected_and_non_finite_ones_ignored():
    s = radfoam()
    with pytest.raises(ValueError, match=">= 0"):
        s.update_error_map(torch.tensor([0, 1]), torch.tensor([1.0, -0.5]))
    s.update_error_map(torch.tensor([0, 1]), torch.tensor([float("nan"), 2.0]))
    torch.testing.assert_close(s.error_map, torch.tensor([1.0, 1.1, 1.0, 1.0]))
    assert s.stats()["nonfinite"] == 1


def test_radfoam_weights_are_error_plus_min_error_weight(device):
    s = radfoam(device=device, min_error_weight=0.1)
    s.update_error_map(torch.tensor([0, 1]), torch.tensor([2.0, 0.0]))
    # errors 1.1, 0.9, 1.0, 1.0; weights + 0.1 = 1.2, 1.0, 1.1, 1.1 over 4.4
    expected = torch.tensor([1.2, 1.0, 1.1, 1.1]) / 4.4
    torch.testing.assert_close(s.probabilities().cpu(), expected)
    draws = 100_000
    ids = s.sample_ray_indices(draws, iteration=1)
    ok, statistic = chi_square_ok(torch.bincount(ids, minlength=4), expected, draws)
    assert ok, statistic


def test_radfoam_distribution_follows_every_update_while_foveates_waits_for_update_frequency():
    radfoams = radfoam(update_frequency=100)
    foveates = ErrorBasedRaySampler(4, "cpu", update_frequency=100, warmup_iterations=0, seed=0)
    for s in (radfoams, foveates):
        before = s.probabilities().clone()
        s.update_error_map(torch.tensor([0]), torch.tensor([50.0]))
        s.sample_ray_indices(8, iteration=1)
        moved = not torch.equal(s.probabilities(), before)
        assert moved == (s is radfoams), s.semantics


def test_error_map_assignment_sets_every_ray():
    s = radfoam(total_rays=1000, min_error_weight=0.1)
    pattern = torch.full((1000,), 0.001)
    pattern[::250] = 10.0  # RadFoam's debug pattern
    s.error_map = pattern
    torch.testing.assert_close(s.error_map, pattern)
    weights = pattern + 0.1
    torch.testing.assert_close(s.probabilities(), weights / weights.sum())
    s.update_error_map(torch.tensor([0]), torch.tensor([0.0]))
    assert math.isclose(float(s.error_map[0]), 9.0, rel_tol=1e-6), "a loss blends with the assigned error"
    with pytest.raises(ValueError, match=r"shape \(1000,\)"):
        s.error_map = torch.ones(999)
    with pytest.raises(ValueError, match="finite errors >= 0"):
        s.error_map = -torch.ones(1000)


def test_error_map_assignment_steers_foveates_next_draw_too():
    s = ErrorBasedRaySampler(1000, "cpu", warmup_iterations=0, min_error_weight=0.0, uniform_fraction=0.0, seed=0)
    s.sample_ray_indices(8, iteration=0)  # the distribution exists now
    hot = torch.zeros(1000)
    hot[17] = 1.0
    s.error_map = hot
    assert torch.equal(s.sample_ray_indices(64, iteration=1), torch.full((64,), 17))


def test_update_frequency_paces_error_stats():
    s = radfoam(update_frequency=3)
    s.error_map = torch.tensor([0.0, 1.0, 2.0, 3.0])
    for _ in range(7):
        s.update_error_map(torch.tensor([0]), torch.tensor([0.0]))  # keeps the map as it is
    stats = s.get_error_statistics()
    assert stats == {
        "mean_error": [1.5, 1.5],
        "std_error": [pytest.approx(math.sqrt(1.25))] * 2,
        "max_error": [3.0, 3.0],
        "min_error": [0.0, 0.0],
    }
    stats["mean_error"].append(99.0)
    assert s.error_stats["mean_error"] == [1.5, 1.5], "get_error_statistics returns a copy"


def test_get_sampling_info_has_radfoams_keys_over_every_ray():
    s = radfoam()
    s.error_map = torch.tensor([0.0, 1.0, 2.0, 3.0])
    s.update_error_map(torch.tensor([0]), torch.tensor([0.0]))
    info = s.get_sampling_info()
    assert info["mean_error"] == 1.5 and info["std_error"] == pytest.approx(math.sqrt(1.25))
    assert (info["max_error"], info["min_error"], info["error_range"], info["iteration_count"]) == (3.0, 0.0, 3.0, 1)
    assert info["coverage"] == 1.0 and info["strategy"] == "radfoam_weighted"


def test_radfoam_warmup_draws_hold_no_repeats(device):
    s = radfoam(total_rays=100, device=device, warmup_iterations=10)
    assert torch.equal(s.sample_ray_indices(100, iteration=0).sort().values.cpu(), torch.arange(100))
    assert torch.unique(s.sample_ray_indices(60, iteration=9)).numel() == 60
    counts = torch.bincount(s.sample_ray_indices(250, iteration=9), minlength=100)
    assert int(counts.sum()) == 250 and int(counts.min()) == 2 and int(counts.max()) == 3
    assert s.sample_ray_indices(5000, iteration=10).numel() == 5000  # past warm-up: with replacement


def test_foveates_warmup_draws_with_replacement():
    s = ErrorBasedRaySampler(100, "cpu", warmup_iterations=10, seed=0)
    assert torch.unique(s.sample_ray_indices(100, iteration=0)).numel() < 100


def test_foveates_defaults_are_the_samplers():
    plain, alias = Sampler(256, seed=3), ErrorBasedRaySampler(256, seed=3)
    assert alias.semantics == "foveate" and alias.config == plain.config
    errors = torch.linspace(0.0, 1.0, 256)
    for step in (0, 1000, 1001):
        a, b = plain.sample(512, step), alias.sample(512, step)
        assert torch.equal(a.ids, b.ids) and torch.equal(a.weights, b.weights)
        plain.update(a.ids, errors[a.ids], step)
        alias.update(b.ids, errors[b.ids], step)
    assert torch.equal(plain.probabilities(), alias.probabilities())


def test_radfoam_semantics_refuses_foveates_shaping():
    with pytest.raises(ValueError, match="strategy must be 'error_weighted'"):
        ErrorBasedRaySampler(10, semantics="radfoam", strategy="spatial")
    with pytest.raises(ValueError, match="uniform_fraction"):
        ErrorBasedRaySampler(10, semantics="radfoam", uniform_fraction=0.1)
    with pytest.raises(ValueError, match="semantics must be one of"):
        ErrorBasedRaySampler(10, semantics="nerfstudio")


def test_state_dict_continues_with_the_error_stats():
    a = radfoam(total_rays=64)
    for step in range(3):
        ids = a.sample_ray_indices(16, step)
        a.update_error_map(ids, torch.rand(16, generator=torch.Generator().manual_seed(step)))
    b = radfoam(total_rays=64, seed=9)
    b.load_state_dict(a.state_dict())
    assert b.get_error_statistics() == a.get_error_statistics()
    assert torch.equal(a.error_map, b.error_map)
    assert torch.equal(a.sample_ray_indices(32, 3), b.sample_ray_indices(32, 3))


@pytest.mark.slow
def test_radfoam_draws_stay_error_guided_above_two_to_the_24_rays():
    # RadFoam's torch.multinomial refuses more than 2^24 categories and draws uniformly instead.
    total = 2**24 + 16
    s = radfoam(total_rays=total, min_error_weight=0.0)
    hot = torch.zeros(total)
    hot[-16:] = 1.0
    s.error_map = hot
    assert bool((s.sample_ray_indices(4096, iteration=0) >= total - 16).all())
