"""Shuffled epochs: each unit once per epoch, full batches across epoch ends, exact resume."""

from __future__ import annotations

import pytest
import torch

from foveate.train.epochs import ShuffledEpochs


def test_every_unit_comes_once_per_epoch_and_batches_cross_epoch_ends():
    torch.manual_seed(0)
    epochs = ShuffledEpochs(10)
    served = torch.cat([epochs.next(4) for _ in range(5)])  # 20 ids: two whole epochs
    assert len(served) == 20
    assert sorted(served[:10].tolist()) == list(range(10))
    assert sorted(served[10:].tolist()) == list(range(10))
    assert served[:10].tolist() != served[10:].tolist()  # a new order each epoch


def test_a_resume_continues_the_same_sequence():
    torch.manual_seed(1)
    epochs = ShuffledEpochs(7)
    epochs.next(5)
    state, rng = epochs.state_dict(), torch.get_rng_state()
    expected = torch.cat([epochs.next(3) for _ in range(4)])
    resumed = ShuffledEpochs(7)
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    assert torch.equal(torch.cat([resumed.next(3) for _ in range(4)]), expected)


def test_a_checkpoint_of_another_size_is_refused():
    with pytest.raises(ValueError, match="5 units, this task has 6"):
        ShuffledEpochs(6).load_state_dict(ShuffledEpochs(5).state_dict())
    with pytest.raises(ValueError, match="at least one unit"):
        ShuffledEpochs(0)


def test_a_batch_of_none_takes_nothing():
    epochs = ShuffledEpochs(4, seed=0)
    assert epochs.next(0).shape == (0,)
    assert sorted(epochs.next(4).tolist()) == [0, 1, 2, 3]
