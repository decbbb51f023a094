"""Image quality metrics for validation: PSNR and SSIM via torchmetrics, streamed band by band.

Large images are rendered and scored in bands of rows, so validation never holds a float
copy of the whole image. PSNR is exact over the image; SSIM is the mean of the bands' SSIM
(exactly the image's SSIM when it fits in one band).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SSIM_MIN_SIDE", "ImageQuality", "psnr_from_mse"]

SSIM_MIN_SIDE = 11
"""SSIM's Gaussian window: bands (and images) smaller than this get no SSIM."""


def psnr_from_mse(mse: torch.Tensor | float, data_range: float = 1.0) -> torch.Tensor | float:
    """PSNR in dB of a mean squared error, for signals spanning ``data_range``."""
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(data_range**2 / mse.clamp(min=1e-20))
    return 10.0 * math.log10(data_range**2 / max(mse, 1e-20))


class ImageQuality:
    """Accumulates PSNR and SSIM over bands of an image, (rows, W, C) float tensors in [0, 1]."""

    def __init__(self, device: torch.device | str, ssim: bool = True) -> None:
        try:
            from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
        except ImportError as error:
            raise ImportError("validation metrics need torchmetrics: pip install 'foveate[train]'") from error
        self.psnr = PeakSignalNoiseRatio(data_range=1.0).to(device)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(device)
        self.ssim_bands = 0
        self.with_ssim = ssim

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        prediction = prediction.to(torch.float32).clamp(0.0, 1.0)
        target = target.to(torch.float32)
        self.psnr.update(prediction, target)
        if self.with_ssim and min(prediction.shape[0], prediction.shape[1]) >= SSIM_MIN_SIDE:
            self.ssim.update(prediction.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None])
            self.ssim_bands += 1

    def compute(self) -> dict[str, float]:
        metrics = {"psnr": float(self.psnr.compute())}
        if self.ssim_bands:
            metrics["ssim"] = float(self.ssim.compute())
        return metrics
