"""The error-aware data handler: batches of training rays, drawn where the model is wrong.

Every pixel of every training image is a unit of an
:class:`~foveate.sampling.ErrorBasedRaySampler` shaped ``(images, H, W)``; nothing per ray is
stored but the image colours (uint8) and the sampler's statistics: rays are made on the device
from ``(image, y, x)`` at draw time. At 2^28 rays that is 11.6 bytes per ray resident
(``benchmarks/results/handler.md``).

Two surfaces over the same data. foveate's: :meth:`~ErrorAwareDataHandler.sample` and
:meth:`~ErrorAwareDataHandler.update` over :class:`RayBatch` es. RadFoam's (the seed's
``error_aware_data_handler.py``): :func:`create_error_aware_data_handler`,
``reload(split=..., downsample=...)``, iterators yielding RadFoam's tuples,
``update_error_map(losses)``, ``get_error_statistics()`` and the camera and point attributes
RadFoam's ``train.py`` reads. ``docs/radfoam.md`` tables where the two differ from RadFoam's code.

On CUDA, pass ``check_inputs=False`` in ``sampler_config`` to spare the sampler's input check
its host synchronisation at every update.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch

from foveate.files import atomic_write_json
from foveate.sampling import ErrorBasedRaySampler, Layout

from .cameras import Cameras, DownsampleSchedule
from .radfoam import RadFoamSurface, scene_up
from .scenes import Scene, load_scene, shrink_uint8

__all__ = [
    "RADFOAM_ARGUMENTS",
    "ErrorAwareDataHandler",
    "RayBatch",
    "create_error_aware_data_handler",
    "sampler_arguments",
    "scene_up",
]

log = logging.getLogger(__name__)

RADFOAM_ARGUMENTS = ("update_frequency", "decay", "warmup_iterations", "min_error_weight")
"""The sampler keywords RadFoam's ``create_error_aware_data_handler`` takes."""

WHITE = (1.0, 1.0, 1.0)


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
    """Keyword arguments for :class:`~foveate.sampling.ErrorBasedRaySampler` from a handler's ``sampler_config``.

    Accepts the flat form (``{"strategy": "error_weighted", "decay": 0.9, ...}``) and RadFoam's
    seed form (``{"strategy": ..., "args": {...}}``).
    """
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(
            f"sampler_config must be a mapping or None, got {type(config).__name__}; for RadFoam's "
            "(dataset_args, rays_per_batch, device, ...) form call create_error_aware_data_handler"
        )
    arguments = dict(config or {})
    nested = arguments.pop("args", None)
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise ValueError(f"sampler_config['args'] must be a mapping, got {type(nested).__name__}")
        clash = sorted(set(nested) & set(arguments))
        if clash:
            raise ValueError(f"sampler_config gives {clash} both at the top level and under 'args'")
        arguments.update(nested)
    for reserved in ("shape", "total_rays", "device"):
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


def _every_eighth_held_out(scene: Scene) -> Scene:
    """RadFoam's COLMAP split for a scene that names none: every eighth view (0, 8, ... in name order) is ``test``."""
    if scene.splits != {"train": list(range(scene.num_views))} or scene.num_views < 2:
        return scene
    views = range(scene.num_views)
    return replace(scene, splits={"train": [i for i in views if i % 8], "test": [i for i in views if not i % 8]})


class ErrorAwareDataHandler(RadFoamSurface):
    """Training rays of a scene, drawn uniformly or by the error of each ray.

    Args:
        dataset: a :class:`~foveate.data.scenes.Scene`, a scene directory (any format load_scene reads), or
            RadFoam's ``dataset_args`` (the scene is read from ``data_path / scene``).
        rays_per_batch: rays per batch.
        sampler_config: arguments of the :class:`~foveate.sampling.ErrorBasedRaySampler` (strategy, decay,
            update_frequency, warmup_iterations, min_error_weight, semantics, uniform_fraction,
            correction, ...), flat or as ``{"strategy": ..., "args": {...}}``; ``None`` uses its defaults.
        split: which views to train on (the whole scene if it has no such split).
        device: where colours, cameras, statistics and batches live.
        background: RGB in [0, 1] to composite transparent pixels over (RadFoam uses white for
            Blender scenes), or ``None`` to return the stored colour (over black).
        downsample: initial image downsampling factor (see :meth:`reload`).
        seed: seeds the uniform draws and the sampler.
        gather_only: hold the data and gather batches, but keep no sampler: the ids come from a
            sampler owned elsewhere (foveate's training loop owns one).
        radfoam_tuples: the iterators yield RadFoam's tuples: :meth:`get_iter`
            ``(rays, rgb, alpha, normal, depth, instance)`` and :meth:`get_iter_with_error_sampling`
            the same plus ``ray_indices``, with ``None`` for what the scene lacks. Otherwise they
            yield ``(rays, rgb, alpha)`` and :class:`RayBatch` es.
        debug_constant_error: RadFoam's debug mode: every ray's error is set to 0.001 but every
            250th ray's to 10.0 at each :meth:`reload`, and :meth:`update_error_map` leaves them be.

    Steps: every draw is made for the handler's current ``step`` (warm-up is judged at every
    draw, never frozen when an iterator is created), and ``step`` then advances by one; set it
    directly, pass ``iteration`` to :meth:`get_iter_with_error_sampling`, or pass ``step`` to
    :meth:`update`, to keep it in line with the trainer's.
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
        radfoam_tuples: bool = False,
        debug_constant_error: bool = False,
    ) -> None:
        if not isinstance(rays_per_batch, int) or rays_per_batch < 1:
            raise ValueError(f"rays_per_batch must be a positive int, got {rays_per_batch!r}")
        self.source = _scene_from(dataset)
        self.split = split
        self.scene = self.source.split(split) if self.source.splits.get(split) else self.source
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
        self.radfoam_tuples = radfoam_tuples
        self.debug_constant_error = debug_constant_error
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.step = 0
        self.fallback_reason: str | None = None
        self.sampler: ErrorBasedRaySampler | None = None
        self.reload(downsample)

    # ------------------------------------------------------------------------------------------
    # Data at one resolution

    def reload(self, split: str | int | None = None, downsample: int | None = None) -> None:
        """Hold the views of ``split`` at ``1 / downsample`` resolution and start a sampler for them.

        Both call forms work: foveate's ``reload(2)`` and RadFoam's ``reload(split="train", downsample=2)``.
        ``split=None`` keeps the current views; ``downsample=None`` is full resolution (RadFoam's default).

        A new resolution is a new population of rays, so its sampler starts afresh; with
        RadFoam's schedule (4, 2, 1 at steps 0, 150, 500) every change falls inside the
        default warm-up of 1000 steps, so no error statistics are lost.
        """
        if isinstance(split, int) and not isinstance(split, bool):
            if downsample is not None:
                raise TypeError(f"reload(factor) or reload(split, downsample): got {split!r} and {downsample!r}")
            split, downsample = None, split
        downsample = 1 if downsample is None else downsample
        if not isinstance(downsample, int) or isinstance(downsample, bool) or downsample < 1:
            raise ValueError(f"downsample must be a positive int, got {downsample!r}")
        if split is not None and split != self.split:
            self.scene = self.source.split(split)  # a KeyError names the splits there are
            self.split = split
        self.downsample = downsample
        scene = self.scene
        cameras = scene.cameras.downsampled(downsample)
        size = (cameras.height, cameras.width)
        self.colors = self._shrunk(scene.images, downsample)
        self.alphas = None if scene.masks is None else self._shrunk(scene.masks[..., None], downsample)[..., 0]
        self.cameras: Cameras = cameras.to(self.device)
        self.shape = (scene.num_views, *size)
        self.layout = Layout.from_shape(self.shape)
        self.current_ray_indices: torch.Tensor | None = None
        self._extras: tuple[torch.Tensor | None, torch.Tensor | None] | None = None
        self.sampler = None
        if self.fallback_reason is None and not self.gather_only:
            try:
                self.sampler = ErrorBasedRaySampler(
                    self.shape, device=self.device, seed=self.seed, **self.sampler_arguments
                )
            except torch.OutOfMemoryError as error:
                self._fall_back(error)
            else:
                if self.debug_constant_error:
                    pattern = torch.full((self.num_rays,), 0.001, device=self.device)
                    pattern[::250] = 10.0
                    self.sampler.error_map = pattern

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
                batch = self.gather(draw.ids, draw.weights)
                self.current_ray_indices = batch.ids
                return batch
        return self.sample_uniform()

    def sample_uniform(self) -> RayBatch:
        """One batch of rays drawn uniformly (with replacement) over all training pixels."""
        ids = torch.randint(self.num_rays, (self.rays_per_batch,), generator=self.generator, device=self.device)
        batch = self.gather(ids)
        self.current_ray_indices = batch.ids
        return batch

    def get_iter(self) -> Iterator[tuple[torch.Tensor | None, ...]]:
        """Uniform batches forever: ``(rays[B, 6], rgb[B, 3], alpha[B, 1])``, or with ``radfoam_tuples``
        RadFoam's ``(rays, rgb, alpha, normal, depth, instance)``."""
        while True:
            batch = self.sample_uniform()
            yield self.radfoam_tuple(batch)[:6] if self.radfoam_tuples else (batch.rays, batch.rgb, batch.alpha)

    def get_iter_with_error_sampling(self, iteration: int | None = None) -> Iterator[RayBatch | tuple]:
        """Batches drawn by the sampler, forever: :class:`RayBatch` es, or with ``radfoam_tuples``
        RadFoam's ``(rays, rgb, alpha, normal, depth, instance, ray_indices)``.

        Args:
            iteration: the training step of the first batch (RadFoam passes it); the handler's
                ``step`` is set to it now, and every later draw is for the next step. Unlike
                RadFoam's iterator, which draws for this one iteration for as long as it lives,
                warm-up is judged at every draw.
        """
        if iteration is not None:
            if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
                raise ValueError(f"iteration must be an int >= 0, got {iteration!r}")
            self.step = iteration
        return self._error_guided_batches()

    def _error_guided_batches(self) -> Iterator[RayBatch | tuple]:
        while True:
            batch = self.sample()
            yield self.radfoam_tuple(batch) if self.radfoam_tuples else batch

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
        """Bytes held per component at the current resolution (colours, coverage, cameras, sampler).

        Per-ray normals and depths, held only once RadFoam's tuples have been drawn, appear as ``extras``.
        """
        cameras = self.cameras.camera_to_world.nbytes + self.cameras.intrinsics.nbytes
        if self.cameras.distortion is not None:
            cameras += self.cameras.distortion.nbytes
        memory = {
            "colors": self.colors.nbytes,
            "alphas": 0 if self.alphas is None else self.alphas.nbytes,
            "cameras": cameras,
            "sampler": 0 if self.sampler is None else self.sampler.nbytes(),
        }
        if self._extras is not None:
            memory["extras"] = sum(0 if value is None else value.nbytes for value in self._extras)
        return memory

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
            "split": self.split,
            "downsample": self.downsample,
            "fallback_reason": self.fallback_reason,
            "generator": {"device": self.device.type, "state": self.generator.get_state()},
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (reloading its views at its resolution)."""
        self.fallback_reason = state["fallback_reason"]
        self.reload(split=state.get("split", self.split), downsample=int(state["downsample"]))
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


def create_error_aware_data_handler(
    dataset_args: Any,
    rays_per_batch: int = 1_000_000,
    device: torch.device | str = "cuda",
    error_sampling_config: Mapping[str, Any] | None = None,
    *,
    semantics: str | None = None,
    background: Sequence[float] | None = WHITE,
    seed: int = 0,
    debug_constant_error: bool = False,
    **legacy_kwargs: Any,
) -> ErrorAwareDataHandler:
    """The seed's factory: an :class:`ErrorAwareDataHandler` that yields RadFoam's tuples.

    Args:
        dataset_args: RadFoam's ``dataset_args`` (``data_path`` and ``scene``), a scene directory or a
            :class:`Scene`. With ``dataset_args.dataset == "colmap"`` every eighth view (0, 8, ...
            in name order) is held out as ``test``, as RadFoam's COLMAP loader does.
        rays_per_batch, device: as RadFoam's.
        error_sampling_config: the seed's ``{"strategy": ..., "args": {update_frequency, decay,
            warmup_iterations, min_error_weight}}`` (or the flat form).
        semantics: ``"foveate"`` (default) or ``"radfoam"``; see :class:`~foveate.sampling.ErrorBasedRaySampler`.
        background: colour composited behind transparent pixels: white, as RadFoam's Blender
            loader does (no effect on scenes without masks).
        seed: seeds the draws.
        debug_constant_error: RadFoam's debug mode (see :class:`ErrorAwareDataHandler`).
        **legacy_kwargs: RadFoam's repository form: ``update_frequency``, ``decay``,
            ``warmup_iterations``, ``min_error_weight``.

    Call ``reload(split="train", downsample=...)`` before drawing, as RadFoam's ``train.py`` does.

    Examples:
        >>> handler = create_error_aware_data_handler(dataset_args, 1_000_000, "cuda", config)  # doctest: +SKIP
        >>> handler.reload(split="train", downsample=4)  # doctest: +SKIP
        >>> batches = handler.get_iter_with_error_sampling(iteration=0)  # doctest: +SKIP
        >>> rays, rgb, alpha, normal, depth, instance, ray_indices = next(batches)  # doctest: +SKIP
    """
    unknown = sorted(set(legacy_kwargs) - set(RADFOAM_ARGUMENTS))
    if unknown:
        raise TypeError(
            f"create_error_aware_data_handler() got unknown keyword(s) {unknown}; RadFoam's are {RADFOAM_ARGUMENTS}"
        )
    config = sampler_arguments(error_sampling_config)
    clash = sorted(set(config) & set(legacy_kwargs))
    if clash:
        raise ValueError(f"{clash} given both in error_sampling_config and as keywords")
    config.update(legacy_kwargs)
    if semantics is not None and config.setdefault("semantics", semantics) != semantics:
        raise ValueError(f"semantics given twice: {semantics!r} and {config['semantics']!r} in error_sampling_config")
    scene = _scene_from(dataset_args)
    if getattr(dataset_args, "dataset", None) == "colmap":
        scene = _every_eighth_held_out(scene)
    return ErrorAwareDataHandler(
        scene,
        rays_per_batch,
        config,
        device=device,
        background=background,
        seed=seed,
        radfoam_tuples=True,
        debug_constant_error=debug_constant_error,
    )
