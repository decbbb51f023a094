"""Configs: dict round trip, presets and flags through tyro, saved configs, resume compatibility."""

from __future__ import annotations

import dataclasses

import pytest

from foveate.sampling import Spatial
from foveate.train import (
    ConfigMismatchError,
    Preset,
    SamplingConfig,
    check_resume_compatible,
    config_from_dict,
    config_to_dict,
    parse_config,
    save_config_yaml,
)

from .toy import ToyConfig

PRESETS = {"default": Preset("the toy", ToyConfig()), "small": Preset("fewer units", ToyConfig(units=64))}


def parse(argv, **kwargs):
    return parse_config(ToyConfig, argv, presets=PRESETS, prog="toy", description="A toy.", **kwargs)


def test_config_round_trips_through_plain_data():
    config = ToyConfig()
    config.optim.betas = (0.8, 0.9)
    config.sampling.spatial.patch_size = 4
    data = config_to_dict(config)
    assert data["optim"]["betas"] == [0.8, 0.9]
    assert data["sampling"]["spatial"] == {"patch_size": 4, "within": "uniform", "prior": "max", "pool_visits": 0.0}
    assert config_from_dict(ToyConfig, data) == config
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bogus'\]"):
        config_from_dict(ToyConfig, {**data, "train": {**data["train"], "bogus": 1}})


def test_the_sampling_defaults_are_the_engines():
    import inspect

    from foveate.sampling import Sampler

    engine = inspect.signature(Sampler).parameters
    config = SamplingConfig()
    for name in ("decay", "update_frequency", "warmup_iterations", "min_error_weight", "uniform_fraction"):
        assert getattr(config, name) == engine[name].default, name
    assert config.spatial == Spatial() and config.chosen() is config.adaptive
    assert engine["strategy"].default == "error_weighted", "the engine keeps the seeds' default; training, adaptive"


def test_cli_starts_from_the_named_preset_and_applies_short_and_sectioned_flags():
    argv = ["--preset", "small", "--steps", "7", "--strategy", "spatial", "--sampling.spatial.patch-size", "4"]
    config, _ = parse(argv)
    assert (config.units, config.train.steps, config.sampling.strategy) == (64, 7, "spatial")
    assert config.sampling.chosen() == Spatial(patch_size=4)
    assert config.train.batch_size == PRESETS["small"].config.train.batch_size
    assert PRESETS["small"].config.train.steps == 40, "parsing must not change the preset itself"
    with pytest.raises(SystemExit):
        parse(["--preset", "nope"])


def test_a_saved_config_is_the_starting_point_of_config(tmp_path):
    saved, _ = parse(["--preset", "small", "--seed", "5"])
    save_config_yaml(saved, tmp_path / "config.yaml")
    config, _ = parse(["--config", str(tmp_path / "config.yaml"), "--steps", "9"])
    assert (config.units, config.train.seed, config.train.steps) == (64, 5, 9)
    with pytest.raises(SystemExit, match="not both"):
        parse(["--config", str(tmp_path / "config.yaml"), "--preset", "small"])
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        parse(["--config", str(tmp_path / "missing.yaml")])


def test_help_lists_the_presets_and_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    text = capsys.readouterr().out
    assert "--preset {default,small}" in text and "small: fewer units" in text
    assert "--steps" in text and "--strategy" in text and "--sampling.spatial.patch-size" in text
    for markup in ("``", ":class:", ":func:", ":meth:"):
        assert markup not in text


def test_command_options_sit_beside_the_config_and_clashes_are_refused():
    @dataclasses.dataclass
    class Options:
        strategies: tuple[str, ...] = ("uniform",)
        """Strategies to compare."""

    config, options = parse(["--strategies", "uniform", "spatial", "--steps", "3"], options=Options)
    assert options.strategies == ("uniform", "spatial") and config.train.steps == 3

    @dataclasses.dataclass
    class Clashing:
        units: int = 1

    with pytest.raises(ValueError, match="units"):
        parse([], options=Clashing)


def test_resume_compatibility_names_blocking_keys_and_allows_runtime_ones():
    saved = config_to_dict(ToyConfig())
    runtime = ToyConfig()
    runtime.train.steps = 80
    runtime.train.progress = True
    assert check_resume_compatible(saved, config_to_dict(runtime), "ckpt.pt") == ["train.progress", "train.steps"]
    changed = ToyConfig()
    changed.sampling.decay = 0.1
    with pytest.raises(ConfigMismatchError, match=r"ckpt\.pt.*\n  sampling\.decay: checkpoint 0\.9, now 0\.1"):
        check_resume_compatible(saved, config_to_dict(changed), "ckpt.pt")


def test_an_option_added_since_the_checkpoint_does_not_block_its_resume():
    saved = config_to_dict(ToyConfig())
    del saved["sampling"]["noise_aware"]  # a checkpoint from before the option existed
    assert check_resume_compatible(saved, config_to_dict(ToyConfig()), "ckpt.pt") == ["sampling.noise_aware"]
    removed = {**saved, "sampling": {**saved["sampling"], "retired_option": 1}}
    with pytest.raises(ConfigMismatchError, match="retired_option"):
        check_resume_compatible(removed, config_to_dict(ToyConfig()), "ckpt.pt")
