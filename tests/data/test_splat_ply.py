import numpy as np
import pytest
import torch

from foveate.data.splat_ply import SplatFileError, load_splat_ply, save_splat_ply

plyfile = pytest.importorskip("plyfile")


def splats(count: int = 5, degree: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    rest = (degree + 1) ** 2 - 1
    return {
        "means": torch.randn(count, 3, generator=generator),
        "scales": torch.randn(count, 3, generator=generator),
        "quats": torch.randn(count, 4, generator=generator),
        "opacities": torch.randn(count, generator=generator),
        "sh0": torch.randn(count, 1, 3, generator=generator),
        "shN": torch.randn(count, rest, 3, generator=generator),
    }


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_keeps_every_parameter(tmp_path, degree):
    original = splats(degree=degree)
    loaded = load_splat_ply(save_splat_ply(tmp_path / "point_cloud.ply", original))
    assert loaded.keys() == original.keys()
    for key, value in original.items():
        assert torch.equal(loaded[key], value), key


def test_the_file_has_3dgs_properties_in_3dgs_order_with_rest_channel_major(tmp_path):
    original = splats(count=2, degree=1)
    path = save_splat_ply(tmp_path / "point_cloud.ply", original)
    vertex = plyfile.PlyData.read(str(path))["vertex"]
    names = [prop.name for prop in vertex.properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:18] == [f"f_rest_{i}" for i in range(9)]
    assert names[18:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(prop.val_dtype in ("f4", "float32") for prop in vertex.properties)
    # f_rest_4 is green's second coefficient (channel-major, three per channel at degree 1).
    assert np.float32(vertex["f_rest_4"][1]) == np.float32(original["shN"][1, 1, 1])


def write_vertices(path, names, rows=1):
    records = np.zeros(rows, dtype=[(name, "<f4") for name in names])
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")]).write(str(path))
    return path


BASE = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2"]
ROT = ["rot_0", "rot_1", "rot_2", "rot_3"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (BASE + ROT[:3], "missing property rot_3"),
        (BASE + ROT + [f"f_rest_{i}" for i in range(10)], "10 f_rest_"),
    ],
)
def test_malformed_files_name_the_file_and_the_problem(tmp_path, names, message):
    path = write_vertices(tmp_path / "bad.ply", names)
    with pytest.raises(SplatFileError, match=message) as error:
        load_splat_ply(path)
    assert str(path) in str(error.value)


def test_a_missing_non_ply_or_non_finite_file_is_named(tmp_path):
    with pytest.raises(SplatFileError, match="not found"):
        load_splat_ply(tmp_path / "none.ply")
    (tmp_path / "text.ply").write_text("hello\n")
    with pytest.raises(SplatFileError, match="not a readable PLY"):
        load_splat_ply(tmp_path / "text.ply")
    broken = splats(count=3)
    broken["scales"][2, 1] = float("nan")
    with pytest.raises(SplatFileError, match="non-finite scales at splat 2"):
        load_splat_ply(save_splat_ply(tmp_path / "nan.ply", broken))
