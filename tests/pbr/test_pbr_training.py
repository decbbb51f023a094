"""The PBR pipeline end to end on a tiny generated dataset: config, GAN schedule, checkpoints, resume, infer, export."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch

from foveate.cli import main
from foveate.pbr.config import PRESETS, PBRConfig, preset_config, read_config_file
from foveate.pbr.data import generate_dataset
from foveate.pbr.task import epoch_lr_factor
from foveate.pbr.training import make_pbr_trainer, parse_pbr_config

CHECKPOINTS = ["best_model.pth", "checkpoint_epoch_0001.pth", "checkpoint_epoch_0002.pth", "latest.pth"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("pbr") / "data"
    generate_dataset(root, samples=8, size=64, seed=3, progress=False, textures=[], environments=[])
    return root


def _tiny(dataset, tmp_path, **changes) -> PBRConfig:
    config = preset_config("tiny")
    config.data.data_root = dataset
    config.training.checkpoint_dir = tmp_path / "run"
    config.training.progress = False
    config.training.use_tensorboard = False
    for section, values in changes.items():
        for name, value in values.items():
            setattr(getattr(config, section), name, value)
    return config


def test_epoch_factors_follow_neuropbr_warmup_then_schedule():
    config = PBRConfig()
    config.training.epochs, config.optimizer.scheduler_warmup_epochs = 10, 4
    config.optimizer.g_lr, config.optimizer.scheduler_min_lr = 1e-3, 1e-4
    assert [epoch_lr_factor(e, config) for e in range(4)] == pytest.approx([0.325, 0.55, 0.775, 1.0])
    assert epoch_lr_factor(4, config) == pytest.approx(1.0)
    assert epoch_lr_factor(7, config) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 3 / 6)) / 2)
    config.optimizer.scheduler, config.optimizer.step_size, config.optimizer.gamma = "step", 2, 0.5
    assert [epoch_lr_factor(e, config) for e in (4, 5, 6, 8)] == pytest.approx([1.0, 1.0, 0.5, 0.25])
    config.optimizer.scheduler = "none"
    assert epoch_lr_factor(0, config) == 1.0


def test_the_seed_names_reach_the_loop_in_steps(dataset, tmp_path):
    config = _tiny(dataset, tmp_path, training={"epochs": 3, "save_every_n_epochs": 2, "seed": 5})
    trainer = make_pbr_trainer(config, in_memory=True)
    per_epoch = trainer.task.steps_per_epoch
    assert per_epoch == math.ceil(len(trainer.task.train_ids) / config.data.batch_size)
    assert (config.train.steps, config.train.checkpoint_every, config.train.seed) == (3 * per_epoch, 2 * per_epoch, 5)
    assert config.optim.clip_grad_norm == config.training.grad_clip_norm


def test_every_seed_validates_on_the_same_samples(dataset, tmp_path):
    # A comparison sets each run's seed; the suite adds seeds by starting other comparisons at
    # other seeds: the split must follow data.split_seed alone, or seeds would score different samples.
    def split(seed: int, split_seed: int = 42) -> tuple[list[int], list[int]]:
        config = _tiny(dataset, tmp_path, training={"seed": seed}, data={"split_seed": split_seed})
        task = make_pbr_trainer(config, in_memory=True).task
        return task.train_ids.tolist(), task.val_ids.tolist()

    assert split(0) == split(45)
    assert split(0) != split(0, split_seed=7)


def test_a_checkpoint_from_before_split_seed_resumes_on_the_split_its_seed_made(dataset, tmp_path):
    # Such checkpoints shuffled their split with training.seed; resuming on split_seed's default
    # would train on samples the run had held out.
    first = make_pbr_trainer(_tiny(dataset, tmp_path, training={"seed": 7}, data={"split_seed": 7}))
    first.fit(stop_at=1)
    latest = tmp_path / "run" / "latest.pth"
    state = torch.load(latest, weights_only=True)
    del state["config"]["data"]["split_seed"]
    torch.save(state, latest)

    resumed = make_pbr_trainer(_tiny(dataset, tmp_path, training={"seed": 7, "resume": str(latest)}))
    assert resumed.task.val_ids.tolist() == first.task.val_ids.tolist()
    parsed = parse_pbr_config(["--resume", str(latest)])
    assert parsed.data.split_seed == 7


def test_no_discriminator_step_before_gan_start_epoch(dataset, tmp_path):
    config = _tiny(dataset, tmp_path, training={"gan_start_epoch": 1})
    trainer = make_pbr_trainer(config, in_memory=True)
    task = trainer.task
    before = [p.detach().clone() for p in task.discriminator.parameters()]
    trainer.fit(stop_at=task.steps_per_epoch)
    assert all(torch.equal(a, b) for a, b in zip(before, task.discriminator.parameters(), strict=True))
    output = trainer.train_step()
    assert "d_loss" in output.terms and "loss_gan_g" in output.terms
    assert any(not torch.equal(a, b) for a, b in zip(before, task.discriminator.parameters(), strict=True))


def test_training_writes_neuropbr_checkpoints_and_resumes_mid_epoch_exactly(dataset, tmp_path):
    straight = make_pbr_trainer(_tiny(dataset, tmp_path / "a"))
    straight.fit()
    assert sorted(p.name for p in (tmp_path / "a" / "run").glob("*.pth")) == CHECKPOINTS
    stop = straight.task.steps_per_epoch + 1  # inside the second epoch, after the GAN started
    first = make_pbr_trainer(_tiny(dataset, tmp_path / "b"))
    first.fit(stop_at=stop)
    resumed = make_pbr_trainer(
        _tiny(dataset, tmp_path / "b", training={"resume": str(tmp_path / "b" / "run" / "latest.pth")})
    )
    assert resumed.step == stop
    resumed.fit()
    expected = straight.task.model.state_dict()
    for name, value in resumed.task.model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_a_bad_flag_or_dataset_is_one_line_and_writes_nothing(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "pbr",
                "train",
                "--data-root",
                str(dataset),
                "--config",
                "tiny",
                "--epochs",
                "0",
                "--checkpoint-dir",
                str(out),
            ]
        )
        == 2
    )
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert (
        main(
            ["pbr", "train", "--data-root", str(tmp_path / "nowhere"), "--config", "tiny", "--checkpoint-dir", str(out)]
        )
        == 2
    )
    assert "nowhere" in capsys.readouterr().err
    assert not out.exists()


def test_config_files_and_presets_by_name(tmp_path):
    file = tmp_path / "mine.py"
    file.write_text(
        "from foveate.pbr.config import PBRConfig\n\n"
        "def get_config():\n"
        "    config = PBRConfig()\n"
        "    config.model.encoder_backbone = 'resnet101'\n"
        "    config.training.epochs = 7\n"
        "    config.loss.w_gan = 0.1\n"
        "    return config\n"
    )
    config = read_config_file(file)
    assert (config.model.encoder_backbone, config.training.epochs, config.train.steps) == ("resnet101", 7, 7)
    parsed = parse_pbr_config(["--config", "quick_test", "--epochs", "3", "--image-size", "128"])
    assert (parsed.model.encoder_backbone, parsed.training.epochs, parsed.data.image_size) == ("resnet18", 3, 128)
    assert parse_pbr_config(["--config", str(file)]).loss.w_gan == 0.1
    assert {"default", "quick_test", "lightweight", "tiny"} <= set(PRESETS)
    with pytest.raises(ValueError, match="get_config"):
        (tmp_path / "bad.py").write_text("x = 1\n")
        read_config_file(tmp_path / "bad.py")


def test_shipped_example_configs_load():
    from pathlib import Path

    folder = Path(__file__).parents[2] / "configs" / "pbr"
    names = sorted(p.stem for p in folder.glob("*.py"))
    assert names == ["fast_iteration", "high_quality", "normal_focused"]
    for name in names:
        read_config_file(folder / f"{name}.py").check()


def test_infer_and_export_from_best_model(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    make_pbr_trainer(_tiny(dataset, tmp_path, training={"epochs": 1, "gan_start_epoch": 5})).fit()
    views = next((dataset / "input" / "clean").iterdir())
    assert (
        main(
            [
                "pbr",
                "infer",
                "--checkpoint",
                str(run / "best_model.pth"),
                "--views",
                str(views),
                "--out",
                str(tmp_path / "maps"),
            ]
        )
        == 0
    )
    for name in ("albedo", "roughness", "metallic", "normal"):
        assert (tmp_path / "maps" / f"{name}.png").is_file()
    gltf = json.loads((tmp_path / "maps" / "material.gltf").read_text())
    assert [image["uri"] for image in gltf["images"]] == ["albedo.png", "metallic_roughness.png", "normal.png"]
    assert (
        main(["pbr", "export", "--checkpoint", str(run), "--format", "torchscript", "--out", str(tmp_path / "g.pt")])
        == 0
    )
    difference = float(capsys.readouterr().out.rsplit(":", 1)[1].strip(" )\n"))
    assert difference < 1e-4
    assert main(["pbr", "check", str(dataset)]) == 0


def test_use_wandb_logs_the_seed_tags_offline(dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B logging is optional: pip install wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = _tiny(dataset, tmp_path, training={"epochs": 1, "use_wandb": True, "wandb_project": "neuropbr"})
    make_pbr_trainer(config).fit()
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    images = {path.name.rsplit("_", 2)[0] for path in (runs[0] / "files" / "media" / "images" / "val").glob("*.png")}
    assert images == {"comparison", "input_views", "error_heatmaps"}
    wanted = (b"train/g_loss", b"train/loss_l1_total", b"val/loss", b"val/albedo_rmse")
    record = next(runs[0].glob("run-*.wandb"))
    for _ in range(50):  # W&B's writer may still be flushing its record file
        logged = record.read_bytes()
        if all(tag in logged for tag in wanted):
            break
        time.sleep(0.1)
    assert [tag for tag in wanted if tag not in logged] == []


@pytest.mark.parametrize("strategy", ["uniform", "adaptive"])
def test_the_uniform_part_of_every_draw_walks_shuffled_epochs(dataset, tmp_path, strategy):
    config = _tiny(dataset, tmp_path)
    config.sampling.strategy, config.sampling.warmup_iterations = strategy, 0
    config.sampling.adaptive.evidence = 0.0
    trainer = make_pbr_trainer(config, in_memory=True)
    task, count = trainer.task, len(trainer.task.train_ids)
    uniform_ids = []
    for step in range(40):
        ids, _ = task.draw(step)
        labels = trainer.sampler._labels
        uniform_ids += (ids if labels is None else ids[labels == 0]).tolist()
        trainer.sampler.update(ids, torch.rand(len(ids)), step)
    assert sorted(uniform_ids[:count]) == list(range(count))  # the first epoch: every sample once


def test_a_comparison_with_budgets_cuts_the_epochs(dataset, tmp_path):
    from foveate.pipelines import get_pipeline
    from foveate.report import compare

    config = _tiny(dataset, tmp_path, training={"epochs": 2})
    report = compare(
        get_pipeline("pbr"), config, ["uniform", "error_weighted"], [0], tmp_path / "cmp", budgets=[0.5]
    ).report
    per_epoch = report["steps"] // 2
    assert [(r["fraction"], r["variant"], r["steps"]) for r in report["budget_runs"]] == [
        (0.5, "error_weighted", per_epoch)
    ]
    assert [p["fraction"] for p in report["budgets"]["error_weighted"]["points"]] == [0.5, 1.0]
