"""The NeuS task's view of noisy targets: the noise's share of each ray's error reaches the sampler."""

import dataclasses
import math

import torch

from foveate.data.scenes import NOISE_FILE, write_noise
from foveate.pipelines import get_pipeline, make_trainer
from foveate.pipelines.neus import NeuSTask, preset

from .conftest import ball_scene, write_ball


def test_the_targets_noise_reaches_the_sampler_unless_turned_off(tmp_path):
    scene = ball_scene()
    variance = torch.rand(scene.num_views, scene.height, scene.width, generator=torch.Generator().manual_seed(0))
    variance *= 0.01
    root = write_ball(tmp_path / "noisy", scene)
    write_noise(root / NOISE_FILE, dataclasses.replace(scene, noise=variance))
    task = NeuSTask.from_config(preset("tiny", scene=str(root)), torch.device("cpu"))
    # Gaussian noise of variance v in each of 3 channels alone gives an L1 colour error of 3 sqrt(2 v / pi).
    torch.testing.assert_close(task.noise, 3.0 * (2.0 * variance.reshape(-1) / math.pi).sqrt())
    errors = {}
    for aware in (True, False):
        config = preset("tiny", scene=str(root), train__steps=1, sampling__noise_aware=aware)
        config.sampling.warmup_iterations = 0
        trainer = make_trainer(get_pipeline("neus"), config, in_memory=True)
        trainer.fit()
        errors[aware] = trainer.sampler.statistics.error.clone()
    seen = trainer.sampler.statistics.visits > 0  # one step: both runs drew the same rays
    inside = trainer.task.masks.reshape(-1)[seen].float() / 255.0 > 0.5
    expected = trainer.task.noise[seen] * inside
    torch.testing.assert_close(errors[False][seen] - errors[True][seen], expected)
