"""The PBR generator, its encoders, the cross-view fusion and the PatchGAN discriminators."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from foveate.pbr.discriminators import PatchDiscriminator, build_discriminator, discriminator_input, receptive_field
from foveate.pbr.encoders import ResNetEncoder, UNetEncoder, load_resnet_weights
from foveate.pbr.fusion import CrossViewFusion, drop_path
from foveate.pbr.networks import ModelConfig, MultiViewPBRGenerator, maps_to_tensor

TORCHVISION_FC = {"resnet18": 512 * 1000 + 1000, "resnet50": 2048 * 1000 + 1000}
"""Parameters of torchvision's 1000-class classifier, which the encoder does not have."""
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032}
"""torchvision's published parameter counts (its model docs), classifier included."""


def tiny(**changes) -> ModelConfig:
    base = ModelConfig(
        encoder_backbone="resnet18",
        encoder_base_channels=8,
        encoder_channels=[8, 16, 32, 32],
        transformer_dim=32,
        transformer_num_heads=4,
        transformer_depth=1,
        transformer_pos_grid=4,
    )
    return dataclasses.replace(base, **changes)


def views(batch: int = 2, height: int = 64, width: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 3, height, width, generator=torch.Generator().manual_seed(seed))


CASES = [("resnet", 1), ("resnet", 2), ("unet", 1), ("unet_stride", 1)]


@pytest.mark.parametrize("encoder_type, stride", CASES)
@pytest.mark.parametrize("sr_scale", [0, 2, 4])
def test_generator_maps_have_the_right_shapes_and_ranges(encoder_type, stride, sr_scale):
    torch.manual_seed(0)
    config = tiny(encoder_type=encoder_type, encoder_stride=stride, decoder_sr_scale=sr_scale)
    maps = MultiViewPBRGenerator(config)(views())
    expected = (64 * max(sr_scale, 1) // (stride if encoder_type == "resnet" else 1),) * 2
    assert config.output_size(64, 64) == expected
    for name, channels in {"albedo": 3, "roughness": 1, "metallic": 1, "normal": 3}.items():
        assert maps[name].shape == (2, channels, *expected)
    for name in ("albedo", "roughness", "metallic"):
        assert maps[name].min() >= 0.0 and maps[name].max() <= 1.0
    assert torch.allclose(maps["normal"].norm(dim=1), torch.ones(1), atol=1e-5)


def test_one_model_runs_at_every_size_the_encoder_divides():
    torch.manual_seed(0)
    generator = MultiViewPBRGenerator(tiny()).eval()  # position embedding learned on a 4 x 4 token grid (64 px)
    for height, width in ((64, 64), (128, 96), (32, 48)):
        assert generator(views(1, height, width))["albedo"].shape == (1, 3, height, width)
    with pytest.raises(ValueError, match="multiples of 16"):
        generator(views(1, 40, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, 3, H, W\)"):
        generator(torch.zeros(1, 2, 3, 64, 64))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    generator = MultiViewPBRGenerator(tiny(transformer_drop_path_rate=0.0))
    maps = generator(views())
    sum(value.sum() for value in maps.values()).backward()
    missing = [name for name, p in generator.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_views_attend_across_views_and_positions():
    torch.manual_seed(0)
    fusion = CrossViewFusion(16, num_heads=2, depth=1, grid=4).eval()
    latents = torch.randn(1, 3, 16, 4, 4)
    changed = latents.clone()
    changed[0, 1, :, 0, 0] += torch.randn(16)  # one position of the second view (not a constant: LayerNorm hides it)
    difference = (fusion(changed) - fusion(latents)).abs().sum(dim=1)[0]
    assert (difference > 0).all()  # every fused position sees it
    mean_difference = (changed.mean(1) - latents.mean(1)).abs().sum(dim=1)[0]
    assert (mean_difference > 0).sum() == 1  # the plain mean (use_transformer off) mixes nothing


def test_position_embedding_is_returned_unchanged_on_its_own_grid():
    fusion = CrossViewFusion(8, num_heads=2, depth=1, grid=4)
    expected = fusion.position.flatten(2).transpose(1, 2).unsqueeze(1)
    assert torch.equal(fusion.position_embedding(4, 4), expected)
    assert fusion.position_embedding(2, 6).shape == (1, 1, 12, 8)


def test_transformer_off_averages_the_views():
    torch.manual_seed(0)
    generator = MultiViewPBRGenerator(tiny(use_transformer=False)).eval()
    assert generator.fusion is None
    permuted = views()[:, [2, 0, 1]]
    for name, value in generator(views()).items():  # the mean is symmetric in the views
        assert torch.allclose(value, generator(permuted)[name], atol=1e-5)


def test_drop_path_keeps_or_drops_whole_samples_and_keeps_the_expectation():
    x = torch.ones(4000, 3, 5)
    out = drop_path(x, 0.25, training=True)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, torch.tensor(1.0 / 0.75).item()}
    assert (per_sample == per_sample[:, :1]).all()
    assert abs(out.mean().item() - 1.0) < 0.05
    assert torch.equal(drop_path(x, 0.25, training=False), x)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_resnet_parameters_equal_torchvisions_less_its_classifier(backbone):
    encoder = ResNetEncoder(backbone)
    assert sum(p.numel() for p in encoder.parameters()) == TORCHVISION_PARAMS[backbone] - TORCHVISION_FC[backbone]


def torchvision_resnet18_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision's resnet18 state-dict keys and shapes, written out from its architecture."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def norm(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    norm("bn1", 64)
    for layer, (width_in, width) in enumerate([(64, 64), (64, 128), (128, 256), (256, 512)], start=1):
        for block in range(2):
            prefix = f"layer{layer}.{block}"
            first_in = width_in if block == 0 else width
            shapes[f"{prefix}.conv1.weight"] = (width, first_in, 3, 3)
            norm(f"{prefix}.bn1", width)
            shapes[f"{prefix}.conv2.weight"] = (width, width, 3, 3)
            norm(f"{prefix}.bn2", width)
            if block == 0 and layer > 1:
                shapes[f"{prefix}.downsample.0.weight"] = (width, width_in, 1, 1)
                norm(f"{prefix}.downsample.1", width)
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 512), (1000,)
    return shapes


def test_a_torchvision_resnet18_state_dict_loads_strictly(tmp_path):
    shapes = torchvision_resnet18_shapes()
    learned = [k for k in shapes if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert sum(torch.Size(shapes[k]).numel() for k in learned) == TORCHVISION_PARAMS["resnet18"]
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}
    state.update({key: torch.tensor(7) for key in shapes if key.endswith("num_batches_tracked")})
    encoder = ResNetEncoder("resnet18", stride=2)
    load_resnet_weights(encoder, state)
    assert torch.equal(encoder.layer3[0].downsample[0].weight, state["layer3.0.downsample.0.weight"])
    assert torch.equal(encoder.bn1.running_var, state["bn1.running_var"])

    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = MultiViewPBRGenerator(tiny(encoder_base_channels=64, encoder_weights=str(path)))
    assert torch.equal(model.encoder.conv1.weight, state["conv1.weight"])
    with pytest.raises(ValueError, match="do not fit"):
        load_resnet_weights(ResNetEncoder("resnet18", base_channels=32), state)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_resnet_weights(ResNetEncoder("resnet34"), state)


def test_freezing_stops_gradients_and_holds_batchnorm_statistics():
    encoder = ResNetEncoder("resnet18", base_channels=8, freeze_backbone=True, freeze_bn=True)
    assert not encoder.conv1.weight.requires_grad and not encoder.layer2[0].conv1.weight.requires_grad
    assert not encoder.bn1.weight.requires_grad and not encoder.layer1[0].bn2.bias.requires_grad
    assert encoder.layer3[0].conv1.weight.requires_grad and encoder.layer3[0].bn1.weight.requires_grad
    encoder.train()
    before = encoder.bn1.running_mean.clone(), encoder.layer3[0].bn1.running_mean.clone()
    encoder(torch.randn(2, 3, 32, 32))
    assert torch.equal(encoder.bn1.running_mean, before[0])
    assert not torch.equal(encoder.layer3[0].bn1.running_mean, before[1])


@pytest.mark.parametrize("stride", [1, 2])
def test_resnet_skips_halve_from_the_stem_to_the_bottleneck(stride):
    encoder = ResNetEncoder("resnet50", stride=stride, base_channels=4)
    bottleneck, skips = encoder(torch.zeros(1, 3, 64, 64))
    first = 64 // stride
    assert [tuple(s.shape[1:]) for s in skips] == [
        (4, first, first),
        (16, first // 2, first // 2),
        (32, first // 4, first // 4),
        (64, first // 8, first // 8),
    ]
    assert bottleneck.shape == (1, 128, first // 16, first // 16)
    assert encoder.skip_channels == [4, 16, 32, 64] and encoder.reduction == 16 * stride


@pytest.mark.parametrize("strided", [False, True])
def test_unet_encoder_skips_and_bottleneck(strided):
    encoder = UNetEncoder([4, 8, 16], strided=strided)
    bottleneck, skips = encoder(torch.zeros(1, 3, 32, 32))
    assert [tuple(s.shape[1:]) for s in skips] == [(4, 32, 32), (8, 16, 16)]
    assert bottleneck.shape == (1, 16, 8, 8) and encoder.reduction == 4


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"transformer_dim": 30}, "model.transformer_dim must be divisible by model.transformer_num_heads"),
        ({"encoder_type": "vgg"}, "model.encoder_type must be one of"),
        ({"decoder_sr_scale": 3}, "model.decoder_sr_scale must be one of"),
        ({"encoder_channels": [8]}, "model.encoder_channels"),
        ({"transformer_attn_drop": 1.0}, "model.transformer_attn_drop"),
        ({"encoder_type": "unet", "freeze_bn": True}, "model.freeze_bn needs model.encoder_type 'resnet'"),
        ({"encoder_weights": "w.pth"}, "model.encoder_weights needs model.encoder_base_channels 64"),
        ({"discriminator_n_layers": 0}, "model.discriminator_n_layers must be a positive integer"),
    ],
)
def test_config_check_names_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny(**changes).check()


def test_default_config_is_neuropbrs():
    config = ModelConfig()
    config.check()
    assert (config.encoder_backbone, config.encoder_stride, config.transformer_dim) == ("resnet50", 1, 2048)
    assert (config.transformer_num_heads, config.transformer_depth, config.decoder_sr_scale) == (32, 4, 0)
    assert (config.discriminator_type, config.discriminator_n_layers, config.discriminator_ndf) == (
        "configurable",
        6,
        64,
    )


def test_maps_to_tensor_stacks_in_map_order():
    maps = {
        name: torch.full((1, c, 2, 2), float(i))
        for i, (name, c) in enumerate(zip(("normal", "albedo", "metallic", "roughness"), (3, 3, 1, 1), strict=True))
    }
    stacked = maps_to_tensor(maps)
    assert stacked[0, :, 0, 0].tolist() == [1, 1, 1, 3, 2, 0, 0, 0]
    with pytest.raises(KeyError, match="normal"):
        maps_to_tensor({k: v for k, v in maps.items() if k != "normal"})


def empirical_receptive_field(discriminator: nn.Module, size: int) -> int:
    """Columns of the input that one output position's gradient reaches (eval mode: no batch coupling)."""
    discriminator.eval()
    x = torch.randn(1, discriminator.model[0].in_channels, size, size, requires_grad=True)
    out = discriminator(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    columns = x.grad.abs().sum(dim=(0, 1, 2)) > 0
    return int(columns.sum())


@pytest.mark.parametrize("n_layers, field", [(4, 142), (5, 286), (6, 574)])
def test_configurable_discriminator_shape_and_receptive_field(n_layers, field):
    # by hand: r <- (r - 1) * stride + 4 from r = 1 over the output conv (s1), the extra conv (s1)
    # and n_layers stride-2 convs: 4, 7, then 16, 34, 70, 142, 286, 574
    torch.manual_seed(0)
    config = tiny(discriminator_n_layers=n_layers, discriminator_ndf=2)
    discriminator = build_discriminator(config)
    assert receptive_field(discriminator) == field
    side = 256 // 2**n_layers - 2
    assert discriminator(torch.zeros(2, 8, 256, 256)).shape == (2, 1, side, side)
    assert empirical_receptive_field(discriminator, 640) == field


def test_simple_discriminator_shape_and_receptive_field():
    # four stride-2 4x4 convs and a stride-1 4x4 output conv: 4, 10, 22, 46, 94 pixels
    discriminator = build_discriminator(tiny(discriminator_type="simple", discriminator_ndf=4))
    assert receptive_field(discriminator) == 94
    assert discriminator(torch.zeros(2, 8, 64, 64)).shape == (2, 1, 3, 3)
    assert isinstance(discriminator.model[3], nn.InstanceNorm2d)


def test_conditional_discriminator_sees_the_views_resized_to_the_maps():
    discriminator = build_discriminator(
        tiny(discriminator_conditional=True, discriminator_ndf=4, discriminator_n_layers=3)
    )
    assert discriminator.model[0].in_channels == 17
    maps = {
        name: torch.rand(2, c, 32, 32) for name, c in (("albedo", 3), ("roughness", 1), ("metallic", 1), ("normal", 3))
    }
    x = discriminator_input(maps, torch.ones(2, 3, 3, 64, 64))
    assert x.shape == (2, 17, 32, 32) and torch.allclose(x[:, 8:], torch.ones(1))
    assert discriminator(x).shape == (2, 1, 2, 2)
    assert discriminator_input(maps).shape == (2, 8, 32, 32)


def test_sigmoid_discriminator_gives_probabilities():
    discriminator = PatchDiscriminator(ndf=4, strided_layers=3, use_sigmoid=True)
    out = discriminator(torch.randn(1, 8, 64, 64))
    assert out.min() >= 0 and out.max() <= 1
