"""The pure-torch splat rasteriser: time and memory per training step (forward + backward), by splats and image size.

Random splats in front of one camera (sizes drawn so that a splat covers a few pixels, as after
densification), SH degree 3. For every setting the packed rasteriser (:func:`rasterize`) and,
where it fits, the dense reference (:func:`rasterize_dense`) are timed in turn in this one
process, so their ratio is side by side; the time is the median of ``--repeats`` steps after a
warm-up. Memory is how far one step in a fresh process raises its peak resident set above the
resident set it started from (Linux).

    python benchmarks/splat_rasterizer.py --threads 1 --out benchmarks/results/splat_rasterizer.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from foveate.models.gaussians import num_sh_bases, rasterize, rasterize_dense
from foveate.report.compare import machine

DENSE_LIMIT = 64 * 64 * 2000
"""The dense reference is timed only up to this many pixel-splat pairs (it holds all of them)."""


def scene(count: int, size: int, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(count, 3, generator=generator)
    means[:, 2] += 5.0
    quats = torch.randn(count, 4, generator=generator)
    scales = torch.exp(torch.randn(count, 3, generator=generator) * 0.3 - 3.5)
    opacities = torch.rand(count, generator=generator)
    colors = torch.randn(count, num_sh_bases(3), 3, generator=generator) * 0.3
    focal = 1.2 * size
    Ks = torch.tensor([[[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]]])
    return [t.requires_grad_() for t in (means, quats, scales, opacities, colors)], torch.eye(4)[None], Ks


def step(function, splats, viewmats, Ks, size) -> dict:
    rgb, _, meta = function(*splats, viewmats, Ks, size, size, sh_degree=3)
    rgb.sum().backward()
    for tensor in splats:
        tensor.grad = None
    return meta


def seconds(function, count: int, size: int, repeats: int) -> tuple[float, int]:
    splats, viewmats, Ks = scene(count, size)
    meta = step(function, splats, viewmats, Ks, size)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step(function, splats, viewmats, Ks, size)
        times.append(time.perf_counter() - started)
    return statistics.median(times), int(meta.get("pairs", 0))


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` figure in kB (``VmRSS`` now, ``VmHWM`` the peak since this process began)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (Linux only)")


def _peak_rss(count: int, size: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    splats, viewmats, Ks = scene(count, size)
    resident = _status_kb("VmRSS")
    step(rasterize, splats, viewmats, Ks, size)
    queue.put(max(_status_kb("VmHWM") - resident, 0) / 1024)


def peak_megabytes(count: int, size: int, threads: int) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_rss, args=(count, size, threads, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splats", type=int, nargs="+", default=[1000, 10_000, 50_000, 200_000])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print("| splats | image | pairs | step (packed) | peak memory (packed) | dense reference / packed |")
    print("|---|---|---|---|---|---|")
    for count in args.splats:
        for size in args.sizes:
            packed, pairs = seconds(rasterize, count, size, args.repeats)
            dense = None
            if count * size * size <= DENSE_LIMIT:
                dense, _ = seconds(rasterize_dense, count, size, args.repeats)
            memory = peak_megabytes(count, size, args.threads)
            rows.append(
                {"splats": count, "size": size, "pairs": pairs, "packed_s": packed, "dense_s": dense, "peak_mb": memory}
            )
            ratio = f"{dense / packed:.1f}x" if dense else "-"
            cells = [str(count), f"{size}x{size}", str(pairs), f"{packed * 1000:.0f} ms", f"{memory:.0f} MB", ratio]
            print("| " + " | ".join(cells) + " |", flush=True)
    if args.out:
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        measured_on = {**machine(threads=args.threads), "date": date}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": measured_on, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
