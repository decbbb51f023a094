"""The error-aware data handler: batches, warm-up per step, fallback, resolution schedule, scale."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from foveate.data.cameras import Cameras, DownsampleSchedule, camera_positions, look_at
from foveate.data.handler import ErrorAwareDataHandler, sampler_arguments
from foveate.data.scenes import Scene


def make_scene(views: int = 3, height: int = 8, width: int = 12, masks: bool = True) -> Scene:
    generator = torch.Generator().manual_seed(0)
    c2w = look_at(camera_positions("sphere", views, radius=3.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    return Scene(
        images=torch.randint(0, 256, (views, height, width, 3), dtype=torch.uint8, generator=generator),
        cameras=Cameras.from_fov(c2w, width, height, 50.0),
        names=[str(i) for i in range(views)],
        masks=torch.randint(0, 256, (views, height, width), dtype=torch.uint8, generator=generator) if masks else None,
    )


def focused_config(**overrides) -> dict:
    """Error-weighted draws that follow the last update at once; rays without error get no weight."""
    return {
        "warmup_iterations": 0,
        "update_frequency": 1,
        "prior": 0.0,
        "uniform_fraction": 0.0,
        "min_error_weight": 0.0,
        **overrides,
    }


def test_batches_hold_the_pixels_they_name(device):
    scene = make_scene()
    handler = ErrorAwareDataHandler(scene, 64, device=device, background=(1.0, 0.5, 0.0))
    batch = handler.sample()
    assert batch.rays.shape == (64, 6) and batch.rgb.shape == (64, 3) and batch.alpha.shape == (64, 1)
    image, pixel = batch.ids.cpu() // (8 * 12), batch.ids.cpu() % (8 * 12)
    y, x = pixel // 12, pixel % 12
    alpha = scene.masks[image, y, x].float()[:, None] / 255
    expected = scene.images[image, y, x].float() / 255 + torch.tensor([1.0, 0.5, 0.0]) * (1 - alpha)
    torch.testing.assert_close(batch.rgb.cpu(), expected)
    torch.testing.assert_close(batch.alpha.cpu(), alpha)
    origins, directions = scene.cameras.rays(image, y, x)
    torch.testing.assert_close(batch.rays.cpu(), torch.cat([origins, directions], dim=1))
    torch.testing.assert_close(batch.weights.cpu(), torch.ones(64))


def test_get_iter_has_radfoams_shape():
    handler = ErrorAwareDataHandler(make_scene(masks=False), 32)
    rays, rgb, alpha = next(handler.get_iter())
    assert rays.shape == (32, 6) and rgb.shape == (32, 3) and alpha.shape == (32, 1)
    assert bool((alpha == 1).all())
    torch.testing.assert_close(rays[:, 3:].norm(dim=1), torch.ones(32))


def test_warmup_is_judged_at_every_step():
    handler = ErrorAwareDataHandler(make_scene(), 4096, focused_config(warmup_iterations=3))
    hot = torch.arange(10)  # ten pixels of the first image
    iterator = handler.get_iter_with_error_sampling()
    for step in range(5):
        batch = next(iterator)
        handler.update(hot, torch.ones(10), step)
        inside = float((batch.ids < 10).double().mean())
        if step < 3:
            assert inside < 0.1, f"step {step}: still in warm-up, but {inside:.0%} of the draws are focused"
        else:
            assert inside == 1.0, f"step {step}: past warm-up, but only {inside:.0%} of the draws are focused"


def test_a_new_iterator_continues_from_the_handlers_step():
    handler = ErrorAwareDataHandler(make_scene(), 512, focused_config(warmup_iterations=2))
    handler.update(torch.arange(5), torch.ones(5), step=4)  # the trainer is at step 4
    batch = next(handler.get_iter_with_error_sampling())  # a fresh iterator, as after a reload
    assert bool((batch.ids < 5).all())
    assert handler.step == 6


def test_engine_failure_falls_back_to_uniform_with_one_warning(caplog, monkeypatch):
    handler = ErrorAwareDataHandler(make_scene(), 256, focused_config())
    handler.update(torch.arange(5), torch.ones(5), step=0)

    def broken(n, step):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(handler.sampler, "sample", broken)
    with caplog.at_level(logging.WARNING, logger="foveate.data.handler"):
        batches = [handler.sample() for _ in range(3)]
        handler.update(batches[-1].ids, torch.ones(256))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "out of memory" in warnings[0].getMessage()
    assert handler.stats()["fallback"].startswith("OutOfMemoryError")
    assert float((batches[-1].ids < 5).double().mean()) < 0.2  # uniform again, not focused


def test_a_callers_mistake_raises_instead_of_falling_back():
    handler = ErrorAwareDataHandler(make_scene(), 16, focused_config())
    batch = handler.sample()
    with pytest.raises(ValueError, match="errors must be >= 0"):
        handler.update(batch.ids, -torch.ones(16))
    assert handler.sampler is not None and handler.stats()["fallback"] is None


def test_gather_only_holds_no_sampler_and_gathers_what_it_is_given():
    handler = ErrorAwareDataHandler(make_scene(), 16, gather_only=True)
    assert handler.sampler is None
    ids = torch.tensor([0, 13, 95])
    batch = handler.gather(ids)
    assert torch.equal(batch.ids, ids) and batch.rays.shape == (3, 6)
    assert torch.equal(batch.weights, torch.ones(3))


def test_bad_sampler_config_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="strategy"):
        ErrorAwareDataHandler(make_scene(), 16, {"strategy": "nonsense"})
    with pytest.raises(ValueError, match="both"):
        sampler_arguments({"decay": 0.5, "args": {"decay": 0.9}})
    with pytest.raises(ValueError, match="shape"):
        sampler_arguments({"shape": 3})


def test_radfoams_dataset_args_name_the_scene(tmp_path):
    import types

    from foveate.data.scenes import save_blender

    save_blender(make_scene(), tmp_path / "bunny")
    dataset_args = types.SimpleNamespace(data_path=str(tmp_path), scene="bunny", dataset="blender")
    handler = ErrorAwareDataHandler(dataset_args, 16)
    assert handler.shape == (3, 8, 12)
    with pytest.raises(TypeError, match="dataset must be"):
        ErrorAwareDataHandler(42, 16)


def test_the_seeds_nested_config_is_accepted():
    config = {"strategy": "spatial", "args": {"update_frequency": 50, "decay": 0.95, "patch_size": 4}}
    handler = ErrorAwareDataHandler(make_scene(), 16, config)
    assert handler.sampler.config["strategy"] == "spatial"
    assert handler.sampler.config["decay"] == 0.95 and handler.sampler.config["patch_size"] == 4


def test_update_checks_shapes_and_averages_channels():
    handler = ErrorAwareDataHandler(make_scene(), 16, focused_config())
    batch = handler.sample()
    handler.update(batch.ids, torch.rand(16, 3))
    with pytest.raises(ValueError, match="one loss per ray"):
        handler.update(batch.ids, torch.rand(15))


def test_downsample_schedule_reloads_at_radfoams_steps():
    handler = ErrorAwareDataHandler(make_scene(height=16, width=24), 64, downsample=4)
    schedule = DownsampleSchedule()
    seen = []
    for step in (0, 149, 150, 499, 500):
        handler.follow(schedule, step)
        seen.append((handler.downsample, handler.img_wh))
    assert seen == [(4, (6, 4)), (4, (6, 4)), (2, (12, 8)), (2, (12, 8)), (1, (24, 16))]
    assert handler.sampler.shape == (3, 16, 24)
    handler.reload(2)
    batch = handler.sample()
    assert int(batch.ids.max()) < 3 * 8 * 12


def test_state_dict_resumes_the_same_draws():
    config = focused_config(uniform_fraction=0.5)
    a = ErrorAwareDataHandler(make_scene(), 128, config, seed=3)
    for step in range(3):
        batch = a.sample()
        a.update(batch.ids, batch.rgb.mean(dim=1), step)
    b = ErrorAwareDataHandler(make_scene(), 128, config, seed=99)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.sample().ids, b.sample().ids)
    assert torch.equal(a.sample_uniform().ids, b.sample_uniform().ids)


def test_memory_report():
    handler = ErrorAwareDataHandler(make_scene(views=4, height=64, width=64), 16)
    memory = handler.memory()
    assert memory["colors"] == 3 * handler.num_rays and memory["alphas"] == handler.num_rays
    handler.update(torch.arange(16), torch.rand(16), step=1000)
    handler.sample()  # past the default warm-up: the distribution now exists
    bytes_per_ray = handler.bytes_per_ray()
    assert bytes_per_ray == sum(handler.memory().values()) / handler.num_rays
    assert 4.0 + 4.0 < bytes_per_ray < 16.0  # colours + coverage + an EMA and a distribution
    assert handler.stats()["bytes_per_ray"] == bytes_per_ray


@pytest.mark.slow
def test_draws_are_error_guided_beyond_two_to_the_24_rays():
    # Two 2900 x 2900 views: 16.8M rays, above torch.multinomial's 2^24 categories, where
    # the seed's handler silently fell back to uniform.
    views, side = 2, 2900
    c2w = look_at(camera_positions("orbit", views, radius=3.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    scene = Scene(
        torch.zeros(views, side, side, 3, dtype=torch.uint8), Cameras.from_fov(c2w, side, side, 40.0), ["a", "b"]
    )
    assert scene.num_rays > 2**24
    config = {"warmup_iterations": 0, "prior": 0.0, "uniform_fraction": 0.25, "min_error_weight": 0.0}
    handler = ErrorAwareDataHandler(scene, 65536, config)
    # A hot band: the last 100 rows of the second image (1.7% of the rays).
    start = side * side + (side - 100) * side
    hot = torch.arange(start, 2 * side * side)
    handler.update(hot, torch.ones(hot.numel()), step=0)
    batch = handler.sample(step=1)
    share = float((batch.ids >= start).double().mean())
    expected = 0.75 + 0.25 * hot.numel() / scene.num_rays  # the error-guided part, plus uniform's share
    assert abs(share - expected) < 0.01, f"{share:.1%} of draws hit the hot band; expected {expected:.1%}"
    assert handler.stats()["fallback"] is None


def test_radfoam_integration_example_runs(tmp_path):
    import argparse
    import runpy
    from pathlib import Path

    from foveate.data.scenes import save_blender

    scene = make_scene(views=4, height=8, width=8)
    scene.splits = {"train": [0, 1, 2], "val": [3]}
    save_blender(scene, tmp_path / "scene")
    example = runpy.run_path(str(Path(__file__).parents[2] / "examples" / "radfoam_integration.py"))
    arguments = argparse.Namespace(
        scene=str(tmp_path / "scene"),
        steps=3,
        rays_per_batch=64,
        strategy="error_weighted",
        warmup=1,
        schedule="radfoam",
        log_every=1,
        stats=str(tmp_path / "error_sampling_stats.json"),
        seed=0,
    )
    psnr = example["train"](arguments)
    assert psnr > 0
    stats = json.loads((tmp_path / "error_sampling_stats.json").read_text())
    assert stats["fallback"] is None and stats["updates"] == 3 and not stats["in_warmup"]
