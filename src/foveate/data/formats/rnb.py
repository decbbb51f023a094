"""RNb-NeuS scenes: normal maps, optional albedo maps, masks and IDR cameras in ``cameras.npz``.

The layout RNb-NeuS reads (Brument et al., CVPR 2024; ``models/dataset.py`` of ``bbrument/RNb-NeuS``):

- ``cameras.npz``: ``world_mat_i`` and ``scale_mat_i``, exactly as NeuS's ``cameras_sphere.npz``
  (:mod:`.neus` reads and writes both archives);
- ``normal/*.png``: 8- or 16-bit RGB normal maps in the camera frame. A sample ``x`` (its value
  over ``2^bits - 1``) decodes to ``n = 2x - 1``, then y and z are negated: the files hold y up
  and z towards the viewer, foveate's (OpenCV's) camera axes have y down and z forward;
- ``albedo/*.png`` (optional): 8- or 16-bit diffuse reflectance, linear (no sRGB curve);
- ``mask/*.png``: coverage, on where a sample exceeds half its full range.

Views are the normal maps in sorted file-name order; masks and albedo maps are matched to them
by file name. foveate's ``views.json`` (names and splits, as :mod:`.neus` writes it) is read
when present, so a scene written by :func:`save_rnb` keeps its names and splits.

A loaded scene holds world-space normals (each map rotated by its camera's rotation and
renormalised; 0 where the mask is 0 or the decoded vector is shorter than 0.5, which is how
background pixels are written), albedos as uint8 and masks as 0 / 255. The files hold no
photograph, so ``Scene.images`` is a preview: the albedo lit from the camera,
``albedo * max(0, n . v)`` with ``v`` the unit direction from the surface to the camera (the
reversed ray of each pixel), or that shading in grey without albedo maps; linear values, like
the targets RNb-NeuS synthesises from the same maps.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..cameras import Cameras
from ..scenes import Scene, SceneFormatError
from ._common import check_size, frame_label, make_cameras, mask_channel, read_image, read_unit_image, write_png
from .neus import idr_cameras, read_camera_archive, read_views_file, write_camera_archive, write_views_file

__all__ = ["RNB_CAMERAS", "load_rnb", "save_rnb"]

RNB_CAMERAS = "cameras.npz"
LOOKS_FOR = "cameras.npz and normal/*.png (RNb-NeuS)"
FILE_TO_CAMERA = np.array([1.0, -1.0, -1.0])
"""Negates y and z: RNb-NeuS's normal-map axes to OpenCV's camera axes (its own inverse)."""
MIN_DECODED_LENGTH = 0.5
"""A decoded normal shorter than this is no normal (the background, written as mid-grey)."""


def detect(root: Path) -> bool:
    """Whether ``root`` holds a ``cameras.npz`` and PNG normal maps in ``normal/``."""
    return (root / RNB_CAMERAS).is_file() and bool(_pngs(root / "normal"))


def load_rnb(path: str | Path, require_masks: bool = False) -> Scene:
    """Read ``normal/``, ``mask/``, the optional ``albedo/`` and ``cameras.npz`` (see the module docstring).

    Args:
        path: the scene directory.
        require_masks: fail if ``mask/`` is absent; when it exists every normal map needs a mask.
    """
    root = Path(path)
    normal_dir, mask_dir, albedo_dir = root / "normal", root / "mask", root / "albedo"
    camera_file = root / RNB_CAMERAS
    if not normal_dir.is_dir():
        raise SceneFormatError(f"{normal_dir}/: not found (RNb-NeuS scenes need normal maps)")
    normal_paths = _pngs(normal_dir)
    if not normal_paths:
        raise SceneFormatError(f"{normal_dir}/: no normal maps (.png) found")
    count = len(normal_paths)
    arrays = read_camera_archive(camera_file)
    world_mats = sum(1 for key in arrays if re.fullmatch(r"world_mat_\d+", key))
    if world_mats != count:
        raise SceneFormatError(
            f"{camera_file}: {world_mats} world_mat entries for {count} normal maps in {normal_dir}/ "
            "(one camera per normal map is required)"
        )
    if require_masks and not mask_dir.is_dir():
        raise SceneFormatError(f"{mask_dir}/: mask directory not found (masks are required)")
    albedo_paths = _pngs(albedo_dir)
    if albedo_paths and len(albedo_paths) != count:
        raise SceneFormatError(
            f"{albedo_dir}/: {len(albedo_paths)} albedo maps for {count} normal maps in {normal_dir}/ "
            "(one albedo map per normal map, or none)"
        )
    poses, intrinsics, scale = idr_cameras(arrays, camera_file, [p.name for p in normal_paths], "normal map")

    normals, masks, albedos = [], [], []
    size: tuple[int, int] | None = None
    for index, normal_path in enumerate(normal_paths):
        where = frame_label(normal_dir, index, normal_path.name)
        decoded = _rgb(read_unit_image(normal_path, where), normal_path, where, "normal map") * 2.0 - 1.0
        size = check_size(decoded, size, where, "normal map")
        camera_normals = decoded * FILE_TO_CAMERA
        usable = np.linalg.norm(camera_normals, axis=-1) >= MIN_DECODED_LENGTH
        if mask_dir.is_dir():
            mask_path = mask_dir / normal_path.name
            mask_where = frame_label(mask_dir, index, normal_path.name)
            if not mask_path.is_file():
                raise SceneFormatError(f"{mask_where}: mask {mask_path} not found for normal map {normal_path.name}")
            mask = read_image(mask_path, mask_where)
            check_size(mask, size, mask_where, "mask")
            # read_image keeps 8 bits (a 16-bit mask's high byte): above half the range is >= 128 either way.
            covered = mask_channel(mask) >= 128
            masks.append(np.where(covered, 255, 0).astype(np.uint8))
            usable &= covered
        world = camera_normals @ poses[index, :3, :3].T
        world /= np.maximum(np.linalg.norm(world, axis=-1, keepdims=True), 1e-12)
        normals.append(np.where(usable[..., None], world, 0.0).astype(np.float32))
        if albedo_paths:
            albedo_path = albedo_dir / normal_path.name
            albedo_where = frame_label(albedo_dir, index, normal_path.name)
            if not albedo_path.is_file():
                raise SceneFormatError(
                    f"{albedo_where}: albedo map {albedo_path} not found for normal map {normal_path.name}"
                )
            albedo = _rgb(read_unit_image(albedo_path, albedo_where), albedo_path, albedo_where, "albedo map")
            check_size(albedo, size, albedo_where, "albedo map")
            albedos.append(np.rint(albedo * 255.0).astype(np.uint8))

    extra = read_views_file(root, count)
    cameras = make_cameras(poses, intrinsics, np.zeros((count, 5)), size)
    normal_tensor = torch.from_numpy(np.stack(normals))
    albedo_tensor = torch.from_numpy(np.stack(albedos)) if albedos else None
    return Scene(
        images=shaded_preview(normal_tensor, albedo_tensor, cameras),
        cameras=cameras,
        names=extra.get("names", [p.stem for p in normal_paths]),
        masks=torch.from_numpy(np.stack(masks)) if masks else None,
        normals=normal_tensor,
        albedos=albedo_tensor,
        splits=extra.get("splits", {"train": list(range(count))}),
        normalization=torch.from_numpy(scale),
    )


def shaded_preview(normals: torch.Tensor, albedos: torch.Tensor | None, cameras: Cameras) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 ``albedo * max(0, n . v)``, ``v`` pointing from the surface to the camera.

    Args:
        normals: ``(N, H, W, 3)`` world-space unit normals, 0 where there is none.
        albedos: ``(N, H, W, 3)`` uint8 linear albedos, or ``None`` for grey (albedo 1).
        cameras: the ``N`` cameras.
    """
    previews = []
    for index in range(len(cameras)):
        _, directions = cameras.image_rays(index)
        shading = (-directions.cpu() * normals[index]).sum(dim=-1, keepdim=True).clamp_min(0.0)
        albedo = torch.ones(3) if albedos is None else albedos[index].to(torch.float32) / 255.0
        previews.append((albedo * shading * 255.0).round_().clamp_(0, 255).to(torch.uint8))
    return torch.stack(previews)


def save_rnb(scene: Scene, path: str | Path) -> None:
    """Write ``cameras.npz``, ``normal/<i>.png``, ``albedo/<i>.png``, ``mask/<i>.png`` and ``views.json``.

    Normal maps are 16-bit, in each camera's frame, encoded as the reader decodes them
    (y and z negated, then ``(n + 1) / 2``); pixels without a normal, or whose mask is below
    half, are written as ``n = 0`` (mid-grey), which readers take as no normal. Albedo maps are
    8-bit, written only if the scene has albedos. Masks are written as the scene holds them
    (readers threshold them at half); a scene without masks gets the pixels that have a normal.
    ``cameras.npz`` is the archive :func:`~foveate.data.formats.neus.save_neus` writes as
    ``cameras_sphere.npz``, so IDR cameras only: no lens distortion (``ValueError``).

    Raises:
        ValueError: the scene has no normals, or its cameras have lens distortion.
    """
    if scene.normals is None:
        raise ValueError("the RNb-NeuS format is normal maps: save_rnb needs a scene with normals")
    root = Path(path)
    write_camera_archive(scene, root / RNB_CAMERAS)
    rotations = scene.cameras.camera_to_world[:, :3, :3].detach().cpu().double().numpy()
    for i in range(scene.num_views):
        world = scene.normals[i].double().numpy()
        has_normal = np.linalg.norm(world, axis=-1) > 0
        mask = np.where(has_normal, 255, 0).astype(np.uint8) if scene.masks is None else scene.masks[i].numpy()
        in_file = (world @ rotations[i]) * FILE_TO_CAMERA  # world to camera: R^T n, as rows n R
        in_file = np.where((has_normal & (mask >= 128))[..., None], in_file, 0.0)
        samples = np.clip(np.rint((in_file + 1.0) / 2.0 * 65535.0), 0, 65535).astype(np.uint16)
        write_png(root / "normal" / f"{i:03d}.png", samples)
        write_png(root / "mask" / f"{i:03d}.png", mask)
        if scene.albedos is not None:
            write_png(root / "albedo" / f"{i:03d}.png", scene.albedos[i].numpy())
    write_views_file(scene, root)


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() == ".png") if folder.is_dir() else []


def _rgb(array: np.ndarray, path: Path, where: str, what: str) -> np.ndarray:
    if array.shape[2] != 3:
        raise SceneFormatError(f"{where}: {what} {path} has {array.shape[2]} channel(s), expected RGB")
    return array
