"""A compact vectorised PPO (clipped objective, GAE, adaptive learning rate) in PyTorch.

Shaped like rsl_rl's PPO, which BeyondMimic trains with: Gaussian policy with a learned
state-independent log-std, separate actor and critic MLPs (ELU), running observation
normalisation, value clipping, time-out bootstrapping, KL-adaptive learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["PPO", "Act", "ActorCritic", "PPOConfig", "Rollout", "RunningNorm"]


@dataclass
class PPOConfig:
    """PPO (rsl_rl / BeyondMimic defaults, smaller networks for a CPU); the optimiser is the optim section."""

    hidden: tuple[int, ...] = (256, 128)
    """Hidden widths of the actor and of the critic."""
    init_std: float = 0.5
    """Initial standard deviation of the Gaussian policy."""
    adaptive_lr: bool = True
    """Scale the learning rate by 1.5 to keep the KL divergence near desired_kl (rsl_rl's schedule)."""
    desired_kl: float = 0.01
    """Target KL divergence per update of the adaptive learning rate."""
    gamma: float = 0.99
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """Clip range of the probability ratio and of the value change."""
    epochs: int = 5
    """Passes over a rollout per iteration."""
    minibatches: int = 4
    """Minibatches per pass."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    entropy_coef: float = 0.005
    """Weight of the entropy bonus."""


class RunningNorm(nn.Module):
    """Running mean and variance of observations (Chan et al. parallel update), clipped output."""

    def __init__(self, size: int, clip: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        batch_mean, batch_var, n = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta.square() * self.count * n / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / (self.var + 1e-8).sqrt()).clamp(-self.clip, self.clip)


def _mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ELU()]
        inputs = width
    layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


class Act(NamedTuple):
    """What the policy did at one step, as the rollout stores it."""

    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    means: torch.Tensor


class ActorCritic(nn.Module):
    """Gaussian actor and value critic over normalised observations."""

    def __init__(self, observation_size: int, action_size: int, config: PPOConfig) -> None:
        super().__init__()
        self.norm = RunningNorm(observation_size)
        self.actor = _mlp(observation_size, config.hidden, action_size)
        self.critic = _mlp(observation_size, config.hidden, 1)
        self.log_std = nn.Parameter(torch.full((action_size,), math.log(config.init_std)))
        nn.init.orthogonal_(self.actor[-1].weight, gain=0.01)
        nn.init.zeros_(self.actor[-1].bias)

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.actor(self.norm(obs)), self.log_std.exp())

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.norm(obs)).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> Act:
        """Actions with their log-probabilities, the state values and the policy's mean."""
        dist = self.distribution(obs)
        action = dist.mean if deterministic else dist.sample()
        return Act(action, dist.log_prob(action).sum(-1), self.value(obs), dist.mean)


class Rollout:
    """Fixed-size storage of ``steps`` transitions from ``num_envs`` environments."""

    def __init__(self, steps: int, num_envs: int, observation_size: int, action_size: int) -> None:
        self.steps, self.num_envs, self.index = steps, num_envs, 0
        self.obs = torch.zeros(steps, num_envs, observation_size)
        self.actions = torch.zeros(steps, num_envs, action_size)
        self.means = torch.zeros(steps, num_envs, action_size)
        self.stds = torch.zeros(steps, num_envs, action_size)
        self.log_probs = torch.zeros(steps, num_envs)
        self.values = torch.zeros(steps, num_envs)
        self.rewards = torch.zeros(steps, num_envs)
        self.dones = torch.zeros(steps, num_envs)

    def add(self, obs, act: Act, std, rewards, dones) -> None:
        i = self.index
        self.obs[i], self.actions[i], self.log_probs[i], self.values[i] = obs, act.actions, act.log_probs, act.values
        self.means[i], self.stds[i] = act.means, std
        self.rewards[i], self.dones[i] = rewards, dones
        self.index += 1

    def advantages(self, last_values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and returns; ``dones`` cut the recursion (time-outs were bootstrapped into rewards)."""
        advantages = torch.zeros_like(self.rewards)
        running = torch.zeros(self.num_envs)
        for t in reversed(range(self.steps)):
            following = last_values if t == self.steps - 1 else self.values[t + 1]
            alive = 1.0 - self.dones[t]
            delta = self.rewards[t] + gamma * following * alive - self.values[t]
            running = delta + gamma * lam * alive * running
            advantages[t] = running
        return advantages, advantages + self.values


class PPO:
    """Updates an :class:`ActorCritic` from a full :class:`Rollout`.

    Args:
        policy: the actor-critic.
        config: PPO's hyper-parameters.
        optimizer: the optimizer over ``policy``'s parameters; its learning rate is the initial one.
        generator: shuffles the minibatches.
    """

    def __init__(
        self, policy: ActorCritic, config: PPOConfig, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> None:
        self.policy, self.config, self.generator = policy, config, generator
        self.optimizer = optimizer
        self.learning_rate = optimizer.param_groups[0]["lr"]

    def update(
        self, rollout: Rollout, last_values: torch.Tensor, minimize: Callable[[torch.Tensor], None]
    ) -> dict[str, float]:
        """Epochs of minibatch steps on the rollout; ``minimize(loss)`` takes one optimiser step (zero,
        backward, clip, step). Returns the mean losses, KL, learning rate and action spread."""
        c = self.config
        advantages, returns = rollout.advantages(last_values, c.gamma, c.lam)
        flat = {
            "obs": rollout.obs.flatten(0, 1),
            "actions": rollout.actions.flatten(0, 1),
            "log_probs": rollout.log_probs.flatten(0, 1),
            "old_mean": rollout.means.flatten(0, 1),
            "old_std": rollout.stds.flatten(0, 1),
            "values": rollout.values.flatten(0, 1),
            "advantages": advantages.flatten(),
            "returns": returns.flatten(),
        }
        flat["advantages"] = (flat["advantages"] - flat["advantages"].mean()) / (flat["advantages"].std() + 1e-8)
        total = flat["obs"].shape[0]
        size = total // c.minibatches
        sums = {"loss": 0.0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "kl": 0.0}
        updates = 0
        for _ in range(c.epochs):
            order = torch.randperm(total, generator=self.generator)
            for start in range(0, size * c.minibatches, size):
                batch = {k: v[order[start : start + size]] for k, v in flat.items()}
                metrics = self._step(batch, minimize)
                for key in sums:
                    sums[key] += metrics[key]
                updates += 1
        result = {k: v / updates for k, v in sums.items()}
        result["learning_rate"] = self.learning_rate
        result["action_std"] = float(self.policy.log_std.detach().exp().mean())
        return result

    def _step(self, batch: dict[str, torch.Tensor], minimize: Callable[[torch.Tensor], None]) -> dict[str, float]:
        c = self.config
        dist = self.policy.distribution(batch["obs"])
        log_probs = dist.log_prob(batch["actions"]).sum(-1)
        with torch.no_grad():
            kl = _gaussian_kl(batch["old_mean"], batch["old_std"], dist.mean, dist.stddev)
        if c.adaptive_lr:
            if kl > 2.0 * c.desired_kl:
                self.learning_rate = max(1e-5, self.learning_rate / 1.5)
            elif 0.0 < kl < 0.5 * c.desired_kl:
                self.learning_rate = min(1e-2, self.learning_rate * 1.5)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate
        ratio = (log_probs - batch["log_probs"]).exp()
        advantages = batch["advantages"]
        policy_loss = -torch.min(ratio * advantages, ratio.clamp(1 - c.clip, 1 + c.clip) * advantages).mean()
        values = self.policy.value(batch["obs"])
        clipped = batch["values"] + (values - batch["values"]).clamp(-c.clip, c.clip)
        value_loss = torch.max((values - batch["returns"]).square(), (clipped - batch["returns"]).square()).mean()
        entropy = dist.entropy().sum(-1).mean()
        loss = policy_loss + c.value_coef * value_loss - c.entropy_coef * entropy
        minimize(loss)
        return {
            "loss": float(loss.detach()),
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "entropy": float(entropy.detach()),
            "kl": kl,
        }

    def state_dict(self) -> dict:
        """The adaptive learning rate and the minibatch generator (the optimizer is saved by its owner)."""
        return {"learning_rate": self.learning_rate, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.learning_rate = float(state["learning_rate"])
        self.generator.set_state(state["generator"])


def _gaussian_kl(old_mean, old_std, mean, std) -> float:
    """Mean KL(old || new) between diagonal Gaussians, summed over action dimensions."""
    kl = (std / old_std).log() + (old_std.square() + (old_mean - mean).square()) / (2 * std.square()) - 0.5
    return float(kl.sum(-1).mean())
