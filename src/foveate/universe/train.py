"""Training one cell's splats against its star views, with HELIOS's parameters and defaults.

The splats start from the cell file (one per star), in the cell's units (:mod:`.views`), sized and
made as opaque as their stars appear in the views (:func:`calibrated_start`); a step
renders ``views_per_iter`` training views, minimises ``(1 - lambda) L1 + lambda (1 - SSIM)`` plus
HELIOS's two regularisers, the isotropy term (the variance of each splat's log-scales) and the
collapse term (``mean(relu(min_ratio - min_scale / max_scale))``), with Adam at one learning rate;
gsplat's default density control grows and prunes every ``densify_interval`` steps until
``densify_until``. Views come round-robin (HELIOS) or from the sampling engine by their loss.
Held-out views between the training cameras measure PSNR before and after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from foveate.models.densify import DefaultStrategy
from foveate.models.gaussians import rasterize
from foveate.sampling import Sampler

from .cells import CellFile
from .views import PSF_PIXELS, CellFrame, StarViews, render_stars, star_views

__all__ = [
    "CellFit",
    "CellResult",
    "CellTrainConfig",
    "calibrated_start",
    "splats_from_cell",
    "splats_to_cell",
    "train_cell",
]

SH_C0 = 0.28209479177387814
RATE_RATIOS = {"quats": 1.0, "opacities": 50.0, "scales": 5.0, "sh0": 2.5, "means": 0.16 * 2.2}
"""gsplat's learning rates relative to the rotations' (the means' at the scene scale of 2.2 of the cells' cameras)."""


@dataclass
class CellTrainConfig:
    """One cell's training: HELIOS's parameters and defaults, plus where the views come from."""

    iterations: int = 1000
    """Training steps."""
    learning_rate: float = 1e-3
    """Adam's learning rate of the rotations; the others keep gsplat's ratios to it (opacities 50x, scales 5x,
    colours 2.5x, positions 0.35x), since the star views, unlike HELIOS's, differ from the starting splats."""
    views_per_iter: int = 4
    """Views rendered per step."""
    image_size: int = 256
    """Side of the square training views in pixels."""
    lambda_dssim: float = 0.2
    """Weight of D-SSIM against L1."""
    densify_interval: int = 100
    """Steps between density control."""
    densify_until: int = 800
    """Last step of density control."""
    prune_opacity_threshold: float = 0.01
    """Splats under this opacity are pruned."""
    lambda_isotropy: float = 0.05
    """Weight of the variance of each splat's log-scales."""
    lambda_collapse: float = 0.1
    """Weight of the penalty on splats flatter than min_scale_ratio."""
    min_scale_ratio: float = 0.1
    """Smallest ratio of a splat's smallest to largest scale before the collapse penalty."""
    grad_threshold: float = 1e-4
    """Screen-space gradient above which a splat is grown (HELIOS's)."""
    views: int = 40
    """Training cameras on the Fibonacci sphere."""
    held_out: int = 8
    """Held-out cameras between them, for PSNR."""
    view_sampling: Literal["round_robin", "error_weighted", "adaptive"] = "round_robin"
    """'round_robin' (HELIOS) or an engine strategy drawing views by their loss."""


@dataclass
class CellResult:
    """What training one cell did."""

    cell: str
    splats_before: int
    splats_after: int
    loss_before: float
    """The loss over every training view before training (and, below, after)."""
    loss_after: float
    psnr_before: float
    psnr_after: float
    iterations: int
    seconds: float
    losses: list[float]


def splats_from_cell(cell: CellFile, frame: CellFrame, device: torch.device) -> torch.nn.ParameterDict:
    """The cell's splats, as stored, in gsplat's forms and the cell's units."""
    splats = torch.from_numpy(cell.splats.astype(np.float32))
    means = torch.from_numpy((cell.positions - frame.origin) / frame.unit).float()
    scales = (splats[:, 3:6].clamp_min(1e-30) / frame.unit).log().clamp_min(-20.0)
    quats = splats[:, [9, 6, 7, 8]]  # xyzw -> wxyz
    opacities = torch.logit(splats[:, 13].clamp(1e-4, 1 - 1e-4))
    sh0 = ((splats[:, 10:13] - 0.5) / SH_C0)[:, None]
    values = {"means": means, "scales": scales, "quats": quats, "opacities": opacities, "sh0": sh0}
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device)) for k, v in values.items()})


def calibrated_start(
    params: torch.nn.ParameterDict, frame: CellFrame, views: StarViews, psf: float = PSF_PIXELS
) -> None:
    """Start each splat as its star looks in the views: as wide as the point-spread function at the
    cameras' distance, and as opaque as the star's peak brightness there (in place).

    HELIOS's stored radius is a display size for its own camera (a few pixels at 720 lines), which
    in a sparse cell can span the whole cell; fitted from there, the optimiser tends to fade such
    splats out rather than shrink them.
    """
    centres = views.cameras.camera_to_world[:, :3, 3].to(frame.positions.device)
    distance = (centres[:, None] - frame.positions[None]).norm(dim=-1).median(dim=0).values
    focal = float(views.cameras.intrinsics[0, 0])
    peak = 1 - torch.exp(-views.exposure * frame.luminosity / distance**2)
    with torch.no_grad():
        params["scales"].copy_((psf * distance / focal).log()[:, None].expand(-1, 3).to(params["scales"]))
        params["opacities"].copy_(torch.logit(peak.clamp(0.02, 0.98)).to(params["opacities"]))


def splats_to_cell(params: torch.nn.ParameterDict, frame: CellFrame, template: CellFile) -> CellFile:
    """Trained splats back in HELIOS's record: metres relative to the cell centroid, xyzw, colour, opacity."""
    with torch.no_grad():
        positions = frame.to_metres(params["means"])
        scales = params["scales"].exp().cpu().double().numpy() * frame.unit
        quats = torch.nn.functional.normalize(params["quats"], dim=1)[:, [1, 2, 3, 0]].cpu().double().numpy()
        colors = (params["sh0"][:, 0] * SH_C0 + 0.5).clamp(0, 1).cpu().double().numpy()
        opacities = torch.sigmoid(params["opacities"]).cpu().double().numpy()
    relative = positions - template.centroid
    splats = np.concatenate((relative, scales, quats, colors, opacities[:, None]), axis=1).astype(np.float32)
    return CellFile(template.cell, template.bounds, splats)


def _render(params: torch.nn.ParameterDict, viewmats: torch.Tensor, Ks: torch.Tensor, size: int) -> torch.Tensor:
    rgb, _, meta = rasterize(
        params["means"],
        params["quats"],
        params["scales"].exp(),
        torch.sigmoid(params["opacities"]),
        params["sh0"],
        viewmats,
        Ks,
        size,
        size,
        sh_degree=0,
    )
    return rgb, meta


def _psnr(rendered: torch.Tensor, target: torch.Tensor) -> float:
    mse = float((rendered.clamp(0, 1) - target).square().mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class CellFit:
    """One cell's training state, trained in chunks of iterations and saved between them.

    ``train_cell`` runs one chunk of ``config.iterations``; the budget scheduler gives a cell
    several chunks over a run (``run(k)`` continues exactly where the last one stopped, also after
    ``state_dict`` / ``load_state_dict`` in another process).
    """

    def __init__(
        self,
        cell: CellFile,
        config: CellTrainConfig,
        device: torch.device | None = None,
        views: tuple[CellFrame, StarViews] | None = None,
        measure_start: bool = True,
    ) -> None:
        from foveate.pipelines.splat import view_matrices

        self.cell, self.config = cell, config
        self.device = device or torch.device("cpu")
        self.frame, training = views or star_views(cell, config.views, config.image_size)
        held_cameras = _held_out_cameras(config.held_out, config.image_size)
        self.held_targets = render_stars(self.frame, held_cameras, training.exposure).to(self.device)
        self.viewmats, self.Ks = (t.to(self.device) for t in view_matrices(training.cameras))
        self.held_viewmats, self.held_Ks = (t.to(self.device) for t in view_matrices(held_cameras))
        self.targets = training.images.to(self.device)
        self.params = splats_from_cell(cell, self.frame, self.device)
        calibrated_start(self.params, self.frame, training, PSF_PIXELS)
        self.optimizers = {
            name: torch.optim.Adam([p], lr=config.learning_rate * RATE_RATIOS[name], eps=1e-15)
            for name, p in self.params.items()
        }
        self.strategy = DefaultStrategy(
            prune_opa=config.prune_opacity_threshold,
            grow_grad2d=config.grad_threshold,
            refine_start_iter=config.densify_interval,
            refine_stop_iter=config.densify_until + 1,
            refine_every=config.densify_interval,
            reset_every=10**9,
        )
        self.state = self.strategy.initialize_state(scene_scale=1.0)
        self.sampler = None
        if config.view_sampling != "round_robin":
            self.sampler = Sampler(
                len(self.targets),
                config.view_sampling,
                device=self.device,
                warmup_iterations=20,
                update_frequency=10,
                decay=0.5,
                seed=0,
            )
        self.step = 0
        self.losses: list[float] = []
        self.seconds = 0.0
        self.rng_state = torch.Generator().manual_seed(0).get_state()
        # Skipped when a saved state is about to be loaded (it carries the start's numbers).
        self.psnr_before = self.held_out_psnr() if measure_start else math.nan
        self.loss_before = self.training_loss() if measure_start else math.nan

    def training_loss(self) -> float:
        """The loss over every training view (the per-step losses cover only the views of that step)."""
        from foveate.pipelines.splat import unit_losses

        total = 0.0
        with torch.no_grad():
            for ids in torch.arange(len(self.targets), device=self.device).split(8):
                rendered, _ = _render(self.params, self.viewmats[ids], self.Ks[ids], self.config.image_size)
                total += float(unit_losses(rendered, self.targets[ids], self.config.lambda_dssim)["loss"].sum())
        return total / len(self.targets)

    def held_out_psnr(self) -> float:
        with torch.no_grad():
            rendered, _ = _render(self.params, self.held_viewmats, self.held_Ks, self.config.image_size)
        return _psnr(rendered, self.held_targets)

    def run(self, iterations: int) -> float:
        """Train ``iterations`` more steps; returns their mean per-view loss."""
        import time

        from foveate.pipelines.splat import unit_losses

        started = time.perf_counter()
        config, params, count = self.config, self.params, self.config.views_per_iter
        first = len(self.losses)
        outside = torch.get_rng_state()
        torch.set_rng_state(self.rng_state)  # the cell's own random stream: chunks add up to one run
        for _ in range(iterations):
            step = self.step
            if self.sampler is None:
                ids = (torch.arange(count, device=self.device) + step * count) % len(self.targets)
                weights = torch.ones(count, device=self.device)
            else:
                draw = self.sampler.sample(count, step)
                ids, weights = draw.ids, draw.weights
            rendered, meta = _render(params, self.viewmats[ids], self.Ks[ids], config.image_size)
            per_view = unit_losses(rendered, self.targets[ids], config.lambda_dssim)["loss"]
            scales = params["scales"]
            isotropy = scales.var(dim=1).mean() if len(scales) else scales.sum()
            ratio = scales.min(dim=1).values.exp() / scales.max(dim=1).values.exp()
            collapse = torch.relu(config.min_scale_ratio - ratio).mean()
            loss = (weights * per_view).mean() + config.lambda_isotropy * isotropy + config.lambda_collapse * collapse
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in self.optimizers.values():
                optimizer.step()
            self.strategy.step_post_backward(params, self.optimizers, self.state, step, meta)
            if self.sampler is not None:
                self.sampler.update(ids, per_view.detach(), step)
            self.losses.append(float(per_view.detach().mean()))
            self.step += 1
        self.rng_state = torch.get_rng_state()
        torch.set_rng_state(outside)
        self.seconds += time.perf_counter() - started
        chunk = self.losses[first:]
        return float(np.mean(chunk)) if chunk else math.nan

    def result(self) -> CellResult:
        losses = self.losses
        return CellResult(
            cell=self.cell.cell.name,
            splats_before=len(self.cell.splats),
            splats_after=len(self.params["means"]),
            loss_before=self.loss_before,
            loss_after=self.training_loss(),
            psnr_before=self.psnr_before,
            psnr_after=self.held_out_psnr(),
            iterations=self.step,
            seconds=self.seconds,
            losses=list(losses),
        )

    def trained_cell(self) -> CellFile:
        return splats_to_cell(self.params, self.frame, self.cell)

    def state_dict(self) -> dict:
        return {
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "density": dict(self.state),
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "step": self.step,
            "losses": list(self.losses),
            "seconds": self.seconds,
            "psnr_before": self.psnr_before,
            "loss_before": self.loss_before,
            "rng": self.rng_state,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resize the splats to the saved count, then load the moments and the rest."""
        for name, parameter in self.params.items():
            parameter.data = state["params"][name].to(self.device)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.state = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in state["density"].items()}
        if self.sampler is not None and state["sampler"] is not None:
            self.sampler.load_state_dict(state["sampler"])
        self.step, self.losses = state["step"], list(state["losses"])
        self.seconds, self.psnr_before = state["seconds"], state["psnr_before"]
        self.loss_before = state["loss_before"]
        self.rng_state = state["rng"]


def train_cell(
    cell: CellFile,
    config: CellTrainConfig,
    device: torch.device | None = None,
    views: tuple[CellFrame, StarViews] | None = None,
) -> tuple[CellFile, CellResult]:
    """Train ``cell``'s splats on its star views for ``config.iterations``; returns the trained cell and its numbers."""
    fit = CellFit(cell, config, device, views)
    fit.run(config.iterations)
    return fit.trained_cell(), fit.result()


def _held_out_cameras(count: int, size: int):
    """``count`` cameras on a Fibonacci sphere turned half a golden angle from the training ones."""
    from foveate.data import Cameras, camera_positions, look_at

    positions = camera_positions("sphere", count, radius=2.0)
    angle = math.pi * (3.0 - math.sqrt(5.0)) / 2
    turn = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]]
    )
    return Cameras.from_fov(look_at(positions @ turn.T, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)), size, size, 60.0)
