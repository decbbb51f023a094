"""Procedural families and real texture sets."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from foveate.pbr.maps import MAP_CHANNELS, encode_normal, normals_from_height
from foveate.pbr.materials import FAMILIES, load_texture_sets, random_crop, random_material, texture_sources

SIZE = 48


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_maps_are_valid_structured_and_tileable(family):
    maps = FAMILIES[family](SIZE, torch.Generator().manual_seed(3))
    again = FAMILIES[family](SIZE, torch.Generator().manual_seed(3))
    for name, channels in MAP_CHANNELS.items():
        image = maps[name]
        assert image.shape == (channels, SIZE, SIZE) and image.dtype == torch.float32, name
        torch.testing.assert_close(image, again[name])
        if name != "normal":
            assert image.min() >= 0 and image.max() <= 1, name
    torch.testing.assert_close(maps["normal"].norm(dim=0), torch.ones(SIZE, SIZE))
    assert (maps["normal"][2] > 0).all()
    assert maps["roughness"].std() > 0.01 and maps["albedo"].std() > 0.005
    assert (maps["normal"][2] < 0.9999).float().mean() > 0.05  # relief
    for name in ("albedo", "roughness"):  # the seam across the edge is no larger than the texture's own steps
        image = maps[name]
        seam = (image[..., 0] - image[..., -1]).abs().mean() + (image[..., 0, :] - image[..., -1, :]).abs().mean()
        inside = (image[..., 1:] - image[..., :-1]).abs().mean() + (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
        assert seam < 3 * inside + 1e-3, f"{family} {name} does not tile"


def test_metals_and_dielectrics_are_both_represented():
    metallic_means = {}
    for family, make in FAMILIES.items():
        means = [make(SIZE, torch.Generator().manual_seed(seed))["metallic"].mean().item() for seed in range(6)]
        metallic_means[family] = sum(means) / len(means)
    assert metallic_means["brushed_metal"] == 1.0
    assert sum(mean > 0.02 for mean in metallic_means.values()) >= 4
    assert sum(mean == 0.0 for mean in metallic_means.values()) >= 4
    rust = FAMILIES["rust"](SIZE, torch.Generator().manual_seed(0))["metallic"]
    assert ((rust > 0.05) & (rust < 0.95)).float().mean() > 0.02  # mixed, not just 0 or 1


def test_random_material_names_its_family():
    names = {random_material(16, torch.Generator().manual_seed(seed))[0] for seed in range(40)}
    assert names <= set(FAMILIES) and len(names) >= 6


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _set_files(size: int = 8) -> dict[str, bytes]:
    normal = (encode_normal(normals_from_height(torch.rand(size, size), 0.05)) * 255).round().byte()
    return {
        "BaseColor.png": _png(np.full((size, size, 3), (200, 100, 50), np.uint8)),
        "Roughness.png": _png(np.full((size, size), 128, np.uint8)),
        "normal.png": _png(normal.permute(1, 2, 0).numpy()),
    }


def test_texture_sets_from_a_folder(tmp_path):
    for name, files in {
        "alpha": _set_files(),
        "beta": {**_set_files(), "metallic.png": _png(np.full((8, 8), 255, np.uint8))},
    }.items():
        (tmp_path / name).mkdir()
        for file, data in files.items():
            (tmp_path / name / file).write_bytes(data)
    (tmp_path / "incomplete").mkdir()
    (tmp_path / "incomplete" / "albedo.png").write_bytes(_set_files()["BaseColor.png"])
    sets = load_texture_sets(tmp_path)
    assert sorted(sets) == ["alpha", "beta"]
    torch.testing.assert_close(sets["alpha"]["albedo"][:, 0, 0], torch.tensor([200, 100, 50]) / 255.0)
    torch.testing.assert_close(sets["alpha"]["roughness"], torch.full((1, 8, 8), 128 / 255))
    assert (sets["alpha"]["metallic"] == 0).all() and (sets["beta"]["metallic"] == 1).all()
    torch.testing.assert_close(sets["beta"]["normal"].norm(dim=0), torch.ones(8, 8))


def test_texture_sets_from_a_wheel_layout(tmp_path):
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for file, data in _set_files().items():
            archive.writestr(f"tests/data/pebbles/{file.lower()}", data)
        archive.writestr("fake/__init__.py", "")
    sets = load_texture_sets(wheel)
    assert list(sets) == ["pebbles"] and sets["pebbles"]["albedo"].shape == (3, 8, 8)


def test_texture_source_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_texture_sets(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no complete texture set"):
        load_texture_sets(tmp_path)


def test_texture_sources_read_the_variable_then_the_cache(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = tmp_path / ".cache" / "foveate" / "textures"
    cache.mkdir(parents=True)
    (cache / "pypbr-0.1.0b5-py3-none-any.whl").write_bytes(b"")
    monkeypatch.setenv("FOVEATE_TEXTURES", f"{folder}:{tmp_path / 'missing'}")
    assert texture_sources() == [folder, cache / "pypbr-0.1.0b5-py3-none-any.whl"]


def test_random_crop_turns_normals_with_the_image():
    # A ramp rising along +u: tangent normal (-s, 0, c). Turned a quarter counter-clockwise it rises
    # along +v: (0, -s, c); mirrored it rises along -u: (s, 0, c). Every crop shows one of the four.
    tilted = torch.tensor([-0.6, 0.0, 0.8])
    source = {
        "albedo": torch.rand(3, 64, 64),
        "roughness": torch.rand(1, 64, 64),
        "metallic": torch.zeros(1, 64, 64),
        "normal": tilted.view(3, 1, 1).expand(3, 64, 64),
    }
    seen = set()
    for seed in range(24):
        crop = random_crop(source, 16, torch.Generator().manual_seed(seed))
        assert crop["albedo"].shape == (3, 16, 16) and crop["roughness"].shape == (1, 16, 16)
        normal = crop["normal"][:, 8, 8]
        assert torch.allclose(crop["normal"], normal.view(3, 1, 1).expand(3, 16, 16), atol=1e-5)
        seen.add(tuple(round(value, 3) + 0.0 for value in normal.tolist()))
    assert seen == {(-0.6, 0.0, 0.8), (0.6, 0.0, 0.8), (0.0, -0.6, 0.8), (0.0, 0.6, 0.8)}


def test_pypbr_sets_load_with_opengl_normals():
    wheels = [path for path in texture_sources() if path.suffix == ".whl" and "pypbr" in path.name]
    if not wheels:
        pytest.skip("no pypbr wheel found (FOVEATE_TEXTURES or ~/.cache/foveate/textures; CI downloads one)")
    sets = load_texture_sets(wheels[0])
    assert {"rocks", "tiles"} <= set(sets)
    with zipfile.ZipFile(wheels[0]) as archive:
        height = np.asarray(Image.open(io.BytesIO(archive.read("tests/data/tiles/height.png"))), dtype=np.float32)
    # A small strength keeps the height's normals linear in its slopes; their x and y then correlate at
    # +0.99 with the stored ones (a DirectX map would give -0.99 for y).
    from_height = normals_from_height(torch.from_numpy(height / 65535.0), 0.001)
    for axis in (0, 1):
        correlation = np.corrcoef(sets["tiles"]["normal"][axis].flatten(), from_height[axis].flatten())[0, 1]
        assert correlation > 0.95
    crop = random_crop(sets["rocks"], 32, torch.Generator().manual_seed(0))
    assert crop["normal"].shape == (3, 32, 32) and (crop["metallic"] == 0).all()
