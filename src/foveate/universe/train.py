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

__all__ = ["CellResult", "CellTrainConfig", "calibrated_start", "splats_from_cell", "splats_to_cell", "train_cell"]

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


def train_cell(
    cell: CellFile,
    config: CellTrainConfig,
    device: torch.device | None = None,
    views: tuple[CellFrame, StarViews] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[CellFile, CellResult]:
    """Train ``cell``'s splats on its star views; returns the trained cell and what happened."""
    import time

    from foveate.pipelines.splat import unit_losses, view_matrices

    device = device or torch.device("cpu")
    started = time.perf_counter()
    frame, training = views or star_views(cell, config.views, config.image_size)
    held_cameras = _held_out_cameras(config.held_out, config.image_size)
    held_targets = render_stars(frame, held_cameras, training.exposure).to(device)
    viewmats, Ks = (t.to(device) for t in view_matrices(training.cameras))
    held_viewmats, held_Ks = (t.to(device) for t in view_matrices(held_cameras))
    targets = training.images.to(device)
    params = splats_from_cell(cell, frame, device)
    calibrated_start(params, frame, training, PSF_PIXELS)
    optimizers = {
        name: torch.optim.Adam([p], lr=config.learning_rate * RATE_RATIOS[name], eps=1e-15)
        for name, p in params.items()
    }
    strategy = DefaultStrategy(
        prune_opa=config.prune_opacity_threshold,
        grow_grad2d=config.grad_threshold,
        refine_start_iter=config.densify_interval,
        refine_stop_iter=config.densify_until + 1,
        refine_every=config.densify_interval,
        reset_every=10**9,
    )
    state = strategy.initialize_state(scene_scale=1.0)
    sampler = None
    if config.view_sampling != "round_robin":
        sampler = Sampler(
            len(targets),
            config.view_sampling,
            device=device,
            warmup_iterations=20,
            update_frequency=10,
            decay=0.5,
            seed=0,
        )

    def evaluate() -> float:
        with torch.no_grad():
            rendered, _ = _render(params, held_viewmats, held_Ks, config.image_size)
        return _psnr(rendered, held_targets)

    psnr_before = evaluate()
    losses = []
    count = config.views_per_iter
    for step in range(config.iterations):
        if sampler is None:
            ids = (torch.arange(count, device=device) + step * count) % len(targets)
            weights = torch.ones(count, device=device)
        else:
            draw = sampler.sample(count, step)
            ids, weights = draw.ids, draw.weights
        rendered, meta = _render(params, viewmats[ids], Ks[ids], config.image_size)
        per_view = unit_losses(rendered, targets[ids], config.lambda_dssim)["loss"]
        scales = params["scales"]
        isotropy = scales.var(dim=1).mean() if len(scales) else scales.sum()
        ratio = scales.min(dim=1).values.exp() / scales.max(dim=1).values.exp()
        collapse = torch.relu(config.min_scale_ratio - ratio).mean()
        loss = (weights * per_view).mean() + config.lambda_isotropy * isotropy + config.lambda_collapse * collapse
        for optimizer in optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers.values():
            optimizer.step()
        strategy.step_post_backward(params, optimizers, state, step, meta, generator)
        if sampler is not None:
            sampler.update(ids, per_view.detach(), step)
        losses.append(float(per_view.detach().mean()))
    result = CellResult(
        cell=cell.cell.name,
        splats_before=len(cell.splats),
        splats_after=len(params["means"]),
        loss_before=losses[0] if losses else math.nan,
        loss_after=float(np.mean(losses[-max(1, len(losses) // 20) :])) if losses else math.nan,
        psnr_before=psnr_before,
        psnr_after=evaluate(),
        iterations=config.iterations,
        seconds=time.perf_counter() - started,
        losses=losses,
    )
    return splats_to_cell(params, frame, cell), result


def _held_out_cameras(count: int, size: int):
    """``count`` cameras on a Fibonacci sphere turned half a golden angle from the training ones."""
    from foveate.data import Cameras, camera_positions, look_at

    positions = camera_positions("sphere", count, radius=2.0)
    angle = math.pi * (3.0 - math.sqrt(5.0)) / 2
    turn = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0], [0.0, 0.0, 1.0]]
    )
    return Cameras.from_fov(look_at(positions @ turn.T, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)), size, size, 60.0)
