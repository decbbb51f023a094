"""``foveate view RUN_OR_PLY``: trained splats in the browser, with the training cameras as frusta.

A small HTTP server hands a WebGL2 page (``index.html`` beside this file) three things: the page,
``meta.json`` (splat count, scene centre and radius, the training cameras) and ``splats.bin``
(13 little-endian float32 per splat: centre, the 6 unique entries of its 3D covariance, colour and
opacity). The page projects each splat as the trainer's rasteriser does (EWA with the 0.3 px^2
low-pass term, the same 1/255 and 0.99 alpha rules), sorts back to front and blends. Colours are
the degree-0 (view-independent) part of the spherical harmonics, as most web splat viewers show.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import tyro

__all__ = ["ViewerData", "ViewerServer", "load_viewer_data", "main", "pack_splats", "serve"]

PAGE = Path(__file__).with_name("index.html")
SH_C0 = 0.28209479177387814


@dataclass
class ViewerData:
    """What the page draws: packed splats and the scene's description."""

    splats: bytes
    meta: dict[str, Any]


def pack_splats(splats: dict[str, torch.Tensor], name: str, cameras: list[dict[str, Any]]) -> ViewerData:
    """Pack splats in gsplat's stored forms (log scales, logit opacities, ``sh0``) for the page."""
    from foveate.models.gaussians import quat_scale_to_covar

    means = splats["means"].detach().float().cpu()
    covars = quat_scale_to_covar(splats["quats"].detach().float().cpu(), splats["scales"].detach().float().exp().cpu())
    upper = covars[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    colors = (splats["sh0"].detach().float().cpu()[:, 0] * SH_C0 + 0.5).clamp(0, 1)
    opacities = torch.sigmoid(splats["opacities"].detach().float().cpu())[:, None]
    packed = torch.cat((means, upper, colors, opacities), dim=1).numpy().astype("<f4")
    center = means.median(dim=0).values
    radius = float((means - center).norm(dim=1).quantile(0.9)) if len(means) else 1.0
    if cameras:
        centres = torch.tensor([[c["c2w"][3], c["c2w"][7], c["c2w"][11]] for c in cameras])
        radius = max(radius, float((centres - center).norm(dim=1).median()) / 2.5)
    meta = {"name": name, "count": len(means), "center": center.tolist(), "radius": radius, "cameras": cameras}
    return ViewerData(np.ascontiguousarray(packed).tobytes(), meta)


def read_cameras_json(path: Path) -> list[dict[str, Any]]:
    """3DGS's ``cameras.json`` (centre, camera-to-world rotation in OpenCV axes, focals) as the page's cameras."""
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, list):
            raise TypeError("expected a list of cameras")
        cameras = []
        for entry in entries:
            rotation = np.asarray(entry["rotation"], dtype=np.float64).reshape(3, 3)
            c2w = np.eye(4)
            c2w[:3, :3], c2w[:3, 3] = rotation, np.asarray(entry["position"], dtype=np.float64)
            width, height = int(entry["width"]), int(entry["height"])
            cameras.append(
                {
                    "c2w": c2w.reshape(-1).tolist(),
                    "fx": float(entry["fx"]),
                    "fy": float(entry["fy"]),
                    "cx": width / 2,
                    "cy": height / 2,
                    "width": width,
                    "height": height,
                }
            )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a 3DGS cameras.json ({error})") from error
    return cameras


def load_viewer_data(path: str | Path) -> ViewerData:
    """Splats of a run directory (its ``point_cloud.ply``, else its latest checkpoint) or of a ``.ply`` file,
    with the ``cameras.json`` beside them when there is one."""
    from foveate.data.splat_ply import load_splat_ply

    path = Path(path)
    if path.is_dir():
        ply = path / "point_cloud.ply"
        if ply.is_file():
            splats = load_splat_ply(ply)
        elif (path / "checkpoints").is_dir():
            from foveate.pipelines import load_run

            trainer = load_run(path, device="cpu", expect="splat")
            splats = {name: value.detach() for name, value in trainer.task.splats.items()}
        else:
            raise FileNotFoundError(f"{path}: no point_cloud.ply and no checkpoints/ (a splat run directory or a .ply)")
    elif path.is_file():
        splats = load_splat_ply(path)
    else:
        raise FileNotFoundError(f"{path}: no such run directory or .ply file")
    folder = path if path.is_dir() else path.parent
    cameras = read_cameras_json(folder / "cameras.json") if (folder / "cameras.json").is_file() else []
    return pack_splats(splats, path.name, cameras)


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, *args: Any, data: ViewerData, **kwargs: Any) -> None:
        self.data = data
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0]
        if route in ("/", "/index.html"):
            self._send(PAGE.read_bytes(), "text/html; charset=utf-8")
        elif route == "/meta.json":
            self._send(json.dumps(self.data.meta).encode(), "application/json")
        elif route == "/splats.bin":
            self._send(self.data.splats, "application/octet-stream")
        else:
            self.send_error(404, f"no {route}")

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class ViewerServer:
    """Serve ``data`` at ``http://host:port/`` from a background thread (port 0: any free port)."""

    def __init__(self, data: ViewerData, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.server = ThreadingHTTPServer((host, port), partial(_Handler, data=data))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ViewerServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ViewerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ViewArgs:
    """Serve trained splats to a browser: fly with the mouse and keys, the training cameras drawn as frusta."""

    path: Annotated[Path, tyro.conf.Positional]
    """A splat run directory (runs/splat/NAME) or a 3DGS point_cloud.ply."""
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 to reach it from another machine)."""
    port: int = 8080
    """Port to listen on (0: any free port)."""
    camera: int = 0
    """Training camera to start from."""


def serve(data: ViewerData, host: str, port: int, lines: Callable[[str], list[str]]) -> int:
    """Serve ``data`` until Ctrl-C, printing ``lines(url)`` first; a bad address is a one-line error."""
    import time

    try:
        server = ViewerServer(data, host, port)
    except OSError as error:
        print(f"error: cannot listen on {host}:{port} ({error.strerror or error})")
        return 2
    with server:
        print("\n".join(lines(server.url)))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped")
    return 0


def main(argv: list[str]) -> int:
    """``foveate view``."""
    from foveate.pipelines.registry import USAGE_ERRORS, one_line

    args = tyro.cli(ViewArgs, args=argv, prog="foveate view", description=ViewArgs.__doc__)
    try:
        data = load_viewer_data(args.path)
    except USAGE_ERRORS as error:
        print(f"error: {one_line(error)}")
        return 2
    count, name = data.meta["count"], data.meta["name"]
    return serve(
        data,
        args.host,
        args.port,
        lambda url: [f"serving {count:,} splats of {name} at {url}?camera={args.camera} (Ctrl-C stops)"],
    )
