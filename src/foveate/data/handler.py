"""The error-aware data handler: batches of training rays, drawn where the model is wrong.

A drop-in for a RadFoam-shaped trainer (``DataHandler(dataset_args, rays_per_batch)`` whose
``get_iter()`` yields ``(rays[B, 6], rgb[B, 3], alpha[B, 1])``). Every pixel of every
training image is a unit of a :class:`foveate.sampling.Sampler` shaped ``(images, H, W)``;
nothing per ray is stored but the image colours (uint8) and the sampler's statistics: rays
are made on the device from ``(image, y, x)`` at draw time. At 2^28 rays that is 11.6 bytes
per ray resident (``benchmarks/results/handler.md``).

On CUDA, pass ``check_inputs=False`` in ``sampler_config`` to spare the sampler's input check
its host synchronisation at every update.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from foveate.files import atomic_write_json
from foveate.sampling import Layout, Sampler

from .cameras import Cameras, DownsampleSchedule
from .scenes import Scene, load_scene, shrink_uint8

__all__ = ["ErrorAwareDataHandler", "RayBatch", "sampler_arguments"]

log = logging.getLogger(__name__)


class RayBatch(NamedTuple):
    """One batch of training rays.

    ``rays`` is ``(B, 6)``: origins then unit directions (RadFoam's layout); ``rgb`` is the
    target colour in [0, 1] (composited over the handler's background, if it has one);
    ``alpha`` is the coverage in [0, 1]; ``ids`` are the ray ids to report losses against;
    ``weights`` are the sampler's importance weights (ones unless a correction is asked for).
    """

    rays: torch.Tensor
    rgb: torch.Tensor
    alpha: torch.Tensor
    ids: torch.Tensor
    weights: torch.Tensor


def sampler_arguments(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for :class:`~foveate.sampling.Sampler` from a handler's ``sampler_config``.

    Accepts the flat form (``{"strategy": "error_weighted", "decay": 0.9, ...}``) and RadFoam's
    seed form (``{"strategy": ..., "args": {...}}``).
    """
    arguments = dict(config or {})
    nested = arguments.pop("args", None)
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise ValueError(f"sampler_config['args'] must be a mapping, got {type(nested).__name__}")
        clash = sorted(set(nested) & set(arguments))
        if clash:
            raise ValueError(f"sampler_config gives {clash} both at the top level and under 'args'")
        arguments.update(nested)
    for reserved in ("shape", "device"):
        if reserved in arguments:
            raise ValueError(f"sampler_config must not set {reserved!r}: the handler chooses it")
    arguments.setdefault("strategy", "error_weighted")
    return arguments


def _scene_from(dataset: Any) -> Scene:
    """A scene from a :class:`Scene`, a directory, or RadFoam's ``dataset_args`` (``data_path/scene``)."""
    if isinstance(dataset, Scene):
        return dataset
    if isinstance(dataset, (str, os.PathLike)):
        return load_scene(dataset)
    if hasattr(dataset, "data_path") and hasattr(dataset, "scene"):
        return load_scene(Path(dataset.data_path) / dataset.scene)
    raise TypeError(
        "dataset must be a Scene, a scene directory or an object with data_path and scene, "
        f"got {type(dataset).__name__}"
    )


class ErrorAwareDataHandler:
    """Training rays of a scene, drawn uniformly or by the error of each ray.

    Args:
        dataset: a :class:`~foveate.data.scenes.Scene`, a scene directory (any format load_scene reads), or
            RadFoam's ``dataset_args`` (the scene is read from ``data_path / scene``).
        rays_per_batch: rays per batch.
        sampler_config: arguments of the :class:`~foveate.sampling.Sampler` (strategy, decay,
            update_frequency, warmup_iterations, min_error_weight, uniform_fraction, correction,
            ...), flat or as ``{"strategy": ..., "args": {...}}``; ``None`` uses its defaults.
        split: which views to train on (the whole scene if it has no such split).
        device: where colours, cameras, statistics and batches live.
        background: RGB in [0, 1] to composite transparent pixels over (RadFoam uses white for
            Blender scenes), or ``None`` to return the stored colour (over black).
        downsample: initial image downsampling factor (see :meth:`reload`).
        seed: seeds the uniform draws and the sampler.
        gather_only: hold the data and gather batches, but keep no sampler: the ids come from a
            sampler owned elsewhere (foveate's training loop owns one).

    Steps: every draw is made for the handler's current ``step`` (warm-up is judged at every
    draw, never frozen when an iterator is created), and ``step`` then advances by one; set it
    directly, or pass ``step`` to :meth:`update`, to keep it in line with the trainer's.
    """

    def __init__(
        self,
        dataset: Scene | str | os.PathLike | Any,
        rays_per_batch: int,
        sampler_config: Mapping[str, Any] | None = None,
        *,
        split: str = "train",
        device: torch.device | str | None = None,
        background: Sequence[float] | None = None,
        downsample: int = 1,
        seed: int = 0,
        gather_only: bool = False,
    ) -> None:
        if not isinstance(rays_per_batch, int) or rays_per_batch < 1:
            raise ValueError(f"rays_per_batch must be a positive int, got {rays_per_batch!r}")
        scene = _scene_from(dataset)
        self.scene = scene.split(split) if scene.splits.get(split) else scene
        self.rays_per_batch = rays_per_batch
        self.sampler_arguments = sampler_arguments(sampler_config)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.background = None
        if background is not None:
            self.background = torch.as_tensor(background, dtype=torch.float32).to(self.device)
            if self.background.shape != (3,):
                raise ValueError(f"background must be 3 numbers (RGB), got {background!r}")
        self.seed = seed
        self.gather_only = gather_only
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.step = 0
        self.fallback_reason: str | None = None
        self.sampler: Sampler | None = None
        self.reload(downsample)

    # ------------------------------------------------------------------------------------------
    # Data at one resolution

    def reload(self, downsample: int = 1) -> None:
        """Hold the training images at ``1 / downsample`` resolution and start a sampler for them.

        A new resolution is a new population of rays, so its sampler starts afresh; with
        RadFoam's schedule (4, 2, 1 at steps 0, 150, 500) every change falls inside the
        default warm-up of 1000 steps, so no error statistics are lost.
        """
        if not isinstance(downsample, int) or downsample < 1:
            raise ValueError(f"downsample must be a positive int, got {downsample!r}")
        self.downsample = downsample
        scene = self.scene
        cameras = scene.cameras.downsampled(downsample)
        size = (cameras.height, cameras.width)
        self.colors = self._shrunk(scene.images, downsample)
        self.alphas = None if scene.masks is None else self._shrunk(scene.masks[..., None], downsample)[..., 0]
        self.cameras: Cameras = cameras.to(self.device)
        self.shape = (scene.num_views, *size)
        self.layout = Layout.from_shape(self.shape)
        self.sampler = None
        if self.fallback_reason is None and not self.gather_only:
            try:
                self.sampler = Sampler(self.shape, device=self.device, seed=self.seed, **self.sampler_arguments)
            except torch.OutOfMemoryError as error:
                self._fall_back(error)

    def _shrunk(self, images: torch.Tensor, factor: int) -> torch.Tensor:
        """``(N, H, W, C)`` uint8 images on the handler's device, shrunk by ``factor`` one at a time."""
        if factor == 1:
            return images.to(self.device)  # no copy when already there
        size = (images.shape[1] // factor, images.shape[2] // factor)
        out = torch.empty((images.shape[0], *size, images.shape[3]), dtype=torch.uint8, device=self.device)
        for i in range(images.shape[0]):  # one at a time keeps the float temporaries small
            out[i] = shrink_uint8(images[i : i + 1].to(self.device), factor)[0]
        return out

    @property
    def num_rays(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    @property
    def img_wh(self) -> tuple[int, int]:
        """Image width and height at the current resolution (RadFoam's name)."""
        return self.shape[2], self.shape[1]

    # ------------------------------------------------------------------------------------------
    # Batches

    def gather(self, ids: torch.Tensor, weights: torch.Tensor | None = None) -> RayBatch:
        """The rays, colours and coverage of ray ids (row-major over ``(images, H, W)``)."""
        ids = ids.to(self.device)
        origins, directions = self.cameras.rays(*self.layout.unravel(ids))
        rgb = self.colors.view(-1, 3)[ids].to(torch.float32) / 255.0
        if self.alphas is None:
            alpha = torch.ones((ids.shape[0], 1), device=self.device)
        else:
            alpha = self.alphas.view(-1)[ids].to(torch.float32).unsqueeze(1) / 255.0
        if self.background is not None:
            rgb = rgb + self.background * (1.0 - alpha)
        if weights is None:
            weights = torch.ones(ids.shape[0], device=self.device)
        return RayBatch(torch.cat((origins, directions), dim=1), rgb, alpha, ids, weights)

    def sample(self, step: int | None = None) -> RayBatch:
        """One batch drawn by the sampler for ``step`` (default: the handler's step, which then advances)."""
        if step is None:
            step = self.step
            self.step += 1
        if self.sampler is not None:
            try:
                draw = self.sampler.sample(self.rays_per_batch, step)
            except torch.OutOfMemoryError as error:
                self._fall_back(error)
            else:
                return self.gather(draw.ids, draw.weights)
        return self.sample_uniform()

    def sample_uniform(self) -> RayBatch:
        """One batch of rays drawn uniformly (with replacement) over all training pixels."""
        ids = torch.randint(self.num_rays, (self.rays_per_batch,), generator=self.generator, device=self.device)
        return self.gather(ids)

    def get_iter(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """RadFoam's iterator: ``(rays[B, 6], rgb[B, 3], alpha[B, 1])`` drawn uniformly, forever."""
        while True:
            batch = self.sample_uniform()
            yield batch.rays, batch.rgb, batch.alpha

    def get_iter_with_error_sampling(self) -> Iterator[RayBatch]:
        """:class:`RayBatch` es drawn by the sampler, forever; report losses with :meth:`update`."""
        while True:
            yield self.sample()

    def update(self, ids: torch.Tensor, losses: torch.Tensor, step: int | None = None) -> None:
        """Feed back one loss per ray of a batch (detached; any non-negative per-ray loss).

        Args:
            ids: the batch's ``ids``.
            losses: ``(B,)`` per-ray losses (per-channel losses ``(B, C)`` are averaged).
            step: the training step of this batch; the next draw is made for ``step + 1``.
        """
        if losses.ndim == 2:
            losses = losses.mean(dim=1)
        if losses.shape != ids.shape:
            raise ValueError(f"need one loss per ray: ids {tuple(ids.shape)}, losses {tuple(losses.shape)}")
        if step is not None:
            self.step = step + 1
        if self.sampler is None:
            return
        try:
            self.sampler.update(ids, losses.detach(), self.step - 1 if step is None else step)
        except torch.OutOfMemoryError as error:
            self._fall_back(error)

    def _fall_back(self, error: BaseException) -> None:
        self.fallback_reason = f"{type(error).__name__}: {error}"
        self.sampler = None
        log.warning("error-guided sampling failed (%s); drawing rays uniformly from now on", self.fallback_reason)

    # ------------------------------------------------------------------------------------------
    # Reporting and state

    def memory(self) -> dict[str, int]:
        """Bytes held per component at the current resolution (colours, coverage, cameras, sampler)."""
        cameras = self.cameras.camera_to_world.nbytes + self.cameras.intrinsics.nbytes
        if self.cameras.distortion is not None:
            cameras += self.cameras.distortion.nbytes
        return {
            "colors": self.colors.nbytes,
            "alphas": 0 if self.alphas is None else self.alphas.nbytes,
            "cameras": cameras,
            "sampler": 0 if self.sampler is None else self.sampler.nbytes(),
        }

    def bytes_per_ray(self) -> float:
        """Resident bytes per training ray: colours, coverage, cameras and the sampler's state."""
        return sum(self.memory().values()) / self.num_rays

    def stats(self) -> dict[str, Any]:
        """The sampler's statistics plus the handler's own (resolution, memory, fallback)."""
        stats = self.sampler.stats() if self.sampler is not None else {"strategy": "uniform"}
        return {
            **stats,
            "next_step": self.step,
            "downsample": self.downsample,
            "num_rays": self.num_rays,
            "bytes_per_ray": self.bytes_per_ray(),
            "fallback": self.fallback_reason,
        }

    def write_stats(self, path: str | Path) -> None:
        """Write :meth:`stats` as JSON (the seed's ``error_sampling_stats.json``)."""
        atomic_write_json(path, self.stats(), indent=2)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "downsample": self.downsample,
            "fallback_reason": self.fallback_reason,
            "generator": {"device": self.device.type, "state": self.generator.get_state()},
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (reloading at its resolution)."""
        self.fallback_reason = state["fallback_reason"]
        self.reload(int(state["downsample"]))
        self.step = int(state["step"])
        generator = state["generator"]
        if generator["device"] == self.device.type:
            self.generator.set_state(generator["state"])
        else:  # generator states do not move between device types: continue reproducibly instead
            self.generator.manual_seed(self.seed + self.step)
        if self.sampler is not None and state["sampler"] is not None:
            self.sampler.load_state_dict(state["sampler"])

    def follow(self, schedule: DownsampleSchedule, step: int) -> bool:
        """Reload if ``schedule`` asks for another resolution at ``step``; returns whether it did."""
        factor = schedule.factor_at(step)
        if factor == self.downsample:
            return False
        self.reload(factor)
        return True
