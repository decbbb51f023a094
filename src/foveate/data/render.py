"""Ground-truth multi-view scenes rendered with Mitsuba 3: ``foveate data render``.

The scenes: Mitsuba's Cornell box (global illumination, seen through its open side), the
Stanford bunny that pymeshlab ships among its sample meshes (a real scan, watertight), and any
triangle mesh file (``.ply``, ``.obj``, ``.stl``, read with trimesh). The bunny and a mesh file
are moved and scaled into the unit sphere (bounding-box centre at the origin, farthest vertex
at 0.95), lit by a sky and a sun, in a rough plastic (Mitsuba's ``roughplastic``, diffuse
reflectance (0.72, 0.5, 0.32), roughness 0.2). A mesh file with vertex colours is instead
Lambertian (``diffuse``) with the colours as its reflectance (8-bit values over 255, taken as
linear): ``roughplastic`` cannot take Mitsuba's per-vertex texture, which has no mean.

Each view yields RGB (sRGB, 8 bit), coverage (the mask), depth along the ray, world-space
normals, the albedo (the diffuse reflectance Mitsuba's ``albedo`` AOV sees, linear, 8 bit) and
the camera; the output directory holds the scene in the Blender, NeuS and RNb-NeuS layouts side
by side, the ground-truth mesh (``mesh.ply``, world coordinates) and ``render.json``.

Mitsuba's fast ``llvm_ad_rgb`` variant aborts the whole process (SIGABRT) when a mismatched
LLVM is installed, so it is tried in a subprocess first; ``scalar_rgb`` is the fallback.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from foveate.files import atomic_write_json

from .cameras import CAMERA_LAYOUTS, Cameras, camera_positions, look_at
from .formats.rnb import save_rnb
from .scenes import NOISE_FILE, Scene, save_blender, save_neus, write_noise

__all__ = [
    "MESH_SUFFIXES",
    "SCENE_PRESETS",
    "RenderConfig",
    "ScenePreset",
    "bunny_mesh_path",
    "import_mitsuba",
    "main",
    "mitsuba_variant",
    "render",
    "render_views",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'foveate[render]'"
VARIANT_ENV = "FOVEATE_MITSUBA_VARIANT"
"""Set to a Mitsuba variant name to skip the probe and use it."""
FAST_VARIANT, SAFE_VARIANT = "llvm_ad_rgb", "scalar_rgb"
OPENCV_TO_MITSUBA = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Mitsuba cameras look along +z with +y up and +x left; OpenCV's have +y down and +x right."""
NEAR_CLIP = 1e-3
MESH_SUFFIXES = (".ply", ".obj", ".stl")
"""Mesh files ``--scene`` takes besides the named scenes."""
OBJECT_BSDF = {"type": "roughplastic", "diffuse_reflectance": {"type": "rgb", "value": [0.72, 0.5, 0.32]}, "alpha": 0.2}
"""The bunny's material, and a mesh file's unless it has vertex colours."""


@dataclass(frozen=True)
class ScenePreset:
    """Where a scene sits and how cameras look at it by default."""

    center: tuple[float, float, float]
    up: tuple[float, float, float]
    bounding_radius: float
    layout: str
    radius: float
    fov_degrees: float
    cap_axis: tuple[float, float, float] | None = None
    cap_degrees: float = 30.0


SCENE_PRESETS: dict[str, ScenePreset] = {
    # The box spans [-1, 1]^3 and is open towards +z.
    "cornell": ScenePreset((0.0, 0.0, 0.0), (0.0, 1.0, 0.0), math.sqrt(3.0), "cap", 3.9, 39.3, (0.0, 0.0, 1.0), 25.0),
    # The bunny (and a mesh file, in its place) is moved and scaled into the unit sphere.
    "bunny": ScenePreset((0.0, 0.0, 0.0), (0.0, 1.0, 0.0), 1.0, "sphere", 3.2, 45.0),
}


@dataclass
class RenderConfig:
    """Render a multi-view dataset with Mitsuba 3.

    Attributes:
        out: output directory (Blender, NeuS and RNb-NeuS formats side by side, plus mesh.ply).
        scene: 'bunny', 'cornell', or a path to a triangle mesh file (.ply, .obj, .stl) to render in
            the unit sphere like the bunny (vertex colours, if the file has them, as its albedo).
        views: number of training views.
        val_views: number of validation views (placed between training views).
        test_views: number of test views.
        width: image width in pixels.
        height: image height in pixels.
        spp: samples per pixel.
        layout: camera layout ('auto' takes the scene's: a cap for the Cornell box, a sphere otherwise).
        radius: camera distance from the scene centre (default: the scene's).
        fov: horizontal field of view in degrees (default: the scene's).
        elevation: ring elevation in degrees for the 'orbit' layout.
        cap_degrees: half-angle of the 'cap' layout (default: the scene's).
        variant: Mitsuba variant; 'auto' probes llvm_ad_rgb in a subprocess, else scalar_rgb.
        max_depth: path-tracing bounces.
        seed: base seed of the per-view samplers.
        noise: also estimate each pixel's Monte Carlo noise (Mitsuba's moment integrator: the
            samples' second moment) and write its variance in display units as noise.npz.
        progress: show a progress bar.
    """

    out: Path
    scene: str = "bunny"
    views: int = 100
    val_views: int = 10
    test_views: int = 10
    width: int = 400
    height: int = 400
    spp: int = 64
    layout: Literal["auto", "sphere", "hemisphere", "orbit", "cap"] = "auto"
    radius: float | None = None
    fov: float | None = None
    elevation: float = 20.0
    cap_degrees: float | None = None
    variant: Literal["auto", "llvm_ad_rgb", "scalar_rgb"] = "auto"
    max_depth: int = 8
    seed: int = 0
    noise: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.scene not in SCENE_PRESETS and Path(self.scene).suffix.lower() not in MESH_SUFFIXES:
            raise ValueError(
                f"scene must be one of {sorted(SCENE_PRESETS)} or a mesh file ({', '.join(MESH_SUFFIXES)}), "
                f"got {self.scene!r}"
            )
        if self.layout != "auto" and self.layout not in CAMERA_LAYOUTS:
            raise ValueError(f"layout must be 'auto' or one of {CAMERA_LAYOUTS}, got {self.layout!r}")
        for name in ("views", "width", "height", "spp", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("val_views", "test_views"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.fov is not None and not 0.0 < self.fov < 180.0:
            raise ValueError(f"fov must be in (0, 180) degrees, got {self.fov}")

    @property
    def preset(self) -> ScenePreset:
        """The scene's placement and default cameras; a mesh file sits where the bunny does."""
        return SCENE_PRESETS.get(self.scene, SCENE_PRESETS["bunny"])


def import_mitsuba() -> Any:
    """Import Mitsuba, or explain how to install it."""
    try:
        import mitsuba
    except ImportError as error:
        raise ImportError(f"rendering needs Mitsuba 3: {INSTALL_HINT}") from error
    return mitsuba


_PROBE = """
import mitsuba as mi
mi.set_variant({variant!r})
scene = mi.load_dict({{"type": "scene", "integrator": {{"type": "path"}}, "shape": {{"type": "sphere"}},
                      "light": {{"type": "constant"}}}})
sensor = mi.load_dict({{"type": "perspective", "film": {{"type": "hdrfilm", "width": 4, "height": 4}}}})
mi.render(scene, sensor=sensor, spp=1)
"""


@functools.cache
def variant_works(variant: str, timeout: float = 180.0) -> bool:
    """Whether ``variant`` can render, tried in a subprocess so a crash cannot take this one down."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE.format(variant=variant)], capture_output=True, timeout=timeout, text=True
        )
    except subprocess.TimeoutExpired:
        return False
    if result.returncode != 0:
        tail = (result.stderr or "").strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        log.info("Mitsuba variant %s is unusable here: %s", variant, tail[0])
    return result.returncode == 0


def mitsuba_variant(preferred: str = "auto") -> str:
    """The Mitsuba variant to render with: ``preferred``, or ``$FOVEATE_MITSUBA_VARIANT``, or the fastest that works."""
    mi = import_mitsuba()
    preferred = os.environ.get(VARIANT_ENV, preferred) if preferred == "auto" else preferred
    available = set(mi.variants())
    if preferred != "auto":
        if preferred not in available:
            raise ValueError(f"Mitsuba variant {preferred!r} is not available; this build has {sorted(available)}")
        if preferred != SAFE_VARIANT and not variant_works(preferred):
            raise RuntimeError(f"Mitsuba variant {preferred!r} fails to render here (try {SAFE_VARIANT!r})")
        return preferred
    return _fastest_working_variant(frozenset(available))


@functools.cache
def _fastest_working_variant(available: frozenset[str]) -> str:
    if FAST_VARIANT in available and variant_works(FAST_VARIANT):
        return FAST_VARIANT
    if FAST_VARIANT in available:
        log.warning(
            "Mitsuba's %s variant does not run here (often an LLVM mismatch; on Debian 'apt-get install "
            "libllvm19' fixes it); rendering with the slower %s",
            FAST_VARIANT,
            SAFE_VARIANT,
        )
    return SAFE_VARIANT


def bunny_mesh_path() -> Path:
    """The Stanford bunny shipped with pymeshlab's sample meshes."""
    try:
        import pymeshlab
    except ImportError as error:
        raise ImportError(f"the bunny scene needs pymeshlab's sample meshes: {INSTALL_HINT}") from error
    path = Path(pymeshlab.__file__).parent / "tests" / "sample_meshes" / "bunny.obj"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pymeshlab's sample bunny is missing from this installation")
    return path


def _scene_description(mi: Any, scene: str, max_depth: int, moments: bool = False) -> dict:
    """Mitsuba scene dictionary (no sensor) with an AOV integrator around a path tracer.

    ``scene`` is ``"cornell"``, ``"bunny"`` or a mesh file (see the module docstring); ``moments``
    wraps it in Mitsuba's moment integrator, which adds each channel's second moment.
    """
    # An object's sky must not show behind it (misses stay black and transparent); the
    # Cornell box's ceiling light is part of the picture.
    integrator = {
        "type": "aov",
        "aovs": "depth:depth,normal:sh_normal,albedo:albedo",
        "integrator": {"type": "path", "max_depth": max_depth, "hide_emitters": scene != "cornell"},
    }
    if moments:
        integrator = {"type": "moment", "nested": integrator}
    if scene == "cornell":
        description = mi.cornell_box()
        description.pop("sensor")
        description["integrator"] = integrator
        return description
    if scene == "bunny":
        path = bunny_mesh_path()
        loaded = mi.load_dict({"type": "obj", "filename": str(path)})
        vertices = np.array(loaded.vertex_positions_buffer()).reshape(-1, 3)
        to_world = mi.ScalarTransform4f(_into_unit_sphere(vertices))
        shape = {"type": "obj", "filename": str(path), "to_world": to_world, "bsdf": OBJECT_BSDF}
    else:
        shape = _mesh_file_shape(mi, Path(scene))
    return {
        "type": "scene",
        "integrator": integrator,
        "object": shape,
        "sky": {"type": "constant", "radiance": {"type": "rgb", "value": [0.35, 0.4, 0.5]}},
        "sun": {"type": "directional", "direction": [-0.4, -1.0, -0.6], "irradiance": {"type": "rgb", "value": 2.5}},
    }


def _into_unit_sphere(vertices: np.ndarray, radius: float = 0.95) -> np.ndarray:
    """The ``(4, 4)`` similarity putting the bounding-box centre at the origin and the farthest vertex at ``radius``."""
    center = (vertices.min(0) + vertices.max(0)) / 2.0
    extent = float(np.linalg.norm(vertices - center, axis=1).max())
    scale = radius / extent if extent > 0 else 1.0
    to_world = np.diag([scale, scale, scale, 1.0])
    to_world[:3, 3] = -scale * center
    return to_world


def _mesh_file_shape(mi: Any, path: Path) -> Any:
    """A Mitsuba mesh of the triangles in ``path``, in the unit sphere, with its material (see the module docstring).

    The mesh is read with trimesh (Mitsuba reads neither STL nor 8-bit vertex colours as
    reflectances) and handed to Mitsuba as buffers; vertex normals are Mitsuba's, from the faces.
    """
    from .meshes import read_mesh

    mesh = read_mesh(path, merge_vertices=True)
    to_world = _into_unit_sphere(mesh.vertices)
    vertices = mesh.vertices @ to_world[:3, :3].T + to_world[:3, 3]
    properties = mi.Properties()
    if mesh.colors is None:
        properties["bsdf"] = mi.load_dict(OBJECT_BSDF)
    else:
        properties["bsdf"] = mi.load_dict(
            {"type": "diffuse", "reflectance": {"type": "mesh_attribute", "name": "vertex_color"}}
        )
    shape = mi.Mesh(
        path.stem,
        vertex_count=len(vertices),
        face_count=len(mesh.faces),
        props=properties,
        has_vertex_normals=True,
        has_vertex_texcoords=False,
    )
    parameters = mi.traverse(shape)
    floats, indices = type(parameters["vertex_positions"]), type(parameters["faces"])
    parameters["vertex_positions"] = floats(vertices.astype(np.float32).ravel())
    parameters["faces"] = indices(mesh.faces.astype(np.uint32).ravel())
    if mesh.colors is not None:
        shape.add_attribute("vertex_color", 3, floats(mesh.colors.astype(np.float32).ravel()))
    parameters.update()
    return shape


def _split_cameras(config: RenderConfig) -> tuple[torch.Tensor, dict[str, list[int]]]:
    """Camera-to-world transforms of all views and the view indices of each split."""
    preset = config.preset
    layout = preset.layout if config.layout == "auto" else config.layout
    options = {
        "radius": config.radius or preset.radius,
        "center": preset.center,
        "up": preset.up,
        "axis": preset.cap_axis if layout == "cap" else None,
        "cap_degrees": config.cap_degrees or preset.cap_degrees,
        "elevation_degrees": config.elevation,
    }
    counts = {"train": config.views, "val": config.val_views, "test": config.test_views}
    phases = {"train": 0.0, "val": 0.5, "test": 0.25}
    positions, splits, start = [], {}, 0
    for split, count in counts.items():
        if count:
            positions.append(camera_positions(layout, count, phase=phases[split], **options))
            splits[split] = list(range(start, start + count))
            start += count
    return look_at(torch.cat(positions), preset.center, preset.up), splits


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def _view_arrays(channels: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Film channels to (colour over black uint8, coverage uint8, depth, normals, albedo uint8).

    Depth, normals and albedo are each pixel's average over the samples that hit (not over
    black, unlike the colour), 0 where none did.
    """
    rgba = channels["<root>"]
    alpha = np.clip(rgba[..., 3], 0.0, 1.0)
    covered = alpha > 0
    safe_alpha = np.where(covered, alpha, 1.0)
    # Tone-map straight colour, then composite over black in display space (as RGBA files are).
    straight = rgba[..., :3] / safe_alpha[..., None]
    rgb = np.rint(_srgb(straight) * alpha[..., None] * 255.0).astype(np.uint8)
    depth = np.where(covered, channels["depth"] / safe_alpha, 0.0).astype(np.float32)
    normal = channels["normal"]
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.where(length > 1e-8, normal / np.maximum(length, 1e-8), 0.0).astype(np.float32)
    albedo = np.where(covered[..., None], channels["albedo"] / safe_alpha[..., None], 0.0)
    albedo = np.rint(np.clip(albedo, 0.0, 1.0) * 255.0).astype(np.uint8)
    return rgb, np.rint(alpha * 255.0).astype(np.uint8), depth, normal, albedo


def _srgb_slope(linear: np.ndarray) -> np.ndarray:
    """d sRGB / d linear, 0 where the display value is clipped."""
    slope = np.where(linear <= 0.0031308, 12.92, 1.055 / 2.4 * np.power(np.maximum(linear, 0.0031308), 1.0 / 2.4 - 1.0))
    return np.where((linear < 0.0) | (linear > 1.0), 0.0, slope)


def pixel_noise(mean: np.ndarray, second_moment: np.ndarray, spp: int) -> np.ndarray:
    """Variance of each pixel's displayed value, averaged over RGB, from its samples' moments.

    ``mean`` and ``second_moment`` are ``(H, W, C)`` linear per-sample moments (C >= 3); the
    variance of the pixel's mean over ``spp`` samples, ``(m2 - m1^2) / (spp - 1)`` (unbiased), goes
    through the sRGB curve to first order.
    """
    variance = np.maximum(second_moment[..., :3] - mean[..., :3] ** 2, 0.0) / max(spp - 1, 1)
    return (variance * _srgb_slope(mean[..., :3]) ** 2).mean(axis=-1).astype(np.float32)


def render_views(config: RenderConfig) -> tuple[Scene, dict[str, Any]]:
    """Render every view of ``config``; returns the scene and what the renderer did."""
    mi = import_mitsuba()
    variant = mitsuba_variant(config.variant)
    mi.set_variant(variant)
    preset = config.preset
    camera_to_world, splits = _split_cameras(config)
    cameras = Cameras.from_fov(camera_to_world, config.width, config.height, config.fov or preset.fov_degrees)
    scene = mi.load_dict(_scene_description(mi, config.scene, config.max_depth, moments=config.noise))
    fov = math.degrees(2.0 * math.atan(config.width / 2.0 / float(cameras.intrinsics[0, 0])))

    images, masks, depths, normals, albedos, noises, seconds = [], [], [], [], [], [], []
    for index in _progress(range(len(cameras)), config.progress, f"rendering {Path(config.scene).name}"):
        start = time.perf_counter()
        sensor = mi.load_dict(
            {
                "type": "perspective",
                "fov": fov,
                "fov_axis": "x",
                "near_clip": NEAR_CLIP,
                "to_world": mi.ScalarTransform4f(camera_to_world[index].double().numpy() @ OPENCV_TO_MITSUBA),
                "film": {
                    "type": "hdrfilm",
                    "width": config.width,
                    "height": config.height,
                    "pixel_format": "rgba",
                    "rfilter": {"type": "box"},
                },
                "sampler": {"type": "independent", "sample_count": config.spp},
            }
        )
        mi.render(scene, sensor=sensor, spp=config.spp, seed=config.seed * 100_003 + index)
        channels = {name: np.array(bitmap, dtype=np.float32) for name, bitmap in sensor.film().bitmap().split()}
        if config.noise:
            noises.append(pixel_noise(channels["<root>"], channels["m2_nested.integrator"], config.spp))
            channels.update({name: channels[f"nested.{name}"] for name in ("depth", "normal", "albedo")})
        rgb, mask, depth, normal, albedo = _view_arrays(channels)
        # Mitsuba starts camera rays on the near plane: add the distance from the eye to it.
        _, directions = cameras.image_rays(index)
        along_axis = (directions @ camera_to_world[index, :3, 2]).numpy()
        depth = np.where(mask > 0, depth + NEAR_CLIP / along_axis, 0.0).astype(np.float32)
        images.append(rgb)
        masks.append(mask)
        depths.append(depth)
        normals.append(normal)
        albedos.append(albedo)
        seconds.append(time.perf_counter() - start)

    normalization = np.diag([preset.bounding_radius * 1.01] * 3 + [1.0])
    normalization[:3, 3] = preset.center
    result = Scene(
        images=torch.from_numpy(np.stack(images)),
        cameras=cameras,
        names=[f"r_{i:03d}" for i in range(len(cameras))],
        masks=torch.from_numpy(np.stack(masks)),
        depths=torch.from_numpy(np.stack(depths)),
        normals=torch.from_numpy(np.stack(normals)),
        albedos=torch.from_numpy(np.stack(albedos)),
        splits=splits,
        normalization=torch.from_numpy(normalization),
        noise=torch.from_numpy(np.stack(noises)) if config.noise else None,
    )
    info = {
        "variant": variant,
        "mitsuba_version": mi.__version__,
        "seconds_per_view": float(np.mean(seconds)),
        "seconds_total": float(np.sum(seconds)),
    }
    return result, {"info": info, "mesh": _world_mesh(scene)}


def _world_mesh(scene: Any) -> tuple[np.ndarray, np.ndarray]:
    """All of the scene's triangles in world coordinates (vertices (V, 3), faces (F, 3))."""
    vertices, faces, offset = [], [], 0
    for shape in scene.shapes():
        if not shape.is_mesh():
            continue
        v = np.array(shape.vertex_positions_buffer(), dtype=np.float64).reshape(-1, 3)
        f = np.array(shape.faces_buffer(), dtype=np.int64).reshape(-1, 3)
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def _write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    import pymeshlab

    meshes = pymeshlab.MeshSet()
    meshes.add_mesh(pymeshlab.Mesh(vertex_matrix=vertices, face_matrix=faces.astype(np.int32)))
    meshes.save_current_mesh(str(path), save_vertex_color=False, save_face_color=False)


def _progress(items: Sequence[int], enabled: bool, description: str):
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=description)


def render(config: RenderConfig) -> Path:
    """Render ``config`` and write the scene (Blender, NeuS and RNb-NeuS layouts), ``mesh.ply`` and ``render.json``."""
    scene, extras = render_views(config)
    out = Path(config.out)
    save_blender(scene, out)
    save_neus(scene, out, geometry=False)
    save_rnb(scene, out)
    _write_mesh(out / "mesh.ply", *extras["mesh"])
    if scene.noise is not None:
        write_noise(out / NOISE_FILE, scene)
    record = {
        "config": {**asdict(config), "out": str(config.out)},
        **extras["info"],
        "views": scene.num_views,
        "splits": {name: len(indices) for name, indices in scene.splits.items()},
        "resolution": [scene.width, scene.height],
        "mesh": "mesh.ply",
        "formats": ["blender", "neus", "rnb"],
        "noise": NOISE_FILE if scene.noise is not None else None,
    }
    atomic_write_json(out / "render.json", record, indent=2)
    return out


def main(argv: Sequence[str]) -> int:
    """``foveate data render``: render a scene or a mesh file to a directory in the three layouts."""
    try:
        import tyro
    except ImportError as error:
        raise ImportError(f"the command line needs tyro: {INSTALL_HINT}") from error
    from .meshes import MeshError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = tyro.cli(RenderConfig, args=list(argv), prog="foveate data render")
    try:
        out = render(config)
    except (FileNotFoundError, MeshError) as error:
        print(f"foveate data render: error: {error}", file=sys.stderr)
        return 2
    info = json.loads((out / "render.json").read_text())
    splits = ", ".join(f"{count} {name}" for name, count in info["splits"].items())
    print(
        f"wrote {info['views']} views of {config.scene} ({splits}) at {config.width}x{config.height}, {config.spp} spp "
        f"({info['variant']}, {info['seconds_per_view']:.2f} s per view) to {out}"
    )
    return 0
