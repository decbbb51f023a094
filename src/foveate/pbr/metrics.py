"""Validation metrics of predicted PBR maps, per sample and over a validation set (NeuroPBR's set).

Albedo, roughness and metallic get PSNR, SSIM, MAE and RMSE (values in [0, 1]); the normal map gets
MAE and RMSE over its vector components, the mean cosine similarity to the true normal (the unit
in which multi-view estimation papers quote normals, e.g. 0.970 on ABO), and the angle between the
two normals in degrees: mean, median, 90th and 95th percentile over every pixel. ``overall_psnr``
and ``overall_ssim`` average albedo's, roughness's and metallic's (NeuroPBR's definition: normals
have no PSNR or SSIM there), ``overall_mae`` averages all four maps' MAE.

Set-level values are means of per-sample values (so RMSE and PSNR are averaged per image, not
pooled over pixels as NeuroPBR's batch-level numbers are). PSNR is capped at 100 dB as NeuroPBR
caps it. SSIM is :func:`foveate.train.metrics.ssim_per_image` (torchmetrics' definition).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from foveate.train.metrics import psnr_from_mse, ssim_per_image

from .losses import ShadeFn, render_per_light

__all__ = [
    "ANGLE_BIN_DEG",
    "MetricAccumulator",
    "angle_statistics",
    "evaluate",
    "mae",
    "normal_angles",
    "normal_cosine",
    "per_sample_metrics",
    "psnr",
    "quantiles",
    "rendering_rmse",
    "rmse",
    "ssim",
]

SCALAR_MAPS = ("albedo", "roughness", "metallic")
"""Maps with values in [0, 1], scored by PSNR and SSIM."""

PSNR_CAP_DB = 100.0
ANGLE_QUANTILES = {"median": 0.5, "p90": 0.9, "p95": 0.95}
ANGLE_BIN_DEG = 0.01
"""Bin width of :class:`MetricAccumulator`'s angle histogram: its percentiles are within this of the exact ones."""


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).flatten(1)


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean absolute error of ``(B, ...)`` tensors."""
    return (_flat(pred) - _flat(target)).abs().mean(dim=1)


def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` root mean squared error of ``(B, ...)`` tensors."""
    return (_flat(pred) - _flat(target)).square().mean(dim=1).sqrt()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` PSNR in dB of ``(B, ...)`` images in [0, 1], at most 100 dB (identical images)."""
    mse = (_flat(pred) - _flat(target)).square().mean(dim=1)
    return psnr_from_mse(mse.clamp_min(10.0 ** (-PSNR_CAP_DB / 10.0)))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` SSIM of ``(B, C, H, W)`` images in [0, 1] (11 x 11 Gaussian window, sigma 1.5; H, W >= 11)."""
    return ssim_per_image(pred.to(torch.float32).permute(0, 2, 3, 1), target.to(torch.float32).permute(0, 2, 3, 1))


def normal_angles(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` angle in degrees between ``(B, 3, H, W)`` normals (any length; zero vectors give 90).

    ``atan2(|a x b|, a . b)`` rather than ``acos``, which loses float32 precision near 0 degrees.
    """
    a, b = pred.to(torch.float32), target.to(torch.float32)
    cross = torch.linalg.vector_norm(torch.cross(a, b, dim=1), dim=1)
    return torch.rad2deg(torch.atan2(cross, (a * b).sum(dim=1)))


def normal_cosine(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(B,)`` mean over pixels of the cosine similarity of ``(B, 3, H, W)`` normals."""
    cosine = torch.nn.functional.cosine_similarity(pred.to(torch.float32), target.to(torch.float32), dim=1, eps=eps)
    return cosine.flatten(1).mean(dim=1)


def quantiles(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Exact quantiles of a flat tensor, linearly interpolated as ``numpy.quantile`` does, for any size.

    ``torch.quantile`` refuses more than 2**24 values (a batch of four 2048 x 2048 maps); this sorts.
    """
    ordered = values.flatten().sort().values
    position = q.to(ordered.device, torch.float64) * (ordered.numel() - 1)
    low = position.floor().long()
    high = position.ceil().long()
    fraction = (position - low).to(ordered.dtype)
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def angle_statistics(angles: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean, median, 90th and 95th percentile of angles over every element, exactly."""
    stats = quantiles(angles, torch.tensor(list(ANGLE_QUANTILES.values())))
    return {"mean": angles.to(torch.float64).mean(), **dict(zip(ANGLE_QUANTILES, stats, strict=True))}


def per_sample_metrics(pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every per-sample metric, ``{name: (B,)}``: ``<map>_{psnr,ssim,mae,rmse}``, ``normal_{mae,rmse,cosine}``."""
    out: dict[str, torch.Tensor] = {}
    for name in SCALAR_MAPS:
        p, t = pred[name], target[name]
        out.update({f"{name}_psnr": psnr(p, t), f"{name}_ssim": ssim(p, t)})
        out.update({f"{name}_mae": mae(p, t), f"{name}_rmse": rmse(p, t)})
    out["normal_mae"] = mae(pred["normal"], target["normal"])
    out["normal_rmse"] = rmse(pred["normal"], target["normal"])
    out["normal_cosine"] = normal_cosine(pred["normal"], target["normal"])
    return out


def _with_overall(means: dict[str, float]) -> dict[str, float]:
    means["overall_psnr"] = sum(means[f"{name}_psnr"] for name in SCALAR_MAPS) / len(SCALAR_MAPS)
    means["overall_ssim"] = sum(means[f"{name}_ssim"] for name in SCALAR_MAPS) / len(SCALAR_MAPS)
    means["overall_mae"] = sum(means[f"{name}_mae"] for name in (*SCALAR_MAPS, "normal")) / (len(SCALAR_MAPS) + 1)
    return means


@torch.no_grad()
def evaluate(pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """One batch's metrics as floats, named as NeuroPBR's ``val/`` tags without the prefix.

    Per-sample metrics are averaged over the batch; ``normal_angle_{mean,median,p90,p95}`` are exact
    over all pixels of the batch. For many batches use :class:`MetricAccumulator`.
    """
    values = {name: value.mean() for name, value in per_sample_metrics(pred, target).items()}
    angles = angle_statistics(normal_angles(pred["normal"], target["normal"]))
    values.update({f"normal_angle_{name}": value for name, value in angles.items()})
    as_floats = torch.stack([value.to(torch.float64) for value in values.values()]).tolist()  # one sync
    return _with_overall(dict(zip(values, as_floats, strict=True)))


@torch.no_grad()
def rendering_rmse(
    pred: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    shade_fn: ShadeFn,
    lights: tuple[torch.Tensor, torch.Tensor | float, torch.Tensor],
) -> torch.Tensor:
    """``(B,)`` RMSE between renderings of ``pred`` and ``target`` under fixed lights, radiance clamped to [0, 1].

    ``lights`` is ``(light_positions (B, L, 3), light_intensity, view_positions (B, 3))``; each light
    makes its own rendering (:func:`~foveate.pbr.losses.render_per_light`) and the RMSE runs over
    all of them. Clamping to [0, 1] scores what a display (or an 8-bit image) shows.
    """
    positions, intensity, views = lights
    pred_render, target_render = (
        render_per_light(maps, shade_fn, positions, intensity, views).clamp(0.0, 1.0) for maps in (pred, target)
    )
    return rmse(pred_render, target_render)


class MetricAccumulator:
    """Streams :func:`evaluate`'s metrics over many batches without host syncs until :meth:`compute`.

    Per-sample metrics are summed (float64) and averaged over all samples at the end; :meth:`add`
    streams any other per-sample metric the same way (``render_rmse``, say). Normal angles go into a
    fixed histogram of ``ANGLE_BIN_DEG`` (0.01 degree) bins over [0, 180]: the mean angle is exact (a
    running sum); the median and percentiles interpolate, as numpy does, between the two order
    statistics around their rank, each placed within its bin, so they are within 0.01 degrees of the
    exact values whatever the number of pixels.

    Examples:
        >>> metrics = MetricAccumulator()
        >>> for pred, target in batches:  # doctest: +SKIP
        ...     metrics.update(pred, target)
        >>> metrics.compute()["normal_angle_median"]  # doctest: +SKIP
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.bins = round(180.0 / ANGLE_BIN_DEG)
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen."""
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.angle_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.histogram = torch.zeros(self.bins, dtype=torch.int64, device=self.device)

    def add(self, name: str, values: torch.Tensor) -> None:
        """Stream one batch of a per-sample metric ``(B,)``; :meth:`compute` reports its mean over samples."""
        total = values.detach().to(self.device, torch.float64).sum()
        self.sums[name] = self.sums[name] + total if name in self.sums else total
        self.counts[name] = self.counts.get(name, 0) + values.numel()

    @torch.no_grad()
    def update(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> None:
        """Add one batch of predicted and true maps."""
        for name, values in per_sample_metrics(pred, target).items():
            self.add(name, values)
        angles = normal_angles(pred["normal"], target["normal"]).flatten().to(self.device)
        self.angle_sum += angles.to(torch.float64).sum()
        index = (angles / ANGLE_BIN_DEG).long().clamp_(0, self.bins - 1)
        self.histogram.index_put_((index,), torch.ones_like(index), accumulate=True)

    def _order_statistic(self, rank: torch.Tensor) -> torch.Tensor:
        """The ``rank``-th smallest angle (integer ranks), placed evenly within its bin: off by under one bin."""
        counts = self.histogram.to(torch.float64)
        cumulative = counts.cumsum(0)
        bin_index = torch.searchsorted(cumulative, rank, right=True).clamp_(max=self.bins - 1)
        before = cumulative[bin_index] - counts[bin_index]
        inside = ((rank - before + 0.5) / counts[bin_index].clamp_min(1.0)).clamp_(0.0, 1.0)
        return (bin_index.to(torch.float64) + inside) * ANGLE_BIN_DEG

    def _histogram_quantiles(self, q: torch.Tensor) -> torch.Tensor:
        """Quantiles by numpy's linear rule between the two order statistics around each rank."""
        rank = q.to(self.device, torch.float64) * (self.histogram.sum() - 1)
        low, high = self._order_statistic(rank.floor()), self._order_statistic(rank.ceil())
        return low + (high - low) * (rank - rank.floor())

    def compute(self) -> dict[str, float]:
        """Metrics over every batch seen, named as :func:`evaluate` names them, plus those given to :meth:`add`."""
        if "normal_mae" not in self.sums:
            raise RuntimeError("MetricAccumulator.compute() before any update()")
        values = {name: total / self.counts[name] for name, total in self.sums.items()}
        values["normal_angle_mean"] = self.angle_sum / self.histogram.sum()
        stats = self._histogram_quantiles(torch.tensor(list(ANGLE_QUANTILES.values()), dtype=torch.float64))
        values.update({f"normal_angle_{name}": value for name, value in zip(ANGLE_QUANTILES, stats, strict=True)})
        as_floats = torch.stack(list(values.values())).tolist()  # the one host sync
        return _with_overall(dict(zip(values, as_floats, strict=True)))
