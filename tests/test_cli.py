"""Smoke runs of the image commands through the ``foveate`` dispatcher on tiny images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveate.cli import main

PIL = pytest.importorskip("PIL.Image")

QUIET = ["--train.no-progress", "--train.no-tensorboard"]


@pytest.fixture
def tiny_png(tmp_path):
    y, x = np.mgrid[0:16, 0:20]
    PIL.fromarray(np.stack([x * 12, y * 15, x * y], axis=2).astype(np.uint8)).save(tmp_path / "tiny.png")
    return str(tmp_path / "tiny.png")


def test_train_image_then_resume_latest(tiny_png, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    args = ["train", "image", "--preset", "tiny", "--image", tiny_png, "--train.runs-dir", runs, "--name", "a", *QUIET]
    assert main([*args, "--steps", "10"]) == 0
    assert capsys.readouterr().out.strip().endswith("runs/image/a")
    # Resume with only the run's name: the saved config is reused, and more steps are allowed.
    resume = ["train", "image", "--train.runs-dir", runs, "--name", "a", "--resume", "latest", "--steps", "20", *QUIET]
    assert main(resume) == 0
    stats = [json.loads(line) for line in (tmp_path / "runs/image/a/stats.jsonl").read_text().splitlines()]
    assert max(line["step"] for line in stats) == 20


def test_resume_with_a_changed_setting_is_a_clear_error(tiny_png, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    base = ["train", "image", "--preset", "tiny", "--image", tiny_png, "--train.runs-dir", runs, "--name", "b", *QUIET]
    assert main(base) == 0
    capsys.readouterr()
    code = main([*base, "--resume", "latest", "--batch-size", "64"])
    assert code == 2
    assert "train.batch_size: checkpoint 256, now 64" in capsys.readouterr().err


def test_missing_and_unsupported_images_exit_with_a_message(tmp_path, capsys):
    assert main(["train", "image", "--preset", "tiny", "--image", str(tmp_path / "none.png"), *QUIET]) == 2
    assert "image not found" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["train", "image", "--preset", "tiny", "--image", str(tmp_path / "notes.txt"), *QUIET]) == 2
    assert "unsupported image format '.txt'" in capsys.readouterr().err


def test_compare_image_writes_its_report(tiny_png, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            "image",
            "--preset",
            "tiny",
            "--image",
            tiny_png,
            "--strategies",
            "uniform",
            "error_weighted",
            "--out",
            str(out),
            "--steps",
            "10",
            "--budgets",
            "0.5",
            *QUIET,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed and "error_weighted: final PSNR (dB)" in printed
    matched = [line for line in printed.splitlines() if "uniform's full run" in line]
    assert len(matched) == 1 and matched[0].strip().startswith("error_weighted: ")
    report = json.loads((out / "report.json").read_text())
    assert set(report["variants"]) == {"uniform", "error_weighted"}
    assert [(r["variant"], r["steps"]) for r in report["budget_runs"]] == [("error_weighted", 5)]
    code = main(["compare", "image", "--pool", str(out), "--budgets", "0.5", "--out", str(tmp_path / "again")])
    assert code == 2 and "--pool trains nothing" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_demo_code_path_at_tiny_size(tiny_png, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--preset", "tiny", "--image", tiny_png, "--out", str(out), *QUIET]) == 0
    printed = capsys.readouterr().out
    assert "adaptive: final PSNR (dB)" in printed and f"report: {out / 'report.md'}" in printed


def test_help_lists_the_commands_and_the_pipelines(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "train PIPELINE" in text and "compare PIPELINE" in text and "demo" in text
    assert "pipelines: image, motion, nerf, neus" in text


@pytest.mark.parametrize("command", ["train", "compare", "render"])
def test_each_pipeline_command_lists_the_pipelines(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert f"usage: foveate {command} PIPELINE" in text and "nerf" in text
    assert ("\n  image " in text) == (command != "render"), "only pipelines that render are listed for render"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "image"],
        ["train", "nerf"],
        ["train", "motion"],
        ["compare", "image"],
        ["compare", "motion"],
        ["render", "nerf"],
        ["motion", "train"],
        ["motion", "ablate"],
        ["demo"],
    ],
    ids=" ".join,
)
def test_every_command_answers_help_in_plain_text(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert "--help" in text
    for markup in ("``", ":class:", ":func:", ":meth:", ":data:"):
        assert markup not in text, f"{markup} in the help of {' '.join(argv)}"
    if argv[0] in ("train", "compare", "demo") or argv[1:] == ["train"] or argv[1:] == ["ablate"]:
        for flag in ("--steps", "--batch-size", "--seed", "--name", "--preset", "--config"):
            assert flag in text, f"{flag} missing from the help of {' '.join(argv)}"


@pytest.mark.parametrize("group", ["motion", "data", "universe", "pbr"])
def test_a_command_group_lists_its_commands(group, capsys):
    assert main([group, "--help"]) == 0
    assert f"usage: foveate {group} <command>" in capsys.readouterr().out
    assert main([group, "nonsense"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main([group]) == 2
    bare = capsys.readouterr().err
    assert f"usage: foveate {group} <command>" in bare and "unknown command" not in bare


def test_unknown_pipeline_and_command_exit_with_a_message(capsys):
    assert main(["train", "splats"]) == 2
    assert "unknown pipeline 'splats'" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--batch-size", "-5"], "--batch-size must be >= 1"),
        (["--train.log-every", "0"], "--train.log-every must be >= 1"),
        (["--train.validate-every", "-1"], "--train.validate-every must be >= 0"),
        (["--train.keep-checkpoints", "-2"], "--train.keep-checkpoints must be >= 0"),
        (["--train.cpu-threads", "-1"], "--train.cpu-threads must be >= 0"),
        (["--train.stop-at", "99999"], "--train.stop-at must be in [0, --steps"),
        (["--optim.clip-grad-norm", "nan"], "--optim.clip-grad-norm must be >= 0"),
        (["--optim.lr", "0"], "--optim.lr must be > 0"),
        (["--sampling.decay", "1.5"], "--sampling.decay must be in [0, 1)"),
        (["--sampling.correction", "2"], "--sampling.correction must be"),
        (["--sampling.correction-ramp"], "--sampling.correction-ramp needs a --sampling.correction"),
        (["--train.device", "gpu"], "--train.device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_numbers_are_one_line_naming_the_flag_and_write_nothing(flags, named, tiny_png, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["train", "image", "--preset", "tiny", "--image", tiny_png, "--train.runs-dir", str(runs), *QUIET]
    assert main([*argv, *flags]) == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error
    assert not runs.exists()


def test_ctrl_c_during_start_up_exits_cleanly(monkeypatch, capsys):
    import foveate.pipelines.registry as registry

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "parse_config", interrupted)
    assert main(["train", "image", "--preset", "tiny"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_reader_that_stops_early_gets_no_traceback():
    """``foveate compare image --help | head``: the closed pipe ends the command quietly."""
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-m", "foveate", "compare", "image", "--help"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # before the help is written: every write then fails
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 141
    assert b"Traceback" not in stderr, stderr.decode()


def test_under_torchrun_the_exit_keeps_the_output_and_the_code():
    """A rank leaves without the interpreter's teardown, after flushing what it printed."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "WORLD_SIZE": "2"}
    for argv, code, printed in ((["--version"], 0, "0.1"), (["train", "nosuch"], 2, "nosuch")):
        done = subprocess.run([sys.executable, "-m", "foveate", *argv], capture_output=True, text=True, env=env)
        assert done.returncode == code
        assert printed in done.stdout + done.stderr


def test_a_second_signal_during_a_save_keeps_the_last_checkpoint(tiny_png, tmp_path, monkeypatch, capsys):
    import foveate.train.checkpoint as checkpoint

    runs = tmp_path / "runs"
    argv = ["train", "image", "--preset", "tiny", "--image", tiny_png, "--train.runs-dir", str(runs), "--name", "r"]
    real_save = checkpoint.atomic_save
    saves = []

    def save_then_abort(state, path):
        saves.append(path)
        if len(saves) == 3:  # the third save is torn by a second Ctrl-C
            raise KeyboardInterrupt
        return real_save(state, path)

    monkeypatch.setattr(checkpoint, "atomic_save", save_then_abort)
    assert main([*argv, *QUIET]) == 130
    assert "aborted; the last complete checkpoint is kept" in capsys.readouterr().err
    monkeypatch.undo()
    latest = runs / "image" / "r" / "checkpoints" / "latest.pt"
    import torch

    assert torch.load(latest, weights_only=True)["step"] == 10
    assert not list(latest.parent.glob(".*.tmp-*"))


def test_leftovers_go_and_resume_says_which_run_it_continues(tiny_png, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["train", "image", "--preset", "tiny", "--image", tiny_png, "--train.runs-dir", str(runs), *QUIET]
    assert main([*argv, "--name", "first", "--steps", "10"]) == 0
    leftover = runs / "image" / "first" / "checkpoints" / ".latest.pt.tmp-99999"
    leftover.write_bytes(b"half a checkpoint")
    capsys.readouterr()
    assert main(["train", "image", "--train.runs-dir", str(runs), "--resume", "latest", "--steps", "20", *QUIET]) == 0
    assert f"continuing {runs / 'image' / 'first'} from step 10" in capsys.readouterr().err
    assert not leftover.exists()


def test_a_learning_rate_that_overflows_stops_like_a_non_finite_loss(tiny_png, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["train", "image", "--preset", "tiny", "--image", tiny_png, "--train.runs-dir", str(runs), "--name", "r"]
    assert main([*argv, "--optim.lr", "1e30", *QUIET]) == 3
    error = capsys.readouterr().err
    assert "loss became non-finite at step" in error and "Traceback" not in error
    assert (runs / "image" / "r" / "checkpoints" / "nonfinite.pt").is_file()
