"""The handler as a drop-in for RadFoam's: train.py's calling sequence, the factory, tuples, cameras, points."""

from __future__ import annotations

import json
import math
import types
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from foveate.data import ErrorAwareDataHandler, create_error_aware_data_handler
from foveate.data.cameras import Cameras, camera_positions, look_at
from foveate.data.formats import save_colmap
from foveate.data.scenes import Scene, save_blender
from foveate.sampling import ErrorBasedRaySampler
from tests.data.test_handler import make_scene

SCHEDULE = {0: 4, 150: 2, 500: 1}
"""RadFoam's iter2downsample: dict(zip(downsample_iterations, downsample)) with its defaults."""

SEED_CONFIG = {
    "strategy": "error_weighted",
    "args": {"update_frequency": 100, "decay": 0.9, "warmup_iterations": 200, "min_error_weight": 0.1},
}
"""The seed's error_sampling_config, with a warm-up short enough to end inside the test."""


def blender_dataset(tmp_path, views: int = 4, height: int = 16, width: int = 24) -> types.SimpleNamespace:
    """RadFoam's dataset_args naming a Blender scene written to ``tmp_path``: views 0..n-2 train, the last test."""
    scene = make_scene(views=views, height=height, width=width)
    scene.splits = {"train": list(range(views - 1)), "test": [views - 1]}
    save_blender(scene, tmp_path / "lego")
    return types.SimpleNamespace(data_path=str(tmp_path), scene="lego", dataset="blender")


def train_py(handler, iterations: int, error_sampling: bool) -> tuple[list[dict], list[tuple]]:
    """The data side of RadFoam's train.py, call for call (the model is a constant grey guess).

    Returns the error statistics logged every 100 iterations and, per iteration, what the
    batch in hand was: (iteration, img_wh, the sampler's step for it, ray_indices or None).
    """

    def fresh_iterator(i: int):
        iterator = handler.get_iter_with_error_sampling(iteration=i) if error_sampling else handler.get_iter()
        return iterator, next(iterator)

    handler.reload(split="train", downsample=SCHEDULE[0])
    data_iterator, batch = fresh_iterator(0)
    history, seen = [], []
    for i in range(iterations):
        if i in SCHEDULE and i:
            handler.reload(split="train", downsample=SCHEDULE[i])
            data_iterator, batch = fresh_iterator(i)
        if error_sampling:
            rays, rgb, alpha, normal, depth, instance, ray_indices = batch
        else:
            rays, rgb, alpha, normal, depth, instance = batch
            ray_indices = None
        assert rays.shape == (handler.batch_size, 6) and rgb.shape == (handler.batch_size, 3)
        assert alpha.shape == (handler.batch_size, 1) and normal is None and depth is None and instance is None
        step = handler.error_sampler.last_step if error_sampling else None
        seen.append((i, handler.img_wh, step, ray_indices))
        color_loss = F.smooth_l1_loss(rgb, torch.full_like(rgb, 0.5), reduction="none")
        if error_sampling:
            per_ray_color_loss = color_loss.mean(dim=-1)
            handler.update_error_map(per_ray_color_loss)
            if i % 100 == 0:
                history.append(handler.get_error_statistics())
        batch = next(data_iterator)
    return history, seen


@pytest.mark.parametrize("semantics", ["foveate", "radfoam"])
def test_train_py_with_error_sampling(tmp_path, semantics, device):
    dataset_args = blender_dataset(tmp_path)
    handler = create_error_aware_data_handler(
        dataset_args, rays_per_batch=64, device=str(device), error_sampling_config=SEED_CONFIG, semantics=semantics
    )
    history, seen = train_py(handler, 600, error_sampling=True)

    sizes = {i: wh for i, wh, _, _ in seen}
    assert (sizes[149], sizes[150], sizes[499], sizes[500]) == ((6, 4), (12, 8), (12, 8), (24, 16))
    for i, (width, height), step, ids in seen:
        assert step == i, f"iteration {i} trained on a batch drawn for step {step}"
        assert int(ids.min()) >= 0 and int(ids.max()) < 3 * width * height
    if semantics == "radfoam":  # 64 of 72 rays at a quarter resolution: warm-up draws hold no repeats
        assert all(torch.unique(ids).numel() == 64 for i, _, _, ids in seen if i < 150)
    sampler = handler.error_sampler
    assert sampler.iteration_count == 100 and sampler.last_step == 600, "a fresh sampler at full resolution"
    assert sampler.should_use_error_sampling(sampler.last_step)
    assert len(history) == 6 and json.loads(json.dumps(history)) == history  # train.py dumps it as JSON
    for stats in history:
        assert {"mean_error", "std_error", "max_error", "min_error", "error_range", "iteration_count"} <= set(stats)
        assert stats["error_range"] == stats["max_error"] - stats["min_error"] and stats["mean_error"] > 0
    assert all(len(values) == 1 for values in sampler.get_error_statistics().values())  # logged at update 100


def test_train_py_with_uniform_rays():
    handler = create_error_aware_data_handler(make_scene(height=16, width=24), 32, "cpu")
    _, seen = train_py(handler, 520, error_sampling=False)
    assert [wh for _, wh, _, _ in seen[148:152]] == [(6, 4), (6, 4), (12, 8), (12, 8)]
    assert seen[-1][1] == (24, 16)
    assert handler.error_sampler.iteration_count == 0


def test_the_iterator_judges_warmup_at_every_draw():
    # RadFoam's get_iter_with_error_sampling(iteration=0) draws for iteration 0 as long as it lives:
    # made at 0, 150 and 500 under a warm-up of 1000 it never leaves warm-up.
    handler = create_error_aware_data_handler(make_scene(), 256, "cpu", warmup_iterations=3, min_error_weight=0.0)
    handler.reload(split="train", downsample=1)
    hot = torch.zeros(handler.num_rays)
    hot[:10] = 1.0
    handler.error_sampler.error_map = hot
    batches = handler.get_iter_with_error_sampling(iteration=0)
    shares = [float((next(batches)[-1] < 10).double().mean()) for _ in range(5)]
    assert max(shares[:3]) < 0.5 and min(shares[3:]) > 0.5, shares


def test_factory_takes_the_seeds_config_and_the_repositorys_keywords():
    seed_form = create_error_aware_data_handler(make_scene(), 8, "cpu", SEED_CONFIG)
    keyword_form = create_error_aware_data_handler(
        make_scene(), 8, "cpu", decay=0.9, warmup_iterations=200, update_frequency=100, min_error_weight=0.1
    )
    for handler in (seed_form, keyword_form):
        s = handler.error_sampler
        assert isinstance(s, ErrorBasedRaySampler) and handler.radfoam_tuples
        assert (s.decay, s.warmup_iterations, s.update_frequency, s.min_error_weight) == (0.9, 200, 100, 0.1)
    assert seed_form.error_sampler.config == keyword_form.error_sampler.config
    radfoams = create_error_aware_data_handler(make_scene(), 8, "cpu", {"args": {"decay": 0.5}}, semantics="radfoam")
    assert radfoams.error_sampler.semantics == "radfoam" and radfoams.error_sampler.decay == 0.5
    with pytest.raises(ValueError, match="both"):
        create_error_aware_data_handler(make_scene(), 8, "cpu", SEED_CONFIG, decay=0.5)
    with pytest.raises(TypeError, match="unknown keyword"):
        create_error_aware_data_handler(make_scene(), 8, "cpu", decy=0.5)
    with pytest.raises(ValueError, match="semantics given twice"):
        create_error_aware_data_handler(make_scene(), 8, "cpu", {"semantics": "foveate"}, semantics="radfoam")


def test_factory_composites_over_white():
    handler = create_error_aware_data_handler(make_scene(), 64, "cpu")
    _, rgb, alpha, *_, ids = next(handler.get_iter_with_error_sampling(iteration=0))
    image, pixel = ids // 96, ids % 96
    expected = make_scene().images[image, pixel // 12, pixel % 12].float() / 255 + (1.0 - alpha)
    torch.testing.assert_close(rgb, expected)


def test_a_colmap_scene_holds_out_every_eighth_view_as_radfoams_loader_does(tmp_path):
    save_colmap(make_scene(views=10, height=4, width=6), tmp_path / "garden", binary=True)
    dataset_args = types.SimpleNamespace(data_path=str(tmp_path), scene="garden", dataset="colmap")
    handler = create_error_aware_data_handler(dataset_args, 8, "cpu")
    assert handler.source.splits == {"train": [1, 2, 3, 4, 5, 6, 7, 9], "test": [0, 8]}
    assert handler.shape == (8, 4, 6)
    handler.reload(split="test", downsample=2)
    assert handler.shape == (2, 2, 3) and handler.split == "test"
    assert create_error_aware_data_handler(make_scene(views=10), 8, "cpu").shape[0] == 10, "a Scene is taken whole"


def test_reload_takes_both_call_forms():
    handler = ErrorAwareDataHandler(make_scene(height=16, width=24), 8)
    handler.reload(4)
    assert handler.img_wh == (6, 4)
    handler.reload(split="train", downsample=2)
    assert handler.img_wh == (12, 8)
    handler.reload(downsample=4)
    assert handler.img_wh == (6, 4)
    handler.reload()
    assert handler.img_wh == (24, 16)
    with pytest.raises(TypeError, match="reload\\(factor\\) or"):
        handler.reload(2, downsample=2)
    with pytest.raises(KeyError, match="no views in split 'test'"):
        handler.reload(split="test")


def test_without_radfoam_tuples_the_iterators_keep_foveates_shapes():
    handler = ErrorAwareDataHandler(make_scene(), 16)
    assert len(next(handler.get_iter())) == 3
    batch = next(handler.get_iter_with_error_sampling(iteration=5))
    assert batch._fields == ("rays", "rgb", "alpha", "ids", "weights") and handler.step == 6


def test_radfoam_tuples_carry_the_scenes_normals_and_depths():
    base = make_scene(views=2, height=8, width=12)
    depths = torch.arange(2 * 8 * 12, dtype=torch.float32).reshape(2, 8, 12)
    normals = torch.nn.functional.normalize(torch.rand(2, 8, 12, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    scene = replace(base, depths=depths, normals=normals)
    handler = ErrorAwareDataHandler(scene, 32, radfoam_tuples=True, downsample=2)
    *_, normal, depth, instance, ids = next(handler.get_iter_with_error_sampling())
    image, pixel = ids // 24, ids % 24
    y, x = 2 * (pixel // 6) + 1, 2 * (pixel % 6) + 1  # the centre sample of each 2 x 2 block
    torch.testing.assert_close(depth, depths[image, y, x])
    torch.testing.assert_close(normal, normals[image, y, x])
    assert instance is None and handler.memory()["extras"] == 2 * 4 * 6 * 16
    *_, normal, depth, instance = next(handler.get_iter())
    assert normal.shape == (32, 3) and depth.shape == (32,)


def test_update_error_map_feeds_the_last_batch():
    handler = create_error_aware_data_handler(make_scene(), 16, "cpu", semantics="radfoam")
    handler.update_error_map(torch.ones(16))  # nothing drawn yet at this resolution: nothing to credit
    assert handler.error_sampler.iteration_count == 0
    *_, ids = next(handler.get_iter_with_error_sampling(iteration=0))
    assert handler.current_ray_indices is ids
    handler.update_error_map(torch.full((16, 3), 2.0))  # per-channel losses are averaged
    assert handler.error_sampler.iteration_count == 1
    torch.testing.assert_close(handler.error_sampler.error_map[ids], torch.full((16,), 1.1))
    handler.reload(split="train", downsample=2)
    assert handler.current_ray_indices is None


def test_get_error_statistics_and_debug_info():
    handler = create_error_aware_data_handler(make_scene(), 16, "cpu", debug_constant_error=True)
    handler.reload(split="train", downsample=1)
    total = handler.num_rays  # 3 views of 8 x 12
    *_, ids = next(handler.get_iter_with_error_sampling(iteration=0))
    handler.update_error_map(torch.ones(16))  # the debug map stays as it is
    info = handler.get_debug_info()
    high = math.ceil(total / 250)
    assert info["error_map_shape"] == (total,) and info["current_ray_indices_shape"] == (16,)
    assert (info["error_map_min"], info["error_map_max"]) == (pytest.approx(0.001), 10.0)
    assert info["error_map_mean"] == pytest.approx((10.0 * high + 0.001 * (total - high)) / total)
    assert info["high_error_rays_sampled"] == int((ids % 250 == 0).sum())
    stats = handler.get_error_statistics()
    assert stats["max_error"] == 10.0 and stats["iteration_count"] == 0
    uniform = ErrorAwareDataHandler(make_scene(), 16, gather_only=True)
    assert uniform.get_error_statistics() == {} and uniform.get_debug_info() == {}


def test_camera_attributes_follow_radfoams_axes():
    views = 6
    c2w = look_at(camera_positions("orbit", views, radius=3.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    names = [str(i) for i in range(views)]
    scene = Scene(torch.zeros(views, 4, 4, 3, dtype=torch.uint8), Cameras.from_fov(c2w, 4, 4, 50.0), names)
    handler = ErrorAwareDataHandler(scene, 8)
    torch.testing.assert_close(handler.camera_positions, c2w[:, :3, 3])
    torch.testing.assert_close(handler.camera_forwards, c2w[:, :3, 2])
    torch.testing.assert_close(handler.camera_ups, -c2w[:, :3, 1])
    torch.testing.assert_close(handler.viewer_pos, c2w[0, :3, 3])
    torch.testing.assert_close(handler.viewer_forward, c2w[0, :3, 2])
    # Cameras on a ring around the y axis, held upright: the scene's up is +y.
    torch.testing.assert_close(handler.viewer_up, torch.tensor([0.0, 1.0, 0.0]), atol=1e-5, rtol=0)
    flipped = c2w.clone()
    flipped[:, :3, :2] *= -1  # the same cameras upside down (rolled by 180 degrees)
    upside_down = replace(scene, cameras=Cameras.from_fov(flipped, 4, 4, 50.0))
    torch.testing.assert_close(
        ErrorAwareDataHandler(upside_down, 8).viewer_up, torch.tensor([0.0, -1.0, 0.0]), atol=1e-5, rtol=0
    )


def test_points_in_radfoams_convention():
    points = torch.rand(5, 3)
    colors = torch.tensor([[0, 51, 255]] * 5, dtype=torch.uint8)
    handler = ErrorAwareDataHandler(replace(make_scene(), points=points, point_colors=colors), 8)
    assert handler.points3D is points
    torch.testing.assert_close(handler.points3D_colors, torch.tensor([[0.0, 0.2, 1.0]] * 5))
    bare = ErrorAwareDataHandler(make_scene(), 8)
    assert bare.points3D is None and bare.points3D_colors is None


def test_rays_and_rgbs_hold_every_pixel_for_densification():
    scene = make_scene()
    handler = create_error_aware_data_handler(scene, 8, "cpu")
    handler.reload(split="train", downsample=2)
    everything = handler.gather(torch.arange(handler.num_rays))
    assert handler.rays.shape == (3, 4, 6, 6) and handler.rgbs.shape == (3, 4, 6, 3)
    torch.testing.assert_close(handler.rays.reshape(-1, 6), everything.rays)
    torch.testing.assert_close(handler.rgbs.reshape(-1, 3), everything.rgb)


def test_state_dict_keeps_the_split():
    scene = make_scene(views=4)
    scene.splits = {"train": [0, 1, 2], "test": [3]}
    a = create_error_aware_data_handler(scene, 8, "cpu")
    a.reload(split="test", downsample=2)
    b = create_error_aware_data_handler(scene, 8, "cpu")
    b.load_state_dict(a.state_dict())
    assert (b.split, b.shape) == ("test", (1, 4, 6))
