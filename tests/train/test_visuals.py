"""Maps for display: sampling densities built at display size, band by band."""

from __future__ import annotations

import torch

from foveate.sampling import Sampler
from foveate.train.visuals import density_map


def test_density_map_pools_bands_to_display_size_and_matches_the_full_distribution():
    sampler = Sampler((2, 30, 40), "error_weighted", warmup_iterations=0, update_frequency=1, seed=0)
    ids = torch.arange(2 * 30 * 40)
    sampler.update(ids, torch.rand(ids.numel(), generator=torch.Generator().manual_seed(3)), 0)
    full = sampler.probabilities().view(2, 30, 40) * sampler.num_units
    # Both images side by side (30 x 80), halved to at most 40 pixels a side: 2 x 2 blocks averaged.
    banded = density_map(sampler, images=2, max_side=40, band_pixels=4 * 40)
    expected = torch.nn.functional.avg_pool2d(full.permute(1, 0, 2).reshape(1, 30, 80), 2)[0]
    assert banded.shape == (15, 40)
    torch.testing.assert_close(banded, expected)
