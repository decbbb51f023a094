"""PBR validation metrics against hand computations, torchmetrics and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional import mean_absolute_error
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from foveate.pbr.metrics import (
    MetricAccumulator,
    evaluate,
    mae,
    normal_angles,
    normal_cosine,
    per_sample_metrics,
    psnr,
    quantiles,
    rendering_rmse,
    rmse,
    ssim,
)

from .helpers import random_maps

EXPECTED_KEYS = {
    *(f"{name}_{metric}" for name in ("albedo", "roughness", "metallic") for metric in ("psnr", "ssim", "mae", "rmse")),
    "normal_mae",
    "normal_rmse",
    "normal_cosine",
    "normal_angle_mean",
    "normal_angle_median",
    "normal_angle_p90",
    "normal_angle_p95",
    "overall_psnr",
    "overall_ssim",
    "overall_mae",
}


def random_maps_tilted(batch: int = 2, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_maps(batch, size, seed, tilt=1.5)


def normals_at(angles_deg: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 1, N) normals: +z, and +z turned about y by each angle."""
    radians = torch.tensor(angles_deg, dtype=torch.float64).deg2rad()
    up = torch.zeros(1, 3, 1, len(angles_deg), dtype=torch.float64)
    up[:, 2] = 1.0
    turned = torch.stack((radians.sin(), torch.zeros_like(radians), radians.cos())).view(1, 3, 1, -1)
    return turned.float(), up.float()


def test_psnr_mae_rmse_by_hand():
    pred, target = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    target[0] = 0.1  # mse 0.01: 20 dB
    target[1, :, :2] = 0.5  # half the pixels off by 0.5: mse 0.125, mae 0.25
    assert torch.allclose(psnr(pred, target), torch.tensor([20.0, 10 * math.log10(8.0)]))
    assert torch.allclose(mae(pred, target), torch.tensor([0.1, 0.25]))
    assert torch.allclose(rmse(pred, target), torch.tensor([0.1, math.sqrt(0.125)]))
    assert torch.allclose(psnr(pred, pred), torch.full((2,), 100.0))  # capped, as NeuroPBR caps it


def test_psnr_ssim_mae_match_torchmetrics_per_sample():
    pred, target = random_maps_tilted(3, 24, 0)["albedo"], random_maps_tilted(3, 24, 1)["albedo"]
    tm_psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    tm_ssim = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    assert torch.allclose(psnr(pred, target), tm_psnr, atol=1e-4)
    assert torch.allclose(ssim(pred, target), tm_ssim, atol=1e-5)
    assert torch.allclose(
        mae(pred, target), torch.stack([mean_absolute_error(p, t) for p, t in zip(pred, target, strict=True)])
    )


def test_normal_angles_by_hand_including_tiny_angles():
    pred, target = normals_at([0.0, 0.001, 45.0, 90.0, 180.0])
    angles = normal_angles(pred, target)
    assert angles.shape == (1, 1, 5)
    assert torch.allclose(angles.flatten(), torch.tensor([0.0, 0.001, 45.0, 90.0, 180.0]), atol=1e-4)
    assert torch.allclose(normal_angles(2.5 * pred, target), angles, atol=1e-4)  # lengths do not matter


def test_normal_angles_match_numpy_arccos_in_double():
    pred, target = random_maps_tilted(2, 16, 0)["normal"], random_maps_tilted(2, 16, 1)["normal"]
    a, b = pred.double().numpy(), target.double().numpy()
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert np.allclose(normal_angles(pred, target).numpy(), np.degrees(np.arccos(np.clip(cosine, -1, 1))), atol=1e-3)


def test_normal_cosine_by_hand():
    pred, target = normals_at([0.0, 90.0, 60.0, 180.0])
    assert torch.allclose(normal_cosine(pred, target), torch.tensor([(1.0 + 0.0 + 0.5 - 1.0) / 4]), atol=1e-6)


@pytest.mark.parametrize("count", [1, 2, 7, 1000])
def test_quantiles_match_numpy(count):
    values = torch.rand(count, generator=torch.Generator().manual_seed(count))
    q = torch.tensor([0.0, 0.5, 0.9, 0.95, 1.0])
    assert np.allclose(quantiles(values, q).numpy(), np.quantile(values.numpy(), q.numpy()), atol=1e-6)


def test_evaluate_names_and_values():
    pred, target = random_maps_tilted(2, 16, 0), random_maps_tilted(2, 16, 1)
    metrics = evaluate(pred, target)
    assert set(metrics) == EXPECTED_KEYS
    assert all(isinstance(value, float) for value in metrics.values())
    per_sample = per_sample_metrics(pred, target)
    assert math.isclose(metrics["albedo_rmse"], float(per_sample["albedo_rmse"].mean()), rel_tol=1e-6)
    scalar_maps = ("albedo", "roughness", "metallic")
    assert math.isclose(metrics["overall_psnr"], sum(metrics[f"{m}_psnr"] for m in scalar_maps) / 3, rel_tol=1e-9)
    assert math.isclose(metrics["overall_ssim"], sum(metrics[f"{m}_ssim"] for m in scalar_maps) / 3, rel_tol=1e-9)
    maes = [metrics[f"{m}_mae"] for m in (*scalar_maps, "normal")]
    assert math.isclose(metrics["overall_mae"], sum(maes) / 4, rel_tol=1e-9)
    angles = normal_angles(pred["normal"], target["normal"]).double().numpy().ravel()
    for name, q in {"median": 50, "p90": 90, "p95": 95}.items():
        assert math.isclose(metrics[f"normal_angle_{name}"], np.percentile(angles, q), abs_tol=1e-4)
    assert math.isclose(metrics["normal_angle_mean"], angles.mean(), abs_tol=1e-6)


def test_evaluate_of_a_perfect_prediction():
    maps = random_maps_tilted(2, 16, 0)
    metrics = evaluate(maps, maps)
    assert metrics["overall_psnr"] == pytest.approx(100.0)
    assert metrics["overall_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["normal_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["normal_angle_p95"] == pytest.approx(0.0, abs=1e-3)


def test_accumulator_over_batches_matches_evaluate_over_all_of_them():
    batches = [(random_maps_tilted(2, 16, 2 * i), random_maps_tilted(2, 16, 2 * i + 1)) for i in range(3)]
    accumulator = MetricAccumulator()
    for pred, target in batches:
        accumulator.update(pred, target)
        accumulator.add("render_rmse", torch.tensor([0.1, 0.3]))
    streamed = accumulator.compute()
    pred_all, target_all = ({name: torch.cat([b[k][name] for b in batches]) for name in batches[0][k]} for k in (0, 1))
    whole = evaluate(pred_all, target_all)
    assert set(streamed) == EXPECTED_KEYS | {"render_rmse"}
    assert streamed["render_rmse"] == pytest.approx(0.2)
    for name in EXPECTED_KEYS - {"normal_angle_median", "normal_angle_p90", "normal_angle_p95"}:
        assert streamed[name] == pytest.approx(whole[name], rel=1e-5, abs=1e-6), name
    for name in ("normal_angle_median", "normal_angle_p90", "normal_angle_p95"):  # the histogram's 0.01 degree bins
        assert abs(streamed[name] - whole[name]) <= 0.01, name
    accumulator.reset()
    with pytest.raises(RuntimeError, match="before any update"):
        accumulator.compute()


def lambertian(maps, light_positions, light_intensity, view_positions):
    """A stand-in renderer of shade_plane's signature: albedo x intensity x cos to each (directional) light."""
    directions = F.normalize(light_positions, dim=-1)
    cosine = torch.einsum("bchw,blc->blhw", maps["normal"], directions).clamp_min(0.0)
    return maps["albedo"] * light_intensity * cosine.sum(dim=1, keepdim=True)


def test_rendering_rmse_by_hand_with_a_lambertian_stand_in():
    maps = {
        name: torch.zeros(2, c, 4, 4) for name, c in (("albedo", 3), ("roughness", 1), ("metallic", 1), ("normal", 3))
    }
    maps["normal"][:, 2] = 1.0
    pred = {**maps, "albedo": torch.full((2, 3, 4, 4), 0.2)}
    target = {**maps, "albedo": torch.full((2, 3, 4, 4), 0.5)}
    up, slanted = [0.0, 0.0, 2.0], [2.0, 0.0, 2.0]  # cosines 1 and 1/sqrt(2)
    lights = (torch.tensor([[up, slanted]] * 2), 1.0, torch.tensor([[0.0, 0.0, 2.0]] * 2))
    # two renderings per sample: albedo x cosine (clamped to [0, 1]); errors 0.3 and 0.3 / sqrt(2)
    expected = math.sqrt((0.09 + 0.045) / 2)
    assert torch.allclose(rendering_rmse(pred, target, lambertian, lights), torch.full((2,), expected))
    bright = (lights[0], 4.0, lights[2])  # the target's renderings (2 and 1.41) clip at 1: errors 0.2 and 1 - 0.57
    expected = math.sqrt((0.2**2 + (1.0 - 0.8 / math.sqrt(2)) ** 2) / 2)
    assert torch.allclose(rendering_rmse(pred, target, lambertian, bright), torch.full((2,), expected), atol=1e-6)
