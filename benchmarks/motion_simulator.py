"""Start-sampling forms on the synthetic difficulty simulator: a sweep for choosing defaults.

Each variant (a form with optional failure_bins overrides) trains the simulator's synthetic
policy for several seeds; the curve is the probability of playing the whole motion from frame 0
after each iteration, and the target (completion) is 0.9. Pooled by foveate.report.pooling:
iterations to complete (interpolated between iterations) as ratios of uniform's, over seeds,
plus the share of played frames in the hard bins.

    python benchmarks/motion_simulator.py --seeds 3      # about a minute on one core
"""

from __future__ import annotations

import argparse
import statistics

import torch

from foveate.data.timeline import Timeline
from foveate.pipelines.motion.simulator import DifficultyProfile, simulate
from foveate.report import RunRecord, pool

COMPLETION = 0.9
"""Completion target: the whole motion survives with this probability."""
VARIANTS = {
    "uniform": ("uniform", {}),
    "paper": ("paper", {}),
    "paper, kernel_size 1": ("paper", {"kernel_size": 1}),
    "official": ("official", {}),
    "official, kernel_size 3": ("official", {"kernel_size": 3}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    timeline = Timeline(20 * 50 + 1, 50.0)
    hard = (6, 13, 17)
    profile = DifficultyProfile.with_hard_bins(timeline.num_bins, hard)
    print(
        "| variant | episode | iterations to complete (per seed) | median, x uniform's | reached "
        "| hard-bin frame share |"
    )
    print("|---|---|---|---|---|---|")
    for episode_seconds in (2.0, 10.0):
        records, shares = [], {}
        for name, (form, overrides) in VARIANTS.items():
            for seed in range(args.seeds):
                result = simulate(
                    form,
                    profile,
                    timeline,
                    iterations=args.iterations,
                    seed=seed,
                    episode_frames=round(episode_seconds * 50),
                    completion_threshold=COMPLETION,
                    **overrides,
                )
                curve = [[float(i), value, float(i)] for i, value in enumerate(result.completion, start=1)]
                records.append(
                    RunRecord(name, seed, curve, {}, float(args.iterations), args.iterations, "completed", [], {})
                )
                played = torch.tensor(result.frames_per_bin)
                shares.setdefault(name, []).append(float(played[list(hard)].sum() / played.sum()))
        for name, result in pool(records, "uniform", target=COMPLETION).items():
            steps = ", ".join("never" if s is None else f"{s:.1f}" for s in result["steps_to_reach"])
            ratio = result["steps_ratio_median"]
            median = "not reached" if result["steps_median"] is None else f"{result['steps_median']:.1f}"
            median += "" if ratio is None else f" ({ratio:.2f}x)"
            print(
                f"| {name} | {episode_seconds:g} s | {steps} | {median} | {result['reached']}/{args.seeds} | "
                f"{statistics.mean(shares[name]):.3f} |"
            )


if __name__ == "__main__":
    main()
