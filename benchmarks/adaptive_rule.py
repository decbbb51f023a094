"""The adaptive rule on synthetic populations where the best strategy is known (seconds, no model).

Each of 2,000 units has a reducible error, cut by 10% whenever the unit is drawn (100 a step),
and an irreducible floor; the sampler sees their sum. Cases: ``concentrated`` (5% of the units
hold error 1, the rest 0.01: focusing pays), ``noise_floors`` (every unit 0.3, and 20% carry a
floor of 3 no draw removes: focusing wastes draws), ``flat`` (every unit 0.3: nothing to find).
Quality is the mean reducible error averaged over the run (an area under the curve; lower is
faster), per strategy and seed, and the adaptive mixture's shares half-way through.

    python benchmarks/adaptive_rule.py --steps 400 --seeds 3
"""

from __future__ import annotations

import argparse
import statistics

import torch

from foveate.sampling import Sampler

UNITS, BATCH = 2000, 100
VARIANTS = {
    "uniform": ("uniform", {}),
    "error_weighted": ("error_weighted", {}),
    "adaptive, equal shares (sharpness 0)": ("adaptive", {"sharpness": 0.0}),
    "adaptive": ("adaptive", {}),
}


def population(case: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = torch.randperm(UNITS, generator=torch.Generator().manual_seed(seed))
    reducible, floor = torch.full((UNITS,), 0.01), torch.zeros(UNITS)
    if case == "concentrated":
        reducible[chosen[: UNITS // 20]] = 1.0
    else:
        reducible[:] = 0.3
        if case == "noise_floors":
            floor[chosen[: UNITS // 5]] = 3.0
    return reducible, floor


def run(case: str, strategy: str, options: dict, seed: int, steps: int) -> tuple[float, dict]:
    reducible, floor = population(case, seed)
    sampler = Sampler(UNITS, strategy, warmup_iterations=0, update_frequency=10, seed=seed, **options)
    area, shares = 0.0, {}
    for step in range(steps):
        area += float(reducible.mean()) / steps
        ids = sampler.sample(BATCH, step).ids
        sampler.update(ids, floor[ids] + reducible[ids], step)
        reducible[ids] *= 0.9
        if step == steps // 2:
            shares = sampler.stats()["mixture"]
    return area, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print("| case | strategy | area under the error curve (x 1000), mean over seeds | vs uniform | shares half-way |")
    print("|---|---|---|---|---|")
    for case in ("concentrated", "noise_floors", "flat"):
        uniform = None
        for label, (strategy, options) in VARIANTS.items():
            results = [run(case, strategy, options, seed, args.steps) for seed in range(args.seeds)]
            area = statistics.fmean(r[0] for r in results) * 1000
            uniform = area if uniform is None else uniform
            shares = ", ".join(f"{k} {v:.2f}" for k, v in results[0][1].items()) if strategy == "adaptive" else ""
            print(f"| {case} | {label} | {area:.2f} | {area / uniform:.2f}x | {shares} |", flush=True)


if __name__ == "__main__":
    main()
