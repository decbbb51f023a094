from __future__ import annotations

import pytest
import torch

from foveate.data.timeline import MotionCommandSampler, Timeline, TimelineSampler


def test_bins_by_hand():
    # 106 frames at 10 Hz: S = 106 // 10 + 1 = 11 bins over the 105 start frames (9.55 each).
    timeline = Timeline(106, 10.0, 1.0)
    assert timeline.num_bins == 11
    # First start of bin b: the smallest t with t * 11 >= b * 105.
    assert timeline.bin_starts().tolist() == [0, 10, 20, 29, 39, 48, 58, 67, 77, 86, 96]
    assert timeline.bin_lengths().tolist() == [10, 10, 9, 10, 9, 10, 9, 10, 9, 10, 9]
    # A failure at frame t goes to bin t * 11 // 106.
    frames = torch.tensor([0, 9, 10, 96, 104, 105, 500])
    assert timeline.bin_of(frames).tolist() == [0, 0, 1, 9, 10, 10, 10]
    # Start frames: floor((bin + phase) / 11 * 105).
    assert timeline.start_frames(torch.tensor([0, 3, 10]), torch.tensor([0.0, 0.5, 0.999])).tolist() == [0, 33, 104]
    # Half-second bins at 50 Hz: 1001 // 25 + 1.
    assert Timeline(1001, 50.0, 0.5).num_bins == 41


def test_bins_match_the_released_layout_for_every_motion_length():
    # The released code: S = int(T // fps) + 1, a failure at t in bin clamp(t * S // T, 0, S - 1).
    for frames in range(2, 3000):
        timeline = Timeline(frames, 50.0)
        released = int(frames // 50.0) + 1
        assert timeline.num_bins == released
        t = torch.arange(frames)
        assert torch.equal(timeline.bin_of(t), torch.clamp(t * released // frames, 0, released - 1))
        assert int(timeline.bin_lengths().sum()) == frames - 1 and int(timeline.bin_lengths().min()) >= 1


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


@pytest.mark.parametrize("frames", [106, 502])
def test_uniform_bins_give_uniform_start_frames_even_at_the_motions_end(frames):
    # With 1 s bins of 50 frames, T = 502 left a 1-frame last bin that drew frame 500 for 9% of episodes.
    timeline = Timeline(frames, 10.0 if frames == 106 else 50.0)
    sampler = TimelineSampler(timeline, num_envs=200_000, form="uniform", seed=0)
    starts = sampler.draw(torch.arange(200_000))
    assert int(starts.min()) >= 0 and int(starts.max()) <= frames - 2
    counts = torch.bincount(starts, minlength=frames - 1).double() / starts.numel()
    expected = 1.0 / (frames - 1)
    assert float((counts - expected).abs().max()) < 6 * (expected / 200_000) ** 0.5


def _observe(sampler, frames, terminated=(), time_out=()):
    n = sampler.num_envs
    t = torch.zeros(n, dtype=torch.bool)
    o = torch.zeros(n, dtype=torch.bool)
    t[list(terminated)] = True
    o[list(time_out)] = True
    sampler.observe(torch.as_tensor(frames), t, o)


def test_official_form_by_hand(device):
    # T = 41 at 10 Hz: 5 bins (t * 5 // 41); alpha 0.5, uniform ratio 0.2, kernel (1, 0.8, 0.64) / 2.44.
    timeline = Timeline(41, 10.0)
    sampler = TimelineSampler(
        timeline, 3, "official", device=device, alpha=0.5, uniform_ratio=0.2, kernel_size=3, kernel_decay=0.8
    )
    sampler.draw(torch.arange(3, device=device))
    # Step 1: envs 0 and 1 fail at frames 25 and 27 (bin 3); env 2 times out at frame 5: not a failure.
    _observe(sampler, [25, 27, 5], terminated=[0, 1], time_out=[2])
    # Step 2: env 2 fails at frame 33 (bin 4).
    _observe(sampler, [26, 28, 33], terminated=[2])
    count = [0.0, 0.0, 0.0, 0.5 * 2, 0.0]  # after step 1
    count = [0.5 * c for c in count]  # step 2 decays it ...
    count[4] += 0.5 * 1  # ... and adds its own failure
    q = [c + 0.2 / 5 for c in count]
    w = [1.0, 0.8, 0.64]
    padded = [*q, q[-1], q[-1]]
    p = [sum(w[u] * padded[s + u] for u in range(3)) / sum(w) for s in range(5)]
    p = torch.tensor([v / sum(p) for v in p])
    assert torch.allclose(sampler.probabilities().cpu(), p.float(), atol=1e-6)


def test_paper_form_credits_start_bins_by_hand(device):
    # 5 bins; alpha 0.5, kernel (1, 0.9) over later bins, uniform ratio 0.2.
    timeline = Timeline(41, 10.0)
    sampler = TimelineSampler(
        timeline, 4, "paper", device=device, alpha=0.5, uniform_ratio=0.2, kernel_size=2, kernel_decay=0.9
    )
    sampler.draw(torch.arange(4, device=device))
    starts = sampler.start_bins.tolist()
    # Env 0 fails and env 1 times out, both in bin 4: the paper form credits their START bins.
    # Envs 2 and 3 are still running: they contribute nothing.
    _observe(sampler, [35, 36, 5, 15], terminated=[0], time_out=[1])
    failures, episodes = [0.0] * 5, [0.0] * 5
    failures[starts[0]] += 1
    episodes[starts[0]] += 1
    episodes[starts[1]] += 1
    rate = [0.5 * f / e if e else 0.0 for f, e in zip(failures, episodes, strict=True)]
    smoothed = [rate[s] + (0.9 * rate[s + 1] if s + 1 < 5 else 0.0) for s in range(5)]
    p = torch.tensor([0.2 / 5 + 0.8 * v / sum(smoothed) for v in smoothed])
    assert torch.allclose(sampler.probabilities().cpu(), p.float(), atol=1e-6)


@pytest.mark.parametrize("form", ["paper", "official"])
def test_time_outs_are_not_failures(form):
    sampler = TimelineSampler(Timeline(41, 10.0), 4, form, alpha=0.5)
    sampler.draw(torch.arange(4))
    for step in range(5):
        _observe(sampler, [5 + step, 15 + step, 25 + step, 35 + step], time_out=[0, 1, 2, 3])
    assert torch.allclose(sampler.probabilities(), torch.full((5,), 0.2), atol=1e-7)


def test_official_failure_goes_to_the_bin_where_it_happened():
    sampler = TimelineSampler(Timeline(41, 10.0), 2, "official", alpha=1.0, uniform_ratio=0.0)
    sampler.draw(torch.arange(2))
    _observe(sampler, [35, 3], terminated=[0])
    assert sampler.probabilities().tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert sampler.failures.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


def test_draws_follow_the_adaptive_distribution():
    sampler = TimelineSampler(Timeline(41, 10.0), 50_000, "official", alpha=1.0, uniform_ratio=0.0)
    sampler.draw(torch.arange(50_000))
    frames = torch.full((50_000,), 5)
    frames[:3] = 25  # three failures in bin 3, one in bin 0
    terminated = torch.zeros(50_000, dtype=torch.bool)
    terminated[:4] = True
    sampler.observe(frames, terminated, torch.zeros_like(terminated))
    sampler.draw(torch.arange(50_000))
    share = torch.bincount(sampler.start_bins, minlength=5).double() / 50_000
    assert torch.allclose(share, torch.tensor([0.25, 0.0, 0.0, 0.75, 0.0], dtype=torch.float64), atol=0.01)


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


class ReleasedCommand:
    """BeyondMimic's released adaptive sampling (MotionCommand, whole_body_tracking at HEAD), written
    from reading it: its bins, failure crediting and EMA. New start frames are handed in, so both
    sides of a comparison track the same frames."""

    def __init__(self, frames, fps, num_envs, kernel_size, kernel_decay, uniform_ratio, alpha):
        self.frames, self.bins = frames, int(frames // fps) + 1
        self.uniform_ratio, self.alpha, self.kernel_size = uniform_ratio, alpha, kernel_size
        kernel = kernel_decay ** torch.arange(kernel_size, dtype=torch.float32)
        self.kernel = kernel / kernel.sum()
        self.count = torch.zeros(self.bins)
        self.current = torch.zeros(self.bins)
        self.time_steps = torch.zeros(num_envs, dtype=torch.long)

    def probabilities(self):
        q = self.count + self.uniform_ratio / float(self.bins)
        padded = torch.cat([q, q[-1:].repeat(self.kernel_size - 1)])
        p = torch.stack([(self.kernel * padded[s : s + self.kernel_size]).sum() for s in range(self.bins)])
        return p / p.sum()

    def resample(self, env_ids, terminated, starts):  # _resample_command -> _adaptive_sampling
        failed = terminated[env_ids]
        if bool(failed.any()):
            bins = torch.clamp(self.time_steps * self.bins // max(self.frames, 1), 0, self.bins - 1)
            self.current[:] = torch.bincount(bins[env_ids][failed], minlength=self.bins)
        self.time_steps[env_ids] = starts

    def update(self, starts_of):  # _update_command
        self.time_steps += 1
        ended = torch.nonzero(self.time_steps >= self.frames).flatten()
        if ended.numel():
            self.resample(ended, torch.zeros(len(self.time_steps), dtype=torch.bool), starts_of(ended))
        self.count = self.alpha * self.current + (1 - self.alpha) * self.count
        self.current.zero_()


FRAMES, FPS, ENVS, HARD_BIN = 301, 50.0, 64, 2
PARAMETERS = {"kernel_size": 3, "kernel_decay": 0.8, "uniform_ratio": 0.1, "alpha": 0.02}


def _failures(frames, generator):
    """Episodes tracking the hard bin fail often, the others rarely: failures concentrated in one bin."""
    bins = frames * (FRAMES // int(FPS) + 1) // FRAMES
    return torch.rand(len(frames), generator=generator) < torch.where(bins == HARD_BIN, 0.3, 0.003)


def test_isaaclab_hook_order_matches_the_released_arithmetic():
    ours = MotionCommandSampler(FRAMES, FPS, ENVS, "official", seed=0, **PARAMETERS)
    released = ReleasedCommand(FRAMES, FPS, ENVS, **PARAMETERS)
    released.time_steps[:] = ours.resample(torch.arange(ENVS))
    generator, elapsed = torch.Generator().manual_seed(1), torch.zeros(ENVS, dtype=torch.long)
    score = ours.sampler.sampler.strategy
    for _ in range(600):
        terminated = _failures(ours.time_steps, generator)  # judged at the frames being tracked
        elapsed += 1
        reset = torch.nonzero(terminated | (elapsed >= 100)).flatten()  # env.step resets first ...
        released.resample(reset, terminated, ours.resample(reset, terminated[reset]))
        elapsed[reset] = 0
        ours.update()  # ... then the command manager updates
        released.update(lambda ids: ours.time_steps[ids])
        assert torch.equal(ours.time_steps, released.time_steps)
        torch.testing.assert_close(score.score, released.count, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(ours.sampler.probabilities(), released.probabilities(), rtol=1e-5, atol=1e-7)
    share = released.probabilities()  # the 3-wide non-causal kernel spreads the hard bin onto the two before it
    assert int(share.argmax()) == HARD_BIN and float(share[: HARD_BIN + 1].sum()) > 0.9


def test_foveates_hook_order_credits_the_same_bins():
    ours = MotionCommandSampler(FRAMES, FPS, ENVS, "official", seed=0, **PARAMETERS)
    ours.resample(torch.arange(ENVS))
    bins = int(FRAMES // FPS) + 1
    expected = torch.zeros(bins)
    generator, elapsed = torch.Generator().manual_seed(1), torch.zeros(ENVS, dtype=torch.long)
    for _ in range(600):
        tracked = (ours.time_steps + 1).clamp(max=FRAMES - 1)  # foveate's env advances, then tracks
        terminated = _failures(tracked, generator)
        elapsed += 1
        time_out = ((elapsed >= 100) | (tracked >= FRAMES - 1)) & ~terminated
        ours.update(terminated, time_out)  # outcomes first ...
        counts = torch.bincount(torch.clamp(tracked * bins // FRAMES, 0, bins - 1)[terminated], minlength=bins)
        expected = PARAMETERS["alpha"] * counts + (1 - PARAMETERS["alpha"]) * expected
        reset = torch.nonzero(terminated | time_out).flatten()
        ours.resample(reset)  # ... then the resets
        elapsed[reset] = 0
        torch.testing.assert_close(ours.sampler.sampler.strategy.score, expected, rtol=1e-5, atol=1e-8)
    assert int(ours.sampler.probabilities().argmax()) == HARD_BIN


def test_the_two_orders_are_not_mixed_by_mistake():
    command = MotionCommandSampler(FRAMES, FPS, 4, "official")
    with pytest.raises(ValueError, match="both terminated and time_out"):
        command.update(torch.zeros(4, dtype=torch.bool))
