"""Is the sampler's per-step cost launch overhead? Eager against ``torch.compile``, side by side.

On CUDA at the image pipeline's default batch (65,536 pixels) the engine's ``sample`` + ``update``
is a few dozen small kernels (uniform) to a few hundred (adaptive), each launched from Python, so
its time is set by launches, not by work. This benchmark times that pair as the pipelines call it
(the image preset's sampling settings, the step advancing) eagerly and compiled with inductor,
alternating the two so load hits both alike, and reports the compile time and recompiles.

    python benchmarks/sampler_compile.py                      # CUDA if present, else CPU
    python benchmarks/sampler_compile.py --units 1 1411 1411 --batch 65536 --json out.json
"""

from __future__ import annotations

import argparse
import time

import torch
from timing import side_by_side, write_rows

from foveate.pipelines import image
from foveate.train.loop import make_sampler


def measure(strategy: str, shape: tuple[int, ...], batch: int, device: torch.device, repeats: int) -> dict:
    config = image.preset("default", sampling__strategy=strategy, sampling__warmup_iterations=0).sampling
    rows = {}
    samplers = {mode: make_sampler(config, shape, device, seed=0) for mode in ("eager", "compiled")}
    for sampler in samplers.values():
        sampler.check_inputs = False  # as the trainer runs it on CUDA: no host syncs
    errors = torch.rand(batch, device=device)
    steps = {"eager": 0, "compiled": 0}
    compiled = {
        "sample": torch.compile(samplers["compiled"].sample),
        "update": torch.compile(samplers["compiled"].update),
    }

    def one(mode: str) -> None:
        sampler = samplers[mode]
        sample, update = (
            (compiled["sample"], compiled["update"]) if mode == "compiled" else (sampler.sample, sampler.update)
        )
        draw = sample(batch, steps[mode])
        update(draw.ids, errors, steps[mode])
        steps[mode] += 1

    torch._dynamo.utils.counters.clear()
    started = time.perf_counter()
    for _ in range(3 * config.update_frequency):  # through rebuilds, so later calls hit compiled code
        one("compiled")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rows["compile_s"] = time.perf_counter() - started
    for _ in range(3 * config.update_frequency):
        one("eager")
    eager, fast = side_by_side(lambda: one("eager"), lambda: one("compiled"), device, repeats)
    rows.update(
        strategy=strategy,
        eager_ms=eager * 1e3,
        compiled_ms=fast * 1e3,
        speed_up=eager / fast,
        frames_compiled=int(torch._dynamo.utils.counters["stats"]["unique_graphs"]),
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--units", type=int, nargs="+", default=[1, 1411, 1411], help="unit shape: N, or images H W (default: retina)"
    )
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted", "adaptive"])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for strategy in args.strategies:
        shape = args.units[0] if len(args.units) == 1 else tuple(args.units)
        row = measure(strategy, shape, args.batch, device, args.repeats)
        rows.append(row)
        print(
            f"{strategy:>15}: eager {row['eager_ms']:7.3f} ms, compiled {row['compiled_ms']:7.3f} ms "
            f"({row['speed_up']:.2f}x; compiling took {row['compile_s']:.1f} s, {row['frames_compiled']} graphs)",
            flush=True,
        )
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, {args.batch} ids per step over {args.units} units")
    write_rows(args.json, name, rows)


if __name__ == "__main__":
    main()
