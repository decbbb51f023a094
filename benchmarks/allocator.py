"""Whole training runs with glibc's default malloc settings against foveate's (freed memory kept).

``foveate`` asks glibc at start-up to serve blocks up to 32 MiB from its heap and to keep 256 MiB
of freed memory (``foveate.allocator``): by default glibc unmaps large freed blocks and trims the
heap's free top, so every CPU step faults its temporaries' pages in again. Any ``MALLOC_*``
variable marks glibc's settings as the user's own and foveate then leaves them alone, so the
baseline here runs the same command with ``MALLOC_TOP_PAD_=131072`` (glibc's own default value).

Each case runs A (foveate's setting) and B (glibc's defaults) in turn, ``--pairs`` times, as whole
processes; per run it reads the child's own wall and CPU seconds, minor page faults and peak
memory (``os.wait4``), and prints medians and the median of the pair-by-pair wall ratio.

    python benchmarks/allocator.py --scene scenes/suite/bunny64-clean --pairs 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GLIBC_DEFAULTS = {"MALLOC_TOP_PAD_": "131072"}


def cases(scene: Path | None) -> dict[str, list[str]]:
    image = ["--image", "retina", "--preset", "cpu", "--steps", "150", "--batch-size", "8192", "--no-ssim"]
    found = {
        "image, uniform": ["train", "image", *image, "--strategy", "uniform"],
        "image, error_weighted + refresh": [
            "train",
            "image",
            *image,
            "--strategy",
            "error_weighted",
            "--sampling.error-weighted.refresh",
        ],
    }
    if scene is not None:
        found["nerf, error_weighted"] = ["train", "nerf", "--scene", str(scene), "--preset", "cpu", "--steps", "100"]
        found["splat"] = ["train", "splat", "--scene", str(scene), "--preset", "cpu", "--steps", "200"]
        found["neus"] = ["train", "neus", "--scene", str(scene), "--preset", "cpu", "--steps", "40"]
    return found


def timed(command: list[str], env: dict[str, str]) -> dict:
    """Wall and CPU seconds, minor faults and peak memory of one whole process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    error = process.stderr.read().decode(errors="replace")
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{error[-2000:]}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "sys_s": usage.ru_stime,
        "minor_faults": usage.ru_minflt,
        "peak_mib": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path, help="a rendered scene: also times nerf, splat and neus")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    foveate = [sys.executable, "-m", "foveate"]
    base = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    base.pop("GLIBC_TUNABLES", None)
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for name, words in cases(args.scene).items():
            command = [*foveate, *words, "--train.runs-dir", runs]
            timed(command, base)  # warm-up: file caches, compiled imports
            kept, default = [], []
            for _ in range(args.pairs):
                kept.append(timed(command, base))
                default.append(timed(command, {**base, **GLIBC_DEFAULTS}))
            ratio = statistics.median(a["wall_s"] / b["wall_s"] for a, b in zip(kept, default, strict=True))
            row = {"case": name, "command": "foveate " + " ".join(words), "wall_ratio": ratio}
            for label, runs_of in (("kept", kept), ("default", default)):
                row[label] = {key: statistics.median(run[key] for run in runs_of) for key in kept[0]}
            rows.append(row)
            print(
                f"{name:>32}: wall {row['kept']['wall_s']:6.1f} s against {row['default']['wall_s']:6.1f} s "
                f"(x{ratio:.2f}), sys {row['kept']['sys_s']:5.1f} against {row['default']['sys_s']:5.1f} s, "
                f"faults {row['kept']['minor_faults'] / 1e3:7.0f}k against "
                f"{row['default']['minor_faults'] / 1e3:7.0f}k, "
                f"peak {row['kept']['peak_mib']:5.0f} against {row['default']['peak_mib']:5.0f} MiB",
                flush=True,
            )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
    print(f"{machine}; medians of {args.pairs} pairs, A (kept) and B (glibc's defaults) in turn")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "pairs": args.pairs, "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
