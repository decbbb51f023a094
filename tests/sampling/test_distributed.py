"""A sampler shared by two gloo ranks draws, learns and saves exactly what one process does."""

from __future__ import annotations

import pytest
import torch

from foveate.sampling import Sampler

from ..gloo import run_on_ranks

UNITS, BATCH, STEPS = 96, 12, 9
STRATEGIES = ("error_weighted", "adaptive", "spatial")


def _sampler(strategy: str, distributed: bool = False) -> Sampler:
    shape = (2, 6, 8) if strategy == "spatial" else UNITS
    extra = {"patch_size": 2} if strategy == "spatial" else {}
    return Sampler(
        shape,
        strategy,
        seed=11,
        warmup_iterations=2,
        update_frequency=2,
        correction="full",
        distributed=distributed,
        **extra,
    )


def _errors(ids: torch.Tensor, step: int) -> torch.Tensor:
    """A deterministic error per unit that changes with the step."""
    return ((ids * 7 + step) % 13).float() / 13 + 0.01


def _run(sampler: Sampler, steps: range) -> list[tuple[torch.Tensor, torch.Tensor]]:
    draws = []
    for step in steps:
        ids, weights = sampler.sample(BATCH, step)
        sampler.update(ids, _errors(ids, step), step)
        draws.append((ids, weights))
    return draws


def _rank(rank: int) -> dict:
    results = {}
    for strategy in STRATEGIES:
        sampler = _sampler(strategy, distributed=True)
        draws = _run(sampler, range(STEPS))
        results[strategy] = {"draws": draws, "state": sampler.state_dict(), "p": sampler.probabilities()}
    return results


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    return run_on_ranks(_rank, tmp_path_factory.mktemp("ranks"))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_ranks_split_one_global_draw_and_learn_what_one_process_learns(two_ranks, strategy):
    alone = _sampler(strategy)
    single = _run(alone, range(STEPS))
    ranks = [result[strategy] for result in two_ranks]
    for step, (ids, weights) in enumerate(single):
        local = [rank["draws"][step] for rank in ranks]
        assert [len(part[0]) for part in local] == [BATCH // 2] * 2
        assert torch.equal(torch.cat([part[0] for part in local]), ids), f"step {step}: not a split of one draw"
        assert torch.equal(torch.cat([part[1] for part in local]), weights), f"step {step}: weights differ"
    for rank in ranks:
        assert torch.equal(rank["p"], alone.probabilities())
        assert torch.equal(rank["state"]["statistics"]["error"], alone.state_dict()["statistics"]["error"])
        assert rank["state"]["strategy"].keys() == alone.state_dict()["strategy"].keys()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_two_rank_state_continues_in_one_process_as_the_single_run_does(two_ranks, strategy):
    continued = _sampler(strategy)
    continued.load_state_dict(two_ranks[0][strategy]["state"])
    alone = _sampler(strategy)
    _run(alone, range(STEPS))
    later = range(STEPS, STEPS + 5)
    for (a, wa), (b, wb) in zip(_run(continued, later), _run(alone, later), strict=True):
        assert torch.equal(a, b) and torch.equal(wa, wb)


def test_a_batch_that_does_not_divide_among_the_ranks_is_refused():
    sampler = _sampler("error_weighted")
    sampler.world = 2  # as if two ranks shared it: the check happens before any collective
    with pytest.raises(ValueError, match="does not divide among 2 ranks"):
        sampler.sample(7, 0)


def test_distributed_without_a_process_group_says_how_to_run_it():
    with pytest.raises(ValueError, match="torchrun"):
        _sampler("error_weighted", distributed=True)
