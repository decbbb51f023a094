"""What NeuS's ``exp_runner.py`` modes do with a trained model, each writing into the run's folder.

- :func:`validate_mesh`: marching cubes in world space, ``meshes/<step>.ply``;
- :func:`validate_mesh_texture`: the same mesh with vertex colours from the colour network
  (the albedo in RNb mode), ``meshes/<step>_texture.ply``;
- :func:`validate_image`: a training view rendered beside its target, and its normals,
  ``validations/`` and ``normals/``;
- :func:`validate_image_ps`: RNb's view under one light, prediction above target, and the
  rendered normals above the input normals (upstream calls this mode but never defined it);
- :func:`interpolate`: frames on an eased path between two cameras, there and back,
  ``videos/<step>_<i>_<j>/`` and an mp4 beside them (also ``foveate render neus``, into ``renders/``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from foveate.data import Cameras

from .mesh import extract_mesh, to_world, write_ply
from .task import NeuSTask

__all__ = [
    "InterpolateOptions",
    "interpolate",
    "interpolated_camera",
    "validate_image",
    "validate_image_ps",
    "validate_mesh",
    "validate_mesh_texture",
    "vertex_colors",
]


@dataclass
class InterpolateOptions:
    """Frames between two training views and back, and an mp4 (NeuS's interpolate mode)."""

    views: tuple[int, int] = (0, 1)
    """The two training views to travel between."""
    frames: int = 60
    """Frames from one view to the other (the video goes there and back)."""
    resolution_level: int = 4
    """Frames are rendered at 1 / this of the full resolution."""


def validate_mesh(task: NeuSTask, run_dir: Path, resolution: int, threshold: float = 0.0) -> list[Path]:
    """``meshes/<step>.ply``: the ``sdf = threshold`` surface at ``resolution^3``, in world coordinates."""
    vertices, faces = _mesh(task, resolution, threshold)
    return [write_ply(run_dir / "meshes" / f"{task.step:08d}.ply", to_world(vertices, task.normalization), faces)]


def validate_mesh_texture(task: NeuSTask, run_dir: Path, resolution: int, threshold: float = 0.0) -> list[Path]:
    """``meshes/<step>_texture.ply``: the mesh with each vertex coloured by the colour network."""
    vertices, faces = _mesh(task, resolution, threshold)
    colors = vertex_colors(task, vertices)
    path = run_dir / "meshes" / f"{task.step:08d}_texture.ply"
    return [write_ply(path, to_world(vertices, task.normalization), faces, colors)]


def _mesh(task: NeuSTask, resolution: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = extract_mesh(task.sdf, resolution, threshold, device=task.device)
    if len(faces) == 0:
        raise ValueError(f"the SDF never crosses {threshold} inside the unit sphere: there is no surface to write")
    return vertices, faces


@torch.no_grad()
def vertex_colors(task: NeuSTask, vertices: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``(V, 3)`` uint8 colours of normalised-space vertices, seen head on (the view direction is the
    negated normal). In RNb mode, the albedo network's output times the SDF gradient's length: RNb
    shades with the unnormalised gradient, so that product is what the lights pin down."""
    model = task.neus
    out = []
    for start in range(0, len(vertices), chunk):
        points = torch.as_tensor(vertices[start : start + chunk], dtype=torch.float32, device=task.device)
        _, features, gradient = model.sdf.sdf_and_gradient(points, create_graph=False)
        normal = gradient / gradient.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        if task.config.mode == "rnb" and task.albedos is None:
            color = torch.full_like(points, 0.8)
        elif task.config.mode == "rnb":
            # RNb shades with the unnormalised gradient: the lights constrain albedo x |grad f|.
            color = model.color(points, gradient, -normal, features) * gradient.norm(dim=-1, keepdim=True)
        else:
            color = model.color(points, gradient, -normal, features)
        out.append((color.clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


def _save(path: Path, image: torch.Tensor) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image.clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()).save(path)
    return path


def validate_image(task: NeuSTask, run_dir: Path, view: int, level: int) -> list[Path]:
    """``validations/<step>_<view>.png`` (prediction | target) and ``normals/<step>_<view>.png``."""
    _check_view(task, view)
    pictures = task.view_pictures(view, level)
    name = f"{task.step:08d}_{view}.png"
    return [
        _save(run_dir / "validations" / name, torch.cat((pictures["prediction"], pictures["target"]), dim=1)),
        _save(run_dir / "normals" / name, pictures["normals"]),
    ]


def validate_image_ps(task: NeuSTask, run_dir: Path, view: int, light: int, level: int) -> list[Path]:
    """RNb: ``validations/<step>_<view>_<light>.png``, the prediction above the target under one light,
    and ``normals/<step>_<view>_ps.png``, the rendered normals above the input normals."""
    if task.config.mode != "rnb":
        raise ValueError("validate_image_ps needs an RNb run (trained with --mode train_rnb); use validate_image")
    _check_view(task, view)
    if not 0 <= light < 3:
        raise ValueError(f"--light must be 0, 1 or 2 (RNb renders three lights), got {light}")
    pictures = task.view_pictures(view, level, light)
    return [
        _save(
            run_dir / "validations" / f"{task.step:08d}_{view}_{light}.png",
            torch.cat((pictures["prediction"], pictures["target"]), dim=0),
        ),
        _save(
            run_dir / "normals" / f"{task.step:08d}_{view}_ps.png",
            torch.cat((pictures["normals"], pictures["input_normals"]), dim=0),
        ),
    ]


def _check_view(task: NeuSTask, view: int) -> None:
    views = task.unit_shape[0]
    if not 0 <= view < views:
        raise ValueError(f"view {view} is not among the run's {views} training views (0 to {views - 1})")


def interpolated_camera(cameras: Cameras, first: int, second: int, ratio: float) -> Cameras:
    """A camera on the way from camera ``first`` to ``second``: positions mixed linearly, rotations slerped.

    The intrinsics are ``first``'s, as NeuS's ``gen_rays_between`` takes them.
    """
    poses = cameras.camera_to_world[[first, second]].double().cpu()
    rotation = _slerp(_quaternion(poses[0, :3, :3]), _quaternion(poses[1, :3, :3]), ratio)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = _rotation(rotation)
    pose[:3, 3] = (1.0 - ratio) * poses[0, :3, 3] + ratio * poses[1, :3, 3]
    return replace(cameras[[first]], camera_to_world=pose[None].float().to(cameras.device))


def _quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Unit quaternion (w, x, y, z) of a rotation matrix (Shepperd's method, stable for all angles)."""
    m = matrix
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    candidates = torch.stack(
        (
            torch.stack((1 + trace, m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1])),
            torch.stack((m[2, 1] - m[1, 2], 1 + m[0, 0] - m[1, 1] - m[2, 2], m[0, 1] + m[1, 0], m[0, 2] + m[2, 0])),
            torch.stack((m[0, 2] - m[2, 0], m[0, 1] + m[1, 0], 1 - m[0, 0] + m[1, 1] - m[2, 2], m[1, 2] + m[2, 1])),
            torch.stack((m[1, 0] - m[0, 1], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1], 1 - m[0, 0] - m[1, 1] + m[2, 2])),
        )
    )
    best = int(torch.argmax(torch.stack((trace, m[0, 0], m[1, 1], m[2, 2]))))
    q = candidates[best]
    return q / q.norm()


def _slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    dot = float((a * b).sum())
    if dot < 0:
        b, dot = -b, -dot
    if dot > 0.9995:
        q = a + t * (b - a)
        return q / q.norm()
    angle = math.acos(dot)
    return (math.sin((1 - t) * angle) * a + math.sin(t * angle) * b) / math.sin(angle)


def _rotation(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.tolist()
    return torch.tensor(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ],
        dtype=torch.float64,
    )


@torch.no_grad()
def render_camera(task: NeuSTask, camera: Cameras, level: int) -> torch.Tensor:
    """``(H / level, W / level, 3)`` image of one camera: colour, or in RNb mode the albedo lit from the camera."""
    shrunk = camera.downsampled(level) if level > 1 else camera
    origins, directions = shrunk.image_rays(0)
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    chunk = task.config.render.chunk
    colors = []
    for start in range(0, origins.shape[0], chunk):
        o, d = origins[start : start + chunk], directions[start : start + chunk]
        lights = None if task.config.mode == "rgb" else -d[None]
        out = task.render_rays(o, d, task.step, training=False, lights=lights, relu_shading=True)
        colors.append(out.color if lights is None else out.color[0])
    return torch.cat(colors).clamp(0, 1).reshape(shrunk.height, shrunk.width, 3)


def interpolate(
    task: NeuSTask, out: Path, first: int, second: int, frames: int = 60, level: int = 4, progress: bool = False
) -> list[Path]:
    """Frames from camera ``first`` to ``second`` into ``out/<step>_<i>_<j>/``, and the video there and
    back beside them (``<step>_<i>_<j>.mp4``).

    Positions along the path follow NeuS's easing, ``sin((k / frames - 1/2) pi) / 2 + 1/2``.
    """
    import imageio.v2 as imageio

    _check_view(task, first)
    _check_view(task, second)
    if frames < 2:
        raise ValueError(f"--frames must be >= 2, got {frames}")
    folder = out / f"{task.step:08d}_{first}_{second}"
    ratios = [math.sin((k / frames - 0.5) * math.pi) * 0.5 + 0.5 for k in range(frames)]
    steps = range(frames)
    if progress:
        from rich.progress import track

        steps = track(steps, description=f"rendering views {first} to {second}")
    images = []
    for k in steps:
        image = render_camera(task, interpolated_camera(task.cameras, first, second, ratios[k]), level)
        images.append((image * 255.0).round().to(torch.uint8).cpu().numpy())
        _save(folder / f"{k:03d}.png", image)
    video = out / f"{task.step:08d}_{first}_{second}.mp4"
    sequence = images + images[::-1]
    height, width = sequence[0].shape[:2]
    padded = [np.pad(f, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge") for f in sequence]
    imageio.mimwrite(video, padded, fps=30, macro_block_size=1)
    return [folder, video]
