from __future__ import annotations

import torch

from foveate.pipelines.motion.ppo import PPO, ActorCritic, PPOConfig, Rollout, RunningNorm


def test_gae_by_hand():
    rollout = Rollout(steps=3, num_envs=1, observation_size=1, action_size=1)
    rollout.rewards = torch.tensor([[1.0], [2.0], [3.0]])
    rollout.values = torch.tensor([[0.5], [1.0], [1.5]])
    rollout.dones = torch.tensor([[0.0], [1.0], [0.0]])
    gamma, lam, last = 0.9, 0.8, torch.tensor([2.0])
    advantages, returns = rollout.advantages(last, gamma, lam)
    d2 = 3.0 + gamma * 2.0 - 1.5
    d1 = 2.0 - 1.0  # the episode ended at step 1: no bootstrap
    d0 = 1.0 + gamma * 1.0 - 0.5
    a2, a1 = d2, d1
    a0 = d0 + gamma * lam * a1
    assert torch.allclose(advantages.flatten(), torch.tensor([a0, a1, a2]))
    assert torch.allclose(returns, advantages + rollout.values)


def test_running_norm_matches_the_data():
    norm = RunningNorm(2)
    data = torch.randn(1000, 2) * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, -2.0])
    for chunk in data.split(100):
        norm.update(chunk)
    assert torch.allclose(norm.mean, data.mean(0), atol=1e-3)
    assert torch.allclose(norm.var, data.var(0, unbiased=False), rtol=1e-2)


def test_ppo_improves_a_one_step_bandit():
    # Reward -|a - 0.7|^2: the policy mean must move towards 0.7.
    torch.manual_seed(0)
    config = PPOConfig(hidden=(16,), init_std=0.5, epochs=4, minibatches=2, adaptive_lr=False)
    policy = ActorCritic(1, 1, config)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)

    def minimize(loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    ppo = PPO(policy, config, optimizer, torch.Generator().manual_seed(0))
    obs = torch.zeros(64, 1)
    for _ in range(60):
        rollout = Rollout(1, 64, 1, 1)
        act = policy.act(obs)
        reward = -(act.actions[:, 0] - 0.7).square()
        rollout.add(obs, act, policy.log_std.exp().detach(), reward, torch.ones(64))
        metrics = ppo.update(rollout, torch.zeros(64), minimize)
    assert abs(float(policy.act(obs[:1], deterministic=True).actions) - 0.7) < 0.15
    assert set(metrics) >= {"policy_loss", "value_loss", "kl", "learning_rate", "action_std"}
