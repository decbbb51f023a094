"""Validation metrics streamed over bands, and the display helpers."""

from __future__ import annotations

import pytest
import torch

from foveate.train import ImageQuality, psnr_from_mse
from foveate.train.metrics import ssim_per_image
from foveate.train.visuals import display_size, downsample_map, normalise_log


def test_banded_psnr_equals_whole_image_psnr_and_one_band_ssim_is_exact():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(40, 30, 3, generator=generator)
    prediction = (target + 0.05 * torch.randn(40, 30, 3, generator=generator)).clamp(0, 1)
    banded = ImageQuality("cpu")
    for start in range(0, 40, 13):
        banded.update(prediction[start : start + 13], target[start : start + 13])
    whole = ImageQuality("cpu")
    whole.update(prediction, target)
    expected_psnr = float(psnr_from_mse((prediction - target).square().mean()))
    assert banded.compute()["psnr"] == pytest.approx(expected_psnr, rel=1e-5)
    assert whole.compute()["psnr"] == pytest.approx(expected_psnr, rel=1e-5)
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    reference = float(ssim(prediction.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None], data_range=1.0))
    assert whole.compute()["ssim"] == pytest.approx(reference, rel=1e-5)
    # The last band (1 row) is too small for SSIM's window and is left out of it, not of PSNR.
    assert banded.ssim_bands == 3


def test_display_maps_keep_aspect_and_average_areas():
    assert display_size(1000, 500, 100) == (100, 50)
    assert display_size(40, 30, 100) == (40, 30)
    values = torch.arange(16.0).view(4, 4)
    assert downsample_map(values, 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    logs = normalise_log(torch.tensor([1e-6, 1e-3, 1.0]))
    assert logs.tolist() == pytest.approx([0.0, 0.0, 1.0])


@pytest.mark.parametrize("shape", [(3, 11, 11, 3), (2, 40, 29, 1), (1, 96, 64, 3)])
def test_separable_ssim_is_torchmetrics_ssim_with_gradients(shape):
    from torchmetrics.functional.image import structural_similarity_index_measure

    generator = torch.Generator().manual_seed(0)
    prediction = torch.rand(*shape, generator=generator, dtype=torch.float64, requires_grad=True)
    target = (prediction.detach() + 0.2 * torch.randn(*shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    ours = ssim_per_image(prediction, target)
    theirs = structural_similarity_index_measure(
        prediction.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), data_range=1.0, reduction="none"
    )
    torch.testing.assert_close(ours, theirs)
    (ours_grad,) = torch.autograd.grad(ours.sum(), prediction)
    (theirs_grad,) = torch.autograd.grad(theirs.sum(), prediction)
    torch.testing.assert_close(ours_grad, theirs_grad)
    assert float(ssim_per_image(target, target).min()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 11"):
        ssim_per_image(prediction[:, :10], target[:, :10])
