"""Multi-view scenes: posed images with masks, and the choice of the format to read them from.

The readers and writers live in :mod:`foveate.data.formats`, one module per format:

- ``blender``: NeRF-synthetic ``transforms_{train,val,test}.json``;
- ``transforms``: a single ``transforms.json`` as instant-ngp and nerfstudio write it;
- ``neus``: NeuS / IDR ``image/``, ``mask/`` and ``cameras_sphere.npz``;
- ``rnb``: RNb-NeuS ``normal/``, ``albedo/``, ``mask/`` and ``cameras.npz`` (normal maps, no photos);
- ``colmap``: ``images/`` and a COLMAP sparse model (text or binary).

:func:`load_scene` reads any of them (detected by :func:`detect_format` unless named).
``load_blender``, ``save_blender``, ``load_neus`` and ``save_neus`` remain importable from here.
Malformed input raises :class:`SceneFormatError` naming the file and the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .cameras import Cameras

if TYPE_CHECKING:
    from .formats.blender import BLENDER_SPLITS, load_blender, save_blender
    from .formats.neus import load_neus, save_neus

__all__ = [
    "BLENDER_SPLITS",
    "SCENE_FORMATS",
    "Scene",
    "SceneFormatError",
    "detect_format",
    "load_blender",
    "load_neus",
    "load_scene",
    "save_blender",
    "save_neus",
    "shrink_uint8",
]

SCENE_FORMATS = ("blender", "transforms", "neus", "rnb", "colmap")
"""The formats :func:`load_scene` reads, in the order :func:`detect_format` tries them."""


class SceneFormatError(ValueError):
    """A scene file is missing or malformed; the message names the file and the frame."""


@dataclass
class Scene:
    """Posed images of one scene, held on the CPU.

    Attributes:
        images: ``(N, H, W, 3)`` uint8: the colour each camera saw, over black where the view
            is transparent (colours read from RGBA files are premultiplied by alpha).
        cameras: the ``N`` cameras, OpenCV axes (see :mod:`foveate.data.cameras`).
        names: one name per view (file stems).
        masks: ``(N, H, W)`` uint8 coverage (255 = object), or ``None``.
        depths: ``(N, H, W)`` float32 distance along each pixel's ray, 0 where nothing is hit.
        normals: ``(N, H, W, 3)`` float32 world-space unit normals, 0 where nothing is hit.
        albedos: ``(N, H, W, 3)`` uint8 diffuse reflectance, linear (``round(255 * albedo)``, no
            sRGB curve), 0 where nothing is hit; or ``None``. RNb-NeuS scenes and renders have it.
        splits: view indices per split, e.g. ``{"train": [...], "val": [...], "test": [...]}``.
        normalization: ``(4, 4)`` float64 map from the unit sphere around the region to
            reconstruct to world coordinates (NeuS's ``scale_mat``).
        points: ``(P, 3)`` float32 world positions of a sparse reconstruction (COLMAP's
            ``points3D``), e.g. to initialise Gaussian splats, or ``None``.
        point_colors: ``(P, 3)`` uint8 colours of ``points``, or ``None``.
        noise: ``(N, H, W)`` float32 variance of each pixel's value around the noiseless image, in
            the images' units (display values in [0, 1], averaged over RGB): the target's own noise,
            which no model can fit (a path tracer's Monte Carlo noise, from ``foveate data render
            --noise``), or ``None``. Read from ``noise.npz`` (one array per view name) beside any format.
    """

    images: torch.Tensor
    cameras: Cameras
    names: list[str]
    masks: torch.Tensor | None = None
    depths: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    albedos: torch.Tensor | None = None
    splits: dict[str, list[int]] = field(default_factory=dict)
    normalization: torch.Tensor = field(default_factory=lambda: torch.eye(4, dtype=torch.float64))
    points: torch.Tensor | None = None
    point_colors: torch.Tensor | None = None
    noise: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n, h, w = self.num_views, self.height, self.width
        if self.images.dtype != torch.uint8 or self.images.shape != (n, h, w, 3):
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.cameras) != n or (self.cameras.height, self.cameras.width) != (h, w):
            raise ValueError(
                f"{len(self.cameras)} cameras of {self.cameras.width}x{self.cameras.height} "
                f"do not match {n} images of {w}x{h}"
            )
        if len(self.names) != n:
            raise ValueError(f"need one name per view: {len(self.names)} names for {n} views")
        expected = {
            "masks": ((n, h, w), torch.uint8),
            "depths": ((n, h, w), torch.float32),
            "normals": ((n, h, w, 3), torch.float32),
            "albedos": ((n, h, w, 3), torch.uint8),
            "noise": ((n, h, w), torch.float32),
        }
        for name, (shape, dtype) in expected.items():
            value = getattr(self, name)
            if value is not None and (value.shape != shape or value.dtype != dtype):
                raise ValueError(f"{name} must be {dtype} {shape}, got {value.dtype} {tuple(value.shape)}")
        if not self.splits:
            self.splits = {"train": list(range(n))}
        for split, indices in self.splits.items():
            if any(not 0 <= i < n for i in indices):
                raise ValueError(f"split {split!r} names views outside [0, {n})")
        self.normalization = torch.as_tensor(self.normalization, dtype=torch.float64)
        self._check_points()

    def _check_points(self) -> None:
        points, colors = self.points, self.point_colors
        if points is not None and (points.dtype != torch.float32 or points.ndim != 2 or points.shape[1] != 3):
            raise ValueError(f"points must be float32 (P, 3), got {points.dtype} {tuple(points.shape)}")
        if colors is None:
            return
        if points is None:
            raise ValueError("point_colors given without points")
        if colors.dtype != torch.uint8 or colors.shape != points.shape:
            raise ValueError(
                f"point_colors must be uint8 {tuple(points.shape)}, like points; "
                f"got {colors.dtype} {tuple(colors.shape)}"
            )

    @property
    def num_views(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    @property
    def num_rays(self) -> int:
        return self.num_views * self.height * self.width

    def select(self, indices: Sequence[int]) -> Scene:
        """The views at ``indices``, as a scene with a single ``train`` split (points kept)."""
        indices = list(indices)
        if not indices:
            raise ValueError("cannot select an empty set of views")
        if indices == list(range(self.num_views)):
            return replace(self, splits={"train": indices})
        index = torch.as_tensor(indices, dtype=torch.long)

        def take(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value[index]

        return replace(
            self,
            images=self.images[index],
            cameras=self.cameras[index.to(self.cameras.device)],
            names=[self.names[i] for i in index.tolist()],
            masks=take(self.masks),
            depths=take(self.depths),
            normals=take(self.normals),
            albedos=take(self.albedos),
            noise=take(self.noise),
            splits={"train": list(range(index.numel()))},
        )

    def split(self, name: str) -> Scene:
        """The views of split ``name`` (``train``, ``val``, ``test``)."""
        if name not in self.splits or not self.splits[name]:
            raise KeyError(f"scene has no views in split {name!r}; splits: {sorted(self.splits)}")
        return self.select(self.splits[name])

    def downsampled(self, factor: int) -> Scene:
        """The scene shrunk by an integer ``factor``: cameras, and images, masks, albedos and normals by a box filter.

        Normals are averaged over each block and renormalised; a block with no normal (or with no
        coverage, where the scene has masks) gets 0. Depths are dropped (an average of depths
        across an edge is no surface); points are kept. A block's noise is its mean variance over
        the block's pixel count (the variance of an average of independent pixels).
        """
        if factor == 1:
            return self
        cameras = self.cameras.downsampled(factor)

        def shrink(values: torch.Tensor) -> torch.Tensor:
            return torch.cat([shrink_uint8(values[i : i + 1], factor) for i in range(self.num_views)])

        masks = None if self.masks is None else shrink(self.masks[..., None])[..., 0]
        normals = None
        if self.normals is not None:
            planar = F.avg_pool2d(self.normals.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)
            length = planar.norm(dim=-1, keepdim=True)
            keep = length > 1e-6
            if masks is not None:
                keep &= masks[..., None] > 0
            normals = torch.where(keep, planar / length.clamp_min(1e-6), 0.0).contiguous()
        return replace(
            self,
            images=shrink(self.images),
            cameras=cameras,
            masks=masks,
            depths=None,
            normals=normals,
            albedos=None if self.albedos is None else shrink(self.albedos),
            noise=None if self.noise is None else F.avg_pool2d(self.noise[:, None], factor)[:, 0] / factor**2,
        )


def shrink_uint8(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor x factor`` blocks of ``(N, H, W, C)`` uint8 images (partial blocks dropped)."""
    planar = images.permute(0, 3, 1, 2).to(torch.float32)
    shrunk = F.avg_pool2d(planar, factor)
    return shrunk.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _format_modules() -> dict[str, ModuleType]:
    """The format modules by name; imported here, not at the top, because they import :class:`Scene`."""
    from .formats import blender, colmap, neus, rnb, transforms

    return {"blender": blender, "transforms": transforms, "neus": neus, "rnb": rnb, "colmap": colmap}


def detect_format(path: str | Path) -> str:
    """The name of the first format in :data:`SCENE_FORMATS` whose files are in directory ``path``."""
    root = Path(path)
    if not root.is_dir():
        raise SceneFormatError(f"{root}: scene directory not found")
    modules = _format_modules()
    for name in SCENE_FORMATS:
        if modules[name].detect(root):
            return name
    looked_for = "; ".join(modules[name].LOOKS_FOR for name in SCENE_FORMATS)
    raise SceneFormatError(f"{root}: no scene found; looked for {looked_for}")


def load_scene(path: str | Path, format: str | None = None, require_masks: bool = False) -> Scene:
    """Read a scene directory in ``format`` (one of :data:`SCENE_FORMATS`, or ``None`` to detect it).

    Args:
        path: the scene directory.
        format: ``"blender"``, ``"transforms"``, ``"neus"``, ``"rnb"``, ``"colmap"`` or ``None``.
        require_masks: fail, naming the frame, where a view has no mask.
    """
    if format is not None and format not in SCENE_FORMATS:
        raise ValueError(f"scene format must be one of {SCENE_FORMATS} or None, got {format!r}")
    from .formats import load_blender, load_colmap, load_neus, load_rnb, load_transforms

    loaders = {
        "blender": load_blender,
        "transforms": load_transforms,
        "neus": load_neus,
        "rnb": load_rnb,
        "colmap": load_colmap,
    }
    scene = loaders[format or detect_format(path)](path, require_masks=require_masks)
    noise_file = Path(path) / NOISE_FILE
    return replace(scene, noise=read_noise(noise_file, scene)) if noise_file.is_file() else scene


NOISE_FILE = "noise.npz"
"""Per-pixel noise variance beside a scene, one array per view name (``foveate data render --noise``)."""


def read_noise(file: Path, scene: Scene) -> torch.Tensor:
    """``(N, H, W)`` float32 noise of ``scene``'s views from ``file``, matched by view name."""
    try:
        arrays = np.load(file)
    except (OSError, ValueError) as error:
        raise SceneFormatError(f"{file}: unreadable ({error})") from None
    missing = [name for name in scene.names if name not in arrays.files]
    if missing:
        raise SceneFormatError(f"{file}: no noise for view(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    noise = np.stack([arrays[name] for name in scene.names]).astype(np.float32)
    if noise.shape != (scene.num_views, scene.height, scene.width):
        raise SceneFormatError(f"{file}: noise maps are {noise.shape[1:]}, the views {scene.height, scene.width}")
    return torch.from_numpy(noise)


def write_noise(file: Path, scene: Scene) -> None:
    """Write ``scene.noise`` as ``file`` (float32 maps keyed by view name)."""
    if scene.noise is None:
        raise ValueError("the scene has no noise maps to write")
    maps = {name: scene.noise[i].numpy() for i, name in enumerate(scene.names)}
    np.savez_compressed(file, **maps)


_MOVED = {
    "BLENDER_SPLITS": "blender",
    "load_blender": "blender",
    "save_blender": "blender",
    "load_neus": "neus",
    "save_neus": "neus",
}
"""Names that moved to :mod:`foveate.data.formats`, by the module that now holds them."""


def __getattr__(name: str) -> object:
    """The readers and writers that moved to :mod:`foveate.data.formats`, still importable from here."""
    if name in _MOVED:
        return getattr(_format_modules()[_MOVED[name]], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
