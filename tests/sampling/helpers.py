"""Statistical helpers for sampling tests."""

from __future__ import annotations

import math

import torch


def chi_square_ok(observed: torch.Tensor, expected_probability: torch.Tensor, draws: int) -> tuple[bool, float]:
    """Pearson's chi-square against expected probabilities, at about p = 1e-6.

    Bins with tiny expectation are pooled into one so the statistic stays valid.
    """
    observed = observed.double().cpu()
    expected = expected_probability.double().cpu() * draws
    small = expected < 5
    if small.any():
        observed = torch.cat([observed[~small], observed[small].sum().view(1)])
        expected = torch.cat([expected[~small], expected[small].sum().view(1)])
    keep = expected > 0
    statistic = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    dof = int(keep.sum()) - 1
    return statistic <= dof + 7.0 * math.sqrt(2.0 * dof) + 10.0, statistic
