"""The image field: fit a photograph with a hash-grid encoding and a small MLP.

Units are pixels (sampler shape ``(1, H, W)``); a pixel's loss is its squared colour error,
averaged over channels. Positions and colours of a batch are computed from the pixel ids,
so the only per-pixel memory is the image itself and the sampler's statistics.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from foveate.data import Photo, load_photo
from foveate.models import HashGrid, NeuralField
from foveate.train import (
    ImageQuality,
    OptimConfig,
    SamplingConfig,
    TrainConfig,
    Validation,
    apply_changes,
    lpips_unavailable_reason,
)

from .registry import PipelineSpec, register_pipeline, train_command

__all__ = [
    "PRESETS",
    "SPEC",
    "FieldConfig",
    "ImageConfig",
    "ImageFieldTask",
    "build_task",
    "preset",
    "run_name",
    "train_main",
]

RENDER_CHUNK = 1 << 18
"""Pixels evaluated per forward pass when rendering the whole image."""
BAND_PIXELS = 1 << 21
"""Pixels per band of rows in validation: bounds its float memory at any image size."""
DISPLAY_SIDE = 512
"""Longest side of the images validation returns for logs and reports."""


@dataclass
class FieldConfig:
    """The hash-grid field's architecture."""

    levels: int = 16
    log2_table_size: int = 19
    """log2 of the most hash-table rows per level (smaller tables force collisions)."""
    features_per_level: int = 2
    base_resolution: int = 16
    finest_resolution: int = 0
    """Cells per side of the finest level; 0: the image's longer side."""
    hidden: int = 64
    hidden_layers: int = 2


@dataclass
class ImageConfig:
    """Fit one photograph: a bundled scikit-image photo by name, or a PNG/JPEG/TIFF path."""

    image: str = "astronaut"
    """A bundled photo (astronaut, retina, hubble_deep_field, coffee, ...) or an image file."""
    ssim: bool = True
    """Compute SSIM at each validation (PSNR always); SSIM costs about as much as a render on CPU."""
    model: FieldConfig = field(default_factory=FieldConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000, batch_size=65536))
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def _preset(**changes: object) -> ImageConfig:
    return apply_changes(ImageConfig(), changes)


PRESETS: dict[str, ImageConfig] = {
    # FIELD_NOTES section 7's field and batch (sized for a GPU: 65,536 pixels per step), with a
    # cosine decay instead of its constant learning rate, under which every strategy oscillates late.
    "default": _preset(),
    # Sized for a few-core CPU: a 512^2 photo in about a minute.
    "cpu": _preset(train__steps=600, train__batch_size=16384, train__validate_every=50, train__log_every=10),
    # Capacity-limited: a small hash table makes the fine levels collide.
    "capacity": _preset(model__log2_table_size=14),
    # For tests and smoke runs: seconds on any machine.
    "tiny": _preset(
        image="astronaut",
        model__levels=4,
        model__log2_table_size=10,
        model__hidden=16,
        model__hidden_layers=1,
        train__steps=20,
        train__batch_size=256,
        train__validate_every=10,
        train__log_every=5,
        train__checkpoint_every=10,
        train__sampler_stats_every=10,
        sampling__warmup_iterations=2,
        sampling__update_frequency=2,
    ),
}


class ImageFieldTask:
    """The loop's view of an image fit: model, per-pixel loss and whole-image validation.

    Args:
        photo: the photograph (kept in its own sample type).
        config: the field's architecture.
        device: where the photo and the model live.
        ssim: compute SSIM at validation as well as PSNR.
    """

    name = "image"
    best_metric = "psnr"
    loss_is_mse = True
    _lpips_noted = False

    def __init__(self, photo: Photo, config: FieldConfig, device: torch.device, ssim: bool = True) -> None:
        self.photo = photo.to(device)
        self.device = device
        self.ssim = ssim
        finest = config.finest_resolution or max(photo.height, photo.width)
        encoding = HashGrid(
            dims=2,
            levels=config.levels,
            log2_table_size=config.log2_table_size,
            features_per_level=config.features_per_level,
            base_resolution=min(config.base_resolution, finest),
            finest_resolution=finest,
        )
        self.model = NeuralField(encoding, photo.channels, config.hidden, config.hidden_layers).to(device)
        self.unit_shape = photo.unit_shape
        self.maps: dict[str, torch.Tensor] = {}

    def per_unit_loss(self, ids: torch.Tensor) -> torch.Tensor:
        prediction = self.model(self.photo.points(ids)).float()
        return (prediction - self.photo.colors(ids)).square().mean(dim=1)

    def render_rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``[start, stop)`` of the model's image, (rows, W, C) float32 (not clamped)."""
        width = self.photo.width
        ids = torch.arange(start * width, stop * width, device=self.device)
        values = [self.model(self.photo.points(chunk)).float() for chunk in ids.split(RENDER_CHUNK)]
        return torch.cat(values).view(stop - start, width, -1)

    def validate(self) -> Validation:
        """PSNR and SSIM over the whole image, and display-size prediction and error maps.

        The image is rendered in bands of rows whose height is a multiple of the display
        reduction factor, so the area-averaged maps tile exactly.
        """
        photo = self.photo
        factor = max(1, math.ceil(max(photo.height, photo.width) / DISPLAY_SIDE))
        band = max(factor, BAND_PIXELS // photo.width // factor * factor)
        quality = ImageQuality(self.device, ssim=self.ssim)
        predictions, errors = [], []
        for start in range(0, photo.height, band):
            stop = min(start + band, photo.height)
            prediction = self.render_rows(start, stop).clamp(0.0, 1.0)
            target = photo.rows(start, stop)
            quality.update(prediction, target)
            error = (prediction - target).square().mean(dim=2)
            predictions.append(_pool(prediction.permute(2, 0, 1), factor).permute(1, 2, 0))
            errors.append(_pool(error[None], factor)[0])
        metrics = quality.compute()
        prediction, error = torch.cat(predictions), torch.cat(errors)
        self.maps = {"prediction": prediction, "error": error}
        self._note_lpips()
        error_image = (error / error.max().clamp(min=1e-12)).sqrt()[..., None]
        return Validation(metrics, {"prediction": prediction, "error": error_image})

    def export(self, run_dir: Path) -> None:
        """Write the full-resolution reconstruction (8-bit PNG) and the error map to ``renders/``."""
        from PIL import Image

        renders = run_dir / "renders"
        renders.mkdir(parents=True, exist_ok=True)
        photo = self.photo
        band = max(1, BAND_PIXELS // photo.width)
        rows = []
        with torch.no_grad():
            for start in range(0, photo.height, band):
                stop = min(start + band, photo.height)
                rows.append((self.render_rows(start, stop).clamp(0, 1) * 255).round().to(torch.uint8).cpu())
        image = torch.cat(rows).numpy()
        Image.fromarray(image[:, :, 0] if photo.channels == 1 else image).save(renders / "prediction.png")
        if "error" in self.maps:
            error = self.maps["error"]
            scaled = (error / error.max().clamp(min=1e-12)).sqrt()
            Image.fromarray((scaled * 255).round().to(torch.uint8).cpu().numpy()).save(renders / "error.png")

    @classmethod
    def _note_lpips(cls) -> None:
        if cls._lpips_noted:
            return
        cls._lpips_noted = True
        reason = lpips_unavailable_reason()
        if reason is not None:
            from rich.console import Console

            Console(stderr=True).print(f"[dim]note: {reason}[/]", highlight=False)


def _pool(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-average (C, H, W) by ``factor`` (partial edge cells are averaged over what exists)."""
    if factor == 1:
        return image
    return F.avg_pool2d(image[None], factor, ceil_mode=True, count_include_pad=False)[0]


def build_task(config: ImageConfig, device: torch.device) -> ImageFieldTask:
    """Load the photo named by ``config.image`` and build its field on ``device``."""
    return ImageFieldTask(load_photo(config.image), config.model, device, ssim=config.ssim)


def run_name(config: ImageConfig) -> str:
    stem = Path(config.image).stem if Path(config.image).suffix else config.image
    return f"{stem}-{config.sampling.strategy}"


def preset(name: str, **overrides: object) -> ImageConfig:
    """A copy of the named preset with ``section__field=value`` overrides applied."""
    return apply_changes(copy.deepcopy(PRESETS[name]), overrides)


SPEC = register_pipeline(
    PipelineSpec(
        name="image",
        config_type=ImageConfig,
        presets=PRESETS,
        build_task=build_task,
        run_name=run_name,
        description="Fit a photograph with a hash-grid neural field, drawing pixels by their error.",
    )
)


def train_main(argv: Sequence[str]) -> int:
    """``foveate train image``."""
    return train_command("image", argv)
