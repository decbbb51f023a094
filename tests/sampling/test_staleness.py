"""Staleness: units drawn long ago get back into the draws, in order of how long ago."""

from __future__ import annotations

import pytest
import torch

from foveate.sampling import Sampler


def _sampler(strategy: str = "error_weighted", **options) -> Sampler:
    arguments = {"warmup_iterations": 0, "update_frequency": 1, "uniform_fraction": 0.0, "seed": 0}
    return Sampler(30, strategy, **{**arguments, **options})


def _visit(sampler: Sampler, ids: range, step: int) -> None:
    ids = torch.tensor(list(ids))
    sampler.update(ids, torch.full((len(ids),), 0.5), step)
    sampler.probabilities()  # a rebuild: every unit ages by one


def test_equal_errors_are_drawn_by_how_long_ago_they_were_seen():
    sampler = _sampler(staleness=0.5)
    _visit(sampler, range(0, 10), 0)
    for step in range(1, 4):
        _visit(sampler, range(10, 20), step)
    for step in range(4, 8):
        _visit(sampler, range(20, 30), step)
    p = sampler.probabilities()
    oldest, middle, newest = p[:10], p[10:20], p[20:]
    assert oldest.min() > middle.max() > newest.max()
    assert torch.allclose(oldest, oldest[0].expand(10)) and torch.allclose(newest, newest[0].expand(10))
    _visit(sampler, range(0, 10), 8)
    assert sampler.probabilities()[:10].max() < sampler.probabilities()[10:20].min(), "a visit resets the age"


def test_without_staleness_equal_errors_stay_equally_likely():
    sampler = _sampler()
    _visit(sampler, range(0, 10), 0)
    for step in range(1, 5):
        _visit(sampler, range(10, 30), step)
    p = sampler.probabilities()
    assert torch.allclose(p, torch.full_like(p, 1 / 30))


def test_the_error_part_keeps_its_share():
    sampler = _sampler(staleness=0.25, min_error_weight=0.0)
    errors = torch.linspace(0.1, 3.0, 30)
    sampler.update(torch.arange(30), errors, 0)
    p = sampler.probabilities()
    # Everything was seen at once, so the stale part is uniform: 0.75 x error share + 0.25 / 30.
    expected = 0.75 * errors / errors.sum() + 0.25 / 30
    torch.testing.assert_close(p, expected, rtol=1e-5, atol=1e-7)


def test_ages_survive_a_resume_and_count_in_the_memory():
    sampler = _sampler(staleness=0.5, strategy="adaptive")
    for step in range(6):
        _visit(sampler, range(step * 5, step * 5 + 5), step)
    copy = _sampler(staleness=0.5, strategy="adaptive")
    copy.load_state_dict(sampler.state_dict())
    for step in range(6, 9):
        _visit(sampler, range(0, 3), step)
        _visit(copy, range(0, 3), step)
    assert torch.equal(sampler.probabilities(), copy.probabilities())
    assert sampler.nbytes() - _sampler(strategy="adaptive").nbytes() >= 30


def test_staleness_and_the_uniform_share_must_leave_room_for_the_errors():
    with pytest.raises(ValueError, match="staleness"):
        Sampler(10, "error_weighted", staleness=0.9, uniform_fraction=0.25)
