"""Map conventions: sRGB, normal encoding, normals from heights, orientation, PNG files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from foveate.pbr.maps import (
    decode_normal,
    encode_normal,
    linear_to_srgb,
    normals_from_height,
    orient_maps,
    read_image,
    read_maps,
    srgb_to_linear,
    write_maps,
)


def test_srgb_hand_values_and_round_trip():
    encoded = torch.tensor([0.0, 0.04, 0.5, 1.0])
    expected = torch.tensor([0.0, 0.04 / 12.92, ((0.5 + 0.055) / 1.055) ** 2.4, 1.0])
    torch.testing.assert_close(srgb_to_linear(encoded), expected)
    values = torch.linspace(0, 1, 101)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(values)), values, rtol=1e-5, atol=1e-6)


def test_normal_encoding_and_renormalising_decode():
    up = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)
    torch.testing.assert_close(encode_normal(up).flatten(), torch.tensor([0.5, 0.5, 1.0]))
    quantised = torch.tensor([128, 64, 230]).view(3, 1, 1) / 255.0
    decoded = decode_normal(quantised)
    torch.testing.assert_close(decoded.norm(dim=0), torch.ones(1, 1))
    raw = quantised * 2 - 1
    torch.testing.assert_close(decoded, raw / raw.norm(dim=0, keepdim=True))


def test_normals_lean_away_from_a_bump():
    size = 32
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    height = torch.exp(-((rows - 16.0) ** 2 + (cols - 16.0) ** 2) / 20.0)
    normal = normals_from_height(height, 0.05)
    assert normal.shape == (3, size, size)
    assert normal[0, 16, 20] > 0.05 and normal[0, 16, 12] < -0.05  # right of the bump: x > 0
    assert normal[1, 12, 16] > 0.05 and normal[1, 20, 16] < -0.05  # above it (row 12): y > 0 (v up)
    torch.testing.assert_close(normal.norm(dim=0), torch.ones(size, size))


def test_normals_from_a_sine_have_the_hand_slope():
    # z = strength sin(2 pi u), u = (j + 0.5) / W; central differences give
    # dz/du = strength sin(2 pi / W) W cos(2 pi u).
    size, strength = 16, 0.05
    u = (torch.arange(size) + 0.5) / size
    height = torch.sin(2 * math.pi * u).expand(size, size)
    normal = normals_from_height(height, strength)
    slope = strength * math.sin(2 * math.pi / size) * size * torch.cos(2 * math.pi * u)
    expected_x = -slope / torch.sqrt(1 + slope**2)
    torch.testing.assert_close(normal[0, 3], expected_x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(normal[1], torch.zeros(size, size), rtol=0, atol=1e-6)


@pytest.mark.parametrize("quarter_turns", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_orienting_normals_equals_the_normals_of_the_oriented_height(quarter_turns, flip):
    generator = torch.Generator().manual_seed(quarter_turns + 4 * flip)
    height = torch.rand(1, 12, 12, generator=generator)
    maps = {"normal": normals_from_height(height, 0.02), "roughness": height}
    turned = orient_maps(maps, quarter_turns, flip)
    expected = normals_from_height(orient_maps({"height": height}, quarter_turns, flip)["height"], 0.02)
    torch.testing.assert_close(turned["normal"], expected)


def test_maps_round_trip_through_pngs(tmp_path):
    generator = torch.Generator().manual_seed(0)
    maps = {
        "albedo": torch.rand(3, 8, 8, generator=generator),
        "roughness": torch.rand(1, 8, 8, generator=generator),
        "metallic": torch.rand(1, 8, 8, generator=generator),
        "normal": normals_from_height(torch.rand(8, 8, generator=generator), 0.02),
    }
    write_maps(tmp_path, maps)
    assert Image.open(tmp_path / "roughness.png").mode == "L" and Image.open(tmp_path / "normal.png").mode == "RGB"
    back = read_maps(tmp_path)
    for name in ("albedo", "roughness", "metallic"):
        torch.testing.assert_close(back[name], maps[name], rtol=0, atol=0.5 / 255 + 1e-6)
    cosine = (back["normal"] * maps["normal"]).sum(0)
    assert cosine.min() > math.cos(math.radians(1.0))


def test_single_channel_maps_read_red_of_any_mode(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 200, 10
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    torch.testing.assert_close(read_image(tmp_path / "rgb.png", 1), torch.full((1, 4, 4), 200 / 255))
    sixteen = np.full((4, 4), 30000, np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "grey16.png")
    torch.testing.assert_close(read_image(tmp_path / "grey16.png", 1), torch.full((1, 4, 4), 30000 / 65535))
    torch.testing.assert_close(read_image(tmp_path / "grey16.png", 3), torch.full((3, 4, 4), 30000 / 65535))


def test_read_maps_resizes_and_renormalises(tmp_path):
    generator = torch.Generator().manual_seed(1)
    maps = {
        "albedo": torch.rand(3, 16, 16, generator=generator),
        "roughness": torch.rand(1, 16, 16, generator=generator),
        "metallic": torch.zeros(1, 16, 16),
        "normal": normals_from_height(torch.rand(16, 16, generator=generator), 0.05),
    }
    write_maps(tmp_path, maps)
    small = read_maps(tmp_path, size=8)
    assert small["albedo"].shape == (3, 8, 8) and small["roughness"].shape == (1, 8, 8)
    torch.testing.assert_close(small["normal"].norm(dim=0), torch.ones(8, 8))
