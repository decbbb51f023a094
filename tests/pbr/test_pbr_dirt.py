"""NeuroPBR's artefacts: deterministic, batched, in NeuroPBR's ranges."""

from __future__ import annotations

import torch

from foveate.pbr.dirt import apply_lens, lens_overlay, lens_scratches, lens_smudge, shadow_mask


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_artefacts_are_deterministic_under_a_generator():
    for make in (shadow_mask, lens_smudge, lens_scratches):
        first, again, other = make(2, 32, _seeded(0)), make(2, 32, _seeded(0)), make(2, 32, _seeded(1))
        assert first.shape == (2, 1, 32, 32)
        torch.testing.assert_close(first, again)
        assert not torch.equal(first, other), make.__name__
        assert not torch.equal(first[0], first[1]), f"{make.__name__}: the batch's samples differ"


def test_shadows_darken_to_between_point_two_and_point_four():
    factor = shadow_mask(8, 64, _seeded(2))
    assert factor.min() >= 0.2 and factor.max() <= 1.0
    darkest = factor.amin(dim=(1, 2, 3))
    assert (darkest >= 0.2).all() and (darkest <= 0.4 + 1e-6).all()  # full shadow: the sample's darkness
    lit = (factor == 1.0).flatten(1).float().mean(1)
    assert (lit > 0.05).all()  # and some light everywhere


def test_smudges_stay_faint_and_scratches_are_thin():
    smudge = lens_smudge(4, 64, _seeded(3))
    assert smudge.min() >= 0 and smudge.max() <= 0.15 + 1e-7 and smudge.max() > 0.05
    scratches = lens_scratches(4, 64, _seeded(4))
    assert scratches.min() >= 0 and scratches.max() <= 1
    assert (scratches > 0.05).float().mean() < 0.1 and scratches.max() > 0.1


def test_lens_overlay_blends_by_hand():
    smudge = torch.full((1, 1, 1, 1), 0.15)
    color, alpha = lens_overlay(smudge, torch.zeros(1, 1, 1, 1))
    torch.testing.assert_close(alpha, smudge)
    image = torch.ones(1, 3, 1, 1)
    # 1 x (1 - 0.15) + (0.8, 0.75, 0.7) x 0.15
    expected = torch.tensor([0.97, 0.9625, 0.955]).view(1, 3, 1, 1)
    torch.testing.assert_close(apply_lens(image, color, alpha), expected)
    color, alpha = lens_overlay(smudge, torch.ones(1, 1, 1, 1))
    torch.testing.assert_close(color.flatten(), torch.full((3,), 0.95))
    torch.testing.assert_close(alpha.flatten(), torch.ones(1))
