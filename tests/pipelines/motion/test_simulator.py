from __future__ import annotations

import pytest
import torch

from foveate.data.timeline import Timeline
from foveate.pipelines.motion.simulator import DifficultyProfile, SyntheticTrackingEnv, simulate

TIMELINE = Timeline(20 * 25 + 1, 25.0)
HARD = 12


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny convolutions through oneDNN cost milliseconds each with two contended threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_competence_rises_only_where_frames_are_played():
    profile = DifficultyProfile.with_hard_bins(TIMELINE.num_bins, (HARD,), hard=(0.9, 100.0))
    env = SyntheticTrackingEnv(TIMELINE, 8, profile, episode_frames=10)
    before = env.failure_per_bin().clone()
    env.reset_envs(torch.arange(8), torch.full((8,), HARD * 25))
    env.step()
    after = env.failure_per_bin()
    assert after[HARD] < before[HARD]
    others = torch.arange(TIMELINE.num_bins) != HARD
    assert torch.equal(after[others], before[others])
    # Completion from frame 0 multiplies the survival of every bin, each for the share of a bin's width
    # it spans (the 21 bins of 500 start frames hold 23 or 24 frames, a width of 500 / 21).
    lengths = TIMELINE.bin_lengths().double()
    assert lengths.tolist().count(24.0) == 17 and lengths.tolist().count(23.0) == 4
    survival = ((1 - after) ** (lengths / (500 / 21))).prod()
    assert env.completion_probability() == pytest.approx(float(survival), rel=1e-9)


@pytest.mark.parametrize("form", ["paper", "official"])
def test_adaptive_forms_concentrate_exposure_on_the_hard_bin(form):
    # One hard bin that never improves: uniform starts play about 1/20 of their frames there.
    profile = DifficultyProfile.with_hard_bins(TIMELINE.num_bins, (HARD,), hard=(0.9, 1e9))
    kwargs = dict(num_envs=32, iterations=60, episode_frames=25, seed=0)
    uniform = torch.tensor(simulate("uniform", profile, TIMELINE, **kwargs).frames_per_bin)
    adaptive_run = simulate(form, profile, TIMELINE, **kwargs)
    adaptive = torch.tensor(adaptive_run.frames_per_bin)
    uniform_share = float(uniform[HARD] / uniform.sum())
    adaptive_share = float(adaptive[HARD] / adaptive.sum())
    assert adaptive_share > 2.0 * uniform_share, (uniform_share, adaptive_share)
    # The draw distribution ends up peaked: the paper form on the bins leading into the hard one
    # (its non-causal kernel and start-bin credit), the official form on the hard bin itself.
    assert adaptive_run.normalized_entropy[-1] < 0.95
    starts = torch.tensor(adaptive_run.starts_per_bin)
    lead_in = starts[HARD - 4 : HARD + 1].sum() / starts.sum()
    assert float(lead_in) > 2.0 * 5 / TIMELINE.num_bins


def test_uniform_completes_an_easy_motion_and_reports_when():
    profile = DifficultyProfile.with_hard_bins(TIMELINE.num_bins, (), easy=(0.05, 200.0))
    result = simulate("uniform", profile, TIMELINE, num_envs=16, iterations=40, episode_frames=50, seed=1)
    assert result.iterations_to_complete is not None
    index = result.iterations_to_complete - 1
    assert result.completion[index] >= 0.9 > (result.completion[index - 1] if index else 0.0)


def test_profile_validation():
    with pytest.raises(ValueError, match="hard_bins"):
        DifficultyProfile.with_hard_bins(5, (7,))
    with pytest.raises(ValueError, match="initial_failure"):
        DifficultyProfile(torch.tensor([1.5]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="bins"):
        SyntheticTrackingEnv(TIMELINE, 2, DifficultyProfile.with_hard_bins(3, ()), episode_frames=5)
