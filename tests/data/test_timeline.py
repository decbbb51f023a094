from __future__ import annotations

import pytest
import torch

from foveate.data.timeline import MotionCommandSampler, Timeline, TimelineSampler


def test_bins_by_hand():
    # 106 frames at 10 Hz: starts 0..104 (105 of them), 1 s bins of 10 frames, the last holds 5.
    timeline = Timeline(106, 10.0, 1.0)
    assert timeline.frames_per_bin == 10
    assert timeline.num_bins == 11
    assert timeline.bin_starts().tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert timeline.bin_lengths().tolist() == [10] * 10 + [5]
    frames = torch.tensor([0, 9, 10, 99, 104, 105, 500])
    assert timeline.bin_of(frames).tolist() == [0, 0, 1, 9, 10, 10, 10]
    # Half-second bins at 50 Hz: 25 frames each.
    assert Timeline(1001, 50.0, 0.5).num_bins == 40


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_frames=1, control_rate=10.0),
        dict(num_frames=10, control_rate=0.0),
        dict(num_frames=10, control_rate=10.0, bin_seconds=-1.0),
    ],
)
def test_timeline_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Timeline(**kwargs)


def test_uniform_draws_are_uniform_bins_then_uniform_phase():
    timeline = Timeline(106, 10.0)
    sampler = TimelineSampler(timeline, num_envs=200_000, form="uniform", seed=0)
    frames = sampler.draw(torch.arange(200_000))
    assert int(frames.min()) >= 0 and int(frames.max()) <= 104
    counts = torch.bincount(frames, minlength=105).double() / frames.numel()
    # P(frame) = P(bin) / frames in the bin: 1/11/10 in full bins, 1/11/5 in the last one.
    expected = torch.cat([torch.full((100,), 1 / 110), torch.full((5,), 1 / 55)]).double()
    assert torch.allclose(counts, expected, atol=5 * (expected / 200_000).sqrt().max().item())
    assert torch.equal(sampler.start_bins, timeline.bin_of(frames))


def _observe(sampler, frames, terminated=(), time_out=()):
    n = sampler.num_envs
    t = torch.zeros(n, dtype=torch.bool)
    o = torch.zeros(n, dtype=torch.bool)
    t[list(terminated)] = True
    o[list(time_out)] = True
    sampler.observe(torch.as_tensor(frames), t, o)


def test_official_form_by_hand(device):
    # 4 bins of 10 frames; alpha 0.5, uniform ratio 0.2, kernel (1, 0.8, 0.64) / 2.44, replicate padding.
    timeline = Timeline(41, 10.0)
    sampler = TimelineSampler(
        timeline, 3, "official", device=device, alpha=0.5, uniform_ratio=0.2, kernel_size=3, kernel_decay=0.8
    )
    sampler.draw(torch.arange(3, device=device))
    # Step 1: envs 0 and 1 fail in bin 2 (frames 25, 27); env 2 times out in bin 0: not a failure.
    _observe(sampler, [25, 27, 5], terminated=[0, 1], time_out=[2])
    # Step 2: env 2 fails in bin 3.
    _observe(sampler, [26, 28, 33], terminated=[2])
    count = [0.0, 0.0, 0.5 * 2, 0.0]  # after step 1
    count = [0.5 * c for c in count]  # step 2 decays it ...
    count[3] += 0.5 * 1  # ... and adds its own failure
    q = [c + 0.2 / 4 for c in count]
    w = [1.0, 0.8, 0.64]
    padded = [*q, q[-1], q[-1]]
    p = [sum(w[u] * padded[s + u] for u in range(3)) / sum(w) for s in range(4)]
    p = torch.tensor([v / sum(p) for v in p])
    assert torch.allclose(sampler.probabilities().cpu(), p.float(), atol=1e-6)


def test_paper_form_credits_start_bins_by_hand(device):
    # 4 bins; alpha 0.5, kernel (1, 0.9) over later bins, uniform ratio 0.2.
    timeline = Timeline(41, 10.0)
    sampler = TimelineSampler(
        timeline, 4, "paper", device=device, alpha=0.5, uniform_ratio=0.2, kernel_size=2, kernel_decay=0.9
    )
    sampler.draw(torch.arange(4, device=device))
    starts = sampler.start_bins.tolist()
    # Env 0 fails and env 1 times out, both in bin 3: the paper form credits their START bins.
    # Envs 2 and 3 are still running: they contribute nothing.
    _observe(sampler, [35, 36, 5, 15], terminated=[0], time_out=[1])
    failures, episodes = [0.0] * 4, [0.0] * 4
    failures[starts[0]] += 1
    episodes[starts[0]] += 1
    episodes[starts[1]] += 1
    rate = [0.5 * f / e if e else 0.0 for f, e in zip(failures, episodes, strict=True)]
    smoothed = [rate[s] + (0.9 * rate[s + 1] if s + 1 < 4 else 0.0) for s in range(4)]
    p = torch.tensor([0.2 / 4 + 0.8 * v / sum(smoothed) for v in smoothed])
    assert torch.allclose(sampler.probabilities().cpu(), p.float(), atol=1e-6)


@pytest.mark.parametrize("form", ["paper", "official"])
def test_time_outs_are_not_failures(form):
    sampler = TimelineSampler(Timeline(41, 10.0), 4, form, alpha=0.5)
    sampler.draw(torch.arange(4))
    for step in range(5):
        _observe(sampler, [5 + step, 15 + step, 25 + step, 35 + step], time_out=[0, 1, 2, 3])
    assert torch.allclose(sampler.probabilities(), torch.full((4,), 0.25), atol=1e-7)


def test_official_failure_goes_to_the_bin_where_it_happened():
    sampler = TimelineSampler(Timeline(41, 10.0), 2, "official", alpha=1.0, uniform_ratio=0.0)
    sampler.draw(torch.arange(2))
    _observe(sampler, [35, 3], terminated=[0])
    assert sampler.probabilities().tolist() == [0.0, 0.0, 0.0, 1.0]
    assert sampler.failures.tolist() == [0.0, 0.0, 0.0, 1.0]


def test_draws_follow_the_adaptive_distribution():
    sampler = TimelineSampler(Timeline(41, 10.0), 50_000, "official", alpha=1.0, uniform_ratio=0.0)
    sampler.draw(torch.arange(50_000))
    frames = torch.full((50_000,), 5)
    frames[:3] = 25  # three failures in bin 2, one in bin 0
    terminated = torch.zeros(50_000, dtype=torch.bool)
    terminated[:4] = True
    sampler.observe(frames, terminated, torch.zeros_like(terminated))
    bins = Timeline(41, 10.0).bin_of(sampler.draw(torch.arange(50_000)))
    share = torch.bincount(bins, minlength=4).double() / 50_000
    assert torch.allclose(share, torch.tensor([0.25, 0.0, 0.75, 0.0], dtype=torch.float64), atol=0.01)


def test_motion_command_hooks_advance_record_and_resample():
    command = MotionCommandSampler(41, 10.0, 3, "official", alpha=1.0, uniform_ratio=0.0, seed=3)
    starts = command.resample(torch.arange(3))
    assert torch.equal(command.time_steps, starts)
    terminated = torch.tensor([True, False, False])
    command.update(terminated, torch.zeros(3, dtype=torch.bool))
    assert torch.equal(command.time_steps, (starts + 1).clamp(max=40))
    failure_bin = int(Timeline(41, 10.0).bin_of(starts[:1] + 1))
    assert int(command.stats()["top1_bin"]) == failure_bin
    fresh = command.resample(torch.tensor([0]))
    assert int(command.time_steps[0]) == int(fresh[0])
    for _ in range(100):
        command.update(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool))
    assert int(command.time_steps.max()) == 40


def test_state_dict_resumes_identically():
    def run(sampler, steps):
        out = []
        for _ in range(steps):
            frames = sampler.draw(torch.arange(8))
            sampler.observe(frames + 1, frames % 3 == 0, frames % 5 == 0)
            out.append(frames)
        return torch.stack(out)

    a = TimelineSampler(Timeline(101, 10.0), 8, "paper", seed=1)
    run(a, 5)
    b = TimelineSampler(Timeline(101, 10.0), 8, "paper", seed=99)
    b.load_state_dict(a.state_dict())
    assert torch.equal(run(a, 5), run(b, 5))
    with pytest.raises(ValueError, match="form"):
        TimelineSampler(Timeline(101, 10.0), 8, "official").load_state_dict(a.state_dict())


def test_bad_inputs_are_named():
    sampler = TimelineSampler(Timeline(41, 10.0), 3, "official")
    with pytest.raises(ValueError, match="terminated must be a tensor of shape"):
        sampler.observe(torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.bool), torch.zeros(3))
    with pytest.raises(ValueError, match="form must be one of"):
        TimelineSampler(Timeline(41, 10.0), 3, "adaptive")
    with pytest.raises(ValueError, match="takes no failure_bins arguments"):
        TimelineSampler(Timeline(41, 10.0), 3, "uniform", alpha=0.1)
