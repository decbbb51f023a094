"""One process against two under ``torchrun`` (gloo, CPU), and the cost of the sampler's synchronisation.

``steps``: trains the image field and the PBR model with 1 and 2 processes (one torch thread each,
the same global batch), for ``uniform`` and ``error_weighted``, and prints per configuration the
step time (training seconds / steps; the median of ``--repeats`` runs, interleaved), the share of
it spent in collectives on rank 0 (gradient all-reduce, the errors' all-gather, the stop flag),
the speed-up over one process and the final validation metric (training is deterministic, so every
repeat ends alike), so that the guided gain can be read at both world sizes.

``sync``: two gloo ranks time, per step and for populations of 2^20 ... 2^26 units, what
foveate's distributed sampler exchanges (an all-gather of the batch's ids and errors) against the
alternative of reducing a dense per-unit update (an all-reduce of N sums and N counts), beside
the sampler's own draw-and-update time.

    python benchmarks/distributed.py steps --repeats 3 --out benchmarks/results/distributed
    python benchmarks/distributed.py sync --out benchmarks/results/distributed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve()
IMAGE_FLAGS = ["--preset", "cpu", "--steps", "300", "--train.validate-every", "50", "--no-ssim"]
PBR_FLAGS = ["--preset", "cpu", "--epochs", "8", "--image-size", "64", "--batch-size", "8"]


def torchrun(processes: int, args: list[str]) -> list[str]:
    if processes == 1:
        return [sys.executable, str(HERE), *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    return [*launcher, str(HERE), *args]


# ----------------------------------------------------------------------------- worker side


class Clock:
    """Seconds spent inside wrapped functions (the collectives), on this process."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner: Any, name: str) -> None:
        function: Callable = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        setattr(owner, name, timed)


def train_worker(pipeline: str, strategy: str, out: Path, flags: list[str]) -> None:
    """Train once (alone or as one rank); rank 0 writes step time, communication time and the final metric."""
    from foveate.sampling import Sampler
    from foveate.train.distributed import Ranks, first_process

    clock = Clock()
    for owner, name in ((Ranks, "average_gradients"), (Ranks, "any"), (Sampler, "_gathered")):
        clock.wrap(owner, name)
    if pipeline == "pbr":
        from foveate.pbr.training import make_pbr_trainer, parse_pbr_config

        config = parse_pbr_config([*flags, "--strategy", strategy, "--training.no-progress"])
        config.training.use_tensorboard = False
        trainer = make_pbr_trainer(config, in_memory=True)
    else:
        from foveate.pipelines import get_pipeline, make_trainer
        from foveate.train.cli import parse_config

        spec = get_pipeline(pipeline)
        argv = [*flags, "--strategy", strategy, "--train.no-progress", "--train.no-tensorboard"]
        config, _ = parse_config(spec.config_type, argv, presets=spec.presets, prog="bench", description="")
        trainer = make_trainer(spec, config, in_memory=True)
    result = trainer.fit()
    metric = trainer.task.metric.name
    if first_process():
        record = {
            "pipeline": pipeline,
            "strategy": strategy,
            "processes": trainer.ranks.world,
            "steps": result.step,
            "train_seconds": result.train_seconds,
            "communication_seconds": clock.seconds,
            "metric": metric,
            "final": result.history[-1][metric],
            "best": (min if metric == "loss" else max)(record[metric] for record in result.history[1:]),
        }
        out.write_text(json.dumps(record))


def _per_call(function: Callable[[], Any], repeats: int, barrier: Callable[[], Any]) -> float:
    """Seconds per call of ``function``, after one warm-up, between barriers."""
    function()
    barrier()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    barrier()
    return (time.perf_counter() - started) / repeats


def _sync_row(units: int, batch: int, repeats: int) -> dict[str, float]:
    import torch.distributed as dist

    from foveate.sampling import Sampler

    shared = Sampler(units, "error_weighted", seed=0, warmup_iterations=0, distributed=True)
    ids, errors = torch.randint(units, (batch // 2,)), torch.rand(batch // 2)
    sums, counts = torch.zeros(units), torch.zeros(units)
    gather = _per_call(lambda: shared._gathered(ids, errors), repeats, dist.barrier)
    dense = _per_call(lambda: (dist.all_reduce(sums), dist.all_reduce(counts)), repeats, dist.barrier)
    alone = Sampler(units, "error_weighted", seed=0, warmup_iterations=0, update_frequency=100)

    def draw_and_update() -> None:
        draw = alone.sample(batch, 1)
        alone.update(draw.ids, torch.rand(batch), 1)

    own = _per_call(draw_and_update, repeats, lambda: None)
    return {"units": units, "gather_ms": gather * 1e3, "dense_ms": dense * 1e3, "sampler_ms": own * 1e3}


def sync_worker(out: Path, batch: int, repeats: int) -> None:
    """Two ranks: per-step exchange of the distributed sampler against a dense reduce, for growing populations."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rows = [_sync_row(2**exponent, batch, repeats) for exponent in range(20, 27, 2)]
    if dist.get_rank() == 0:
        out.write_text(json.dumps({"batch": batch, "repeats": repeats, "rows": rows}))
    dist.destroy_process_group()


# ------------------------------------------------------------------------------ driver side


def run_steps(args: argparse.Namespace) -> None:
    data = args.work / "pbr-data"
    if not (data / "input" / "render_metadata.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "foveate", "pbr", "data", "--samples", "64", "--size", "64", "--out", str(data)],
            check=True,
        )
    cases = {"image": IMAGE_FLAGS, "pbr": [*PBR_FLAGS, "--data-root", str(data)]}
    runs: dict[tuple[str, str, int], list[dict]] = {}
    for repeat in range(args.repeats):
        for pipeline, flags in cases.items():
            for strategy in ("uniform", "error_weighted"):
                for processes in (1, 2):
                    out = args.work / f"{pipeline}-{strategy}-{processes}-{repeat}.json"
                    command = torchrun(processes, ["train-worker", pipeline, strategy, str(out), "--", *flags])
                    env = {**os.environ, "OMP_NUM_THREADS": "1"}
                    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
                    record = json.loads(out.read_text())
                    runs.setdefault((pipeline, strategy, processes), []).append(record)
                    print(json.dumps(record), flush=True)
    records = []
    for repeats in runs.values():
        ordered = sorted(repeats, key=lambda r: r["train_seconds"])
        median = dict(ordered[len(ordered) // 2])
        median["step_times"] = [r["train_seconds"] / r["steps"] for r in repeats]
        records.append(median)
    lines = [
        "| pipeline | strategy | processes | step time (ms) | communication share | speed-up | final | best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        alone = next(
            r
            for r in records
            if (r["pipeline"], r["strategy"], r["processes"]) == (record["pipeline"], record["strategy"], 1)
        )
        step = record["train_seconds"] / record["steps"]
        speedup = (alone["train_seconds"] / alone["steps"]) / step
        share = record["communication_seconds"] / record["train_seconds"]
        lines.append(
            f"| {record['pipeline']} | {record['strategy']} | {record['processes']} | {1e3 * step:.1f} | "
            f"{100 * share:.1f}% | {speedup:.2f}x | {record['metric']} {record['final']:.4g} | {record['best']:.4g} |"
        )
    write(args.out / "steps.md", args.out / "steps.json", lines, records)


def run_sync(args: argparse.Namespace) -> None:
    out = args.work / "sync.json"
    command = torchrun(2, ["sync-worker", str(out), "--batch", str(args.batch), "--repeats", str(args.repeats)])
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = json.loads(out.read_text())
    lines = [
        f"Global batch {result['batch']} units ({result['batch'] // 2} a rank), "
        f"{result['repeats']} repeats, 2 gloo ranks.",
        "",
        "| units | all-gather of (ids, errors) (ms) | dense all-reduce (ms) | sampler draw + update alone (ms) |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| 2^{row['units'].bit_length() - 1} | {row['gather_ms']:.3f} | {row['dense_ms']:.1f} | "
            f"{row['sampler_ms']:.2f} |"
        )
    write(args.out / "sync.md", args.out / "sync.json", lines, result)


def write(markdown: Path, raw: Path, lines: list[str], data: Any) -> None:
    markdown.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "benchmarks/distributed.py", *sys.argv[1:]])
    header = [f"Command: `{command}`", f"Date: {time.strftime('%Y-%m-%d')}, torch {torch.__version__}", ""]
    markdown.write_text("\n".join([*header, *lines]) + "\n")
    raw.write_text(json.dumps({"command": command, "data": data}, indent=1))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("steps", "sync"):
        sub = commands.add_parser(name)
        sub.add_argument("--work", type=Path, default=Path("runs/distributed-benchmark"))
        sub.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed"))
        if name == "steps":
            sub.add_argument("--repeats", type=int, default=3)
        if name == "sync":
            sub.add_argument("--batch", type=int, default=2**16)
            sub.add_argument("--repeats", type=int, default=10)
    worker = commands.add_parser("train-worker")
    worker.add_argument("pipeline")
    worker.add_argument("strategy")
    worker.add_argument("out", type=Path)
    worker.add_argument("flags", nargs=argparse.REMAINDER)
    sync = commands.add_parser("sync-worker")
    sync.add_argument("out", type=Path)
    sync.add_argument("--batch", type=int, default=2**16)
    sync.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.command == "train-worker":
        flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
        train_worker(args.pipeline, args.strategy, args.out, flags)
    elif args.command == "sync-worker":
        sync_worker(args.out, args.batch, args.repeats)
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(KeyboardInterrupt):
            (run_steps if args.command == "steps" else run_sync)(args)


if __name__ == "__main__":
    main()
