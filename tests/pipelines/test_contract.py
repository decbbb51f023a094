"""The contract every registered pipeline keeps, on its ``tiny`` preset, on a CPU, in seconds each.

Train a few steps; stop on SIGTERM mid-run and resume bit-exactly; compare two sampling
variants; export (and render, where the pipeline renders). A new pipeline joins by registering
and adding the inputs its tiny preset needs to ``INPUTS``; the first test fails until it does.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from foveate.data.scenes import save_blender
from foveate.pipelines import available_pipelines, get_pipeline, make_trainer, render_command
from foveate.report import compare
from foveate.train import apply_changes

from .test_nerf import ball_scene


def _photo(tmp_path: Path) -> dict[str, Any]:
    import PIL.Image

    y, x = np.mgrid[0:24, 0:32]
    PIL.Image.fromarray(np.stack([x * 8, y * 10, (x * y) % 256], axis=2).astype(np.uint8)).save(tmp_path / "p.png")
    return {"image": str(tmp_path / "p.png")}


def _scene(tmp_path: Path) -> dict[str, Any]:
    save_blender(ball_scene(), tmp_path / "ball", geometry=False)
    return {"scene": str(tmp_path / "ball")}


def _ball(tmp_path: Path) -> dict[str, Any]:
    from .neus.conftest import write_ball

    return {"scene": str(write_ball(tmp_path / "neus-ball"))}


def _materials(tmp_path: Path) -> dict[str, Any]:
    from foveate.pbr.data import generate_dataset

    root = tmp_path / "materials"
    if not root.exists():
        generate_dataset(root, samples=5, size=64, seed=0, progress=False, textures=[], environments=[])
    return {"data__data_root": root}


INPUTS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "image": _photo,
    "nerf": _scene,
    "motion": lambda tmp_path: {},
    "neus": _ball,
    "splat": _scene,
    "pbr": _materials,
}
"""What each pipeline's tiny preset needs beyond itself, as config changes."""
RENDER_FLAGS = {
    "nerf": ["--frames", "2", "--formats", "gif"],
    "neus": ["--frames", "2"],
    "splat": ["--frames", "2", "--formats", "gif"],
}
STEPS, SIGNAL_AT = 6, 3


def tiny(name: str, tmp_path: Path, **changes: Any) -> Any:
    config = copy.deepcopy(get_pipeline(name).presets["tiny"].config)
    return apply_changes(
        config,
        {
            **INPUTS[name](tmp_path),
            "train__steps": STEPS,
            "train__validate_every": 2,
            "train__checkpoint_every": 2,
            "train__runs_dir": str(tmp_path / "runs"),
            "train__progress": False,
            "train__tensorboard": False,
            **changes,
        },
    )


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Bit-identical nested state: dicts, lists, tensors and plain values."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{index}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_every_registered_pipeline_is_under_contract():
    assert set(INPUTS) == set(available_pipelines())
    for name in available_pipelines():
        assert "tiny" in get_pipeline(name).presets, f"{name} has no tiny preset"


RESUMED = [pytest.param(name, {}, id=name) for name in sorted(INPUTS)] + [
    pytest.param("nerf", {"march__uniform_cost": True, "sampling__warmup_iterations": 1}, id="nerf-uniform-cost"),
    pytest.param(
        "image",
        {
            "sampling__strategy": "error_weighted",
            "sampling__error_weighted__refresh": True,
            "sampling__correction": "0.5",
            "sampling__warmup_iterations": 1,
        },
        id="image-refreshed-soft-weights",
    ),
]
"""Every pipeline, and settings whose state a resume must carry (a radiance field sized to uniform's cost,
soft weights normalised by sums that refreshes keep up to date)."""


@pytest.mark.parametrize(("name", "changes"), RESUMED)
def test_train_stop_on_sigterm_resume_exactly_and_export(name, changes, tmp_path):
    spec = get_pipeline(name)
    straight = make_trainer(spec, tiny(name, tmp_path, train__name="straight", **changes))
    result = straight.fit()
    assert result.status == "completed" and result.step == STEPS
    assert [r["step"] for r in result.history] == [0, 2, 4, 6]
    assert result.exported and all(path.is_file() for path in result.exported)

    killed = make_trainer(spec, tiny(name, tmp_path, train__name="killed", **changes))
    step = killed.train_step

    def step_then_signal():
        output = step()
        if killed.step == SIGNAL_AT:
            os.kill(os.getpid(), signal.SIGTERM)
        return output

    killed.train_step = step_then_signal
    stopped = killed.fit()
    assert stopped.status == "interrupted" and stopped.step == SIGNAL_AT
    resumed = make_trainer(spec, tiny(name, tmp_path, train__name="killed", train__resume="latest", **changes))
    assert resumed.step == SIGNAL_AT
    assert resumed.fit().status == "completed"
    assert_same(straight.task.state_dict(), resumed.task.state_dict(), "task")
    assert_same(straight.sampler.state_dict(), resumed.sampler.state_dict(), "sampler")
    untimed = [[{k: v for k, v in r.items() if k != "wall_seconds"} for r in t.history] for t in (straight, resumed)]
    assert_same(*untimed, "history")

    if spec.render_options is not None:
        run = straight.run_dir
        assert render_command(name, ["--run", str(run), "--no-progress", *RENDER_FLAGS.get(name, [])]) == 0
        assert any((run / "renders").iterdir())


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_compare_two_variants(name, tmp_path):
    spec = get_pipeline(name)
    variants = list(spec.variants)[:2]
    comparison = compare(spec, tiny(name, tmp_path), variants, [0], tmp_path / "compare")
    report = json.loads((tmp_path / "compare" / "report.json").read_text())
    assert list(report["variants"]) == variants == list(comparison.report["variants"])
    assert report["metric"]["name"] == spec.task_type.metric.name
    assert report["unit_noun"] == spec.task_type.unit_noun
    assert (tmp_path / "compare" / "report.md").is_file()


@pytest.mark.parametrize("name", sorted(set(INPUTS) - {"motion"}))
def test_two_torchrun_ranks_train_one_run(name, tmp_path):
    """Two gloo ranks on the tiny preset: one run directory, the ranks' models identical at every checkpoint."""
    inputs = {key.split("__")[-1].replace("_", "-"): value for key, value in INPUTS[name](tmp_path).items()}
    flags = ["--preset", "tiny", *(item for key, value in inputs.items() for item in (f"--{key}", str(value)))]
    if name == "pbr":
        flags += ["--checkpoint-dir", str(tmp_path / "two"), "--batch-size", "2"]
    else:
        flags += ["--steps", str(STEPS), "--train.checkpoint-every", "2", "--train.runs-dir", str(tmp_path)]
        flags += ["--name", "two"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*command, "-m", "foveate", "train", name, *flags], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "two" if name == "pbr" else tmp_path / name / "two"
    assert done.stdout.strip() == str(run)
    spec = get_pipeline(name)
    latest = torch.load(spec.task_type.checkpoint_names.latest_of(run), weights_only=True)
    assert latest["world_size"] == 2 and latest["step"] > 0


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_training_steps_under_bfloat16_autocast(name, tmp_path):
    """CUDA trains under bfloat16 autocast by default; the same autocast on the CPU runs every task's step."""
    trainer = make_trainer(get_pipeline(name), tiny(name, tmp_path, train__name="amp"))
    trainer.optimization.amp_dtype = torch.bfloat16
    for _ in range(2):
        trainer.train_step()
    assert trainer.step == 2
    for name_, parameter in trainer.task.state_dict().items():
        if isinstance(parameter, torch.Tensor) and parameter.is_floating_point():
            assert torch.isfinite(parameter).all(), f"{name_} is not finite"
