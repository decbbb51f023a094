from __future__ import annotations

import pytest
import torch

from foveate.sampling import EpochStrata, Sampler
from foveate.sampling.sampler import EPOCHS_UP_TO


def test_each_epoch_has_one_variate_per_stratum(device):
    strata, generator = EpochStrata(10, device), torch.Generator(device=device).manual_seed(0)
    # Batches of 3 cross the epochs' ends: 30 variates are 3 whole epochs.
    variates = [strata.next(3, generator) for _ in range(10)]
    assert all(bool((u[1:] >= u[:-1]).all()) for u in variates)
    stratum = (torch.cat(variates) * 10).floor().long().cpu()
    for epoch in stratum.split(10):
        assert sorted(epoch.tolist()) == list(range(10))


def test_epochs_are_shuffled_differently():
    strata, generator = EpochStrata(50, "cpu"), torch.Generator().manual_seed(0)
    first = [int(strata.next(1, generator) * 50) for _ in range(50)]
    second = [int(strata.next(1, generator) * 50) for _ in range(50)]
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second


@pytest.mark.parametrize("batch", [1, 4, 32])
def test_uniform_draws_serve_shuffled_epochs(device, batch):
    sampler = Sampler(32, "uniform", stratified_epochs=True, seed=0, device=device)
    ids = torch.cat([sampler.sample(batch, step).ids for step in range(32 * 4 // batch)])
    assert ids.numel() == 128
    assert torch.equal(torch.bincount(ids.cpu(), minlength=32), torch.full((32,), 4))


def test_guided_counts_follow_probabilities_closer_than_independent_draws():
    sampler = Sampler(64, warmup_iterations=0, update_frequency=1, stratified_epochs=True, seed=1)
    sampler.update(torch.arange(64), torch.linspace(0.1, 3.0, 64), 0)
    p = sampler.probabilities().double()
    draws = 64 * 20
    ids = torch.cat([sampler.sample(1, step).ids for step in range(draws)])
    deviations = torch.bincount(ids, minlength=64).double() - p * draws
    # Every unit near its expected count (a few visits either way over 20 epochs).
    assert float(deviations.abs().max()) < 12
    # Independent draws' squared deviations add up to draws * (1 - sum p^2) on average; epochs' to far less.
    assert float((deviations**2).sum()) < 0.6 * draws * float(1 - (p**2).sum())


def test_large_populations_are_refused():
    with pytest.raises(ValueError, match="stratified_epochs"):
        Sampler(EPOCHS_UP_TO + 1, stratified_epochs=True)


def test_state_rejects_another_period():
    strata = EpochStrata(8, "cpu")
    with pytest.raises(ValueError, match="8 strata"):
        EpochStrata(9, "cpu").load_state_dict(strata.state_dict())
