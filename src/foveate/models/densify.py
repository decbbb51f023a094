"""Density control for Gaussian splats: grow, split, prune and reset, with explicit state.

gsplat's design: the caller owns the parameters (a ``torch.nn.ParameterDict`` in gsplat's names and
stored forms: ``means``, ``scales`` (log), ``quats``, ``opacities`` (logit), ``sh0``, ``shN``) and
one optimizer per parameter; a strategy is a dataclass of hyper-parameters whose running state is a
plain dict of tensors, created by :meth:`DefaultStrategy.initialize_state` and passed to
:meth:`DefaultStrategy.step_post_backward` after every backward pass. Parameters change size
there, and their Adam moments with them (kept rows keep their moments, new rows start at zero), so
a checkpoint of parameters, optimizers and state resumes exactly.

Examples:
    >>> strategy = DefaultStrategy()  # doctest: +SKIP
    >>> state = strategy.initialize_state(scene_scale=1.0)  # doctest: +SKIP
    >>> for step in range(steps):  # doctest: +SKIP
    ...     rgb, alpha, info = rasterize(...)
    ...     loss.backward()
    ...     strategy.step_post_backward(params, optimizers, state, step, info)
    ...     for optimizer in optimizers.values():
    ...         optimizer.step(); optimizer.zero_grad()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .gaussians import quat_to_rotmat

__all__ = ["DefaultStrategy", "duplicate", "remove", "reset_opacities", "split"]

Params = torch.nn.ParameterDict
Optimizers = dict[str, torch.optim.Optimizer]


def _swap(
    optimizer: torch.optim.Optimizer | None,
    old: torch.Tensor,
    new: torch.Tensor,
    moment_fn: Callable[[str, torch.Tensor], torch.Tensor],
) -> None:
    """Point ``optimizer`` at ``new`` instead of ``old``, its per-row moments mapped by ``moment_fn``."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        for index, tensor in enumerate(group["params"]):
            if tensor is not old:
                continue
            moments = optimizer.state.pop(tensor, {})
            for key, value in list(moments.items()):
                if torch.is_tensor(value) and value.dim() > 0 and len(value) == len(old):
                    moments[key] = moment_fn(key, value)
            group["params"][index] = new
            optimizer.state[new] = moments


def _update(
    params: Params,
    optimizers: Optimizers,
    state: dict[str, Any],
    param_fn: Callable[[str, torch.Tensor], torch.Tensor],
    moment_fn: Callable[[str, torch.Tensor], torch.Tensor],
    state_fn: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Replace every parameter by ``param_fn(name, old)``, its Adam moments by ``moment_fn``, and per-splat state."""
    for name in list(params.keys()):
        old = params[name]
        new = torch.nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        params[name] = new
        _swap(optimizers.get(name), old, new, moment_fn)
    for key, value in list(state.items()):
        if torch.is_tensor(value) and value.dim() > 0:
            state[key] = state_fn(value)


def duplicate(params: Params, optimizers: Optimizers, state: dict[str, Any], mask: torch.Tensor) -> None:
    """Append a copy of every splat in ``mask`` (new Adam moments zero, new state copied)."""
    picked = torch.nonzero(mask).squeeze(1)
    _update(
        params,
        optimizers,
        state,
        lambda name, p: torch.cat((p, p[picked])),
        lambda key, v: torch.cat((v, torch.zeros_like(v[picked]))),
        lambda v: torch.cat((v, v[picked])),
    )


def split(
    params: Params,
    optimizers: Optimizers,
    state: dict[str, Any],
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
) -> None:
    """Replace every splat in ``mask`` by two, drawn from it, 1.6x smaller (3DGS's split)."""
    picked = torch.nonzero(mask).squeeze(1)
    kept = torch.nonzero(~mask).squeeze(1)
    scales = torch.exp(params["scales"].detach()[picked])
    rotation = quat_to_rotmat(params["quats"].detach()[picked])
    noise = torch.randn(2, len(picked), 3, generator=generator, device=scales.device, dtype=scales.dtype)
    offsets = torch.einsum("nij,bnj->bni", rotation, noise * scales)  # (2, n, 3)

    def new_rows(name: str, p: torch.Tensor) -> torch.Tensor:
        if name == "means":
            fresh = (p[picked][None] + offsets).reshape(-1, 3)
        elif name == "scales":
            fresh = torch.log(scales / 1.6).repeat(2, 1)
        else:
            fresh = p[picked].repeat(2, *([1] * (p.dim() - 1)))
        return torch.cat((p[kept], fresh))

    _update(
        params,
        optimizers,
        state,
        new_rows,
        lambda key, v: torch.cat((v[kept], torch.zeros_like(v[picked]).repeat(2, *([1] * (v.dim() - 1))))),
        lambda v: torch.cat((v[kept], v[picked].repeat(2, *([1] * (v.dim() - 1))))),
    )


def remove(params: Params, optimizers: Optimizers, state: dict[str, Any], mask: torch.Tensor) -> None:
    """Drop every splat in ``mask``, with its Adam moments and state."""
    kept = torch.nonzero(~mask).squeeze(1)
    _update(params, optimizers, state, lambda name, p: p[kept], lambda key, v: v[kept], lambda v: v[kept])


def reset_opacities(params: Params, optimizers: Optimizers, value: float) -> None:
    """Clamp every opacity to at most ``value`` and zero the opacities' Adam moments (3DGS's reset)."""
    old = params["opacities"]
    ceiling = torch.logit(torch.tensor(value, dtype=old.dtype)).item()
    new = torch.nn.Parameter(old.detach().clamp_max(ceiling), requires_grad=old.requires_grad)
    params["opacities"] = new
    _swap(optimizers.get("opacities"), old, new, lambda key, v: torch.zeros_like(v))


@dataclass
class DefaultStrategy:
    """3DGS's adaptive density control with gsplat's ``DefaultStrategy`` defaults.

    Every ``refine_every`` steps between ``refine_start_iter`` and ``refine_stop_iter``: splats whose
    average screen-space gradient (in NDC-like units, as gsplat scales it) exceeds ``grow_grad2d``
    are duplicated when their largest scale is at most ``grow_scale3d`` x the scene scale, and split
    otherwise; then splats under ``prune_opa`` opacity, and (after the first reset) larger than
    ``prune_scale3d`` x the scene scale, are removed. Every ``reset_every`` steps opacities are
    clamped to twice ``prune_opa``.
    """

    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    prune_scale3d: float = 0.1
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    reset_every: int = 3000
    refine_every: int = 100
    absgrad: bool = False

    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        """Running state: accumulated gradient norms and visibility counts per splat (created lazily)."""
        return {"grad2d": None, "count": None, "scene_scale": float(scene_scale)}

    def step_post_backward(
        self,
        params: Params,
        optimizers: Optimizers,
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        generator: torch.Generator | None = None,
    ) -> dict[str, int]:
        """Accumulate this step's gradients; refine and reset on schedule. Returns what was done (counts)."""
        done = {"duplicated": 0, "split": 0, "pruned": 0, "reset": 0}
        if step >= self.refine_stop_iter:
            return done
        self._accumulate(params, state, info)
        if step > self.refine_start_iter and step % self.refine_every == 0:
            done.update(self._grow(params, optimizers, state, generator))
            done["pruned"] = self._prune(params, optimizers, state, step)
            state["grad2d"].zero_()
            state["count"].zero_()
        if step % self.reset_every == 0 and step > 0:
            reset_opacities(params, optimizers, 2 * self.prune_opa)
            done["reset"] = 1
        return done

    def _accumulate(self, params: Params, state: dict[str, Any], info: dict[str, Any]) -> None:
        means2d = info["means2d"]
        grads = means2d.absgrad if self.absgrad else means2d.grad
        if grads is None:
            raise ValueError("info['means2d'] has no gradient: call step_post_backward after loss.backward()")
        count = len(params["means"])
        if state["grad2d"] is None:
            state["grad2d"] = torch.zeros(count, device=grads.device)
            state["count"] = torch.zeros(count, device=grads.device)
        cameras = grads.shape[0]
        scale = torch.tensor([info["width"] / 2 * cameras, info["height"] / 2 * cameras], device=grads.device)
        visible = info["radii"] > 0  # (C, N)
        norms = torch.where(visible, (grads * scale).norm(dim=-1), torch.zeros_like(grads[..., 0]))
        state["grad2d"] += norms.sum(0)
        state["count"] += visible.sum(0).to(state["count"].dtype)

    def _grow(
        self, params: Params, optimizers: Optimizers, state: dict[str, Any], generator: torch.Generator | None
    ) -> dict[str, int]:
        average = state["grad2d"] / state["count"].clamp_min(1)
        high = average > self.grow_grad2d
        small = torch.exp(params["scales"].detach()).amax(-1) <= self.grow_scale3d * state["scene_scale"]
        to_duplicate = high & small
        to_split = high & ~small
        duplicate(params, optimizers, state, to_duplicate)
        to_split = torch.cat((to_split, torch.zeros(int(to_duplicate.sum()), dtype=torch.bool, device=high.device)))
        split(params, optimizers, state, to_split, generator)
        return {"duplicated": int(to_duplicate.sum()), "split": int(to_split.sum())}

    def _prune(self, params: Params, optimizers: Optimizers, state: dict[str, Any], step: int) -> int:
        to_prune = torch.sigmoid(params["opacities"].detach()) < self.prune_opa
        if step > self.reset_every:
            too_big = torch.exp(params["scales"].detach()).amax(-1) > self.prune_scale3d * state["scene_scale"]
            to_prune |= too_big
        remove(params, optimizers, state, to_prune)
        return int(to_prune.sum())
