"""Is the sampler's GPU cost launch overhead? Eager steps against one CUDA graph of them, side by side.

On the H200 the engine's ``sample`` + ``update`` took 1.1-3.9 ms of a 6-10 ms image step at the
``default`` preset's 65,536 ids (BENCHMARKS.md, "On the GPU"), for work a single kernel would do in
a fraction of that: the time went to launching a hundred-odd small kernels from Python. This
benchmark captures the steps between two rebuilds (``update_frequency - 1`` calls of ``sample`` +
``update``, as the pipelines make them, fed fixed per-unit errors) into one ``torch.cuda.CUDAGraph``
and times a replay per step against the same steps run eagerly, alternating the two. The rebuild
is timed eagerly on its own and charged to the steps of its period (``adaptive``'s rebuild reads
its shares on the host, so it cannot be captured).

A replay repeats the captured steps' host-side decisions (their step numbers, the rebuild counter),
so its draws are for timing only. The sampler's own generator is registered with the graph where
torch supports it, else the device's default generator (graph-safe everywhere) stands in for it.
A capture that fails is reported with its error: what the engine would have to change.

    python benchmarks/sampler_graph.py                                  # CUDA only
    python benchmarks/sampler_graph.py --units 1 1411 1411 --batch 65536 --json out.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from timing import write_rows

from foveate.pipelines import image
from foveate.train.loop import make_sampler


def _seconds(fn, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(strategy: str, shape: int | tuple[int, ...], batch: int, device: torch.device, repeats: int) -> dict:
    """Per-step milliseconds of ``strategy``'s ``sample`` + ``update``: eager, replayed from a graph, rebuild."""
    config = image.preset("default", sampling__strategy=strategy, sampling__warmup_iterations=0).sampling
    eager, graphed = (make_sampler(config, shape, device, seed=0) for _ in range(2))
    errors = torch.rand(eager.num_units, device=device)
    period = config.update_frequency
    window = period - 1

    def step(sampler, at: int) -> None:
        draw = sampler.sample(batch, at)
        sampler.update(draw.ids, errors.index_select(0, draw.ids), at)

    for sampler in (eager, graphed):
        sampler.check_inputs = False  # as the trainer runs it on CUDA: no host syncs
        for at in range(2 * period):  # through two rebuilds: guided distributions, a warm allocator
            step(sampler, at)
    start = 2 * period  # both just after a rebuild
    row: dict = {"strategy": strategy, "window": window}
    graph = torch.cuda.CUDAGraph()
    try:
        graph.register_generator_state(graphed.generator)
        row["generator"] = "the sampler's, registered"
    except (AttributeError, TypeError, RuntimeError):  # an older torch: only the default generator is graph-safe
        graphed.generator = torch.cuda.default_generators[device.index or 0]
        row["generator"] = "the device's default"
    try:
        with torch.cuda.graph(graph):
            for at in range(start, start + window):
                step(graphed, at)
    except Exception as error:  # any capture failure is the finding
        row["capture_error"] = f"{type(error).__name__}: {error}".splitlines()[0]
        return row

    def eager_window() -> None:
        for at in range(start, start + window):
            step(eager, at)

    def rebuild() -> None:  # the period's last step, which rebuilds; brings eager back to its start
        step(eager, start + window)

    eager_s, graph_s, rebuild_s = [], [], []
    for _ in range(repeats):
        eager_s.append(_seconds(eager_window, device))
        rebuild_s.append(_seconds(rebuild, device))
        graph_s.append(_seconds(graph.replay, device))
    per_eager = statistics.median(eager_s) / window
    per_graph = statistics.median(graph_s) / window
    rebuild_ms = statistics.median(rebuild_s) * 1e3
    row.update(
        eager_ms=per_eager * 1e3,
        graph_ms=per_graph * 1e3,
        speed_up=per_eager / per_graph,
        rebuild_step_ms=rebuild_ms,
        eager_period_ms=(window * per_eager * 1e3 + rebuild_ms) / period,
        graph_period_ms=(window * per_graph * 1e3 + rebuild_ms) / period,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--units", type=int, nargs="+", default=[1, 1411, 1411], help="unit shape: N, or images H W (default: retina)"
    )
    parser.add_argument("--batch", type=int, default=65536, help="ids drawn a step (default: the image preset's)")
    parser.add_argument("--strategies", nargs="+", default=["uniform", "error_weighted", "adaptive"])
    parser.add_argument("--repeats", type=int, default=30, help="alternations of eager and replayed periods")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("sampler_graph.py: CUDA graphs need a CUDA device; this machine has none")
    device = torch.device("cuda")
    shape = args.units[0] if len(args.units) == 1 else tuple(args.units)
    rows = []
    for strategy in args.strategies:
        row = measure(strategy, shape, args.batch, device, args.repeats)
        rows.append(row)
        if "capture_error" in row:
            print(f"{strategy:>15}: capture failed ({row['generator']} generator): {row['capture_error']}", flush=True)
            continue
        print(
            f"{strategy:>15}: eager {row['eager_ms']:.3f} ms, replayed {row['graph_ms']:.3f} ms a step "
            f"({row['speed_up']:.2f}x); rebuild step {row['rebuild_step_ms']:.2f} ms; over a period "
            f"{row['eager_period_ms']:.3f} -> {row['graph_period_ms']:.3f} ms a step",
            flush=True,
        )
    name = torch.cuda.get_device_name(device)
    print(f"{name}, torch {torch.__version__}, {args.batch} ids a step over {args.units} units")
    write_rows(args.json, name, rows)


if __name__ == "__main__":
    main()
