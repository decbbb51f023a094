"""Start-sampling forms on the synthetic difficulty simulator: a sweep for choosing defaults.

Each row: iterations until the simulated policy completes the whole motion (median over
seeds, ``None`` if some seed never did) and the share of played frames in the hard bins.
Run: ``python benchmarks/motion_simulator.py --seeds 3`` (about a minute on one core).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from foveate.data.timeline import Timeline
from foveate.pipelines.motion.simulator import DifficultyProfile, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    timeline = Timeline(20 * 50 + 1, 50.0)
    hard = (6, 13, 17)
    profile = DifficultyProfile.with_hard_bins(timeline.num_bins, hard)
    settings = [
        ("uniform", {}),
        ("paper", {}),
        ("paper", {"kernel_size": 1}),
        ("official", {}),
        ("official", {"kernel_size": 3}),
    ]
    print("| form | overrides | episode s | completes at (per seed) | median | hard-bin frame share |")
    print("|---|---|---|---|---|---|")
    for episode_seconds in (2.0, 10.0):
        for form, overrides in settings:
            done, shares = [], []
            for seed in range(args.seeds):
                result = simulate(
                    form,
                    profile,
                    timeline,
                    iterations=args.iterations,
                    seed=seed,
                    episode_frames=round(episode_seconds * 50),
                    **overrides,
                )
                played = torch.tensor(result.frames_per_bin)
                shares.append(float(played[list(hard)].sum() / played.sum()))
                done.append(result.iterations_to_complete)
            median = statistics.median(done) if None not in done else None
            print(
                f"| {form} | {overrides or '-'} | {episode_seconds:g} | {done} | {median} | "
                f"{statistics.mean(shares):.3f} |"
            )


if __name__ == "__main__":
    main()
