"""The splatting task: 3D Gaussians fitted to posed images, the engine choosing the views.

Units are the training views, or the ``n x n`` tiles of each (sampler shape ``views`` or
``(views, n, n)``). A step renders the drawn units (a tile is its view's camera with the principal
point moved), scores each by ``(1 - lambda) L1 + lambda (1 - SSIM)``, minimises the importance-
weighted mean with one Adam per parameter (gsplat's rates), then runs density control, which
resizes the parameters and their Adam moments. Each unit's loss goes back to the sampler. The
uniform part of every draw (all of it under the uniform strategy, the uniform component's share
under adaptive) comes in shuffled epochs, as gsplat's data loader serves views.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from foveate.data import Cameras, Scene
from foveate.data.splat_ply import load_splat_ply, save_splat_ply
from foveate.models.densify import DefaultStrategy, MCMCStrategy
from foveate.models.gaussians import gsplat_available, num_sh_bases, rasterize
from foveate.sampling import Draw
from foveate.train import ImageQuality, Metric, OptimConfig, Optimization, StepOutput, Task, Validation, psnr_from_mse
from foveate.train.epochs import ShuffledEpochs
from foveate.train.metrics import ssim_per_image
from foveate.train.visuals import error_visuals

from ..orbit import OrbitOptions, to_uint8
from ..scenes import load_training_scene, scene_box, split_views
from .config import InitConfig, SplatConfig

__all__ = [
    "SplatModel",
    "SplatTask",
    "initial_splats",
    "nearest_distances",
    "scene_scale",
    "tile_cameras",
    "unit_losses",
    "view_matrices",
    "write_cameras_json",
]

SH_C0 = 0.28209479177387814
"""The degree-0 SH basis: a colour c is stored as (c - 0.5) / SH_C0."""


def nearest_distances(points: torch.Tensor, k: int = 3, chunk: int = 4096) -> torch.Tensor:
    """``(P,)`` root-mean-square distance of each point to its ``k`` nearest others (exact, chunked)."""
    if len(points) <= k:
        raise ValueError(f"need more than {k} points to measure their spacing, got {len(points)}")
    rows = []
    for block in points.split(chunk):
        distances = torch.cdist(block, points)
        nearest = distances.topk(k + 1, dim=1, largest=False).values[:, 1:]
        rows.append(nearest.square().mean(dim=1).sqrt())
    return torch.cat(rows)


def initial_splats(
    points: torch.Tensor, colors: torch.Tensor, config: InitConfig, sh_degree: int
) -> dict[str, torch.Tensor]:
    """gsplat's start: isotropic splats as large as their neighbours' spacing, random rotations,
    ``config.opacity``, the points' colours as degree-0 SH and zero higher bands.

    Args:
        points: ``(P, 3)`` positions. colors: ``(P, 3)`` in [0, 1].
    """
    spacing = nearest_distances(points).clamp_min(1e-7) * config.scale
    count = len(points)
    return {
        "means": points.clone(),
        "scales": spacing.log()[:, None].repeat(1, 3),
        "quats": torch.rand(count, 4, device=points.device),
        "opacities": torch.full((count,), math.log(config.opacity / (1 - config.opacity)), device=points.device),
        "sh0": ((colors - 0.5) / SH_C0)[:, None, :].clone(),
        "shN": torch.zeros(count, num_sh_bases(sh_degree) - 1, 3, device=points.device),
    }


def scene_scale(cameras: Cameras) -> float:
    """gsplat's scene scale: 1.1 x the largest distance of a camera centre from their mean."""
    centres = cameras.camera_to_world[:, :3, 3]
    return 1.1 * float((centres - centres.mean(dim=0)).norm(dim=1).max().clamp_min(1e-6))


def view_matrices(cameras: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 4, 4)`` world-to-camera matrices and ``(N, 3, 3)`` intrinsic matrices of ``cameras``."""
    viewmats = torch.linalg.inv(cameras.camera_to_world)
    fx, fy, cx, cy = cameras.intrinsics.unbind(-1)
    zeros, ones = torch.zeros_like(fx), torch.ones_like(fx)
    Ks = torch.stack((fx, zeros, cx, zeros, fy, cy, zeros, zeros, ones), dim=-1).view(-1, 3, 3)
    return viewmats, Ks


def tile_cameras(Ks: torch.Tensor, width: int, height: int, tiles: int) -> torch.Tensor:
    """``(N * tiles^2, 3, 3)`` intrinsics of each camera's ``tiles x tiles`` crops, row-major per camera."""
    tile_w, tile_h = width // tiles, height // tiles
    ty, tx = torch.meshgrid(torch.arange(tiles), torch.arange(tiles), indexing="ij")
    shift = torch.zeros(tiles * tiles, 3, 3, device=Ks.device)
    shift[:, 0, 2] = tx.reshape(-1).to(Ks.device) * tile_w
    shift[:, 1, 2] = ty.reshape(-1).to(Ks.device) * tile_h
    return (Ks[:, None] - shift[None]).reshape(-1, 3, 3)


def unit_losses(rendered: torch.Tensor, target: torch.Tensor, ssim_lambda: float) -> dict[str, torch.Tensor]:
    """Per-image ``loss``, ``l1`` and ``ssim`` of ``(B, H, W, 3)`` renders against targets in [0, 1].

    ``loss = (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim)``, SSIM with an 11 x 11 Gaussian
    window (sigma 1.5), as 3DGS and gsplat train with (:func:`foveate.train.metrics.ssim_per_image`).
    """
    l1 = (rendered - target).abs().mean(dim=(1, 2, 3))
    if ssim_lambda == 0:
        return {"loss": l1, "l1": l1}
    ssim = ssim_per_image(rendered, target)
    return {"loss": (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim), "l1": l1, "ssim": ssim}


class SplatModel(nn.Module):
    """Splats as gsplat stores them: ``means``, log ``scales``, wxyz ``quats``, logit ``opacities``,
    ``sh0`` ``(N, 1, 3)`` and ``shN`` ``(N, K - 1, 3)``, in one parameter dict whose rows density
    control adds and removes."""

    def __init__(self, splats: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self.splats = nn.ParameterDict({name: nn.Parameter(value) for name, value in splats.items()})

    def __len__(self) -> int:
        return len(self.splats["means"])

    def rasterize(
        self, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int, sh_degree: int, **options: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Render into the cameras: :func:`~foveate.models.gaussians.rasterize` with the stored forms activated."""
        s = self.splats
        return rasterize(
            s["means"],
            s["quats"],
            torch.exp(s["scales"]),
            torch.sigmoid(s["opacities"]),
            torch.cat((s["sh0"], s["shN"]), dim=1),
            viewmats,
            Ks,
            width,
            height,
            sh_degree=sh_degree,
            **options,
        )

    def load_resized(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load ``state_dict()`` output of any splat count, keeping each parameter object (optimizers hold them)."""
        expected = {f"splats.{name}" for name in self.splats}
        if set(state) != expected:
            raise ValueError(f"checkpoint holds {sorted(state)}, a splat model holds {sorted(expected)}")
        for name, parameter in self.splats.items():
            parameter.data = state[f"splats.{name}"].to(parameter.device, parameter.dtype).clone()


class SplatTask(Task):
    """A Gaussian-splatting fit.

    Args:
        scene: the scene (all views); ``config`` says which are held out.
        config: the pipeline's config.
        device: where images, cameras and splats live.
    """

    name = "splat"
    metric = Metric("psnr", True, "held-out PSNR (dB)")
    unit_noun = "views"
    draws_units = False

    def __init__(self, scene: Scene, config: SplatConfig, device: torch.device) -> None:
        if not 0 <= config.sh_degree <= 3:
            raise ValueError(f"--sh-degree must be 0 to 3, got {config.sh_degree}")
        tiles = config.views.tiles
        if tiles < 1 or scene.width % tiles or scene.height % tiles:
            raise ValueError(
                f"--views.tiles {tiles} must be >= 1 and divide the image sides ({scene.width} x {scene.height})"
            )
        if config.ssim_lambda > 0 and min(scene.width, scene.height) // tiles < 11:
            raise ValueError(
                f"--views.tiles {tiles} makes tiles under 11 pixels, SSIM's window; use fewer tiles or --ssim-lambda 0"
            )
        if not 0 < config.init.opacity < 1:
            raise ValueError(f"--init.opacity must be in (0, 1), got {config.init.opacity}")
        if config.sh_degree_interval < 1:
            raise ValueError(f"--sh-degree-interval must be >= 1, got {config.sh_degree_interval}")
        train_views, held_out = split_views(scene, config.val_every)
        train, validation = scene.select(train_views), scene.select(held_out)
        self.config = config
        self.device = device
        self.scene_name = Path(config.scene).name or "scene"
        self.backend = _backend(config.backend, device)
        self.tiles = tiles
        self.width, self.height = scene.width // tiles, scene.height // tiles
        self.train_cameras = train.cameras.to(device)
        viewmats, Ks = view_matrices(self.train_cameras)
        self.unit_viewmats = viewmats.repeat_interleave(tiles * tiles, dim=0)
        self.unit_Ks = tile_cameras(Ks, scene.width, scene.height, tiles)
        self.unit_images = _tiled(train.images, tiles).to(device)
        units = len(self.unit_images)
        self.unit_shape = units if tiles == 1 else (train.num_views, tiles, tiles)
        if tiles > 1:
            self.unit_noun = "view tiles"
        self.val_cameras = validation.cameras[: max(1, config.val_views)].to(device)
        self.val_images = validation.images[: max(1, config.val_views)].to(device)
        self.scene_scale = scene_scale(scene.cameras)
        self.background = torch.tensor(config.background, dtype=torch.float32, device=device)
        self.strategy = _strategy(config)
        self.strategy_state = self.strategy.initialize_state(self.scene_scale) if self.strategy else {}
        self.epochs = ShuffledEpochs(units, device, seed=config.train.seed + config.sampling.draw_seed_offset)
        points, colors = _starting_points(scene, config.init)
        self.model = SplatModel(initial_splats(points.to(device), colors.to(device), config.init, config.sh_degree))

    @classmethod
    def from_config(cls, config: SplatConfig, device: torch.device) -> SplatTask:
        """Load the scene ``config.scene`` names and start its splats on ``device``."""
        return cls(load_training_scene(config.scene, config.downsample), config, device)

    @classmethod
    def run_name(cls, config: SplatConfig) -> str:
        return f"{Path(config.scene).name or 'scene'}-{config.sampling.strategy}"

    @property
    def splats(self) -> nn.ParameterDict:
        return self.model.splats

    def describe(self) -> str:
        views, height, width = len(self.train_cameras), self.train_cameras.height, self.train_cameras.width
        return f"{self.scene_name} ({views} training views of {width} x {height}, {self.backend} rasteriser)"

    def configure_optimizers(self, config: OptimConfig, total_steps: int) -> None:
        """One Adam per parameter at gsplat's rates times ``config.lr``, scaled for a batch of B images
        (rates x sqrt(B), eps / sqrt(B), betas to the B-th power); the means' rate decays exponentially.

        B counts whole images: a batch of n x n view tiles is B = batch / n^2. gsplat writes the betas'
        scaling as 1 - B (1 - beta), the first-order form of beta^B, which is negative from B = 10.
        """
        rates = self.config.lr
        batch = self.config.train.batch_size / self.config.views.tiles**2
        betas = (config.betas[0] ** batch, config.betas[1] ** batch)
        self.optimizers = {}
        for name, parameter in self.splats.items():
            rate = getattr(rates, name) * (self.scene_scale if name == "means" else 1.0)
            self.optimizers[name] = torch.optim.Adam(
                [parameter],
                lr=rate * config.lr * math.sqrt(batch),
                betas=betas,
                eps=config.eps / math.sqrt(batch),
                fused=parameter.is_cuda,
            )
        gamma = rates.means_final_fraction ** (1.0 / max(total_steps, 1))
        self.schedulers = {"means": torch.optim.lr_scheduler.ExponentialLR(self.optimizers["means"], gamma)}

    def sh_degree_at(self, step: int) -> int:
        """The SH degree in use at ``step``: one more every ``sh_degree_interval`` steps, up to ``sh_degree``."""
        return min(step // self.config.sh_degree_interval, self.config.sh_degree)

    def draw(self, count: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit ids and importance weights for one step: the sampler's draw, its uniform part from shuffled epochs."""
        supply = self.epochs.next if self.config.views.shuffled_epochs else None
        draw = self.sampler.sample(count, step, uniform_ids=supply)
        return draw.ids, draw.weights

    def render_units(self, ids: torch.Tensor, sh_degree: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """``(B, h, w, 3)`` renders of the units ``ids`` and the rasteriser's meta."""
        rgb, _, meta = self.model.rasterize(
            self.unit_viewmats[ids],
            self.unit_Ks[ids],
            self.width,
            self.height,
            sh_degree,
            backgrounds=self.background.expand(len(ids), 3),
            near_plane=self.config.near_plane,
            far_plane=self.config.far_plane,
            backend=self.backend,
        )
        return rgb, meta

    def training_step(self, batch: Draw | None, step: int, optimization: Optimization) -> StepOutput:
        """Render the drawn units, minimise their weighted loss, then grow, split, prune or relocate."""
        ids, weights = self.draw(self.config.train.batch_size, step)
        self.model.train()
        with optimization.autocast():
            rendered, meta = self.render_units(ids, self.sh_degree_at(step))
        target = self.unit_images[ids].to(torch.float32) / 255.0
        losses = unit_losses(rendered.float(), target, self.config.ssim_lambda)
        loss = (weights * losses["loss"]).mean()
        optimization.minimize(loss)
        counts = self._control_density(step, meta)
        self.sampler.update(ids, losses["loss"].detach(), step)
        terms: dict[str, torch.Tensor | float] = {name: value.detach().mean() for name, value in losses.items()}
        terms.update(splats=float(len(self.model)), **{name: float(value) for name, value in counts.items()})
        return StepOutput(loss.detach(), None, terms)

    def _control_density(self, step: int, meta: dict[str, Any]) -> dict[str, int]:
        if isinstance(self.strategy, DefaultStrategy):
            return self.strategy.step_post_backward(
                self.splats, self.optimizers, self.strategy_state, step, meta, reduce=self.ranks.sum_
            )
        if isinstance(self.strategy, MCMCStrategy):
            lr = self.optimizers["means"].param_groups[0]["lr"]
            return self.strategy.step_post_backward(self.splats, self.optimizers, self.strategy_state, step, meta, lr)
        return {}

    @torch.no_grad()
    def render_view(self, cameras: Cameras, index: int) -> torch.Tensor:
        """Camera ``index`` of ``cameras`` rendered with every SH band: ``(H, W, 3)`` in [0, 1]."""
        viewmats, Ks = view_matrices(cameras[[index]].to(self.device))
        rgb, _, _ = self.model.rasterize(
            viewmats,
            Ks,
            cameras.width,
            cameras.height,
            self.config.sh_degree,
            backgrounds=self.background[None],
            near_plane=self.config.near_plane,
            far_plane=self.config.far_plane,
            backend=self.backend,
        )
        return rgb[0].float().clamp(0.0, 1.0)

    def validate(self, full: bool) -> Validation:
        """PSNR over the scored held-out views; a full validation adds SSIM and the first view's images."""
        quality = ImageQuality(self.device, ssim=full)
        squared, images, maps = [], {}, {}
        for index in range(len(self.val_cameras)):
            prediction = self.render_view(self.val_cameras, index)
            target = self.val_images[index].to(torch.float32) / 255.0
            squared.append((prediction - target).square().mean())
            if not full:
                continue
            quality.update(prediction, target)
            if not images:
                images, maps = error_visuals(prediction, target)
        metrics = quality.compute() if full else {}
        metrics["psnr"] = float(psnr_from_mse(torch.stack(squared).mean()))
        metrics["splats"] = float(len(self.model))
        return Validation(metrics, images, maps)

    def export(self, run_dir: Path) -> list[Path]:
        """``point_cloud.ply`` (3DGS's format), ``cameras.json`` (3DGS's) and held-out renders beside their
        ground truth in ``renders/``."""
        from PIL import Image

        written = [save_splat_ply(run_dir / "point_cloud.ply", {k: v.detach() for k, v in self.splats.items()})]
        written.append(write_cameras_json(run_dir / "cameras.json", self.train_cameras))
        renders = run_dir / "renders"
        renders.mkdir(parents=True, exist_ok=True)
        for index in range(len(self.val_cameras)):
            prediction = to_uint8(self.render_view(self.val_cameras, index))
            written.append(renders / f"val_{index:03d}.png")
            Image.fromarray(torch.cat((prediction, self.val_images[index]), dim=1).cpu().numpy()).save(written[-1])
        return written

    def render(self, options: OrbitOptions, out: Path, progress: bool = False) -> list[Path]:
        """``foveate render splat``: a novel-view orbit (gif, mp4) into ``out``."""
        from ..orbit import render_orbit

        centres = self.train_cameras.camera_to_world[:, :3, 3]
        forward = self.train_cameras.camera_to_world[:, :3, 2]
        center = _closest_point(centres, forward)
        return render_orbit(self.render_view, self.train_cameras, center, options, out, progress)

    def load_splats(self, path: Path) -> None:
        """Replace the splats by those of a 3DGS ``point_cloud.ply`` (before training starts)."""
        self.model.load_resized({f"splats.{k}": v for k, v in load_splat_ply(path, self.device).items()})

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["density"] = dict(self.strategy_state)
        state["epoch"] = self.epochs.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resize the splats to the checkpoint's count, then load the optimizers' moments into them."""
        if set(state["optimizers"]) != set(self.optimizers):
            raise ValueError(
                f"checkpoint has optimizers {sorted(state['optimizers'])}, this task {sorted(self.optimizers)}"
            )
        self.model.load_resized(state["model"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        self.strategy_state = {
            key: value.to(self.device) if torch.is_tensor(value) else value for key, value in state["density"].items()
        }
        self.epochs.load_state_dict(state["epoch"])


def write_cameras_json(path: Path, cameras: Cameras) -> Path:
    """3DGS's ``cameras.json``: per camera its centre, camera-to-world rotation (OpenCV axes), size and focals."""
    c2w = cameras.camera_to_world.cpu()
    intrinsics = cameras.intrinsics.cpu()
    entries = [
        {
            "id": index,
            "img_name": f"{index:05d}",
            "width": cameras.width,
            "height": cameras.height,
            "position": c2w[index, :3, 3].tolist(),
            "rotation": c2w[index, :3, :3].tolist(),
            "fx": float(intrinsics[index, 0]),
            "fy": float(intrinsics[index, 1]),
        }
        for index in range(len(cameras))
    ]
    path.write_text(json.dumps(entries, indent=1))
    return path


def _backend(name: str, device: torch.device) -> str:
    if name == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"
    if name == "gsplat" and device.type != "cuda":
        raise ValueError(f"--backend gsplat runs on CUDA only; this run is on {device} (use --backend torch)")
    return name


def _strategy(config: SplatConfig) -> DefaultStrategy | MCMCStrategy | None:
    choice = config.density.strategy
    if choice not in ("default", "mcmc", "none"):
        raise ValueError(f"--density.strategy must be default, mcmc or none, got {choice!r}")
    return None if choice == "none" else getattr(config.density, choice)


def _tiled(images: torch.Tensor, tiles: int) -> torch.Tensor:
    """``(N, H, W, 3)`` images as ``(N * tiles^2, H / tiles, W / tiles, 3)`` crops, row-major per image."""
    n, height, width, channels = images.shape
    h, w = height // tiles, width // tiles
    crops = images.reshape(n, tiles, h, tiles, w, channels).permute(0, 1, 3, 2, 4, 5)
    return crops.reshape(n * tiles * tiles, h, w, channels).contiguous()


def _starting_points(scene: Scene, config: InitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and colours in [0, 1] to start from: the scene's points, or random in its box."""
    if config.source not in ("auto", "points", "random"):
        raise ValueError(f"--init.source must be auto, points or random, got {config.source!r}")
    if config.source == "points" and scene.points is None:
        raise ValueError("--init.source points: this scene has no sparse points (COLMAP's points3D); use random")
    if config.source != "random" and scene.points is not None:
        colors = scene.point_colors
        colors = torch.rand(len(scene.points), 3) if colors is None else colors.to(torch.float32) / 255.0
        return scene.points, colors
    if config.num_points < 4:
        raise ValueError(f"--init.num-points must be at least 4, got {config.num_points}")
    box = scene_box(scene, config.box_scale)
    points = box[0] + torch.rand(config.num_points, 3) * (box[1] - box[0])
    return points, torch.rand(config.num_points, 3)


def _closest_point(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """The point nearest (least squares) to every line ``origin + t direction``: what the cameras look at."""
    directions = nn.functional.normalize(directions, dim=1)
    projector = torch.eye(3, device=origins.device) - directions[:, :, None] * directions[:, None, :]
    lhs = projector.sum(dim=0)
    rhs = (projector @ origins[:, :, None]).sum(dim=0)
    if float(torch.linalg.matrix_rank(lhs)) < 3:
        return origins.mean(dim=0)
    return torch.linalg.solve(lhs, rhs).squeeze(1)
