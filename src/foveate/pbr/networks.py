"""The multi-view PBR generator (NeuroPBR's architecture): shared encoder, cross-view fusion, four-head U-Net decoder.

Three views ``(B, 3, 3, H, W)`` (RGB, normalised by the caller) go through one shared encoder in a
single batched pass. Each view's bottleneck is projected to ``transformer_dim`` channels and the
views are fused (:class:`~foveate.pbr.fusion.CrossViewFusion`, or a mean over views); the skips
are averaged over views. A U-Net decoder upsamples back through the skips, an optional
pixel-shuffle head super-resolves by 2 or 4, and four 1x1 heads give the maps: albedo, roughness
and metallic through a sigmoid, the normal L2-normalised.

Output size is ``config.output_size(H, W)``: the input size times ``decoder_sr_scale`` (or 1), and
half that for a ResNet encoder with ``encoder_stride=2``, whose decoder ends at the stem's half
resolution (NeuroPBR pairs ``encoder_stride=2`` with ``decoder_sr_scale=2`` to end at H x W).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import RESNET_LAYOUTS, ResNetEncoder, UNetEncoder, load_resnet_weights
from .fusion import CrossViewFusion
from .maps import MAP_CHANNELS, MAP_NAMES

__all__ = [
    "NUM_VIEWS",
    "GeneratorForExport",
    "ModelConfig",
    "MultiViewPBRGenerator",
    "UNetDecoder",
    "maps_to_tensor",
]

NUM_VIEWS = 3
"""Views per sample, as NeuroPBR renders them."""


@dataclasses.dataclass
class ModelConfig:
    """The generator and discriminator: NeuroPBR's names and defaults, plus a few fields marked as ours."""

    encoder_type: Literal["resnet", "unet", "unet_stride"] = "resnet"
    """Per-view encoder: a ResNet, or a plain U-Net encoder halving by max pooling or by strided convolutions."""
    encoder_backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] = "resnet50"
    """ResNet depth, for encoder_type resnet."""
    encoder_stride: Literal[1, 2] = 1
    """Stride of the ResNet's first convolution: 1 keeps full resolution, 2 halves the output (pair it with
    decoder_sr_scale 2)."""
    encoder_channels: list[int] = dataclasses.field(default_factory=lambda: [64, 128, 256, 512, 1024, 2048])
    """Widths of the U-Net encoders, from full resolution to the bottleneck; each step halves the resolution."""
    encoder_base_channels: int = 64
    """Width of the ResNet's stem; the stages scale with it (ours: below 64 only for quick tests, and pretrained
    weights need 64)."""
    encoder_weights: str | None = None
    """A local torchvision ResNet state-dict file loaded into the encoder at construction (nothing is downloaded)."""
    freeze_backbone: bool = False
    """Stop gradients to the convolutions of the ResNet's stem and first two stages."""
    freeze_bn: bool = False
    """Fix the BatchNorms of the ResNet's stem and first two stages (scale, shift and running statistics)."""
    use_transformer: bool = True
    """Fuse the views with a transformer over all their tokens; off, the views' latents are averaged."""
    transformer_dim: int = 2048
    """Width of the fused latent and of the transformer's tokens."""
    transformer_num_heads: int = 32
    """Attention heads; must divide transformer_dim."""
    transformer_depth: int = 4
    """Transformer blocks."""
    transformer_mlp_ratio: float = 4.0
    """Hidden width of each block's MLP, as a multiple of transformer_dim."""
    transformer_proj_drop: float = 0.1
    """Dropout after the attention output and MLP projections."""
    transformer_attn_drop: float = 0.1
    """Dropout on attention weights."""
    transformer_drop_path_rate: float = 0.1
    """Stochastic depth of the last block, ramping linearly from 0 at the first."""
    transformer_pos_grid: int = 16
    """Side of the token grid the position embedding is learned on; other grids use it resized (ours)."""
    decoder_sr_scale: Literal[0, 2, 4] = 0
    """Super-resolution factor of the decoder's last stage (0: none)."""
    use_gan: bool = True
    """Train against a PatchGAN discriminator."""
    discriminator_type: Literal["simple", "configurable"] = "configurable"
    """simple: four stride-2 layers with instance norm; configurable: discriminator_n_layers stride-2 layers,
    one stride-1 layer, batch norm."""
    discriminator_ndf: int = 64
    """Width of the discriminator's first layer; later layers double it, up to 8 times."""
    discriminator_n_layers: int = 6
    """Stride-2 layers of the configurable discriminator; 4, 5 and 6 see 142, 286 and 574 pixel patches."""
    discriminator_use_sigmoid: bool = False
    """End the discriminator with a sigmoid; the losses here take logits, so leave it off with them."""
    discriminator_conditional: bool = False
    """Show the discriminator the three input views beside the maps (ours; NeuroPBR's sees the maps only)."""

    def check(self) -> None:
        """Raise ValueError naming the first field no model can be built from."""
        choices = {
            "encoder_type": ("resnet", "unet", "unet_stride"),
            "encoder_backbone": tuple(RESNET_LAYOUTS),
            "encoder_stride": (1, 2),
            "decoder_sr_scale": (0, 2, 4),
            "discriminator_type": ("simple", "configurable"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        positive = ("encoder_base_channels", "transformer_dim", "transformer_num_heads", "transformer_depth")
        positive += ("transformer_pos_grid", "discriminator_ndf", "discriminator_n_layers")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        if len(self.encoder_channels) < 2 or any(not isinstance(c, int) or c < 1 for c in self.encoder_channels):
            raise ValueError(f"model.encoder_channels needs at least 2 positive widths, got {self.encoder_channels!r}")
        if self.transformer_dim % self.transformer_num_heads:
            raise ValueError(
                f"model.transformer_dim must be divisible by model.transformer_num_heads, "
                f"got {self.transformer_dim} and {self.transformer_num_heads}"
            )
        if not (math.isfinite(self.transformer_mlp_ratio) and self.transformer_mlp_ratio > 0):
            raise ValueError(f"model.transformer_mlp_ratio must be > 0, got {self.transformer_mlp_ratio!r}")
        for name in ("transformer_proj_drop", "transformer_attn_drop", "transformer_drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name} must be in [0, 1), got {getattr(self, name)!r}")
        resnet_only = {
            "encoder_weights": self.encoder_weights is not None,
            "freeze_backbone": self.freeze_backbone,
            "freeze_bn": self.freeze_bn,
        }
        for name, used in resnet_only.items():
            if used and self.encoder_type != "resnet":
                raise ValueError(f"model.{name} needs model.encoder_type 'resnet', got {self.encoder_type!r}")
        if self.encoder_weights is not None and self.encoder_base_channels != 64:
            raise ValueError(
                f"model.encoder_weights needs model.encoder_base_channels 64 (torchvision's width), "
                f"got {self.encoder_base_channels}"
            )

    def input_multiple(self) -> int:
        """Input height and width must be multiples of this: the encoder's total downsampling."""
        if self.encoder_type == "resnet":
            return 16 * self.encoder_stride
        return 2 ** (len(self.encoder_channels) - 1)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Size of the predicted maps for ``height x width`` input views."""
        scale = max(self.decoder_sr_scale, 1)
        divide = self.encoder_stride if self.encoder_type == "resnet" else 1
        return height * scale // divide, width * scale // divide


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True)]


class DecoderBlock(nn.Module):
    """Upsample x2 (bilinear) and conv, concatenate the skip, then a double 3x3 conv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Sequential(*_conv_bn_relu(in_channels, out_channels))
        self.conv = nn.Sequential(
            *_conv_bn_relu(out_channels + skip_channels, out_channels), *_conv_bn_relu(out_channels, out_channels)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        return self.conv(torch.cat((skip, x), dim=1))


def _super_resolution(channels: int, scale: int) -> nn.Module:
    """x2 steps of conv, conv to 4x channels, pixel shuffle; then a refining conv. The identity for scale 0."""
    if scale == 0:
        return nn.Identity()
    layers: list[nn.Module] = []
    for _ in range(int(math.log2(scale))):
        layers += [*_conv_bn_relu(channels, channels), *_conv_bn_relu(channels, 4 * channels), nn.PixelShuffle(2)]
    return nn.Sequential(*layers, *_conv_bn_relu(channels, channels))


class UNetDecoder(nn.Module):
    """U-Net decoder with one 1x1 head per map, from a fused latent and view-averaged skips.

    Each stage halves the width of its skip, except that it never goes below the shallowest skip's
    width (NeuroPBR's rule with 64 for a full-width encoder), which the heads then read.

    Args:
        in_channels: channels of the fused latent.
        skip_channels: channels of the skips, shallow to deep.
        sr_scale: 0, 2 or 4.
    """

    def __init__(self, in_channels: int, skip_channels: list[int], sr_scale: int = 0) -> None:
        super().__init__()
        head = skip_channels[0]
        blocks = []
        for skip in reversed(skip_channels):
            out = skip if skip <= head else skip // 2
            blocks.append(DecoderBlock(in_channels, skip, out))
            in_channels = out
        self.blocks = nn.ModuleList(blocks)
        self.to_head = nn.Identity() if in_channels == head else nn.Conv2d(in_channels, head, 1)
        self.sr = _super_resolution(head, sr_scale)
        self.heads = nn.ModuleDict({name: nn.Conv2d(head, c, 1) for name, c in MAP_CHANNELS.items()})

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        for block, skip in zip(self.blocks, reversed(skips), strict=True):
            x = block(x, skip)
        x = self.sr(self.to_head(x))
        return {name: head(x) for name, head in self.heads.items()}


class MultiViewPBRGenerator(nn.Module):
    """Three views ``(B, 3, 3, H, W)`` to PBR maps ``{albedo, roughness, metallic, normal}``, each ``(B, C, h, w)``.

    Examples:
        >>> config = ModelConfig(encoder_backbone="resnet18", encoder_base_channels=8, transformer_dim=32,
        ...                      transformer_num_heads=4, transformer_depth=1)
        >>> maps = MultiViewPBRGenerator(config).eval()(torch.randn(2, 3, 3, 64, 64))
        >>> {name: tuple(m.shape) for name, m in maps.items()}["normal"]
        (2, 3, 64, 64)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        if config.encoder_type == "resnet":
            self.encoder: ResNetEncoder | UNetEncoder = ResNetEncoder(
                config.encoder_backbone,
                stride=config.encoder_stride,
                base_channels=config.encoder_base_channels,
                freeze_backbone=config.freeze_backbone,
                freeze_bn=config.freeze_bn,
            )
            if config.encoder_weights is not None:
                load_resnet_weights(self.encoder, config.encoder_weights)
        else:
            self.encoder = UNetEncoder(config.encoder_channels, strided=config.encoder_type == "unet_stride")
        dim = config.transformer_dim
        latent = self.encoder.out_channels
        self.latent_proj = nn.Identity() if latent == dim else nn.Conv2d(latent, dim, 1, bias=False)
        self.fusion: CrossViewFusion | None = None
        if config.use_transformer:
            self.fusion = CrossViewFusion(
                dim,
                NUM_VIEWS,
                config.transformer_num_heads,
                config.transformer_depth,
                config.transformer_mlp_ratio,
                config.transformer_proj_drop,
                config.transformer_attn_drop,
                config.transformer_drop_path_rate,
                config.transformer_pos_grid,
            )
        self.decoder = UNetDecoder(dim, self.encoder.skip_channels, config.decoder_sr_scale)

    def check_views(self, views: torch.Tensor) -> None:
        """Raise ValueError unless ``views`` is ``(B, 3, 3, H, W)``, H and W multiples of the encoder's reduction."""
        if views.dim() != 5 or views.shape[1] != NUM_VIEWS or views.shape[2] != 3:
            raise ValueError(f"views must be (B, {NUM_VIEWS}, 3, H, W), got {tuple(views.shape)}")
        multiple = self.encoder.reduction
        if views.shape[3] % multiple or views.shape[4] % multiple:
            raise ValueError(f"view height and width must be multiples of {multiple}, got {tuple(views.shape[3:])}")

    def forward(self, views: torch.Tensor) -> dict[str, torch.Tensor]:
        if not torch.jit.is_tracing():  # a traced graph fixes the shape anyway; the check would only warn
            self.check_views(views)
        batch, num_views, channels, height, width = views.shape
        bottleneck, skips = self.encoder(views.reshape(batch * num_views, channels, height, width))
        latent = self.latent_proj(bottleneck)
        latents = latent.reshape(batch, num_views, *latent.shape[1:])
        fused = latents.mean(dim=1) if self.fusion is None else self.fusion(latents)
        skips = [skip.reshape(batch, num_views, *skip.shape[1:]).mean(dim=1) for skip in skips]
        raw = self.decoder(fused, skips)
        maps = {name: torch.sigmoid(raw[name]) for name in ("albedo", "roughness", "metallic")}
        maps["normal"] = F.normalize(raw["normal"], dim=1)
        return maps


class GeneratorForExport(nn.Module):
    """The generator returning a tuple ``(albedo, roughness, metallic, normal)``, for ONNX and TorchScript."""

    def __init__(self, generator: MultiViewPBRGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        maps = self.generator(views)
        return maps["albedo"], maps["roughness"], maps["metallic"], maps["normal"]


def maps_to_tensor(maps: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate a material's maps into ``(B, 8, H, W)``: albedo, roughness, metallic, normal."""
    missing = [name for name in MAP_NAMES if name not in maps]
    if missing:
        raise KeyError(f"maps lack {missing}; need {list(MAP_NAMES)}")
    return torch.cat([maps[name] for name in MAP_NAMES], dim=1)
