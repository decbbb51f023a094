"""The browser viewer: what it serves, and a headless-Chromium screenshot against the rasteriser."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
import torch

from foveate.data import Cameras, look_at
from foveate.data.splat_ply import save_splat_ply
from foveate.models.gaussians import quat_scale_to_covar, rasterize
from foveate.pipelines.splat import view_matrices, write_cameras_json
from foveate.viewer import ViewerServer, load_viewer_data

WIDTH, HEIGHT = 160, 120
SH_C0 = 0.28209479177387814


def _splats(count: int = 400, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(count, 3, generator=generator) * 0.5,
        "scales": (torch.rand(count, 3, generator=generator) * 0.08 + 0.015).log(),
        "quats": torch.randn(count, 4, generator=generator),
        "opacities": torch.randn(count, generator=generator) + 1.0,
        "sh0": (torch.rand(count, 1, 3, generator=generator) - 0.5) / SH_C0,
        "shN": torch.randn(count, 3, 3, generator=generator) * 0.1,
    }


def _cameras() -> Cameras:
    positions = torch.tensor([[0.3, -0.8, 2.8], [2.5, 0.5, 1.0], [-1.0, 1.5, -2.2]])
    return Cameras.from_fov(look_at(positions, (0.0, 0.0, 0.0), (0.0, -1.0, 0.0)), WIDTH, HEIGHT, 55.0)


@pytest.fixture
def run_dir(tmp_path):
    save_splat_ply(tmp_path / "point_cloud.ply", _splats())
    write_cameras_json(tmp_path / "cameras.json", _cameras())
    return tmp_path


def test_server_hands_the_page_its_splats_and_cameras(run_dir):
    splats = _splats()
    with ViewerServer(load_viewer_data(run_dir), port=0) as server:
        page = urllib.request.urlopen(server.url).read().decode()
        meta = json.loads(urllib.request.urlopen(server.url + "meta.json").read())
        packed = np.frombuffer(urllib.request.urlopen(server.url + "splats.bin").read(), dtype="<f4").reshape(-1, 13)
    assert "webgl2" in page and meta["count"] == 400 == len(packed)
    c2w = _cameras().camera_to_world
    assert len(meta["cameras"]) == 3 and meta["cameras"][1]["width"] == WIDTH
    np.testing.assert_allclose(np.reshape(meta["cameras"][2]["c2w"], (4, 4)), c2w[2].numpy(), atol=1e-6)
    covars = quat_scale_to_covar(splats["quats"], splats["scales"].exp())
    np.testing.assert_allclose(packed[:, :3], splats["means"].numpy(), atol=1e-6)
    np.testing.assert_allclose(packed[:, 3:9], covars[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]].numpy(), atol=1e-7)
    np.testing.assert_allclose(packed[:, 12], torch.sigmoid(splats["opacities"]).numpy(), atol=1e-6)


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no point_cloud\.ply"):
        load_viewer_data(tmp_path)
    (tmp_path / "cameras.json").write_text("{}")
    save_splat_ply(tmp_path / "point_cloud.ply", _splats(8))
    with pytest.raises(ValueError, match=r"cameras\.json"):
        load_viewer_data(tmp_path)


def screenshot(url: str, path, width: int, height: int) -> np.ndarray:
    """A headless-Chromium screenshot of ``url`` (software WebGL through SwiftShader)."""
    from PIL import Image

    command = [
        shutil.which("chromium"),
        "--headless",
        "--no-sandbox",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        "--virtual-time-budget=10000",
        f"--screenshot={path}",
        url,
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("camera", [0, 2])
def test_browser_draws_what_the_rasteriser_renders(run_dir, tmp_path, camera):
    splats = _splats()
    with ViewerServer(load_viewer_data(run_dir), port=0) as server:
        shot = screenshot(f"{server.url}?camera={camera}&frusta=0&hud=0", tmp_path / "shot.png", WIDTH, HEIGHT)
        framed = screenshot(f"{server.url}?camera={camera}&hud=0", tmp_path / "framed.png", WIDTH, HEIGHT)
    viewmats, Ks = view_matrices(_cameras()[[camera]])
    colors = (splats["sh0"][:, 0] * SH_C0 + 0.5).clamp(0, 1)
    rendered, _, _ = rasterize(
        splats["means"], splats["quats"], splats["scales"].exp(), torch.sigmoid(splats["opacities"]), colors,
        viewmats, Ks, WIDTH, HEIGHT,
    )  # fmt: skip
    reference = rendered[0].clamp(0, 1).double().numpy()
    assert shot.shape == reference.shape
    psnr = -10 * np.log10(np.mean((shot - reference) ** 2))
    blank = -10 * np.log10(np.mean(reference**2))
    print(f"camera {camera}: screenshot against render {psnr:.1f} dB (a black page scores {blank:.1f} dB)")
    assert psnr > 30 and psnr > blank + 10
    assert np.abs(framed - shot).max() > 0.5  # the training cameras' frusta are drawn when asked
