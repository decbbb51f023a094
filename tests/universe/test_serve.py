"""foveate universe serve: a universe's splats and landmarks in the browser viewer, in parsecs."""

from __future__ import annotations

import math
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
import torch

from foveate.models.gaussians import rasterize
from foveate.universe import build_universe, load_csv, read_cell, read_index, write_pack
from foveate.universe.serve import universe_splats, universe_viewer_data
from foveate.viewer import ViewerServer

CATALOG = """id,ra,dec,parallax,mag,b_v
32349,101.28715533,-16.71611586,379.21,-1.0876,0.009
91262,279.23473479,38.78368896,130.23,0.0868,-0.001
24436,78.63446707,-8.20163836,3.78,0.2,-0.03
1,101.5,-16.5,300.0,4.0,1.2
2,101.0,-17.0,450.0,5.0,0.5
3,100.8,-16.2,350.0,3.0,1.5
4,279.0,38.5,100.0,4.5,0.3
"""


@pytest.fixture
def universe(tmp_path):
    (tmp_path / "stars.csv").write_text(CATALOG)
    folder = tmp_path / "universe"
    build_universe(load_csv(tmp_path / "stars.csv"), folder)
    return folder


def test_the_viewer_gets_every_splat_in_parsecs_and_the_landmarks(universe):
    data = universe_viewer_data(universe)
    assert data.meta["count"] == 7 and data.meta["units"] == "parsec"
    names = [entry["name"] for entry in data.meta["landmarks"]]
    assert names[:2] == ["Sirius", "Vega"] and "Rigel" in names
    sirius = np.array(data.meta["landmarks"][0]["position"])
    assert np.linalg.norm(sirius) == pytest.approx(1000 / 379.21, rel=1e-6)
    packed = np.frombuffer(data.splats, dtype="<f4").reshape(-1, 13)
    assert np.min(np.linalg.norm(packed[:, :3] - sirius, axis=1)) < 1e-5
    write_pack(universe, read_index(universe))  # the pack, when there is one, gives the same splats
    again = np.frombuffer(universe_viewer_data(universe).splats, dtype="<f4").reshape(-1, 13)
    np.testing.assert_array_equal(np.sort(again, axis=0), np.sort(packed, axis=0))


def browser(args: list[str]) -> subprocess.CompletedProcess:
    common = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
    common += [
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--window-size=600,450",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run(
        [shutil.which("chromium"), *common, *args], capture_output=True, timeout=120, check=True, text=True
    )


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_flying_to_a_landmark_shows_it_as_the_rasteriser_does(universe, tmp_path):
    data = universe_viewer_data(universe)
    with ViewerServer(data, port=0) as server:
        assert b"landmark" in urllib.request.urlopen(server.url).read()
        browser([f"--screenshot={tmp_path / 'vega.png'}", f"{server.url}?landmark=Vega&hud=0"])
    from PIL import Image

    shot = np.asarray(Image.open(tmp_path / "vega.png").convert("RGB"), dtype=np.float64) / 255
    # Where the page puts the camera: on the line from the Sun, half a parsec short of Vega (7.7 pc
    # away), looking at it with ecliptic north up, 50 degrees across.
    vega = np.array(data.meta["landmarks"][1]["position"])
    eye = vega * (1 - 0.5 / np.linalg.norm(vega))
    forward = (vega - eye) / np.linalg.norm(vega - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = map(
        torch.from_numpy, (right, np.cross(forward, right), forward, eye)
    )
    focal = 300 / math.tan(math.radians(25))  # headless Chromium lays out at least 500 pixels across
    camera = {"width": 600, "height": 450, "fx": focal, "fy": focal}
    index = read_index(universe)
    splats = universe_splats([read_cell(universe / "cells" / e["file_name"]) for e in index.cells])
    width, height = camera["width"], camera["height"]
    Ks = torch.tensor([[[camera["fx"], 0, width / 2], [0, camera["fy"], height / 2], [0, 0, 1]]])
    rendered, _, _ = rasterize(
        splats["means"], splats["quats"], splats["scales"].exp(), torch.sigmoid(splats["opacities"]),
        (splats["sh0"][:, 0] * 0.28209479177387814 + 0.5).clamp(0, 1),
        torch.linalg.inv(c2w.float())[None], Ks, width, height,
    )  # fmt: skip
    reference = rendered[0].clamp(0, 1).double().numpy()
    assert shot.shape == reference.shape
    psnr = -10 * np.log10(np.mean((shot - reference) ** 2))
    blank = -10 * np.log10(np.mean(reference**2))
    print(f"Vega from half a parsec: screenshot against render {psnr:.1f} dB (a black page {blank:.1f} dB)")
    assert psnr > 30 and psnr > blank + 10
