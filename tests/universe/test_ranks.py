"""A universe trained by two torchrun ranks is the universe one process trains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from foveate.train.distributed import Ranks
from foveate.universe import build_universe, read_index, synthetic_stars
from foveate.universe.schedule import train_universe, train_with_budget
from foveate.universe.train import CellTrainConfig

FLAGS = ["--iterations", "8", "--image-size", "24", "--views", "8", "--held-out", "2", "--densify-interval", "4"]
CONFIG = CellTrainConfig(iterations=8, image_size=24, views=8, held_out=2, densify_interval=4)


def test_a_lone_rank_shares_everything():
    alone = Ranks()
    assert alone.share([1, 2, 3]) == [1, 2, 3] and alone.gather("x") == ["x"] and alone.broadcast(5) == 5
    assert Ranks(1, 3).share(list(range(7))) == [1, 4]


def universe(tmp_path: Path) -> Path:
    folder = tmp_path / "u"
    build_universe(synthetic_stars(300, seed=7), folder)
    assert sum(e["splat_count"] >= 2 for e in read_index(folder).cells) >= 4
    return folder


def torchrun(*args: str) -> None:
    foveate = Path(sys.executable).parent / "foveate"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python"]
    subprocess.run([*command, str(foveate), "universe", *args], check=True, capture_output=True, timeout=300)


def same_cells(a: Path, b: Path) -> None:
    assert json.loads((a / "index.json").read_text()) == json.loads((b / "index.json").read_text())
    for entry in read_index(a).cells:
        assert (a / "cells" / entry["file_name"]).read_bytes() == (b / "cells" / entry["file_name"]).read_bytes()


@pytest.mark.parametrize("budget", [False, True])
def test_two_ranks_train_what_one_process_trains(tmp_path, budget):
    source = universe(tmp_path)
    trainable = sum(e["splat_count"] >= 2 for e in read_index(source).cells)
    extra = ["--budget", str(8 * trainable), "--chunk", "4"] if budget else []
    torchrun("train-all", "--input", str(source), "--output", str(tmp_path / "ranks"), *FLAGS, *extra)
    alone = tmp_path / "alone"
    if budget:
        train_with_budget(source, alone, CONFIG, 8 * trainable, chunk=4, workers=2)
    else:
        train_universe(source, alone, CONFIG)
    same_cells(tmp_path / "ranks", alone)
    ranked = json.loads((tmp_path / "ranks" / "training_metrics.json").read_text())["cells"]
    single = json.loads((alone / "training_metrics.json").read_text())["cells"]
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in ranked]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in single]
