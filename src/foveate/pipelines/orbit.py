"""Novel-view orbits of a trained scene model (``foveate render nerf|splat --run DIR``): cameras, gif and mp4."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from foveate.data import Cameras, camera_positions, look_at

__all__ = ["OrbitOptions", "even_frame", "orbit_cameras", "render_orbit", "to_uint8"]


@dataclass
class OrbitOptions:
    """The orbit: frames, speed and the files written."""

    frames: int = 60
    """Frames in one turn."""
    fps: int = 20
    """Frames per second of the animation."""
    formats: tuple[Literal["gif", "mp4"], ...] = ("gif", "mp4")
    """Files to write: orbit.gif and orbit.mp4 (H.264 through the ffmpeg imageio-ffmpeg bundles)."""


def orbit_cameras(cameras: Cameras, center: torch.Tensor, frames: int) -> Cameras:
    """``frames`` cameras on a circle through the training cameras' mean distance and elevation.

    The circle turns about the cameras' mean direction from ``center`` when they crowd to one
    side (a cap of views into an open box), else about their mean "up"; each camera looks at
    ``center`` with the training cameras' intrinsics (those of the first).
    """
    center = center.to(torch.float32).cpu()
    c2w = cameras.camera_to_world.cpu()
    offsets = c2w[:, :3, 3] - center
    distances = offsets.norm(dim=1)
    up = nn.functional.normalize(-c2w[:, :3, 1].mean(dim=0), dim=0)
    mean_direction = (offsets / distances[:, None]).mean(dim=0)
    axis = nn.functional.normalize(mean_direction, dim=0) if float(mean_direction.norm()) > 0.5 else up
    cos_polar = float(((offsets / distances[:, None]) @ axis).mean().clamp(-0.99, 0.99))
    positions = camera_positions(
        "orbit",
        frames,
        radius=float(distances.mean()),
        center=center.tolist(),
        up=axis.tolist(),
        elevation_degrees=math.degrees(math.asin(cos_polar)),
    )
    intrinsics = cameras.intrinsics[:1].cpu().expand(frames, 4).clone()
    return Cameras(look_at(positions, center, up), intrinsics, cameras.width, cameras.height)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Colours in [0, 1] (clamped) as rounded 8-bit values."""
    return (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad a frame by edge replication to even sides, which H.264 in yuv420p needs."""
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def render_orbit(
    render_view: Callable[[Cameras, int], torch.Tensor],
    cameras: Cameras,
    center: torch.Tensor,
    options: OrbitOptions,
    out: Path,
    progress: bool = False,
) -> list[Path]:
    """Render an orbit around ``center`` through ``cameras``' distances into ``out``; returns the files.

    ``render_view(orbit, index)`` renders one camera of the orbit as ``(H, W, 3)`` in [0, 1].
    """
    import imageio.v2 as imageio
    from rich.progress import track

    if options.frames < 1:
        raise ValueError(f"frames must be >= 1, got {options.frames}")
    if not options.formats:
        raise ValueError("formats is empty: choose gif, mp4 or both")
    if "mp4" in options.formats and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError("mp4 output needs imageio-ffmpeg: pip install 'foveate[render]' (or pass --formats gif)")
    orbit = orbit_cameras(cameras, center, options.frames).to(cameras.device)
    indices = range(options.frames)
    if progress:
        indices = track(indices, description=f"rendering {options.frames} frames")
    frames = [to_uint8(render_view(orbit, index)).cpu().numpy() for index in indices]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "gif" in options.formats:
        written.append(out / "orbit.gif")
        imageio.mimwrite(written[-1], frames, duration=1000.0 / options.fps, loop=0)
    if "mp4" in options.formats:
        written.append(out / "orbit.mp4")
        # macro_block_size=1 keeps the true size; even_frame pads only where H.264 requires it.
        imageio.mimwrite(
            written[-1],
            [even_frame(f) for f in frames],
            fps=options.fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
        )
    return written
