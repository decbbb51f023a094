"""The radiance-field pipeline: per-ray loss, held-out views, a short fit, and its three commands."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from foveate.cli import main as cli_main
from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.scenes import Scene, load_scene, save_blender
from foveate.models.volume_rendering import render_rays
from foveate.pipelines import get_pipeline, make_trainer, run_pipeline
from foveate.pipelines.nerf import RadianceFieldTask, orbit_cameras, preset, scene_box, split_views
from foveate.train.distributed import Ranks

pytest.importorskip("PIL.Image")
pytest.importorskip("imageio")

SIZE = 16
QUIET = ["--train.no-progress", "--train.no-tensorboard"]


def ball_scene(views: int = 10, size: int = SIZE, radius: float = 0.6) -> Scene:
    """A ray-traced ball coloured by its normal over black, seen from a sphere of cameras."""
    c2w = look_at(camera_positions("sphere", views, radius=2.5), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    cameras = Cameras.from_fov(c2w, size, size, 45.0)
    images, masks = [], []
    for view in range(views):
        origins, directions = cameras.image_rays(view)
        half_b = (origins * directions).sum(-1)
        discriminant = half_b**2 - ((origins * origins).sum(-1) - radius**2)
        hit = discriminant > 0
        t = -half_b - discriminant.clamp(min=0).sqrt()
        normal = torch.nn.functional.normalize(origins + directions * t[..., None], dim=-1)
        rgb = torch.where(hit[..., None], 0.5 + 0.5 * normal, torch.zeros(3))
        images.append((rgb * 255).round().to(torch.uint8))
        masks.append(hit.to(torch.uint8) * 255)
    splits = {"train": list(range(views - 2)), "val": [views - 2, views - 1]}
    return Scene(torch.stack(images), cameras, [f"r_{v:03d}" for v in range(views)], torch.stack(masks), splits=splits)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ball")
    save_blender(ball_scene(), root, geometry=False)
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


def test_held_out_views_come_from_the_val_split_or_every_kth_view():
    scene = ball_scene()
    assert split_views(scene, 4) == (list(range(8)), [8, 9])
    scene.splits = {"train": list(range(10))}
    assert split_views(scene, 4) == ([1, 2, 3, 5, 6, 7, 9], [0, 4, 8])
    with pytest.raises(ValueError, match="val_every"):
        split_views(scene, 1)


def test_scene_box_bounds_the_normalised_sphere():
    scene = ball_scene()
    scene.normalization = torch.tensor(
        [[2.0, 0, 0, 1.0], [0, 2.0, 0, 0], [0, 0, 2.0, -1.0], [0, 0, 0, 1]], dtype=torch.float64
    )
    torch.testing.assert_close(scene_box(scene), torch.tensor([[-1.0, -2.0, -3.0], [3.0, 2.0, 1.0]]))
    torch.testing.assert_close(scene_box(scene, 1.5), torch.tensor([[-2.0, -3.0, -4.0], [4.0, 3.0, 2.0]]))


def test_per_unit_loss_is_each_rays_squared_colour_error_over_black(scene_dir, tmp_path):
    torch.manual_seed(0)
    scene = ball_scene()
    task = RadianceFieldTask(scene, tiny(scene_dir, tmp_path), torch.device("cpu"))
    assert task.unit_shape == (8, SIZE, SIZE)
    task.update_occupancy(0)
    view, y, x = 3, 5, 11
    ids = torch.tensor([view * SIZE * SIZE + y * SIZE + x])
    random_state = torch.get_rng_state()
    loss = task.per_unit_loss(ids)
    assert loss.shape == (1,) and loss.requires_grad
    torch.set_rng_state(random_state)
    origins, directions = scene.cameras.rays(torch.tensor([view]), torch.tensor([y]), torch.tensor([x]))
    with torch.no_grad():
        expected_rgb = render_rays(
            task.field, origins, directions, task.aabb, task.step_size, task.max_samples, task.occupancy, jitter=True
        ).rgb
    target = scene.images[view, y, x].float() / 255.0
    torch.testing.assert_close(loss.detach(), (expected_rgb - target).square().mean(dim=1))


def test_quick_validation_scores_a_fixed_subset_of_held_out_rays(scene_dir, tmp_path):
    task = RadianceFieldTask(ball_scene(), tiny(scene_dir, tmp_path), torch.device("cpu"))
    origins, directions, target = task.quick_rays
    assert origins.shape == (2 * SIZE * SIZE, 3), "a held-out subset no larger than the held-out rays"
    with torch.no_grad():
        quick = task.validate(full=False)
        mse = (task.colors(origins, directions).clamp(0, 1) - target).square().mean()
    assert quick.metrics["psnr"] == pytest.approx(float(-10 * torch.log10(mse)), rel=1e-5)


def test_full_validation_scores_the_first_held_out_views_or_every_one(scene_dir, tmp_path):
    scene = ball_scene()
    one = RadianceFieldTask(scene, tiny(scene_dir, tmp_path, val_views=1), torch.device("cpu"))
    every = RadianceFieldTask(scene, tiny(scene_dir, tmp_path, val_views=0), torch.device("cpu"))
    assert len(one.val_cameras) == 1 and len(every.val_cameras) == 2
    torch.testing.assert_close(every.val_colors, scene.images[8:])
    with pytest.raises(ValueError, match="--val-views must be >= 0"):
        RadianceFieldTask(scene, tiny(scene_dir, tmp_path, val_views=-1), torch.device("cpu"))


def fit_recording_batches(config):
    """Fit ``config`` in memory; each step's rays, field queries and uniform queries per ray, and the task."""
    trainer = make_trainer(get_pipeline("nerf"), config, in_memory=True)
    task = trainer.task
    steps = []
    train_loss = task.per_unit_loss

    def recorded(ids):
        loss = train_loss(ids)
        steps.append((ids.numel(), task.last_samples, task.uniform_samples_per_ray))
        return loss

    task.per_unit_loss = recorded
    result = trainer.fit()
    rays, queries = sum(step[0] for step in steps), sum(step[1] for step in steps)
    assert task.drawn == {"rays": rays, "queries": queries}
    assert result.full_history[-1]["cost_per_unit"] == pytest.approx(queries / rays), "reported as the run's cost"
    return steps, task


def test_a_sample_budget_sizes_each_steps_rays_from_the_last_steps_cost(scene_dir, tmp_path):
    budget = 3000
    config = tiny(scene_dir, tmp_path, train__steps=8, march__target_samples=budget)
    steps, task = fit_recording_batches(config)
    assert steps[0][0] == config.train.batch_size
    for (rays, cost, _), (following, _, _) in itertools.pairwise(steps):
        assert following == min(max(round(budget / (max(cost, 1) / rays)), 1), budget)
    assert len({rays for rays, _, _ in steps}) > 1, "the budget resized the batches"
    state = task.state_dict()
    fresh = make_trainer(get_pipeline("nerf"), config, in_memory=True).task
    fresh.load_state_dict(state)
    assert fresh.draw_size(config.train.batch_size) == task.rays_per_step
    assert RadianceFieldTask.batch_words(config) == f"rays worth {budget} field queries"
    assert RadianceFieldTask.batch_words(tiny(scene_dir, tmp_path)) == f"{config.train.batch_size} rays"


def test_uniform_cost_holds_guided_steps_to_what_uniform_rays_cost(scene_dir, tmp_path):
    config = tiny(scene_dir, tmp_path, train__steps=12, march__uniform_cost=True, sampling__warmup_iterations=2)
    batch = config.train.batch_size
    steps, task = fit_recording_batches(config)
    assert steps[0][0] == batch
    for (rays, cost, per_uniform_ray), (following, _, _) in itertools.pairwise(steps):
        assert following == min(max(round(batch * per_uniform_ray / (max(cost, 1) / rays)), 1), 4 * batch)
    assert task.uniform_samples_per_ray == task.queries_per_ray(task.cost_probe), "measured at the last update"
    assert task.uniform_samples_per_ray < config.march.samples_per_ray, "the occupancy grid skips empty space"
    state = task.state_dict()
    fresh = make_trainer(get_pipeline("nerf"), config, in_memory=True).task
    fresh.load_state_dict(state)
    assert fresh.uniform_samples_per_ray == task.uniform_samples_per_ray
    uniform_config = tiny(scene_dir, tmp_path, train__steps=12, march__uniform_cost=True, sampling__strategy="uniform")
    uniform, _ = fit_recording_batches(uniform_config)
    assert {rays for rays, _, _ in uniform} == {batch}, "uniform draws set the cost and keep the batch"
    assert RadianceFieldTask.batch_words(config) == f"rays costing what {batch} uniform rays do"


def test_a_sample_budget_is_refused_when_negative_doubled_or_shared_by_ranks(scene_dir, tmp_path):
    scene = ball_scene()
    with pytest.raises(ValueError, match="target-samples must be"):
        RadianceFieldTask(scene, tiny(scene_dir, tmp_path, march__target_samples=-1), torch.device("cpu"))
    both = tiny(scene_dir, tmp_path, march__target_samples=2000, march__uniform_cost=True)
    with pytest.raises(ValueError, match="choose one"):
        RadianceFieldTask(scene, both, torch.device("cpu"))
    task = RadianceFieldTask(scene, tiny(scene_dir, tmp_path, march__uniform_cost=True), torch.device("cpu"))
    task.ranks = Ranks(rank=0, world=2)
    with pytest.raises(ValueError, match="under torchrun"):
        task.bind(None)
    assert RadianceFieldTask(scene, tiny(scene_dir, tmp_path), torch.device("cpu")).draw_size(77) == 77


def test_a_colour_pinned_at_white_is_measured_and_named(scene_dir, tmp_path):
    task = RadianceFieldTask.from_config(tiny(scene_dir, tmp_path), torch.device("cpu"))
    assert task.validate(full=True).metrics["colour_pinned"] < 0.5
    with torch.no_grad():
        task.field.color_net[-1].bias.fill_(50.0)  # every colour deep in the sigmoid's top
    with pytest.warns(UserWarning, match="pinned at white"):
        pinned = task.validate(full=True)
    assert pinned.metrics["colour_pinned"] > 0.99


def test_short_fit_reduces_the_loss_and_fills_the_run_directory(scene_dir, tmp_path):
    config = tiny(scene_dir, tmp_path, train__steps=60, train__validate_every=30, train__name="fit")
    result, trainer = run_pipeline(get_pipeline("nerf"), config)
    assert result.status == "completed"
    psnrs = [record["psnr"] for record in result.history]
    assert [record["step"] for record in result.history] == [0, 30, 60]
    assert psnrs[-1] > psnrs[0] + 1.0, psnrs
    assert 0.0 <= result.full_history[-1]["ssim"] <= 1.0
    run = trainer.run_dir
    for name in ("config.yaml", "stats.jsonl", "checkpoints/latest.pt", "checkpoints/best.pt", "renders/val_000.png"):
        assert (run / name).is_file(), f"{name} was not written"
    assert int(trainer.task.occupancy.updates) == 60 // config.march.occupancy_every


def test_a_mitsuba_rendered_scene_trains_inside_its_box(tmp_path):
    from foveate.data.render import RenderConfig, mitsuba_variant, render

    try:
        mitsuba_variant("scalar_rgb")
    except (ImportError, RuntimeError, ValueError) as error:
        pytest.skip(f"Mitsuba 3 cannot load here ({error}); install with pip install 'foveate[render]'")
    scene_dir = tmp_path / "cornell"
    render(
        RenderConfig(
            out=scene_dir,
            scene="cornell",
            views=6,
            val_views=1,
            test_views=0,
            width=16,
            height=16,
            spp=4,
            variant="scalar_rgb",
            progress=False,
        )
    )
    config = tiny(scene_dir, tmp_path, train__steps=10)
    result, trainer = run_pipeline(get_pipeline("nerf"), config, in_memory=True)
    assert result.status == "completed" and trainer.sampler.shape == (6, 16, 16)
    box = trainer.task.aabb
    assert bool((box[0] <= -1.0).all() and (box[1] >= 1.0).all()), f"{box} does not hold the Cornell box"
    assert result.history[-1]["psnr"] > result.history[0]["psnr"]


def test_the_task_gathers_its_rays_through_the_handler(scene_dir, tmp_path):
    from foveate.data import ErrorAwareDataHandler

    task = RadianceFieldTask(ball_scene(), tiny(scene_dir, tmp_path), torch.device("cpu"))
    assert isinstance(task.rays, ErrorAwareDataHandler) and task.rays.sampler is None


def test_orbit_keeps_the_cameras_distance_and_looks_at_the_centre():
    cameras = ball_scene().cameras
    orbit = orbit_cameras(cameras, torch.zeros(3), frames=12)
    positions = orbit.camera_to_world[:, :3, 3]
    torch.testing.assert_close(positions.norm(dim=1), torch.full((12,), 2.5), atol=1e-4, rtol=0)
    forward = orbit.camera_to_world[:, :3, 2]
    torch.testing.assert_close(forward, -positions / positions.norm(dim=1, keepdim=True), atol=1e-4, rtol=0)
    assert len({tuple(p.round(decimals=3).tolist()) for p in positions}) == 12


def test_train_compare_and_render_commands_write_their_files(scene_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["--scene", str(scene_dir), "--train.runs-dir", str(runs), *QUIET]
    assert cli_main(["train", "nerf", "--preset", "tiny", "--steps", "10", "--name", "smoke", *common]) == 0
    run = runs / "nerf" / "smoke"
    resume = ["train", "nerf", "--train.runs-dir", str(runs), "--name", "smoke", "--resume", "latest", "--steps", "20"]
    assert cli_main([*resume, *QUIET]) == 0
    model = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["task"]["model"]
    assert int(model["occupancy.updates"]) == 5, "the grid's cadence did not resume"

    out = tmp_path / "compare"
    argv = ["compare", "nerf", "--preset", "tiny", "--strategies", "uniform", "error_weighted", "--steps", "10"]
    assert cli_main([*argv, "--out", str(out), *common]) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "psnr_vs_step.png",
        "psnr_vs_wall_clock.png",
        "error_heatmap.png",
        "sampling_density.png",
        "reconstructions.png",
        "sampling_entropy.png",
        "report.md",
        "report.json",
    } <= names
    report = json.loads((out / "report.json").read_text())
    assert report["unit_noun"] == "rays" and set(report["variants"]) == {"uniform", "error_weighted"}
    for run_record in report["runs"]:
        assert [row[0] for row in run_record["curve"]] == [0, 10]
    assert "of 128 rays each" in (out / "report.md").read_text()

    assert cli_main(["render", "--run", str(run), "--frames", "3", "--no-progress"]) == 0
    gif = run / "renders" / "orbit.gif"
    import imageio.v2 as imageio

    frames = imageio.mimread(gif)
    assert len(frames) == 3 and frames[0].shape[:2] == (SIZE, SIZE)
    video = imageio.mimread(run / "renders" / "orbit.mp4")
    assert len(video) == 3 and video[0].shape[:2] == (SIZE + SIZE % 2, SIZE + SIZE % 2)
    assert cli_main(["render", "nerf", "--run", str(run), "--frames", "2", "--formats", "gif", "--no-progress"]) == 0
    assert len(imageio.mimread(gif)) == 2
    capsys.readouterr()


def test_bad_input_is_reported_naming_the_path(tmp_path, capsys):
    assert cli_main(["train", "nerf", "--preset", "tiny", "--scene", str(tmp_path), *QUIET]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    assert cli_main(["render", "--run", str(tmp_path), "--no-progress"]) == 2
    assert "checkpoints" in capsys.readouterr().err
    assert cli_main(["render", "nerf", "--run", str(tmp_path), "--no-progress"]) == 2
    assert "checkpoints" in capsys.readouterr().err


def test_video_frames_are_padded_to_even_sides_by_edge_replication():
    from foveate.pipelines.orbit import even_frame as _even

    frame = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    padded = _even(frame)
    assert padded.shape == (4, 6, 3)
    np.testing.assert_array_equal(padded[:3, :5], frame)
    np.testing.assert_array_equal(padded[3, :5], frame[2])
    np.testing.assert_array_equal(padded[:3, 5], frame[:, 4])
    assert _even(padded).shape == (4, 6, 3)


def test_the_targets_noise_reaches_the_sampler_unless_turned_off(tmp_path):
    """A scene with noise.npz: each ray's noise is subtracted from its error before the sampler sees it."""
    from foveate.data.scenes import NOISE_FILE, write_noise

    scene = ball_scene()
    noise = torch.rand(scene.num_views, SIZE, SIZE) * 0.05
    root = tmp_path / "noisy"
    save_blender(scene, root, geometry=False)
    write_noise(root / NOISE_FILE, dataclasses.replace(scene, noise=noise))
    errors = {}
    for aware in (True, False):
        config = tiny(root, tmp_path, train__steps=1, sampling__noise_aware=aware)
        trainer = make_trainer(get_pipeline("nerf"), config, in_memory=True)
        train_views = split_views(load_scene(root), config.val_every)[0]
        torch.testing.assert_close(trainer.task.noise, noise[train_views].reshape(-1))
        trainer.fit()
        errors[aware] = trainer.sampler.statistics.error.clone()
    seen = trainer.sampler.statistics.visits > 0  # one step: both runs drew the same rays
    torch.testing.assert_close(errors[False][seen] - errors[True][seen], trainer.task.noise[seen])
