from __future__ import annotations

import io
import json
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from foveate.sampling import Sampler, available_strategies
from foveate.sampling.statistics import reduce_duplicates
from tests.sampling.helpers import chi_square_ok


def feed(sampler: Sampler, steps: int, error_of, n: int = 512, start: int = 0) -> None:
    for step in range(start, start + steps):
        ids, _ = sampler.sample(n, step)
        sampler.update(ids, error_of(ids), step)


def test_draws_follow_probabilities(device):
    s = Sampler(4096, warmup_iterations=0, update_frequency=1, seed=0, device=device)
    target = torch.linspace(0, 1, 4096, device=device) ** 2
    feed(s, 20, lambda ids: target[ids], n=4096)
    p = s.probabilities()
    draws = 200_000
    ids = s.sample(draws, 100).ids
    ok, statistic = chi_square_ok(torch.bincount(ids, minlength=4096), p, draws)
    assert ok, statistic
    assert abs(float(p.sum(dtype=torch.float64)) - 1.0) < 1e-6


def test_warmup_is_judged_at_every_call():
    s = Sampler(1000, warmup_iterations=10, update_frequency=1, uniform_fraction=0.0, min_error_weight=0.0, seed=0)
    errors = torch.zeros(1000)
    errors[7] = 1.0
    s.update(torch.arange(1000), errors, step=0)
    early = s.sample(5000, step=9).ids
    late = s.sample(5000, step=10).ids
    assert torch.unique(early).numel() > 900, "warm-up draws must be uniform"
    assert torch.equal(late, torch.full_like(late, 7)), "after warm-up all mass is on the only erring unit"
    assert torch.unique(s.sample(5000, step=3).ids).numel() > 900, "an earlier step is uniform again"


def test_distribution_rebuilt_every_update_frequency_updates():
    s = Sampler(100, warmup_iterations=0, update_frequency=3, uniform_fraction=0.0, min_error_weight=0.0, seed=0)
    first = torch.zeros(100)
    first[1] = 1.0
    s.update(torch.arange(100), first, 0)
    s.update(torch.arange(100), first, 1)
    s.update(torch.arange(100), first, 2)
    assert int(s.probabilities().argmax()) == 1
    second = torch.zeros(100)
    second[50] = 10.0
    s.update(torch.arange(100), second, 3)
    s.update(torch.arange(100), second, 4)
    assert int(s.probabilities().argmax()) == 1, "two updates: still the old distribution"
    s.update(torch.arange(100), second, 5)
    assert int(s.probabilities().argmax()) == 50, "third update: rebuilt"


def test_ema_duplicates_and_nonfinite():
    s = Sampler(10, decay=0.5, warmup_iterations=0, seed=0)
    s.update(torch.tensor([3, 3, 4]), torch.tensor([1.0, 3.0, float("nan")]), 0)
    error = s.statistics.error
    assert float(error[3]) == pytest.approx(2.0), "duplicates are averaged; the first visit sets the EMA"
    assert int(s.statistics.visits[4]) == 0, "a NaN error is not an observation"
    s.update(torch.tensor([3]), torch.tensor([4.0]), 1)
    assert float(error[3]) == pytest.approx(0.5 * 2.0 + 0.5 * 4.0)
    s.update(torch.tensor([3]), torch.tensor([float("inf")]), 2)
    assert float(error[3]) == pytest.approx(3.0)
    stats = s.stats()
    assert stats["nonfinite"] == 2
    assert stats["coverage"] == pytest.approx(0.1)
    json.dumps(stats)


def test_sorted_and_unsorted_reductions_agree():
    ids = torch.tensor([5, 1, 5, 2, 1, 5, 9])
    errors = torch.tensor([1.0, 2.0, float("nan"), 4.0, 6.0, 3.0, float("inf")])
    order = torch.argsort(ids, stable=True)
    shuffled, presorted = reduce_duplicates(ids, errors), reduce_duplicates(ids[order], errors[order], ascending=True)
    for name in ("ids", "mean", "count", "nonfinite"):
        assert torch.equal(getattr(shuffled, name), getattr(presorted, name)), name
    assert presorted.mean.tolist() == [4.0, 4.0, 4.0, 2.0, 2.0, 2.0, 0.0]
    assert presorted.count.tolist() == [2.0, 2.0, 1.0, 2.0, 2.0, 2.0, 0.0]
    assert int(presorted.nonfinite) == 2


@pytest.mark.parametrize("reorder", ["in_place", "copy"])
def test_update_skips_the_sort_only_for_an_unchanged_guided_draw(reorder):
    """A guided draw arrives sorted; once its ids change in place the update must sort them again."""
    samplers = [Sampler(64, warmup_iterations=0, update_frequency=1, decay=0.5, seed=3) for _ in range(2)]
    errors = torch.linspace(0.1, 2.0, 64)
    for sampler in samplers:
        feed(sampler, 3, lambda ids: errors[ids], n=256)
    drawn = [sampler.sample(256, 3).ids for sampler in samplers]
    assert torch.equal(drawn[0], drawn[1]) and bool((drawn[0][1:] >= drawn[0][:-1]).all())
    fresh = torch.rand(256, generator=torch.Generator().manual_seed(0))
    shuffled = drawn[0][torch.randperm(256, generator=torch.Generator().manual_seed(1))]
    if reorder == "in_place":
        drawn[0].copy_(shuffled)
    samplers[0].update(drawn[0] if reorder == "in_place" else shuffled, fresh, 3)
    samplers[1].update(shuffled.clone(), fresh, 3)
    assert torch.equal(samplers[0].statistics.error, samplers[1].statistics.error)
    assert torch.equal(samplers[0].statistics.visits, samplers[1].statistics.visits)


def test_unvisited_units_get_the_optimistic_prior():
    s = Sampler(100, warmup_iterations=0, update_frequency=1, uniform_fraction=0.0, min_error_weight=0.0, seed=0)
    s.update(torch.arange(50), torch.linspace(0.0, 2.0, 50), 0)
    p = s.probabilities()
    assert torch.allclose(p[50:], p[49].expand(50)), "never-visited units weigh as much as the worst seen"


@pytest.mark.parametrize("correction", ["full", 0.5, 0.0])
def test_importance_weights_have_mean_one_under_p(correction):
    s = Sampler(500, warmup_iterations=0, update_frequency=1, correction=correction, weight_cap=1e9, seed=0)
    s.update(torch.arange(500), torch.rand(500, generator=torch.Generator().manual_seed(0)) ** 4, 0)
    p = s.probabilities().double()
    all_ids = torch.arange(500)
    weights = s._importance_weights(s.proposal, all_ids, 1).double()
    assert float((p * weights).sum()) == pytest.approx(1.0, rel=1e-5)
    if correction == "full":
        assert torch.allclose(weights, 1.0 / (500 * p), rtol=1e-4)
    draw = s.sample(1000, 1)
    assert draw.weights.shape == draw.ids.shape


@pytest.mark.parametrize("correction", ["full", 0.5])
def test_a_ramped_correction_grows_from_none_at_each_rebuild(correction):
    kwargs = dict(warmup_iterations=0, update_frequency=5, correction=correction, weight_cap=1e9, seed=0)
    ramped = Sampler(400, correction_ramp=100, **kwargs)
    plain = Sampler(400, **kwargs)
    errors = torch.rand(400, generator=torch.Generator().manual_seed(1)) ** 4
    for sampler in (ramped, plain):
        sampler.update(torch.arange(400), errors, 0)
        sampler.rebuild()
    top = 1.0 if correction == "full" else 0.5
    assert [ramped.correction_at(step) for step in (0, 4, 5, 52, 100, 300)] == pytest.approx(
        [0.0, 0.0, 0.05 * top, 0.5 * top, top, top]
    ), "the exponent rises with the step of the latest rebuild, then holds"
    all_ids = torch.arange(400)
    assert torch.equal(ramped._importance_weights(ramped.proposal, all_ids, 3), torch.ones(400))
    halfway = ramped._importance_weights(ramped.proposal, all_ids, 50).double()
    p = ramped.probabilities().double()
    assert float((p * halfway).sum()) == pytest.approx(1.0, rel=1e-5), "soft weights keep mean one under p"
    assert torch.allclose(halfway, (400 * p) ** (-top / 2) / float((p * (400 * p) ** (-top / 2)).sum()), rtol=1e-4)
    assert torch.equal(
        ramped._importance_weights(ramped.proposal, all_ids, 100),
        plain._importance_weights(plain.proposal, all_ids, 100),
    ), "at the ramp's end the weights are the plain correction's"


def test_a_correction_ramp_needs_a_correction():
    with pytest.raises(ValueError, match="correction_ramp needs a correction"):
        Sampler(10, correction_ramp=100)


def test_weight_cap():
    s = Sampler(
        1000, warmup_iterations=0, update_frequency=1, correction="full", weight_cap=2.0, uniform_fraction=0.01, seed=0
    )
    errors = torch.zeros(1000)
    errors[:10] = 100.0
    s.update(torch.arange(1000), errors, 0)
    assert float(s.sample(10_000, 1).weights.max()) <= 2.0


def test_same_seed_same_draws():
    def run(seed):
        s = Sampler((2, 16, 16), "adaptive", warmup_iterations=2, update_frequency=2, seed=seed)
        out = []
        for step in range(8):
            ids, _ = s.sample(300, step)
            s.update(ids, (ids % 7).float(), step)
            out.append(ids)
        return torch.cat(out)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("error_weighted", {}),
        ("error_weighted", {"refresh": True}),
        ("spatial", {}),
        ("adaptive", {}),
        ("adaptive", {"refresh": True}),
        ("uniform", {}),
    ],
)
def test_state_round_trip_continues_exactly(strategy, options):
    kwargs = dict(warmup_iterations=3, update_frequency=3, correction=0.5, seed=5, **options)
    a = Sampler((2, 20, 24), strategy, **kwargs)
    feed(a, 7, lambda ids: (ids % 11).float() / 10, n=256)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = Sampler((2, 20, 24), strategy, **kwargs)
    b.load_state_dict(torch.load(buffer, weights_only=False))
    assert torch.equal(a.probabilities(), b.probabilities())
    for step in range(7, 12):
        da, db = a.sample(256, step), b.sample(256, step)
        assert torch.equal(da.ids, db.ids) and torch.equal(da.weights, db.weights)
        errors = (da.ids % 5).float()
        a.update(da.ids, errors, step)
        b.update(db.ids, errors, step)
        assert torch.equal(a.probabilities(), b.probabilities())
    assert a.stats() == b.stats()


def test_state_dict_rejects_another_population():
    a = Sampler(100, seed=0)
    with pytest.raises(ValueError, match="shape"):
        Sampler(101, seed=0).load_state_dict(a.state_dict())


HOST_SYNCS = {"aten::_local_scalar_dense", "aten::is_nonzero", "aten::nonzero", "aten::_unique2", "aten::masked_select"}
"""Ops that read a device value back on the host (or size an output by one): each is a stall on CUDA."""
SYNC_FREE_STRATEGIES = {
    "uniform": {},
    "error_weighted": {"pool_visits": 2.0, "staleness": 0.1},
    "spatial": {},
    "adaptive": {"pool_visits": 2.0, "staleness": 0.1},
    "failure_bins": {},
}


def host_syncs(sampler: Sampler, steps: range, n: int = 256) -> list[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        feed(sampler, len(steps), lambda ids: (ids % 7).float(), n=n, start=steps.start)
    return [event.name for event in profile.events() if event.name in HOST_SYNCS]


@pytest.mark.parametrize("strategy", sorted(SYNC_FREE_STRATEGIES))
def test_sample_and_update_never_wait_for_the_device(strategy):
    """What the trainer runs on CUDA (unchecked inputs): draws, updates and rebuilds read nothing back.

    (adaptive copies its few shares to the host once per rebuild, a copy the profiler does not name.)"""
    assert set(SYNC_FREE_STRATEGIES) == set(available_strategies())
    shape = 600 if strategy == "failure_bins" else (2, 20, 30)
    options = SYNC_FREE_STRATEGIES[strategy]
    sampler = Sampler(shape, strategy, warmup_iterations=2, update_frequency=3, check_inputs=False, seed=0, **options)
    assert host_syncs(sampler, range(12)) == []
    checked = Sampler(shape, strategy, warmup_iterations=2, update_frequency=3, seed=0, **options)
    assert host_syncs(checked, range(3)), "the probe must see the input check's syncs"


@pytest.mark.parametrize("strategy", available_strategies())
def test_every_draw_comes_sorted_and_its_update_skips_the_sort(strategy):
    """Warm-up, uniform, guided and mixed draws alike: ascending ids, so the update need not sort them."""
    shape = 600 if strategy == "failure_bins" else (2, 20, 30)
    sampler = Sampler(
        shape, strategy, warmup_iterations=2, update_frequency=2, seed=0, **SYNC_FREE_STRATEGIES[strategy]
    )
    for step in range(8):
        ids = sampler.sample(512, step).ids
        assert bool((ids[1:] >= ids[:-1]).all()), f"step {step}: unsorted draw"
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            sampler.update(ids, (ids % 7).float(), step)
        assert "aten::sort" not in {event.name for event in profile.events()}, f"step {step}: the update sorted"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_state_moves_between_devices():
    a = Sampler(1000, warmup_iterations=0, update_frequency=1, seed=0, device="cuda")
    feed(a, 3, lambda ids: ids.float())
    b = Sampler(1000, warmup_iterations=0, update_frequency=1, seed=0, device="cpu")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.probabilities().cpu(), b.probabilities())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(shape=0), "shape"),
        (dict(shape=(2, 3)), "shape"),
        (dict(shape=10, strategy="nope"), "strategy must be one of"),
        (dict(shape=10, decay=1.0), "decay"),
        (dict(shape=10, update_frequency=0), "update_frequency"),
        (dict(shape=10, warmup_iterations=-1), "warmup_iterations"),
        (dict(shape=10, min_error_weight=-0.1), "min_error_weight"),
        (dict(shape=10, uniform_fraction=1.5), "uniform_fraction"),
        (dict(shape=10, correction="half"), "correction"),
        (dict(shape=10, patch_size=4), "unknown argument"),
        (dict(shape=10, strategy="spatial"), r"\(images, H, W\)"),
        (dict(shape=(1, 4, 4), strategy="spatial", within="max"), "within"),
        (dict(shape=10, strategy="failure_bins", form="neither"), "form"),
        (dict(shape=10, strategy="adaptive", components=("uniform", "bogus")), "components"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sampler(**kwargs)


def test_update_errors_name_the_argument():
    s = Sampler(10)
    with pytest.raises(ValueError, match="ids must be an integer"):
        s.update(torch.zeros(3), torch.zeros(3), 0)
    with pytest.raises(ValueError, match="errors must be a floating"):
        s.update(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="same length"):
        s.update(torch.zeros(3, dtype=torch.long), torch.zeros(4), 0)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 10\)"):
        s.update(torch.tensor([0, 10]), torch.zeros(2), 0)
    with pytest.raises(ValueError, match="errors must be >= 0"):
        s.update(torch.tensor([0, 1]), torch.tensor([0.5, -1.0]), 0)
    with pytest.raises(ValueError, match="n must be"):
        s.sample(0, 0)
    with pytest.raises(ValueError, match="step must be"):
        s.sample(5, -1)


def test_stats_keys_and_json():
    s = Sampler((1, 32, 32), "adaptive", warmup_iterations=0, update_frequency=1, seed=0)
    feed(s, 3, lambda ids: (ids % 13).float())
    stats = s.stats()
    for key in (
        "mean_error",
        "error_range",
        "normalized_entropy",
        "effective_sample_size",
        "top1pct_mass",
        "coverage",
        "nonfinite",
        "mixture",
    ):
        assert key in stats
    assert 0.0 < stats["normalized_entropy"] <= 1.0
    assert 0.0 < stats["effective_sample_size"] <= 1.0
    assert 0.01 <= stats["top1pct_mass"] <= 1.0
    assert sum(stats["mixture"].values()) == pytest.approx(1.0)
    json.dumps(stats)


def test_available_strategies():
    assert available_strategies() == ["adaptive", "error_weighted", "failure_bins", "spatial", "uniform"]


@settings(max_examples=40, deadline=None)
@example(errors=[1.0, 0.0], floor=0.0, uniform=2.0**-24)
@example(errors=[0.0, 4.854986918889479e-43], floor=0.5, uniform=0.0)
@given(
    errors=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=300),
    floor=st.floats(0.0, 1.0),
    uniform=st.floats(0.0, 1.0),
)
def test_probabilities_sum_to_one_and_respect_the_floor(errors, floor, uniform):
    n = len(errors)
    s = Sampler(n, warmup_iterations=0, update_frequency=1, min_error_weight=floor, uniform_fraction=uniform, seed=0)
    e = torch.tensor(errors, dtype=torch.float32)
    s.update(torch.arange(n), e, 0)
    p = s.probabilities().double()
    assert abs(float(p.sum()) - 1.0) < 1e-5
    assert bool((p >= 0).all())
    mean = float(e.double().mean())
    if mean > 0:
        weights = torch.clamp(e.double(), min=floor * mean)
        bound = uniform / n + (1 - uniform) * floor * mean / float(weights.sum())
        # In-block prefix sums are float32: a share is resolved to 2^-23 of its block's mass.
        assert float(p.min()) >= bound * (1 - 1e-4) - 2.5e-7
        if bound > 0:
            assert bool((p > 0).all()), "a unit above the floor must stay drawable"


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 500), strategy=st.sampled_from(["error_weighted", "adaptive"]))
def test_all_zero_errors_give_uniform(n, strategy):
    s = Sampler(n, strategy, warmup_iterations=0, update_frequency=1, seed=0)
    s.update(torch.arange(n), torch.zeros(n), 0)
    assert torch.allclose(s.probabilities().double(), torch.full((n,), 1.0 / n, dtype=torch.float64), rtol=1e-5)


def test_unseeded_sampler_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Sampler(10)
    assert torch.equal(torch.rand(3), expected)


class Counter:
    """A supply of uniform ids that counts from 0 and records what it was asked for."""

    def __init__(self, units: int) -> None:
        self.units, self.next_id, self.asked = units, 0, []

    def __call__(self, count: int) -> torch.Tensor:
        self.asked.append(count)
        ids = torch.arange(self.next_id, self.next_id + count) % self.units
        self.next_id += count
        return ids


def test_uniform_ids_supply_the_whole_uniform_draw():
    supply = Counter(50)
    s = Sampler(50, "uniform", warmup_iterations=1, seed=0)
    assert torch.equal(s.sample(8, 0, uniform_ids=supply).ids, torch.arange(8))  # warm-up
    assert torch.equal(s.sample(8, 1, uniform_ids=supply).ids, torch.arange(8, 16))


def test_uniform_ids_supply_only_the_uniform_component_of_a_mixture():
    supply = Counter(1000)
    s = Sampler(1000, "adaptive", warmup_iterations=0, update_frequency=1, evidence=0.0, min_share=0.3, seed=0)
    s.update(torch.arange(1000), torch.rand(1000, generator=torch.Generator().manual_seed(0)), 0)
    draw = s.sample(100, 1, uniform_ids=supply)
    uniform = s._labels == 0
    assert supply.asked == [int(uniform.sum())] and 0 < supply.asked[0] < 100
    assert torch.equal(draw.ids[uniform], torch.arange(supply.asked[0]))
    s.update(draw.ids, torch.ones(100), 1)  # the labels still match the ids


def test_uniform_ids_leave_other_strategies_alone():
    supply = Counter(100)
    s = Sampler(100, "error_weighted", warmup_iterations=0, seed=0)
    s.sample(10, 0, uniform_ids=supply)
    assert supply.asked == []


def test_uniform_ids_of_the_wrong_size_are_refused():
    s = Sampler(100, "uniform", warmup_iterations=0, seed=0)
    with pytest.raises(ValueError, match="uniform_ids"):
        s.sample(10, 0, uniform_ids=lambda count: torch.arange(count + 1))


@pytest.mark.parametrize("prior", ["max", 0.3])
def test_filled_errors_give_the_prior_to_never_visited_units_alone(prior):
    s = Sampler(1000, warmup_iterations=0, seed=0)
    g = torch.Generator().manual_seed(2)
    ids = torch.arange(0, 1000, 3)
    errors = torch.rand(len(ids), generator=g)
    errors[:5] = math.nan  # never counted: those units stay unvisited
    s.update(ids, errors, 0, noise=torch.rand(len(ids), generator=g) * 0.8)  # some errors below the noise
    stats = s.statistics
    visited = stats.visits > 0
    worst = stats.error[visited].max() if prior == "max" else torch.tensor(0.3)
    expected = torch.where(visited, stats.error, worst)
    assert bool((stats.error[visited] < 0).any()) and int((~visited[ids]).sum()) == 5
    assert torch.equal(stats.filled_error(prior), expected)
    assert torch.equal(stats.prior_value(prior), worst)
    assert torch.equal(Sampler(10).statistics.prior_value("max"), torch.tensor(1.0)), "nothing seen: 1"
