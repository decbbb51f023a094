"""Photo loading: formats, bit depths, channels, and clear errors for unusable input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foveate.data import ImageError, load_photo
from foveate.data.images import pixel_points

PIL = pytest.importorskip("PIL.Image")


def _write_png(path, array) -> None:
    PIL.fromarray(array).save(path)


@pytest.fixture
def rgb8() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


def test_bundled_photo_by_name():
    photo = load_photo("astronaut")
    assert (photo.height, photo.width, photo.channels) == (512, 512, 3)
    assert photo.pixels.dtype == torch.uint8
    assert photo.unit_shape == (1, 512, 512)


def test_png_rgb_and_grey_keep_their_samples(tmp_path, rgb8):
    _write_png(tmp_path / "rgb.png", rgb8)
    _write_png(tmp_path / "grey.png", rgb8[:, :, 0])
    rgb, grey = load_photo(tmp_path / "rgb.png"), load_photo(tmp_path / "grey.png")
    assert torch.equal(rgb.pixels, torch.from_numpy(rgb8))
    assert grey.channels == 1 and torch.equal(grey.pixels[:, :, 0], torch.from_numpy(rgb8[:, :, 0]))


def test_sixteen_bit_png_and_tiff_keep_full_precision(tmp_path):
    png = pytest.importorskip("png")
    tifffile = pytest.importorskip("tifffile")
    values = np.random.default_rng(1).integers(0, 65536, (4, 7, 3), dtype=np.uint16)
    png.from_array(values.reshape(4, -1), "RGB;16").save(str(tmp_path / "rgb16.png"))
    _write_png(tmp_path / "grey16.png", values[:, :, 0])
    tifffile.imwrite(tmp_path / "rgb16.tif", values)
    for name, expected in (("rgb16.png", values), ("grey16.png", values[:, :, :1]), ("rgb16.tif", values)):
        photo = load_photo(tmp_path / name)
        assert photo.pixels.dtype == torch.uint16, name
        assert photo.max_value == 65535.0
        assert np.array_equal(photo.pixels.numpy(), expected), name


def test_jpeg_loads(tmp_path, rgb8):
    PIL.fromarray(rgb8).save(tmp_path / "photo.jpg", quality=95)
    photo = load_photo(tmp_path / "photo.jpg")
    assert (photo.height, photo.width, photo.channels) == (6, 5, 3)


def test_opaque_alpha_is_dropped_and_transparency_rejected(tmp_path, rgb8):
    alpha = np.full((6, 5, 1), 255, dtype=np.uint8)
    _write_png(tmp_path / "opaque.png", np.concatenate([rgb8, alpha], axis=2))
    assert load_photo(tmp_path / "opaque.png").channels == 3
    alpha[0, 0] = 10
    _write_png(tmp_path / "clear.png", np.concatenate([rgb8, alpha], axis=2))
    with pytest.raises(ImageError, match=r"clear\.png.*transparent"):
        load_photo(tmp_path / "clear.png")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.png"):
        load_photo(tmp_path / "nowhere.png")
    with pytest.raises(FileNotFoundError, match="bundled photos are"):
        load_photo("not_a_bundled_photo")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_corrupt_file_is_a_clear_error(tmp_path, rgb8, suffix):
    good = tmp_path / f"good{suffix}"
    if suffix == ".tif":
        pytest.importorskip("tifffile").imwrite(good, rgb8)
    else:
        PIL.fromarray(rgb8).save(good)
    broken = tmp_path / f"broken{suffix}"
    data = good.read_bytes()
    broken.write_bytes(data[: len(data) // 2] if suffix != ".tif" else b"II*\x00garbage")
    with pytest.raises(ImageError, match=f"broken\\{suffix}"):
        load_photo(broken)


def test_unsupported_inputs_are_named(tmp_path, rgb8):
    PIL.fromarray(rgb8).save(tmp_path / "photo.bmp")
    with pytest.raises(ImageError, match=r"unsupported image format '\.bmp'.*photo\.bmp"):
        load_photo(tmp_path / "photo.bmp")
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "float.tif", rgb8.astype(np.float32), photometric="rgb")
    with pytest.raises(ImageError, match=r"sample type float32 in .*float\.tif"):
        load_photo(tmp_path / "float.tif")
    _write_png(tmp_path / "big.png", rgb8)
    with pytest.raises(ImageError, match=r"big\.png is too large: 5 x 6 pixels, the limit is 4 x 4"):
        load_photo(tmp_path / "big.png", max_pixels=16)
    with pytest.raises(ImageError, match="directory"):
        load_photo(tmp_path)


def test_colors_and_points_follow_row_major_ids(tmp_path, rgb8):
    _write_png(tmp_path / "rgb.png", rgb8)
    photo = load_photo(tmp_path / "rgb.png")
    ids = torch.tensor([0, 4, 5, 29])
    expected = torch.from_numpy(rgb8).view(-1, 3)[ids].float() / 255
    torch.testing.assert_close(photo.colors(ids), expected)
    # 6 rows x 5 columns: id 5 is (x=0, y=1); both axes scaled by the longer side (6).
    torch.testing.assert_close(photo.points(ids), torch.tensor([[0.5, 0.5], [4.5, 0.5], [0.5, 1.5], [4.5, 5.5]]) / 6)
    assert pixel_points(torch.tensor([7]), 3, 4).tolist() == [[3.5 / 4, 1.5 / 4]]


def test_a_bomb_sized_header_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    # A valid PNG header claiming 100,000 x 100,000 pixels, with one tiny data chunk: never decoded.
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + b"\x00" * 64)
    with pytest.raises(ImageError, match=r"bomb\.png is too large: 100000 x 100000 pixels, the limit is 16384 x 16384"):
        load_photo(tmp_path / "bomb.png")


def test_a_jpeg_named_png_is_read_by_its_content(tmp_path, rgb8):
    PIL.fromarray(rgb8).save(tmp_path / "photo.png", format="JPEG", quality=95)
    photo = load_photo(tmp_path / "photo.png")
    assert photo.pixels.shape == rgb8.shape and photo.pixels.dtype == torch.uint8
    (tmp_path / "notes.png").write_text("not an image at all")
    with pytest.raises(ImageError, match=r"notes\.png: its content is not a PNG, JPEG or TIFF image"):
        load_photo(tmp_path / "notes.png")
