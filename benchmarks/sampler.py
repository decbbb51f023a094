"""Latency and memory of the sampling engine next to torch.multinomial, in one run.

For each population size N: one draw of --draws ids, one update of --draws errors and one
distribution rebuild (error_weighted), median of --repeats; torch.multinomial drawing the
same number of ids from the same distribution; bytes of engine state per unit.

    python benchmarks/sampler.py                       # CPU, and CUDA when present
    python benchmarks/sampler.py --sizes 20 24 --devices cpu --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from timing import side_by_side, timed

from foveate.sampling import Sampler


def bench_size(log2_n: int, device: torch.device, draws: int, repeats: int) -> dict:
    n = 2**log2_n
    generator = torch.Generator(device=device).manual_seed(0)
    sampler = Sampler(
        n, "error_weighted", warmup_iterations=0, update_frequency=1, check_inputs=False, device=device, seed=0
    )
    # A heavy-tailed error map over every unit, written directly: filling 2^28 units through
    # update() would only time a sort we are not measuring here.
    errors = torch.rand(n, generator=generator, device=device).pow_(8)
    sampler.statistics.error.copy_(errors)
    sampler.statistics.visits.fill_(1)
    del errors
    row: dict = {"log2_n": log2_n, "device": device.type, "draws": draws}
    row["rebuild_ms"] = 1e3 * timed(sampler.rebuild, device, max(1, repeats // 2))
    row["bytes_per_unit"] = sampler.nbytes() / n
    p = sampler.probabilities()

    def engine_draw() -> object:
        return sampler.sample(draws, 1)

    def multinomial_draw() -> object:
        return torch.multinomial(p, draws, replacement=True, generator=generator)

    try:
        draw_s, multinomial_s = side_by_side(engine_draw, multinomial_draw, device, repeats)
        row["multinomial_ms"] = 1e3 * multinomial_s
        row["speedup_vs_multinomial"] = multinomial_s / draw_s
    except RuntimeError as error:
        draw_s = timed(engine_draw, device, repeats)
        row["multinomial_ms"] = None
        row["multinomial_error"] = str(error).splitlines()[0][:80]
    row["draw_ms"] = 1e3 * draw_s

    ids = sampler.sample(draws, 1).ids
    observed = torch.rand(draws, generator=generator, device=device)
    sampler.update_frequency = 10**9  # time the statistics update alone, not a rebuild
    row["update_ms"] = 1e3 * timed(lambda: sampler.update(ids, observed, 1), device, repeats)
    sampler.check_inputs = True
    row["update_checked_ms"] = 1e3 * timed(lambda: sampler.update(ids, observed, 1), device, repeats)
    return row


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 24, 26, 28], help="log2 of N")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda if present")
    parser.add_argument("--draws", type=int, default=2**20)
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 on CPU, 50 on CUDA")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    print(f"# foveate.sampling benchmark, {time.strftime('%Y-%m-%d')}, torch {torch.__version__}")
    header = (
        "| device | N | draw 1M (ms) | update 1M (ms) | update, checked (ms) | rebuild (ms) "
        "| multinomial (ms) | speed-up | bytes/unit |"
    )
    for name in devices:
        device = torch.device(name)
        print(f"\n{name}: {hardware(device)}\n")
        print(header)
        print("|" + "---|" * 9)
        for log2_n in args.sizes:
            repeats = args.repeats or (50 if device.type == "cuda" else 5)
            row = bench_size(log2_n, device, args.draws, repeats)
            rows.append(row)
            multinomial = (
                f"{row['multinomial_ms']:.2f}"
                if row["multinomial_ms"] is not None
                else f"fails ({row['multinomial_error']})"
            )
            speedup = f"{row['speedup_vs_multinomial']:.1f}x" if "speedup_vs_multinomial" in row else "-"
            print(
                f"| {name} | 2^{log2_n} | {row['draw_ms']:.2f} | {row['update_ms']:.2f} "
                f"| {row['update_checked_ms']:.2f} | {row['rebuild_ms']:.1f} | {multinomial} | {speedup} "
                f"| {row['bytes_per_unit']:.2f} |",
                flush=True,
            )
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
