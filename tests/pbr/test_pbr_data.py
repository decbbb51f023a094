"""``generate_dataset``: arguments refused before writing, reproducible output, NeuroPBR's dirty share, real sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from foveate.pbr.data import generate_dataset
from foveate.pbr.dataset import check_dataset
from foveate.pbr.lighting import Lighting
from foveate.pbr.maps import encode_normal, normals_from_height
from foveate.pbr.shading import plane_lookup, render_views, sample_cameras

QUICK = {"textures": [], "environments": [], "progress": False}


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"samples": 0}, "--samples"),
        ({"size": 4}, "--size"),
        ({"dirty_fraction": 1.5}, "--dirty-fraction"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_arguments_are_refused_by_name_before_writing(tmp_path, arguments, named):
    out = tmp_path / "data"
    with pytest.raises(ValueError, match=named):
        generate_dataset(out, **{"samples": 2, "size": 16, **arguments}, **QUICK)
    assert not out.exists()


def test_a_non_empty_output_folder_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=f"--out {tmp_path}"):
        generate_dataset(tmp_path, 2, 16, **QUICK)
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        generate_dataset(tmp_path / "new", 2, 16, textures=[tmp_path / "nowhere"], environments=[], progress=False)
    assert not (tmp_path / "new").exists()


def test_same_seed_same_bytes(tmp_path):
    first = generate_dataset(tmp_path / "a", 3, 16, seed=5, **QUICK)
    generate_dataset(tmp_path / "b", 3, 16, seed=5, **QUICK)
    files = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*.png"))
    assert len(files) == 3 * 6 + 3 * 4
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    assert first.samples == 3 and "3 samples at 16x16" in str(first)


def test_dirty_views_differ_exactly_where_artefacts_were_drawn(tmp_path):
    summary = generate_dataset(tmp_path, 8, 24, dirty_fraction=0.5, seed=3, **QUICK)
    assert summary.dirty_samples == 4
    records = json.loads((tmp_path / "generation.json").read_text())["samples"]
    assert sum("shadows" in record for record in records.values()) == 4
    for sample, record in records.items():
        clean = [np.asarray(Image.open(tmp_path / "input" / "clean" / sample / f"{view}.png")) for view in range(3)]
        dirty = [np.asarray(Image.open(tmp_path / "input" / "dirty" / sample / f"{view}.png")) for view in range(3)]
        artefacts = record.get("shadows", False) or record.get("lens", False)
        assert all(np.array_equal(c, d) for c, d in zip(clean, dirty, strict=True)) != artefacts, sample
    assert check_dataset(tmp_path, "clean") == [] and check_dataset(tmp_path, "dirty") == []


def test_real_sets_are_mixed_in_by_share(tmp_path):
    textures = tmp_path / "textures" / "pebbles"
    textures.mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), (90, 120, 60), np.uint8)).save(textures / "albedo.png")
    Image.fromarray(np.full((32, 32), 200, np.uint8)).save(textures / "roughness.png")
    normal = (encode_normal(normals_from_height(torch.rand(32, 32), 0.02)) * 255).round().byte()
    Image.fromarray(normal.permute(1, 2, 0).numpy()).save(textures / "normal.png")
    out = tmp_path / "data"
    summary = generate_dataset(
        out, 4, 16, seed=0, textures=[tmp_path / "textures"], environments=[], progress=False, real_share=0.5
    )
    metadata = json.loads((out / "input" / "render_metadata.json").read_text())
    real = sorted(material for material in metadata.values() if material.startswith("real_pebbles_"))
    assert len(real) == 2 == summary.real_samples
    albedo = np.asarray(Image.open(out / "output" / real[0] / "albedo.png"))
    assert (albedo == (90, 120, 60)).all()


def test_shadowing_a_clean_render_equals_rendering_with_the_shadow():
    generator = torch.Generator().manual_seed(0)
    maps = {
        "albedo": torch.rand(1, 3, 8, 8, generator=generator),
        "roughness": torch.rand(1, 1, 8, 8, generator=generator),
        "metallic": torch.rand(1, 1, 8, 8, generator=generator),
        "normal": normals_from_height(torch.rand(1, 1, 8, 8, generator=generator), 0.01),
    }
    cameras = sample_cameras(1, 3, generator)
    lighting = Lighting.points(torch.tensor([[[0.2, 0.1, 1.0]]]), torch.ones(1, 1, 3))
    mask = torch.rand(1, 1, 16, 16, generator=generator)
    shadowed = render_views(maps, cameras, lighting, 12, light_factor=mask)
    torch.testing.assert_close(shadowed, render_views(maps, cameras, lighting, 12) * plane_lookup(mask, cameras, 12))
