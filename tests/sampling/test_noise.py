"""Noise-aware errors: with the targets' own noise subtracted, guidance follows the model's error."""

from __future__ import annotations

import pytest
import torch

from foveate.sampling import Sampler

UNITS = 400


def _noisy_target_errors(generator: torch.Generator, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared errors of a model against noisy targets, and each unit's noise variance.

    Units 0-199 have clean targets and a model error of 0.01 except units 0-19 (0.2); units 200-399
    have a small model error (0.01) but targets with variance 0.3.
    """
    model_error = torch.full((UNITS,), 0.01)
    model_error[:20] = 0.2
    variance = torch.zeros(UNITS)
    variance[200:] = 0.3
    residual = model_error.sqrt()[ids] + variance.sqrt()[ids] * torch.randn(len(ids), generator=generator)
    return residual.square(), variance[ids]


def _trained(with_noise: bool) -> torch.Tensor:
    sampler = Sampler(UNITS, "error_weighted", seed=0, warmup_iterations=0, update_frequency=10, decay=0.5)
    generator = torch.Generator().manual_seed(3)
    for step in range(200):
        ids = sampler.sample(256, step).ids
        errors, variance = _noisy_target_errors(generator, ids)
        sampler.update(ids, errors, step, noise=variance if with_noise else None)
    return sampler.probabilities()


def test_subtracting_the_targets_noise_moves_the_draws_to_the_models_error():
    naive, aware = _trained(False), _trained(True)
    hard, noisy = slice(0, 20), slice(200, 400)
    assert naive[noisy].sum() > 0.5, "without the noise, the noisy half takes most draws"
    assert aware[hard].sum() > 2 * naive[hard].sum()
    assert aware[hard].mean() > 2 * aware[noisy].mean(), "per unit, the model's hard units lead"
    assert naive[hard].mean() < naive[noisy].mean()


def test_noise_must_match_the_errors():
    sampler = Sampler(10, "error_weighted", seed=0)
    with pytest.raises(ValueError, match="noise must be a tensor shaped like errors"):
        sampler.update(torch.arange(3), torch.ones(3), 0, noise=torch.ones(2))
