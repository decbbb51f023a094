"""Image quality metrics for validation: PSNR and SSIM via torchmetrics, streamed band by band.

Large images are rendered and scored in bands of rows, so validation never holds a float
copy of the whole image. PSNR is exact over the image; SSIM is the mean of the bands' SSIM
(exactly the image's SSIM when it fits in one band).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SSIM_MIN_SIDE", "ImageQuality", "psnr_from_mse", "ssim_per_image"]

SSIM_MIN_SIDE = 11
"""SSIM's Gaussian window: bands (and images) smaller than this get no SSIM."""


def psnr_from_mse(mse: torch.Tensor | float, data_range: float = 1.0) -> torch.Tensor | float:
    """PSNR in dB of a mean squared error, for signals spanning ``data_range``."""
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(data_range**2 / mse.clamp(min=1e-20))
    return 10.0 * math.log10(data_range**2 / max(mse, 1e-20))


def ssim_per_image(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """``(B,)`` SSIM of ``(B, H, W, C)`` images, differentiable: torchmetrics' definition, computed separably.

    An 11 x 11 Gaussian window (sigma 1.5), ``k1 = 0.01``, ``k2 = 0.03``, the images reflected by 5
    pixels at their borders and the index averaged over every pixel and channel, as torchmetrics'
    ``structural_similarity_index_measure`` does. The window is applied as two 1-D passes instead of
    one 11 x 11 kernel: the same numbers (to float rounding) for about half the time of a step,
    forward and backward, which is what a training loss on a CPU needs.
    """
    if prediction.shape != target.shape or prediction.dim() != 4:
        raise ValueError(
            f"need two (B, H, W, C) images of one shape, got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    if min(prediction.shape[1], prediction.shape[2]) < SSIM_MIN_SIDE:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_MIN_SIDE} x {SSIM_MIN_SIDE}, got {tuple(prediction.shape[1:3])}"
        )
    pad = SSIM_MIN_SIDE // 2
    x = torch.nn.functional.pad(prediction.permute(0, 3, 1, 2), (pad, pad, pad, pad), mode="reflect")
    y = torch.nn.functional.pad(target.permute(0, 3, 1, 2).to(prediction.dtype), (pad, pad, pad, pad), mode="reflect")
    channels = x.shape[1]
    offsets = torch.arange(SSIM_MIN_SIDE, dtype=x.dtype, device=x.device) - pad
    gauss = torch.exp(-(offsets**2) / (2 * 1.5**2))
    gauss = gauss / gauss.sum()
    maps = torch.cat((x, y, x * x, y * y, x * y), dim=1)
    groups = 5 * channels
    blurred = torch.nn.functional.conv2d(maps, gauss.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    blurred = torch.nn.functional.conv2d(blurred, gauss.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
    mu_x, mu_y, xx, yy, xy = blurred.split(channels, dim=1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(1, 2, 3))


class ImageQuality:
    """Accumulates PSNR and SSIM over bands of an image, (rows, W, C) float tensors in [0, 1]."""

    def __init__(self, device: torch.device | str, ssim: bool = True) -> None:
        try:
            from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
        except ImportError as error:
            raise ImportError("validation metrics need torchmetrics: pip install 'foveate[train]'") from error
        self.psnr = PeakSignalNoiseRatio(data_range=1.0, sync_on_compute=False).to(device)
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0, sync_on_compute=False).to(device)
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
