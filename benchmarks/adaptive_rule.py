"""The adaptive rule on synthetic populations where the best strategy is known (seconds, no model).

Each of 2,000 units has a reducible error, cut by 10% whenever the unit is drawn (100 a step),
and an irreducible floor; the sampler sees their sum. Cases: ``concentrated`` (5% of the units
hold error 1, the rest 0.01: focusing pays), ``noise_floors`` (every unit 0.3, and 20% carry a
floor of 3 no draw removes: focusing wastes draws), ``measurement_noise`` (every unit 0.3, each
measurement adding exponential noise of mean 1: high errors are noise that regresses when
measured again), ``flat`` (every unit 0.3: nothing to find), and ``capacity``: a linear model of 40
weights fitted by SGD to the 2,000 units' noisy targets, so that fitting some units costs the
others (uniform is best: the plain loss over error-weighted draws is another objective; there
``error_weighted`` is also run with soft and full importance weights, which restore the loss).
Quality is the mean reducible error averaged over the run (an area under the curve; lower is
faster) and at its end, per strategy and seed, and the adaptive mixture's shares half-way through.

    python benchmarks/adaptive_rule.py --steps 400 --seeds 3
"""

from __future__ import annotations

import argparse
import statistics

from foveate.sampling.synthetic import CASES, simulate

VARIANTS = {
    "uniform": ("uniform", {}),
    "error_weighted": ("error_weighted", {}),
    "adaptive, equal shares (sharpness 0, evidence 0)": ("adaptive", {"sharpness": 0.0, "evidence": 0.0}),
    "adaptive, every score trusted (evidence 0)": ("adaptive", {"evidence": 0.0}),
    "adaptive": ("adaptive", {}),
}
MODEL_VARIANTS = {
    "error_weighted, soft weights (correction 0.5)": ("error_weighted", {"correction": 0.5}),
    "error_weighted, full weights (correction full)": ("error_weighted", {"correction": "full"}),
}
"""Importance weights change what a model trains, not what an independent unit's draw removes: capacity only."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(
        "| case | strategy | area under the error curve (x 1000), mean over seeds | vs uniform "
        "| final error (x 1000) | shares half-way |"
    )
    print("|---|---|---|---|---|---|")
    for case in CASES:
        uniform = None
        variants = VARIANTS | (MODEL_VARIANTS if case == "capacity" else {})
        for label, (strategy, options) in variants.items():
            results = [simulate(case, strategy, steps=args.steps, seed=seed, **options) for seed in range(args.seeds)]
            area = statistics.fmean(r.area for r in results) * 1000
            final = statistics.fmean(r.final for r in results) * 1000
            uniform = area if uniform is None else uniform
            shares = ", ".join(f"{k} {v:.2f}" for k, v in results[0].mixture.items()) if strategy == "adaptive" else ""
            print(f"| {case} | {label} | {area:.2f} | {area / uniform:.2f}x | {final:.2f} | {shares} |", flush=True)


if __name__ == "__main__":
    main()
