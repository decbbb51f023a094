"""``torchrun`` on CPU with gloo: one run directory, the single-process curve, resume across world sizes, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from foveate.pipelines import get_pipeline
from foveate.pipelines.registry import _saved_config, make_trainer, parse_config
from foveate.train import load_checkpoint

STEPS = ["--preset", "tiny", "--steps", "40", "--train.validate-every", "10", "--train.checkpoint-every", "10"]


def torchrun(args: list[str], processes: int = 2, **options) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    command += ["-m", "foveate", "train", "image", *args]
    if options.pop("background", False):
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)
    return subprocess.run(command, capture_output=True, text=True, timeout=240, **options)


def config_of(argv: list[str]):
    spec = get_pipeline("image")
    config, _ = parse_config(
        spec.config_type, argv, presets=spec.presets, prog="t", description="", saved_config=_saved_config(spec)
    )
    return spec, config


def test_two_ranks_write_one_run_that_tracks_one_process_and_resumes_alone(tmp_path):
    runs = ["--train.runs-dir", str(tmp_path)]
    done = torchrun([*STEPS, *runs, "--name", "two"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == str(tmp_path / "image" / "two"), "one run directory, printed once"
    latest = load_checkpoint(tmp_path / "image" / "two" / "checkpoints" / "latest.pt")
    assert (latest["step"], latest["world_size"]) == (40, 2)

    spec, config = config_of([*STEPS, *runs, "--name", "one"])
    single = make_trainer(spec, config, in_memory=True)
    single.fit()
    # The same units in the same global batches; only the order of floating-point sums differs.
    two = [record["psnr"] for record in latest["history"]]
    one = [record["psnr"] for record in single.history]
    assert len(two) == len(one) == 5
    assert max(abs(a - b) for a, b in zip(two, one, strict=True)) < 1e-3, (two, one)
    assert torch.equal(latest["sampler"]["statistics"]["visits"], single.sampler.state_dict()["statistics"]["visits"])

    spec, config = config_of(["--resume", "latest", "--name", "two", *runs, "--steps", "60"])
    alone = make_trainer(spec, config)
    assert alone.step == 40
    assert alone.fit().status == "completed" and alone.step == 60


def test_a_one_process_checkpoint_continues_on_two_ranks(tmp_path):
    runs = ["--train.runs-dir", str(tmp_path), "--name", "grow"]
    spec, config = config_of([*STEPS, *runs])
    make_trainer(spec, config).fit(stop_at=20)
    done = torchrun(["--resume", "latest", *runs])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "written by 1 process(es), this run has 2" in done.stderr
    latest = load_checkpoint(tmp_path / "image" / "grow" / "checkpoints" / "latest.pt")
    assert (latest["step"], latest["world_size"]) == (40, 2)
    assert [record["step"] for record in latest["history"]] == [0, 10, 20, 30, 40]


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def _long_run(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    flags = ["--preset", "tiny", "--steps", "1000000", "--train.checkpoint-every", "20", "--train.validate-every", "20"]
    run = tmp_path / "image" / "long"
    process = torchrun([*flags, "--train.runs-dir", str(tmp_path), "--name", "long"], background=True)
    return process, run


def _ranks_of(process: subprocess.Popen) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 2, children
    return [int(child) for child in children]


@pytest.mark.parametrize("target", ["torchrun", "one rank"])
def test_sigterm_saves_once_and_stops_every_rank(tmp_path, target):
    process, run = _long_run(tmp_path)
    _wait_for(run / "checkpoints" / "latest.pt", process)
    os.kill(process.pid if target == "torchrun" else _ranks_of(process)[-1], signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    latest = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert 20 <= latest["step"] < 1_000_000
    assert output.count("interrupted at step") == 1, output
    spec, config = config_of(["--resume", "latest", "--name", "long", "--train.runs-dir", str(tmp_path)])
    assert make_trainer(spec, config, in_memory=True).step == latest["step"]


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process control")
def test_a_rank_killed_mid_run_leaves_a_loadable_latest(tmp_path):
    process, run = _long_run(tmp_path)
    _wait_for(run / "checkpoints" / "latest.pt", process)
    os.kill(_ranks_of(process)[-1], signal.SIGKILL)
    process.communicate(timeout=180)
    assert process.returncode != 0
    latest = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert latest["step"] >= 20 and latest["step"] % 20 == 0


def test_a_comparison_spreads_its_jobs_over_the_ranks_and_rank_0_reports(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    flags = ["--preset", "tiny", "--steps", "20", "--strategies", "uniform", "error_weighted", "--seeds", "2"]
    done = subprocess.run(
        [*command, "-m", "foveate", "compare", "image", *flags, "--out", str(tmp_path / "cmp")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0: [2/2]" in done.stderr and "rank 1: [2/2]" in done.stderr
    assert done.stdout.count("report:") == 1
    report = json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert sorted((run["variant"], run["seed"]) for run in report["runs"]) == [
        ("error_weighted", 0),
        ("error_weighted", 1),
        ("uniform", 0),
        ("uniform", 1),
    ]


def test_two_local_nodes_meet_at_a_c10d_rendezvous_and_train_one_run(tmp_path):
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"]
    launcher += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", "two-nodes"]
    flags = ["--preset", "tiny", "--steps", "20", "--train.runs-dir", str(tmp_path), "--name", "nodes"]
    nodes = [
        subprocess.Popen([*launcher, "-m", "foveate", "train", "image", *flags], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0]
    assert sorted(output.strip() for output in outputs) == ["", str(tmp_path / "image" / "nodes")]
    latest = load_checkpoint(tmp_path / "image" / "nodes" / "checkpoints" / "latest.pt")
    assert (latest["step"], latest["world_size"]) == (20, 2)
