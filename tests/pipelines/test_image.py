"""The image-field pipeline: per-pixel loss, validation, registry and a short fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foveate.data import load_photo
from foveate.pipelines import get_pipeline, run_pipeline
from foveate.pipelines.image import ImageFieldTask, preset

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture
def small_png(tmp_path):
    y, x = np.mgrid[0:20, 0:28]
    rgb = np.stack([x * 9, y * 12, (x * y) % 256], axis=2).astype(np.uint8)
    path = tmp_path / "small.png"
    PIL.fromarray(rgb).save(path)
    return path


def test_per_unit_loss_is_the_squared_error_of_each_pixel(small_png):
    torch.manual_seed(0)
    task = ImageFieldTask(load_photo(small_png), preset("tiny").model, torch.device("cpu"))
    ids = torch.tensor([0, 27, 28, 559])
    loss = task.per_unit_loss(ids)
    with torch.no_grad():
        prediction = task.model(task.photo.points(ids))
    expected = (prediction - task.photo.colors(ids)).square().mean(dim=1)
    torch.testing.assert_close(loss.detach(), expected)
    assert task.unit_shape == (1, 20, 28)


def test_full_validation_scores_the_whole_image_and_returns_pictures_and_maps(small_png):
    task = ImageFieldTask(load_photo(small_png), preset("tiny").model, torch.device("cpu"))
    with torch.no_grad():
        validation = task.validate(full=True)
        full = task.render_rows(0, 20).clamp(0, 1)
    mse = (full - task.photo.rows(0, 20)).square().mean()
    assert validation.metrics["psnr"] == pytest.approx(float(-10 * torch.log10(mse)), rel=1e-5)
    assert 0.0 <= validation.metrics["ssim"] <= 1.0
    assert validation.maps["error"].shape == (20, 28)
    assert validation.images["prediction"].shape == (20, 28, 3)
    torch.testing.assert_close(validation.images["target"], task.photo.rows(0, 20))


def test_quick_validation_scores_a_fixed_subset_of_pixels(small_png, monkeypatch):
    import foveate.pipelines.image as image_module

    monkeypatch.setattr(image_module, "QUICK_PIXELS", 100)
    task = ImageFieldTask(load_photo(small_png), preset("tiny").model, torch.device("cpu"))
    assert task.quick_ids.shape == (100,) and bool((task.quick_ids[1:] > task.quick_ids[:-1]).all())
    with torch.no_grad():
        quick = task.validate(full=False)
        error = (task.render_rows(0, 20).reshape(-1, 3)[task.quick_ids] - task.photo.colors(task.quick_ids)).square()
    assert quick.metrics["psnr"] == pytest.approx(float(-10 * torch.log10(error.mean())), rel=1e-5)
    assert not quick.images and not quick.maps


def test_short_fit_improves_psnr_and_fills_the_run_directory(small_png, tmp_path):
    config = preset(
        "tiny",
        image=str(small_png),
        train__steps=60,
        train__batch_size=128,
        train__validate_every=30,
        train__runs_dir=str(tmp_path / "runs"),
        train__name="fit",
        train__progress=False,
        optim__lr=0.05,
    )
    result, trainer = run_pipeline(get_pipeline("image"), config)
    assert result.status == "completed"
    psnrs = [record["psnr"] for record in result.history]
    assert psnrs[-1] > psnrs[0] + 3.0
    assert [r["step"] for r in result.history] == [0, 30, 60] and [r["step"] for r in result.full_history] == [60]
    run = tmp_path / "runs" / "image" / "fit"
    assert trainer.run_dir == run
    assert {"config.yaml", "stats.jsonl", "error_sampling_stats.json", "checkpoints", "tb", "renders"} <= {
        p.name for p in run.iterdir()
    }
    render = np.asarray(PIL.open(run / "renders" / "prediction.png"))
    assert render.shape == (20, 28, 3)
    with pytest.raises(Exception, match="already holds a run"):
        run_pipeline(get_pipeline("image"), config)


def test_validation_in_bands_with_reduced_maps_matches_a_single_band(small_png, monkeypatch):
    import foveate.pipelines.image as image_module

    task = ImageFieldTask(load_photo(small_png), preset("tiny").model, torch.device("cpu"))
    with torch.no_grad():
        whole = task.validate(full=True)
        monkeypatch.setattr(image_module, "BAND_PIXELS", 28 * 4)
        monkeypatch.setattr(image_module, "DISPLAY_SIDE", 10)
        banded = task.validate(full=True)
    assert banded.metrics["psnr"] == pytest.approx(whole.metrics["psnr"], rel=1e-5)
    assert banded.maps["error"].shape == (7, 10)
    assert banded.images["prediction"].shape == (7, 10, 3)


def test_a_missing_photo_writes_nothing(tmp_path):
    config = preset("tiny", image=str(tmp_path / "missing.png"), train__runs_dir=str(tmp_path / "runs"))
    with pytest.raises(Exception, match=r"missing\.png"):
        run_pipeline(get_pipeline("image"), config)
    assert not (tmp_path / "runs").exists()
