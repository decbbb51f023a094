from __future__ import annotations

import math
import random

import pytest
import torch

from foveate.sampling import (
    AdaptiveSampler,
    CategoricalProposal,
    ErrorBasedRaySampler,
    MixtureProposal,
    Sampler,
    UniformProposal,
)


def exact_probabilities(sampler: Sampler) -> torch.Tensor:
    return sampler.probabilities().double()


class TestSpatial:
    def test_tile_mass_follows_tile_mean_error(self):
        s = Sampler(
            (1, 8, 8),
            "spatial",
            patch_size=4,
            warmup_iterations=0,
            update_frequency=1,
            uniform_fraction=0.0,
            min_error_weight=0.0,
            seed=0,
        )
        errors = torch.zeros(1, 8, 8)
        errors[0, :4, :4] = 1.0  # tile (0, 0): mean 1
        errors[0, 4, 4] = 16.0  # tile (1, 1): mean 1, all on one pixel
        s.update(torch.arange(64), errors.flatten(), 0)
        p = exact_probabilities(s).view(8, 8)
        assert float(p[:4, :4].sum()) == pytest.approx(0.5)
        assert float(p[4:, 4:].sum()) == pytest.approx(0.5)
        assert torch.allclose(p[4:, 4:], torch.full((4, 4), 0.5 / 16, dtype=torch.float64)), "uniform within"

    def test_proportional_within_tile(self):
        s = Sampler(
            (1, 8, 8),
            "spatial",
            patch_size=4,
            within="proportional",
            warmup_iterations=0,
            update_frequency=1,
            uniform_fraction=0.0,
            min_error_weight=0.0,
            seed=0,
        )
        errors = torch.zeros(1, 8, 8)
        errors[0, :4, :4] = 1.0
        errors[0, 4, 4] = 16.0
        s.update(torch.arange(64), errors.flatten(), 0)
        p = exact_probabilities(s).view(8, 8)
        assert float(p[4, 4]) == pytest.approx(0.5)

    def test_ragged_edges_and_several_images(self):
        s = Sampler((3, 5, 7), "spatial", patch_size=4, warmup_iterations=0, update_frequency=1, seed=0)
        s.update(torch.arange(105), torch.rand(105, generator=torch.Generator().manual_seed(0)), 0)
        p = exact_probabilities(s)
        assert p.numel() == 105 and abs(float(p.sum()) - 1) < 1e-6 and bool((p > 0).all())
        ids = s.sample(10_000, 1).ids
        assert int(ids.max()) < 105


class TestAdaptive:
    def test_shares_move_to_the_component_whose_units_improve(self):
        s = Sampler(2000, "adaptive", warmup_iterations=0, update_frequency=5, min_share=0.1, seed=0)
        # Every unit starts at error 1; units drawn by error_weighted then improve, uniform's stay as they are.
        s.update(torch.arange(2000), torch.ones(2000), 0)
        for step in range(1, 60):
            ids, _ = s.sample(400, step)
            labels = s._labels
            current = s.statistics.error[ids].float()
            errors = torch.where(labels == 1, current * 0.5, current)
            s.update(ids, errors, step)
        mixture = s.stats()["mixture"]
        # Uniform's score is at most 0, error_weighted's positive: softmax(6 * [<= 0, 1]) puts at
        # least 0.9975 of the free 0.8 on error_weighted; min_share holds the rest.
        assert 0.1 + 0.8 * 0.9975 <= mixture["error_weighted"] <= 0.9 + 1e-6
        assert 0.1 - 1e-6 <= mixture["uniform"] <= 0.1 + 0.8 * 0.0025

    def test_draw_is_split_by_share_and_probabilities_mix(self):
        three = ("uniform", "error_weighted", "spatial")
        s = Sampler(
            (1, 16, 16), "adaptive", components=three, warmup_iterations=0, update_frequency=1, evidence=0.0, seed=0
        )
        s.update(torch.arange(256), torch.rand(256, generator=torch.Generator().manual_seed(0)), 0)
        draw = s.sample(999, 1)
        counts = torch.bincount(s._labels.long(), minlength=3)
        assert int(counts.sum()) == 999 and bool((counts >= 332).all()) and bool((counts <= 334).all())
        components = s.proposal.components
        expected = sum(c.probabilities().double() / 3 for c in components)
        assert torch.allclose(exact_probabilities(s), expected, atol=1e-7)
        assert draw.ids.numel() == 999

    def test_mixes_uniform_and_error_weighted_by_default_on_image_layouts_too(self):
        assert Sampler((1, 16, 16), "adaptive").stats()["mixture"] == pytest.approx(
            {"uniform": 0.5, "error_weighted": 0.5}
        )

    def test_state_of_other_components_is_refused(self):
        three = Sampler((1, 8, 8), "adaptive", components=("uniform", "error_weighted", "spatial"))
        with pytest.raises(ValueError, match="mixes 3 components, the strategy 2"):
            Sampler((1, 8, 8), "adaptive").load_state_dict(three.state_dict())

    def test_equal_shares_without_progress_when_every_score_is_trusted(self):
        s = Sampler(100, "adaptive", warmup_iterations=0, update_frequency=1, evidence=0.0, seed=0)
        for step in range(5):
            ids, _ = s.sample(50, step)
            s.update(ids, torch.ones(50), step)
        assert s.stats()["mixture"] == pytest.approx({"uniform": 0.5, "error_weighted": 0.5})


class TestFailureBinsPaper:
    def test_hand_computed(self):
        s = Sampler(
            6,
            "failure_bins",
            form="paper",
            kernel_size=3,
            kernel_decay=0.5,
            uniform_ratio=0.2,
            alpha=0.5,
            warmup_iterations=0,
            update_frequency=1,
        )
        # Episodes that STARTED in bins 1, 1, 4 ended; the first and third failed.
        s.update(torch.tensor([1, 1, 4]), torch.tensor([1.0, 0.0, 1.0]), 0)
        r = [0.0, 0.25, 0.0, 0.0, 0.5, 0.0]
        k = [1.0, 0.5, 0.25]
        raw = [sum(k[u] * r[b + u] for u in range(3) if b + u < 6) for b in range(6)]
        p = [0.2 / 6 + 0.8 * x / sum(raw) for x in raw]
        assert torch.allclose(exact_probabilities(s), torch.tensor(p, dtype=torch.float64), atol=1e-7)
        # Bins with no finished episode keep their rate; bin 1 moves by alpha towards 1/1.
        s.update(torch.tensor([1]), torch.tensor([1.0]), 1)
        assert float(s.strategy.score[1]) == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)
        assert float(s.strategy.score[4]) == pytest.approx(0.5)

    def test_no_failures_is_uniform(self):
        s = Sampler(5, "failure_bins", form="paper", warmup_iterations=0, update_frequency=1)
        s.update(torch.tensor([0, 3]), torch.tensor([0.0, 0.0]), 0)
        assert torch.allclose(exact_probabilities(s), torch.full((5,), 0.2, dtype=torch.float64))


class TestFailureBinsOfficial:
    def test_hand_computed(self):
        s = Sampler(
            5,
            "failure_bins",
            form="official",
            kernel_size=3,
            kernel_decay=0.8,
            uniform_ratio=0.1,
            alpha=0.001,
            warmup_iterations=0,
            update_frequency=1,
        )
        # One control step: two envs failed in bin 2, one in bin 4.
        s.update(torch.tensor([2, 2, 4]), torch.ones(3), 0)
        count = [0.0, 0.0, 0.002, 0.0, 0.001]
        q = [c + 0.1 / 5 for c in count]
        padded = q + [q[-1]] * 2
        k = [1.0, 0.8, 0.64]
        k = [x / sum(k) for x in k]
        conv = [sum(k[u] * padded[b + u] for u in range(3)) for b in range(5)]
        p = [x / sum(conv) for x in conv]
        assert torch.allclose(exact_probabilities(s), torch.tensor(p, dtype=torch.float64), atol=1e-7)

    def test_every_call_decays_even_without_failures(self):
        s = Sampler(3, "failure_bins", form="official", alpha=0.5, warmup_iterations=0, update_frequency=1)
        s.update(torch.tensor([1]), torch.ones(1), 0)
        s.update(torch.zeros(0, dtype=torch.long), torch.zeros(0), 1)
        assert torch.allclose(s.strategy.score, torch.tensor([0.0, 0.25, 0.0]))

    def test_kernel_size_one_is_count_plus_uniform(self):
        s = Sampler(4, "failure_bins", warmup_iterations=0, update_frequency=1)
        s.update(torch.tensor([3]), torch.ones(1), 0)
        q = torch.tensor([0.025, 0.025, 0.025, 0.025 + 0.001], dtype=torch.float64)
        assert torch.allclose(exact_probabilities(s), q / q.sum(), atol=1e-7)


def test_error_based_ray_sampler_alias():
    s = ErrorBasedRaySampler(2**10, "cpu", warmup_iterations=2, update_frequency=1, seed=0)
    ids = s.sample_ray_indices(100, iteration=0)
    s.update_error_map(ids, torch.rand(100))
    assert not s.should_use_error_sampling(1) and s.should_use_error_sampling(2)
    assert s.get_sampling_info()["coverage"] > 0


def test_adaptive_sampler_alias_phases_fall_in_their_bins():
    s = AdaptiveSampler(motion_fps=50, motion_duration=10.0, seed=0)
    assert s.num_units == 10
    phases, bins = s.sample_starting_phases(1000)
    assert bool(((phases * 10).floor().long() == bins).all())
    s.update_failure_statistics(bins[:10], torch.ones(10))
    assert math.isclose(float(s.probabilities().sum()), 1.0, rel_tol=1e-6)


def test_a_mixture_draws_in_ascending_order_with_its_labels_alongside():
    upper_half = torch.zeros(100)
    upper_half[50:] = 1.0
    mixture = MixtureProposal([UniformProposal(100, torch.device("cpu")), CategoricalProposal(upper_half)], [0.5, 0.5])
    ids, labels = mixture.sample(4000, torch.Generator().manual_seed(0), random.Random(0), stratified=False)
    assert bool((ids[1:] >= ids[:-1]).all())
    assert int((labels == 1).sum()) == 2000, "systematic allocation: the categorical drew exactly its share"
    assert bool((labels[ids < 50] == 0).all()), "only the uniform component draws the lower half"
    assert 800 < int((labels[ids >= 50] == 0).sum()) < 1200, "the uniform component's draws in the upper half"
