"""NeuroPBR's folder layout: a generated dataset checks clean and loads; every way of breaking it is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from foveate.pbr.data import generate_dataset
from foveate.pbr.dataset import check_dataset, load_dataset, split_indices

SAMPLES, SIZE = 4, 32


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pbr") / "data"
    generate_dataset(root, SAMPLES, SIZE, seed=1, textures=[], environments=[], progress=False)
    return root


@pytest.fixture
def dataset(generated, tmp_path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(generated, tmp_path / "data"))


def _metadata(root: Path) -> dict:
    return json.loads((root / "input" / "render_metadata.json").read_text())


def _write_metadata(root: Path, data) -> None:
    (root / "input" / "render_metadata.json").write_text(json.dumps(data))


def test_generated_dataset_checks_clean_and_loads(generated):
    assert check_dataset(generated, "clean") == [] and check_dataset(generated, "dirty") == []
    metadata = _metadata(generated)
    assert sorted(metadata) == [f"sample_{index:04d}" for index in range(SAMPLES)]
    for renders in ("clean", "dirty"):
        data = load_dataset(generated, SIZE, renders)
        assert (
            len(data) == SAMPLES and data.views.shape == (SAMPLES, 3, 3, SIZE, SIZE) and data.views.dtype == torch.uint8
        )
        for name, channels in (("albedo", 3), ("roughness", 1), ("metallic", 1), ("normal", 3)):
            assert (
                data.map_bytes[name].shape == (SAMPLES, channels, SIZE, SIZE)
                and data.map_bytes[name].dtype == torch.uint8
            )
        assert data.sample_names == sorted(metadata)
        assert data.material_names == [metadata[sample] for sample in data.sample_names]
    first_view = np.array(Image.open(generated / "input" / "clean" / "sample_0002" / "1.png"))
    assert torch.equal(load_dataset(generated, SIZE).views[2, 1], torch.from_numpy(first_view).permute(2, 0, 1))


def test_loaded_maps_are_floats_with_unit_normals(generated):
    data = load_dataset(generated, 16).to("cpu")
    assert data.views.shape[-1] == 16
    maps = data.maps(torch.tensor([0, 2]))
    assert maps["albedo"].shape == (2, 3, 16, 16) and maps["albedo"].dtype == torch.float32
    assert maps["roughness"].min() >= 0 and maps["roughness"].max() <= 1
    torch.testing.assert_close(maps["normal"].norm(dim=1), torch.ones(2, 16, 16))


def test_samples_sharing_a_material_share_its_maps(dataset):
    metadata = _metadata(dataset)
    metadata["sample_0001"] = metadata["sample_0000"]
    _write_metadata(dataset, metadata)
    data = load_dataset(dataset, SIZE)
    for name, stored in data.map_bytes.items():
        assert torch.equal(stored[0], stored[1]), name


def _break_and_check(root: Path, renders: str = "clean") -> list[str]:
    problems = check_dataset(root, renders)
    assert problems, "the broken dataset passed the check"
    with pytest.raises(ValueError) as error:
        load_dataset(root, SIZE, renders)
    assert str(error.value).startswith(problems[0])
    return problems


def _one_line_naming(problems: list[str], *parts: str) -> str:
    matches = [line for line in problems if all(part in line for part in parts)]
    assert matches, f"no line names {parts}: {problems}"
    return matches[0]


def test_missing_metadata(dataset):
    (dataset / "input" / "render_metadata.json").unlink()
    assert _break_and_check(dataset) == ["input/render_metadata.json: missing"]


def test_metadata_that_is_not_json(dataset):
    (dataset / "input" / "render_metadata.json").write_text("{not json")
    _one_line_naming(_break_and_check(dataset), "input/render_metadata.json", "not valid JSON")


def test_metadata_that_is_not_an_object(dataset):
    _write_metadata(dataset, ["sample_0000", "bricks"])
    _one_line_naming(_break_and_check(dataset), "input/render_metadata.json", "JSON object", "list")


def test_metadata_entry_that_is_not_a_string(dataset):
    metadata = _metadata(dataset)
    metadata["sample_0001"] = 7
    _write_metadata(dataset, metadata)
    _one_line_naming(_break_and_check(dataset), "input/render_metadata.json", "sample_0001", "not a material name")


def test_sample_folder_without_metadata_entry(dataset):
    metadata = _metadata(dataset)
    del metadata["sample_0003"]
    _write_metadata(dataset, metadata)
    _one_line_naming(_break_and_check(dataset), "input/clean/sample_0003", "no entry")


def test_metadata_entry_without_sample_folder(dataset):
    metadata = _metadata(dataset)
    metadata["sample_0099"] = metadata["sample_0000"]
    _write_metadata(dataset, metadata)
    _one_line_naming(_break_and_check(dataset), "sample_0099", "no folder", "input/clean/sample_0099")


def test_metadata_naming_a_missing_material(dataset):
    metadata = _metadata(dataset)
    shutil.rmtree(dataset / "output" / metadata["sample_0002"])
    _one_line_naming(_break_and_check(dataset), f"output/{metadata['sample_0002']}: missing", "sample_0002")


def test_missing_view(dataset):
    (dataset / "input" / "clean" / "sample_0002" / "1.png").unlink()
    _one_line_naming(_break_and_check(dataset), "input/clean/sample_0002/1.png: missing")


def test_missing_map(dataset):
    material = _metadata(dataset)["sample_0001"]
    (dataset / "output" / material / "metallic.png").unlink()
    _one_line_naming(_break_and_check(dataset), f"output/{material}/metallic.png: missing")


def test_unreadable_png(dataset):
    path = dataset / "input" / "clean" / "sample_0000" / "0.png"
    path.write_bytes(path.read_bytes()[:60])
    _one_line_naming(_break_and_check(dataset), "input/clean/sample_0000/0.png", "unreadable")
    material = _metadata(dataset)["sample_0001"]
    (dataset / "output" / material / "albedo.png").write_bytes(b"not a png")
    _one_line_naming(check_dataset(dataset), f"output/{material}/albedo.png", "unreadable")


def test_views_of_one_sample_with_different_sizes(dataset):
    Image.new("RGB", (SIZE * 2, SIZE * 2)).save(dataset / "input" / "clean" / "sample_0001" / "2.png")
    _one_line_naming(_break_and_check(dataset), "input/clean/sample_0001/2.png", "64x64", "0.png is 32x32")


def test_maps_of_one_material_with_different_sizes(dataset):
    material = _metadata(dataset)["sample_0003"]
    Image.new("L", (SIZE // 2, SIZE // 2)).save(dataset / "output" / material / "roughness.png")
    _one_line_naming(_break_and_check(dataset), f"output/{material}/roughness.png", "16x16", "albedo.png is 32x32")


def test_normal_map_that_is_not_rgb(dataset):
    material = _metadata(dataset)["sample_0000"]
    Image.new("L", (SIZE, SIZE), 128).save(dataset / "output" / material / "normal.png")
    _one_line_naming(_break_and_check(dataset), f"output/{material}/normal.png", "mode L", "RGB")


def test_either_render_folder_is_optional_when_the_other_is_used(dataset):
    shutil.rmtree(dataset / "input" / "dirty")
    assert check_dataset(dataset, "clean") == []
    _one_line_naming(_break_and_check(dataset, "dirty"), "input/dirty: missing")


def test_no_samples_and_no_root(dataset, tmp_path):
    for sample in (dataset / "input" / "clean").iterdir():
        shutil.rmtree(sample)
    problems = _break_and_check(dataset)
    _one_line_naming(problems, "input/clean: no sample_XXXX folders")
    assert check_dataset(tmp_path / "absent") == [f"{tmp_path / 'absent'}: no such folder"]


def test_split_is_reproducible_disjoint_and_never_empty():
    train, val = split_indices(20, 0.1, seed=42)
    assert (train, val) == split_indices(20, 0.1, seed=42)
    assert len(val) == 2 and sorted(train + val) == list(range(20))
    assert split_indices(20, 0.1, seed=43) != (train, val)
    assert [len(part) for part in split_indices(2, 0.01, 0)] == [1, 1]
    assert [len(part) for part in split_indices(2, 0.99, 0)] == [1, 1]
    assert split_indices(1, 0.5, 0) == ([0], [])
    for ratio in (0.0, 1.0):
        with pytest.raises(ValueError, match="val_ratio"):
            split_indices(10, ratio, 0)
