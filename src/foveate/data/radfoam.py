"""RadFoam's data-handler surface (seed 000), kept apart from the handler's own API.

:class:`RadFoamSurface` gives :class:`~foveate.data.handler.ErrorAwareDataHandler` the names
RadFoam's ``train.py`` reads (``docs/radfoam.md`` tables every difference from RadFoam's code);
:func:`scene_up` is the up direction its viewer takes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from foveate.sampling import ErrorBasedRaySampler

from .scenes import Scene

if TYPE_CHECKING:
    from .handler import RayBatch

__all__ = ["RadFoamSurface", "scene_up"]

log = logging.getLogger("foveate.data.handler")


def scene_up(camera_to_world: torch.Tensor) -> torch.Tensor:
    """The world direction the cameras hold upright, as RadFoam's viewer takes it.

    The unit vector most nearly orthogonal to every camera's right axis (x) and, with a small
    weight (0.02), to every viewing direction (z): the eigenvector of the smallest eigenvalue of
    ``sum(r r^T) + 0.02 sum(f f^T)``, signed to agree with the cameras' up (minus y, OpenCV axes).
    """
    c2w = camera_to_world.to(torch.float64)
    right, down, forward = c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2]
    scatter = right.T @ right + 0.02 * (forward.T @ forward)
    up = torch.linalg.eigh(scatter).eigenvectors[:, 0]  # eigenvalues ascend
    if float((-down @ up).sum()) < 0:
        up = -up
    return up.to(torch.float32)


class RadFoamSurface:
    """RadFoam's names over an :class:`~foveate.data.handler.ErrorAwareDataHandler`'s state.

    The seed's trainer reads these: the 7-tuples of ``get_iter_with_error_sampling``,
    ``update_error_map(losses)``, ``get_error_statistics()``, ``get_debug_info()``, the viewer's
    camera attributes, ``points3D`` and, for densification, ``rays`` / ``rgbs``. The handler
    supplies ``scene``, ``sampler``, ``shape``, ``downsample``, ``device``, ``colors``, ``alphas``,
    ``background``, ``cameras``, ``rays_per_batch``, ``current_ray_indices``,
    ``debug_constant_error`` and ``_fall_back``.
    """

    scene: Scene
    sampler: ErrorBasedRaySampler | None

    def radfoam_tuple(self, batch: RayBatch) -> tuple[torch.Tensor | None, ...]:
        """``(rays, rgb, alpha, normal[B, 3], depth[B], instance, ray_indices)`` of a batch.

        Normals and depths are the scene's (world-space unit normals; distance along the ray),
        ``None`` when the scene has none; below full resolution each is the centre sample of its
        ``downsample x downsample`` block. foveate's scenes carry no instance labels: always ``None``.
        """
        normals, depths = self._normals_and_depths()
        normal = None if normals is None else normals[batch.ids]
        depth = None if depths is None else depths[batch.ids]
        return batch.rays, batch.rgb, batch.alpha, normal, depth, None, batch.ids

    def _normals_and_depths(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Per-ray normals ``(R, 3)`` and depths ``(R,)`` at the current resolution, made on first use."""
        if self._extras is None:
            factor, (_, height, width) = self.downsample, self.shape
            first = factor // 2

            def per_ray(value: torch.Tensor | None, channels: tuple[int, ...]) -> torch.Tensor | None:
                if value is None:
                    return None
                picked = value[:, first::factor, first::factor][:, :height, :width]
                return picked.reshape(-1, *channels).to(self.device)

            self._extras = (per_ray(self.scene.normals, (3,)), per_ray(self.scene.depths, ()))
        return self._extras

    def update_error_map(self, losses: torch.Tensor | Sequence[float]) -> None:
        """RadFoam's verb: the losses of the last batch drawn (``(B,)``, ``(B, C)`` averaged, or one for all).

        Takes every input :meth:`ErrorBasedRaySampler.update_error_map` takes; a no-op before the
        first draw at this resolution, without a sampler, or in ``debug_constant_error`` mode.
        """
        if self.sampler is None or self.current_ray_indices is None:
            return
        if self.debug_constant_error:
            log.debug("constant error map (debug_constant_error): update skipped")
            return
        if isinstance(losses, torch.Tensor) and losses.ndim == 2:
            losses = losses.mean(dim=1)
        try:
            self.sampler.update_error_map(self.current_ray_indices, losses)
        except torch.OutOfMemoryError as error:
            self._fall_back(error)

    # ------------------------------------------------------------------------------------------
    # RadFoam's attributes

    @property
    def error_sampler(self) -> ErrorBasedRaySampler | None:
        """The sampler (RadFoam's name), or ``None`` without one."""
        return self.sampler

    @property
    def batch_size(self) -> int:
        return self.rays_per_batch

    @property
    def camera_positions(self) -> torch.Tensor:
        """``(N, 3)`` camera centres of the current views (CPU, like the rest of these attributes)."""
        return self.scene.cameras.camera_to_world[:, :3, 3].cpu()

    @property
    def camera_forwards(self) -> torch.Tensor:
        """``(N, 3)`` viewing directions: each camera's z axis."""
        return self.scene.cameras.camera_to_world[:, :3, 2].cpu()

    @property
    def camera_ups(self) -> torch.Tensor:
        """``(N, 3)`` up directions: minus each camera's y axis (OpenCV's y points down)."""
        return -self.scene.cameras.camera_to_world[:, :3, 1].cpu()

    @property
    def viewer_pos(self) -> torch.Tensor:
        return self.camera_positions[0]

    @property
    def viewer_forward(self) -> torch.Tensor:
        return self.camera_forwards[0]

    @property
    def viewer_up(self) -> torch.Tensor:
        return scene_up(self.scene.cameras.camera_to_world.cpu())

    @property
    def points3D(self) -> torch.Tensor | None:
        """``(P, 3)`` float32 sparse points of the scene, or ``None``."""
        return self.scene.points

    @property
    def points3D_colors(self) -> torch.Tensor | None:
        """``(P, 3)`` float32 colours of :attr:`points3D` in [0, 1] (RadFoam's convention), or ``None``."""
        colors = self.scene.point_colors
        return None if colors is None else colors.to(torch.float32) / 255.0

    @property
    def rays(self) -> torch.Tensor:
        """``(N, H, W, 6)`` rays of every pixel at the current resolution, made now on the CPU.

        RadFoam's densification (``collect_error_map``) reads them; 24 bytes per ray, not kept.
        """
        views = [torch.cat(self.cameras.image_rays(i), dim=-1).cpu() for i in range(self.shape[0])]
        return torch.stack(views)

    @property
    def rgbs(self) -> torch.Tensor:
        """``(N, H, W, 3)`` float colours at the current resolution (over the background), made now on the CPU."""
        views = []
        for i in range(self.shape[0]):
            rgb = self.colors[i].to(torch.float32) / 255.0
            if self.background is not None and self.alphas is not None:
                rgb = rgb + self.background * (1.0 - self.alphas[i, ..., None].to(torch.float32) / 255.0)
            views.append(rgb.cpu())
        return torch.stack(views)

    def get_error_statistics(self) -> dict[str, Any]:
        """RadFoam's handler statistics: the sampler's ``get_sampling_info()`` (``{}`` without a sampler)."""
        return {} if self.sampler is None else self.sampler.get_sampling_info()

    def get_debug_info(self) -> dict[str, Any]:
        """The error map's shape, min, max and mean, and in debug mode how many high-error rays the last batch drew."""
        if self.sampler is None:
            return {}
        error = self.sampler.error_map
        ids = self.current_ray_indices
        info: dict[str, Any] = {
            "debug_constant_error": self.debug_constant_error,
            "current_ray_indices_shape": None if ids is None else ids.shape,
            "error_map_shape": error.shape,
            "error_map_min": float(error.min()),
            "error_map_max": float(error.max()),
            "error_map_mean": float(error.mean(dtype=torch.float64)),
        }
        if self.debug_constant_error and ids is not None:
            high = int((error[ids] > 1.0).sum())
            info["high_error_rays_sampled"] = high
            info["high_error_sample_ratio"] = high / ids.numel()
        return info
