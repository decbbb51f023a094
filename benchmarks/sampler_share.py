"""The sampler's share of an image field's training step at the ``cpu`` preset: this engine against a revision's.

A step's sampler cost is not one ``sample`` + ``update``: every ``update_frequency`` updates the
distribution is rebuilt over every unit, and with soft importance weights (the preset's
``--sampling.correction 0.5``) their normaliser is a sum over every unit too. This benchmark
charges both to the steps, timing whole rebuild periods. For each photo and strategy it builds
the image pipeline's ``cpu`` preset (as ``foveate train image --preset cpu`` would), trains it a
few steps with this tree, then times, alternating the engines block by block so load on a shared
machine hits both alike:

- the sampler alone: ``sample`` + ``update`` per step, amortised over whole rebuild periods, for
  this tree's engine and for the engine at ``--against`` (imported side by side, as
  ``sampler_launches.py`` does), both built from the preset's sampling settings with the same seed
  and fed the same per-unit errors;
- the whole training step with each engine's sampler in the trainer;
- the step without a sampler (a fixed draw), which gives each engine's share of a step.

    python benchmarks/sampler_share.py --against HEAD~1
    python benchmarks/sampler_share.py --against 4385bd8 --images retina astronaut --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from sampler_launches import engine_at

from foveate.pipelines import image
from foveate.train import Trainer, sampler_arguments, seed_everything, select_device


def engine_sampler(engine: object, trainer: Trainer) -> object:
    """A sampler of ``engine`` with the trainer's sampling settings and seed."""
    arguments = sampler_arguments(trainer.config.sampling, trainer.device, trainer.settings.seed)
    strategy = arguments.pop("strategy")  # this tree's dataclass: the other engine takes its name and options
    return engine.Sampler(trainer.sampler.shape, strategy.name, **arguments, **strategy.options())


class Feeder:
    """``sample`` + ``update`` of one sampler per call, fed each drawn unit's fixed error."""

    def __init__(self, sampler: object, errors: torch.Tensor, batch: int, start: int) -> None:
        self.sampler, self.errors, self.batch, self.step = sampler, errors, batch, start

    def __call__(self) -> None:
        draw = self.sampler.sample(self.batch, self.step)
        self.sampler.update(draw.ids, self.errors.index_select(0, draw.ids), self.step)
        self.step += 1


def per_step(calls: list[Callable[[], None]], steps: int, blocks: int) -> list[float]:
    """Median seconds per call of each of ``calls``, run in alternating blocks of ``steps`` calls."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(blocks):
        for call, kept in zip(calls, times, strict=True):
            start = time.perf_counter()
            for _ in range(steps):
                call()
            kept.append((time.perf_counter() - start) / steps)
    return [statistics.median(kept) for kept in times]


def measure(baseline: object, photo: str, strategy: str, args: argparse.Namespace) -> dict:
    config = image.preset(
        "cpu",
        image=photo,
        train__progress=False,
        train__tensorboard=False,
        train__steps=10_000,
        sampling__strategy=strategy,
        **({"train__batch_size": args.batch_size} if args.batch_size else {}),
    )
    device = select_device("cpu")
    seed_everything(0)
    task = image.SPEC.task_type.from_config(config, device)
    trainer = Trainer(task, config, device=device, run_dir=None)
    batch = config.train.batch_size
    period = config.sampling.update_frequency
    # Past the sampler's warm-up (uniform draws) and two rebuilds.
    for _ in range(config.sampling.warmup_iterations + 2 * period + args.warmup):
        trainer.train_step()
    mine = trainer.sampler
    theirs = engine_sampler(baseline, trainer)
    theirs.load_state_dict(mine.state_dict())
    errors = torch.rand(mine.num_units, generator=torch.Generator().manual_seed(0)).pow_(4)
    feeders = [Feeder(theirs, errors, batch, trainer.step), Feeder(mine, errors, batch, trainer.step)]
    for feeder in feeders:
        for _ in range(2 * period):
            feeder()
    sampler_before, sampler_after = per_step(feeders, period, args.blocks)

    def step_with(sampler: object) -> Callable[[], None]:
        def step() -> None:
            trainer.sampler = sampler
            trainer.train_step()

        return step

    step_before, step_after = per_step([step_with(theirs), step_with(mine)], period, args.blocks)
    trainer.sampler = mine
    fixed = mine.sample(batch, trainer.step)
    bare = per_step([lambda: task.training_step(fixed, trainer.step, trainer.optimization)], period, args.blocks)[0]
    return {
        "image": photo,
        "strategy": strategy,
        "units": mine.num_units,
        "batch": batch,
        "update_frequency": period,
        "correction": config.sampling.correction,
        "step_without_sampler_ms": bare * 1e3,
        "sampler_ms_before": sampler_before * 1e3,
        "sampler_ms_after": sampler_after * 1e3,
        "share_before": sampler_before / (bare + sampler_before),
        "share_after": sampler_after / (bare + sampler_after),
        "step_ms_before": step_before * 1e3,
        "step_ms_after": step_after * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="git revision (or a copy of its src/foveate/sampling)")
    parser.add_argument("--images", nargs="+", default=["retina", "astronaut"], help="bundled photos or files")
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted", "adaptive"])
    parser.add_argument("--batch-size", type=int, default=0, help="pixels per step (default: the preset's)")
    parser.add_argument("--warmup", type=int, default=10, help="extra training steps before timing")
    parser.add_argument("--blocks", type=int, default=7, help="timed rebuild periods per engine")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        baseline = engine_at(args.against, Path(folder))
        print(f"cpu ({args.threads} thread), image `cpu` preset, this tree against {args.against}")
        print(
            f"{'image':>10} {'strategy':>15} {'units':>9} {'sampler ms/step':>18} {'share of a step':>17} "
            f"{'step ms':>17} {'step ratio':>10}"
        )
        for photo in args.images:
            for strategy in args.strategies:
                row = measure(baseline, photo, strategy, args)
                rows.append(row)
                print(
                    f"{photo:>10} {strategy:>15} {row['units']:>9} "
                    f"{row['sampler_ms_before']:>7.2f} -> {row['sampler_ms_after']:<7.2f} "
                    f"{100 * row['share_before']:>6.1f}% -> {100 * row['share_after']:.1f}%".ljust(18)
                    + " "
                    f"{row['step_ms_before']:>7.1f} -> {row['step_ms_after']:<7.1f} "
                    f"{row['step_ms_after'] / row['step_ms_before']:>9.2f}x",
                    flush=True,
                )
    if args.json:
        meta = {
            "against": args.against,
            "threads": args.threads,
            "torch": torch.__version__,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "date": time.strftime("%Y-%m-%d"),
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
