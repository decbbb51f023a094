"""A timeline sampler shared by two gloo ranks learns what one process with all their environments learns."""

from __future__ import annotations

import pytest
import torch

from foveate.data.timeline import Timeline, TimelineSampler

from ..gloo import run_on_ranks

TIMELINE = Timeline(num_frames=400, control_rate=50.0)
ENVS, STEPS = 6, 30
FORMS = ("official", "paper")


def _events(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s episodes ending at ``step``: a different number on each rank, failures in late bins."""
    generator = torch.Generator().manual_seed(1000 * step + rank)
    count = int(torch.randint(0, ENVS + 1, (1,), generator=generator))
    env_ids = torch.randperm(ENVS, generator=generator)[:count]
    frames = torch.randint(0, TIMELINE.num_frames, (count,), generator=generator)
    failed = (frames > 250) & (torch.rand(count, generator=generator) < 0.7)
    return env_ids, frames, failed


def _play(sampler: TimelineSampler, ranks: list[int]) -> None:
    """IsaacLab's order: credit the ending episodes, draw their new starts, advance."""
    sampler.draw(torch.arange(sampler.num_envs))
    for step in range(STEPS):
        parts = [_events(step, rank) for rank in ranks]
        offsets = [ENVS * index for index in range(len(ranks))]
        env_ids = torch.cat([ids + offset for (ids, _, _), offset in zip(parts, offsets, strict=True)])
        frames, failed = torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])
        sampler.credit(env_ids, frames, failed)
        sampler.draw(env_ids)
        sampler.advance(torch.randint(0, TIMELINE.num_frames, (sampler.num_envs,)))


def _rank(rank: int) -> dict:
    results = {}
    for form in FORMS:
        sampler = TimelineSampler(TIMELINE, ENVS, form, seed=5, distributed=True)
        _play(sampler, [rank])
        local = TimelineSampler(TIMELINE, ENVS, form, seed=5 + 1_000_003 * rank)
        _play(local, [rank])
        results[form] = {"p": sampler.probabilities(), "starts": sampler.starts, "local": local.probabilities()}
    return results


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    return run_on_ranks(_rank, tmp_path_factory.mktemp("timeline"))


def test_two_ranks_learn_the_distribution_one_process_with_all_envs_learns(two_ranks):
    """The official form credits the frames where episodes fail, so one process fed both ranks' events agrees."""
    alone = TimelineSampler(TIMELINE, 2 * ENVS, "official", seed=5)
    _play(alone, [0, 1])
    expected = alone.probabilities()
    assert not torch.allclose(expected, torch.full_like(expected, 1 / TIMELINE.num_bins)), "nothing was learnt"
    for rank in two_ranks:
        torch.testing.assert_close(rank["official"]["p"], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("form", FORMS)
def test_every_rank_holds_one_distribution_learnt_from_all_of_them(two_ranks, form):
    """The paper form credits start bins, which each rank draws itself: the ranks still agree on one distribution."""
    first, second = (rank[form] for rank in two_ranks)
    torch.testing.assert_close(first["p"], second["p"], rtol=0, atol=0)
    assert not torch.allclose(first["p"], first["local"]) and not torch.allclose(second["p"], second["local"])


def test_ranks_draw_their_own_starts(two_ranks):
    assert not torch.equal(two_ranks[0]["official"]["starts"], two_ranks[1]["official"]["starts"])
