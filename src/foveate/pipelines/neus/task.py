"""The NeuS task: rays of the training views as units, the SDF's mesh as what is judged.

Everything happens in NeuS's normalised space, where the scene's scale matrix (``scale_mat``)
maps the unit sphere around the object to the world: cameras are moved there once, meshes are
mapped back to the world when written or measured.

One step draws rays (the sampler's units, ``(views, H, W)`` row-major), renders them with
NeuS's renderer and minimises NeuS's loss: the colour's L1 error over the mask (per light in
RNb mode), ``igr_weight`` times the eikonal term and ``mask_weight`` times the mask's binary
cross-entropy. Each ray's share of that loss is what the sampler is fed.

The metric is the Chamfer-L1 distance between the marching-cubes mesh and the scene's
``mesh.ply``, in percent of its bounding-box diagonal (``foveate data render`` writes one); a
scene without a true mesh is judged by the PSNR of a fixed subset of its rays instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foveate.data import Scene, load_scene
from foveate.data.scenes import detect_format
from foveate.models import OccupancyGrid
from foveate.models.neus_rendering import NeuSModel, SurfaceRender, render_neus, render_neus_marched, sdf_opacity
from foveate.sampling.layout import Layout
from foveate.train import Hook, Metric, Optimization, StepOutput, Task, Validation, psnr_from_mse
from foveate.train.geometry import load_mesh, mesh_distance, sample_surface

from .config import NeuSConfig, check_neus_config
from .lighting import optimal_lights, shade, warmup_lights
from .mesh import extract_mesh, to_world
from .model import build_model, normalized_cameras

__all__ = ["CHAMFER", "NeuSTask", "RayData"]

CHAMFER = Metric("chamfer", False, "Chamfer-L1 (% of the bounding-box diagonal)")
SUBSET_PSNR = Metric("psnr", True, "PSNR of a fixed ray subset (dB)")
QUICK_RAYS = 1 << 12
"""Rays of the fixed subset scored when the scene has no true mesh."""
TRUTH_MESH = "mesh.ply"


@dataclass
class RayData:
    """What one batch of rays needs: where they go, what they should show, and under which lights."""

    origins: torch.Tensor
    directions: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    lights: torch.Tensor | None = None
    relu_shading: bool = False


class NeuSTask(Task):
    """A NeuS (``mode rgb``) or RNb-NeuS (``mode rnb``) reconstruction of one scene.

    Args:
        scene: the scene, with images (rgb) or normals and optionally albedos (rnb), and masks.
        config: the pipeline's config.
        device: where the data and the model live.
        truth: the true mesh ``(vertices, faces)`` in world coordinates, or None (then the task is
            judged by the PSNR of a fixed subset of rays, and comparisons refuse it).
        scene_name: what reports call the scene.
    """

    name = "neus"
    metric = CHAMFER
    unit_noun = "rays"

    def __init__(
        self,
        scene: Scene,
        config: NeuSConfig,
        device: torch.device,
        truth: tuple[np.ndarray, np.ndarray] | None = None,
        scene_name: str = "scene",
    ) -> None:
        check_neus_config(config)
        self.config = config
        self.device = device
        self.scene_name = scene_name
        self.step = 0
        self.normalization = scene.normalization.clone()
        self.cameras = normalized_cameras(scene).to(device)
        self.unit_shape = (scene.num_views, scene.height, scene.width)
        self.layout = Layout.from_shape(self.unit_shape)
        loss = config.loss
        if loss.mask_weight > 0 and scene.masks is None:
            raise ValueError("the scene has no masks (mask/): give --loss.mask-weight 0 or use --preset womask")
        self.masks = None if scene.masks is None else scene.masks.to(device)
        self.background = torch.ones(3, device=device) if loss.white_background else None
        if config.mode == "rnb":
            if scene.normals is None:
                raise ValueError("rnb mode needs normal maps: the scene has none (an RNb scene has normal/*.png)")
            self.normals = scene.normals.to(device)
            albedos = None if config.no_albedo else scene.albedos
            self.albedos = None if albedos is None else albedos.to(device)
            self.warmup = warmup_lights(self.cameras.camera_to_world)
            self.colors = None
        else:
            self.colors = scene.images.to(device)
            self.normals = self.albedos = None
        self.noise = None
        if scene.noise is not None and config.mode == "rgb":
            # A ray's colour error is an L1 sum over RGB; noise of variance v per channel alone
            # gives 3 sqrt(2 v / pi) of it (Gaussian noise), which no surface can remove.
            self.noise = (3.0 * (2.0 * scene.noise / math.pi).sqrt()).reshape(-1).to(device)
        neus = build_model(config)
        modules = {"neus": neus}
        render = config.render
        self.step_size = 2.0 / render.samples_per_ray
        if render.kind == "march":
            cube = torch.tensor([[-1.0] * 3, [1.0] * 3])
            modules["occupancy"] = OccupancyGrid(
                cube, render.occupancy_resolution, self.step_size, render.occupancy_threshold, warmup_updates=16
            )
        self.model = nn.ModuleDict(modules).to(device)
        self.occupancy: OccupancyGrid | None = modules.get("occupancy")
        self.truth = None
        if truth is not None:
            diagonal = float(np.linalg.norm(truth[0].max(axis=0) - truth[0].min(axis=0)))
            self.truth = (sample_surface(*truth, config.chamfer_samples, seed=1), diagonal)
        else:
            self.metric = SUBSET_PSNR
        generator = torch.Generator().manual_seed(0)
        count = min(QUICK_RAYS, self.layout.num_units)
        self.quick_ids = torch.randperm(self.layout.num_units, generator=generator)[:count].sort().values.to(device)

    @classmethod
    def from_config(cls, config: NeuSConfig, device: torch.device) -> NeuSTask:
        """Load the scene (NeuS or RNb layout, by mode) and its true mesh, when it has one."""
        check_neus_config(config)
        if not config.scene:
            raise ValueError("no scene given: pass --scene DIR (a NeuS or RNb scene, e.g. from 'foveate data render')")
        root = Path(config.scene)
        layout = "rnb" if config.mode == "rnb" else detect_format(root)
        if layout == "rnb" and config.mode == "rgb":
            raise ValueError(f"{root} holds an RNb scene (normal maps, no photographs): train it with --mode rnb")
        scene = load_scene(root, format=layout, require_masks=config.loss.mask_weight > 0)
        if config.downsample > 1:
            scene = scene.downsampled(config.downsample)
        truth = load_mesh(root / TRUTH_MESH) if (root / TRUTH_MESH).is_file() else None
        return cls(scene, config, device, truth, root.name or "scene")

    @classmethod
    def run_name(cls, config: NeuSConfig) -> str:
        return f"{Path(config.scene).name or 'scene'}-{config.mode}-{config.sampling.strategy}"

    @property
    def neus(self) -> NeuSModel:
        return self.model["neus"]

    def describe(self) -> str:
        views, height, width = self.unit_shape
        what = "normal maps" if self.config.mode == "rnb" else "images"
        return f"{self.scene_name} ({views} {what} of {width} x {height})"

    # ------------------------------------------------------------------------------------------
    # Rendering

    def hooks(self) -> list[Hook]:
        if self.occupancy is None:
            return []
        return [Hook(self.config.render.occupancy_every, self.update_occupancy)]

    def update_occupancy(self, step: int) -> None:
        """Mark the cells where a step could still be opaque, with the current sharpness."""
        inv_s = self.neus.variance().detach()
        self.occupancy.update(lambda p: sdf_opacity(self.neus.sdf.sdf(p), inv_s, self.step_size), opacity=True)

    def cos_anneal_ratio(self, step: int) -> float:
        end = self.config.loss.anneal_end
        return 1.0 if end == 0 else min(1.0, step / end)

    def render_rays(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        step: int,
        *,
        training: bool,
        lights: torch.Tensor | None = None,
        relu_shading: bool = False,
    ) -> SurfaceRender:
        """Render rays in the normalised space (one pass; callers chunk)."""
        render = self.config.render
        common = {
            "cos_anneal_ratio": self.cos_anneal_ratio(step),
            "background_rgb": self.background,
            "lights": lights,
            "relu_shading": relu_shading,
            "grey": self.config.mode == "rnb" and self.albedos is None,
            "create_graph": training,
        }
        if render.kind == "march":
            return render_neus_marched(
                self.neus,
                origins,
                directions,
                step_size=self.step_size,
                max_samples=render.samples_per_ray,
                occupied=self.occupancy,
                jitter=training and render.perturb,
                **common,
            )
        return render_neus(
            self.neus,
            origins,
            directions,
            n_samples=render.n_samples,
            n_importance=render.n_importance,
            up_sample_steps=render.up_sample_steps,
            n_outside=render.n_outside,
            perturb=training and render.perturb,
            **common,
        )

    def rays(self, ids: torch.Tensor, step: int, headlight: bool = False) -> RayData:
        """Rays, targets and masks of ray ids; in RNb mode the lights and targets are made here.

        ``headlight`` lights RNb's targets from the camera instead of the training phase's three
        lights (pictures for people: the albedo shaded by the view, as the scene's preview).
        """
        image, y, x = self.layout.unravel(ids)
        origins, directions = self.cameras.rays(image, y, x)
        if self.masks is None:
            mask = torch.ones(ids.shape[0], device=ids.device)
        else:
            mask = self.masks.view(-1)[ids].float() / 255.0
        if self.colors is not None:
            target = self.colors.view(-1, 3)[ids].float() / 255.0
            if self.background is not None:
                target = target + self.background * (1.0 - mask[:, None])
            return RayData(origins, directions, target, mask)
        normals = self.normals.view(-1, 3)[ids].float()
        albedo = None if self.albedos is None else self.albedos.view(-1, 3)[ids].float() / 255.0
        if headlight:
            lights, relu = -directions[None], True
        else:
            relu = step < self.config.loss.warm_up_iter
            lights = self.warmup[:, image] if relu else optimal_lights(normals, -directions)
        return RayData(origins, directions, shade(normals, lights, albedo), mask, lights, relu)

    # ------------------------------------------------------------------------------------------
    # Training

    def training_step(self, batch, step: int, optimization: Optimization) -> StepOutput:
        """NeuS's loss on the drawn rays; each ray's share of it goes back to the sampler."""
        self.model.train()
        data = self.rays(batch.ids, step)
        with optimization.autocast():
            out = self.render_rays(
                data.origins, data.directions, step, training=True, lights=data.lights, relu_shading=data.relu_shading
            )
        loss_config = self.config.loss
        mask = (data.mask > 0.5).float() if loss_config.mask_weight > 0 else torch.ones_like(data.mask)
        error = (out.color.float() - data.target).abs().sum(dim=-1)
        if error.ndim == 2:  # (lights, rays): RNb divides by the number of lights
            error = error.mean(dim=0)
        color_error = error * mask
        color_loss = (batch.weights * color_error).sum() / (mask.sum() + 1e-5)
        opacity = out.opacity.float().clip(1e-3, 1.0 - 1e-3)
        mask_error = F.binary_cross_entropy(opacity, mask, reduction="none")
        mask_loss = (batch.weights * mask_error).mean()
        eikonal = out.gradient_error.float()
        loss = color_loss + loss_config.igr_weight * eikonal + loss_config.mask_weight * mask_loss
        optimization.minimize(loss)
        self.step = step + 1
        per_ray = color_error + loss_config.mask_weight * mask_error
        terms = {
            "color": color_loss.detach(),
            "eikonal": eikonal.detach(),
            "mask": mask_loss.detach(),
            "s_val": 1.0 / out.inv_s.detach(),
            "samples_per_ray": out.num_samples / max(1, batch.ids.shape[0]),
        }
        noise = None if self.noise is None else self.noise[batch.ids] * mask
        return StepOutput(loss.detach(), per_ray.detach(), terms, noise)

    # ------------------------------------------------------------------------------------------
    # Measuring

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        return self.neus.sdf.sdf(points)

    def mesh(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """The marching-cubes mesh at ``resolution^3``, in world coordinates."""
        vertices, faces = extract_mesh(
            self.sdf, resolution, self.config.mesh_threshold, device=self.device, chunk=self.config.render.chunk * 64
        )
        return to_world(vertices, self.normalization), faces

    def mesh_metrics(self, resolution: int) -> dict[str, float]:
        """Chamfer-L1 (percent of the true mesh's diagonal, distances capped at the diagonal) and its parts."""
        samples, diagonal = self.truth
        vertices, faces = self.mesh(resolution)
        if len(faces) == 0:
            return {"chamfer": 100.0, "accuracy": 100.0, "completeness": 100.0, "fscore": 0.0}
        tau = 0.01 * diagonal
        reconstruction = sample_surface(vertices, faces, self.config.chamfer_samples, seed=0)
        distance = mesh_distance(reconstruction, samples, (tau,), max_distance=diagonal)
        return {
            "chamfer": 100.0 * distance.chamfer / diagonal,
            "accuracy": 100.0 * distance.accuracy / diagonal,
            "completeness": 100.0 * distance.completeness / diagonal,
            "fscore": distance.fscore[tau],
            "normal_consistency": distance.normal_consistency,
        }

    @torch.no_grad()
    def render_ids(self, ids: torch.Tensor, step: int, headlight: bool = False) -> tuple[SurfaceRender, RayData]:
        """Render ray ids in chunks (no gradients kept); returns the outputs concatenated and the ray data."""
        data = self.rays(ids, step, headlight)
        chunk = self.config.render.chunk
        parts = []
        for start in range(0, ids.shape[0], chunk):
            part = slice(start, start + chunk)
            lights = None if data.lights is None else data.lights[:, part]
            out = self.render_rays(
                data.origins[part],
                data.directions[part],
                step,
                training=False,
                lights=lights,
                relu_shading=data.relu_shading,
            )
            parts.append(out)
        joined = SurfaceRender(
            color=torch.cat([p.color for p in parts], dim=-2),
            opacity=torch.cat([p.opacity for p in parts]),
            normal=torch.cat([p.normal for p in parts]),
            depth=torch.cat([p.depth for p in parts]),
            gradient_error=torch.stack([p.gradient_error for p in parts]).mean(),
            inv_s=parts[0].inv_s,
            num_samples=sum(p.num_samples for p in parts),
        )
        return joined, data

    def view_ids(self, view: int, level: int) -> tuple[torch.Tensor, int, int]:
        """Ray ids of every ``level``-th pixel of training view ``view`` (block centres), with the image size."""
        _, height, width = self.unit_shape
        offset = level // 2
        ys = torch.arange(offset, height - level + offset + 1, level, device=self.device)
        xs = torch.arange(offset, width - level + offset + 1, level, device=self.device)
        ids = (view * height + ys[:, None]) * width + xs[None, :]
        return ids.reshape(-1), len(ys), len(xs)

    def validate(self, full: bool) -> Validation:
        """Quick: the Chamfer distance (or the fixed-subset PSNR). Full: also one view rendered beside its target."""
        metrics: dict[str, float] = {}
        if self.truth is not None:
            metrics.update(self.mesh_metrics(self.config.val_mesh_resolution))
        else:
            out, data = self.render_ids(self.quick_ids, self.step)
            metrics["psnr"] = float(psnr_from_mse((out.color.clamp(0, 1) - data.target).square().mean()))
        if not full:
            return Validation(metrics)
        pictures = self.view_pictures(0, self.config.validate_resolution_level)
        metrics["view_psnr"] = float(psnr_from_mse((pictures["prediction"] - pictures["target"]).square().mean()))
        error = (pictures["prediction"] - pictures["target"]).square().mean(dim=-1)
        pictures["error"] = (error / error.max().clamp(min=1e-12)).sqrt()[..., None]
        return Validation(metrics, pictures, {"error": error})

    def view_pictures(self, view: int, level: int, light: int | None = None) -> dict[str, torch.Tensor]:
        """Training view ``view`` at ``1 / level`` resolution: prediction, target and normals (as colours).

        In RNb mode the prediction and target are lit from the camera, or by light ``light`` of
        the training phase's three when given; the input normals come too.
        """
        ids, height, width = self.view_ids(view, level)
        out, data = self.render_ids(ids, self.step, headlight=light is None)
        light = light or 0
        color, target = out.color, data.target
        if color.ndim == 3:
            color, target = color[light], target[light]
        pictures = {
            "prediction": color.clamp(0, 1).reshape(height, width, 3),
            "target": target.clamp(0, 1).reshape(height, width, 3),
            "normals": _normal_colors(out.normal, self.cameras.camera_to_world[view]).reshape(height, width, 3),
        }
        if self.normals is not None:
            given = self.normals.view(-1, 3)[ids]
            pictures["input_normals"] = _normal_colors(given, self.cameras.camera_to_world[view]).reshape(
                height, width, 3
            )
        return pictures

    def record(self, run_dir: Path) -> list[Path]:
        """``recording/``: the resolved config and the code files that define the model and its training."""
        import inspect
        import shutil

        from foveate.models import hash_grid, neus_rendering, sdf, volume_rendering

        from . import config, lighting, model, task

        recording = run_dir / "recording"
        recording.mkdir(parents=True, exist_ok=True)
        written = [Path(shutil.copyfile(run_dir / "config.yaml", recording / "config.yaml"))]
        for module in (sdf, neus_rendering, hash_grid, volume_rendering, config, lighting, model, task):
            source = Path(inspect.getsourcefile(module))
            written.append(Path(shutil.copyfile(source, recording / source.name)))
        return written

    def export(self, run_dir: Path) -> list[Path]:
        """The mesh at ``mesh_resolution``, in world coordinates, as ``meshes/<step>.ply``."""
        from .mesh import write_ply

        vertices, faces = self.mesh(self.config.mesh_resolution)
        return [write_ply(run_dir / "meshes" / f"{self.step:08d}.ply", vertices, faces)]

    def render(self, options, out: Path, progress: bool = False) -> list[Path]:
        """``foveate render neus --run DIR``: frames between two views and back, and an mp4, into ``out``."""
        from .runner import interpolate

        first, second = options.views
        return interpolate(self, out, first, second, options.frames, options.resolution_level, progress)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "step": self.step}

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        self.step = int(state.get("step", 0))


def _normal_colors(normals: torch.Tensor, camera_to_world: torch.Tensor) -> torch.Tensor:
    """World normals shown as RNb's normal maps do: camera frame, y and z flipped, ``(n + 1) / 2``."""
    camera = normals.float() @ camera_to_world[:3, :3]
    length = camera.norm(dim=-1, keepdim=True)
    camera = torch.where(length > 1e-6, camera / length.clamp(min=1e-6), torch.zeros_like(camera))
    camera = camera * torch.tensor([1.0, -1.0, -1.0], device=camera.device)
    return ((camera + 1.0) / 2.0).clamp(0, 1)
