"""Configs: dict round trip, CLI presets and flags, resume compatibility."""

from __future__ import annotations

import pytest

from foveate.train import ConfigMismatchError, check_resume_compatible, config_from_dict, config_to_dict, parse_config

from .toy import ToyConfig


def test_config_round_trips_through_plain_data():
    config = ToyConfig()
    config.optim.betas = (0.8, 0.9)
    data = config_to_dict(config)
    assert data["optim"]["betas"] == [0.8, 0.9]
    assert config_from_dict(ToyConfig, data) == config
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bogus'\]"):
        config_from_dict(ToyConfig, {**data, "train": {**data["train"], "bogus": 1}})


def test_cli_starts_from_the_named_preset_and_applies_flags():
    small = ToyConfig(units=64)
    presets = {"default": ToyConfig(), "small": small}
    config = parse_config(
        ToyConfig,
        ["--preset", "small", "--steps", "7", "--strategy", "spatial"],
        presets=presets,
        prog="toy",
        description="toy",
    )
    assert (config.units, config.train.steps, config.sampling.strategy) == (64, 7, "spatial")
    assert config.train.batch_size == small.train.batch_size
    with pytest.raises(SystemExit, match="unknown preset"):
        parse_config(ToyConfig, ["--preset", "nope"], presets=presets, prog="toy", description="toy")


def test_resume_compatibility_names_blocking_keys_and_allows_runtime_ones():
    saved = config_to_dict(ToyConfig())
    runtime = ToyConfig()
    runtime.train.steps = 80
    runtime.train.progress = True
    assert check_resume_compatible(saved, config_to_dict(runtime), "ckpt.pt") == ["train.progress", "train.steps"]
    changed = ToyConfig()
    changed.sampling.decay = 0.1
    with pytest.raises(ConfigMismatchError, match=r"ckpt\.pt.*\n  sampling\.decay: checkpoint 0\.5, now 0\.1"):
        check_resume_compatible(saved, config_to_dict(changed), "ckpt.pt")
