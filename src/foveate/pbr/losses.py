"""Training losses of the PBR generator and discriminator (NeuroPBR's ``HybridLoss`` and its parts), per sample.

Every loss returns one value per sample, ``(B,)``, because the sampling engine weighs samples by
their own loss; reduce with ``.mean()`` (or :func:`reduce_loss`) for the optimiser. The thin
modules take a ``reduction`` like ``torch.nn`` losses.

The generator's loss (:func:`reconstruction_loss`) is

    w_l1 * sum_m w_m * L1_m  +  w_ssim * (1 - SSIM(albedo))  +  w_normal * mean(1 - cos(n, n*))
        +  w_gan * GAN_G  +  w_perceptual * VGG(albedo)

with ``m`` over albedo, roughness, metallic and normal; its terms are named as NeuroPBR's
TensorBoard tags (``loss_l1_total``, ``l1_albedo``, ..., ``loss_ssim``, ``loss_normal``,
``loss_gan_g``). :func:`rendering_loss` (re-render both materials under random lights and compare
in log space, Deschaintre et al. 2018) is separate because it needs a renderer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from foveate.train.metrics import ssim_per_image

from .perceptual import PerceptualLoss

__all__ = [
    "LossConfig",
    "NormalLoss",
    "SSIMLoss",
    "WeightedL1Loss",
    "build_perceptual_loss",
    "discriminator_loss",
    "generator_gan_loss",
    "l1_per_map",
    "normal_loss",
    "reconstruction_loss",
    "reduce_loss",
    "render_per_light",
    "rendering_loss",
    "sample_lights_and_views",
    "ssim_loss",
    "weighted_l1_loss",
]

PERCEPTUAL_NEEDS_WEIGHTS = (
    "perceptual loss needs local VGG16 weights: set loss.perceptual_weights to a torchvision vgg16 "
    "state-dict file (nothing is downloaded), or turn loss.use_perceptual off"
)


@dataclasses.dataclass
class LossConfig:
    """Weights of the generator's and discriminator's losses: NeuroPBR's names and defaults, plus the rendering loss."""

    w_l1: float = 1.0
    """Weight of the per-map L1 sum."""
    w_ssim: float = 0.3
    """Weight of 1 - SSIM on albedo."""
    w_normal: float = 0.5
    """Weight of the normals' 1 - cosine."""
    w_gan: float = 0.05
    """Weight of the generator's adversarial loss."""
    w_albedo: float = 1.0
    """Albedo's weight inside the L1 sum."""
    w_roughness: float = 1.0
    """Roughness's weight inside the L1 sum."""
    w_metallic: float = 1.0
    """Metallic's weight inside the L1 sum."""
    w_normal_map: float = 1.0
    """The normal map's weight inside the L1 sum."""
    gan_loss_type: Literal["hinge", "bce"] = "hinge"
    """Adversarial loss on the discriminator's logits: hinge or binary cross-entropy."""
    w_discriminator: float = 1.0
    """Weight of the discriminator's loss."""
    use_perceptual: bool = False
    """Add a VGG16 feature loss on albedo; needs perceptual_weights."""
    w_perceptual: float = 0.0
    """Weight of the VGG16 feature loss."""
    perceptual_weights: str | None = None
    """A local torchvision vgg16 state-dict file for the perceptual loss (nothing is downloaded)."""
    w_render: float = 0.0
    """Weight of the rendering loss: both materials re-rendered under random lights, compared in log space (ours)."""
    render_lights: int = 3
    """Random point lights per sample for the rendering loss, each its own rendering (ours)."""

    def check(self) -> None:
        """Raise ValueError naming the first field no training can use."""
        weights = ("w_l1", "w_ssim", "w_normal", "w_gan", "w_albedo", "w_roughness", "w_metallic", "w_normal_map")
        for name in (*weights, "w_discriminator", "w_perceptual", "w_render"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"loss.{name} must be a finite number >= 0, got {value!r}")
        if self.gan_loss_type not in ("hinge", "bce"):
            raise ValueError(f"loss.gan_loss_type must be 'hinge' or 'bce', got {self.gan_loss_type!r}")
        if isinstance(self.render_lights, bool) or not isinstance(self.render_lights, int) or self.render_lights < 1:
            raise ValueError(f"loss.render_lights must be a positive integer, got {self.render_lights!r}")
        if self.use_perceptual and self.perceptual_weights is None:
            raise ValueError(PERCEPTUAL_NEEDS_WEIGHTS)

    def l1_weights(self) -> dict[str, float]:
        """Per-map weights of the L1 sum, by map name."""
        return {
            "albedo": self.w_albedo,
            "roughness": self.w_roughness,
            "metallic": self.w_metallic,
            "normal": self.w_normal_map,
        }


def reduce_loss(values: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Reduce per-sample losses: ``"mean"``, ``"sum"`` or ``"none"``."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(dim=1)


def l1_per_map(
    pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], names: tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """Mean absolute error of each map, per sample: ``{name: (B,)}`` over ``names`` (default: every map in ``pred``)."""
    return {
        name: _per_sample_mean((pred[name] - target[name]).abs()) for name in (tuple(pred) if names is None else names)
    }


def weighted_l1_loss(
    pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], weights: Mapping[str, float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(B,)`` sum over maps of ``weights[m] * L1_m`` and the unweighted ``(B,)`` parts; weight-0 maps are skipped."""
    parts = l1_per_map(pred, target, tuple(name for name, weight in weights.items() if weight > 0))
    first = next(iter(pred.values()))
    total = first.new_zeros(first.shape[0])
    for name, value in parts.items():
        total = total + weights[name] * value
    return total, parts


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` 1 - SSIM of ``(B, C, H, W)`` images in [0, 1]: 11 x 11 Gaussian window, sigma 1.5, reflected borders.

    The SSIM is :func:`foveate.train.metrics.ssim_per_image` (torchmetrics' definition); NeuroPBR
    pads with zeros instead, which lowers the index within 5 pixels of the border.
    """
    return 1.0 - ssim_per_image(pred.permute(0, 2, 3, 1), target.permute(0, 2, 3, 1))


def normal_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(B,)`` mean over pixels of ``1 - cos`` between ``(B, 3, H, W)`` normals, both L2-normalised first.

    0 for equal directions, 1 at 90 degrees, 2 for opposite normals.
    """
    cosine = (F.normalize(pred, dim=1, eps=eps) * F.normalize(target, dim=1, eps=eps)).sum(dim=1)
    return _per_sample_mean(1.0 - cosine)


def generator_gan_loss(fake_logits: torch.Tensor, loss_type: str = "hinge") -> torch.Tensor:
    """``(B,)`` generator's adversarial loss on the discriminator's patch logits of its maps.

    hinge: ``-mean(D(fake))``; bce: ``BCE(D(fake), 1)``, both averaged over patches.
    """
    if loss_type == "hinge":
        return -_per_sample_mean(fake_logits)
    if loss_type == "bce":
        return _per_sample_mean(
            F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits), reduction="none")
        )
    raise ValueError(f"loss_type must be 'hinge' or 'bce', got {loss_type!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss_type: str = "hinge") -> torch.Tensor:
    """``(B,)`` discriminator's loss on patch logits of real and generated maps.

    hinge: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``; bce: ``BCE(D(real), 1) + BCE(D(fake), 0)``.
    """
    if loss_type == "hinge":
        return _per_sample_mean(F.relu(1.0 - real_logits)) + _per_sample_mean(F.relu(1.0 + fake_logits))
    if loss_type == "bce":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits), reduction="none")
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits), reduction="none")
        return _per_sample_mean(real) + _per_sample_mean(fake)
    raise ValueError(f"loss_type must be 'hinge' or 'bce', got {loss_type!r}")


class WeightedL1Loss(nn.Module):
    """Module form of :func:`weighted_l1_loss`."""

    def __init__(self, weights: Mapping[str, float], reduction: str = "mean") -> None:
        super().__init__()
        self.weights = dict(weights)
        self.reduction = reduction

    def forward(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return reduce_loss(weighted_l1_loss(pred, target, self.weights)[0], self.reduction)


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reduce_loss(ssim_loss(pred, target), self.reduction)


class NormalLoss(nn.Module):
    """Module form of :func:`normal_loss`."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reduce_loss(normal_loss(pred, target), self.reduction)


def build_perceptual_loss(config: LossConfig) -> PerceptualLoss | None:
    """The VGG16 perceptual loss from the local weights file, or None when ``use_perceptual`` is off."""
    if not config.use_perceptual:
        return None
    if config.perceptual_weights is None:
        raise ValueError(PERCEPTUAL_NEEDS_WEIGHTS)
    return PerceptualLoss(config.perceptual_weights)


def reconstruction_loss(
    pred: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    config: LossConfig,
    fake_logits: torch.Tensor | None = None,
    perceptual: PerceptualLoss | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The generator's loss per sample, ``(B,)``, and its terms (detached ``(B,)`` tensors, unweighted).

    Args:
        pred, target: maps ``{albedo, roughness, metallic, normal}``.
        config: the weights; a term of weight 0 is neither computed nor reported.
        fake_logits: the discriminator's logits on ``pred``; adds ``w_gan * loss_gan_g``.
        perceptual: a :class:`PerceptualLoss`; adds ``w_perceptual * loss_perceptual`` on albedo.

    Returns:
        ``(total, terms)``: ``terms`` holds ``l1_<map>`` for each map of positive weight and
        ``loss_l1_total`` (their weighted sum) when ``w_l1 > 0``, ``loss_ssim``, ``loss_normal``,
        ``loss_gan_g`` and ``loss_perceptual`` as they apply.
    """
    batch = pred["albedo"].shape[0]
    total = pred["albedo"].new_zeros(batch)
    terms: dict[str, torch.Tensor] = {}

    def add(name: str, weight: float, value: torch.Tensor) -> None:
        nonlocal total
        total = total + weight * value
        terms[name] = value.detach()

    if config.w_l1 > 0:
        l1_total, parts = weighted_l1_loss(pred, target, config.l1_weights())
        terms.update({f"l1_{name}": value.detach() for name, value in parts.items()})
        add("loss_l1_total", config.w_l1, l1_total)
    if config.w_ssim > 0:
        add("loss_ssim", config.w_ssim, ssim_loss(pred["albedo"], target["albedo"]))
    if config.w_normal > 0:
        add("loss_normal", config.w_normal, normal_loss(pred["normal"], target["normal"]))
    if fake_logits is not None:
        add("loss_gan_g", config.w_gan, generator_gan_loss(fake_logits, config.gan_loss_type))
    if perceptual is not None and config.w_perceptual > 0:
        add("loss_perceptual", config.w_perceptual, perceptual(pred["albedo"], target["albedo"]))
    return total, terms


ShadeFn = Callable[[dict[str, torch.Tensor], torch.Tensor, float | torch.Tensor, torch.Tensor], torch.Tensor]
"""``shade(maps, light_positions (B, L, 3), light_intensity, view_positions (B, 3)) -> (B, 3, H, W)``."""

LIGHT_DISTANCE, LIGHT_MAX_POLAR_DEG, LIGHT_INTENSITY = 2.0, 60.0, 4.0
"""Rendering loss lights: 2 units from the centre of the [-1, 1]^2 material, within 60 degrees of the
normal, intensity 4 (irradiance about 1 at the centre)."""
VIEW_DISTANCE, VIEW_MAX_POLAR_DEG = 2.0, 40.0
"""Rendering loss viewpoints: 2 units away, within 40 degrees of the normal (NeuroPBR's camera cone)."""


def _cap_directions(
    count: int, max_polar_deg: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``(count, 3)`` unit vectors uniform over the spherical cap within ``max_polar_deg`` of +z."""
    u = torch.rand(count, 2, generator=generator, device=device)
    cos_polar = 1.0 - u[:, 0] * (1.0 - math.cos(math.radians(max_polar_deg)))
    sin_polar = (1.0 - cos_polar**2).clamp_min(0.0).sqrt()
    azimuth = 2.0 * math.pi * u[:, 1]
    return torch.stack((sin_polar * torch.cos(azimuth), sin_polar * torch.sin(azimuth), cos_polar), dim=-1)


def sample_lights_and_views(
    batch: int,
    lights: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random point-light positions ``(B, L, 3)`` and viewpoints ``(B, 3)`` above the plane z = 0.

    Uniform over spherical caps around +z (see ``LIGHT_*`` and ``VIEW_*``); drawn from ``generator``
    (on ``device``; None: torch's global stream), so a seeded generator repeats the setups.
    """
    device = torch.device(device)
    light_positions = LIGHT_DISTANCE * _cap_directions(batch * lights, LIGHT_MAX_POLAR_DEG, generator, device)
    view_positions = VIEW_DISTANCE * _cap_directions(batch, VIEW_MAX_POLAR_DEG, generator, device)
    return light_positions.reshape(batch, lights, 3), view_positions


def render_per_light(
    maps: Mapping[str, torch.Tensor],
    shade_fn: ShadeFn,
    light_positions: torch.Tensor,
    light_intensity: float | torch.Tensor,
    view_positions: torch.Tensor,
) -> torch.Tensor:
    """``(B, L, 3, H, W)``: one rendering per light, the lights folded into the batch (one ``shade_fn`` call).

    ``light_intensity`` is a float or ``(B, L)`` / ``(B, L, 3)``, as ``shade_fn`` takes it.
    """
    batch, lights = light_positions.shape[:2]
    folded = {name: value.repeat_interleave(lights, dim=0) for name, value in maps.items()}
    intensity = light_intensity
    if isinstance(intensity, torch.Tensor) and intensity.dim() >= 2:
        intensity = intensity.reshape(batch * lights, 1, *intensity.shape[2:])
    positions = light_positions.reshape(batch * lights, 1, 3)
    radiance = shade_fn(folded, positions, intensity, view_positions.repeat_interleave(lights, dim=0))
    return radiance.reshape(batch, lights, *radiance.shape[1:])


def rendering_loss(
    pred: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    shade_fn: ShadeFn,
    generator: torch.Generator | None = None,
    *,
    lights: int = 3,
    light_intensity: float | torch.Tensor = LIGHT_INTENSITY,
) -> torch.Tensor:
    """``(B,)`` L1 between log renderings of ``pred`` and ``target`` under the same random lights and view.

    Each sample gets ``lights`` point lights and one viewpoint (:func:`sample_lights_and_views`), and
    each light its own rendering (:func:`render_per_light`). Renderings are compared as
    ``log(0.01 + max(x, 0))``, which keeps highlights from dominating (Deschaintre et al. 2018).

    Args:
        pred, target: maps ``{albedo, roughness, metallic, normal}``, ``(B, C, H, W)``.
        shade_fn: ``foveate.pbr.shading.shade_plane`` or a function of its signature.
        generator: the random stream of lights and views, on the maps' device (None: the global one).
        lights: renderings per sample (``loss.render_lights``).
        light_intensity: passed to ``shade_fn``.
    """
    albedo = pred["albedo"]
    light_positions, view_positions = sample_lights_and_views(albedo.shape[0], lights, generator, albedo.device)
    light_positions, view_positions = light_positions.to(albedo.dtype), view_positions.to(albedo.dtype)

    def log_render(maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
        radiance = render_per_light(maps, shade_fn, light_positions, light_intensity, view_positions)
        return torch.log(0.01 + radiance.clamp_min(0.0))

    return (log_render(pred) - log_render(target)).abs().flatten(1).mean(dim=1)
