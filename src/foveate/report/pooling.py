"""Curve arithmetic and seed pooling: the one definition of every number a comparison reports.

A curve is a list of ``[step, value, wall_seconds]`` rows, one per quick validation. From it:

- **steps to reach** a target: the first crossing, interpolated linearly between the two
  validations around it (:func:`crossing`), in steps or in training seconds;
- **value at equal wall-clock**: the curve read at a given training time, linearly between
  validations (:func:`value_at`);

and over seeds (:func:`pool`), per variant: the final value's mean, spread and worst seed
against the reference variant of the same seed, the steps and wall-clock to reach the target
as ratios of the reference's own (medians over the seeds that got there), and the value at the
shortest run's training time against the reference's at that time.

The target is the task's absolute goal when it has one (a motion completed), else the
reference's final curve value of the same seed ("uniform's final PSNR").

Curves that swing between neighbouring validations (a constant learning rate) make a final value
and its first crossing noise. Beside them every variant also gets **settled** numbers: a run's
settled value is the mean of its last :data:`SETTLE` validations, and the steps to reach the
reference's settled value are read on the best-so-far envelope (:func:`best_so_far`) of each
curve's means of :data:`SETTLE` consecutive validations (:func:`smoothed`), as ratios of the
reference's own. The settled value is such a mean, so it is compared with means, and one lucky
validation early on does not count as the reference's arrival.

A run's **late fall** (:func:`late_fall`) is the largest worsening between neighbouring validations
in its last third. A converging run climbs or levels off there while its learning rate decays; a
guided run that falls where the reference does not is being pulled away from the population's fit,
in the cases measured by the error-weighted objective its uncorrected draws train
(:func:`late_falls` names such variants).

Where units cost unequal work (a radiance field's rays), each run's full validation reports its
work per drawn unit as :data:`COST`; the pool gives its mean and median ratio to the reference.

The steps ratio read on one schedule flatters a guided run a little: its learning rate has not yet
decayed where it crosses the reference's settled value. **Matched schedules** (:func:`pool_budgets`)
charge that too: runs trained for a fraction of the reference's steps, each on its own schedule,
are settled against the reference's full run, and the fraction at which a variant's mean delta
reaches 0 is interpolated between the fractions tried.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COST",
    "LATE",
    "SETTLE",
    "RunRecord",
    "best_so_far",
    "crossing",
    "late_fall",
    "late_falls",
    "matched_fraction",
    "matched_wall_ratio",
    "pool",
    "pool_budgets",
    "settled",
    "smoothed",
    "value_at",
]

Curve = Sequence[Sequence[float]]
COST = "cost_per_unit"
"""The final-validation metric holding a run's work per drawn unit (the task's ``cost_label`` says what)."""
SETTLE = 3
"""Validations averaged into a run's settled value."""
LATE = 2 / 3
"""Share of a run's steps after which its validations count towards its late fall."""


@dataclass
class RunRecord:
    """One trained variant x seed, as a comparison keeps it (plain data: JSON and pickle friendly)."""

    variant: str
    seed: int
    curve: list[list[float]]
    final: dict[str, float]
    train_seconds: float
    steps: int
    status: str
    sampling: list[list[float]]
    """``[step, normalized_entropy, top1pct_mass]`` rows from the sampler's stats."""
    profiles: dict[str, list[list[float]]]
    """1-D maps (per bin) over the curve's validations: name -> one row per validation."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        return cls(**data)


def crossing(curve: Curve, target: float, higher_is_better: bool = True, column: int = 0) -> float | None:
    """Where ``curve`` first reaches ``target``, interpolated in ``column`` (0: steps, 2: seconds).

    None when it never does; the first point's own position when that one already does.
    """
    sign = 1.0 if higher_is_better else -1.0
    previous = None
    for row in curve:
        if sign * row[1] >= sign * target:
            if previous is None or row[1] == previous[1]:
                return float(row[column])
            fraction = (target - previous[1]) / (row[1] - previous[1])
            return float(previous[column] + fraction * (row[column] - previous[column]))
        previous = row
    return None


def best_so_far(curve: Curve, higher_is_better: bool = True) -> list[list[float]]:
    """``curve`` with each value replaced by the best up to it (steps and seconds kept)."""
    pick = max if higher_is_better else min
    envelope, best = [], None
    for step, value, *rest in curve:
        best = value if best is None else pick(best, value)
        envelope.append([step, best, *rest])
    return envelope


def settled(curve: Curve, count: int = SETTLE) -> float:
    """The mean of the last ``count`` values of ``curve``."""
    tail = [float(point[1]) for point in curve[-count:]]
    return statistics.fmean(tail)


def smoothed(curve: Curve, count: int = SETTLE) -> list[list[float]]:
    """The mean of every ``count`` consecutive validations, placed at the middle one's step and time.

    Its last value is :func:`settled`'s. A curve shorter than ``count`` gives one point, its mean.
    """
    width = min(count, len(curve))
    points = []
    for start in range(len(curve) - width + 1):
        middle = curve[start + (width - 1) // 2]
        mean = statistics.fmean(float(point[1]) for point in curve[start : start + width])
        points.append([middle[0], mean, *middle[2:]])
    return points


def late_fall(curve: Curve, higher_is_better: bool = True, after: float = LATE) -> float:
    """The largest worsening between consecutive validations at or after ``after`` of the run's last step.

    In the metric's units, positive; 0 when the curve never worsened there.
    """
    if not curve:
        return 0.0
    start = after * curve[-1][0]
    values = [float(point[1]) for point in curve if point[0] >= start]
    sign = 1.0 if higher_is_better else -1.0
    return max([0.0, *(sign * (a - b) for a, b in itertools.pairwise(values))])


def late_falls(report: Mapping[str, Any]) -> list[tuple[str, int, float, float]]:
    """The variants of a pooled ``report`` whose validation fell late where the reference's did not.

    A variant is named when one of its seeds fell by more than twice the reference's largest late
    fall (any seed), more than the spread of the reference's finals over seeds, and more than 1% of
    the reference's settled value: a fall the reference's own runs do not explain. Returns
    ``(variant, seed, fall, reference's largest fall)`` for each named variant's worst seed.
    """
    variants = report["variants"]
    base = variants[report["reference"]]
    if "late_fall_per_seed" not in base:
        return []
    reference_worst = max(base["late_fall_per_seed"], default=0.0)
    allowed = max(2.0 * reference_worst, base["final_std"], 0.01 * abs(base["settled_mean"]))
    named = []
    for variant, result in variants.items():
        if variant == report["reference"] or not result.get("late_fall_per_seed"):
            continue
        fall, seed = max(zip(result["late_fall_per_seed"], result["seeds"], strict=True))
        if fall > allowed:
            named.append((variant, seed, fall, reference_worst))
    return named


def value_at(curve: Curve, seconds: float) -> float | None:
    """The curve's value after ``seconds`` of training, linearly between validations.

    None when the curve starts after ``seconds``; the last value when it ends before.
    """
    previous = None
    for _, value, wall in curve:
        if wall >= seconds:
            if previous is None:
                return float(value) if wall == seconds else None
            wall_before, value_before = previous
            fraction = (seconds - wall_before) / (wall - wall_before) if wall > wall_before else 1.0
            return float(value_before + fraction * (value - value_before))
        previous = (wall, value)
    return None if previous is None else float(previous[1])


def pool(
    records: Sequence[RunRecord],
    reference: str,
    higher_is_better: bool = True,
    target: float | None = None,
    metric: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Per variant, the pooled numbers over seeds (see the module docstring); paired by seed with ``reference``.

    Final values are each run's full validation of ``metric`` where it has one (a whole image
    rather than the curve's fixed subset), else the curve's last point; steps to reach the
    target are read on the curves, so the target is the reference's last curve value. Seeds
    without a ``reference`` run are left out.
    """
    by_seed = {r.seed: r for r in records if r.variant == reference}
    if not by_seed:
        raise ValueError(f"no {reference!r} run to compare against")
    sign = 1.0 if higher_is_better else -1.0
    pooled: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(r.variant for r in records):
        runs = [r for r in records if r.variant == variant and r.seed in by_seed]
        finals = [_final(r, metric) for r in runs]
        deltas, steps, walls, at_equal, times, calm, calm_steps = [], [], [], [], [], [], []
        for run in runs:
            base = by_seed[run.seed]
            calm.append(settled(run.curve) - settled(base.curve))
            calm_goal = settled(base.curve) if target is None else target
            calm_steps.append(
                _ratio(
                    crossing(best_so_far(smoothed(run.curve), higher_is_better), calm_goal, higher_is_better, 0),
                    crossing(best_so_far(smoothed(base.curve), higher_is_better), calm_goal, higher_is_better, 0),
                )
            )
            goal = base.curve[-1][1] if target is None else target
            deltas.append(_final(run, metric) - _final(base, metric))
            times.append(run.train_seconds / max(base.train_seconds, 1e-12))
            reached = crossing(run.curve, goal, higher_is_better, 0)
            base_reached = crossing(base.curve, goal, higher_is_better, 0)
            steps.append(_ratio(reached, base_reached))
            walls.append(
                _ratio(crossing(run.curve, goal, higher_is_better, 2), crossing(base.curve, goal, higher_is_better, 2))
            )
            shortest = min(r.train_seconds for r in records if r.seed == run.seed)
            mine, theirs = value_at(run.curve, shortest), value_at(base.curve, shortest)
            at_equal.append(None if mine is None or theirs is None else mine - theirs)
        equal = [d for d in at_equal if d is not None]
        pooled[variant] = {
            "seeds": [r.seed for r in runs],
            "final_mean": statistics.fmean(finals),
            "final_std": statistics.pstdev(finals),
            "final_per_seed": finals,
            "delta_mean": statistics.fmean(deltas),
            "delta_worst": min(deltas, key=lambda d: sign * d),
            "steps_to_reach": [None if s is None else round(s[0], 3) for s in steps],
            "steps_median": _median_reached([None if s is None else s[0] for s in steps]),
            "steps_ratio_median": _median_reached([None if s is None else s[1] for s in steps]),
            "wall_ratio_median": _median_reached([None if w is None else w[1] for w in walls]),
            "reached": sum(s is not None for s in steps),
            "train_time_ratio_median": statistics.median(times),
            "equal_wall_delta_mean": statistics.fmean(equal) if equal else None,
            "equal_wall_delta_worst": min(equal, key=lambda d: sign * d) if equal else None,
            "settled_mean": statistics.fmean(settled(r.curve) for r in runs),
            "settled_delta_mean": statistics.fmean(calm),
            "settled_delta_worst": min(calm, key=lambda d: sign * d),
            "settled_steps_ratio_median": _median_reached([None if s is None else s[1] for s in calm_steps]),
            "settled_reached": sum(s is not None for s in calm_steps),
            "late_fall_per_seed": [late_fall(r.curve, higher_is_better) for r in runs],
            **_cost(runs, by_seed),
        }
    return pooled


def _cost(runs: Sequence[RunRecord], by_seed: dict[int, RunRecord]) -> dict[str, float]:
    """Mean work per drawn unit over the runs, and its median ratio to the reference's, where every run has it."""
    if not all(COST in r.final and COST in by_seed[r.seed].final for r in runs):
        return {}
    ratios = [r.final[COST] / max(by_seed[r.seed].final[COST], 1e-12) for r in runs]
    return {"cost_mean": statistics.fmean(r.final[COST] for r in runs), "cost_ratio_median": statistics.median(ratios)}


def _final(record: RunRecord, metric: str | None) -> float:
    return float(record.final.get(metric, record.curve[-1][1])) if metric else float(record.curve[-1][1])


def _ratio(value: float | None, reference: float | None) -> tuple[float, float | None] | None:
    """``(value, value / reference)``; the ratio is None when the reference never got there."""
    if value is None:
        return None
    if reference is None:
        return value, None
    return value, value / reference if reference > 0 else (1.0 if value == 0 else None)


def _median_reached(values: Sequence[float | None]) -> float | None:
    """Median with 'not reached' counted as +infinity; None when the median itself is not reached."""
    if not values:
        return None
    middle = statistics.median(float("inf") if v is None else v for v in values)
    return None if middle == float("inf") else middle


def pool_budgets(
    records: Sequence[RunRecord],
    budget_records: Mapping[float, Sequence[RunRecord]],
    reference: str,
    higher_is_better: bool = True,
) -> dict[str, dict[str, Any]]:
    """Per variant trained on shorter schedules, its settled delta at each fraction and where it matches.

    ``records`` are the full runs (the reference's among them); ``budget_records`` the runs trained
    for each fraction of the reference's steps. The variant's own full run, where there is one, is
    the point at 1. A point gives the mean and worst-seed settled delta to the reference's full run
    of the same seed and the median ratio of training seconds (at the last validation). ``matched``
    is :func:`matched_fraction`'s, ``at_most`` whether even the smallest fraction matched, and
    ``matched_wall`` :func:`matched_wall_ratio`'s.
    """
    base = {r.seed: r for r in records if r.variant == reference}
    if not base:
        raise ValueError(f"no {reference!r} run to compare against")
    sign = 1.0 if higher_is_better else -1.0
    points: dict[str, list[dict[str, Any]]] = {}
    for fraction in sorted(budget_records):
        runs = [r for r in budget_records[fraction] if r.seed in base]
        for variant in dict.fromkeys(r.variant for r in runs):
            mine = [r for r in runs if r.variant == variant]
            points.setdefault(variant, []).append(_budget_point(fraction, mine, base, sign))
    pooled = {}
    for variant, found in points.items():
        full = [r for r in records if r.variant == variant and r.seed in base]
        if full:
            found = [*found, _budget_point(1.0, full, base, sign)]
        matched = matched_fraction(found, higher_is_better)
        pooled[variant] = {
            "points": found,
            "matched": matched,
            "at_most": matched is not None and matched == found[0]["fraction"],
            "matched_wall": matched_wall_ratio(found, matched),
        }
    return pooled


def _budget_point(fraction: float, runs: Sequence[RunRecord], base: Mapping[int, RunRecord], sign: float) -> dict:
    deltas = [settled(r.curve) - settled(base[r.seed].curve) for r in runs]
    walls = [r.curve[-1][2] / base[r.seed].curve[-1][2] for r in runs if base[r.seed].curve[-1][2] > 0]
    return {
        "fraction": fraction,
        "delta_mean": statistics.fmean(deltas),
        "delta_worst": min(deltas, key=lambda d: sign * d),
        "wall_ratio": statistics.median(walls) if walls else None,
        "seeds": len(deltas),
    }


def matched_fraction(points: Sequence[Mapping[str, Any]], higher_is_better: bool = True) -> float | None:
    """The smallest fraction at which the mean delta reaches 0, interpolated between neighbouring points.

    ``points`` are ordered by ``fraction``; the first point's own fraction when it already reaches 0
    (the match lies at or below it), None when none does.
    """
    sign = 1.0 if higher_is_better else -1.0
    previous = None
    for point in points:
        if sign * point["delta_mean"] >= 0:
            if previous is None:
                return float(point["fraction"])
            lower, upper = sign * previous["delta_mean"], sign * point["delta_mean"]
            return previous["fraction"] + (point["fraction"] - previous["fraction"]) * -lower / (upper - lower)
        previous = point
    return None


def matched_wall_ratio(points: Sequence[Mapping[str, Any]], matched: float | None) -> float | None:
    """The training-seconds ratio at the ``matched`` fraction, interpolated like the fraction itself."""
    timed = [p for p in points if p["wall_ratio"] is not None]
    if matched is None or not timed:
        return None
    below = [p for p in timed if p["fraction"] <= matched]
    above = [p for p in timed if p["fraction"] >= matched]
    if not below or not above:
        return (below or above)[-1 if below else 0]["wall_ratio"]
    low, high = below[-1], above[0]
    if high["fraction"] == low["fraction"]:
        return low["wall_ratio"]
    share = (matched - low["fraction"]) / (high["fraction"] - low["fraction"])
    return low["wall_ratio"] + share * (high["wall_ratio"] - low["wall_ratio"])
