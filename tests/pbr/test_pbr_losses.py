"""The PBR losses against hand computations: per-map L1, SSIM, normals, GAN terms, perceptual, rendering."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from foveate.pbr.losses import (
    LossConfig,
    NormalLoss,
    SSIMLoss,
    WeightedL1Loss,
    build_perceptual_loss,
    discriminator_loss,
    generator_gan_loss,
    l1_per_map,
    normal_loss,
    reconstruction_loss,
    rendering_loss,
    sample_lights_and_views,
    ssim_loss,
    weighted_l1_loss,
)
from foveate.pbr.perceptual import PerceptualLoss

from .helpers import random_maps

UP = (0.0, 0.0, 1.0)
RIGHT = (1.0, 0.0, 0.0)


def constant_maps(albedo: float, roughness: float, metallic: float, normal=UP, size: int = 16, batch: int = 2):
    def fill(value, channels):
        values = torch.as_tensor(value, dtype=torch.float32).reshape(1, -1, 1, 1)
        return values.expand(batch, channels, size, size).clone()

    return {
        "albedo": fill(albedo, 3),
        "roughness": fill(roughness, 1),
        "metallic": fill(metallic, 1),
        "normal": fill(normal, 3),
    }


def test_l1_per_map_and_its_weighted_sum():
    pred = constant_maps(0.2, 0.5, 0.0)
    target = constant_maps(0.7, 0.25, 1.0, RIGHT)
    parts = l1_per_map(pred, target)
    hand = {"albedo": 0.5, "roughness": 0.25, "metallic": 1.0, "normal": 2.0 / 3.0}
    for name, value in hand.items():
        assert parts[name].shape == (2,) and torch.allclose(parts[name], torch.full((2,), value))
    total, used = weighted_l1_loss(pred, target, {"albedo": 1.0, "roughness": 2.0, "metallic": 0.0, "normal": 3.0})
    assert torch.allclose(total, torch.full((2,), 0.5 + 2 * 0.25 + 3 * 2 / 3))
    assert set(used) == {"albedo", "roughness", "normal"}
    assert torch.isclose(WeightedL1Loss({"albedo": 1.0})(pred, target), torch.tensor(0.5))


def test_l1_is_per_sample():
    pred, target = constant_maps(0.0, 0.0, 0.0), constant_maps(0.0, 0.0, 0.0)
    target["albedo"][1] = 0.4
    assert torch.allclose(l1_per_map(pred, target)["albedo"], torch.tensor([0.0, 0.4]))


def test_ssim_loss_of_constant_images_by_hand():
    # constant images a and b: no variance or covariance, so SSIM = (2ab + c1) / (a^2 + b^2 + c1)
    a, b, c1 = 0.2, 0.6, 0.01**2
    pred, target = torch.full((2, 3, 16, 16), a), torch.full((2, 3, 16, 16), b)
    expected = 1.0 - (2 * a * b + c1) / (a * a + b * b + c1)
    assert torch.allclose(ssim_loss(pred, target), torch.full((2,), expected), atol=1e-6)
    assert torch.allclose(ssim_loss(pred, pred), torch.zeros(2), atol=1e-6)


def test_ssim_loss_is_one_minus_torchmetrics_ssim():
    maps, other = random_maps(3, 24, 0), random_maps(3, 24, 1)
    reference = structural_similarity_index_measure(maps["albedo"], other["albedo"], data_range=1.0, reduction="none")
    assert torch.allclose(ssim_loss(maps["albedo"], other["albedo"]), 1.0 - reference, atol=1e-5)
    assert torch.isclose(SSIMLoss()(maps["albedo"], other["albedo"]), (1.0 - reference).mean(), atol=1e-5)


@pytest.mark.parametrize(
    "pred, target, expected",
    [
        (UP, UP, 0.0),
        (UP, RIGHT, 1.0),
        (UP, (0.0, 0.0, -1.0), 2.0),
        ((0.0, 0.0, 5.0), (1.0, 0.0, 1.0), 1 - math.sqrt(0.5)),
    ],
)
def test_normal_loss_is_one_minus_cosine(pred, target, expected):
    pred_maps, target_maps = constant_maps(0, 0, 0, pred), constant_maps(0, 0, 0, target)
    loss = normal_loss(pred_maps["normal"], target_maps["normal"])
    assert loss.shape == (2,) and torch.allclose(loss, torch.full((2,), expected), atol=1e-6)
    assert torch.isclose(
        NormalLoss(reduction="sum")(pred_maps["normal"], target_maps["normal"]), torch.tensor(2 * expected)
    )


def test_gan_losses_by_hand():
    real = torch.tensor([[2.0, 0.5], [-1.0, 1.0]]).view(2, 1, 1, 2)
    fake = torch.tensor([[-2.0, 0.0], [0.5, 3.0]]).view(2, 1, 1, 2)
    # hinge D: mean relu(1 - real) + mean relu(1 + fake); G: -mean fake
    assert torch.allclose(discriminator_loss(real, fake, "hinge"), torch.tensor([0.25 + 0.5, 1.0 + 2.75]))
    assert torch.allclose(generator_gan_loss(fake, "hinge"), torch.tensor([1.0, -1.75]))
    zero = torch.zeros(2, 1, 3, 3)
    assert torch.allclose(discriminator_loss(zero, zero, "bce"), torch.full((2,), 2 * math.log(2)))
    assert torch.allclose(generator_gan_loss(zero, "bce"), torch.full((2,), math.log(2)))
    softplus = torch.tensor([math.log1p(math.exp(2.0)), math.log1p(math.exp(-0.5))]).mean()
    assert torch.isclose(generator_gan_loss(torch.tensor([-2.0, 0.5]).view(1, 1, 1, 2), "bce")[0], softplus)
    with pytest.raises(ValueError, match="loss_type"):
        generator_gan_loss(zero, "wasserstein")


def test_reconstruction_loss_by_hand_with_the_seeds_term_names():
    pred = constant_maps(0.2, 0.5, 0.0)
    target = constant_maps(0.6, 0.25, 1.0, RIGHT)
    fake_logits = torch.full((2, 1, 2, 2), -0.5)
    total, terms = reconstruction_loss(pred, target, LossConfig(), fake_logits=fake_logits)
    l1 = 0.4 + 0.25 + 1.0 + 2.0 / 3.0
    ssim = 1.0 - (2 * 0.2 * 0.6 + 1e-4) / (0.04 + 0.36 + 1e-4)
    expected = 1.0 * l1 + 0.3 * ssim + 0.5 * 1.0 + 0.05 * 0.5
    assert total.shape == (2,) and torch.allclose(total, torch.full((2,), expected), atol=1e-5)
    names = {"loss_l1_total", "l1_albedo", "l1_roughness", "l1_metallic", "l1_normal", "loss_ssim", "loss_normal"}
    assert set(terms) == names | {"loss_gan_g"}
    assert all(value.shape == (2,) and not value.requires_grad for value in terms.values())
    assert torch.allclose(terms["loss_l1_total"], torch.full((2,), l1))
    _, terms = reconstruction_loss(pred, target, LossConfig(w_ssim=0.0, w_metallic=0.0))
    assert set(terms) == names - {"loss_ssim", "l1_metallic"}


def test_reconstruction_loss_gradients_reach_every_map_and_stay_per_sample():
    pred = {name: value.requires_grad_() for name, value in random_maps(2, 16, 0).items()}
    target = random_maps(2, 16, 1)
    total, _ = reconstruction_loss(pred, target, LossConfig())
    total[0].backward()
    for name, value in pred.items():
        assert value.grad[0].abs().sum() > 0, name
        assert value.grad[1].abs().sum() == 0, name  # sample 1 does not enter sample 0's loss


def test_loss_config_check_names_the_field():
    LossConfig().check()
    with pytest.raises(ValueError, match=r"loss.w_ssim must be a finite number >= 0"):
        LossConfig(w_ssim=-0.1).check()
    with pytest.raises(ValueError, match=r"loss.gan_loss_type"):
        LossConfig(gan_loss_type="lsgan").check()
    with pytest.raises(ValueError, match=r"loss.render_lights"):
        LossConfig(render_lights=0).check()
    with pytest.raises(ValueError, match=r"perceptual loss needs local VGG16 weights: set loss.perceptual_weights"):
        LossConfig(use_perceptual=True, w_perceptual=0.1).check()
    with pytest.raises(ValueError, match="VGG16"):
        build_perceptual_loss(LossConfig(use_perceptual=True))
    assert build_perceptual_loss(LossConfig()) is None


def torchvision_vgg16_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision's vgg16 state-dict keys and shapes, written out from configuration D."""
    shapes: dict[str, tuple[int, ...]] = {}
    index, channels = 0, 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if width == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"], shapes[f"features.{index}.bias"] = (width, channels, 3, 3), (width,)
        index, channels = index + 2, width
    for name, (out, inp) in {"0": (4096, 25088), "3": (4096, 4096), "6": (1000, 4096)}.items():
        shapes[f"classifier.{name}.weight"], shapes[f"classifier.{name}.bias"] = (out, inp), (out,)
    return shapes


def test_perceptual_loss_builds_only_from_a_local_vgg16_state_dict(tmp_path):
    shapes = torchvision_vgg16_shapes()
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 138_357_544  # torchvision's published count
    g = torch.Generator().manual_seed(0)
    state = {k: 0.05 * torch.randn(s, generator=g) for k, s in shapes.items() if not k.startswith("classifier.0")}
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    loss = build_perceptual_loss(LossConfig(use_perceptual=True, w_perceptual=0.1, perceptual_weights=str(path)))
    assert torch.equal(loss.vgg.features[21].weight, state["features.21.weight"])
    maps, other = random_maps(2, 32, 0), random_maps(2, 32, 1)
    value = loss(maps["albedo"], other["albedo"])
    assert value.shape == (2,) and (value > 0).all()
    assert torch.allclose(loss(maps["albedo"], maps["albedo"]), torch.zeros(2))
    loss.train()
    assert not loss.training and not any(p.requires_grad for p in loss.parameters())
    _, terms = reconstruction_loss(maps, other, LossConfig(w_perceptual=0.1), perceptual=loss)
    assert torch.allclose(terms["loss_perceptual"], value)
    with pytest.raises(FileNotFoundError, match="vgg16"):
        PerceptualLoss(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="not a torchvision vgg16 state dict"):
        PerceptualLoss({"features.0.weight": state["features.0.weight"]})


def lambertian(maps, light_positions, light_intensity, view_positions):
    """A stand-in renderer of shade_plane's signature: albedo x intensity x cos to each (directional) light."""
    directions = F.normalize(light_positions, dim=-1)  # (B, L, 3)
    cosine = torch.einsum("bchw,blc->blhw", maps["normal"], directions).clamp_min(0.0)
    return maps["albedo"] * light_intensity * cosine.sum(dim=1, keepdim=True)


def test_light_and_view_sampling_stays_in_its_cones_and_repeats_with_a_seed():
    lights, views = sample_lights_and_views(500, 3, torch.Generator().manual_seed(0))
    assert lights.shape == (500, 3, 3) and views.shape == (500, 3)
    assert torch.allclose(lights.norm(dim=-1), torch.full((1,), 2.0)) and torch.allclose(
        views.norm(dim=-1), torch.full((1,), 2.0)
    )
    assert (lights[..., 2] / 2.0 >= math.cos(math.radians(60)) - 1e-6).all()
    assert (views[..., 2] / 2.0 >= math.cos(math.radians(40)) - 1e-6).all()
    again, _ = sample_lights_and_views(500, 3, torch.Generator().manual_seed(0))
    assert torch.equal(lights, again)


def test_rendering_loss_by_hand_with_a_lambertian_stand_in():
    pred, target = constant_maps(0.2, 0.5, 0.0), constant_maps(0.6, 0.5, 0.0)
    loss = rendering_loss(pred, target, lambertian, torch.Generator().manual_seed(3), lights=2, light_intensity=4.0)
    lights, _ = sample_lights_and_views(2, 2, torch.Generator().manual_seed(3))
    cosine = lights[..., 2] / lights.norm(dim=-1)  # normal +z: (B, L)
    hand = (torch.log(0.01 + 0.6 * 4 * cosine) - torch.log(0.01 + 0.2 * 4 * cosine)).mean(dim=1)
    assert loss.shape == (2,) and torch.allclose(loss, hand, atol=1e-5)
    assert torch.allclose(rendering_loss(pred, pred, lambertian, lights=2), torch.zeros(2))


def test_rendering_loss_gradients_reach_the_prediction():
    pred = {name: value.requires_grad_() for name, value in random_maps(2, 8, 0).items()}
    rendering_loss(pred, random_maps(2, 8, 1), lambertian, torch.Generator().manual_seed(0)).sum().backward()
    assert pred["albedo"].grad.abs().sum() > 0 and pred["normal"].grad.abs().sum() > 0


def test_rendering_loss_runs_with_the_projects_renderer():
    from foveate.pbr.shading import shade_plane

    pred = {name: value.requires_grad_() for name, value in random_maps(2, 8, 0).items()}
    target = random_maps(2, 8, 1)
    loss = rendering_loss(pred, target, shade_plane, torch.Generator().manual_seed(0))
    assert loss.shape == (2,) and torch.isfinite(loss).all() and (loss > 0).all()
    loss.sum().backward()
    assert all(value.grad.abs().sum() > 0 for value in pred.values())
    assert torch.allclose(rendering_loss(target, target, shade_plane), torch.zeros(2))


def test_ssim_and_normal_losses_pass_gradcheck():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 11, 11, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 1, 11, 11, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ssim_loss(x, target), (pred,))
    normal = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    other = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: normal_loss(x, other), (normal,))
