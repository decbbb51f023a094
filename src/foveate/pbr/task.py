"""NeuroPBR's training on the shared loop: the generator, the discriminator and the engine over samples.

A unit is a training sample (three views and the material's four maps). Under ``uniform`` the
samples come in shuffled epochs, as NeuroPBR's data loader serves them; under the engine's
strategies the next batch is drawn by each sample's reconstruction loss (``adaptive``'s uniform
share still from the shuffled epochs). One step: the
discriminator's updates (from ``training.gan_start_epoch`` on), then the generator's on the
weighted reconstruction loss plus the adversarial term. Learning rates change per epoch, as
NeuroPBR's do: a linear warm-up from 10%, then cosine, step or plateau.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from foveate.files import atomic_write_text
from foveate.sampling import Draw
from foveate.train import CheckpointLayout, Metric, Optimization, StepOutput, Task, Validation
from foveate.train.config import RESUME_EXEMPT
from foveate.train.epochs import ShuffledEpochs

from .config import PBRConfig
from .dataset import PBRData, load_dataset, split_indices
from .discriminators import build_discriminator, discriminator_input
from .losses import (
    build_perceptual_loss,
    discriminator_loss,
    generator_gan_loss,
    reconstruction_loss,
    rendering_loss,
)
from .metrics import MetricAccumulator, mae, normal_angles, rendering_rmse, rmse
from .networks import MultiViewPBRGenerator
from .shading import shade_plane
from .visuals import comparison_grid, error_heatmaps, view_strip

__all__ = ["NEUROPBR_LAYOUT", "PBRTask", "epoch_lr_factor"]

NEUROPBR_LAYOUT = CheckpointLayout("", "latest.pth", "best_model.pth", "checkpoint_epoch_{:04d}.pth")
"""NeuroPBR's checkpoint names, in the checkpoint directory itself (numbered by epochs done)."""

REFERENCE_FIGURES = {
    "albedo_rmse": 0.129,
    "roughness_rmse": 0.063,
    "metallic_rmse": 0.170,
    "normal_cosine": 0.970,
    "render_rmse": 0.096,
}
"""Multi-view material estimation on the ABO benchmark (Collins et al., CVPR 2022): reference points on other
data, quoted beside ours, not a race."""

VALIDATION_BATCH = 8


def epoch_lr_factor(epoch: int, config: PBRConfig) -> float:
    """The learning-rate factor of ``epoch`` (0-based): NeuroPBR's warm-up from 10%, then the schedule.

    Warm-up: ``0.1 + 0.9 (epoch + 1) / W`` for ``epoch < W``. Then cosine to ``scheduler_min_lr / lr``
    over the remaining epochs, step (``gamma`` every ``step_size`` epochs), or 1 (``none``;
    ``plateau`` decays on validations instead, without a warm-up).
    """
    o = config.optimizer
    warmup = o.scheduler_warmup_epochs if o.scheduler in ("cosine", "step") else 0
    if epoch < warmup:
        return 0.1 + 0.9 * (epoch + 1) / warmup
    after = epoch - warmup
    if o.scheduler == "cosine":
        span = max(config.training.epochs - warmup, 1)
        floor = min(o.scheduler_min_lr / o.g_lr, 1.0)
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * min(after / span, 1.0))) / 2.0
    if o.scheduler == "step":
        return o.gamma ** (after // o.step_size)
    return 1.0


def _optimizer(
    kind: str, parameters: Any, lr: float, betas: tuple[float, float], decay: float
) -> torch.optim.Optimizer:
    parameters = [p for p in parameters if p.requires_grad]
    if kind == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, betas=betas, weight_decay=decay)
    if kind == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=betas, weight_decay=decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=betas[0], weight_decay=decay)


class PBRTask(Task):
    """Multi-view PBR estimation of one dataset folder, judged by the validation loss."""

    name = "pbr"
    metric = Metric("loss", higher_is_better=False, label="validation loss")
    unit_noun = "samples"
    step_noun = "steps"
    draws_units = False
    checkpoint_names = NEUROPBR_LAYOUT
    resume_exempt: ClassVar[frozenset[str]] = RESUME_EXEMPT | {
        f"training.{name}"
        for name in (
            "epochs",
            "device",
            "cpu_threads",
            "val_every_n_epochs",
            "save_every_n_epochs",
            "save_best_only",
            "checkpoint_dir",
            "log_every_n_steps",
            "log_images_every_n_epochs",
            "use_tensorboard",
            "use_wandb",
            "wandb_project",
            "wandb_run_name",
            "resume",
            "max_minutes",
            "progress",
        )
    }

    def __init__(self, config: PBRConfig, data: PBRData, device: torch.device) -> None:
        config.check()
        self.config = config
        self.device = device
        self.data = data.to(device)
        self.train_ids, self.val_ids = (
            torch.as_tensor(ids, dtype=torch.long, device=device)
            for ids in split_indices(len(data), config.data.val_ratio, config.data.split_seed)
        )
        self.steps_per_epoch = math.ceil(len(self.train_ids) / config.data.batch_size)
        config.bind_epoch_length(self.steps_per_epoch)
        mean, std = config.transform.stats()
        self.mean = torch.tensor(mean, device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 1, 3, 1, 1)
        modules = {"generator": MultiViewPBRGenerator(config.model)}
        if config.model.use_gan:
            modules["discriminator"] = build_discriminator(config.model)
        self.model = nn.ModuleDict(modules).to(device)
        perceptual = build_perceptual_loss(config.loss)
        self.perceptual = None if perceptual is None else perceptual.to(device).eval()
        self.unit_shape = len(self.train_ids)
        self.epochs = ShuffledEpochs(
            len(self.train_ids), device, seed=config.train.seed + config.sampling.draw_seed_offset
        )
        light_generator = torch.Generator().manual_seed(20_21)
        self.validation_lights = _random_lights(VALIDATION_BATCH, config.loss.render_lights, light_generator)

    @classmethod
    def from_config(cls, config: PBRConfig, device: torch.device) -> PBRTask:
        if config.data.data_root is None:
            raise ValueError("--data-root is required: a dataset folder (foveate pbr data --out DIR writes one)")
        multiple = config.model.input_multiple()
        if config.data.image_size % multiple:
            raise ValueError(
                f"--image-size must be a multiple of {multiple} for this encoder, got {config.data.image_size}"
            )
        renders = "dirty" if config.data.use_dirty_renders else "clean"
        data = load_dataset(config.data.data_root, config.data.image_size, renders)
        if len(data) < 2:
            raise ValueError(f"{config.data.data_root}: {len(data)} sample(s); training needs at least 2")
        side = config.model.output_size(config.data.image_size, config.data.image_size)
        if side != (config.data.image_size, config.data.image_size):
            raise ValueError(
                f"the model returns {side[0]}x{side[1]} maps from {config.data.image_size} px views; "
                "with --model.encoder-stride 2 give --model.decoder-sr-scale 2"
            )
        return cls(config, data, device)

    @classmethod
    def run_name(cls, config: PBRConfig) -> str:
        return f"pbr-{config.model.encoder_backbone}-{config.sampling.strategy}"

    @property
    def generator(self) -> MultiViewPBRGenerator:
        return self.model["generator"]

    @property
    def discriminator(self) -> nn.Module | None:
        return self.model["discriminator"] if "discriminator" in self.model else None  # noqa: SIM401 (no .get)

    def checkpoint_layout(self) -> CheckpointLayout:
        return dataclasses.replace(NEUROPBR_LAYOUT, steps_per_number=self.steps_per_epoch)

    def describe(self) -> str:
        size = self.config.data.image_size
        return f"{len(self.data)} samples at {size}x{size} ({len(self.train_ids)} train, {len(self.val_ids)} val)"

    # -------------------------------------------------------------- optimisation

    def configure_optimizers(self, config: Any, total_steps: int) -> None:
        """AdamW for the generator, Adam for the discriminator (NeuroPBR's), with per-epoch schedules."""
        o = self.config.optimizer
        self.optimizers = {
            "generator": _optimizer(o.g_optimizer, self.generator.parameters(), o.g_lr, o.g_betas, o.g_weight_decay)
        }
        if self.discriminator is not None:
            self.optimizers["discriminator"] = _optimizer(
                o.d_optimizer, self.discriminator.parameters(), o.d_lr, o.d_betas, o.d_weight_decay
            )
        self.schedulers = {name: self._scheduler(optimizer) for name, optimizer in self.optimizers.items()}
        # The loop steps every schedule each step; the discriminator's waits for gan_start_epoch by design.
        warnings.filterwarnings(
            "ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before", category=UserWarning
        )

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        o = self.config.optimizer
        if o.scheduler == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", factor=o.factor, patience=o.patience)
        per_epoch = self.steps_per_epoch
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: epoch_lr_factor(step // per_epoch, self.config)
        )

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def gan_active(self, step: int) -> bool:
        """Whether ``step`` trains adversarially (NeuroPBR: from ``gan_start_epoch`` on)."""
        return self.discriminator is not None and self.epoch_of(step) >= self.config.training.gan_start_epoch

    # ------------------------------------------------------------------- batches

    def draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-split positions and importance weights: the engine's, its uniform part from shuffled epochs."""
        draw = self.sampler.sample(self.config.data.batch_size, step, uniform_ids=self.epochs.next)
        return draw.ids, draw.weights

    def batch(self, samples: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Normalised views ``(B, 3, 3, S, S)`` and the true maps of dataset samples ``samples``."""
        views = self.data.views[samples].float() / 255.0
        return (views - self.mean) / self.std, self.data.maps(samples)

    # --------------------------------------------------------------------- steps

    def training_step(self, batch: Draw | None, step: int, optimization: Optimization) -> StepOutput:
        """Discriminator updates when the GAN is on, then one generator update; the engine hears each sample's loss."""
        ids, weights = self.draw(step)
        views, target = self.batch(self.train_ids[ids])
        loss_config = self.config.loss
        conditional = self.config.model.discriminator_conditional
        terms: dict[str, torch.Tensor | float] = {}
        gan = self.gan_active(step)
        if gan:
            with torch.no_grad(), optimization.autocast():
                fake = self.generator(views)
            for _ in range(self.config.training.d_steps_per_g_step):
                with optimization.autocast():
                    real_logits = self.discriminator(discriminator_input(target, views if conditional else None))
                    fake_logits = self.discriminator(discriminator_input(fake, views if conditional else None))
                    d_loss = discriminator_loss(real_logits.float(), fake_logits.float(), loss_config.gan_loss_type)
                    d_loss = d_loss.mean() * loss_config.w_discriminator
                optimization.minimize(d_loss, "discriminator", clip=0.0)
            terms["d_loss"] = d_loss.detach()
        with optimization.autocast():
            prediction = self.generator(views)
            prediction = {name: value.float() for name, value in prediction.items()}
            per_sample, parts = reconstruction_loss(prediction, target, loss_config, perceptual=self.perceptual)
            if loss_config.w_render > 0:
                render = rendering_loss(prediction, target, shade_plane, lights=loss_config.render_lights)
                per_sample = per_sample + loss_config.w_render * render
                parts["loss_render"] = render
            loss = (weights * per_sample).mean()
            if gan and loss_config.w_gan > 0:
                logits = self.discriminator(discriminator_input(prediction, views if conditional else None))
                gan_term = generator_gan_loss(logits.float(), loss_config.gan_loss_type).mean()
                loss = loss + loss_config.w_gan * gan_term
                parts["loss_gan_g"] = gan_term
        optimization.minimize(loss, "generator")
        self.sampler.update(ids, per_sample.detach(), step)
        terms.update({name: value.detach().mean() for name, value in parts.items()})
        with torch.no_grad():
            for name in ("albedo", "roughness", "metallic", "normal"):
                terms[f"mae_{name}"] = mae(prediction[name], target[name]).mean()
                terms[f"rmse_{name}"] = rmse(prediction[name], target[name]).mean()
            terms["normal_angle_deg"] = normal_angles(prediction["normal"], target["normal"]).mean()
        terms["g_loss"] = loss.detach()
        terms["g_lr"] = self.optimizers["generator"].param_groups[0]["lr"]
        return StepOutput(loss.detach(), None, terms)

    # ---------------------------------------------------------------- validation

    def predict(self, samples: torch.Tensor) -> dict[str, torch.Tensor]:
        views, _ = self.batch(samples)
        return {name: value.float() for name, value in self.generator(views).items()}

    def validate(self, full: bool) -> Validation:
        """Validation loss and NeuroPBR's metrics over the held-out samples; a full one adds image grids."""
        accumulator = MetricAccumulator()
        losses = []
        for start in range(0, len(self.val_ids), VALIDATION_BATCH):
            samples = self.val_ids[start : start + VALIDATION_BATCH]
            prediction = self.predict(samples)
            target = self.data.maps(samples)
            per_sample, _ = reconstruction_loss(prediction, target, self.config.loss)
            losses.append(per_sample)
            accumulator.update(prediction, target)
            lights = tuple(part[: len(samples)].to(self.device) for part in self.validation_lights)
            accumulator.add("render_rmse", rendering_rmse(prediction, target, shade_plane, lights))
        metrics = {"loss": float(torch.cat(losses).mean()), **accumulator.compute()}
        if not full:
            return Validation(metrics)
        first = self.val_ids[:1]
        prediction = self.predict(first)
        target = self.data.maps(first)
        views = self.data.views[first].float() / 255.0
        images = {
            "val/input_views": view_strip(views[0]),
            "val/comparison": comparison_grid(prediction, target),
            "val/error_heatmaps": error_heatmaps(prediction, target),
        }
        return Validation(metrics, images)

    # --------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["epoch"] = self.epochs.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.epochs.load_state_dict(state["epoch"])

    def export(self, run_dir: Path) -> list[Path]:
        """``validation/``: the last full validation's metrics beside the reference figures, and its pictures."""
        from PIL import Image

        folder = run_dir / "validation"
        folder.mkdir(parents=True, exist_ok=True)
        validation = self.validate(full=True)
        metrics = {"metrics": validation.metrics, "reference_abo_multiview": REFERENCE_FIGURES}
        written = [folder / "metrics.json"]
        atomic_write_text(written[0], json.dumps(metrics, indent=1))
        for name, image in validation.images.items():
            path = folder / f"{name.rsplit('/', 1)[-1]}.png"
            Image.fromarray((image.clamp(0, 1) * 255).round().byte().cpu().numpy()).save(path)
            written.append(path)
        return written


def _random_lights(
    count: int, lights: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed validation lights: positions on the upper hemisphere (B, L, 3), intensities, and a viewer above."""
    lights = max(lights, 1)
    direction = torch.randn(count, lights, 3, generator=generator)
    direction[..., 2] = direction[..., 2].abs() + 0.5
    positions = 2.0 * nn.functional.normalize(direction, dim=-1)
    intensity = torch.full((count, lights, 3), 4.0)
    viewer = torch.tensor([0.0, 0.0, 2.0]).expand(count, 3).clone()
    return positions, intensity, viewer
