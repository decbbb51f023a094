"""The splatting pipeline: losses, tiles, epochs, starts, exports, bad input, and that it learns."""

from __future__ import annotations

import json

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from foveate.data import Cameras, look_at
from foveate.data.scenes import save_blender
from foveate.data.splat_ply import load_splat_ply
from foveate.models.gaussians import rasterize
from foveate.pipelines import make_trainer
from foveate.pipelines.splat import SPEC, SplatTask, preset, scene_scale, unit_losses, view_matrices
from foveate.pipelines.splat.task import _tiled, nearest_distances, tile_cameras
from foveate.train import make_sampler

from .test_nerf import ball_scene


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ball")
    save_blender(ball_scene(views=10, size=24), root, geometry=False)
    return root


def tiny(scene_dir, tmp_path, **changes):
    return preset(
        "tiny",
        scene=str(scene_dir),
        train__runs_dir=str(tmp_path / "runs"),
        train__progress=False,
        train__tensorboard=False,
        **changes,
    )


def test_unit_losses_are_per_image_l1_and_ssim():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(3, 16, 16, 3, generator=generator)
    rendered = (target + 0.1 * torch.randn(3, 16, 16, 3, generator=generator)).clamp(0, 1)
    rendered[0] = target[0]
    losses = unit_losses(rendered, target, 0.2)
    l1 = (rendered - target).abs().mean(dim=(1, 2, 3))
    ssim = torch.stack(
        [
            structural_similarity_index_measure(
                rendered[i : i + 1].permute(0, 3, 1, 2), target[i : i + 1].permute(0, 3, 1, 2), data_range=1.0
            )
            for i in range(3)
        ]
    )
    torch.testing.assert_close(losses["l1"], l1)
    torch.testing.assert_close(losses["ssim"], ssim)
    torch.testing.assert_close(losses["loss"], 0.8 * l1 + 0.2 * (1 - ssim))
    assert float(losses["loss"][0]) == pytest.approx(0.0, abs=1e-6) and bool((losses["loss"][1:] > 0.01).all())


def test_tiles_render_the_crops_of_their_view():
    generator = torch.Generator().manual_seed(1)
    count = 60
    means = torch.randn(count, 3, generator=generator) * 0.4
    quats = torch.randn(count, 4, generator=generator)
    scales = torch.rand(count, 3, generator=generator) * 0.1 + 0.02
    opacities = torch.rand(count, generator=generator) * 0.8 + 0.1
    colors = torch.rand(count, 3, generator=generator)
    c2w = look_at(torch.tensor([[0.0, 0.5, 3.0]]), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    viewmats, Ks = view_matrices(Cameras.from_fov(c2w, 32, 24, 50.0))
    full, _, _ = rasterize(means, quats, scales, opacities, colors, viewmats, Ks, 32, 24)
    tiled, _, _ = rasterize(
        means, quats, scales, opacities, colors, viewmats.expand(4, 4, 4), tile_cameras(Ks, 32, 24, 2), 16, 12
    )
    crops = _tiled(full, 2)
    assert crops.shape == tiled.shape == (4, 12, 16, 3)
    torch.testing.assert_close(tiled, crops, atol=1e-5, rtol=0)
    assert float(full.amax()) > 0.2


def _bound(config) -> SplatTask:
    task = SplatTask.from_config(config, torch.device("cpu"))
    task.bind(make_sampler(config.sampling, task.unit_shape, torch.device("cpu"), seed=0))
    return task


def test_uniform_draws_every_unit_once_per_shuffled_epoch(scene_dir):
    config = preset("tiny", scene=str(scene_dir), sampling__strategy="uniform", views__tiles=2)
    task = _bound(config)
    units = 8 * 4
    assert task.unit_shape == (8, 2, 2) and task.unit_noun == "view tiles"
    first = torch.cat([task.draw(3, step)[0] for step in range(units // 3)] + [task.draw(units % 3, 0)[0]])
    assert sorted(first.tolist()) == list(range(units))
    second = torch.cat([task.draw(4, 0)[0] for _ in range(units // 4)])
    assert sorted(second.tolist()) == list(range(units)) and not torch.equal(first, second)


def test_adaptive_draws_its_uniform_share_from_shuffled_epochs(scene_dir):
    config = preset("tiny", scene=str(scene_dir), sampling__strategy="adaptive", views__tiles=2)
    config.sampling.adaptive.evidence = 0.0
    config.sampling.warmup_iterations = 0
    task = _bound(config)
    uniform_ids = []
    while len(uniform_ids) < 32:
        ids, _ = task.draw(4, 1)
        uniform_ids += ids[task.sampler._labels == 0].tolist()
        task.sampler.update(ids, torch.rand(4), 1)
    assert sorted(uniform_ids[:32]) == list(range(32))  # one epoch: every tile once


@pytest.mark.parametrize(("batch", "tiles", "images"), [(1, 1, 1), (2, 1, 2), (8, 2, 2), (16, 1, 16)])
def test_adam_is_scaled_for_the_batch_in_whole_images(scene_dir, batch, tiles, images):
    config = preset("tiny", scene=str(scene_dir), views__tiles=tiles, train__batch_size=batch)
    task = SplatTask.from_config(config, torch.device("cpu"))
    task.configure_optimizers(config.optim, total_steps=10)
    group = task.optimizers["opacities"].param_groups[0]
    beta1, beta2 = config.optim.betas
    assert group["betas"] == pytest.approx((beta1**images, beta2**images))
    assert 0.0 < group["betas"][0] < 1.0  # gsplat's 1 - B (1 - beta) is negative from B = 10
    assert group["lr"] == pytest.approx(config.lr.opacities * config.optim.lr * images**0.5)


def test_random_start_fills_the_box_and_spaces_splats_by_their_neighbours(scene_dir):
    task = SplatTask.from_config(preset("tiny", scene=str(scene_dir)), torch.device("cpu"))
    splats = task.splats
    assert len(task.model) == 300 and splats["shN"].shape == (300, 3, 3)
    assert bool((splats["means"].abs() <= 1.0).all())
    spacing = nearest_distances(splats["means"].detach())
    torch.testing.assert_close(splats["scales"].detach(), spacing.log()[:, None].expand(-1, 3))
    assert torch.sigmoid(splats["opacities"]).detach().allclose(torch.tensor(0.1))
    points = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 1]])
    # The origin's three nearest are at 1, sqrt(3) and 2: a root mean square of sqrt(8 / 3).
    assert float(nearest_distances(points)[0]) == pytest.approx((8 / 3) ** 0.5)


def test_scene_points_start_the_splats(tmp_path):
    scene = ball_scene(views=6, size=16)
    scene.points = torch.randn(50, 3) * 0.3
    scene.point_colors = torch.randint(0, 256, (50, 3), dtype=torch.uint8)
    config = preset("tiny", scene="ball", val_every=3)
    task = SplatTask(scene, config, torch.device("cpu"))
    torch.testing.assert_close(task.splats["means"].detach(), scene.points)
    colors = task.splats["sh0"].detach()[:, 0] * 0.28209479177387814 + 0.5
    torch.testing.assert_close(colors, scene.point_colors.float() / 255, atol=1e-6, rtol=0)
    pair = look_at(torch.tensor([[2.0, 0, 0], [-2.0, 0, 1]]), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    assert scene_scale(Cameras.from_fov(pair, 8, 8, 60.0)) == pytest.approx(1.1 * (4 + 0.25) ** 0.5)


def test_training_learns_and_exports_standard_files(scene_dir, tmp_path):
    trainer = make_trainer(SPEC, tiny(scene_dir, tmp_path, train__steps=40, train__name="learn"))
    result = trainer.fit()
    psnr = [row["psnr"] for row in result.history]
    assert psnr[-1] > psnr[0] + 3, psnr
    run = trainer.run_dir
    splats = load_splat_ply(run / "point_cloud.ply")
    for name, value in trainer.task.splats.items():
        torch.testing.assert_close(splats[name], value.detach(), atol=1e-6, rtol=0)
    cameras = json.loads((run / "cameras.json").read_text())
    c2w = trainer.task.train_cameras.camera_to_world
    assert len(cameras) == len(c2w) and cameras[0]["width"] == 24
    torch.testing.assert_close(torch.tensor(cameras[1]["position"]), c2w[1, :3, 3])
    torch.testing.assert_close(torch.tensor(cameras[1]["rotation"]), c2w[1, :3, :3])
    assert (run / "renders" / "val_000.png").is_file()


def test_loading_a_ply_replaces_the_splats(scene_dir, tmp_path):
    trainer = make_trainer(SPEC, tiny(scene_dir, tmp_path, train__steps=4, train__name="a"))
    trainer.fit()
    fresh = SplatTask.from_config(tiny(scene_dir, tmp_path), torch.device("cpu"))
    fresh.load_splats(trainer.run_dir / "point_cloud.ply")
    assert len(fresh.model) == len(trainer.task.model)
    view = fresh.render_view(fresh.val_cameras, 0)
    torch.testing.assert_close(view, trainer.task.render_view(trainer.task.val_cameras, 0), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"views__tiles": 5}, "--views.tiles"),
        ({"views__tiles": 4}, "SSIM"),
        ({"sh_degree": 4}, "--sh-degree"),
        ({"init__source": "points"}, "--init.source"),
        ({"init__opacity": 1.0}, "--init.opacity"),
        ({"density__strategy": "fancy"}, "--density.strategy"),
        ({"backend": "gsplat"}, "--backend"),
    ],
)
def test_bad_settings_are_named(scene_dir, changes, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        SplatTask.from_config(preset("tiny", scene=str(scene_dir), **changes), torch.device("cpu"))


def test_mcmc_keeps_the_cap(scene_dir, tmp_path):
    config = tiny(scene_dir, tmp_path, train__steps=8, density__strategy="mcmc", density__mcmc__cap_max=320)
    trainer = make_trainer(SPEC, config)
    trainer.fit()
    assert 300 < len(trainer.task.model) <= 320


@pytest.mark.parametrize("layout", ["neus", "colmap"])
def test_neus_and_colmap_scenes_train(layout, tmp_path):
    from foveate.data.formats.colmap import save_colmap
    from foveate.data.formats.neus import save_neus

    scene = ball_scene(views=8, size=16)
    scene.points = torch.randn(40, 3) * 0.3
    scene.point_colors = torch.randint(0, 256, (40, 3), dtype=torch.uint8)
    root = tmp_path / layout
    if layout == "colmap":
        save_colmap(scene, root, binary=True)
    else:
        save_neus(scene, root, geometry=False)
    config = tiny(root, tmp_path, train__steps=2, train__name=layout, val_every=4)
    trainer = make_trainer(SPEC, config)
    starting = len(trainer.task.model)
    assert starting == (40 if layout == "colmap" else 300)
    assert trainer.fit().status == "completed"
